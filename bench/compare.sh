#!/usr/bin/env bash
# bench/compare.sh: spliced against HAProxy, a minimal Go proxy and no proxy
# at all, on loopback, in one run. See bench/README.md for what each number
# means exactly.
#
#   bench/compare.sh                 # full run: REPS=3 (about 12-15 minutes on 2 cores)
#   QUICK=1 bench/compare.sh         # smoke test: 1 rep, short durations (about 3 minutes)
#
# Environment (all optional):
#   REPS=3            repetitions; configurations are interleaved A B C .. A B C ..
#   QUICK=0|1         1 rep, 2 s iperf3 runs, 1 s connect runs, short pool benches
#   CONFIGS="..."     which configurations (names below), in this order
#   TESTS="bulk connect idle pool"   which measurements
#   TPUT_SECS=4       seconds per iperf3 run
#   CONN_SECS=3       seconds per `spliced bench --mode connect` run
#   CONN_CLIENTS="16 256"
#   IDLE_CONNS=10000  idle connections held through each proxy (lowered to fit
#                     the fd hard limit if it cannot be raised)
#   PROXY_CPU=0 LOAD_CPU=1   taskset CPUs: proxy / iperf3, load and upstreams
#   BASE_PORT=21300   loopback ports BASE_PORT..BASE_PORT+199 are used
#   HAPROXY_PIPESIZE  tune.pipesize for HAProxy (default: kernel default, 64 KiB)
#   SPLICED_ARGS      extra flags for every `spliced run`
#   POOL_FILTER=get_put   criterion filter for the pool benchmarks
#   SPLICED_BIN       use this spliced binary instead of building target/release/spliced
#   ECHO_SERVER=spliced|go   upstream of the connect test: `spliced bench --serve --echo`
#                     (default) or `goproxy -echo` (listen backlog = somaxconn)
#   OUT=bench/out     where results go
#   NO_INSTALL=1      never apt-get; fail if a tool is missing
#
# Configurations:
#   direct                 no proxy: the client talks to the upstream itself
#   spliced-splice-tN      spliced run --copy splice --worker-threads N
#   spliced-user-tN        spliced run --copy userspace --worker-threads N
#   haproxy-splice-tN      HAProxy mode tcp, option splice-request/-response, nbthread N
#   haproxy-nosplice-tN    HAProxy mode tcp, global nosplice, nbthread N
#   go                     bench/goproxy (net.Listen + io.Copy both ways)

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=${OUT:-$BENCH/out}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    REPS=${REPS:-1}; TPUT_SECS=${TPUT_SECS:-2}; CONN_SECS=${CONN_SECS:-1}
    CRITERION_ARGS=${CRITERION_ARGS:---warm-up-time 0.5 --measurement-time 1}
    GO_BENCHTIME=${GO_BENCHTIME:-200ms}
else
    REPS=${REPS:-3}; TPUT_SECS=${TPUT_SECS:-4}; CONN_SECS=${CONN_SECS:-3}
    CRITERION_ARGS=${CRITERION_ARGS:---warm-up-time 1 --measurement-time 3}
    GO_BENCHTIME=${GO_BENCHTIME:-1s}
fi
CONFIGS=${CONFIGS:-"direct spliced-splice-t1 spliced-splice-t2 spliced-user-t1 haproxy-splice-t1 haproxy-splice-t2 haproxy-nosplice-t1 haproxy-nosplice-t2 go"}
TESTS=${TESTS:-"bulk connect idle pool"}
CONN_CLIENTS=${CONN_CLIENTS:-"16 256"}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-21300}
HAPROXY_PIPESIZE=${HAPROXY_PIPESIZE:-}
SPLICED_ARGS=${SPLICED_ARGS:-}
NO_INSTALL=${NO_INSTALL:-0}
ECHO_SERVER=${ECHO_SERVER:-spliced}
POOL_FILTER=${POOL_FILTER:-get_put}

IPERF_PORT=$((BASE_PORT))        # iperf3 -s
ECHO_PORT=$((BASE_PORT + 1))     # spliced bench --serve --echo
IDLE_PORT=$((BASE_PORT + 2))     # idle.py serve
# proxy i listens on BASE_PORT+10+i, its metrics (spliced) on BASE_PORT+100+i

