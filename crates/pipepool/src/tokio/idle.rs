//! The idle timeout of [`CopyOptions::idle_timeout`](super::CopyOptions::idle_timeout).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::time::{Instant, Sleep};

/// Fires when an activity counter has not moved for `timeout`.
///
/// Moving bytes only records the time (no timer call); the timer is re-armed
/// lazily when it fires early, so a busy copy touches the timer wheel about
/// once per `timeout`, not once per write.
#[derive(Debug)]
pub(super) struct IdleTimer {
    /// How long without activity ends the copy.
    timeout: Duration,
    /// The activity counter last seen.
    seen: u64,
    /// When the counter last moved (or the copy started).
    last: Instant,
    /// Armed at `last + timeout` for some earlier `last`: never later than
    /// the real deadline. Created on the first poll, inside the runtime.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    /// A timer for `timeout`, or none.
    pub(super) fn new(timeout: Option<Duration>) -> Option<IdleTimer> {
        timeout.map(|timeout| IdleTimer {
            timeout,
            seen: 0,
            last: Instant::now(),
            sleep: None,
        })
    }

    /// `Ready(error of kind TimedOut)` when `activity` has not changed for
    /// `timeout`; else registers a wake-up for the deadline.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>, activity: u64) -> Poll<io::Error> {
        if activity != self.seen {
            self.seen = activity;
            self.last = Instant::now();
        }
        let deadline = self.last + self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(::tokio::time::sleep_until(deadline)));
        while sleep.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no byte moved in either direction for {:?}", self.timeout),
                ));
            }
            sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}
