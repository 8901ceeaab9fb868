//! Middle layer: a pool's shared state ([`SharedPool`]: its store, the
//! registry of its threads' caches, the reaper's handshake), and the
//! registry of pools (ids and the list of live pools).
//!
//! Built on the leaves (`store.rs`, `cell.rs`, `stats.rs`, `config.rs`);
//! called by the top (`handle.rs`, `local.rs`, `reaper.rs`, `fork.rs`),
//! never calling up into it: starting or waking the reaper and installing
//! the fork handlers are the top's business.
//!
//! # Ids
//! An id is a small integer that indexes every thread's cache table. It is
//! taken when a pool is built and released when its shared state is
//! dropped, which happens only after every thread cache for it is gone, so
//! two live pools never share an id. Released ids are reused, smallest
//! first, which keeps the per-thread tables short.
//!
//! # The list of pools
//! The fork handlers lock every live pool around `fork()`. The registry
//! lock comes first in the lock order: registry, then a pool's `threads`,
//! its idle stack and its reaper lock.

use std::collections::BTreeSet;

use super::cell::{reclaim_stale, CacheCell, CellRef};
use super::config::PoolConfig;
use super::stats::{CloseReason, PoolStats};
use super::store::{Idle, Store};
use crate::sync::{heavy_fence, heavy_fence_available, lock, Arc, Mutex, MutexGuard, Weak};
use crate::sync::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};

/// Everything of one pool that threads share.
#[derive(Debug)]
pub(super) struct SharedPool {
    /// Index of this pool's slot in every thread's cache table; unique among
    /// live `SharedPool`s (see the module docs).
    pub(super) id: usize,
    /// The idle stack, the bound, the clock and the counters.
    pub(super) store: Store,
    /// The registry: the caches of the threads that have one for this pool.
    /// The reaper holds this lock for its whole pass over the caches, so
    /// holding it means the reaper is inside none of them.
    threads: Mutex<Vec<CellRef>>,
    /// The reaper thread's handshake with the pool (the thread itself is
    /// `reaper.rs`'s).
    pub(super) reaper: ReaperState,
}

/// What the reaper thread and the threads that wake it share.
#[derive(Debug)]
pub(super) struct ReaperState {
    /// Whether the thread was started (and has not been lost to a fork).
    pub(super) started: Mutex<bool>,
    /// Signalled when a pipe is created while the reaper sleeps, and when
    /// the pool closes.
    pub(super) wake: crate::sync::Condvar,
    /// The reaper is not running: asleep for lack of pipes, or not started.
    pub(super) sleeping: AtomicBool,
}

impl Default for ReaperState {
    fn default() -> ReaperState {
        ReaperState {
            started: Mutex::new(false),
            wake: crate::sync::Condvar::new(),
            sleeping: AtomicBool::new(true),
        }
    }
}

/// The locks of one pool, in the crate's lock order.
pub(super) type PoolGuards<'a> = (
    MutexGuard<'a, Vec<CellRef>>,
    MutexGuard<'a, Vec<Idle>>,
    MutexGuard<'a, bool>,
);

impl SharedPool {
    /// A pool's shared state, with a fresh id, listed in the registry.
    pub(super) fn new(config: PoolConfig) -> Arc<SharedPool> {
        let shared = Arc::new(SharedPool {
            id: acquire_id(),
            store: Store::new(config),
            threads: Mutex::new(Vec::new()),
            reaper: ReaperState::default(),
        });
        pools().list.push(crate::sync::downgrade(&shared));
        shared
    }

    /// The configuration (`store.config`).
    #[inline]
    pub(super) fn config(&self) -> &PoolConfig {
        &self.store.config
    }

    /// Closes the idle pipes that have been idle for `idle_timeout`, in the
    /// shared stack and (where the heavy fence works) in every thread's
    /// cache. Returns how many.
    pub(super) fn reap(&self) -> usize {
        let now = self.store.now();
        let mut stale = Vec::new();
        {
            let threads = lock(&self.threads);
            reclaim_stale(
                &threads,
                |stamp| self.store.is_stale(stamp, now),
                heavy_fence,
                &mut stale,
            );
        }
        self.store.take_stale(now, &mut stale);
        let n = stale.len();
        for item in stale {
            self.store.close(item.pipe, CloseReason::Idle);
        }
        n
    }

    /// Marks the pool closed and closes its idle pipes: the shared stack's
    /// and those of other threads' caches, by the reaper's handshake (a
    /// cache in use right then, or every cache without `membarrier`: its
    /// thread hands them back, to be closed, when it next uses any pool or
    /// exits). The caller then stops the reaper.
    pub(super) fn shut_down(&self) {
        self.store.close_all();
        let mut cached = Vec::new();
        {
            let threads = lock(&self.threads);
            reclaim_stale(&threads, |_| true, heavy_fence, &mut cached);
        }
        for item in cached {
            self.store.close(item.pipe, CloseReason::Shutdown);
        }
    }

