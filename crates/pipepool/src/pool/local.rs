//! The per-thread caches: the lock-free, syscall-free fast path.
//!
//! Each thread has one table of caches, indexed by pool id. A thread's cache
//! for a pool is touched only by that thread, so a get is a `Vec::pop` and a
//! put a `Vec::push`, plus a load and a store of the thread's own counters.
//! A cache refills from the shared pool and spills to it in batches of
//! `local_cap / 2`, oldest pipes first, so the stack of a busy thread stays
//! warm and the cold pipes drift to the shared pool where the reaper sees
//! them.
//!
//! Pipes idle in a cache are invisible to the reaper. Each put moves the
//! cache's stale pipes (idle for `idle_timeout`) to the shared pool, and a
//! thread's exit hands its whole cache back; what is left is the bound the
//! crate documents: at most `local_cap` idle pipes per thread that has not
//! touched the pool since they went idle.

use std::cell::RefCell;

use super::shared::{Idle, Shared};
use super::stats::LocalStats;
use super::Pipe;
use crate::sync::{thread_local, Arc, Ordering::Relaxed};

/// One thread's cache for one pool.
#[derive(Debug)]
struct LocalCache {
    /// Keeps the pool's shared state (and so its id) alive while this cache
    /// exists: the slot index can never be reused by another pool meanwhile.
    shared: Arc<Shared>,
    /// Idle pipes, oldest first. Invariants: every pipe is empty;
    /// `pipes.len() <= local_cap`.
    pipes: Vec<Idle>,
    /// `config.local_cap`, kept here to save a pointer chase on every put.
    cap: usize,
    /// The clock reading of the last stale check: the cache is checked for
    /// stale pipes once per clock tick, not on every put.
    checked_at: u64,
    stats: Arc<LocalStats>,
}

impl LocalCache {
    fn new(shared: &Arc<Shared>) -> LocalCache {
        let stats = Arc::new(LocalStats::default());
        shared.register_thread(stats.clone());
        LocalCache {
            shared: shared.clone(),
            pipes: Vec::with_capacity(shared.config.local_cap),
            cap: shared.config.local_cap,
            checked_at: shared.now(),
            stats,
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<Box<Pipe>> {
        let idle = self.pipes.pop()?;
        self.stats.idle.store(self.pipes.len(), Relaxed);
        self.stats.count_local_get();
        Some(idle.pipe)
    }

    /// Keeps an empty pipe. Needs `cap > 0`.
    #[inline]
    fn push(&mut self, pipe: Box<Pipe>) {
        let now = self.shared.now();
        if now != self.checked_at || self.pipes.len() >= self.cap {
            self.make_room(now);
        }
        self.pipes.push(Idle { pipe, stamp: now });
        self.stats.idle.store(self.pipes.len(), Relaxed);
    }

    /// Once per clock tick, moves the stale pipes out; when full, spills
    /// the oldest half.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, now: u64) {
        if now != self.checked_at {
            self.checked_at = now;
            self.spill_stale(now);
        }
        if self.pipes.len() >= self.cap {
            self.spill(self.batch());
        }
    }

    /// Takes a batch from the shared pool; returns one pipe and keeps the
    /// rest.
    fn refill(&mut self) -> Option<Box<Pipe>> {
        // `local_cap / 2` kept, one returned: with `local_cap` 0 (or 1) the
        // cache keeps nothing, as `pipes.len() <= local_cap` requires.
        debug_assert!(self.pipes.is_empty(), "refill of a cache that has pipes");
        // The cache is empty here; the batch lands oldest first and the
        // newest (warmest) pipe is the one handed out.
        let want = self.shared.config.local_cap / 2 + 1;
        self.shared.take_batch(want, &mut self.pipes);
        let first = self.pipes.pop();
        self.stats.idle.store(self.pipes.len(), Relaxed);
        first.map(|item| item.pipe)
    }

    fn batch(&self) -> usize {
        (self.shared.config.local_cap / 2).max(1)
    }

    /// Moves the `n` oldest pipes to the shared pool.
    #[cold]
    fn spill(&mut self, n: usize) {
        let n = n.min(self.pipes.len());
        self.shared.give_batch(self.pipes.drain(..n));
    }

    /// Moves every stale pipe (they are at the front) to the shared pool,
    /// where the reaper will close them.
    #[cold]
    #[inline(never)]
    fn spill_stale(&mut self, now: u64) {
        let n = self
            .pipes
            .iter()
            .take_while(|i| self.shared.is_stale(i.stamp, now))
            .count();
        self.spill(n);
    }

    /// Hands every pipe back to the shared pool.
    fn flush(&mut self) {
        self.spill(self.pipes.len());
        self.stats.idle.store(0, Relaxed);
    }
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        self.flush();
        self.shared.retire_thread(&self.stats);
    }
}

