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

# 2. The server (KEYCARD_BIN: use that binary instead of building one).
if [ -n "${KEYCARD_BIN:-}" ]; then
  bin=$KEYCARD_BIN
elif [ "$profile" = release ]; then
  cargo build --release -p keycard --locked
  bin=$root/target/release/keycard
else
  cargo build -p keycard --locked
  bin=$root/target/debug/keycard
fi

# 3. Run it on a free port (port 0: the kernel picks; the log says which) with a fresh database.
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export KEYCARD_SERVER_LOG=$work/server.log
: >"$KEYCARD_SERVER_LOG" # exists before the address loop reads it
# Settings the test relies on: short-lived access tokens and no leeway (so tokens really expire
# mid-test), strictly single-use refresh tokens. Flags, not KEYCARD_* variables: flags win over
# any configuration the machine has.
KEYCARD_LOG=info NO_COLOR=1 "$bin" serve --bind 127.0.0.1:0 --database "$work/keycard.db" \
  --access-ttl 5s --leeway 0s --reuse-interval 0s >"$KEYCARD_SERVER_LOG" 2>&1 &
server_pid=$!

port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*addr=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$KEYCARD_SERVER_LOG" | head -n1)
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    say "the server exited:"; cat "$KEYCARD_SERVER_LOG"; exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  say "the server did not report its address:"; cat "$KEYCARD_SERVER_LOG"; exit 1
fi
# The listener is bound before that line is logged, so the server is reachable now.
export KEYCARD_URL=http://127.0.0.1:$port
say "keycard at $KEYCARD_URL"

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
