#!/usr/bin/env bash
# Logins/s and refreshes/s with Transit signing next to local signing (docs/BENCHMARKS.md
# "Transit signing"): starts a throwaway `bao server -dev` on a free loopback port with an
# ed25519 (or $KEY_TYPE) Transit key, then runs keycard-bench against keycard with
# signing_backend = "local" and "transit" in alternating invocations, and prints OpenBao's own
# CPU seconds per invocation (it shares the machine's cores with keycard and the driver).
#
#   scripts/perf/transit-bench.sh [DURATION] [ROUNDS]      # defaults: 20s 2
#   CONNECTIONS=1 SCENARIOS=refresh scripts/perf/transit-bench.sh 10s 1   # one chain: latency
# Needs target/release/keycard and target/release/keycard-bench, and bao
# (bash .ci/install-openbao.sh).
set -euo pipefail
DURATION=${1:-20s}
ROUNDS=${2:-2}
KEY_TYPE=${KEY_TYPE:-ed25519}
CONNECTIONS=${CONNECTIONS:-32}
SCENARIOS=${SCENARIOS:-refresh login}
BENCH=${BENCH:-target/release/keycard-bench}
scratch=$(mktemp -d /tmp/transit-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="http://127.0.0.1:$port"
bao server -dev -dev-root-token-id=bench-root -dev-listen-address="127.0.0.1:$port" >"$scratch/bao.log" 2>&1 &
bao_pid=$!
trap 'kill $bao_pid 2>/dev/null; wait $bao_pid 2>/dev/null; rm -rf "$scratch"' EXIT
for _ in $(seq 1 100); do
  curl -sf "$addr/v1/sys/health" >/dev/null && break
  sleep 0.1
done
call() { curl -sf -H 'X-Vault-Token: bench-root' -X "$1" "$addr/v1/$2" -d "$3" >/dev/null; }
call POST sys/mounts/transit '{"type":"transit"}'
call POST transit/keys/keycard-tokens "{\"type\":\"$KEY_TYPE\"}"
echo bench-root >"$scratch/token"
transit=(--keycard-set 'signing_backend = "transit"' --keycard-set 'vault_signing_key = "keycard-tokens"'
  --keycard-set "vault_addr = \"$addr\"" --keycard-set "vault_token_file = \"$scratch/token\"")
bao_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$bao_pid/stat"; }
run() {
  local label=$1; shift
  local before; before=$(bao_cpu)
  echo "== $label: $*"
  "$BENCH" compare --only keycard "$@"
  echo "== $label: OpenBao CPU $(echo "$(bao_cpu) - $before" | bc) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
}
for _ in $(seq 1 "$ROUNDS"); do
  if [[ " $SCENARIOS " == *" refresh "* ]]; then
    run local --scenario refresh --connections "$CONNECTIONS" --duration "$DURATION"
    run transit --scenario refresh --connections "$CONNECTIONS" --duration "$DURATION" "${transit[@]}"
  fi
  if [[ " $SCENARIOS " == *" login "* ]]; then
    run transit --scenario login --connections 8 --users 16 --duration "$DURATION" "${transit[@]}"
    run local --scenario login --connections 8 --users 16 --duration "$DURATION"
  fi
done
