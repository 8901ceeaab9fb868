//! The shared pool: one LIFO stack of idle pipes behind a mutex, the live
//! count that enforces `max_pipes`, the coarse clock and the counters.
//!
//! Pipes are created and closed outside the lock; the lock only guards
//! pushes and pops of whole batches.

#[cfg(not(pipepool_loom))]
use std::time::Instant;

use super::local::{self, CacheCell, CellRef};
use super::stats::{CloseReason, Counters, PoolStats};
use super::{GetError, Pipe, PoolConfig};
use crate::sync::{lock, Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering::*};

/// An idle pipe and when it became idle.
#[derive(Debug)]
pub(super) struct Idle {
    pub(super) pipe: Box<Pipe>,
    /// [`SharedPool::now`] when the pipe was given back.
    pub(super) stamp: u64,
}

/// Everything of one pool that threads share.
#[derive(Debug)]
pub(super) struct SharedPool {
    /// Index of this pool's slot in every thread's cache table; unique among
    /// live `SharedPool`s (see [`super::ids`]).
    pub(super) id: usize,
    /// Stamped into every pipe this pool creates (never reused by another
    /// pool, renewed in a forked child): a pipe given back with another tag
    /// was swapped in from another pool through `&mut Pipe`, or inherited
    /// from the parent process.
    tag: AtomicU64,
    pub(super) config: PoolConfig,
    /// Idle pipes, newest last. Invariant: every pipe in it is empty.
    idle: Mutex<Vec<Idle>>,
    /// `idle.len()`, readable without the lock (to skip locking an empty
    /// stack, as HAProxy does, and for statistics).
    idle_len: AtomicUsize,
    /// Pipes alive or being created: never above `config.max_pipes`.
    live: AtomicUsize,
    /// Coarse clock in milliseconds since `start`, advanced by the reaper
    /// (and by the slow path), read by the fast path to stamp idle pipes.
    /// It only moves forward.
    clock: AtomicU64,
    #[cfg(not(pipepool_loom))]
    start: Instant,
    /// `idle_timeout` in clock units.
    timeout_ms: u64,
    /// How often the reaper wakes while pipes are alive: `idle_timeout / 8`,
    /// half the reclamation slack *tick* (`idle_timeout / 4`): a pipe is
    /// closed between `idle_timeout` and `idle_timeout + tick` after it was
    /// given back, because the clock lags by up to one period and a pass
    /// comes at most one period late.
    period_ms: u64,
    pub(super) counters: Counters,
    /// The registry: the caches of the threads that have one for this pool.
    /// The reaper holds this lock for its whole pass over the caches, so
    /// holding it means the reaper is inside none of them.
    threads: Mutex<Vec<CellRef>>,
    /// Set when the last [`PipePool`](super::PipePool) handle is dropped:
    /// pipes given back from then on are closed.
    closed: AtomicBool,
    #[cfg(not(pipepool_loom))]
    pub(super) reaper: super::reaper::Reaper,
}

