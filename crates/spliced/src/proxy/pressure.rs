//! Running out of local resources while connecting an upstream: the
//! upstream's `socket(2)` or its registration fails with `EMFILE`,
//! `ENFILE`, `ENOBUFS` or `ENOMEM`. That says nothing of the upstream's
//! health: it is not blamed (no passive-health backoff), the connection
//! waits and tries again within its connect timeout, and every accept
//! loop of the process pauses ([`Pressure`]) so that no new client takes
//! an fd that an accepted one is waiting for.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;

/// How long the accept loops pause after each local resource error.
pub(super) const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// First wait of a connection before it tries its upstream again.
const RETRY_MIN: Duration = Duration::from_millis(5);
/// Longest wait between two tries (the wait doubles).
const RETRY_MAX: Duration = Duration::from_millis(200);

/// Whether `e` is this process (or host) out of fds, socket buffers or
/// memory, rather than anything about the peer.
pub(super) fn is_local_resource(e: &io::Error) -> bool {
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    matches!(
        errno,
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

/// When the accept loops may accept again: the process-wide signal that
/// connections are waiting for local resources.
#[derive(Debug)]
pub(crate) struct Pressure {
    /// The origin of `until`.
    base: Instant,
    /// Nanoseconds after `base` until which accepting pauses (0: never).
    until: AtomicU64,
}

impl Default for Pressure {
    fn default() -> Pressure {
        Pressure {
            base: Instant::now(),
            until: AtomicU64::new(0),
        }
    }
}

impl Pressure {
    /// A connection hit local resource error `e`: the accept loops pause
    /// for [`ACCEPT_PAUSE`] from now. Logged when a pause begins (at most
    /// once per [`ACCEPT_PAUSE`]).
    pub(super) fn hit(&self, e: &io::Error) {
        let now = self.base.elapsed();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let before = self
            .until
            .fetch_max(nanos(now + ACCEPT_PAUSE), Ordering::Relaxed);
        if before <= nanos(now) {
            tracing::warn!(
                "connecting an upstream: {e}; connections wait for the resource and accepting \
                 pauses (the upstream is not blamed)"
            );
        }
    }

    /// How long accepting still pauses; `None` when it may go on.
    pub(super) fn remaining(&self) -> Option<Duration> {
        let until = Duration::from_nanos(self.until.load(Ordering::Relaxed));
        until
            .checked_sub(self.base.elapsed())
            .filter(|d| !d.is_zero())
    }
}

/// The waits of one connection between its tries: [`RETRY_MIN`],
/// doubling to [`RETRY_MAX`].
#[derive(Debug, Default)]
pub(super) struct Retry {
    last: Duration,
}

impl Retry {
    /// The next wait.
    pub(super) fn next(&mut self) -> Duration {
        self.last = (self.last * 2).clamp(RETRY_MIN, RETRY_MAX);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errors_are_told_from_the_peers() {
        for errno in [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM] {
            let e = io::Error::from_raw_os_error(errno.raw_os_error());
            assert!(is_local_resource(&e), "{e}");
        }
        for errno in [Errno::CONNREFUSED, Errno::TIMEDOUT, Errno::HOSTUNREACH] {
            let e = io::Error::from_raw_os_error(errno.raw_os_error());
            assert!(!is_local_resource(&e), "{e}");
        }
        assert!(!is_local_resource(&io::Error::other("no errno")));
    }

    #[test]
    fn a_hit_pauses_accepting_for_a_while() {
        let p = Pressure::default();
        assert_eq!(p.remaining(), None);
        p.hit(&io::Error::from_raw_os_error(Errno::MFILE.raw_os_error()));
        let left = p.remaining().expect("paused after a hit");
        assert!(left <= ACCEPT_PAUSE, "{left:?}");
        std::thread::sleep(ACCEPT_PAUSE);
        assert_eq!(p.remaining(), None);
    }

    #[test]
    fn retries_double_to_a_cap() {
        let mut r = Retry::default();
        assert_eq!(r.next(), RETRY_MIN);
        assert_eq!(r.next(), RETRY_MIN * 2);
        for _ in 0..20 {
            r.next();
        }
        assert_eq!(r.next(), RETRY_MAX);
    }
}
