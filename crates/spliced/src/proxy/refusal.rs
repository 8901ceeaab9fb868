//! [`Refusal`]: why a client was closed at once (a metric label, a log
//! field), and [`RefusalLog`], which logs refusals without flooding:
//! spliced's log once a second per reason, the access log at most
//! [`LINES_PER_SECOND`] lines a second per reason (refusals, and
//! connections that found no upstream), each line after a gap saying how
//! many were left out.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::access_log::Termination;
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

/// Access log lines per second and per reason, at most, for refusals
/// and for connections that found no upstream.
pub(super) const LINES_PER_SECOND: u32 = 10;

impl Refusal {
    const ALL: usize = 5;

    /// Its access log state when refused at accept, before a byte was
    /// read (`max_conns`, `allow`/`deny` on the peer, `accept_proxy_from`).
    pub(super) fn at_accept(self) -> Termination {
        match self {
            Refusal::MaxConns => Termination::MaxConns,
            Refusal::PerSource => Termination::PerSource,
            Refusal::ProxyHeader => Termination::ClientPreamble,
            Refusal::Denied | Refusal::UntrustedProxy => Termination::RefusedAtAccept,
        }
    }

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
    /// The access log's lines of connections that found no upstream.
    no_upstream: Mutex<Lines>,
}

/// The access log lines of one reason in the current second.
#[derive(Debug, Default)]
struct Lines {
    /// When the current second began.
    since: Option<Instant>,
    /// Lines written in it.
    written: u32,
    /// Left out since the last line written.
    left_out: u64,
}

impl Lines {
    /// Whether to write one more line now: `Some(left out before it)`.
    fn take(&mut self) -> Option<u64> {
        let now = Instant::now();
        let in_second = |t: Instant| now.duration_since(t) < Duration::from_secs(1);
        if !self.since.is_some_and(in_second) {
            self.since = Some(now);
            self.written = 0;
        }
        if self.written < LINES_PER_SECOND {
            self.written += 1;
            Some(std::mem::take(&mut self.left_out))
        } else {
            self.left_out += 1;
            None
        }
    }
}

#[derive(Debug, Default)]
struct Burst {
    /// Refusals since the last warning.
    since_warn: AtomicU64,
    /// When the last warning was logged, and the access log's lines.
    last_warn: Mutex<(Option<Instant>, Lines)>,
}

impl RefusalLog {
    /// Notes one refused client and why (`detail`); says whether the
    /// access log writes its line: `Some(left out before it)`.
    pub(super) fn note(
        &self,
        listener: &str,
        peer: crate::address::Peer,
        why: Refusal,
        detail: &dyn std::fmt::Display,
    ) -> Option<u64> {
        tracing::debug!(listener, client = %peer, reason = why.as_str(), "refused: {detail}");
        let burst = &self.bursts[why as usize];
        let n = burst.since_warn.fetch_add(1, Relaxed) + 1;
        let mut guard = burst.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        let (last, lines) = &mut *guard;
        let line = lines.take();
        if !last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            *last = Some(Instant::now());
            burst.since_warn.store(0, Relaxed);
            tracing::warn!(
                listener,
                reason = why.as_str(),
                "refused {n} client(s): {detail} (last: {peer})"
            );
        }
        line
    }

    /// Whether the access log writes the line of one more connection
    /// that found no upstream: `Some(left out before it)`.
    pub(super) fn may_log_no_upstream(&self) -> Option<u64> {
        self.no_upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of refusals of one reason: LINES_PER_SECOND lines, the rest
    /// left out and counted on the next line, a second later; another
    /// reason has its own budget.
    #[test]
    fn access_log_lines_are_bounded_per_second_with_the_count_left_out() {
        let log = RefusalLog::default();
        let peer = crate::address::Peer::Ip("192.0.2.1:5".parse().unwrap());
        let mut lines = Vec::new();
        for _ in 0..LINES_PER_SECOND + 25 {
            lines.push(log.note("l", peer, Refusal::Denied, &"x"));
        }
        let written: Vec<u64> = lines.iter().flatten().copied().collect();
        assert_eq!(written, vec![0; LINES_PER_SECOND as usize]);
        assert_eq!(log.note("l", peer, Refusal::MaxConns, &"x"), Some(0));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(log.note("l", peer, Refusal::Denied, &"x"), Some(25));
        assert_eq!(log.note("l", peer, Refusal::Denied, &"x"), Some(0));
        for _ in 0..LINES_PER_SECOND {
            log.may_log_no_upstream();
        }
        assert_eq!(log.may_log_no_upstream(), None);
    }
}
