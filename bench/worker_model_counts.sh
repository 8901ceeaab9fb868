#!/usr/bin/env bash
# Per-connection perf counters (instructions where the PMU has them,
# context switches, migrations) of spliced by worker model: 2 workers,
# `spliced bench --mode connect`, 16 clients, 3 s, 2 reps interleaved.
# SPLICED=path/to/spliced (default: target/release/spliced). Ports 47001-2.
set -u
B=${SPLICED:-$(dirname "$0")/../target/release/spliced}
$B --log-level warn bench --serve 127.0.0.1:47001 --echo >/dev/null 2>&1 & ECHO=$!
sleep 0.5
for rep in 1 2; do
for model in per-thread work-stealing; do
  $B --log-level warn run --listen 127.0.0.1:47002 --upstream 127.0.0.1:47001 --worker-threads 2 --worker-model $model >/dev/null 2>&1 & P=$!
  sleep 0.7
  $B bench --target 127.0.0.1:47002 --mode connect --conns 16 --duration 1s >/dev/null 2>&1  # warm-up
  perf stat -x, -e instructions:u,instructions:k,context-switches,cpu-migrations -p $P -o /tmp/wm-perf.txt &
  PS=$!
  sleep 0.2
  out=$($B bench --target 127.0.0.1:47002 --mode connect --conns 16 --duration 3s --json 2>/dev/null)
  kill -INT $PS; wait $PS 2>/dev/null
  kill $P; wait $P 2>/dev/null
  n=$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("connections") or d.get("requests") or d)')
  python3 - "$model" "$n" <<'PY'
import sys
model, n = sys.argv[1], sys.argv[2]
try: n = int(float(n))
except: print(model, "bench json:", n); sys.exit()
vals = {}
for line in open('/tmp/wm-perf.txt'):
    parts = line.strip().split(',')
    if len(parts) > 2 and parts[0].replace('.','').isdigit():
        vals[parts[2]] = float(parts[0])
print(f"{model:14} conns {n:7d}  " + "  ".join(f"{k}/conn {v/n:,.1f}" for k, v in vals.items()))
PY
done; done
kill $ECHO
