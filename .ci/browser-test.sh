#!/usr/bin/env bash
# The browser end-to-end test: keycard.js and the demo page in headless Chromium (Debian's
# package, driven by playwright-core; never a downloaded browser build) against a real keycard
# server on a free loopback port with a throwaway SQLite file and 5 s access tokens.
#
# Installs what it needs on a fresh Debian machine (chromium, web/node_modules), builds the
# server and an SMTP server (aiosmtpd, .ci/install-smtp.sh) whose Maildir the mail test reads,
# runs web/tests (backoff.test.js, passkeys.test.js and dpop.test.js start keycards of their own),
# stops both servers, and exits non-zero on any failure. WEB_FROM_DISK=1 (with KEYCARD_BIN): the
# tests serve this checkout's web/ files in place of the copies built into the binary.
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
# really expire mid-test), strictly single-use refresh tokens. Its mail goes to the SMTP server
# of step 3 (`smtp_url` has no flag: a URL may hold a password), and mailed links start with the
# issuer, the server's own origin (`app_url` unset).
bash "$root/.ci/install-smtp.sh"
smtp_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
. "$root/.ci/keycard-server.sh"
keycard_binary
# backoff.test.js starts a keycard of its own (its own rate limit) from the same binary.
export KEYCARD_BIN=$bin
KEYCARD_SMTP_URL=smtp://127.0.0.1:$smtp_port start_keycard keycard-browser --access-ttl 5s --leeway 0s --reuse-interval 0s
export KEYCARD_SERVER_LOG=$work/server.log

# 3. The SMTP server: aiosmtpd writing every message it accepts into a Maildir the test reads.
# Started before any mail is due (the test's first request causes the first one).
export MAILDIR=$work/Maildir
mkdir -p "$MAILDIR/tmp" "$MAILDIR/new" "$MAILDIR/cur"
python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$MAILDIR" >"$work/smtp.log" 2>&1 &
smtp_pid=$!
stop_smtp() {
  kill "$smtp_pid" 2>/dev/null || true
  wait "$smtp_pid" 2>/dev/null || true
}
trap 'stop_smtp; stop_keycard' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null && break
  if ! kill -0 "$smtp_pid" 2>/dev/null; then
    say "the SMTP server exited:"; cat "$work/smtp.log"; exit 1
  fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null || { say "the SMTP server does not listen"; exit 1; }
say "SMTP server (aiosmtpd) at 127.0.0.1:$smtp_port"

# 4. The tests, one file after the other.
mkdir -p "$ARTIFACTS_DIR"
status=0
(cd web && node --test --test-concurrency=1 --test-reporter=spec tests/browser.test.js tests/mail.test.js tests/mfa.test.js tests/backoff.test.js tests/passkeys.test.js tests/dpop.test.js) || status=$?
cp "$KEYCARD_SERVER_LOG" "$ARTIFACTS_DIR/server.log" 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  say "FAILED (server log: $ARTIFACTS_DIR/server.log)"
  tail -n 40 "$KEYCARD_SERVER_LOG"
  exit "$status"
fi
say "passed in $(( $(date +%s) - start )) s; screenshots in $ARTIFACTS_DIR"
