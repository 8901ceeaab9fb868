//! pipepool's integration tests, one module per area, in one binary (one
//! link, one process). Tests that need a process of their own live in
//! other binaries, each saying why: `fds/` (they count `/proc/self/fd`,
//! and `pool` forks), `tokio_idle.rs` (raises `RLIMIT_NOFILE`, counts fds),
//! `tokio_idle_buffers.rs` (a counting global allocator), `unprivileged.rs`
//! (the child drops to `nobody`).
//!
//! The tests here run in parallel with each other: none counts this
//! process's fds or needs the global pool to itself. A new test that does
//! belongs in `fds/`.

#[macro_use]
mod util;

mod copy;
mod pipe;
mod to_file;
mod tokio_buffer_reuse;
mod tokio_counts;
mod tokio_fallback;
mod tokio_fd;
mod tokio_last_shutdown;
mod tokio_parity;
mod tokio_prefix;
mod tokio_progress;
mod tokio_sendfile;
mod tokio_urgent;
mod urgent;