    /// Takes every lock of the pool, in the crate's lock order (the fork
    /// handler's prepare step).
    pub(super) fn lock_all(&self) -> PoolGuards<'_> {
        (
            lock(&self.threads),
            self.store.lock_idle(),
            lock(&self.reaper.started),
        )
    }

    /// In a forked child, with every lock held and the inherited pipes
    /// already taken out: a fresh pool with the same configuration.
    pub(super) fn reset_after_fork(&self, reaper_started: &mut bool) {
        self.store.reset_after_fork();
        // The reaper thread does not exist in the child.
        *reaper_started = false;
        self.reaper.sleeping.store(true, SeqCst);
    }

    pub(super) fn register_thread(&self, cell: CellRef) {
        lock(&self.threads).push(cell);
    }

    /// Runs `f` holding the registry lock: the reaper is inside no cache.
    pub(super) fn with_registry<R>(&self, f: impl FnOnce() -> R) -> R {
        let _threads = lock(&self.threads);
        f()
    }

    /// How many threads have a cache for this pool.
    #[cfg(test)]
    #[allow(dead_code)] // the loom models' (built with `pipepool_loom` only)
    pub(super) fn thread_count(&self) -> usize {
        lock(&self.threads).len()
    }

    /// Takes an exiting thread's (emptied) cache out of the registry and
    /// folds its counters into the shared ones.
    pub(super) fn retire_thread(&self, cell: &CacheCell) {
        let mut threads = lock(&self.threads);
        if let Some(i) = threads.iter().position(|s| s.is(cell)) {
            threads.swap_remove(i);
            self.store
                .counters
                .retired_gets_local
                .fetch_add(cell.stats.gets_local.load(Relaxed), Relaxed);
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let c = &self.store.counters;
        let (mut gets_local, mut local_idle) = (c.retired_gets_local.load(Relaxed), 0u64);
        {
            let threads = lock(&self.threads);
            for t in threads.iter().map(CellRef::cell) {
                gets_local += t.stats.gets_local.load(Relaxed);
                local_idle += t.stats.idle.load(Relaxed) as u64;
            }
        }
        // `created` first: a close racing with this read can then only make
        // `live` look smaller, never larger than the pipes that exist.
        let created = c.created.load(Relaxed);
        let closed = [
            &c.closed_idle,
            &c.closed_dirty,
            &c.closed_overflow,
            &c.closed_shutdown,
        ]
        .map(|a| a.load(Relaxed));
        let live = created.saturating_sub(closed.iter().sum());
        let idle = (self.store.idle_len() as u64 + local_idle).min(live);
        PoolStats {
            live,
            idle,
            in_use: live - idle,
            created,
            closed_idle: closed[0],
            closed_dirty: closed[1],
            closed_overflow: closed[2],
            closed_shutdown: closed[3],
            gets_local,
            gets_shared: c.gets_shared.load(Relaxed),
            gets_new: c.gets_new.load(Relaxed),
            gets_refused: c.gets_refused.load(Relaxed),
            gets_failed: c.gets_failed.load(Relaxed),
            capacity_bytes: c.capacity_bytes.load(Relaxed),
            undersized: c.undersized.load(Relaxed),
            resize_failures: c.resize_failures.load(Relaxed),
            thread_cache_reclaim: heavy_fence_available(),
        }
    }
}

impl Drop for SharedPool {
    fn drop(&mut self) {
        release_id(self.id);
    }
}

/// The registry of pools. (A process-wide static: std's `Mutex`, which
/// loom does not model; no model races on it.)
pub(super) struct Pools {
    /// One more than the largest id ever handed out.
    next: usize,
    /// Released ids below `next`.
    free: BTreeSet<usize>,
    /// The live pools (and some dead ones, pruned when an id is released).
    pub(super) list: Vec<Weak<SharedPool>>,
}

static POOLS: std::sync::Mutex<Pools> = std::sync::Mutex::new(Pools {
    next: 0,
    free: BTreeSet::new(),
    list: Vec::new(),
});

/// Locks the registry of pools (first in the lock order).
pub(super) fn pools() -> std::sync::MutexGuard<'static, Pools> {
    POOLS.lock().unwrap_or_else(|p| p.into_inner())
}

fn acquire_id() -> usize {
    let mut pools = pools();
    if let Some(id) = pools.free.pop_first() {
        return id;
    }
    pools.next += 1;
    pools.next - 1
}

fn release_id(id: usize) {
    let mut pools = pools();
    pools.free.insert(id);
    pools.list.retain(|w| w.strong_count() > 0);
}
