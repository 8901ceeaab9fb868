#!/usr/bin/env bash
# bench/compare.sh: spliced against HAProxy, nginx, Go, the Rust relays a
# user would otherwise pick (realm_io, tokio copy_bidirectional) and no proxy
# at all, on loopback, in one run. Every figure is given as min / median /
# max over the repetitions, every ratio with the range of its per-rep
# ratios, and a verdict only the data supports. See bench/README.md.
#
#   bench/compare.sh                 # full run: REPS=5 interleaved, about 18 minutes on 2 cores, plus the builds
#   QUICK=1 bench/compare.sh         # smoke test: 2 reps, short runs, few rows of each test
#   TESTS=syscalls bench/compare.sh  # only the exact system-call counts (about 1 minute)
#   TESTS=pool bench/compare.sh      # only the pool against Go's (about 2 minutes)
#
# Environment (all optional):
#   REPS=5            repetitions; configurations are interleaved A B C .. A B C ..
#   QUICK=0|1         2 reps, 1 s runs, 1,000 idle connections, short pool benches
#   CONFIGS="..."     which configurations (bench/proxies.toml), in this order
#   TESTS="bulk connect keepalive idle syscalls pool"   which measurements
#   TPUT_SECS=2       seconds per iperf3 run
#   CONN_SECS=2       seconds per `spliced bench --mode connect` run
#   CONN_CLIENTS="16" concurrent clients of the connect test (e.g. "16 256")
#   KA_SECS=2 KA_CONNS=16   keep-alive test: seconds, connections (1 KiB request/response)
#   IDLE_CONNS=10000  idle connections held through each proxy (lowered to fit
#                     the fd hard limit if it cannot be raised)
#   IDLE_REPS=1       repetitions of the idle test (its figures are counts)
#   SYSCALL_SHORT=200 SYSCALL_KA=500   connections / requests per strace session
#   PROXY_CPU=0 LOAD_CPU=1   taskset CPUs: proxy / iperf3, load and upstreams
#   BASE_PORT=21300   loopback ports BASE_PORT..BASE_PORT+199 are used
#   HAPROXY_PIPESIZE  tune.pipesize for HAProxy (default: kernel default, 64 KiB)
#   SPLICED_ARGS      extra flags for every `spliced run`
#   POOL_FILTER=get_put   criterion filter for the pool benchmarks
#   SPLICED_BIN       use this spliced binary instead of building target/release/spliced
#   ECHO_SERVER=spliced|go   upstream of the connect/keepalive/syscalls tests:
#                     `spliced bench --serve --echo` (default) or `goproxy -echo`
#   OUT=bench/out     where results go
#   NO_INSTALL=1      never apt-get; fail if a tool is missing
#   ESTIMATE_ONLY=1   build, print the estimated duration, stop
#
# Configurations: bench/proxies.toml, one entry each (`python3 bench/proxies.py
# list` prints them): direct (no proxy), spliced-splice-tN, spliced-sendproxy-tN,
# spliced-sni-tN, spliced-fresh-tN, spliced-user-tN, haproxy-splice-tN,
# haproxy-nosplice-tN, nginx, go, realm, tokio-8k, tokio-64k (and, not by
# default, spliced-accesslog-tN and haproxy-tcplog-tN: the access log's cost). Each says what it
# needs, which tests it runs in and how it starts (its command line and its
# config template under bench/proxies/); the functions below loop over that
# table and never match a configuration's name.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=${OUT:-$BENCH/out}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    REPS=${REPS:-2}; TPUT_SECS=${TPUT_SECS:-1}; CONN_SECS=${CONN_SECS:-1}; KA_SECS=${KA_SECS:-1}
    IDLE_CONNS=${IDLE_CONNS:-1000}; SYSCALL_SHORT=${SYSCALL_SHORT:-50}; SYSCALL_KA=${SYSCALL_KA:-100}
    CRITERION_ARGS=${CRITERION_ARGS:---warm-up-time 0.5 --measurement-time 1 --noplot}
    GO_BENCHTIME=${GO_BENCHTIME:-200ms}
