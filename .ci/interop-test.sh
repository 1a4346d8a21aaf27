#!/usr/bin/env bash
# The OAuth 2.0 interop test (issue 18): client libraries keycard did not write, openid-client v6
# (Node.js) and Authlib's requests client (Python), against a real keycard server on a free
# loopback port with a throwaway SQLite file, and two confidential clients registered with the
# CLI (scopes "read write"), one per suite. DPoP (issue 19): oauth4webapi's DPoP against the same
# server, a second one with server nonces on (KEYCARD_DPOP_NONCE=true), and keycard-verify's
# example resource server with DPoP on (DPOP=on), each with a client of its own.
#
# Installs what it needs (interop/node/node_modules with npm ci, a venv at target/interop-venv from
# interop/python/requirements.txt), builds the server unless KEYCARD_BIN names a binary and the
# resource server unless RESOURCE_SERVER_BIN does, runs the suites, stops the servers, and exits
# non-zero on any failure (with the server logs' tails).
# Node.js, npm or Python missing: a failure under CI=true, a skip otherwise.
# Server logs: target/interop-artifacts/ (ARTIFACTS_DIR). Debug builds unless KEYCARD_PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
profile=${KEYCARD_PROFILE:-debug}
export ARTIFACTS_DIR=${ARTIFACTS_DIR:-$root/target/interop-artifacts}
venv=${INTEROP_VENV:-$root/target/interop-venv}

say() { echo "interop-test: $*"; }

# 1. Node.js and npm (the machine's), Python 3 with venv.
missing=()
for tool in node npm python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    say "FAILED: ${missing[*]} not found; the interop test needs Node.js, npm and Python 3" >&2
    exit 1
  fi
  say "SKIPPED: ${missing[*]} not found (under CI=true this is a failure)"
  exit 0
fi
say "node $(node --version), npm $(npm --version), $(python3 --version)"

(cd interop/node && npm ci --no-audit --no-fund --loglevel=error)

# The venv is made again whenever requirements.txt changes (its copy inside the venv differs).
if ! cmp -s interop/python/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
  say "creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 keeps venv (ensurepip) in a package of its own.
    rm -rf "$venv"
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      say "installing python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r interop/python/requirements.txt
  cp interop/python/requirements.txt "$venv/requirements.txt"
fi

# 2. The server (KEYCARD_BIN: use that binary instead of building one), and keycard-verify's
# example resource server (RESOURCE_SERVER_BIN: likewise).
. "$root/.ci/keycard-server.sh"
keycard_binary
if [ -n "${RESOURCE_SERVER_BIN:-}" ]; then
  resource_bin=$RESOURCE_SERVER_BIN
else
  release=()
  [ "$profile" = release ] && release=(--release)
  cargo build ${release[@]+"${release[@]}"} -p keycard-verify --example resource_server --locked
  resource_bin=${CARGO_TARGET_DIR:-$root/target}/$profile/examples/resource_server
fi

# 3. Run it on a free port with a fresh database; strictly single-use refresh tokens (the replay
# tests rely on it).
start_keycard keycard-interop --reuse-interval 0s
log=$work/server.log

# The DPoP servers: a second keycard with server nonces on (a setting with no flag, so its
# variable), and the resource server, DPoP on with its own address as public origin, trusting the
# first keycard. Each logs the address it bound (port 0: the kernel picks).
extra_pids=()
stop_all() {
  for pid in ${extra_pids[@]+"${extra_pids[@]}"}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  stop_keycard
}
trap stop_all EXIT
# `bound_address LOG PID SED-EXPRESSION`: the host:port the expression finds in LOG, once it is
# there (10 s at most; fails when the process exits first).
bound_address() {
  local address=""
  for _ in $(seq 1 100); do
    address=$(sed -n "$3" "$1" | head -n1)
    [ -n "$address" ] && { echo "$address"; return 0; }
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  say "no address in $1:" >&2; cat "$1" >&2; return 1
}
nonce_log=$work/nonce-server.log
: >"$nonce_log"
KEYCARD_DPOP_NONCE=true KEYCARD_LOG=info NO_COLOR=1 "$bin" serve --bind 127.0.0.1:0 \
  --database "$work/nonce.db" --reuse-interval 0s >"$nonce_log" 2>&1 &
