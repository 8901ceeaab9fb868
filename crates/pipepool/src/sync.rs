//! The seam between the pool and what loom swaps: every atomic, lock,
//! thread-local, fence and `UnsafeCell` the pool uses comes from here, and
//! so do the pipe (a mock under loom), the clock's time source and the
//! heavy side of the asymmetric fence, so that `--cfg pipepool_loom` swaps
//! in loom's model-checked versions in this one module (the pattern of
//! sharded-slab's `sync.rs` and crossbeam's `primitive`). The pool's
//! layers carry no `pipepool_loom` switch of their own; only the modules
//! loom does not build at all (the reaper thread, the fork handlers) are
//! left out by `pool/mod.rs`. The cfg is namespaced, as crossbeam's
//! `crossbeam_loom` is, so a downstream crate's own `--cfg loom` run never
//! changes this crate.

#[cfg(pipepool_loom)]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

#[cfg(pipepool_loom)]
pub(crate) use crate::mock::{Pipe, PipeMut, DEFAULT_PIPE_SIZE};
#[cfg(not(pipepool_loom))]
pub(crate) use crate::pipe::{Pipe, PipeMut, DEFAULT_PIPE_SIZE};

#[cfg(not(pipepool_loom))]
pub(crate) use std::{
    sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

/// Whether the pool runs threads and handlers of its own: the reaper thread
/// and the `fork()` handlers. Not under loom: the models drive reclamation
/// by hand (`reap_at`), and loom models no `fork()`. The code builds both
/// ways; this is the one switch.
pub(crate) const BACKGROUND: bool = !cfg!(pipepool_loom);

/// Locks `m`, ignoring poisoning: the pool's data stays consistent across a
/// panic (every critical section is a push, pop or swap of whole values).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The light side of the asymmetric fence (see `pool/cell.rs`): only a
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

/// Where the pool's coarse clock starts. Under loom time stands still (the
/// models move the clock by hand).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Instant {
    #[cfg(not(pipepool_loom))]
    start: std::time::Instant,
}

impl Instant {
    pub(crate) fn now() -> Instant {
        Instant {
            #[cfg(not(pipepool_loom))]
            start: std::time::Instant::now(),
        }
    }

    /// Milliseconds since `now()` made this (0 under loom).
    pub(crate) fn elapsed_ms(&self) -> u64 {
        #[cfg(not(pipepool_loom))]
        return u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        #[cfg(pipepool_loom)]
        0
    }
}

/// Whether the heavy fence works in this process: the reaper then reclaims
/// stale pipes from every thread's cache. (Always under loom.)
///
/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` makes every running
/// thread of the process execute a full memory barrier before it returns;
/// a thread that is not running passes through the scheduler, which is a
/// barrier too. The process registers once (`..._REGISTER_...`); a forked
/// child inherits no registration, so an `EPERM` registers again. Without
/// kernel support (before Linux 4.14, or behind a seccomp filter)
/// [`heavy_fence`] fails and the reaper leaves the caches alone.
pub(crate) fn heavy_fence_available() -> bool {
    #[cfg(not(pipepool_loom))]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| crate::sys::membarrier_register().is_ok())
    }
    #[cfg(pipepool_loom)]
    true
}

/// The heavy side of the asymmetric fence the reaper uses to reclaim pipes
/// from thread caches (see `pool/cell.rs`): a full barrier on every thread
/// of the process. Returns `false` if the kernel cannot do it (nothing may
/// then rely on it). Under loom, the `SeqCst` fence that pairs with the
/// owners' (also `SeqCst` under loom) light fences.
pub(crate) fn heavy_fence() -> bool {
    #[cfg(not(pipepool_loom))]
    {
        use rustix::io::Errno;

        if !heavy_fence_available() {
            return false;
        }
        fence(Ordering::SeqCst);
        let done = match crate::sys::membarrier_private_expedited() {
            Ok(()) => true,
            // Not registered: a child forked after the parent registered.
            Err(Errno::PERM) => {
                crate::sys::membarrier_register().is_ok()
                    && crate::sys::membarrier_private_expedited().is_ok()
            }
            Err(_) => false,
        };
        fence(Ordering::SeqCst);
        done
    }
    #[cfg(pipepool_loom)]
    {
        fence(Ordering::SeqCst);
        true
    }
}

/// A weak reference to a pool's shared state, for the registry of pools
/// (the fork handlers) and the reaper thread. loom's `Arc` has no `Weak`;
/// neither user is built under loom, so there it never upgrades.
#[cfg(not(pipepool_loom))]
pub(crate) use std::sync::Weak;

/// (loom's stand-in: see the real one.)
#[cfg(pipepool_loom)]
#[derive(Debug)]
pub(crate) struct Weak<T>(std::marker::PhantomData<T>);

#[cfg(pipepool_loom)]
impl<T> Weak<T> {
    pub(crate) fn upgrade(&self) -> Option<Arc<T>> {
        None
    }
    pub(crate) fn strong_count(&self) -> usize {
        0
    }
}

/// `Arc::downgrade`, through the seam.
pub(crate) fn downgrade<T>(arc: &Arc<T>) -> Weak<T> {
    #[cfg(not(pipepool_loom))]
    return Arc::downgrade(arc);
    #[cfg(pipepool_loom)]
    {
        let _ = arc;
        Weak(std::marker::PhantomData)
    }
}
