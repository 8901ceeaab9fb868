#!/usr/bin/env bash
# What active health checks cost spliced, in CPU time of the proxy process
# (utime + stime of all its threads, from /proc/PID/stat):
#
# 1. per connection: bench/compare.sh's connect test (`spliced bench --mode
#    connect`, 16 clients, 1 KiB echoed per connection) through two proxies
#    to the same echo upstream, one without checks and one checking its
#    upstream every second, in interleaved reps (off, on, off, on, ...):
#    CPU microseconds per connection, median and spread of each;
# 2. checking 100 upstreams every second: a proxy with 100 upstreams (one
#    Python process accepts and closes on 100 ports) and
#    --health-interval 1s, otherwise idle, against the same proxy without
#    checks: CPU share of one core over IDLE_SECS.
#
#   bench/health_cpu.sh                 # REPS=7 CONN_SECS=5 IDLE_SECS=60
#   BASE_BIN=/path/to/main/spliced bench/health_cpu.sh   # also "base": today's
#                                       # binary (e.g. main's release build), no checks
#   REPS=2 CONN_SECS=1 IDLE_SECS=5 SPLICED_BIN=target/debug/spliced bench/health_cpu.sh   # smoke
#
# Pinned like compare.sh: the proxies on PROXY_CPU (0), load and upstreams
# on LOAD_CPU (1). Quote the figures of a quiet machine only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-7}
CONN_SECS=${CONN_SECS:-5}
IDLE_SECS=${IDLE_SECS:-60}
CLIENTS=${CLIENTS:-16}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SPLICED=${SPLICED_BIN:-$ROOT/target/release/spliced}
if [[ -z ${SPLICED_BIN:-} ]]; then
    cargo build --release -q -p spliced --manifest-path "$ROOT/Cargo.toml"
fi
RUN=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT
TCK=$(getconf CLK_TCK)

cpu_ticks() { # PID -> utime+stime (all threads) in clock ticks
    local rest
    rest=$(<"/proc/$1/stat")
    rest=${rest##*) }
    awk '{print $12 + $13}' <<<"$rest"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # PORT
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2
    return 1
}

proxy() { # BIN PORT ARGS... -> starts a pinned proxy, echoes its pid
    local bin=$1 port=$2
    shift 2
    taskset -c "$PROXY_CPU" "$bin" --log-level warn run --listen "127.0.0.1:$port" "$@" \
        >>"$RUN/proxy-$port.log" 2>&1 &
    echo $!
}

# ---------------------------------------------------------------- 1. per connection
echo_port=$(free_port)
taskset -c "$LOAD_CPU" "$SPLICED" --log-level warn bench --serve "127.0.0.1:$echo_port" --echo \
    >"$RUN/echo.log" 2>&1 &
PIDS+=($!)
wait_port "$echo_port"
declare -A port pid
CFGS=(off on)
[[ -n ${BASE_BIN:-} ]] && CFGS=(base off on)
for cfg in "${CFGS[@]}"; do
    port[$cfg]=$(free_port)
    extra=()
    bin=$SPLICED
    [[ $cfg == on ]] && extra=(--health-interval 1s)
    [[ $cfg == base ]] && bin=$BASE_BIN
    pid[$cfg]=$(proxy "$bin" "${port[$cfg]}" --upstream "127.0.0.1:$echo_port" "${extra[@]}")
    PIDS+=("${pid[$cfg]}")
    wait_port "${port[$cfg]}"
done
: >"$RUN/conn.tsv"
for rep in $(seq "$REPS"); do
    for cfg in "${CFGS[@]}"; do
        before=$(cpu_ticks "${pid[$cfg]}")
        taskset -c "$LOAD_CPU" "$SPLICED" --log-level warn bench --target "127.0.0.1:${port[$cfg]}" \
            --mode connect --conns "$CLIENTS" --size 1024 --duration "${CONN_SECS}s" --json \
            >"$RUN/conn-$cfg-$rep.json"
        after=$(cpu_ticks "${pid[$cfg]}")
        n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connections"])' \
            "$RUN/conn-$cfg-$rep.json")
        printf '%s\t%s\t%s\t%s\n' "$cfg" "$rep" "$((after - before))" "$n" >>"$RUN/conn.tsv"
        echo "rep $rep  checks $cfg: $n connections, $((after - before)) ticks" >&2
    done
done

# ---------------------------------------------------------------- 2. 100 upstreams every second
ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(100)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()')
taskset -c "$LOAD_CPU" python3 -c '
import asyncio, sys
async def main(ports):
    async def close(r, w):
        w.close()
    servers = [await asyncio.start_server(close, "127.0.0.1", int(p), backlog=1024) for p in ports]
    await asyncio.Event().wait()
asyncio.run(main(sys.argv[1:]))' $ports >"$RUN/upstreams.log" 2>&1 &
PIDS+=($!)
for p in $ports; do wait_port "$p"; done
ups=()
for p in $ports; do ups+=(--upstream "127.0.0.1:$p"); done
: >"$RUN/idle.tsv"
for cfg in off on; do
    extra=()
    [[ $cfg == on ]] && extra=(--health-interval 1s)
    lport=$(free_port)
    p=$(proxy "$SPLICED" "$lport" "${ups[@]}" "${extra[@]}")
    PIDS+=("$p")
    wait_port "$lport"
    sleep 2 # past the start and the first round of checks
    before=$(cpu_ticks "$p")
    sleep "$IDLE_SECS"
    after=$(cpu_ticks "$p")
    printf '%s\t%s\n' "$cfg" "$((after - before))" >>"$RUN/idle.tsv"
    kill "$p"
done

python3 - "$RUN/conn.tsv" "$RUN/idle.tsv" "$TCK" "$IDLE_SECS" "$REPS" "$CONN_SECS" "$CLIENTS" <<'EOF'
import statistics, sys
conn, idle, tck, idle_secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
reps, conn_secs, clients = sys.argv[5], sys.argv[6], sys.argv[7]
per, by_rep = {}, {}
for line in open(conn):
    cfg, rep, ticks, n = line.split()
    per.setdefault(cfg, []).append(int(ticks) / tck / max(int(n), 1) * 1e6)
    by_rep.setdefault(cfg, {})[rep] = per[cfg][-1]
print(f"per-connection proxy CPU, connect test ({clients} clients, 1 KiB, {reps} interleaved reps of {conn_secs} s):")
for cfg in per:
    v = sorted(per[cfg])
    print(f"  checks {cfg:4}: median {statistics.median(v):.1f} us/conn, min {v[0]:.1f}, max {v[-1]:.1f}")
off, on = statistics.median(per["off"]), statistics.median(per["on"])
rr = sorted(by_rep["on"][r] / by_rep["off"][r] for r in by_rep["on"] if r in by_rep["off"])
print(f"  on/off: {on / off:.3f} (ratio of the medians; per-rep ratios {rr[0]:.3f}-{rr[-1]:.3f})")
if "base" in per:
    print(f"  off/base: {off / statistics.median(per['base']):.3f}")
for line in open(idle):
    cfg, ticks = line.split()
    share = int(ticks) / tck / idle_secs * 100
    print(f"100 upstreams, checks {cfg:3} (interval 1s), otherwise idle: {share:.2f}% of one core over {idle_secs:.0f} s")
EOF
