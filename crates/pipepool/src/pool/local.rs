//! Top layer: each thread's table of caches, and the lock-free,
//! syscall-free fast path through it.
//!
//! Each thread has one table of caches (slots), indexed by pool id: the
//! first [`INLINE`] right in thread-local storage, so that the fast path
//! follows no pointer from the pool handle to the pipe, the others boxed.
//! A thread's cache for a pool is a [`CacheCell`] that only its thread
//! fills and empties, so a get is a `Vec::pop` and a put a `Vec::push`. A
//! cache refills from the shared pool and spills to it in batches of
//! `local_cap / 2`, oldest pipes first, so the stack of a busy thread stays
//! warm and cold pipes drift to the shared pool. A spill wakes the reaper
//! if it sleeps ([`give_back`]).
//!
//! The cache itself and its handshake with the reaper are `cell.rs`'s; this
//! module owns each thread's table of cells and the fast path through it.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

use super::cell::{CacheCell, CellRef};
use super::reaper;
use super::registry::SharedPool;
use super::store::{Idle, Pooled};
use crate::sync::{thread_local, Arc, Ordering::Relaxed};

/// One thread's cache for one pool: the part shared with the reaper, and
/// the owner's own bookkeeping (plain `Cell`s: only the owner touches them).
#[derive(Debug, Default)]
struct Slot {
    cell: CacheCell,
    /// `config.local_cap` of the pool this slot caches for; 0 while the
    /// slot is free (no pool, or a pool without thread caches).
    cap: Cell<usize>,
    /// The clock reading of the last stale check: the cache is checked for
    /// stale pipes once per clock tick, not on every put.
    checked_at: Cell<u64>,
    /// The pool. Keeps its shared state (and so its id) alive while the
    /// slot holds it: no other pool can get this slot's index meanwhile.
    shared: RefCell<Option<Arc<SharedPool>>>,
}

impl Slot {
    /// Whether the slot caches for `shared`.
    fn holds(&self, shared: &Arc<SharedPool>) -> bool {
        self.shared
            .try_borrow()
            .is_ok_and(|s| s.as_ref().is_some_and(|s| Arc::ptr_eq(s, shared)))
    }

    /// Takes the (free) slot for `shared` and registers its cell; first
    /// frees this thread's slots of pools shut down meanwhile.
    #[cold]
    fn occupy(&self, shared: &Arc<SharedPool>) {
        debug_assert_eq!(self.cap.get(), 0, "occupying a taken slot");
        sweep_closed();
        *self.shared.borrow_mut() = Some(shared.clone());
        self.checked_at.set(shared.store.now());
        self.cap.set(shared.config().local_cap);
        shared.register_thread(CellRef::new(&self.cell));
    }

    /// Hands every pipe back, leaves the registry and frees the slot.
    fn release(&self) {
        let Some(shared) = self.shared.try_borrow_mut().ok().and_then(|mut s| s.take()) else {
            return;
        };
        self.cap.set(0);
        // Handed back first, and only then out of the registry, so that a
        // thread counting caches sees its pipes back in the shared pool.
        self.flush(&shared);
        shared.retire_thread(&self.cell);
        self.cell.stats.gets_local.store(0, Relaxed);
    }