impl SharedPool {
    pub(super) fn new(id: usize, config: PoolConfig) -> SharedPool {
        let timeout_ms = u64::try_from(config.idle_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        SharedPool {
            id,
            tag: AtomicU64::new(super::ids::new_tag()),
            idle: Mutex::new(Vec::new()),
            idle_len: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            #[cfg(not(pipepool_loom))]
            start: Instant::now(),
            timeout_ms,
            period_ms: (timeout_ms / 8).max(1),
            counters: Counters::default(),
            threads: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            #[cfg(not(pipepool_loom))]
            reaper: super::reaper::Reaper::default(),
            config,
        }
    }

    /// This pool's pipe tag.
    #[inline]
    pub(super) fn tag(&self) -> u64 {
        self.tag.load(Relaxed)
    }

    /// A pipe with another pool's tag: handed to that pool, or closed if
    /// that pool is gone (or the pipe was inherited from a parent process).
    #[cold]
    pub(super) fn put_foreign(pipe: Box<Pipe>) {
        #[cfg(not(pipepool_loom))]
        if let Some(owner) = super::ids::find(pipe.pool_tag()) {
            if !pipe.is_empty() {
                return owner.close(pipe, CloseReason::Dirty);
            }
            let stamp = owner.now();
            return SharedPool::give_batch(&owner, [Idle { pipe, stamp }]);
        }
        drop(pipe);
    }

    /// The coarse clock: at most one reaper period behind real time while
    /// any pipe is alive.
    #[inline]
    pub(super) fn now(&self) -> u64 {
        self.clock.load(Relaxed)
    }

    /// Moves the clock to real time.
    #[cfg(not(pipepool_loom))]
    pub(super) fn advance_clock(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.clock.fetch_max(ms, Relaxed);
    }

    /// Moves the clock to `ms` (loom models drive time by hand).
    #[cfg(pipepool_loom)]
    pub(super) fn set_clock(&self, ms: u64) {
        self.clock.fetch_max(ms, Relaxed);
    }

    /// How often the reaper wakes while pipes are alive.
    #[cfg(not(pipepool_loom))] // the reaper's
    pub(super) fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// Whether a pipe stamped `stamp` has been idle for at least
    /// `idle_timeout`, allowing for the stamp lagging real time by up to
    /// one reaper period.
    #[inline]
    pub(super) fn is_stale(&self, stamp: u64, now: u64) -> bool {
        now.saturating_sub(stamp) >= self.timeout_ms + self.period_ms
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    #[cfg(not(pipepool_loom))] // the reaper's
    pub(super) fn live(&self) -> usize {
        self.live.load(SeqCst)
    }

    /// Appends up to `n` idle pipes to `out`, oldest first (the newest
    /// last, where a `pop` finds it), for one get
    /// (counted once in `gets_shared`; the rest of the batch is counted in
    /// `gets_local` as the thread cache hands it out). Returns how many.
    pub(super) fn take_batch(&self, n: usize, out: &mut Vec<Idle>) -> usize {
        if self.idle_len.load(Relaxed) == 0 {
            return 0;
        }
        let mut idle = lock(&self.idle);
        let k = n.min(idle.len());
        let from = idle.len() - k;
        out.extend(idle.drain(from..));
        self.idle_len.store(idle.len(), Relaxed);
        drop(idle);
        if k > 0 {
            Counters::bump(&self.counters.gets_shared);
        }
        k
    }

    /// Takes back idle pipes. Those past `max_idle`, or given back after
    /// the pool was closed, are closed (outside the lock). (An associated
    /// function: loom's `Arc` cannot be a `self` type.)
    pub(super) fn give_batch(shared: &Arc<Self>, batch: impl IntoIterator<Item = Idle>) {
        let this = &**shared;
        let mut to_close = Vec::new();
        // `closed` is read under the lock: `shut_down` sets it before its
        // `trim` takes the lock, so a batch either lands before the trim
        // (which closes it) or sees `closed` (and closes it here).
        let mut idle = lock(&this.idle);
        let reason = if this.is_closed() {
            to_close.extend(batch);
            CloseReason::Shutdown
        } else {
            for item in batch {
                debug_assert!(item.pipe.is_empty(), "a dirty pipe reached the idle stack");
                if idle.len() < this.config.max_idle {
                    idle.push(item);
                } else {
                    to_close.push(item);
                }
            }
            this.idle_len.store(idle.len(), Relaxed);
            CloseReason::Overflow
        };
        drop(idle);
        for item in to_close {
            this.close(item.pipe, reason);
        }
        // Pipes wait for the reaper: make sure there is one (a spawn that
        // failed before is retried here).
        #[cfg(not(pipepool_loom))]
        if !this.is_closed() {
            super::reaper::ensure_awake(shared);
        }
    }

    /// Creates a new pipe if fewer than `max_pipes` are alive.
    ///
    /// An associated function rather than a method: loom's `Arc` cannot be
    /// a `self` type.
    pub(super) fn create(shared: &Arc<Self>) -> Result<Box<Pipe>, GetError> {
        let max = shared.config.max_pipes;
        let reserved = shared
            .live
            .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1));
        let before = match reserved {
            Ok(before) => before,
            Err(_) => {
                Counters::bump(&shared.counters.gets_refused);
                return Err(GetError::Exhausted { max_pipes: max });
            }
        };
        #[cfg(not(pipepool_loom))]
        shared.advance_clock();
        match Pipe::with_size(shared.config.pipe_size) {
            Ok(mut pipe) => {
                pipe.set_pool_tag(shared.tag());
                let c = &shared.counters;
                Counters::bump(&c.created);
                Counters::bump(&c.gets_new);
                c.capacity_bytes.fetch_add(pipe.capacity() as u64, Relaxed);
                if !pipe.got_requested_size() {
                    Counters::bump(&c.undersized);
                    Counters::bump(&c.resize_failures);
                }
                let _ = before;
                #[cfg(not(pipepool_loom))]
                super::reaper::ensure_awake(shared);
                // Boxed once here: the pool then moves a pointer, not the
                // pipe, on every get and put.
                Ok(Box::new(pipe))
            }
            Err(e) => {
                shared.live.fetch_sub(1, AcqRel);
                Counters::bump(&shared.counters.gets_failed);
                Err(GetError::Create(e))
            }
        }
    }

    /// Closes a pipe of this pool, counting why.
    pub(super) fn close(&self, mut pipe: Box<Pipe>, reason: CloseReason) {
        let (capacity, resized) = (pipe.capacity(), pipe.got_requested_size());
        // Untagged: the pipe's own drop must not account for it again.
        pipe.set_pool_tag(0);
        drop(pipe);
        self.account_close(capacity, resized, reason);
    }