else
    REPS=${REPS:-5}; TPUT_SECS=${TPUT_SECS:-2}; CONN_SECS=${CONN_SECS:-2}; KA_SECS=${KA_SECS:-2}
    IDLE_CONNS=${IDLE_CONNS:-10000}; SYSCALL_SHORT=${SYSCALL_SHORT:-200}; SYSCALL_KA=${SYSCALL_KA:-500}
    CRITERION_ARGS=${CRITERION_ARGS:---warm-up-time 1 --measurement-time 3 --noplot}
    GO_BENCHTIME=${GO_BENCHTIME:-1s}
fi
CONFIGS=${CONFIGS:-"direct spliced-splice-t1 spliced-sendproxy-t1 spliced-sni-t1 spliced-fresh-t1 spliced-user-t1 haproxy-splice-t1 haproxy-nosplice-t1 nginx go realm tokio-8k tokio-64k"}
TESTS=${TESTS:-"bulk connect keepalive idle syscalls pool"}
CONN_CLIENTS=${CONN_CLIENTS:-"16"}
KA_CONNS=${KA_CONNS:-16}
IDLE_REPS=${IDLE_REPS:-1}
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
PROXY_ECHO_PORT=$((BASE_PORT + 3)) # spliced bench --serve --echo --accept-proxy (the "proxy-echo" upstream)
# spliced-sni-tN's routes: nothing listens there, so a plain-text client that
# were routed by mistake would fail (counted as errors) instead of passing.
SNI_ROUTES="a.bench.invalid=127.0.0.1:$((BASE_PORT + 4)) *.b.bench.invalid=127.0.0.1:$((BASE_PORT + 5))"
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
apt_install() { # PACKAGE...: apt-get update (once), then install; logs to $RUN/apt.log
    [[ $NO_INSTALL == 1 ]] && return 1
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    if [[ -z ${APT_UPDATED:-} ]]; then
        log "apt-get update"
        "${sudo[@]}" apt-get update -q >>"$RUN/apt.log" 2>&1 || return 1
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "$@" >>"$RUN/apt.log" 2>&1
}