/// One thread's caches, indexed by pool id.
#[derive(Debug, Default)]
struct Caches {
    slots: Vec<Option<LocalCache>>,
}

impl Caches {
    #[inline]
    fn slot(&mut self, shared: &Arc<Shared>) -> Option<&mut LocalCache> {
        let cache = self.slots.get_mut(shared.id)?.as_mut()?;
        debug_assert!(Arc::ptr_eq(&cache.shared, shared));
        Some(cache)
    }

    /// The cache for `shared`, created if missing. Also drops the caches of
    /// pools that were closed meanwhile.
    #[cold]
    fn slot_or_insert(&mut self, shared: &Arc<Shared>) -> &mut LocalCache {
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|c| c.shared.is_closed()) {
                *slot = None;
            }
        }
        if self.slots.len() <= shared.id {
            self.slots.resize_with(shared.id + 1, || None);
        }
        self.slots[shared.id].get_or_insert_with(|| LocalCache::new(shared))
    }
}

// A `const` initializer: no lazy-init check on each access (loom's
// `thread_local!` has no const form).
#[cfg(not(loom))]
thread_local! {
    static CACHES: RefCell<Caches> = const { RefCell::new(Caches { slots: Vec::new() }) };
}
#[cfg(loom)]
thread_local! {
    static CACHES: RefCell<Caches> = RefCell::new(Caches::default());
}

/// Runs `f` on this thread's cache table, unless the thread is being torn
/// down (its caches already dropped) or the table is in use further up the
/// stack; then returns `None` and the caller goes to the shared pool.
#[inline]
fn with_caches<R>(f: impl FnOnce(&mut Caches) -> Option<R>) -> Option<R> {
    CACHES
        .try_with(|c| {
            let mut caches = c.try_borrow_mut().ok()?;
            f(&mut caches)
        })
        .ok()
        .flatten()
}

/// Fast path of get: a pipe from this thread's cache.
#[inline]
pub(super) fn pop(shared: &Arc<Shared>) -> Option<Box<Pipe>> {
    with_caches(|c| c.slot(shared)?.pop())
}

/// Slow path of get: refill this thread's cache from the shared pool.
#[cold]
pub(super) fn refill(shared: &Arc<Shared>) -> Option<Box<Pipe>> {
    let pipe = with_caches(|c| c.slot_or_insert(shared).refill());
    pipe.or_else(|| {
        // No usable thread cache: take one pipe straight from the shared pool.
        let mut got = Vec::with_capacity(1);
        shared.take_batch(1, &mut got);
        got.pop().map(|item| item.pipe)
    })
}

/// Put: keeps an empty pipe in this thread's cache. Gives it back when
/// there is no usable cache (thread teardown, `local_cap == 0`).
#[inline]
pub(super) fn push(shared: &Arc<Shared>, pipe: Box<Pipe>) -> Result<(), Box<Pipe>> {
    debug_assert!(pipe.is_empty());
    if shared.config.local_cap == 0 {
        return Err(pipe);
    }
    // An `Option<Box<_>>` is one nullable pointer: if the thread-local is
    // gone, the closure never runs and the pipe is still here.
    let mut pipe = Some(pipe);
    with_caches(|c| {
        c.slot(shared)?.push(pipe.take()?);
        Some(())
    });
    match pipe {
        None => Ok(()),
        Some(pipe) => push_new_cache(shared, pipe),
    }
}

/// Put on a thread without a cache for this pool yet: makes one.
#[cold]
#[inline(never)]
fn push_new_cache(shared: &Arc<Shared>, pipe: Box<Pipe>) -> Result<(), Box<Pipe>> {
    let mut pipe = Some(pipe);
    with_caches(|c| {
        c.slot_or_insert(shared).push(pipe.take()?);
        Some(())
    });
    match pipe {
        None => Ok(()),
        Some(pipe) => Err(pipe),
    }
}

/// Hands this thread's cache for `shared` back to the shared pool.
pub(super) fn flush(shared: &Arc<Shared>) {
    with_caches(|c| {
        c.slot(shared)?.flush();
        Some(())
    });
}
