//! Graceful shutdown: [`Shutdown`] tells the accept loops to stop,
//! [`Tracker`] counts the connections still open so that `run` can wait for
//! them for a grace period, and [`Signals`] waits for SIGINT or SIGTERM
//! (and SIGHUP, the reload).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal as unix_signal, Signal, SignalKind};
use tokio::sync::{watch, Notify};

/// A one-way switch from "running" to "shutting down", cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// A switch in the "running" position.
    pub(crate) fn new() -> Shutdown {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Flips the switch; every [`triggered`](Shutdown::triggered) resolves.
    pub(crate) fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once the switch is flipped (at once if it already is).
    pub(crate) async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail.
        let _ = rx.wait_for(|&on| on).await;
    }
}

/// Counts open connections; [`drained`](Tracker::drained) waits for zero.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    /// Live [`Tracked`] guards.
    active: AtomicUsize,
    /// Woken when `active` drops to zero.
    zero: Notify,
}

/// One open connection; counted until dropped.
#[derive(Debug)]
pub(crate) struct Tracked {
    inner: Arc<TrackerInner>,
}

impl Tracker {
    /// Counts a connection until the guard drops.
    pub(crate) fn track(&self) -> Tracked {
        self.inner.active.fetch_add(1, SeqCst);
        Tracked {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Connections open now.
    pub(crate) fn active(&self) -> usize {
        self.inner.active.load(SeqCst)
    }

    /// Waits until no connection is open or `grace` has passed; returns
    /// how many are still open.
    pub(crate) async fn drained(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let zero = self.inner.zero.notified();
            tokio::pin!(zero);
            zero.as_mut().enable();
            let open = self.active();
            if open == 0 {
                return 0;
            }
            tokio::select! {
                () = zero => {}
                () = tokio::time::sleep_until(deadline) => return self.active(),
            }
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, SeqCst) == 1 {
            self.inner.zero.notify_waiters();
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP handlers. Install them before announcing
/// the listeners, so that a signal sent right after is never fatal.
#[derive(Debug)]
pub(crate) struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

/// The name [`Signals::recv`] returns for SIGHUP.
pub(crate) const SIGHUP: &str = "SIGHUP";

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// If the handlers cannot be installed.
    pub(crate) fn install() -> io::Result<Signals> {
        Ok(Signals {
            int: unix_signal(SignalKind::interrupt())?,
            term: unix_signal(SignalKind::terminate())?,
            hup: unix_signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next SIGINT, SIGTERM or SIGHUP and returns its name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => SIGHUP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_the_last_connection() {
        let tracker = Tracker::default();
        let a = tracker.track();
        let b = tracker.track();
        assert_eq!(tracker.drained(Duration::from_millis(10)).await, 2);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(a);
            drop(b);
        });
        assert_eq!(tracker.drained(Duration::from_secs(5)).await, 0);
    }

    #[tokio::test]
    async fn trigger_wakes_waiters() {
        let s = Shutdown::new();
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.triggered().await }
        });
        s.trigger();
        waiter.await.unwrap();
        s.triggered().await; // already on: returns at once
    }
}
