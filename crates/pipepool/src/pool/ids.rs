//! Pool ids: small integers that index every thread's cache table.
//!
//! An id is taken when a pool is built and released when its shared state
//! is dropped, which happens only after every thread cache for it is gone,
//! so two live pools never share an id. Released ids are reused, smallest
//! first, which keeps the per-thread tables short.

use std::collections::BTreeSet;
use std::sync::Mutex;

struct Ids {
    /// One more than the largest id ever handed out.
    next: usize,
    /// Released ids below `next`.
    free: BTreeSet<usize>,
}

static IDS: Mutex<Ids> = Mutex::new(Ids {
    next: 0,
    free: BTreeSet::new(),
});

fn ids() -> std::sync::MutexGuard<'static, Ids> {
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
    ids().free.insert(id);
}
