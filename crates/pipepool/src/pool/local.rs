//! The per-thread caches: the lock-free, syscall-free fast path, and the
//! handshake that lets the reaper take stale pipes out of them.
//!
//! Each thread has one table of caches, indexed by pool id. A thread's cache
//! for a pool is a [`CacheCell`] that only its thread fills and empties, so a
//! get is a `Vec::pop` and a put a `Vec::push`. A cache refills from the
//! shared pool and spills to it in batches of `local_cap / 2`, oldest pipes
//! first, so the stack of a busy thread stays warm and cold pipes drift to
//! the shared pool.
//!
//! # Reclaiming from a cache without its thread (asymmetric fence)
//! A thread that goes quiet must not keep idle pipes forever, so the reaper
//! takes stale pipes out of every cache, without the owning thread's help
//! and without a read-modify-write atomic on the fast path:
//!
//! - **owner**, around each access to its cache: `busy = true` (a plain
//!   store), a *compiler* fence, then a load of `claimed`; if the reaper
//!   has claimed the cache, the owner leaves it alone for this call and uses
//!   the shared pool. After the access, `busy = false` (a release store).
//! - **reaper**, holding the pool's registry lock: `claimed = true` on each
//!   cache that holds pipes, then `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`,
//!   which makes every running thread of the process execute a full memory
//!   barrier, then a load of `busy`: a cache not busy is the reaper's until
//!   it clears `claimed` (a release store).
//!
//! This is the store-buffer (Dekker) pattern with the owner's half of the
//! fence moved into the kernel: either the reaper sees `busy`, or the owner
//! sees `claimed`, or both (then both back off). It is how folly's
//! asymmetric fences and liburcu's membarrier flavour work. loom cannot
//! model `membarrier`, so under `pipepool_loom` both sides use a `SeqCst`
//! fence, which is what the kernel call guarantees.
//!
//! Where `membarrier` is unavailable (old kernels, seccomp filters), the
//! reaper does not touch the caches and the old bound applies: each put
//! moves the cache's stale pipes to the shared pool, and a thread's exit
//! hands its whole cache back ([`PoolStats::thread_cache_reclaim`](crate::PoolStats)
//! says which case holds).
#![allow(unsafe_code)]

use std::cell::RefCell;

use super::shared::{Idle, SharedPool};
use super::stats::LocalStats;
use super::Pipe;
use crate::sync::{
    light_fence, thread_local, Arc, AtomicBool, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release, UnsafeCell,
};

/// What one thread's cache for one pool shares with the reaper.
#[derive(Debug, Default)]
pub(super) struct CacheCell {
    /// Written only by the owning thread: `true` while it reads or writes
    /// `pipes`.
    busy: AtomicBool,
    /// Written only by the reaper (under the pool's registry lock): `true`
    /// while it may be reading or writing `pipes`.
    claimed: AtomicBool,
    /// Idle pipes, oldest first. Invariants: every pipe is empty;
    /// `len() <= local_cap`. Accessed by the owner between a successful
    /// [`enter`](CacheCell::enter) and [`leave`](CacheCell::leave); by the
    /// reaper while it holds the registry lock, has claimed the cell and
    /// saw it not busy after the heavy fence; by anyone holding the registry
    /// lock once the cell has been removed from the registry.
    pipes: UnsafeCell<Vec<Idle>>,
    pub(super) stats: LocalStats,
}

// SAFETY: `pipes` is the only field that is not `Sync`. It is accessed by
// one thread at a time: the owner only inside `enter`/`leave`, the reaper
// only inside its claim after seeing `busy == false` past the heavy fence
// (the handshake above proves these exclude each other), and, after the cell
// left the registry, only by its owner. `Vec<Idle>` is `Send`.
unsafe impl Sync for CacheCell {}

impl CacheCell {
    /// The owner's half of the handshake. Returns `false` if the reaper has
    /// claimed the cache (then `pipes` must not be touched).
    #[inline(always)]
    fn enter(&self) -> bool {
        self.busy.store(true, Relaxed);
        light_fence();
        if self.claimed.load(Acquire) {
            self.busy.store(false, Relaxed);
            return false;
        }
        true
    }

