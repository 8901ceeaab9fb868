//! Every atomic, lock, thread-local, fence and `UnsafeCell` the pool uses
//! comes from here, so that `--cfg pipepool_loom` swaps in loom's
//! model-checked versions (the pattern of sharded-slab's `sync.rs` and
//! crossbeam's `primitive`). The cfg is namespaced, as crossbeam's
//! `crossbeam_loom` is, so a downstream crate's own `--cfg loom` run never
//! changes this crate.

#[cfg(pipepool_loom)]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    thread_local,
};

// (No `Condvar` under loom: only the reaper thread uses one, and the reaper
// is not built there; the models drive reclamation by hand.)
#[cfg(not(pipepool_loom))]
pub(crate) use std::{
    sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

/// Locks `m`, ignoring poisoning: the pool's data stays consistent across a
/// panic (every critical section is a push, pop or swap of whole values).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The light side of the asymmetric fence (see `pool/local.rs`): only a
/// compiler fence, because the reaper's heavy side (`membarrier`) makes
/// every running thread execute a full barrier. loom cannot model
/// `membarrier`, so under loom both sides are `SeqCst` fences.
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(not(pipepool_loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(pipepool_loom)]
    fence(Ordering::SeqCst);
}

/// `std::cell::UnsafeCell` with loom's closure API (`with_mut`), so the
/// same code builds both ways (sharded-slab does the same).
#[cfg(not(pipepool_loom))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(pipepool_loom))]
impl<T> UnsafeCell<T> {
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
