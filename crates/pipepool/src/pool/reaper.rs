//! The reaper: one thread per pool that closes idle pipes without a garbage
//! collector and without any further call into the pool.
//!
//! While the pool has live pipes, the reaper wakes every `idle_timeout / 4`
//! (the *tick*), advances the pool's coarse clock and closes the shared
//! pipes that have been idle for at least `idle_timeout`. With no live pipe
//! it sleeps on a condition variable until the next pipe is created, so an
//! unused pool costs no wake-ups. It exits when the pool is dropped.
//!
//! The thread is started with the first pipe, not with the pool.

use std::thread;
use std::time::Duration;

use super::shared::Shared;
use crate::sync::{lock, Arc, Condvar, Mutex};

/// The reaper's handshake with the pool.
#[derive(Debug, Default)]
pub(super) struct Reaper {
    /// Whether the thread was started.
    started: Mutex<bool>,
    /// Signalled when the first pipe is created and when the pool closes.
    wake: Condvar,
}

/// Starts the reaper, or wakes it because pipes exist again.
pub(super) fn wake(shared: &Arc<Shared>) {
    let mut started = lock(&shared.reaper.started);
    if *started {
        shared.reaper.wake.notify_one();
        return;
    }
    let weak = Arc::downgrade(shared);
    let spawned = thread::Builder::new()
        .name("pipepool-reaper".into())
        .spawn(move || run(weak));
    // Without a reaper thread (out of threads), idle pipes are still
    // closed when the pool is dropped or trimmed; try again next time.
    *started = spawned.is_ok();
}

/// Tells the reaper the pool is closed.
pub(super) fn stop(shared: &Shared) {
    let _started = lock(&shared.reaper.started);
    shared.reaper.wake.notify_one();
}

fn run(weak: std::sync::Weak<Shared>) {
    loop {
        // Hold the pool only while working, so that dropping the last
        // handle is never kept waiting for the reaper.
        let Some(shared) = weak.upgrade() else { return };
        if shared.is_closed() {
            return;
        }
        shared.advance_clock();
        shared.reap();
        let tick = Duration::from_millis(shared.tick_ms());
        let started = lock(&shared.reaper.started);
        if shared.is_closed() {
            return;
        }
        let guard = if shared.live() == 0 {
            shared.reaper.wake.wait(started)
        } else {
            shared
                .reaper
                .wake
                .wait_timeout(started, tick)
                .map(|(g, _)| g)
                .map_err(|p| std::sync::PoisonError::new(p.into_inner().0))
        };
        drop(guard);
        drop(shared);
    }
}