NGINX_STREAM_MODULE=
declare -A PKG_MISSING=()
ensure_tools() {
    command -v python3 >/dev/null 2>&1 || apt_install python3 \
        || die "python3 is missing and does not install (see $RUN/apt.log)"
    load_table
    local -A pkg=([iperf3]=iperf3 [go]=golang-go [gnuplot]=gnuplot-nox
        [taskset]=util-linux [ss]=iproute2 [curl]=curl [getconf]=libc-bin [strace]=strace)
    local missing=() t name
    for t in "${!pkg[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("${pkg[$t]}"); done
    if ((${#missing[@]})); then
        [[ $NO_INSTALL == 1 ]] && die "missing: ${missing[*]} (NO_INSTALL=1)"
        apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed (see $RUN/apt.log)"
    fi
    # Each configuration's own program: its packages when it is missing. An
    # optional one that does not install only loses its rows.
    for name in $CONFIGS; do
        t=${P_COMMAND[$name]}
        [[ $t == - ]] || command -v "$t" >/dev/null 2>&1 && continue
        [[ -n ${PKG_MISSING[$name]:-} ]] && continue
        # shellcheck disable=SC2086
        apt_install ${P_PKGS[$name]} && continue
        ((P_OPTIONAL[$name])) \
            || die "$name needs $t: apt-get install ${P_PKGS[$name]} failed (see $RUN/apt.log; NO_INSTALL=$NO_INSTALL)"
        log "WARNING: $name needs $t (${P_PKGS[$name]}), which does not install (see $RUN/apt.log): its rows are skipped"
        PKG_MISSING[$name]=1
    done
    NGINX_STREAM_MODULE=$(nginx_module) || NGINX_STREAM_MODULE=
}

nginx_module() { # the stream module: built in (prints "builtin") or a dynamic .so path
    command -v nginx >/dev/null 2>&1 || return 1
    if nginx -V 2>&1 | grep -q -- '--with-stream\( \|$\)'; then echo builtin; return 0; fi
    local f
    for f in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
        [[ -f $f ]] && { echo "$f"; return 0; }
    done
    return 1
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
    for p in $IPERF_PORT $ECHO_PORT $IDLE_PORT $PROXY_ECHO_PORT; do port_listening "$p" && busy+=("$p"); done
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

ticks() { # PID -> "utime+stime utime" (all threads) in clock ticks, utime being
    # the proxy's own code; "null null" without a PID or once the process is gone
    local rest
    if [[ -z $1 ]] || ! rest=$(<"/proc/$1/stat"); then
        echo "null null"
        return
    fi 2>/dev/null
    rest=${rest##*) }          # drop "pid (comm) ": field 3 (state) is now $1
    awk '{print $12 + $13, $12}' <<<"$rest"
}

# ---------------------------------------------------------------- builds
SPLICED=${SPLICED_BIN:-$ROOT/target/release/spliced}
GOPROXY_BIN=$OUT/bin/goproxy
HAVE_SPLICED=0
HAVE_FEATURES=0

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
    if grep -q -- --send-proxy <<<"$run_help" && grep -q -- --route <<<"$run_help" \
        && grep -q -- --accept-proxy <<<"$bench_help"; then
        HAVE_FEATURES=1
    else
        log "WARNING: spliced lacks run --send-proxy, run --route or bench --accept-proxy: sendproxy and sni rows skipped"
    fi
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

RELAYS_BIN=$ROOT/target/bench-relays/release/relays
HAVE_RELAYS=0
build_relays() { # bench/relays: its own crate outside the workspace (realm_io, tokio)
    log "cargo build --release --manifest-path bench/relays/Cargo.toml (target/bench-relays)"
    if (cd "$BENCH/relays" && CARGO_TARGET_DIR=$ROOT/target/bench-relays cargo build --release) \
        >"$RUN/build-relays.log" 2>&1; then
        HAVE_RELAYS=1
    else
        log "WARNING: bench/relays does not build (see $RUN/build-relays.log): realm and tokio rows skipped"
    fi
}

# ---------------------------------------------------------------- proxies
# The table (bench/proxies.toml through bench/proxies.py), one field per
# array, keyed by configuration name.
declare -A P_THREADS=() P_TESTS=() P_NEEDS=() P_PKGS=() P_OPTIONAL=() P_UPSTREAM=() P_PROCESS=() P_COMMAND=() P_ABOUT=()
load_table() {
    local table name threads tests needs pkgs optional upstream process command about
    # shellcheck disable=SC2086
    table=$(python3 "$BENCH/proxies.py" table $CONFIGS) \
        || die "CONFIGS names a configuration bench/proxies.toml does not have (python3 bench/proxies.py list)"
    while IFS=$'\t' read -r name threads tests needs pkgs optional upstream process command about; do
        P_THREADS[$name]=$threads P_TESTS[$name]=$tests P_NEEDS[$name]=$needs P_PKGS[$name]=$pkgs
        P_OPTIONAL[$name]=$optional P_UPSTREAM[$name]=$upstream P_PROCESS[$name]=$process
        P_COMMAND[$name]=$command P_ABOUT[$name]=$about
    done <<<"$table"
}

config_index() { # NAME -> its position in CONFIGS
    local i=0 c
    for c in $CONFIGS; do
        [[ $c == "$1" ]] && { echo $i; return; }
        i=$((i + 1))
    done
    echo 99
}

need_ok() { # NEED (a word of a configuration's "needs"): present here?
    case $1 in
        -) return 0 ;;
        spliced) ((HAVE_SPLICED)) ;;
        spliced-features) ((HAVE_SPLICED && HAVE_FEATURES)) ;;
        relays) ((HAVE_RELAYS)) ;;
        nginx-stream) [[ -n $NGINX_STREAM_MODULE ]] ;;
        *) die "bench/proxies.toml: unknown need: $1" ;;
    esac
}

config_needs() { # NEED: does some configuration of CONFIGS need it?
    local name
    for name in $CONFIGS; do [[ " ${P_NEEDS[$name]} " == *" $1 "* ]] && return 0; done
    return 1
}

config_ok() { # NAME: can this configuration run here?
    local need
    [[ -z ${PKG_MISSING[$1]:-} ]] || return 1
    for need in ${P_NEEDS[$1]}; do need_ok "$need" || return 1; done
}