START_EPOCH=$(date +%s)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$OUT/run-$STAMP
RAW=$RUN/raw.jsonl
mkdir -p "$RUN" "$OUT/bin"

log() { printf '[compare %4ds] %s\n' "$(($(date +%s) - START_EPOCH))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
# Every process this script starts is recorded here and killed at exit.
PIDS=()
track() { PIDS+=("$1"); }
kill_pid() { # PID: TERM, wait up to 2 s, then KILL
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
kill_now() { # PID: SIGKILL (used where a graceful stop would only cost time)
    [[ -n $1 ]] || return 0
    kill -KILL "$1" 2>/dev/null && wait "$1" 2>/dev/null
    return 0
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill_pid "$pid"; done
    PIDS=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- tools
ensure_tools() {
    local -A pkg=([haproxy]=haproxy [iperf3]=iperf3 [go]=golang-go [gnuplot]=gnuplot-nox
        [python3]=python3 [taskset]=util-linux [ss]=iproute2 [curl]=curl [getconf]=libc-bin)
    local missing=() t
    for t in "${!pkg[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("${pkg[$t]}"); done
    ((${#missing[@]} == 0)) && return 0
    [[ $NO_INSTALL == 1 ]] && die "missing: ${missing[*]} (NO_INSTALL=1)"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    log "installing ${missing[*]} (apt-get update, then apt-get install -y)"
    "${sudo[@]}" apt-get update -q >"$RUN/apt.log" 2>&1 || die "apt-get update failed (see $RUN/apt.log)"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >>"$RUN/apt.log" 2>&1 \
        || die "apt-get install ${missing[*]} failed (see $RUN/apt.log)"
}

# fd limit: the idle test needs 2 fds per connection in the proxy.
raise_nofile() {
    local want=200000 hard
    ulimit -Hn "$want" 2>/dev/null
    ulimit -Sn "$want" 2>/dev/null
    hard=$(ulimit -Hn)
    [[ $hard == unlimited ]] && hard=$want
    ulimit -Sn "$hard" 2>/dev/null
    NOFILE=$(ulimit -Sn)
    local fit=$(((NOFILE - 200) / 2))
    if ((IDLE_CONNS > fit)); then
        log "fd limit is $NOFILE and cannot be raised (no CAP_SYS_RESOURCE?): idle test lowered from $IDLE_CONNS to $fit connections"
        IDLE_CONNS=$fit
    fi
}

check_ports() {
    local p busy=()
    for p in $IPERF_PORT $ECHO_PORT $IDLE_PORT; do port_listening "$p" && busy+=("$p"); done
    for ((p = BASE_PORT + 10; p < BASE_PORT + 10 + 40; p++)); do port_listening "$p" && busy+=("$p"); done
    for ((p = BASE_PORT + 100; p < BASE_PORT + 100 + 40; p++)); do port_listening "$p" && busy+=("$p"); done
    ((${#busy[@]} == 0)) || die "ports already in use: ${busy[*]} (set BASE_PORT)"
}

port_listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

wait_listen() { # PORT PID: bounded wait (5 s) for a listener; fails if PID died
    local port=$1 pid=${2:-} i
    for ((i = 0; i < 100; i++)); do
        port_listening "$port" && return 0
        [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null && return 1
        sleep 0.05
    done
    return 1
}

listen_overflows() { # system-wide TcpExt ListenOverflows (accept queue full: SYN dropped)
    awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1 } else print $c }' /proc/net/netstat
}

cpu_ticks() { # PID -> utime+stime (all threads) in clock ticks
    local rest
    rest=$(<"/proc/$1/stat") || return 1
    rest=${rest##*) }          # drop "pid (comm) ": field 3 (state) is now $1
    awk '{print $12 + $13}' <<<"$rest"
}

# ---------------------------------------------------------------- builds
SPLICED=${SPLICED_BIN:-$ROOT/target/release/spliced}
GOPROXY_BIN=$OUT/bin/goproxy
HAVE_SPLICED=0

build_spliced() {
    if [[ -n ${SPLICED_BIN:-} ]]; then
        log "using SPLICED_BIN=$SPLICED_BIN (not rebuilt)"
    elif log "cargo build --release -p spliced"
        ! (cd "$ROOT" && cargo build --release -p spliced) >"$RUN/build-spliced.log" 2>&1; then
        log "WARNING: spliced does not build (see $RUN/build-spliced.log): spliced configurations skipped"
        return
    fi
    local run_help bench_help
    run_help=$("$SPLICED" run --help 2>&1) || run_help=
    bench_help=$("$SPLICED" bench --help 2>&1) || bench_help=
    local f missing=()
    for f in --listen --upstream --copy --worker-threads --max-conns --metrics; do
        grep -q -- "$f" <<<"$run_help" || missing+=("run $f")
    done
    for f in --target --mode --conns --size --duration --json --serve --echo; do
        grep -q -- "$f" <<<"$bench_help" || missing+=("bench $f")
    done
    if ((${#missing[@]})); then
        log "WARNING: spliced lacks ${missing[*]}: spliced configurations and connect tests skipped"
        return
    fi
    HAVE_SPLICED=1
}

build_pool_bench() {
    log "cargo bench --no-run -p pipepool --bench pool"
    (cd "$ROOT" && cargo bench --no-run -p pipepool --bench pool) >"$RUN/build-pool-bench.log" 2>&1 \
        || log "WARNING: the pool benchmark does not build (see $RUN/build-pool-bench.log)"
}

build_goproxy() {
    log "go build bench/goproxy"
    (cd "$BENCH/goproxy" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' CGO_ENABLED=0 \
        go build -o "$GOPROXY_BIN" .) >"$RUN/build-goproxy.log" 2>&1 \
        || die "go build failed (see $RUN/build-goproxy.log)"
}

# ---------------------------------------------------------------- proxies
config_index() { # NAME -> its position in CONFIGS
    local i=0 c
    for c in $CONFIGS; do
        [[ $c == "$1" ]] && { echo $i; return; }
        i=$((i + 1))
    done
    echo 99
}

config_ok() { # NAME: can this configuration run here?
    case $1 in
        direct | go | haproxy-splice-t[0-9]* | haproxy-nosplice-t[0-9]*) return 0 ;;
        spliced-splice-t[0-9]* | spliced-user-t[0-9]*) ((HAVE_SPLICED)) ;;
        *) die "unknown configuration: $1" ;;
    esac
}

haproxy_cfg() { # NAME LISTEN_PORT UPSTREAM_PORT FILE TAG
    local name=$1 lport=$2 uport=$3 file=$4 tag=$5 threads=${1##*-t} splice=1
    [[ $name == haproxy-nosplice-* ]] && splice=0
    # HAProxy refuses to start when 2*maxconn + 2*maxpipes (+ a few) fds do
    # not fit the fd limit (maxpipes defaults to maxconn/4). Bulk and connect
    # runs: maxconn 4000 (maxpipes 1000). Idle runs: room for the idle
    # connections, and maxpipes from what is left (idle connections hold no
    # pipe: HAProxy takes one only while bytes are in flight).
    local maxconn=4000 maxpipes=
    if [[ $tag == idle-* ]]; then
        maxconn=$((IDLE_CONNS + 20))
        maxpipes=$(((NOFILE - 2 * maxconn - 60) / 2))
        ((maxpipes > maxconn / 4)) && maxpipes=$((maxconn / 4))
        ((maxpipes < 8)) && maxpipes=8
    fi
    {
        echo "# generated by bench/compare.sh for $name"
        echo "global"
        echo "    nbthread $threads"
        echo "    maxconn $maxconn"
        [[ -n $maxpipes ]] && echo "    maxpipes $maxpipes"
        ((splice)) || echo "    nosplice"
        [[ -n $HAPROXY_PIPESIZE ]] && echo "    tune.pipesize $HAPROXY_PIPESIZE"
        echo "    stats socket $RUN/$name.sock mode 600 level user"
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 5s"
        echo "    timeout client 10m"
        echo "    timeout server 10m"
        if ((splice)); then
            # On loopback splice-auto never splices: force both directions.
            echo "    option splice-request"
            echo "    option splice-response"
        fi
        echo "frontend fe"
        echo "    bind 127.0.0.1:$lport"
        echo "    maxconn $maxconn"
        echo "    default_backend be"
        echo "backend be"
        echo "    server up 127.0.0.1:$uport"
    } >"$file"
}

# start_proxy NAME UPSTREAM_PORT TAG: sets PROXY_PID and PROXY_PORT.
# "direct" has no process: PROXY_PORT is the upstream itself.
start_proxy() {
    local name=$1 uport=$2 tag=$3 idx
    idx=$(config_index "$name")
    PROXY_PORT=$((BASE_PORT + 10 + idx))
    PROXY_PID=
    local logf=$RUN/$name-$tag.log
    case $name in
        direct) PROXY_PORT=$uport; return 0 ;;
        spliced-*)
            local copy=splice threads=${name##*-t}
            [[ $name == spliced-user-* ]] && copy=userspace
            # shellcheck disable=SC2086
            taskset -c "$PROXY_CPU" "$SPLICED" --log-level warn run \
                --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$uport" \
                --copy "$copy" --worker-threads "$threads" --max-conns $((IDLE_CONNS + 1000)) \
                --metrics "127.0.0.1:$((BASE_PORT + 100 + idx))" $SPLICED_ARGS \
                >"$logf" 2>&1 &
            ;;
        haproxy-*)
            haproxy_cfg "$name" "$PROXY_PORT" "$uport" "$RUN/$name-$tag.cfg" "$tag"
            taskset -c "$PROXY_CPU" haproxy -db -f "$RUN/$name-$tag.cfg" >"$logf" 2>&1 &
            ;;
        go)
            taskset -c "$PROXY_CPU" "$GOPROXY_BIN" -listen "127.0.0.1:$PROXY_PORT" \
                -upstream "127.0.0.1:$uport" >"$logf" 2>&1 &
            ;;
    esac
    PROXY_PID=$!
    track "$PROXY_PID"
    if ! wait_listen "$PROXY_PORT" "$PROXY_PID"; then
        log "WARNING: $name did not start (see $logf)"
        kill_pid "$PROXY_PID"
        PROXY_PID=
        return 1
    fi
}

# ---------------------------------------------------------------- records
record() { # JSON object -> raw.jsonl
    printf '%s\n' "$1" >>"$RAW"
}

# ---------------------------------------------------------------- bulk (iperf3)
IPERF_PID=
start_iperf_server() {
    [[ -n $IPERF_PID ]] && kill_pid "$IPERF_PID"
    taskset -c "$LOAD_CPU" iperf3 -s -p "$IPERF_PORT" -B 127.0.0.1 >"$RUN/iperf3-server.log" 2>&1 &
    IPERF_PID=$!
    track "$IPERF_PID"
    wait_listen "$IPERF_PORT" "$IPERF_PID" || die "iperf3 -s did not start"
}

declare -A BULK_FLAGS=([1]="" [4]="-P 4" [R]="-R")
declare -A BULK_NAME=([1]="1 stream" [4]="4 streams" [R]="reverse")

run_bulk() { # REP CONFIG TEST PORT PID
    local rep=$1 name=$2 test=$3 port=$4 pid=$5
    local out=$RUN/iperf-$name-$test-r$rep.json before=null after=null rc
    [[ -n $pid ]] && before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086
    timeout $((TPUT_SECS + 30)) taskset -c "$LOAD_CPU" \
        iperf3 -c 127.0.0.1 -p "$port" -t "$TPUT_SECS" -J ${BULK_FLAGS[$test]} >"$out" 2>"$out.err"
    rc=$?
    [[ -n $pid ]] && after=$(cpu_ticks "$pid")
    [[ -z $before ]] && before=null
    [[ -z $after ]] && after=null
    record "{\"kind\":\"bulk\",\"rep\":$rep,\"config\":\"$name\",\"test\":\"$test\",\"rc\":$rc,\"file\":\"$(basename "$out")\",\"cpu_before\":$before,\"cpu_after\":$after}"
    local summary
    summary=$(python3 "$BENCH/report.py" iperf-summary "$out" "$before" "$after" "$CLK_TCK")
    log "  rep $rep  $name  ${BULK_NAME[$test]}: $summary"
    if ((rc != 0)); then
        # A failed run can leave iperf3 -s waiting on a dead test: restart it.
        start_iperf_server
    fi
}

phase_bulk() { # REP
    local rep=$1 name test
    local -A pid=() port=()
    for name in $CONFIGS; do
        config_ok "$name" || continue
        if start_proxy "$name" "$IPERF_PORT" "bulk-r$rep"; then
            pid[$name]=$PROXY_PID; port[$name]=$PROXY_PORT
        fi
    done
    for test in 1 4 R; do
        for name in $CONFIGS; do
            [[ -n ${port[$name]:-} ]] || continue
            run_bulk "$rep" "$name" "$test" "${port[$name]}" "${pid[$name]}"
        done
    done
    for name in "${!pid[@]}"; do kill_pid "${pid[$name]}"; done
}

# ---------------------------------------------------------------- short connections
ECHO_PID=
phase_connect() { # REP
    local rep=$1 name clients
    if ((!HAVE_SPLICED)); then
        log "  connect: skipped (needs spliced bench)"
        return
    fi
    if [[ -z $ECHO_PID ]]; then
        if [[ $ECHO_SERVER == go ]]; then
            taskset -c "$LOAD_CPU" "$GOPROXY_BIN" -listen "127.0.0.1:$ECHO_PORT" -echo \
                >"$RUN/echo-server.log" 2>&1 &
        else
            taskset -c "$LOAD_CPU" "$SPLICED" --log-level warn bench --serve "127.0.0.1:$ECHO_PORT" --echo \
                >"$RUN/echo-server.log" 2>&1 &
        fi
        ECHO_PID=$!
        track "$ECHO_PID"
        wait_listen "$ECHO_PORT" "$ECHO_PID" || die "spliced bench --serve did not start"
    fi
    local -A pid=() port=()
    for name in $CONFIGS; do
        config_ok "$name" || continue
        if start_proxy "$name" "$ECHO_PORT" "connect-r$rep"; then
            pid[$name]=$PROXY_PID; port[$name]=$PROXY_PORT
        fi
    done
    for clients in $CONN_CLIENTS; do
        for name in $CONFIGS; do
            [[ -n ${port[$name]:-} ]] || continue
            local out=$RUN/connect-$name-c$clients-r$rep.json before=null after=null rc p=${pid[$name]}
            [[ -n $p ]] && before=$(cpu_ticks "$p")
            local lo_before lo_after
            lo_before=$(listen_overflows)
            timeout $((CONN_SECS + 30)) taskset -c "$LOAD_CPU" "$SPLICED" --log-level warn bench \
                --target "127.0.0.1:${port[$name]}" --mode connect --conns "$clients" --size 1024 \
                --duration "$CONN_SECS" --json >"$out" 2>"$out.err"
            rc=$?
            [[ -n $p ]] && after=$(cpu_ticks "$p")
            lo_after=$(listen_overflows)
            [[ -z $before ]] && before=null
            [[ -z $after ]] && after=null
            local lo=$((${lo_after:-0} - ${lo_before:-0}))
            record "{\"kind\":\"connect\",\"rep\":$rep,\"config\":\"$name\",\"clients\":$clients,\"rc\":$rc,\"file\":\"$(basename "$out")\",\"cpu_before\":$before,\"cpu_after\":$after,\"listen_overflows\":$lo}"
            log "  rep $rep  $name  connect x$clients: $(python3 "$BENCH/report.py" connect-summary "$out")$( ((lo)) && echo ", $lo listen-queue overflows (SYNs dropped)")"
        done
    done
    for name in "${!pid[@]}"; do kill_pid "${pid[$name]}"; done
}

# ---------------------------------------------------------------- idle connections
IDLE_SERVER_PID=
proxy_state() { # NAME PID METRICS_PORT -> JSON: RSS, fds, pipes (+ spliced /metrics, HAProxy show info)
    python3 "$BENCH/report.py" proc-state "$1" "$2" "$3" "$RUN/$1.sock"
}

phase_idle() { # REP
    local rep=$1 name
    if [[ -z $IDLE_SERVER_PID ]]; then
        taskset -c "$LOAD_CPU" python3 "$BENCH/idle.py" serve --listen "127.0.0.1:$IDLE_PORT" \
            >"$RUN/idle-server.log" 2>&1 &
        IDLE_SERVER_PID=$!
        track "$IDLE_SERVER_PID"
        wait_listen "$IDLE_PORT" "$IDLE_SERVER_PID" || die "idle.py serve did not start"
    fi
    for name in $CONFIGS; do
        [[ $name == direct ]] && continue
        config_ok "$name" || continue
        start_proxy "$name" "$IDLE_PORT" "idle-r$rep" || continue
        local ppid=$PROXY_PID idx base hold_out=$RUN/idle-$name-r$rep.json
        idx=$(config_index "$name")
        base=$(proxy_state "$name" "$ppid" $((BASE_PORT + 100 + idx)))
        # The holder keeps its connections open until it is killed (bounded: --hold).
        taskset -c "$LOAD_CPU" python3 "$BENCH/idle.py" hold --target "127.0.0.1:$PROXY_PORT" \
            --conns "$IDLE_CONNS" --parallel 500 --timeout 60 --hold 300 </dev/null >"$hold_out" 2>"$hold_out.err" &
        local hpid=$!
        track "$hpid"
        local i
        for ((i = 0; i < 700; i++)); do # <= 70 s
            [[ -s $hold_out ]] && break
            kill -0 "$hpid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 0.5 # let the proxy settle
        local state
        state=$(proxy_state "$name" "$ppid" $((BASE_PORT + 100 + idx)))
        local held
        held=$(head -n1 "$hold_out" 2>/dev/null)
        [[ $held == \{* ]] || held=null
        record "{\"kind\":\"idle\",\"rep\":$rep,\"config\":\"$name\",\"conns\":$IDLE_CONNS,\"hold\":$held,\"baseline\":$base,\"state\":$state}"
        log "  rep $rep  $name  idle: $(python3 "$BENCH/report.py" idle-summary "$held" "$state")"
        # Not a shutdown test: SIGKILL both (a graceful stop with 10k open
        # connections would only wait out spliced's grace period).
        kill_now "$hpid"
        kill_now "$ppid"
    done
}

# ---------------------------------------------------------------- pool alone
phase_pool() {
    log "pool: cargo bench -p pipepool --bench pool -- $POOL_FILTER $CRITERION_ARGS"
    local marker=$RUN/pool.marker
    touch "$marker"
    # shellcheck disable=SC2086
    if (cd "$ROOT" && timeout 600 cargo bench -p pipepool --bench pool -- $POOL_FILTER $CRITERION_ARGS) \
        >"$RUN/pool-rust.log" 2>&1; then
        record "{\"kind\":\"pool-rust\",\"rc\":0,\"log\":\"pool-rust.log\",\"criterion_dir\":\"$ROOT/target/criterion\",\"marker\":\"$marker\"}"
    else
        log "WARNING: cargo bench -p pipepool --bench pool failed (see $RUN/pool-rust.log)"
        record "{\"kind\":\"pool-rust\",\"rc\":1,\"log\":\"pool-rust.log\"}"
    fi
    local goroot
    goroot=$(go env GOROOT)
    if [[ -f $goroot/src/internal/poll/splice_linux_test.go ]] \
        && grep -q 'func BenchmarkSplicePipe' "$goroot/src/internal/poll/splice_linux_test.go"; then
        log "pool: (cd $goroot/src && go test internal/poll -run XXX -bench SplicePipe -benchtime $GO_BENCHTIME -count $REPS)"
        (cd "$goroot/src" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' timeout 600 \
            go test internal/poll -run XXX -bench SplicePipe -benchtime "$GO_BENCHTIME" -count "$REPS") \
            >"$RUN/pool-go.log" 2>&1
        record "{\"kind\":\"pool-go\",\"rc\":$?,\"log\":\"pool-go.log\",\"go\":\"$(go version)\"}"
    else
        log "WARNING: this Go ($(go version)) has no BenchmarkSplicePipe in $goroot/src/internal/poll"
        record "{\"kind\":\"pool-go\",\"rc\":1,\"log\":null}"
    fi
}

# ---------------------------------------------------------------- main
ensure_tools
raise_nofile
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
if ((NCPU < 2)); then
    log "WARNING: 1 CPU: proxy and load share CPU 0"
    PROXY_CPU=0 LOAD_CPU=0
fi
check_ports
for name in $CONFIGS; do
    [[ $name =~ ^(direct|go|(spliced-(splice|user)|haproxy-(splice|nosplice))-t[1-9][0-9]*)$ ]] \
        || die "unknown configuration: $name"
done
[[ $TESTS == *bulk* || $TESTS == *connect* || $TESTS == *idle* ]] && { build_spliced; build_goproxy; }
[[ $TESTS == *pool* ]] && build_pool_bench

log "pinning: proxy under test on CPU $PROXY_CPU (taskset -c $PROXY_CPU); iperf3 client+server, spliced bench client, upstream servers and idle.py on CPU $LOAD_CPU (taskset -c $LOAD_CPU)"
log "reps=$REPS tput=${TPUT_SECS}s connect=${CONN_SECS}s clients=[$CONN_CLIENTS] idle=$IDLE_CONNS conns, fd limit $NOFILE; configs: $CONFIGS"
log "results in $RUN"

cat >"$RUN/meta.json" <<EOF
{"stamp":"$STAMP","command":"$(printf '%q ' "${BASH_SOURCE[0]}" "$@")","env":{"QUICK":"$QUICK","REPS":"$REPS","TPUT_SECS":"$TPUT_SECS","CONN_SECS":"$CONN_SECS","CONN_CLIENTS":"$CONN_CLIENTS","IDLE_CONNS":"$IDLE_CONNS","CONFIGS":"$CONFIGS","TESTS":"$TESTS","HAPROXY_PIPESIZE":"$HAPROXY_PIPESIZE","SPLICED_ARGS":"$SPLICED_ARGS","ECHO_SERVER":"$ECHO_SERVER"},
 "kernel":"$(uname -r)","cpu":"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)","ncpu":$NCPU,"clk_tck":$CLK_TCK,"nofile":$NOFILE,
 "pinning":{"proxy_cpu":$PROXY_CPU,"load_cpu":$LOAD_CPU},
 "versions":{"haproxy":"$(haproxy -v 2>/dev/null | head -n1)","iperf3":"$(iperf3 --version 2>/dev/null | head -n1)","go":"$(go version)","spliced":"$( ((HAVE_SPLICED)) && "$SPLICED" --version 2>/dev/null)","git":"$(cd "$ROOT" && git describe --always --dirty 2>/dev/null)"}}
EOF
: >"$RAW"

for ((rep = 1; rep <= REPS; rep++)); do
    if [[ $TESTS == *bulk* ]]; then
        log "rep $rep/$REPS: bulk (iperf3, ${TPUT_SECS}s each)"
        start_iperf_server
        phase_bulk "$rep"
        kill_pid "$IPERF_PID"; IPERF_PID=
    fi
    if [[ $TESTS == *connect* ]]; then
        log "rep $rep/$REPS: short connections (spliced bench --mode connect, ${CONN_SECS}s each)"
        phase_connect "$rep"
    fi
    if [[ $TESTS == *idle* ]]; then
        log "rep $rep/$REPS: $IDLE_CONNS idle connections"
        phase_idle "$rep"
    fi
done
cleanup
[[ $TESTS == *pool* ]] && phase_pool

log "report"
python3 "$BENCH/report.py" report "$RUN" "$OUT/compare-$STAMP.json" | tee "$RUN/table.txt"
cp "$OUT/compare-$STAMP.json" "$OUT/latest.json"
cp "$RUN/table.txt" "$OUT/latest.txt"
if [[ -f $RUN/plot.dat ]] && grep -qv '^#' "$RUN/plot.dat"; then
    term=pngcairo
    gnuplot -e "set terminal" 2>&1 | grep -q pngcairo || term=png
    if gnuplot -e "datafile='$RUN/plot.dat'; outfile='$OUT/latest.png'; term='$term'; subtitle='$STAMP, median of $REPS'" \
        "$BENCH/plot.gp" 2>"$RUN/gnuplot.log"; then
        cp "$OUT/latest.png" "$OUT/compare-$STAMP.png"
        log "chart: $OUT/latest.png"
    else
        log "WARNING: gnuplot failed (see $RUN/gnuplot.log)"
    fi
fi
log "json: $OUT/compare-$STAMP.json (and $OUT/latest.json); raw runs in $RUN"
log "done in $(($(date +%s) - START_EPOCH)) s"
