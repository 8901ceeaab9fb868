//! Leaf: one thread's cache for one pool ([`CacheCell`]), and the
//! handshake that lets the reaper take stale pipes out of it without the
//! owning thread's help. Knows nothing of thread-local tables, pools or the
//! reaper thread: `local.rs` owns the cells, the pool's registry lists them,
//! the reaper calls [`reclaim_stale`].
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
//!   cache whose oldest pipe is stale (by the stamp each cache publishes),
//!   then `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`,
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

use std::ptr::NonNull;

use super::stats::LocalStats;
use super::store::Idle;
use crate::sync::{
    light_fence, AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
    UnsafeCell,
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
    pub(super) pipes: UnsafeCell<Vec<Idle>>,
    /// The stamp of `pipes[0]`, the oldest pipe, while there is one:
    /// written by whoever holds `pipes` whenever the front changes, read by
    /// the reaper to leave alone a cache that cannot hold a stale pipe
    /// (claiming it would send its owner's gets and puts to the shared pool
    /// for the length of a `membarrier`).
    pub(super) oldest: AtomicU64,
    pub(super) stats: LocalStats,
}

// SAFETY: `pipes` is the only field that is not `Sync`. It is accessed by
// one thread at a time: the owner only inside `enter`/`leave`, the reaper
// only inside its claim after seeing `busy == false` past the heavy fence
// (the handshake above proves these exclude each other), and, after the cell
// left the registry, only by its owner. `Vec<Idle>` is `Send`.
unsafe impl Sync for CacheCell {}

impl CacheCell {
    /// Records the stamp of the front of `pipes` (after it changed), for
    /// the reaper's first look. Called by whoever holds `pipes`.
    pub(super) fn note_oldest(&self, pipes: &[Idle]) {
        if let Some(front) = pipes.first() {
            self.oldest.store(front.stamp, Relaxed);
        }
    }

    /// The owner's half of the handshake. Returns `false` if the reaper has
    /// claimed the cache (then `pipes` must not be touched).
    #[inline(always)]
    pub(super) fn enter(&self) -> bool {
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
    pub(super) fn leave(&self) {
        self.busy.store(false, Release);
    }

    /// Runs `f` on the pipes, as the owner.
    #[inline(always)]
    pub(super) fn with_pipes<R>(&self, f: impl FnOnce(&mut Vec<Idle>) -> R) -> Option<R> {
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
    /// (For the fork handler.)
    pub(super) fn take_all_after_fork(&self) -> Option<Vec<Idle>> {
        if self.busy.load(Relaxed) {
            return None;
        }
        self.stats.gets_local.store(0, Relaxed);
        Some(self.take_all_locked())
    }
}

/// The reaper's half of the handshake: moves the stale pipes (by `is_stale`)
/// of every registered cache into `out`. `cells` is the registry, locked by
/// the caller; `heavy_fence` issues the membarrier and says whether it could.
/// A cache its owner is using right then is tried again, up to three times.
/// Returns `false` if the heavy fence is unavailable (nothing was taken).
pub(super) fn reclaim_stale(
    cells: &[CellRef],
    is_stale: impl Fn(u64) -> bool,
    heavy_fence: impl Fn() -> bool,
    out: &mut Vec<Idle>,
) -> bool {
    let mut pending: Vec<&CacheCell> = cells
        .iter()
        .map(CellRef::cell)
        // Only caches that may hold a stale pipe: not empty, and their
        // oldest pipe stale. A hot thread's cache of fresh pipes is never
        // claimed. (Mid-update, the two err on the safe side: a front that
        // moved to a newer pipe leaves an older stamp here, and pipes
        // refilled into an empty cache count once `idle` says so; until
        // then they are as out of this pass's reach as they were in the
        // shared stack a moment before.)
        .filter(|c| c.stats.idle.load(Relaxed) > 0 && is_stale(c.oldest.load(Relaxed)))
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
                cell.note_oldest(pipes);
                cell.stats.idle.store(pipes.len(), Relaxed);
            });
            cell.claimed.store(false, Release);
            false
        });
    }
    true
}

/// A registered cache: where the reaper finds one thread's [`CacheCell`]
/// for a pool. The cell lives in that thread's slot table (thread-local
/// storage, or a box of it), which never moves it; a slot leaves the
/// registry, under the registry lock, before its memory goes away (`Slot`'s
/// `Drop`, at the latest when the thread's table is destroyed at exit).
#[derive(Debug, Clone, Copy)]
pub(super) struct CellRef(NonNull<CacheCell>);

// SAFETY: a `CellRef` only hands out `&CacheCell` (see `cell`), and
// `CacheCell` is `Sync`; which thread holds the pointer does not matter.
unsafe impl Send for CellRef {}

impl CellRef {
    pub(super) fn new(cell: &CacheCell) -> CellRef {
        CellRef(NonNull::from(cell))
    }

    /// The cell. Callers hold the registry (the lock guarding the `Vec`
    /// this `CellRef` was borrowed from), so the borrow cannot outlive the
    /// registration.
    pub(super) fn cell(&self) -> &CacheCell {
        // SAFETY: registered cells are alive (see the type's doc), and the
        // caller's borrow of the registry keeps this one registered.
        unsafe { self.0.as_ref() }
    }

    /// Whether this is `cell`.
    pub(super) fn is(&self, cell: *const CacheCell) -> bool {
        std::ptr::eq(self.0.as_ptr(), cell)
    }
}
