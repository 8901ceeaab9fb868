//! A binary of its own: these tests count the fds in `/proc/self/fd`, which
//! any test opening a pipe or a socket alongside would disturb, and `pool`
//! forks. Every test here holds [`util::fd_lock`] for its whole run, so
//! they run one at a time; tests that need neither belong in `tests/it/`.

#[path = "../it/util/mod.rs"]
mod util;

mod pool;
mod reclaim;
mod tokio_cancel;
mod tokio_stress;