# Rows that run in some tests only (the feature rows act once per
# connection: connect and syscalls; a row without a process has nothing to
# hold idle connections in or to strace).
config_runs() { # NAME TEST: config_ok, and the row belongs in TEST
    config_ok "$1" && [[ " ${P_TESTS[$1]} " == *" $2 "* ]]
}

# The values of the placeholders of bench/proxies.toml and its templates.
template_vars() { # UPSTREAM_PORT TAG METRICS_PORT -> KEY=VALUE lines
    local uport=$1 tag=$2 mport=$3
    # HAProxy refuses to start when 2*maxconn + 2*maxpipes (+ a few) fds do
    # not fit the fd limit. Bulk and connect runs: maxconn 4000, maxpipes
    # 1000 (HAProxy's own default, maxconn/4). Idle runs: room for the idle
    # connections, and maxpipes from what is left (idle connections hold no
    # pipe: HAProxy takes one only while bytes are in flight).
    local maxconn=4000 maxpipes=1000 nginx_conns=4000
    if [[ $tag == idle-* ]]; then
        maxconn=$((IDLE_CONNS + 20))
        maxpipes=$(((NOFILE - 2 * maxconn - 60) / 2))
        ((maxpipes > maxconn / 4)) && maxpipes=$((maxconn / 4))
        ((maxpipes < 8)) && maxpipes=8
        nginx_conns=$((IDLE_CONNS + 100))
    fi
    local pipesize="# tune.pipesize: the kernel's default (HAPROXY_PIPESIZE unset)"
    [[ -n $HAPROXY_PIPESIZE ]] && pipesize="tune.pipesize $HAPROXY_PIPESIZE"
    local module="# the stream module is built in"
    [[ $NGINX_STREAM_MODULE == builtin ]] || module="load_module $NGINX_STREAM_MODULE;"
    local routes=() r
    read -ra routes <<<"$SNI_ROUTES" # (no glob expansion of the "*.")
    printf '%s\n' "TAG=$tag" "RUN=$RUN" "PORT=$PROXY_PORT" "UPSTREAM_PORT=$uport" "METRICS_PORT=$mport" \
        "SPLICED=$SPLICED" "GOPROXY=$GOPROXY_BIN" "RELAYS=$RELAYS_BIN" \
        "MAX_CONNS=$((IDLE_CONNS + 1000))" "NOFILE=$NOFILE" "SPLICED_ARGS=$SPLICED_ARGS" \
        "SNI_ROUTE_FLAGS=$(for r in "${routes[@]}"; do printf -- '--route %s ' "$r"; done)" \
        "HAPROXY_MAXCONN=$maxconn" "HAPROXY_MAXPIPES=$maxpipes" "HAPROXY_PIPESIZE_LINE=$pipesize" \
        "NGINX_CONNECTIONS=$((2 * nginx_conns + 64))" "NGINX_MODULE_LINE=$module"
}

