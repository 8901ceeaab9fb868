#!/usr/bin/env bash
# bench/copy_relay.sh: the criterion benches copy/* (pipepool's synchronous
# copy against std::io::copy) and relay/* (pipepool's async relay against
# tokio's copy_bidirectional), with their spread: REPS interleaved
# repetitions, each case once per rep in a process of its own; every figure
# as median (min-max), every ratio with its per-rep range and a verdict, the
# targets of BENCHMARKS.md sections 2 and 3 met or missed. See bench/README.md.
#
#   bench/copy_relay.sh                      # full run: 5 reps, about 14 minutes on 2 cores (plus the build)
#   SKIP='relay/64/.*/64MiB' bench/copy_relay.sh   # without the 4 GiB rounds: about 6 minutes
#   RELAY_CCS="default cubic" bench/copy_relay.sh  # relay cases also under cubic (RELAY_CC), interleaved
#   BASE=363d1a9 bench/copy_relay.sh         # before/after: the same cases built at BASE, run beside
#   REPS=1 W=0.1 M=0.2 CASES='1MiB' bench/copy_relay.sh   # smoke test
#   CASES='^files/' bench/copy_relay.sh      # the async file cases (files/*): about 5 minutes
#   PIPEPOOL_BENCH_1GIB=1 CASES='^files/.*/1GiB$' M=1 W=0.1 bench/copy_relay.sh   # files, 1 GiB rounds
#
# Environment (all optional):
#   REPS=5          repetitions; within each, every case once (A B C .. A B C ..)
#   W=0.3 M=1       criterion --warm-up-time / --measurement-time, seconds
#                   (10 samples; a case whose iterations are long takes
#                   longer: criterion needs at least 10 of them, e.g. 4 GiB
#                   rounds of relay/64/*/64MiB)
#   CASES=ERE       only the known cases matching this extended regex (default:
#                   copy at 1 MiB and 64 MiB, relay 1/4/64 streams at 1 MiB and
#                   64 MiB; CASES=. is every known case, 64 KiB ones and the
#                   async file cases files/* included;
#                   `bench/copy_relay.py cases` lists them)
#   SKIP=ERE        leave out the cases matching this
#   RELAY_CCS=default   congestion controls of the relay cases: "default" (the
#                   system's), or names for RELAY_CC (e.g. "default cubic")
#   COPY_CPU=0      copy and files cases run under `taskset -c COPY_CPU` (copying
#                   thread, feeder and sink share it, as BENCHMARKS.md section 2 says)
#   RELAY_CPUS=0,1  relay cases run under `taskset -c RELAY_CPUS`; the bench
#                   pins its relay thread to the first, everything else to the
#                   second (one CPU: no pinning)
#   BASE=REV        also build the benches at git revision REV (git archive into
#                   a temporary tree, target dir target/copy-relay-base) and run
#                   each case at REV just before the same case now
#   CASE_TIMEOUT=600   seconds before one bench run is killed
#   OUT=bench/out   where results go
#   NO_INSTALL=1    never apt-get; fail if a tool is missing
#   ESTIMATE_ONLY=1 build, print the estimated duration, stop
#
# Output: the tables on stdout and in OUT/copy-relay-latest.md
# (and copy-relay-<stamp>.md); OUT/copy-relay-latest.json (and
# copy-relay-<stamp>.json): every run's values, min/median/max, ratios,
# verdicts, targets; OUT/copy-relay-run-<stamp>/: each bench run's log,
# criterion's files, raw.jsonl.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
PY=$BENCH/copy_relay.py
OUT=${OUT:-$BENCH/out}
REPS=${REPS:-5}
W=${W:-0.3}
M=${M:-1}
CASES=${CASES:-}
SKIP=${SKIP:-}
RELAY_CCS=${RELAY_CCS:-default}
COPY_CPU=${COPY_CPU:-0}
RELAY_CPUS=${RELAY_CPUS:-0,1}
BASE=${BASE:-}
CASE_TIMEOUT=${CASE_TIMEOUT:-600}
NO_INSTALL=${NO_INSTALL:-0}
ESTIMATE_ONLY=${ESTIMATE_ONLY:-0}

