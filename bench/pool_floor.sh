#!/usr/bin/env bash
# The pool's fast path at the floor: pipepool get + put,
# called from a separate crate as every user builds it (crates/pool-floor,
# no LTO), beside a bare thread-local Vec of pipes (pop + push) and Go's
# own pool benchmark, on the same machine in the same run.
#
#   bench/pool_floor.sh              # 5 interleaved reps
#   REPS=7 ITERS=5000000 bench/pool_floor.sh
#   BASE=363d1a9 bench/pool_floor.sh # also the same bench against pipepool
#                                    # at that revision, interleaved: before/after
#
# Each rep runs, one after the other:
#   taskset -c $CPU  target/release/pool-floor $ITERS      (1 thread cases)
#   taskset -c $CPUS target/release/pool-floor $ITERS      (2-thread cases)
#   taskset -c $CPU  go test internal/poll -run '^$' -bench 'SplicePipe$' -cpu 1
#   taskset -c $CPUS go test internal/poll -run '^$' -bench SplicePipePoolParallel -cpu 2
# and prints min / median / max of every case and the ratios of the
# medians: pipepool / bare (target <= 1.5), Go / pipepool (target >= 4).
#
# Env: REPS (5), ITERS (2000000 per batch), CPU (0), CPUS (0,1),
#      GO_BENCHTIME (1s), NO_INSTALL=1 (never apt-get), BASE (a git
#      revision: its crates/pool-floor (today's, if it has none) is built
#      against that revision's pipepool in a temporary copy (git archive)
#      and run beside, cases prefixed `base_`).
# Needs: cargo, go (golang-go, installed with apt-get if missing), taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
ITERS=${ITERS:-2000000}
CPU=${CPU:-0}
CPUS=${CPUS:-0,1}
GO_BENCHTIME=${GO_BENCHTIME:-1s}
NO_INSTALL=${NO_INSTALL:-0}

