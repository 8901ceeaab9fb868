//! The pool's counters, and [`PoolStats`], the snapshot users read.
//!
//! Slow-path events (a pipe created, closed, taken from the shared pool)
//! bump shared atomics. The one fast-path event, a get served by the thread
//! cache, is counted in a per-thread [`LocalStats`] that only its thread
//! writes (a load and a store, no read-modify-write), and summed on read.

use crate::sync::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// A snapshot of a pool's statistics, from
/// [`PipePool::stats`](crate::PipePool::stats).
///
/// Gauges (`live`, `idle`, `in_use`, `capacity_bytes`, `undersized`) are
/// read one after the other while other threads work, so they can be off
/// by the operations that ran during the read; counters only ever grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Pipes alive: `created` minus all `closed_*`.
    pub live: u64,
    /// Pipes idle in the pool (the shared pool plus every thread cache).
    pub idle: u64,
    /// Pipes handed out and not yet given back: `live - idle`.
    pub in_use: u64,
    /// Pipes created since the pool was built.
    pub created: u64,
    /// Pipes closed because they sat idle for `idle_timeout`.
    pub closed_idle: u64,
    /// Pipes closed because they were given back with bytes inside.
    pub closed_dirty: u64,
    /// Pipes closed because the pool already held `max_idle` idle pipes.
    pub closed_overflow: u64,
    /// Pipes closed because the pool was dropped, trimmed or flushed.
    pub closed_shutdown: u64,
    /// Gets served by the calling thread's own cache (no lock, no syscall).
    pub gets_local: u64,
    /// Gets served from the shared pool.
    pub gets_shared: u64,
    /// Gets that created a new pipe.
    pub gets_new: u64,
    /// Gets refused because `max_pipes` pipes were alive.
    pub gets_refused: u64,
    /// Gets that failed because `pipe2` failed (`EMFILE`, `ENFILE`, `ENOMEM`).
    pub gets_failed: u64,
    /// The sum of the real capacities of the live pipes, in bytes.
    pub capacity_bytes: u64,
    /// Live pipes that did not get the requested size (`F_SETPIPE_SZ`
    /// refused: above `pipe-max-size`, or past `pipe-user-pages-soft`).
    pub undersized: u64,
    /// Pipes, since the pool was built, whose resize was refused.
    pub resize_failures: u64,
    /// Whether the reaper reclaims idle pipes from every thread's cache
    /// (`membarrier(2)` works in this process). When `false` (Linux before
    /// 4.14, or a seccomp filter refusing the call), idle pipes in a
    /// thread's cache are moved to the shared pool only when that thread
    /// next gives a pipe back, or exits, or calls
    /// [`flush_local`](crate::PipePool::flush_local): up to
    /// [`local_cap`](crate::PoolConfig::local_cap) pipes per quiet thread
    /// may then outlive `idle_timeout`.
    pub thread_cache_reclaim: bool,
}

/// Shared counters of one pool.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) created: AtomicU64,
    pub(super) closed_idle: AtomicU64,
    pub(super) closed_dirty: AtomicU64,
    pub(super) closed_overflow: AtomicU64,
    pub(super) closed_shutdown: AtomicU64,
    pub(super) gets_shared: AtomicU64,
    pub(super) gets_new: AtomicU64,
    pub(super) gets_refused: AtomicU64,
    pub(super) gets_failed: AtomicU64,
    pub(super) capacity_bytes: AtomicU64,
    pub(super) undersized: AtomicU64,
    pub(super) resize_failures: AtomicU64,
    /// `gets_local` of threads that have exited (their [`LocalStats`] was
    /// folded in here when their cache was dropped).
    pub(super) retired_gets_local: AtomicU64,
}

/// Why a pipe was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CloseReason {
    Idle,
    Dirty,
    Overflow,
    Shutdown,
}

impl Counters {
    pub(super) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Back to zero (a forked child's pool starts afresh).
    pub(super) fn reset(&self) {
        for c in [
            &self.created,
            &self.closed_idle,
            &self.closed_dirty,
            &self.closed_overflow,
            &self.closed_shutdown,
            &self.gets_shared,
            &self.gets_new,
            &self.gets_refused,
            &self.gets_failed,
            &self.capacity_bytes,
            &self.undersized,
            &self.resize_failures,
            &self.retired_gets_local,
        ] {
            c.store(0, Relaxed);
        }
    }

    pub(super) fn closed(&self, reason: CloseReason) -> &AtomicU64 {
        match reason {
            CloseReason::Idle => &self.closed_idle,
            CloseReason::Dirty => &self.closed_dirty,
            CloseReason::Overflow => &self.closed_overflow,
            CloseReason::Shutdown => &self.closed_shutdown,
        }
    }
}

/// The counters one thread keeps for one pool. Written by that thread
/// only, read by anyone.
#[derive(Debug, Default)]
pub(super) struct LocalStats {
    /// Gets served from this thread's cache.
    pub(super) gets_local: AtomicU64,
    /// Idle pipes in this thread's cache right now.
    pub(super) idle: AtomicUsize,
}

impl LocalStats {
    /// `gets_local += 1` by the owning thread: a plain load and store, since
    /// no other thread writes it.
    #[inline]
    pub(super) fn count_local_get(&self) {
        let n = self.gets_local.load(Relaxed);
        self.gets_local.store(n + 1, Relaxed);
    }
}
