#!/usr/bin/env bash
# spliced alone, measured by its own load generator: `spliced bench` direct, through spliced (splice) and
# through spliced (userspace): stream mode with 1 and 4 connections (one way
# into a sink), connect mode with 16 and 256 clients (1 KiB each way), REPS
# interleaved repetitions (default 3). The proxy runs on CPU 0, the load
# client and the upstream on CPU 1. Prints, per case, the median Gbit/s or
# conn/s, p99 and the proxy's CPU seconds per GB (stream) or CPU us per
# connection (connect), from /proc/PID/stat.
#
#   bench/spliced_matrix.sh            # ~4 min
#   REPS=1 SECS=2 bench/spliced_matrix.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
SECS=${SECS:-4}
BIN=${SPLICED_BIN:-target/release/spliced}
[ -n "${SPLICED_BIN:-}" ] || cargo build --release -q -p spliced
OUT=$(mktemp -d /tmp/spliced-matrix.XXXXXX)
# `start` runs in a command substitution (a subshell), so the processes it
# starts are remembered in pid files, not in a shell variable.
cleanup() {
  for f in "$OUT"/*.pid; do
    [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
}
trap cleanup EXIT

# start NAME CPU ARGS...: runs spliced, waits for its "listening on" line,
# prints the address.
start() {
  local name=$1 cpu=$2; shift 2
  taskset -c "$cpu" "$BIN" --log-level warn "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
  echo $! >"$OUT/$name.pid"
  for _ in $(seq 100); do
    grep -q "listening on" "$OUT/$name.out" 2>/dev/null && break
    sleep 0.05
  done
  sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$OUT/$name.out" | head -1
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

sink=$(start sink 1 bench --serve 127.0.0.1:0 --sink)
echo_=$(start echo 1 bench --serve 127.0.0.1:0 --echo)
declare -A target pid
target[direct-sink]=$sink; target[direct-echo]=$echo_
for mode in splice userspace; do
  for up in sink echo; do
    upaddr=$sink; [ $up = echo ] && upaddr=$echo_
    target[$mode-$up]=$(start "$mode-$up" 0 run --listen 127.0.0.1:0 --upstream "$upaddr" \
      --copy "$mode" --worker-threads 1 --max-conns 5000)
    pid[$mode-$up]=$(cat "$OUT/$mode-$up.pid")
  done
done
hz=$(getconf CLK_TCK)

# run CASE CONFIG BENCH-ARGS...: one measurement, JSON line to results.
run() {
  local case=$1 cfg=$2 up=$3; shift 3
  local key="$cfg-$up" p="" t0=0 t1=0
  [ "$cfg" != direct ] && p=${pid[$key]} && t0=$(ticks "$p")
  taskset -c 1 "$BIN" bench --target "${target[$key]}" --duration "${SECS}s" --json "$@" \
    >"$OUT/run.json" 2>/dev/null || true
  [ -n "$p" ] && t1=$(ticks "$p")
  python3 - "$OUT/run.json" "$case" "$cfg" "$(( t1 - t0 ))" "$hz" >>"$OUT/results.jsonl" <<'PY'
import json, sys
path, case, cfg, dticks, hz = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = {}
cpu = int(dticks) / int(hz)
row = {"case": case, "config": cfg, "cpu_s": cpu, "raw": r}
print(json.dumps(row))
PY
}

for rep in $(seq "$REPS"); do
  for cfg in direct splice userspace; do
    run stream-1 "$cfg" sink --mode stream --conns 1 --oneway
    run stream-4 "$cfg" sink --mode stream --conns 4 --oneway
    run connect-16 "$cfg" echo --mode connect --conns 16 --size 1024
    run connect-256 "$cfg" echo --mode connect --conns 256 --size 1024
  done
  echo "rep $rep done" >&2
done

python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def find(r, *keys):
    for k in keys:
        v = r
        for part in k.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if v is not None:
            return v
    return None
print(f"{'case':12} {'config':10} {'Gbit/s|conn/s':>14} {'p99 ms':>8} {'proxy CPU':>14} {'errors':>7}")
for case in ["stream-1", "stream-4", "connect-16", "connect-256"]:
    for cfg in ["direct", "splice", "userspace"]:
        rs = [r for r in rows if r["case"] == case and r["config"] == cfg]
        if case.startswith("stream"):
            rate = med([find(r["raw"], "send_gbps") for r in rs])
            gb = [find(r["raw"], "bytes_sent") for r in rs]
            cpu = med([r["cpu_s"] / (b / 1e9) if b else None for r, b in zip(rs, gb)]) if cfg != "direct" else None
            cpu_s = f"{cpu:.3f} s/GB" if cpu is not None else "-"
            p99 = "-"
        else:
            rate = med([find(r["raw"], "conns_per_sec") for r in rs])
            n = [find(r["raw"], "connections") for r in rs]
            cpu = med([r["cpu_s"] * 1e6 / c if c else None for r, c in zip(rs, n)]) if cfg != "direct" else None
            cpu_s = f"{cpu:.1f} us/conn" if cpu is not None else "-"
            p = med([find(r["raw"], "latency_us.p99") for r in rs])
            p99 = f"{p / 1000:.2f}" if p is not None else "-"
        errs = sum((find(r["raw"], "failures.errors") or 0) for r in rs)
        rate_s = f"{rate:,.2f}" if rate is not None else "-"
        print(f"{case:12} {cfg:10} {rate_s:>14} {p99:>8} {cpu_s:>14} {errs:>7}")
PY
echo "raw results: $OUT/results.jsonl" >&2