log() { echo "pool_floor: $*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]})); then
    [[ $NO_INSTALL == 1 ]] && die "missing: ${missing[*]} (NO_INSTALL=1)"
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    log "installing ${missing[*]} (apt-get update, then apt-get install -y)"
    "${sudo[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
fi

GOROOT_SRC="$(go env GOROOT)/src"
[[ -f $GOROOT_SRC/internal/poll/splice_linux_test.go ]] \
    && grep -q 'func BenchmarkSplicePipe' "$GOROOT_SRC/internal/poll/splice_linux_test.go" \
    || die "this Go ($(go version)) has no BenchmarkSplicePipe in $GOROOT_SRC/internal/poll"

log "cargo build --release -p pool-floor"
cargo build --release -q -p pool-floor
BIN=target/release/pool-floor
OUT=$(mktemp -d)
BASE_BIN=
trap 'rm -rf "$OUT"' EXIT
if [[ -n ${BASE:-} ]]; then
    log "building pool-floor against pipepool at $BASE (git archive into $OUT/base)"
    mkdir "$OUT/base"
    git archive "$BASE" | tar -x -C "$OUT/base"
    # The revision's own pool-floor if it has one (it is written against
    # that revision's API); else today's, added to its workspace.
    if [[ ! -d $OUT/base/crates/pool-floor ]]; then
        cp -r crates/pool-floor "$OUT/base/crates/"
        sed -i 's|^members = \[|members = ["crates/pool-floor", |' "$OUT/base/Cargo.toml"
    fi
    CARGO_TARGET_DIR="$PWD/target/pool-floor-base" cargo build --release -q \
        --manifest-path "$OUT/base/Cargo.toml" -p pool-floor
    BASE_BIN=target/pool-floor-base/release/pool-floor
fi

go_bench() { # cpus cpu-count pattern
    (cd "$GOROOT_SRC" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' \
        taskset -c "$1" go test internal/poll -run '^$' -bench "$3" -benchtime "$GO_BENCHTIME" -cpu "$2" -count 1)
}

for rep in $(seq 1 "$REPS"); do
    log "rep $rep/$REPS"
    taskset -c "$CPU" "$BIN" "$ITERS" | grep -v parallel2 >>"$OUT/rust" || die "pool-floor failed"
    taskset -c "$CPUS" "$BIN" "$ITERS" | grep parallel2 >>"$OUT/rust" || die "pool-floor failed"
    if [[ -n $BASE_BIN ]]; then
        taskset -c "$CPU" "$BASE_BIN" "$ITERS" | grep -v parallel2 | sed 's/^/base_/' >>"$OUT/rust"
        taskset -c "$CPUS" "$BASE_BIN" "$ITERS" | grep parallel2 | sed 's/^/base_/' >>"$OUT/rust"
    fi
    go_bench "$CPU" 1 'SplicePipe$' >>"$OUT/go.log" 2>&1 || die "go test failed (see $OUT/go.log)"
    go_bench "$CPUS" 2 'SplicePipePoolParallel' >>"$OUT/go.log" 2>&1 || die "go test failed"
done

mkdir -p bench/out
cp "$OUT/rust" bench/out/pool-floor-rust.raw
cp "$OUT/go.log" bench/out/pool-floor-go.raw
log "per-rep values: bench/out/pool-floor-rust.raw, bench/out/pool-floor-go.raw"
python3 - "$OUT/rust" "$OUT/go.log" <<'PY'
import re, statistics, sys
cases = {}
for line in open(sys.argv[1]):
    name, ns = line.split()
    cases.setdefault(name, []).append(float(ns))
for line in open(sys.argv[2]):
    m = re.match(r"Benchmark(SplicePipe/SplicePipeWithPool|SplicePipePoolParallel)(-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
    if m:
        name = {"SplicePipe/SplicePipeWithPool": "go_SplicePipeWithPool",
                "SplicePipePoolParallel": "go_SplicePipePoolParallel_cpu2"}[m.group(1)]
        cases.setdefault(name, []).append(float(m.group(3)))
print(f"{'case':34} {'n':>2} {'min':>8} {'median':>8} {'max':>8}  (ns per get+put)")
paired = {n: cases.pop(n) for n in [n for n in cases if "ratio_" in n]}
med = {}
for name in sorted(cases):
    v = cases[name]
    med[name] = statistics.median(v)
    print(f"{name:34} {len(v):2} {min(v):8.2f} {med[name]:8.2f} {max(v):8.2f}")
def ratio(label, a, b, target):
    """Ratio of the medians, and the range of the per-rep ratios (rep i of
    `a` against rep i of `b`, run one right after the other)."""
    if a in med and b in med:
        per_rep = [x / y for x, y in zip(cases[a], cases[b])]
        print(f"{label:52} {med[a] / med[b]:6.2f}x  per rep {min(per_rep):.2f}-{max(per_rep):.2f}"
              f"  (target {target})")
print()
print("pipepool / bare, paired: each process alternates batches of the two; the median of its")
print("per-batch ratios, then min / median / max of those over the reps (the target's figure):")
for name in sorted(paired):
    v = paired[name]
    target = "" if name.startswith("base_") else "  (target <= 1.5)"
    print(f"  {name:42} {min(v):5.2f} {statistics.median(v):5.2f} {max(v):5.2f}{target}")
print()
print("Ratios of the medians above (each per-rep pair run one right after the other):")
ratio("pipepool / bare, 1 thread", "pipepool_get_put", "bare_vec_pop_push", "<= 1.5")
ratio("pipepool / bare, 2 threads", "pipepool_get_put_parallel2", "bare_vec_pop_push_parallel2", "<= 1.5")
ratio("Go SplicePipeWithPool / pipepool, 1 thread", "go_SplicePipeWithPool", "pipepool_get_put", ">= 4")
ratio("Go SplicePipePoolParallel / pipepool, 2 threads", "go_SplicePipePoolParallel_cpu2", "pipepool_get_put_parallel2", ">= 4")
ratio("pipepool now / at BASE, 1 thread", "pipepool_get_put", "base_pipepool_get_put", "~1, noise")
ratio("pipepool now / at BASE, 2 threads", "pipepool_get_put_parallel2", "base_pipepool_get_put_parallel2", "~1, noise")
ratio("bare now / bare at BASE (code layout alone), 1 thread", "bare_vec_pop_push", "base_bare_vec_pop_push", "~1")
PY
