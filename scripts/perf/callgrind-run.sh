#!/usr/bin/env bash
# Instruction counts of the request path (docs/BENCHMARKS.md, session 6). One callgrind run of BIN for SCENARIO (me, refresh, me-dpop, refresh-dpop: scripts/perf/client.py) with N requests; keeps the output at OUT.
set -euo pipefail
bin=$1; scenario=$2; n=$3; out=$4
work=$(mktemp -d)
KEYCARD_RATE_LIMIT_ENABLED=false KEYCARD_KEY_RELOAD_INTERVAL=3600 KEYCARD_LOG=info valgrind --tool=callgrind --callgrind-out-file=$out "$bin" serve --bind 127.0.0.1:0 --database $work/k.db >$work/log 2>&1 &
pid=$!
port=""
for _ in $(seq 1 600); do port=$(sed -n 's/.*addr=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' $work/log | head -n1); [ -n "$port" ] && break; sleep 0.2; done
python3 "$(dirname "$0")/client.py" $port $scenario $n
kill -TERM $pid; wait $pid || true
rm -rf $work