    /// Ends the owner's access: publishes its writes to `pipes` to a reaper
    /// that will see `busy == false`.
    #[inline(always)]
    fn leave(&self) {
        self.busy.store(false, Release);
    }

    /// Runs `f` on the pipes, as the owner.
    #[inline(always)]
    fn with_pipes<R>(&self, f: impl FnOnce(&mut Vec<Idle>) -> R) -> Option<R> {
        if !self.enter() {
            return None;
        }
        // SAFETY: `enter` succeeded: the reaper has not claimed this cell,
        // and will not touch `pipes` until `leave` (it sees `busy`), and no
        // other thread is the owner.
        let r = self.pipes.with_mut(|p| f(unsafe { &mut *p }));
        self.leave();
        Some(r)
    }

    /// Takes every pipe out. The caller holds the registry lock (so the
    /// reaper is not inside any cell) and is the owner, or the cell is no
    /// longer registered.
    pub(super) fn take_all_locked(&self) -> Vec<Idle> {
        // SAFETY: the reaper touches `pipes` only while holding the registry
        // lock, which our caller holds; the owner is our caller.
        let all = self.pipes.with_mut(|p| std::mem::take(unsafe { &mut *p }));
        self.stats.idle.store(0, Relaxed);
        all
    }
}

impl CacheCell {
    /// In a forked child, with the registry lock held: every pipe, unless
    /// the owner was inside a get or put at the instant of the fork (the
    /// copy of `pipes` may be mid-update then: left alone).
    #[cfg(not(pipepool_loom))]
    pub(super) fn take_all_after_fork(&self) -> Option<Vec<Idle>> {
        if self.busy.load(Relaxed) {
            return None;
        }
        self.stats.gets_local.store(0, Relaxed);
        Some(self.take_all_locked())
    }
}

/// The calling thread's caches (for the fork handler, which keeps these
/// registered and drops the others).
#[cfg(not(pipepool_loom))]
pub(super) fn this_thread_cells() -> Vec<*const CacheCell> {
    CACHES
        .try_with(|c| {
            c.try_borrow().map_or_else(
                |_| Vec::new(),
                |c| {
                    c.slots
                        .iter()
                        .flatten()
                        .map(|cache| Arc::as_ptr(&cache.cell))
                        .collect()
                },
            )
        })
        .unwrap_or_default()
}

/// The reaper's half of the handshake: moves the stale pipes (by `is_stale`)
/// of every registered cache into `out`. `cells` is the registry, locked by
/// the caller; `heavy_fence` issues the membarrier and says whether it could.
/// A cache its owner is using right then is tried again, up to three times.
/// Returns `false` if the heavy fence is unavailable (nothing was taken).
pub(super) fn reclaim_stale(
    cells: &[Arc<CacheCell>],
    is_stale: impl Fn(u64) -> bool,
    heavy_fence: impl Fn() -> bool,
    out: &mut Vec<Idle>,
) -> bool {
    let mut pending: Vec<&CacheCell> = cells
        .iter()
        .map(|c| &**c)
        .filter(|c| c.stats.idle.load(Relaxed) > 0)
        .collect();
    for _ in 0..3 {
        if pending.is_empty() {
            break;
        }
        for cell in &pending {
            cell.claimed.store(true, Relaxed);
        }
        if !heavy_fence() {
            for cell in &pending {
                cell.claimed.store(false, Release);
            }
            return false;
        }
        pending.retain(|cell| {
            if cell.busy.load(Acquire) {
                cell.claimed.store(false, Release);
                return true; // the owner is inside: next round
            }
            cell.pipes.with_mut(|p| {
                // SAFETY: we hold the registry lock, claimed the cell before
                // the heavy fence and saw `busy == false` after it: the
                // owner is outside and will see `claimed` before touching
                // `pipes` (and its last writes are visible through the
                // acquire load).
                let pipes = unsafe { &mut *p };
                let n = pipes.iter().take_while(|i| is_stale(i.stamp)).count();
                out.extend(pipes.drain(..n));
                cell.stats.idle.store(pipes.len(), Relaxed);
            });
            cell.claimed.store(false, Release);
            false
        });
    }
    true
}

