#!/usr/bin/env bash
# The OAuth 2.0 interop test (issue 18): client libraries keycard did not write, openid-client v6
# (Node.js) and Authlib's requests client (Python), against a real keycard server on a free
# loopback port with a throwaway SQLite file, and two confidential clients registered with the
# CLI (scopes "read write"), one per suite.
#
# Installs what it needs (interop/node/node_modules with npm ci, a venv at target/interop-venv from
# interop/python/requirements.txt), builds the server unless KEYCARD_BIN names a binary, runs both
# suites, stops the server, and exits non-zero on any failure (with the server log's tail).
# Node.js, npm or Python missing: a failure under CI=true, a skip otherwise.
# Server log: target/interop-artifacts/ (ARTIFACTS_DIR). Debug build unless KEYCARD_PROFILE=release.
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

# 2. The server (KEYCARD_BIN: use that binary instead of building one).
. "$root/.ci/keycard-server.sh"
keycard_binary

# 3. Run it on a free port with a fresh database; strictly single-use refresh tokens (the replay
# tests rely on it).
start_keycard keycard-interop --reuse-interval 0s
log=$work/server.log

# 4. Two confidential clients, registered with the CLI on the running server's database: one per
# suite, so neither suite's revocations can touch the other's tokens.
# Prints "CLIENT_ID CLIENT_SECRET" from `clients add --json` (one JSON object on stdout).
register() {
  local out=$work/client-$1.json
  if ! NO_COLOR=1 "$bin" clients add "$1" --scope "read write" --database "$work/keycard.db" --json \
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
if [ -z "$node_id" ] || [ -z "$node_secret" ] || [ -z "$py_id" ] || [ -z "$py_secret" ]; then
  say "FAILED: clients add --json gave no client_id/client_secret"; exit 1
fi
say "clients $node_id (node) and $py_id (python)"

# 5. Both suites, the second even when the first fails.
mkdir -p "$ARTIFACTS_DIR"
failed=()
(cd interop/node && KEYCARD_CLIENT_ID=$node_id KEYCARD_CLIENT_SECRET=$node_secret \
  node --test --test-reporter=spec oauth.test.js) || failed+=(node)
KEYCARD_CLIENT_ID=$py_id KEYCARD_CLIENT_SECRET=$py_secret \
  "$venv/bin/python" interop/python/test_oauth.py || failed+=(python)

# 6. Stop the server; keep its log.
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""
cp "$log" "$ARTIFACTS_DIR/server.log" 2>/dev/null || true
if [ "${#failed[@]}" -gt 0 ]; then
  say "FAILED: ${failed[*]} (server log: $ARTIFACTS_DIR/server.log)"
  tail -n 40 "$log"
  exit 1
fi
say "passed in $(( $(date +%s) - start )) s"