# start_proxy NAME UPSTREAM_PORT TAG: sets PROXY_PID and PROXY_PORT.
# A configuration without a process (direct): PROXY_PORT is the upstream itself.
start_proxy() {
    local name=$1 uport=$2 tag=$3 idx
    idx=$(config_index "$name")
    PROXY_PORT=$((BASE_PORT + 10 + idx))
    PROXY_PID=
    if ((!P_PROCESS[$name])); then
        PROXY_PORT=$uport
        return 0
    fi
    # The proxy-echo upstream reads the PROXY header first.
    [[ ${P_UPSTREAM[$name]} == proxy-echo ]] && uport=$PROXY_ECHO_PORT
    local logf=$RUN/$name-$tag.log argvf=$RUN/$name-$tag.argv vars=() argv=()
    readarray -t vars < <(template_vars "$uport" "$tag" $((BASE_PORT + 100 + idx)))
    if ! python3 "$BENCH/proxies.py" start "$name" "$RUN/$name-$tag.cfg" "${vars[@]}" >"$argvf" 2>"$logf"; then
        log "WARNING: $name: bench/proxies.toml gives no command line (see $logf)"
        return 1
    fi
    readarray -d '' argv <"$argvf"
    taskset -c "$PROXY_CPU" "${argv[@]}" >"$logf" 2>&1 &
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
    local out=$RUN/iperf-$name-$test-r$rep.json before after rc
    read -r before _ < <(ticks "$pid")
    # shellcheck disable=SC2086
    timeout $((TPUT_SECS + 30)) taskset -c "$LOAD_CPU" \
        iperf3 -c 127.0.0.1 -p "$port" -t "$TPUT_SECS" -J ${BULK_FLAGS[$test]} >"$out" 2>"$out.err"
    rc=$?
    read -r after _ < <(ticks "$pid")
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
        config_runs "$name" bulk || continue
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
ensure_echo() { # the echo upstream (echoes until EOF, then closes) on LOAD_CPU
    [[ -n $ECHO_PID ]] && return 0
    if [[ $ECHO_SERVER == go ]]; then
        taskset -c "$LOAD_CPU" "$GOPROXY_BIN" -listen "127.0.0.1:$ECHO_PORT" -echo \
            >"$RUN/echo-server.log" 2>&1 &
    else
        taskset -c "$LOAD_CPU" "$SPLICED" --log-level warn bench --serve "127.0.0.1:$ECHO_PORT" --echo \
            >"$RUN/echo-server.log" 2>&1 &
    fi
    ECHO_PID=$!
    track "$ECHO_PID"
    wait_listen "$ECHO_PORT" "$ECHO_PID" || die "the echo upstream ($ECHO_SERVER) did not start"
    ensure_proxy_echo
}

PROXY_ECHO_PID=
ensure_proxy_echo() { # the "proxy-echo" upstream: reads the PROXY header, then echoes
    [[ -n $PROXY_ECHO_PID ]] && return 0
    local name need=0
    for name in $CONFIGS; do
        [[ ${P_UPSTREAM[$name]} == proxy-echo ]] && config_ok "$name" && need=1
    done
    ((need)) || return 0
    taskset -c "$LOAD_CPU" "$SPLICED" --log-level warn bench --serve "127.0.0.1:$PROXY_ECHO_PORT" --echo \
        --accept-proxy >"$RUN/proxy-echo-server.log" 2>&1 &
    PROXY_ECHO_PID=$!
    track "$PROXY_ECHO_PID"
    wait_listen "$PROXY_ECHO_PORT" "$PROXY_ECHO_PID" \
        || die "the accept-proxy echo upstream (spliced bench --serve --echo --accept-proxy) did not start"
}

phase_connect() { # REP
    local rep=$1 name clients
    if ((!HAVE_SPLICED)); then
        log "  connect: skipped (needs spliced bench)"
        return
    fi
    ensure_echo
    local -A pid=() port=()
    for name in $CONFIGS; do
        config_runs "$name" connect || continue
        if start_proxy "$name" "$ECHO_PORT" "connect-r$rep"; then
            pid[$name]=$PROXY_PID; port[$name]=$PROXY_PORT
        fi
    done
    for clients in $CONN_CLIENTS; do
        for name in $CONFIGS; do
            [[ -n ${port[$name]:-} ]] || continue
            local out=$RUN/connect-$name-c$clients-r$rep.json before after ubefore uafter rc p=${pid[$name]}
            read -r before ubefore < <(ticks "$p")
            local lo_before lo_after
            lo_before=$(listen_overflows)
            timeout $((CONN_SECS + 30)) taskset -c "$LOAD_CPU" "$SPLICED" --log-level warn bench \
                --target "127.0.0.1:${port[$name]}" --mode connect --conns "$clients" --size 1024 \
                --duration "$CONN_SECS" --json >"$out" 2>"$out.err"
            rc=$?
            read -r after uafter < <(ticks "$p")
            lo_after=$(listen_overflows)
            local lo=$((${lo_after:-0} - ${lo_before:-0}))
            record "{\"kind\":\"connect\",\"rep\":$rep,\"config\":\"$name\",\"clients\":$clients,\"rc\":$rc,\"file\":\"$(basename "$out")\",\"cpu_before\":$before,\"cpu_after\":$after,\"user_before\":$ubefore,\"user_after\":$uafter,\"listen_overflows\":$lo}"
            log "  rep $rep  $name  connect x$clients: $(python3 "$BENCH/report.py" connect-summary "$out")$( ((lo)) && echo ", $lo listen-queue overflows (SYNs dropped)")"
        done
    done
    for name in "${!pid[@]}"; do kill_pid "${pid[$name]}"; done
}

# ---------------------------------------------------------------- keep-alive requests
# KA_CONNS connections, each sending 1 KiB and reading the 1 KiB echo over
# and over for KA_SECS (bench/relays --mode kaload on LOAD_CPU): proxy CPU
# per request.
phase_keepalive() { # REP
    local rep=$1 name
    if ((!HAVE_RELAYS || !HAVE_SPLICED)); then
        log "  keepalive: skipped (needs bench/relays and spliced bench --serve)"
        return
    fi
    ensure_echo
    local -A pid=() port=()
    for name in $CONFIGS; do
        config_runs "$name" keepalive || continue
        if start_proxy "$name" "$ECHO_PORT" "keepalive-r$rep"; then
            pid[$name]=$PROXY_PID; port[$name]=$PROXY_PORT
        fi
    done
    for name in $CONFIGS; do
        [[ -n ${port[$name]:-} ]] || continue
        local out=$RUN/keepalive-$name-r$rep.json before after ubefore uafter rc p=${pid[$name]}
        read -r before ubefore < <(ticks "$p")
        timeout $((KA_SECS + 30)) taskset -c "$LOAD_CPU" "$RELAYS_BIN" --mode kaload \
            --target "127.0.0.1:${port[$name]}" --conns "$KA_CONNS" --size 1024 --secs "$KA_SECS" \
            >"$out" 2>"$out.err"
        rc=$?
        read -r after uafter < <(ticks "$p")
        record "{\"kind\":\"keepalive\",\"rep\":$rep,\"config\":\"$name\",\"rc\":$rc,\"file\":\"$(basename "$out")\",\"cpu_before\":$before,\"cpu_after\":$after,\"user_before\":$ubefore,\"user_after\":$uafter}"
        log "  rep $rep  $name  keep-alive x$KA_CONNS: $(python3 "$BENCH/report.py" keepalive-summary "$out" "$before" "$after" "$CLK_TCK")"
    done
    for name in "${!pid[@]}"; do kill_pid "${pid[$name]}"; done
}

# ---------------------------------------------------------------- system calls
# Exact counts: strace -f -c -p PID on each proxy (pinned to PROXY_CPU),
# sequential clients on LOAD_CPU (bench/syscalls.py). Run once: the counts
# do not swing like timings.
phase_syscalls() {
    local name
    if ((!HAVE_SPLICED)); then
        log "  syscalls: skipped (needs spliced bench --serve as the echo upstream)"
        return
    fi
    ensure_echo
    for name in $CONFIGS; do
        config_runs "$name" syscalls || continue
        start_proxy "$name" "$ECHO_PORT" "syscalls" || continue
        local out=$RUN/syscalls-$name.json
        # Warm-up (first pipes, first allocations) outside the counted sessions.
        taskset -c "$LOAD_CPU" python3 "$BENCH/syscalls.py" client short --target "127.0.0.1:$PROXY_PORT" --n 20 \
            >/dev/null 2>"$out.err"
        timeout 300 taskset -c "$LOAD_CPU" python3 "$BENCH/syscalls.py" measure --pid "$PROXY_PID" \
            --target "127.0.0.1:$PROXY_PORT" --short "$SYSCALL_SHORT" --keepalive "$SYSCALL_KA" >"$out" 2>>"$out.err"
        local res
        res=$(head -n1 "$out" 2>/dev/null)
        [[ $res == \{* ]] || res="{\"error\":\"no output (see $(basename "$out").err)\"}"
        record "{\"kind\":\"syscalls\",\"config\":\"$name\",\"result\":$res}"
        log "  $name  syscalls: $(python3 "$BENCH/report.py" syscalls-summary "$res")"
        kill_pid "$PROXY_PID"
    done
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
        config_runs "$name" idle || continue
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

# ---------------------------------------------------------------- duration
# Rough duration of the run, from per-step costs measured on the 2-core
# machine BENCHMARKS.md names (run start-up, iperf3 and client start, proxy
# starts; the idle holder opens about 1,500 connections a second).
estimate() {
    local name nclients n_bulk=0 n_connect=0 n_ka=0 n_idle=0 n_sys=0
    for name in $CONFIGS; do
        config_ok "$name" || continue
        config_runs "$name" bulk && n_bulk=$((n_bulk + 1))
        config_runs "$name" connect && n_connect=$((n_connect + 1))
        config_runs "$name" keepalive && n_ka=$((n_ka + 1))
        config_runs "$name" idle && n_idle=$((n_idle + 1))
        config_runs "$name" syscalls && n_sys=$((n_sys + 1))
    done
    nclients=$(wc -w <<<"$CONN_CLIENTS")
    ESTIMATE=$(awk -v r="$REPS" -v nb="$n_bulk" -v ncn="$n_connect" -v nk="$n_ka" -v ni="$n_idle" -v ns="$n_sys" \
        -v t="$TPUT_SECS" -v c="$CONN_SECS" -v nc="$nclients" -v k="$KA_SECS" -v ir="$IDLE_REPS" -v ic="$IDLE_CONNS" \
        -v ss="$SYSCALL_SHORT" -v sk="$SYSCALL_KA" -v q="$QUICK" -v tests="$TESTS" 'BEGIN {
        # nb, ncn, nk, ni, ns: the configurations that run in each test
        e = 0
        if (tests ~ /bulk/)      e += r * (nb * 3 * (t + 0.6) + 2)
        if (tests ~ /connect/)   e += r * (ncn * nc * (c + 0.5) + 1)
        if (tests ~ /keepalive/) e += r * (nk * (k + 0.5) + 1)
        if (tests ~ /idle/)      e += (r < ir ? r : ir) * ni * (ic / 1500 + 2.5)
        if (tests ~ /syscalls/)  e += ns * (3 * ss * 0.006 + 3 * sk * 0.0025 + 3)
        if (tests ~ /pool/)      e += (q == 1 ? 45 : 110)
        printf "%d", e }')
    log "estimated duration: $((ESTIMATE / 60)) min $((ESTIMATE % 60)) s (after the builds)"
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
if [[ $TESTS == *bulk* || $TESTS == *connect* || $TESTS == *keepalive* || $TESTS == *idle* || $TESTS == *syscalls* ]]; then
    build_spliced
    build_goproxy
    # bench/relays: the realm and tokio rows, and the keep-alive load.
    if [[ $TESTS == *keepalive* ]] || config_needs relays; then
        build_relays
    fi
    for name in $CONFIGS; do
        config_ok "$name" || log "WARNING: $name cannot run here (see the warnings above): its rows are skipped"
    done
fi
[[ $TESTS == *pool* ]] && build_pool_bench
estimate
if [[ ${ESTIMATE_ONLY:-0} == 1 ]]; then
    log "ESTIMATE_ONLY=1: stopping before the first test"
    exit 0
fi
log "pinning: proxy under test on CPU $PROXY_CPU (taskset -c $PROXY_CPU); iperf3 client+server, spliced bench client, upstream servers and idle.py on CPU $LOAD_CPU (taskset -c $LOAD_CPU)"
log "reps=$REPS tput=${TPUT_SECS}s connect=${CONN_SECS}s clients=[$CONN_CLIENTS] keepalive=${KA_SECS}s x$KA_CONNS idle=$IDLE_CONNS conns x$IDLE_REPS, fd limit $NOFILE; tests: $TESTS; configs: $CONFIGS"
log "results in $RUN"
for name in $CONFIGS; do
    config_ok "$name" || continue
    log "$name: ${P_ABOUT[$name]}$([[ ${P_TESTS[$name]} == "bulk connect keepalive idle syscalls" ]] || echo "; tests: ${P_TESTS[$name]}")"
done

cat >"$RUN/meta.json" <<EOF
{"stamp":"$STAMP","command":"$(printf '%q ' "${BASH_SOURCE[0]}" "$@")","env":{"QUICK":"$QUICK","REPS":"$REPS","TPUT_SECS":"$TPUT_SECS","CONN_SECS":"$CONN_SECS","CONN_CLIENTS":"$CONN_CLIENTS","KA_SECS":"$KA_SECS","KA_CONNS":"$KA_CONNS","IDLE_CONNS":"$IDLE_CONNS","IDLE_REPS":"$IDLE_REPS","SYSCALL_SHORT":"$SYSCALL_SHORT","SYSCALL_KA":"$SYSCALL_KA","CONFIGS":"$CONFIGS","TESTS":"$TESTS","HAPROXY_PIPESIZE":"$HAPROXY_PIPESIZE","SPLICED_ARGS":"$SPLICED_ARGS","ECHO_SERVER":"$ECHO_SERVER","SNI_ROUTES":"$SNI_ROUTES"},
 "kernel":"$(uname -r)","cpu":"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)","ncpu":$NCPU,"clk_tck":$CLK_TCK,"nofile":$NOFILE,
 "pinning":{"proxy_cpu":$PROXY_CPU,"load_cpu":$LOAD_CPU},
 "versions":{"haproxy":"$(haproxy -v 2>/dev/null | head -n1)","nginx":"$(nginx -v 2>&1 | head -n1)","strace":"$(strace -V 2>/dev/null | head -n1)","realm_io":"$(awk '/^name = "realm_io"/ {getline; print $3}' "$BENCH/relays/Cargo.lock" | tr -d '"')","iperf3":"$(iperf3 --version 2>/dev/null | head -n1)","go":"$(go version)","spliced":"$( ((HAVE_SPLICED)) && "$SPLICED" --version 2>/dev/null)","git":"$(cd "$ROOT" && git describe --always --dirty 2>/dev/null)"}}
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
    if [[ $TESTS == *keepalive* ]]; then
        log "rep $rep/$REPS: keep-alive 1 KiB requests (${KA_SECS}s each, $KA_CONNS connections)"
        phase_keepalive "$rep"
    fi
    if [[ $TESTS == *idle* ]] && ((rep <= IDLE_REPS)); then
        log "rep $rep/$REPS: $IDLE_CONNS idle connections"
        phase_idle "$rep"
    fi
done
if [[ $TESTS == *syscalls* ]]; then
    log "system calls per short connection and per keep-alive request (strace -f -c -p PID)"
    phase_syscalls
fi
cleanup
[[ $TESTS == *pool* ]] && phase_pool

log "report"
python3 "$BENCH/report.py" report "$RUN" "$OUT/compare-$STAMP.json" | tee "$RUN/table.txt"
cp "$OUT/compare-$STAMP.json" "$OUT/latest.json"
cp "$RUN/table.txt" "$OUT/latest.txt"
# The chart's panels all share the rows' axis: gnuplot gives up when the
# bulk columns (2-19) have no value at all (a run without the bulk test).
if [[ -f $RUN/plot.dat ]] && ! awk '!/^#/ { for (i = 2; i <= 19; i++) if ($i != "?") found = 1 } END { exit !found }' "$RUN/plot.dat"; then
    log "chart: skipped (no bulk figures in this run)"
elif [[ -f $RUN/plot.dat ]] && grep -qv '^#' "$RUN/plot.dat"; then
    term=pngcairo
    gnuplot -e "set terminal" 2>&1 | grep -q pngcairo || term=png
    if gnuplot -e "datafile='$RUN/plot.dat'; outfile='$OUT/latest.png'; term='$term'; subtitle='$STAMP, $REPS reps'" \
        "$BENCH/plot.gp" 2>"$RUN/gnuplot.log"; then
        cp "$OUT/latest.png" "$OUT/compare-$STAMP.png"
        log "chart: $OUT/latest.png"
    else
        log "WARNING: gnuplot failed (see $RUN/gnuplot.log)"
    fi
fi
log "json: $OUT/compare-$STAMP.json (and $OUT/latest.json); raw runs in $RUN"
log "done in $(($(date +%s) - START_EPOCH)) s"
