//! [`State`]: what is known about one upstream at run time: the addresses
//! its name resolved to, its open connections, its failures in a row and
//! until when it backs off. Shared by the balancers of a reload that keep
//! the upstream (the state carries over).
//!
//! Passive health: an upstream whose connect fails goes last in every
//! plan for a while (1 s after one failure, doubling with each failure in
//! a row, 30 s at most); the first connect that succeeds makes it healthy
//! again.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::Upstream;

/// How long an upstream stays last in the plans after its first failure in
/// a row; each further failure doubles it, up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest an upstream stays last in the plans after failures.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What an upstream's `host:port` resolves to.
type Resolved = Result<Arc<[SocketAddr]>, String>;

/// One upstream and its state. Times are milliseconds on the clock of
/// the balancers that share it.
#[derive(Debug)]
pub(super) struct State {
    /// The address as configured.
    addr: Upstream,
    /// The addresses to connect to, or why there are none yet. An IP
    /// address is parsed once; a name is set by [`State::set_resolved`].
    resolved: RwLock<Resolved>,
    /// Connections to it that are open or connecting; only leases
    /// ([`State::enter`], [`State::leave`]) change it.
    active: AtomicUsize,
    /// Connect failures in a row (0: healthy).
    failures: AtomicU32,
    /// Until when (ms) it goes last in the plans.
    down_until: AtomicU64,
}

impl State {
    /// A new upstream: no connection, healthy; an IP address is its
    /// socket address at once, a name is not resolved yet.
    pub(super) fn new(addr: Upstream) -> State {
        State {
            resolved: RwLock::new(match addr.literal() {
                Some(ip) => Ok(Arc::from([ip])),
                None => Err(format!("`{addr}` is not resolved yet")),
            }),
            addr,
            active: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            down_until: AtomicU64::new(0),
        }
    }

    /// The address as configured.
    pub(super) fn addr(&self) -> &Upstream {
        &self.addr
    }

    /// Stores what the name resolved to. A failure keeps the addresses of
    /// the last success (if any): a DNS outage does not take a known
    /// upstream away. Returns whether the addresses changed.
    pub(super) fn set_resolved(&self, r: Result<Vec<SocketAddr>, String>) -> bool {
        let mut now = self
            .resolved
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match (r, &*now) {
            (Ok(new), Ok(old)) if **old == *new => false,
            (Ok(new), _) => {
                *now = Ok(Arc::from(new));
                true
            }
            (Err(_), Ok(_)) => false,
            (Err(e), Err(_)) => {
                *now = Err(e);
                false
            }
        }
    }

    /// The socket addresses to connect to.
    ///
    /// # Errors
    /// `NotFound` when the name has not resolved (yet), with the
    /// resolver's error.
    pub(super) fn socket_addrs(&self) -> io::Result<Arc<[SocketAddr]>> {
        match &*self.resolved.read().unwrap_or_else(PoisonError::into_inner) {
            Ok(addrs) => Ok(Arc::clone(addrs)),
            Err(e) => Err(io::Error::new(io::ErrorKind::NotFound, e.clone())),
        }
    }

    /// Connections open or connecting now.
    pub(super) fn active(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// One more connection.
    pub(super) fn enter(&self) {
        self.active.fetch_add(1, Relaxed);
    }

    /// One connection less.
    pub(super) fn leave(&self) {
        self.active.fetch_sub(1, Relaxed);
    }

    /// Whether it backs off at `now_ms` (goes last in the plans).
    pub(super) fn down_at(&self, now_ms: u64) -> bool {
        self.down_until.load(Relaxed) > now_ms
    }

    /// Records a failed connect at `now_ms`: it goes last in the plans
    /// for the returned time (doubling with each failure in a row).
    pub(super) fn failed_at(&self, now_ms: u64) -> Duration {
        let k = self.failures.fetch_add(1, Relaxed).min(16);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << k).min(MAX_BACKOFF);
        let until = now_ms.saturating_add(backoff.as_millis() as u64);
        self.down_until.fetch_max(until, Relaxed);
        backoff
    }

    /// Records a successful connect: healthy again. Returns whether it
    /// was backing off.
    pub(super) fn succeeded(&self) -> bool {
        if self.failures.load(Relaxed) == 0 {
            return false; // the common case: no write
        }
        self.failures.store(0, Relaxed);
        self.down_until.store(0, Relaxed);
        true
    }
}