START_EPOCH=$(date +%s)
log() { printf '[copy_relay %4ds] %s\n' "$(($(date +%s) - START_EPOCH))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
CHILD=
TMP=$(mktemp -d)
cleanup() {
    if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
        kill -TERM "$CHILD" 2>/dev/null
        sleep 1
        kill -KILL "$CHILD" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- tools
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v timeout >/dev/null 2>&1 || missing+=(coreutils)
command -v git >/dev/null 2>&1 || [[ -z $BASE ]] || missing+=(git)
if ((${#missing[@]})); then
    [[ $NO_INSTALL == 1 ]] && die "missing: ${missing[*]} (NO_INSTALL=1)"
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    log "installing ${missing[*]} (apt-get update, then apt-get install -y)"
    "${sudo[@]}" apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, not '$REPS'"

# ---------------------------------------------------------------- cases
select_cases() { # the cases to run, from CASES/SKIP, one a line
    if [[ -n $CASES ]]; then python3 "$PY" cases | grep -E -- "$CASES"; else python3 "$PY" cases --default; fi \
        | { if [[ -n $SKIP ]]; then grep -Ev -- "$SKIP"; else cat; fi; }
}
mapfile -t WANTED < <(select_cases)
((${#WANTED[@]})) || die "no case matches CASES='$CASES' SKIP='$SKIP' (bench/copy_relay.py cases lists them)"
read -ra CCS <<<"$RELAY_CCS"
((${#CCS[@]})) || CCS=(default)
BASE_TIMES=none
estimate() { # TIMES CASE...: seconds (TIMES own: the bench ignores W and M)
    python3 "$PY" estimate "$W" "$M" "$REPS" "${#CCS[@]}" "$@"
}

# ---------------------------------------------------------------- build
BENCHES=(--bench copy --bench relay)
printf '%s\n' "${WANTED[@]}" | grep -q '^files/' && BENCHES+=(--bench files)
build() { # MANIFEST TARGET_DIR -> prints "copy PATH", "relay PATH" (and "files PATH")
    CARGO_TARGET_DIR=$2 cargo bench --no-run -q --manifest-path "$1" -p pipepool --features tokio \
        "${BENCHES[@]}" --message-format=json-render-diagnostics \
        | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("reason") == "compiler-artifact" and d.get("executable") and "bench" in d["target"]["kind"]:
        print(d["target"]["name"], d["executable"])'
}
declare -A BIN CRATE
log "cargo bench --no-run -p pipepool --features tokio ${BENCHES[*]}"
while read -r name path; do BIN[now-$name]=$path; done < <(build "$ROOT/Cargo.toml" "${CARGO_TARGET_DIR:-$ROOT/target}")
[[ -n ${BIN[now-copy]:-} && -n ${BIN[now-relay]:-} ]] || die "the build did not give both bench binaries"
CRATE[now]=$ROOT/crates/pipepool
REVS=(now)
BASE_REV=
if [[ -n $BASE ]]; then
    BASE_REV=$(git -C "$ROOT" rev-parse --short "$BASE^{commit}") || die "BASE=$BASE is not a revision"
    log "building the benches at $BASE_REV (git archive into $TMP/base, target/copy-relay-base)"
    mkdir "$TMP/base"
    git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$TMP/base" || die "git archive $BASE_REV failed"
    # A revision from before the files bench: build without it.
    [[ ${#BENCHES[@]} -gt 4 ]] && ! grep -q 'name = "files"' "$TMP/base/crates/pipepool/Cargo.toml" && BENCHES=(--bench copy --bench relay)
    while read -r name path; do BIN[base-$name]=$path; done \
        < <(build "$TMP/base/Cargo.toml" "$ROOT/target/copy-relay-base")
    [[ -n ${BIN[base-copy]:-} && -n ${BIN[base-relay]:-} ]] || die "the build at $BASE_REV did not give both bench binaries"
    CRATE[base]=$TMP/base/crates/pipepool
    # Benches from before this script let their own times win over the
    # command line's (criterion prefers a group's settings).
    BASE_TIMES=own
    grep -q cli_sets "$TMP/base/crates/pipepool/benches/copy.rs" && BASE_TIMES=flags
    [[ $BASE_TIMES == own ]] && log "the benches at $BASE_REV ignore W and M: 0.5 s + 3 s per case (0.1 s + 10 s for 256 MiB rounds and more)"
    REVS=(base now)
fi

# Which cases each binary has (relay/*/pipepool_hold only before 5e07449).
declare -A HAS
for rev in "${REVS[@]}"; do
    for kind in copy relay files; do
        [[ -n ${BIN[$rev-$kind]:-} ]] || continue
        while read -r id _; do HAS[$rev:${id%:}]=1; done \
            < <(cd "${CRATE[$rev]}" && taskset -c "$COPY_CPU" "${BIN[$rev-$kind]}" --bench --list 2>/dev/null | grep ': benchmark$')
    done
done
CASE_LIST=()
for c in "${WANTED[@]}"; do
    for rev in "${REVS[@]}"; do
        if [[ -n ${HAS[$rev:$c]:-} ]]; then CASE_LIST+=("$c"); break; fi
    done
done
((${#CASE_LIST[@]})) || die "none of the selected cases is in the bench binaries"
skipped=$((${#WANTED[@]} - ${#CASE_LIST[@]}))
((skipped)) && log "$skipped selected cases are in no binary (e.g. pipepool_hold, removed in 5e07449): skipped"

secs=0
for rev in "${REVS[@]}"; do
    have=()
    for c in "${CASE_LIST[@]}"; do [[ -n ${HAS[$rev:$c]:-} ]] && have+=("$c"); done
    times=flags
    [[ $rev == base ]] && times=$BASE_TIMES
    ((${#have[@]})) && secs=$((secs + $(estimate "$times" "${have[@]}")))
done
log "estimated duration: $((secs / 60)) min $((secs % 60)) s (${#CASE_LIST[@]} cases x $REPS reps, W=$W s, M=$M s," \
    "revisions: ${REVS[*]}, relay congestion control: ${CCS[*]})"
[[ $ESTIMATE_ONLY == 1 ]] && exit 0

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$OUT/copy-relay-run-$STAMP
RAW=$RUN/raw.jsonl
mkdir -p "$RUN/logs"
: >"$RAW"
log "results: $RUN"

# ---------------------------------------------------------------- runs
run_case() { # REV CASE CC REP
    local rev=$1 case=$2 cc=$3 rep=$4 kind=${2%%/*} home logf since rc pin env_cc=()
    [[ -n ${HAS[$rev:$case]:-} ]] || return 0
    home=$RUN/$rev
    mkdir -p "$home"
    logf=$RUN/logs/r$rep-$rev-${kind}-${case//\//_}$([[ $kind == relay ]] && echo "-$cc").log
    rm -f "$home/$kind-cpu.txt"
    if [[ $kind == relay ]]; then pin=$RELAY_CPUS; else pin=$COPY_CPU; fi
    [[ $kind == relay && $cc != default ]] && env_cc=(RELAY_CC="$cc")
    since=$(date +%s.%N)
    (
        cd "${CRATE[$rev]}" || exit 1
        exec env -u RELAY_CC "${env_cc[@]}" CARGO_TARGET_DIR="$home" CRITERION_HOME="$home/criterion" \
            timeout --kill-after=5 "$CASE_TIMEOUT" taskset -c "$pin" "${BIN[$rev-$kind]}" --bench --noplot \
            --exact "$case" --warm-up-time "$W" --measurement-time "$M"
    ) >"$logf" 2>&1 &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=
    python3 "$PY" collect rep="$rep" rev="$rev" cc="$([[ $kind == relay && $cc != default ]] && echo "$cc")" \
        case="$case" since="$since" criterion_home="$home/criterion" cpu_file="$home/$kind-cpu.txt" \
        exit="$rc" log="$logf" >>"$RAW" || die "could not record $case (see $logf)"
    log "  $rev $case${env_cc:+ ($cc)}: $(tail -n 1 "$RAW" | python3 "$PY" summary)"
}

for rep in $(seq 1 "$REPS"); do
    log "rep $rep/$REPS"
    for case in "${CASE_LIST[@]}"; do
        if [[ $case == relay/* ]]; then ccs=("${CCS[@]}"); else ccs=(default); fi
        for cc in "${ccs[@]}"; do
            for rev in "${REVS[@]}"; do run_case "$rev" "$case" "$cc" "$rep"; done
        done
    done
done

# ---------------------------------------------------------------- report
REV_NOW=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && REV_NOW="$REV_NOW (with uncommitted changes)"
python3 - "$RUN/meta.json" <<PY
import json, os, platform, sys
cpu = "unknown CPU"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
try:
    default_cc = open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip()
except OSError:
    default_cc = "unknown"
json.dump({
    "date": "$(date -u -d "@$START_EPOCH" +%Y-%m-%dT%H:%MZ)", "cpu": cpu, "ncpu": os.cpu_count(),
    "kernel": platform.release(), "rev": "$REV_NOW", "base": "$BASE_REV" or None, "base_times": "$BASE_TIMES",
    "reps": $REPS,
    "w": "$W", "m": "$M", "ccs": "${CCS[*]}".split(), "default_cc": default_cc, "copy_cpu": "$COPY_CPU",
    "relay_cpus": "$RELAY_CPUS", "seconds": $(($(date +%s) - START_EPOCH)), "cases": "${CASE_LIST[*]}".split(),
}, open(sys.argv[1], "w"), indent=1)
PY
python3 "$PY" report "$RAW" "$RUN/meta.json" "$OUT/copy-relay-$STAMP.md" "$OUT/copy-relay-$STAMP.json" \
    || die "report failed (raw values: $RAW)"
cp "$OUT/copy-relay-$STAMP.md" "$OUT/copy-relay-latest.md"
cp "$OUT/copy-relay-$STAMP.json" "$OUT/copy-relay-latest.json"
log "done in $(($(date +%s) - START_EPOCH)) s: $OUT/copy-relay-latest.md, $OUT/copy-relay-latest.json, $RUN"
