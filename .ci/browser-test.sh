#!/usr/bin/env bash
# The browser end-to-end test: keycard.js and the demo page in headless Chromium (Debian's
# package, driven by playwright-core; never a downloaded browser build) against a real keycard
# server on a free loopback port with a throwaway SQLite file and 5 s access tokens.
#
# Installs what it needs on a fresh Debian machine (chromium, web/node_modules), builds the
# server, runs web/tests, stops the server, and exits non-zero on any failure.
# Screenshots: target/browser-artifacts/ (ARTIFACTS_DIR). Debug build unless KEYCARD_PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
profile=${KEYCARD_PROFILE:-debug}
export ARTIFACTS_DIR=${ARTIFACTS_DIR:-$root/target/browser-artifacts}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

say() { echo "browser-test: $*"; }

# 1. Chromium from Debian, node and playwright-core from npm.
if [ ! -x "$CHROMIUM" ]; then
  say "installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing node and npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
say "$("$CHROMIUM" --version 2>/dev/null | head -n1), node $(node --version)"
(cd web && npm ci --no-audit --no-fund --loglevel=error)

# 2. The server (KEYCARD_BIN: use that binary instead of building one), on a free port with a
# fresh database. Settings the test relies on: short-lived access tokens and no leeway (so tokens
# really expire mid-test), strictly single-use refresh tokens.
. "$root/.ci/keycard-server.sh"
keycard_binary
start_keycard keycard-browser --access-ttl 5s --leeway 0s --reuse-interval 0s
export KEYCARD_SERVER_LOG=$work/server.log

# 4. The test.
mkdir -p "$ARTIFACTS_DIR"
status=0
(cd web && node --test --test-reporter=spec tests/browser.test.js) || status=$?
cp "$KEYCARD_SERVER_LOG" "$ARTIFACTS_DIR/server.log" 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  say "FAILED (server log: $ARTIFACTS_DIR/server.log)"
  tail -n 40 "$KEYCARD_SERVER_LOG"
  exit "$status"
fi
say "passed in $(( $(date +%s) - start )) s; screenshots in $ARTIFACTS_DIR"
