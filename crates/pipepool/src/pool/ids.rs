//! Pool ids, tags and the registry of live pools.
//!
//! An id is a small integer that indexes every thread's cache table. It is
//! taken when a pool is built and released when its shared state is
//! dropped, which happens only after every thread cache for it is gone, so
//! two live pools never share an id. Released ids are reused, smallest
//! first, which keeps the per-thread tables short.
//!
//! A tag is never reused: it marks the pipes a pool created, so a pipe
//! swapped into another pool's guard finds its way home ([`find`]).
//!
//! The registry lists the live pools for that, and for the fork handlers
//! (`fork.rs`), which lock every pool around `fork()`. The registry lock
//! comes first in the lock order: registry, then a pool's `threads`, `idle`
//! and reaper locks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[cfg(not(pipepool_loom))]
use super::shared::SharedPool;

pub(super) struct Ids {
    /// One more than the largest id ever handed out.
    next: usize,
    /// Released ids below `next`.
    free: BTreeSet<usize>,
    /// The live pools.
    #[cfg(not(pipepool_loom))]
    pub(super) pools: Vec<std::sync::Weak<SharedPool>>,
}

pub(super) static IDS: Mutex<Ids> = Mutex::new(Ids {
    next: 0,
    free: BTreeSet::new(),
    #[cfg(not(pipepool_loom))]
    pools: Vec::new(),
});

pub(super) fn ids() -> std::sync::MutexGuard<'static, Ids> {
    IDS.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn acquire() -> usize {
    let mut ids = ids();
    if let Some(id) = ids.free.pop_first() {
        return id;
    }
    ids.next += 1;
    ids.next - 1
}

pub(super) fn release(id: usize) {
    let mut ids = ids();
    ids.free.insert(id);
    #[cfg(not(pipepool_loom))]
    ids.pools.retain(|w| w.strong_count() > 0);
}

/// A tag no pool had before (never 0, the tag of a pipe no pool made).
pub(super) fn new_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Relaxed)
}

/// Lists a new pool in the registry.
#[cfg(not(pipepool_loom))]
pub(super) fn register(shared: &std::sync::Arc<SharedPool>) {
    super::fork::install();
    ids().pools.push(std::sync::Arc::downgrade(shared));
}

/// The live pool whose pipes carry `tag`.
#[cfg(not(pipepool_loom))]
pub(super) fn find(tag: u64) -> Option<std::sync::Arc<SharedPool>> {
    // Upgraded under the lock, dropped after it: dropping the last strong
    // reference runs `SharedPool::drop`, which takes the registry lock.
    let pools: Vec<_> = ids()
        .pools
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .collect();
    pools.into_iter().find(|s| s.tag() == tag)
}
