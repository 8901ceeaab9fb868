#!/usr/bin/env bash
# loom models of the pipe pool (crates/pipepool/src/pool/loom_models.rs,
# built only under `--cfg pipepool_loom`): concurrent get/put, refill/spill,
# the bound, a thread exiting with a full cache, the reaper reclaiming from
# thread caches while their threads get, put and exit, dirty puts. Runs by
# hand too; extra arguments go to the test harness (e.g. a model's name).
#
# The `loom` profile (root Cargo.toml): release with debug assertions (the
# pool's invariants are debug_asserts), the test-only dependencies that the
# models never call unoptimized; LOOM_MAX_PREEMPTIONS=2 to keep it to well
# under a minute of model checking on 2 cores, and a separate target dir so
# the cfg does not invalidate the normal build. The cfg is namespaced (`pipepool_loom`, like crossbeam's
# `crossbeam_loom`): a downstream crate's own `--cfg loom` never swaps our
# pipe for the mock.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg pipepool_loom ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"
# One model at a time: pool ids are process-wide, and a model that needs a
# pool past the inline thread-cache slots counts on no other model holding ids.
cargo test -p pipepool --lib --profile loom -- pool::loom_models --test-threads=1 "$@"
