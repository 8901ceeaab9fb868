//! [`Entry`]: what the access log says about one closed connection, and
//! [`Termination`], its two-letter state in HAProxy's spirit: who or what
//! ended it, then in which phase.
//!
//! | code | meaning |
//! |---|---|
//! | `C-` | normal end, the client closed first (then the upstream) |
//! | `S-` | normal end, the upstream closed first (then the client) |
//! | `CD` | the client reset the connection (or an I/O error on its side) while data flowed |
//! | `SD` | the upstream reset the connection (or an I/O error on its side) while data flowed |
//! | `cD` | `idle_timeout`: no byte either way for that long |
//! | `PD` | spliced cut the stream itself with a reset (reserved) |
//! | `KD` | the listener was removed by a reload and the grace period ran out (its upstream and byte counts went with the connection: `-` and 0) |
//! | `CR` | the client closed, reset, or sent a bad PROXY header before an upstream was dialled |
//! | `cR` | `proxy_timeout`: no whole PROXY header in time |
//! | `IR` | spliced failed before dialling (an internal error on the client's socket) |
//! | `PA` | refused at accept by `allow`/`deny`, or a peer outside `accept_proxy_from` |
//! | `PR` | refused by `allow`/`deny` on the PROXY header's address |
//! | `LA` | refused at accept: `max_conns` connections open |
//! | `LR` | refused: `max_conns_per_source` connections open from this address |
//! | `SC` | no upstream accepted: the last attempt was refused or failed (the upstream field names the one tried last; `-` when none was usable) |
//! | `sC` | no upstream accepted: the last attempt timed out (`connect_timeout`; the upstream field names it) |
//! | `RC` | no upstream dialled: spliced ran out of a local resource (fds, buffers, memory) |
//!
//! First letter: `C` client, `S` server (upstream), `c`/`s` a timeout on
//! that side, `P` spliced's policy (access lists) or spliced itself, `L`
//! a limit, `R` a local resource, `K` killed, `I` internal. Second: `A`
//! at accept (no byte read), `R` reading the client's preamble (PROXY
//! header, ClientHello), `C` connecting the upstream, `D` data, `-` none
//! (a normal end).

use crate::address::Peer;
use std::fmt;
use std::time::SystemTime;

use pipepool::Method;
use serde::Serialize;

/// How a connection's bytes moved: client -> upstream, upstream ->
/// client. Shown as one word when both agree (`splice`), else `up/down`
/// (`splice/userspace`), without an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Methods(pub(crate) Method, pub(crate) Method);

impl fmt::Display for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())?;
        if self.1 != self.0 {
            f.write_str("/")?;
            f.write_str(self.1.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for Methods {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a connection ended: see the [module docs](self) for the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Termination {
    /// `C-`
    ClientClosedFirst,
    /// `S-`
    ServerClosedFirst,
    /// `CD`
    ClientReset,
    /// `SD`
    ServerReset,
    /// `cD`
    IdleTimeout,
    /// `PD`: reserved for a reset spliced sends on its own.
    #[allow(dead_code)]
    ResetSent,
    /// `KD`
    Killed,
    /// `CR`
    ClientPreamble,
    /// `cR`
    PreambleTimeout,
    /// `IR`
    Internal,
    /// `PA`
    RefusedAtAccept,
    /// `PR`
    RefusedByHeader,
    /// `LA`
    MaxConns,
    /// `LR`
    PerSource,
    /// `SC`
    UpstreamRefused,
    /// `sC`
    ConnectTimeout,
    /// `RC`
    LocalResource,
}

impl Termination {
    /// The two letters.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Termination::ClientClosedFirst => "C-",
            Termination::ServerClosedFirst => "S-",
            Termination::ClientReset => "CD",
            Termination::ServerReset => "SD",
            Termination::IdleTimeout => "cD",
            Termination::ResetSent => "PD",
            Termination::Killed => "KD",
            Termination::ClientPreamble => "CR",
            Termination::PreambleTimeout => "cR",
            Termination::Internal => "IR",
            Termination::RefusedAtAccept => "PA",
            Termination::RefusedByHeader => "PR",
            Termination::MaxConns => "LA",
            Termination::PerSource => "LR",
            Termination::UpstreamRefused => "SC",
            Termination::ConnectTimeout => "sC",
            Termination::LocalResource => "RC",
        }
    }
}

/// One closed connection, as the access log writes it. Borrowed: built on
/// the stack at the end of a connection, formatted at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    /// When the client was accepted.
    pub(crate) start: SystemTime,
    /// The client (the PROXY header's address with `accept_proxy`).
    pub(crate) client: Peer,
    /// With `accept_proxy`: the balancer that sent the header.
    pub(crate) via: Option<Peer>,
    /// The listener's name.
    pub(crate) listener: &'a str,
    /// The upstream connected (or last tried), if any.
    pub(crate) upstream: Option<&'a str>,
    /// The server name of the ClientHello, with SNI routes.
    pub(crate) sni: Option<&'a str>,
    /// Milliseconds from accept to the upstream's connect; `None`: never
    /// connected.
    pub(crate) connect_ms: Option<u64>,
    /// Milliseconds from accept to close.
    pub(crate) total_ms: u64,
    /// Bytes written to the upstream.
    pub(crate) to_upstream: u64,
    /// Bytes written to the client.
    pub(crate) to_client: u64,
    /// How each way was copied; `None`: nothing was forwarded (refused
    /// or failed before).
    pub(crate) method: Option<Methods>,
    /// How it ended.
    pub(crate) termination: Termination,
    /// For a refusal: its `spliced_refused_total` reason.
    pub(crate) reason: Option<&'static str>,
    /// For a refusal logged after others of its kind were not (the rate
    /// bound): how many were left out since the last line.
    pub(crate) suppressed: u64,
}

impl<'a> Entry<'a> {
    /// An entry for a client closed before anything was forwarded.
    pub(crate) fn refused(
        start: SystemTime,
        client: Peer,
        listener: &'a str,
        termination: Termination,
    ) -> Entry<'a> {
        Entry {
            start,
            client,
            via: None,
            listener,
            upstream: None,
            sni: None,
            connect_ms: None,
            total_ms: 0,
            to_upstream: 0,
            to_client: 0,
            method: None,
            termination,
            reason: None,
            suppressed: 0,
        }
    }
}

/// The JSON form of an [`Entry`] (one object per line).
#[derive(Serialize)]
pub(super) struct Json<'a> {
    pub(super) time: &'a str,
    pub(super) client: Peer,
    pub(super) via: Option<Peer>,
    pub(super) listener: &'a str,
    pub(super) upstream: Option<&'a str>,
    pub(super) sni: Option<&'a str>,
    pub(super) connect_ms: Option<u64>,
    pub(super) total_ms: u64,
    pub(super) to_upstream: u64,
    pub(super) to_client: u64,
    pub(super) method: Option<Methods>,
    pub(super) state: &'static str,
    pub(super) reason: Option<&'static str>,
    pub(super) suppressed: u64,
}