    #[inline(always)]
    fn pop(&self) -> Option<Box<Pooled>> {
        let cell = &self.cell;
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

    /// Keeps an empty pipe of `shared` (the slot's pool); gives it back if
    /// the slot is free or the reaper holds the cache right now.
    #[inline(always)]
    fn push(&self, shared: &Arc<SharedPool>, pipe: Box<Pooled>) -> Result<(), Box<Pooled>> {
        let cap = self.cap.get();
        if cap == 0 {
            return Err(pipe);
        }
        debug_assert!(self.holds(shared), "a slot used by two pools");
        let now = shared.store.now();
        let cell = &self.cell;
        if !cell.enter() {
            return Err(pipe);
        }
        cell.pipes.with_mut(|p| {
            // SAFETY: `enter` succeeded: the reaper has not claimed this
            // cell and will not touch `pipes` until `leave` (it sees
            // `busy`), and no other thread is the owner.
            let pipes = unsafe { &mut *p };
            if now != self.checked_at.get() || pipes.len() >= cap {
                make_room(shared, pipes, &self.checked_at, now, cap);
                cell.note_oldest(pipes);
            }
            if pipes.is_empty() {
                cell.oldest.store(now, Relaxed);
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
    fn refill(&self, shared: &Arc<SharedPool>) -> Option<Box<Pooled>> {
        let cell = &self.cell;
        cell.with_pipes(|pipes| {
            // `local_cap / 2` kept, one returned: with `local_cap` 0 (or 1)
            // the cache keeps nothing, as `len() <= local_cap` requires.
            // Refill happens only when the cache is empty: the batch lands
            // oldest first and the newest (warmest) pipe is handed out.
            if !pipes.is_empty() {
                return pipes.pop().map(|item| item.pipe);
            }
            let want = shared.config().local_cap / 2 + 1;
            shared.store.take_batch(want, pipes);
            let first = pipes.pop();
            cell.note_oldest(pipes);
            cell.stats.idle.store(pipes.len(), Relaxed);
            first.map(|item| item.pipe)
        })
        .flatten()
    }

    /// Hands every pipe back to the shared pool (the slot stays taken),
    /// emptied under the registry lock: the reaper is in no cache then.
    fn flush(&self, shared: &Arc<SharedPool>) {
        let all = shared.with_registry(|| self.cell.take_all_locked());
        give_back(shared, all);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Hands pipes to the shared pool, and makes sure a reaper watches them
/// (a spawn that failed before is retried here).
pub(super) fn give_back(shared: &Arc<SharedPool>, batch: impl IntoIterator<Item = Idle>) {
    shared.store.give_batch(batch);
    if !shared.store.is_closed() {
        reaper::ensure_awake(shared);
    }
}

/// Once per clock tick, moves the stale pipes out; when full, spills the
/// oldest half.
#[cold]
#[inline(never)]
fn make_room(
    shared: &Arc<SharedPool>,
    pipes: &mut Vec<Idle>,
    checked_at: &Cell<u64>,
    now: u64,
    cap: usize,
) {
    if now != checked_at.get() {
        checked_at.set(now);
        // The stale pipes are at the front.
        let n = pipes
            .iter()
            .take_while(|i| shared.store.is_stale(i.stamp, now))
            .count();
        give_back(shared, pipes.drain(..n));
    }
    if pipes.len() >= cap {
        let n = (shared.config().local_cap / 2).max(1).min(pipes.len());
        give_back(shared, pipes.drain(..n));
    }
}

/// Pools with an id below this have their slot right in the thread-local
/// table, reached with no pointer to follow: the fast path's cost is
/// mostly the chain of dependent loads from the pool handle to the pipe.
/// Ids are reused smallest first, so this covers a process's first four
/// pools alive at once; the others' slots are boxed ([`MORE_SLOTS`]).
pub(super) const INLINE: usize = 4;

// Each thread's slots. The inline ones never move while the thread lives;
// the boxed ones are never freed before the thread exits (the `Vec` only
// grows; the boxes keep the slots in place when it does), so a `&Slot`
// stays valid for as long as the thread runs.
thread_local! {
    static INLINE_SLOTS: [Slot; INLINE] = Default::default();
}
// (Not the `const` form: loom's `thread_local!` has none, and this table
// is only reached on the cold path of pools past the inline slots.)
thread_local! {
    // The boxes are what keeps each slot in place.
    #[allow(clippy::vec_box, clippy::missing_const_for_thread_local)]
    static MORE_SLOTS: RefCell<Vec<Box<Slot>>> = RefCell::new(Vec::new());
}

/// Runs `f` on this thread's slot for pool `id`, unless the thread is being
/// torn down (its table already destroyed); then returns `None` and the
/// caller goes to the shared pool.
#[inline(always)]
fn with_slot<R>(id: usize, f: impl FnOnce(&Slot) -> R) -> Option<R> {
    let slot = if id < INLINE {
        INLINE_SLOTS
            .try_with(|slots| NonNull::from(&slots[id]))
            .ok()?
    } else {
        boxed_slot(id)?
    };
    // SAFETY: the slot is in this thread's table, which stays where it is
    // (the inline slots in thread-local storage, the others boxed and never
    // freed before) until it is destroyed at thread exit; that cannot
    // happen during `f`, and a table already destroyed gave no pointer.
    Some(f(unsafe { slot.as_ref() }))
}

/// This thread's boxed slot for pool `id` (`id >= INLINE`), made if missing.
#[cold]
#[inline(never)]
fn boxed_slot(id: usize) -> Option<NonNull<Slot>> {
    MORE_SLOTS
        .try_with(|more| {
            let mut more = more.try_borrow_mut().ok()?;
            let i = id - INLINE;
            while more.len() <= i {
                more.push(Box::default());
            }
            Some(NonNull::from(&*more[i]))
        })
        .ok()
        .flatten()
}

/// Frees this thread's slots of pools that were shut down (their pipes go
/// back to be closed), so those pools' ids can be reused.
#[cold]
fn sweep_closed() {
    let free_closed = |slot: &Slot| {
        let closed = slot
            .shared
            .try_borrow()
            .is_ok_and(|s| s.as_ref().is_some_and(|s| s.store.is_closed()));
        if closed {
            slot.release();
        }
    };
    let _ = INLINE_SLOTS.try_with(|slots| slots.iter().for_each(free_closed));
    let boxed: Vec<NonNull<Slot>> = MORE_SLOTS
        .try_with(|more| {
            more.try_borrow()
                .map(|m| m.iter().map(|b| NonNull::from(&**b)).collect())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    for slot in boxed {
        // SAFETY: as in `with_slot`: boxed slots live until thread exit.
        free_closed(unsafe { slot.as_ref() });
    }
}

/// The calling thread's caches (for the fork handler, which keeps these
/// registered and drops the others).
pub(super) fn this_thread_cells() -> Vec<*const CacheCell> {
    let mut cells: Vec<*const CacheCell> = INLINE_SLOTS
        .try_with(|slots| slots.iter().map(|s| &s.cell as *const CacheCell).collect())
        .unwrap_or_default();
    let _ = MORE_SLOTS.try_with(|more| {
        if let Ok(more) = more.try_borrow() {
            cells.extend(more.iter().map(|s| &s.cell as *const CacheCell));
        }
    });
    cells
}

/// Fast path of get: a pipe from this thread's cache for pool `id`.
#[inline]
pub(super) fn pop(id: usize) -> Option<Box<Pooled>> {
    with_slot(id, Slot::pop).flatten()
}

/// Slow path of get: refill this thread's cache from the shared pool.
#[cold]
pub(super) fn refill(shared: &Arc<SharedPool>) -> Option<Box<Pooled>> {
    let pipe = if shared.config().local_cap == 0 {
        None // no thread caches at all
    } else {
        with_slot(shared.id, |slot| {
            if slot.cap.get() == 0 {
                slot.occupy(shared);
            }
            slot.refill(shared)
        })
        .flatten()
    };
    pipe.or_else(|| {
        // No usable thread cache: take one pipe straight from the shared pool.
        let mut got = Vec::with_capacity(1);
        shared.store.take_batch(1, &mut got);
        got.pop().map(|item| item.pipe)
    })
}

/// Put: keeps an empty pipe in this thread's cache. Gives it back when
/// there is no usable cache (thread teardown, `local_cap == 0`, the reaper
/// holding the cache at that instant).
#[inline]
pub(super) fn push(
    shared: &Arc<SharedPool>,
    id: usize,
    pipe: Box<Pooled>,
) -> Result<(), Box<Pooled>> {
    debug_assert!(pipe.pipe.is_empty());
    // An `Option<Box<_>>` is one nullable pointer: if the thread-local is
    // gone, the closure never runs and the pipe is still here.
    let mut pipe = Some(pipe);
    let done = with_slot(id, |slot| Some(slot.push(shared, pipe.take()?))).flatten();
    match (done, pipe) {
        (Some(Ok(())), _) => Ok(()),
        (Some(Err(pipe)), _) | (None, Some(pipe)) => push_cold(shared, pipe),
        (None, None) => unreachable!("a pipe taken without a result"),
    }
}

/// Put that missed the fast path: makes this thread's cache for the pool if
/// it has none yet (and the pool has thread caches).
#[cold]
#[inline(never)]
fn push_cold(shared: &Arc<SharedPool>, pipe: Box<Pooled>) -> Result<(), Box<Pooled>> {
    if shared.config().local_cap == 0 {
        return Err(pipe);
    }
    let mut pipe = Some(pipe);
    let done = with_slot(shared.id, |slot| {
        if slot.cap.get() != 0 {
            return None; // taken, so the reaper holds it: not now
        }
        slot.occupy(shared);
        Some(slot.push(shared, pipe.take()?))
    })
    .flatten();
    match (done, pipe) {
        (Some(result), _) => result,
        (None, Some(pipe)) => Err(pipe),
        (None, None) => unreachable!("a pipe taken without a result"),
    }
}

/// Hands this thread's cache for `shared` back to the shared pool.
pub(super) fn flush(shared: &Arc<SharedPool>) {
    with_slot(shared.id, |slot| {
        if slot.holds(shared) {
            slot.flush(shared);
        }
    });
}
