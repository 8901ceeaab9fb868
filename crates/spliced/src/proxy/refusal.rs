//! [`Refusal`]: why a client was closed at once (a metric label, a log
//! field), and [`RefusalLog`], which logs refusals without flooding.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ListenerSettings;

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