    /// Counts a closed pipe of this pool, by the pipe's own recorded
    /// capacity.
    pub(super) fn account_close(&self, capacity: usize, resized: bool, reason: CloseReason) {
        let c = &self.counters;
        c.capacity_bytes.fetch_sub(capacity as u64, Relaxed);
        if !resized {
            c.undersized.fetch_sub(1, Relaxed);
        }
        Counters::bump(c.closed(reason));
        self.live.fetch_sub(1, AcqRel);
    }

    /// Closes the idle pipes that have been idle for `idle_timeout`, in the
    /// shared stack and (where the heavy fence works) in every thread's
    /// cache. Returns how many.
    pub(super) fn reap(&self) -> usize {
        let now = self.now();
        let mut stale = Vec::new();
        {
            let threads = lock(&self.threads);
            local::reclaim_stale(
                &threads,
                |stamp| self.is_stale(stamp, now),
                super::fence::heavy,
                &mut stale,
            );
        }
        {
            let mut idle = lock(&self.idle);
            let mut i = 0;
            while i < idle.len() {
                if self.is_stale(idle[i].stamp, now) {
                    stale.push(idle.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            // swap_remove broke the newest-last order; restore it so that
            // gets keep taking the warmest pipes.
            idle.sort_unstable_by_key(|item| item.stamp);
            self.idle_len.store(idle.len(), Relaxed);
        }
        let n = stale.len();
        for item in stale {
            self.close(item.pipe, CloseReason::Idle);
        }
        n
    }

    /// Closes every pipe in the shared stack now. Returns how many.
    pub(super) fn trim(&self) -> usize {
        let all = {
            let mut idle = lock(&self.idle);
            self.idle_len.store(0, Relaxed);
            std::mem::take(&mut *idle)
        };
        let n = all.len();
        for item in all {
            self.close(item.pipe, CloseReason::Shutdown);
        }
        n
    }

    /// Marks the pool closed and closes its shared idle pipes.
    pub(super) fn shut_down(&self) {
        self.closed.store(true, Release);
        self.trim();
        // The idle pipes of other threads' caches too, by the reaper's
        // handshake (a cache in use right then, or without `membarrier`:
        // its thread hands them back, to be closed, when it next uses any
        // pool or exits).
        let mut cached = Vec::new();
        {
            let threads = lock(&self.threads);
            local::reclaim_stale(&threads, |_| true, super::fence::heavy, &mut cached);
        }
        for item in cached {
            self.close(item.pipe, CloseReason::Shutdown);
        }
        #[cfg(not(pipepool_loom))]
        super::reaper::stop(self);
    }

    /// Takes every lock of the pool, in the crate's lock order (the fork
    /// handler's prepare step).
    #[cfg(not(pipepool_loom))]
    #[allow(clippy::type_complexity)]
    pub(super) fn lock_all(
        &self,
    ) -> (
        crate::sync::MutexGuard<'_, Vec<CellRef>>,
        crate::sync::MutexGuard<'_, Vec<Idle>>,
        crate::sync::MutexGuard<'_, bool>,
    ) {
        (
            lock(&self.threads),
            lock(&self.idle),
            lock(&self.reaper.started),
        )
    }

    /// In a forked child, with every lock held and the inherited pipes
    /// already taken out: a fresh pool with the same configuration.
    #[cfg(not(pipepool_loom))]
    pub(super) fn reset_after_fork(&self, reaper_started: &mut bool) {
        self.tag.store(super::ids::new_tag(), Relaxed);
        self.idle_len.store(0, Relaxed);
        self.live.store(0, SeqCst);
        self.counters.reset();
        self.reaper.forget_thread(reaper_started);
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
    #[cfg(all(test, pipepool_loom))]
    pub(super) fn thread_count(&self) -> usize {
        lock(&self.threads).len()
    }

    /// Takes an exiting thread's (emptied) cache out of the registry and
    /// folds its counters into the shared ones.
    pub(super) fn retire_thread(&self, cell: &CacheCell) {
        let mut threads = lock(&self.threads);
        if let Some(i) = threads.iter().position(|s| s.is(cell)) {
            threads.swap_remove(i);
            self.counters
                .retired_gets_local
                .fetch_add(cell.stats.gets_local.load(Relaxed), Relaxed);
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let c = &self.counters;
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
        let idle = (self.idle_len.load(Relaxed) as u64 + local_idle).min(live);
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
            thread_cache_reclaim: super::fence::available(),
        }
    }
}

impl Drop for SharedPool {
    fn drop(&mut self) {
        super::ids::release(self.id);
    }
}
