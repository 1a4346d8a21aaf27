# Sourced by the end-to-end scripts (browser-test.sh, interop-test.sh): the keycard binary they
# drive, started on a free loopback port with a fresh SQLite database in a scratch directory.
# The sourcing script defines `say`, `root` and `profile` first.

# The binary: KEYCARD_BIN, else one built now (KEYCARD_PROFILE=release for a release build).
# Sets `bin`.
keycard_binary() {
  if [ -n "${KEYCARD_BIN:-}" ]; then
    bin=$KEYCARD_BIN
  elif [ "$profile" = release ]; then
    cargo build --release -p keycard --locked
    bin=$root/target/release/keycard
  else
    cargo build -p keycard --locked
    bin=$root/target/debug/keycard
  fi
}

# `start_keycard PREFIX [serve flags…]`: a scratch directory `work` (removed on exit, the server
# stopped first), `$work/keycard.db`, the server's log at `$work/server.log`; waits until the log
# names the bound address (port 0: the kernel picks) and exports KEYCARD_URL. Flags, not
# KEYCARD_* variables: flags win over any configuration the machine has.
start_keycard() {
  local prefix=$1
  shift
  work=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")
  server_pid=""
  trap stop_keycard EXIT
  local log=$work/server.log
  # Made before the server starts: the loop below may read it before the background job opens
  # it (with pipefail, sed on a missing file would end the script).
  : >"$log"
  KEYCARD_LOG=info NO_COLOR=1 "$bin" serve --bind 127.0.0.1:0 --database "$work/keycard.db" "$@" >"$log" 2>&1 &
  server_pid=$!
  local port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/.*addr=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
    [ -n "$port" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      say "the server exited:"; cat "$log"; exit 1
    fi
    sleep 0.1
  done
  if [ -z "$port" ]; then
    say "the server did not report its address:"; cat "$log"; exit 1
  fi
  # The listener is bound before that line is logged, so the server is reachable now.
  export KEYCARD_URL=http://127.0.0.1:$port
  say "keycard at $KEYCARD_URL"
}

# Stops the server and removes the scratch directory (the EXIT trap of start_keycard).
stop_keycard() {
  if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "${work:-}"
}
