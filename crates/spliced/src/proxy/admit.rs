//! Admission: whether a client just accepted may be served
//! ([`Gate::admit`]: `Result<Admitted, Refusal>`), and what an admitted
//! one holds against its listener's bounds until its connection ends
//! ([`Admitted`]). Refusals are counted and logged without flooding
//! ([`RefusalLog`]).
//!
//! At accept, before a byte is read: `allow`/`deny` on the peer (or,
//! with `accept_proxy`, whether the peer may send a PROXY header at all),
//! then `max_conns`. The checks that need the client's real address (the
//! header's) or its first bytes are in [`super::conn`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use super::listener::ListenerState;
use crate::config::ListenerSettings;

/// The admission state of one listener that outlives its reloads: its
/// open connections, checked against the current `max_conns` (a reload
/// that lowers it refuses new clients until enough have closed).
#[derive(Debug, Default)]
pub(super) struct Gate {
    open: Arc<AtomicUsize>,
}

/// A client admitted: counted against its listener's `max_conns`, in the
/// `active` gauge and in both trackers (the process's and the
/// listener's, for the grace periods) until dropped, also when the
/// connection's task panics or is dropped by the runtime.
#[derive(Debug)]
pub(super) struct Admitted {
    _slot: Slot,
    _active: ActiveGuard,
    _tracked: [TaskTrackerToken; 2],
}

impl Gate {
    /// Admits the client at `peer` to the listener whose current state is
    /// `shared`, counted in `trackers`; or says why not (counting a
    /// `max_conns` refusal in the `refused` metric).
    ///
    /// # Errors
    /// The [`Refusal`]: the client is to be closed at once.
    pub(super) fn admit(
        &self,
        shared: &ListenerState,
        peer: SocketAddr,
        trackers: &[TaskTracker; 2],
    ) -> Result<Admitted, Refusal> {
        let settings = &shared.settings;
        let m = &shared.metrics;
        // With accept_proxy the client's address is the header's
        // (checked once it is read), and only a trusted peer may send
        // one: anyone else is closed before a byte is read.
        if settings.accept_proxy {
            if !shared.acl.trusts_proxy(peer.ip()) {
                return Err(Refusal::UntrustedProxy);
            }
        } else if !shared.acl.permits(peer.ip()) {
            return Err(Refusal::Denied);
        }
        if self.open.fetch_add(1, Relaxed) >= settings.max_conns {
            self.open.fetch_sub(1, Relaxed);
            m.refused.inc();
            return Err(Refusal::MaxConns);
        }
        let slot = Slot(Arc::clone(&self.open));
        m.accepted.inc();
        Ok(Admitted {
            _slot: slot,
            _active: ActiveGuard::new(m.active.clone()),
            _tracked: trackers.each_ref().map(TaskTracker::token),
        })
    }
}

/// One connection counted against its listener's `max_conns` until dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// One count in the `active` connections gauge, taken back when dropped.
#[derive(Debug)]
struct ActiveGuard(Gauge);

impl ActiveGuard {
    fn new(gauge: Gauge) -> ActiveGuard {
        gauge.inc();
        ActiveGuard(gauge)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Why a client was closed at once, as a metric label and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `max_conns` connections were open.
    MaxConns,
    /// The address is denied, or not allowed (`allow`/`deny`).
    Denied,
    /// `max_conns_per_source` connections from this address were open.
    PerSource,
    /// No valid PROXY header (`accept_proxy`).
    ProxyHeader,
    /// With `accept_proxy`, a peer outside `accept_proxy_from`: refused
    /// before any byte is read.
    UntrustedProxy,
}

impl Refusal {
    const ALL: usize = 5;

    /// The `reason` label of `spliced_refused_total`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConns => "max_conns",
            Refusal::Denied => "denied",
            Refusal::PerSource => "max_conns_per_source",
            Refusal::ProxyHeader => "proxy_header",
            Refusal::UntrustedProxy => "untrusted_proxy",
        }
    }
}

/// Logs refusals: each one at debug level, and a warning per reason at
/// most once a second with the count since the last one (a burst of
/// refused clients is one line, not thousands).
#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    bursts: [Burst; Refusal::ALL],
}

#[derive(Debug, Default)]
struct Burst {
    /// Refusals since the last warning.
    since_warn: AtomicU64,
    /// When the last warning was logged.
    last_warn: Mutex<Option<Instant>>,
}

impl RefusalLog {
    /// Notes one refused client and why (`detail`).
    pub(super) fn note(
        &self,
        listener: &str,
        peer: SocketAddr,
        why: Refusal,
        detail: &dyn std::fmt::Display,
    ) {
        tracing::debug!(listener, client = %peer, reason = why.as_str(), "refused: {detail}");
        let burst = &self.bursts[why as usize];
        let n = burst.since_warn.fetch_add(1, Relaxed) + 1;
        let mut last = burst.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        if !last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            *last = Some(Instant::now());
            burst.since_warn.store(0, Relaxed);
            tracing::warn!(
                listener,
                reason = why.as_str(),
                "refused {n} client(s): {detail} (last: {peer})"
            );
        }
    }
}

impl Refusal {
    /// Why, for the log line of a refusal decided from `settings` alone
    /// (at accept, or `max_conns_per_source`).
    pub(super) fn detail(self, settings: &ListenerSettings) -> Detail<'_> {
        Detail {
            why: self,
            settings,
        }
    }
}

/// The text of a [`Refusal`] under its listener's settings, written only
/// when logged.
#[derive(Debug)]
pub(super) struct Detail<'a> {
    why: Refusal,
    settings: &'a ListenerSettings,
}

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            Refusal::MaxConns => {
                write!(
                    f,
                    "max_conns ({}) connections open",
                    self.settings.max_conns
                )
            }
            Refusal::Denied => f.write_str("address not allowed"),
            Refusal::PerSource => write!(
                f,
                "max_conns_per_source ({}) connections open from this address",
                self.settings.max_conns_per_source.unwrap_or_default()
            ),
            Refusal::ProxyHeader => f.write_str("no valid PROXY header"),
            Refusal::UntrustedProxy => f.write_str("peer not in accept_proxy_from"),
        }
    }
}
