//! [`State`]: what is known about one upstream at run time: the addresses
//! its name resolved to, its open connections, its failures in a row and
//! until when it backs off. Shared by the balancers of a reload that keep
//! the upstream (the state carries over).
//!
//! Passive health: an upstream whose connect fails goes last in every
//! plan for a while (1 s after one failure, doubling with each failure in
//! a row, 30 s at most); the first connect that succeeds makes it healthy
//! again.
//!
//! Active health ([`super::health`]): whether the checks hold it down,
//! their counts and the last result. Run-time control
//! ([`super::control`]): an [`Admin`] state and a weight that override
//! the file; they live here, so a reload that keeps the upstream keeps
//! them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use super::Upstream;

/// How long an upstream stays last in the plans after its first failure in
/// a row; each further failure doubles it, up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest an upstream stays last in the plans after failures.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the operator set at run time (`spliced ctl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admin {
    /// As the file says: new clients when usable.
    Enabled,
    /// No new clients; open connections run to their end.
    Drain,
    /// As `Drain`, and its health checks pause.
    Disabled,
}

impl Admin {
    fn from_u8(v: u8) -> Admin {
        match v {
            1 => Admin::Drain,
            2 => Admin::Disabled,
            _ => Admin::Enabled,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Admin::Enabled => 0,
            Admin::Drain => 1,
            Admin::Disabled => 2,
        }
    }
}

/// `weight_override` when none is set.
const NO_WEIGHT: u32 = u32::MAX;

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
    /// Held down by the active checks (no new client).
    checked_down: AtomicBool,
    /// Active checks passed and failed.
    checks_passed: AtomicU64,
    checks_failed: AtomicU64,
    /// The last check's result (`pass`, or `fail: why`); empty: none yet.
    last_check: Mutex<String>,
    /// An [`Admin`], set at run time.
    admin: AtomicU8,
    /// A weight set at run time ([`NO_WEIGHT`]: the file's).
    weight_override: AtomicU32,
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
            checked_down: AtomicBool::new(false),
            checks_passed: AtomicU64::new(0),
            checks_failed: AtomicU64::new(0),
            last_check: Mutex::new(String::new()),
            admin: AtomicU8::new(Admin::Enabled.as_u8()),
            weight_override: AtomicU32::new(NO_WEIGHT),
        }
    }

    /// One more connection, unless `max` are open already. Returns
    /// whether it entered.
    pub(super) fn try_enter(&self, max: Option<usize>) -> bool {
        let limit = max.unwrap_or(usize::MAX);
        self.active
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .is_ok()
    }

    /// The run-time state.
    pub(super) fn admin(&self) -> Admin {
        Admin::from_u8(self.admin.load(Relaxed))
    }

    /// Sets the run-time state.
    pub(super) fn set_admin(&self, a: Admin) {
        self.admin.store(a.as_u8(), Relaxed);
    }

    /// The weight set at run time, if any.
    pub(super) fn weight_override(&self) -> Option<u32> {
        Some(self.weight_override.load(Relaxed)).filter(|&w| w != NO_WEIGHT)
    }

    /// Sets the run-time weight.
    pub(super) fn set_weight(&self, w: u32) {
        self.weight_override.store(w.min(NO_WEIGHT - 1), Relaxed);
    }

    /// Whether the active checks hold it down.
    pub(super) fn checked_down(&self) -> bool {
        self.checked_down.load(Relaxed)
    }

    /// Records a check's result (`Ok` or why it failed); `now_down` is
    /// the state it leaves (decided by the checker's rise and fall).
    /// Returns whether that changed the state.
    pub(super) fn checked(&self, result: &Result<(), String>, now_down: bool) -> bool {
        let text = match result {
            Ok(()) => {
                self.checks_passed.fetch_add(1, Relaxed);
                "pass".to_owned()
            }
            Err(e) => {
                self.checks_failed.fetch_add(1, Relaxed);
                format!("fail: {e}")
            }
        };
        *self
            .last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = text;
        self.checked_down.swap(now_down, Relaxed) != now_down
    }

    /// No longer held down by the checks (they were turned off).
    pub(super) fn clear_checked(&self) {
        self.checked_down.store(false, Relaxed);
    }

    /// Checks passed and failed so far.
    pub(super) fn check_counts(&self) -> (u64, u64) {
        (
            self.checks_passed.load(Relaxed),
            self.checks_failed.load(Relaxed),
        )
    }

    /// The last check's result (`-`: none yet).
    pub(super) fn last_check(&self) -> String {
        let s = self
            .last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.clone()
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