/// One thread's cache for one pool.
#[derive(Debug)]
struct LocalCache {
    /// Keeps the pool's shared state (and so its id) alive while this cache
    /// exists: the slot index can never be reused by another pool meanwhile.
    shared: Arc<SharedPool>,
    /// The pipes, shared with the reaper (and registered with the pool).
    cell: Arc<CacheCell>,
    /// `config.local_cap`, kept here to save a pointer chase on every put.
    cap: usize,
    /// The clock reading of the last stale check: the cache is checked for
    /// stale pipes once per clock tick, not on every put.
    checked_at: u64,
}

impl LocalCache {
    fn new(shared: &Arc<SharedPool>) -> LocalCache {
        let cell = Arc::new(CacheCell::default());
        shared.register_thread(cell.clone());
        LocalCache {
            shared: shared.clone(),
            cap: shared.config.local_cap,
            checked_at: shared.now(),
            cell,
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<Box<Pipe>> {
        let cell = &*self.cell;
        let idle = cell
            .with_pipes(|pipes| {
                let idle = pipes.pop()?;
                cell.stats.idle.store(pipes.len(), Relaxed);
                Some(idle)
            })
            .flatten()?;
        cell.stats.count_local_get();
        Some(idle.pipe)
    }

    /// Keeps an empty pipe; gives it back if the reaper holds the cache
    /// right now. Needs `cap > 0`.
    #[inline]
    fn push(&mut self, pipe: Box<Pipe>) -> Result<(), Box<Pipe>> {
        let now = self.shared.now();
        let (shared, cap, checked_at) = (&self.shared, self.cap, &mut self.checked_at);
        let cell = &*self.cell;
        if !cell.enter() {
            return Err(pipe);
        }
        cell.pipes.with_mut(|p| {
            // SAFETY: `enter` succeeded: the reaper has not claimed this
            // cell and will not touch `pipes` until `leave` (it sees
            // `busy`), and no other thread is the owner.
            let pipes = unsafe { &mut *p };
            if now != *checked_at || pipes.len() >= cap {
                make_room(shared, pipes, checked_at, now, cap);
            }
            pipes.push(Idle { pipe, stamp: now });
            cell.stats.idle.store(pipes.len(), Relaxed);
        });
        cell.leave();
        Ok(())
    }

    /// Takes a batch from the shared pool; returns one pipe and keeps the
    /// rest. `None` if the shared pool is empty or the reaper holds the
    /// cache.
    fn refill(&mut self) -> Option<Box<Pipe>> {
        let shared = &self.shared;
        let cell = &*self.cell;
        cell.with_pipes(|pipes| {
            // `local_cap / 2` kept, one returned: with `local_cap` 0 (or 1)
            // the cache keeps nothing, as `len() <= local_cap` requires.
            // Refill happens only when the cache is empty: the batch lands
            // oldest first and the newest (warmest) pipe is handed out.
            if !pipes.is_empty() {
                return pipes.pop().map(|item| item.pipe);
            }
            let want = shared.config.local_cap / 2 + 1;
            shared.take_batch(want, pipes);
            let first = pipes.pop();
            cell.stats.idle.store(pipes.len(), Relaxed);
            first.map(|item| item.pipe)
        })
        .flatten()
    }

    /// Hands every pipe back to the shared pool.
    fn flush(&mut self) {
        let all = self.shared.with_registry(|| self.cell.take_all_locked());
        SharedPool::give_batch(&self.shared, all);
    }
}

/// Once per clock tick, moves the stale pipes out; when full, spills the
/// oldest half.
#[cold]
#[inline(never)]
fn make_room(
    shared: &Arc<SharedPool>,
    pipes: &mut Vec<Idle>,
    checked_at: &mut u64,
    now: u64,
    cap: usize,
) {
    if now != *checked_at {
        *checked_at = now;
        // The stale pipes are at the front.
        let n = pipes
            .iter()
            .take_while(|i| shared.is_stale(i.stamp, now))
            .count();
        SharedPool::give_batch(shared, pipes.drain(..n));
    }
    if pipes.len() >= cap {
        let n = (shared.config.local_cap / 2).max(1).min(pipes.len());
        SharedPool::give_batch(shared, pipes.drain(..n));
    }
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        // Emptied under the registry lock (the reaper is in no cache then),
        // handed back, and only then out of the registry, so that a thread
        // counting caches sees its pipes back in the shared pool.
        self.flush();
        self.shared.retire_thread(&self.cell);
    }
}

/// One thread's caches, indexed by pool id.
#[derive(Debug, Default)]
struct Caches {
    slots: Vec<Option<LocalCache>>,
}

impl Caches {
    #[inline]
    fn slot(&mut self, shared: &Arc<SharedPool>) -> Option<&mut LocalCache> {
        let cache = self.slots.get_mut(shared.id)?.as_mut()?;
        debug_assert!(Arc::ptr_eq(&cache.shared, shared));
        Some(cache)
    }

