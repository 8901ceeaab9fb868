#!/usr/bin/env bash
# loom models of the pipe pool (crates/pipepool/tests/loom.rs): concurrent
# get/put, refill/spill, the bound, a thread exiting with a full cache,
# reclamation racing with get/put, dirty puts. Runs by hand too; extra
# arguments go to the test harness (e.g. a model's name).
#
# Release with debug assertions (the pool's invariants are debug_asserts),
# LOOM_MAX_PREEMPTIONS=2 to keep it to well under a minute of model checking
# on 2 cores, and a separate target dir so `--cfg loom` does not invalidate
# the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"
cargo test -p pipepool --test loom --release -- "$@"