extra_pids+=($!)
nonce_url=http://$(bound_address "$nonce_log" "$!" 's/.*addr=\(127\.0\.0\.1:[0-9][0-9]*\).*/\1/p')
say "keycard with DPoP nonces at $nonce_url"
resource_log=$work/resource-server.log
: >"$resource_log"
DPOP=on BIND=127.0.0.1:0 "$resource_bin" "$KEYCARD_URL" >"$resource_log" 2>&1 &
extra_pids+=($!)
resource_url=http://$(bound_address "$resource_log" "$!" 's/^resource server on http:\/\/\([0-9.:]*\) .*/\1/p')
say "resource server (DPoP on) at $resource_url"

# 4. Two confidential clients, registered with the CLI on the running server's database: one per
# suite, so neither suite's revocations can touch the other's tokens.
# Prints "CLIENT_ID CLIENT_SECRET" from `clients add --json` (one JSON object on stdout).
register() {
  local out=$work/client-$1.json
  if ! NO_COLOR=1 "$bin" clients add "$1" --scope "read write" --database "${2:-$work/keycard.db}" --json \
    >"$out" 2>"$work/client-$1.err"; then
    say "clients add $1 failed:" >&2; cat "$out" "$work/client-$1.err" >&2; return 1
  fi
  python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.lstrip().startswith("{")]
if len(lines) != 1:
    sys.exit("expected one JSON object from clients add --json, got: " + open(sys.argv[1]).read())
d = json.loads(lines[0])
print(d["client_id"], d["client_secret"])
' "$out"
}
read -r node_id node_secret < <(register interop-node) || { say "FAILED to register a client"; tail -n 40 "$log"; exit 1; }
read -r py_id py_secret < <(register interop-python) || { say "FAILED to register a client"; tail -n 40 "$log"; exit 1; }
read -r dpop_id dpop_secret < <(register interop-dpop) || { say "FAILED to register a client"; tail -n 40 "$log"; exit 1; }
read -r nonce_id nonce_secret < <(register interop-dpop-nonce "$work/nonce.db") ||
  { say "FAILED to register a client"; tail -n 40 "$nonce_log"; exit 1; }
for value in "$node_id" "$node_secret" "$py_id" "$py_secret" "$dpop_id" "$dpop_secret" "$nonce_id" "$nonce_secret"; do
  [ -n "$value" ] || { say "FAILED: clients add --json gave no client_id/client_secret"; exit 1; }
done
say "clients $node_id (node), $py_id (python), $dpop_id (dpop) and $nonce_id (dpop, nonce server)"

# 5. Both suites, the second even when the first fails.
mkdir -p "$ARTIFACTS_DIR"
failed=()
(cd interop/node && KEYCARD_CLIENT_ID=$node_id KEYCARD_CLIENT_SECRET=$node_secret \
  node --test --test-reporter=spec oauth.test.js) || failed+=(node)
(cd interop/node && KEYCARD_CLIENT_ID=$dpop_id KEYCARD_CLIENT_SECRET=$dpop_secret \
  KEYCARD_RESOURCE_URL=$resource_url KEYCARD_NONCE_URL=$nonce_url \
  KEYCARD_NONCE_CLIENT_ID=$nonce_id KEYCARD_NONCE_CLIENT_SECRET=$nonce_secret \
  node --test --test-reporter=spec dpop.test.js) || failed+=(node-dpop)
KEYCARD_CLIENT_ID=$py_id KEYCARD_CLIENT_SECRET=$py_secret \
  "$venv/bin/python" interop/python/test_oauth.py || failed+=(python)

# 6. Stop the servers; keep their logs.
for pid in ${extra_pids[@]+"${extra_pids[@]}"}; do
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
extra_pids=()
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""
cp "$log" "$ARTIFACTS_DIR/server.log" 2>/dev/null || true
cp "$nonce_log" "$ARTIFACTS_DIR/nonce-server.log" 2>/dev/null || true
cp "$resource_log" "$ARTIFACTS_DIR/resource-server.log" 2>/dev/null || true
if [ "${#failed[@]}" -gt 0 ]; then
  say "FAILED: ${failed[*]} (server logs: $ARTIFACTS_DIR/)"
  tail -n 40 "$log"
  for extra in "$nonce_log" "$resource_log"; do
    echo "--- $(basename "$extra")"; tail -n 20 "$extra"
  done
  exit 1
fi
say "passed in $(( $(date +%s) - start )) s"