    /// The cache for `shared`, created if missing. Also drops the caches of
    /// pools that were closed meanwhile.
    #[cold]
    fn slot_or_insert(&mut self, shared: &Arc<SharedPool>) -> &mut LocalCache {
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
#[cfg(not(pipepool_loom))]
thread_local! {
    static CACHES: RefCell<Caches> = const { RefCell::new(Caches { slots: Vec::new() }) };
}
#[cfg(pipepool_loom)]
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
pub(super) fn pop(shared: &Arc<SharedPool>) -> Option<Box<Pipe>> {
    with_caches(|c| c.slot(shared)?.pop())
}

/// Slow path of get: refill this thread's cache from the shared pool.
#[cold]
pub(super) fn refill(shared: &Arc<SharedPool>) -> Option<Box<Pipe>> {
    let pipe = if shared.config.local_cap == 0 {
        None // no thread caches at all
    } else {
        with_caches(|c| c.slot_or_insert(shared).refill())
    };
    pipe.or_else(|| {
        // No usable thread cache: take one pipe straight from the shared pool.
        let mut got = Vec::with_capacity(1);
        shared.take_batch(1, &mut got);
        got.pop().map(|item| item.pipe)
    })
}

/// Put: keeps an empty pipe in this thread's cache. Gives it back when
/// there is no usable cache (thread teardown, `local_cap == 0`, the reaper
/// holding the cache at that instant).
#[inline]
pub(super) fn push(shared: &Arc<SharedPool>, pipe: Box<Pipe>) -> Result<(), Box<Pipe>> {
    debug_assert!(pipe.is_empty());
    // (With `local_cap` 0 no cache is ever made: `slot` finds none and the
    // cold path below says so; no check of the config here.)
    // An `Option<Box<_>>` is one nullable pointer: if the thread-local is
    // gone, the closure never runs and the pipe is still here.
    let mut pipe = Some(pipe);
    let done = with_caches(|c| {
        let cache = c.slot(shared)?;
        Some(cache.push(pipe.take()?))
    });
    match (done, pipe) {
        (Some(result), _) => result,
        (None, Some(pipe)) => push_new_cache(shared, pipe),
        (None, None) => unreachable!("a pipe taken without a result"),
    }
}

/// Put on a thread without a cache for this pool yet: makes one.
#[cold]
#[inline(never)]
fn push_new_cache(shared: &Arc<SharedPool>, pipe: Box<Pipe>) -> Result<(), Box<Pipe>> {
    if shared.config.local_cap == 0 {
        return Err(pipe);
    }
    let mut pipe = Some(pipe);
    let done = with_caches(|c| Some(c.slot_or_insert(shared).push(pipe.take()?)));
    match (done, pipe) {
        (Some(result), _) => result,
        (None, Some(pipe)) => Err(pipe),
        (None, None) => unreachable!("a pipe taken without a result"),
    }
}

/// Hands this thread's cache for `shared` back to the shared pool.
pub(super) fn flush(shared: &Arc<SharedPool>) {
    with_caches(|c| {
        c.slot(shared)?.flush();
        Some(())
    });
}
