//! [`PipePool`]: pooled pipes with a lock-free per-thread fast path, a bound,
//! and idle reclamation. See [`crate::design`] for the algorithm.
//!
//! Three layers, each calling only the ones below it:
//! - leaves: `config.rs` (settings), `stats.rs` (counters), `error.rs`,
//!   `store.rs` (a pool's idle stack, bound, clock and counters),
//!   `cell.rs` (one thread's cache and the handshake with the reaper);
//! - middle: `registry.rs` (a pool's shared state and the registry of
//!   pools);
//! - top: `handle.rs` (`PipePool` and its guards), `local.rs` (each
//!   thread's table of caches: the fast path), `reaper.rs` (the reaper
//!   thread), `fork.rs` (the fork handlers).
//!
//! This file only declares them and re-exports the public items.

mod cell;
mod config;
mod error;
mod fork;
mod handle;
mod local;
#[cfg(all(test, pipepool_loom))]
mod loom_models;
mod reaper;
mod registry;
mod stats;
mod store;

pub use config::{
    ConfigError, PoolBuilder, PoolConfig, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOCAL_CAP, MAX_PIPE_SIZE,
};
pub use error::GetError;
pub use handle::{OwnedPipe, PipePool, PooledPipe};
pub use stats::PoolStats;
