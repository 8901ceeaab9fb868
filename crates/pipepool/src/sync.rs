//! Every atomic, lock, thread-local and thread the pool uses comes from here,
//! so that `--cfg loom` swaps in loom's model-checked versions
//! (the pattern of sharded-slab's `sync.rs` and crossbeam's `primitive`).

#[cfg(loom)]
pub(crate) use loom::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    thread_local,
};

// (No `Condvar` under loom: only the reaper thread uses one, and the reaper
// is not built there; the models drive reclamation by hand.)
#[cfg(not(loom))]
pub(crate) use std::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

/// Locks `m`, ignoring poisoning: the pool's data stays consistent across a
/// panic (every critical section is a push, pop or swap of whole values).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
