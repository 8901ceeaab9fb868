//! The accept loop, and what it does when `accept(2)` fails: errors about
//! one connection (`ECONNABORTED`) are skipped; running out of fds or
//! memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) or anything unknown
//! backs off (5 ms, doubling up to 1 s) so that the loop never spins while
//! the condition lasts, and retries. It also pauses while connections
//! wait for local resources to connect their upstreams
//! ([`super::pressure`]).
//!
//! While clients arrive, the loop also keeps a timer armed ([`Anchor`]) so
//! that the timers each connection sets (the connect timeout) do not wake
//! the runtime's driver.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use rustix::io::Errno;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::pressure::Pressure;
use crate::address::Peer;
use crate::metrics::ListenerMetrics;
use crate::stream::{Acceptor, Stream};

/// First pause after a resource error.
/// Connections accepted in a row before the accept loop yields.
const ACCEPT_BATCH: u32 = 8;

const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts until `stop` is cancelled, passing each connection to `on_conn`,
/// which returns the current connect timeout (it may change with a
/// reload), for the [`Anchor`].
pub(super) async fn run(
    listener: &Acceptor,
    stop: CancellationToken,
    mut on_conn: impl FnMut(Stream, Peer) -> Duration,
    metrics: &ListenerMetrics,
    pressure: &Pressure,
) {
    let stop = stop.cancelled();
    tokio::pin!(stop);
    let mut backoff = Backoff::default();
    let mut accepted_in_a_row = 0;
    let mut anchor = Anchor::new();
    // The last connection's connect timeout.
    let mut connect_timeout = Duration::ZERO;
    loop {
        if let Some(pause) = pressure.remaining() {
            // Accepted clients wait for fds or memory to connect their
            // upstreams: a new client would take what they wait for.
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(pause) => continue,
            }
        }
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            () = anchor.sleep.as_mut(), if anchor.armed => {
                anchor.fired(connect_timeout);
                continue;
            }
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.reset();
                connect_timeout = on_conn(stream, peer);
                anchor.client(connect_timeout);
                accepted_in_a_row += 1;
                if accepted_in_a_row == ACCEPT_BATCH {
                    // Let the connections already open run before the next
                    // batch: without this, tokio's coop budget lets one
                    // accept loop take up to 128 connections in a row while
                    // established ones wait (p99 latency doubled with one
                    // worker and 256 connecting clients).
                    accepted_in_a_row = 0;
                    tokio::task::yield_now().await;
                }
            }
            Err(e) => {
                metrics.accept_errors.inc();
                let Some(pause) = backoff.after(&e) else {
                    tracing::debug!("accept: {e} (skipped)");
                    continue;
                };
                tracing::warn!("accept failed: {e}; pausing the listener for {pause:?}");
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Shortest and longest period of the [`Anchor`]'s timer.
const ANCHOR_MIN: Duration = Duration::from_millis(100);
const ANCHOR_MAX: Duration = Duration::from_secs(1);

/// A timer the accept loop keeps armed, at most one period ahead, while
/// clients arrive, so that the timers their connections set are never the
/// runtime's earliest.
///
/// tokio's driver sleeps in `epoll_wait` until its earliest timer, and a
/// new timer due before that wakes it (a `write` to its eventfd), even
/// when the caller is the thread that will compute the next sleep anyway.
/// Each connection sets one: its connect timeout, with nothing earlier in
/// the wheel (the idle timeouts are minutes away) -- one `write` per
/// connection. With this timer due within the period, and the period no
/// longer than the connect timeout, a connect timeout is never the
/// earliest. It costs one wake-up per period while clients arrive, and
/// nothing once they stop (the timer fires once more and stays off).
/// Only the count of wake-ups depends on it: every timeout fires on time
/// either way.
struct Anchor {
    sleep: Pin<Box<Sleep>>,
    /// The timer is set; cleared when it fires with no client since.
    armed: bool,
    /// A client arrived since the timer was last set.
    busy: bool,
}

impl Anchor {
    fn new() -> Anchor {
        Anchor {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
            busy: false,
        }
    }

    /// The period for `connect_timeout`: no longer than it, but within
    /// [`ANCHOR_MIN`]..=[`ANCHOR_MAX`] (a shorter connect timeout just
    /// wakes the driver as before).
    fn period(connect_timeout: Duration) -> Duration {
        connect_timeout.clamp(ANCHOR_MIN, ANCHOR_MAX)
    }

    /// A client was accepted: set the timer if it is off.
    fn client(&mut self, connect_timeout: Duration) {
        self.busy = true;
        if !self.armed {
            self.armed = true;
            self.rearm(connect_timeout);
        }
    }

    /// The timer fired: set it again if a client came meanwhile.
    fn fired(&mut self, connect_timeout: Duration) {
        self.armed = std::mem::take(&mut self.busy);
        if self.armed {
            self.rearm(connect_timeout);
        }
    }

    fn rearm(&mut self, connect_timeout: Duration) {
        let at = tokio::time::Instant::now() + Anchor::period(connect_timeout);
        self.sleep.as_mut().reset(at);
    }
}

/// The pause after consecutive accept errors.
#[derive(Debug, Default)]
struct Backoff {
    /// The last pause; zero after a success.
    current: Duration,
}

impl Backoff {
    fn reset(&mut self) {
        self.current = Duration::ZERO;
    }

    /// How long to pause after `e`; `None` for an error that concerns only
    /// the connection that was being accepted.
    fn after(&mut self, e: &io::Error) -> Option<Duration> {
        let errno = e.raw_os_error().map(Errno::from_raw_os_error);
        let per_connection = matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        ) || errno == Some(Errno::PROTO);
        if per_connection {
            return None;
        }
        self.current = (self.current * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        Some(self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The anchor stays set while clients come, and goes off after one
    /// period without any; its period never exceeds the connect timeout
    /// (within its bounds).
    #[tokio::test(flavor = "current_thread")]
    async fn anchor_follows_the_clients() {
        use tokio::time::Instant;
        assert_eq!(Anchor::period(Duration::from_secs(3)), ANCHOR_MAX);
        assert_eq!(
            Anchor::period(Duration::from_millis(300)),
            Duration::from_millis(300)
        );
        assert_eq!(Anchor::period(Duration::from_millis(1)), ANCHOR_MIN);
        let timeout = ANCHOR_MIN;
        // Set between `before` and now, one period ahead.
        let set_within = |a: &Anchor, before: Instant| {
            let d = a.sleep.deadline();
            assert!(
                d >= before + timeout && d <= Instant::now() + timeout,
                "{d:?}"
            );
        };
        let mut a = Anchor::new();
        assert!(!a.armed);
        let before = Instant::now();
        a.client(timeout);
        assert!(a.armed);
        set_within(&a, before);
        let first = a.sleep.deadline();
        a.client(timeout); // already set: not moved
        assert_eq!(a.sleep.deadline(), first);
        a.sleep.as_mut().await;
        let before = Instant::now();
        a.fired(timeout); // clients came: set again
        assert!(a.armed);
        set_within(&a, before);
        a.sleep.as_mut().await;
        a.fired(timeout); // none came: off
        assert!(!a.armed);
        let before = Instant::now();
        a.client(timeout);
        assert!(a.armed);
        set_within(&a, before);
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_skips_per_connection_errors() {
        let mut b = Backoff::default();
        let emfile = io::Error::from_raw_os_error(Errno::MFILE.raw_os_error());
        assert_eq!(b.after(&emfile), Some(BACKOFF_MIN));
        assert_eq!(b.after(&emfile), Some(BACKOFF_MIN * 2));
        for _ in 0..20 {
            b.after(&emfile);
        }
        assert_eq!(b.after(&emfile), Some(BACKOFF_MAX));
        b.reset();
        assert_eq!(b.after(&emfile), Some(BACKOFF_MIN));
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.after(&aborted), None);
    }
}
