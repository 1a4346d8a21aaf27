#!/usr/bin/env bash
# Server CPU time (user + system, from /proc) per request of one scenario (me, refresh, me-dpop,
# refresh-dpop: scripts/perf/client.py over one keep-alive connection), as the difference between
# a run of N1 and a run of N2 requests divided by N2 - N1, so sign-up and login drop out.
# Usage: cpu-per-request.sh BIN SCENARIO [N1 N2] -> prints "SCENARIO µs/request".
set -euo pipefail
bin=$1; scenario=$2; n1=${3:-200}; n2=${4:-3200}
here=$(cd "$(dirname "$0")" && pwd)
tick=$(getconf CLK_TCK)
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {
  local n=$1 work pid port before after
  work=$(mktemp -d)
  KEYCARD_RATE_LIMIT_ENABLED=${KEYCARD_RATE_LIMIT_ENABLED:-false} KEYCARD_KEY_RELOAD_INTERVAL=3600 KEYCARD_LOG=info "$bin" serve --bind 127.0.0.1:0 --database "$work/k.db" >"$work/log" 2>&1 &
  pid=$!
  port=""
  for _ in $(seq 1 300); do port=$(sed -n 's/.*addr=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/log" | head -n1); [ -n "$port" ] && break; sleep 0.1; done
  before=$(cpu_of $pid)
  python3 "$here/client.py" "$port" "$scenario" "$n"
  after=$(cpu_of $pid)
  kill -TERM $pid; wait $pid || true
  rm -rf "$work"
  echo $((after - before))
}
a=$(run "$n1"); b=$(run "$n2")
python3 -c "print('$scenario', round(($b - $a) / $tick * 1e6 / ($n2 - $n1), 1), 'µs/request')"
