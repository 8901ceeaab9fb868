//! Top layer: the reaper, one thread per pool, that closes idle pipes without a garbage
//! collector and without any further call into the pool.
//!
//! While the pool has live pipes, the reaper wakes every `idle_timeout / 8`
//! (half a tick), advances the pool's coarse clock and closes the pipes
//! that have been idle for `idle_timeout`, in the shared stack and in every
//! thread's cache (see `cell.rs`). With no live pipe it sleeps on a
//! condition variable until the next pipe is created, so an unused pool
//! costs no wake-ups. It exits when the pool is dropped.
//!
//! The thread is started with the first pipe, not with the pool. Waking is
//! robust: `sleeping` says the reaper is asleep (or not running), and every
//! pipe creation and every hand-back to the shared pool that sees it set
//! wakes the reaper, or spawns it again if spawning failed before. The
//! reaper sets `sleeping` and then checks `live` before it sleeps; a creator
//! raises `live` and then checks `sleeping` (both `SeqCst`), so at least one
//! of them sees the other.

use std::thread;
use std::time::Duration;

use super::registry::SharedPool;
use crate::sync::{downgrade, lock, Arc, Ordering::SeqCst, Weak, BACKGROUND};

/// Starts the reaper, or wakes it, if it is not running. Cheap (one load)
/// when it runs. (Nothing under loom: see `sync::BACKGROUND`.)
pub(super) fn ensure_awake(shared: &Arc<SharedPool>) {
    if !BACKGROUND || !shared.reaper.sleeping.load(SeqCst) {
        return;
    }
    let mut started = lock(&shared.reaper.started);
    if *started {
        shared.reaper.wake.notify_one();
        return;
    }
    let weak = downgrade(shared);
    let spawned = thread::Builder::new()
        .name("pipepool-reaper".into())
        .spawn(move || run(weak));
    // Out of threads (or memory for a stack): `sleeping` stays set, so the
    // next creation or hand-back tries again. Meanwhile idle pipes are
    // still closed when the pool is dropped or trimmed.
    *started = spawned.is_ok();
}

/// Tells the reaper the pool is closed.
pub(super) fn stop(shared: &SharedPool) {
    let _started = lock(&shared.reaper.started);
    shared.reaper.wake.notify_one();
}

fn run(weak: Weak<SharedPool>) {
    loop {
        // Hold the pool only while working, so that dropping the last
        // handle is never kept waiting for the reaper.
        let Some(shared) = weak.upgrade() else { return };
        if shared.store.is_closed() {
            return;
        }
        shared.reaper.sleeping.store(false, SeqCst);
        shared.store.advance_clock();
        shared.reap();
        let period = Duration::from_millis(shared.store.period_ms());
        let started = lock(&shared.reaper.started);
        if shared.store.is_closed() || !*started {
            return;
        }
        let guard = if shared.store.live() == 0 && {
            shared.reaper.sleeping.store(true, SeqCst);
            shared.store.live() == 0
        } {
            shared.reaper.wake.wait(started)
        } else {
            shared
                .reaper
                .wake
                .wait_timeout(started, period)
                .map(|(g, _)| g)
                .map_err(|p| std::sync::PoisonError::new(p.into_inner().0))
        };
        drop(guard);
        drop(shared);
    }
}
