//! One client connection: the PROXY header if `accept_proxy`, the access
//! checks on the client's address, the SNI route if any, connect an
//! upstream (and write it a PROXY header if `send_proxy`), forward both
//! ways, then log one line and count the outcome: the access log's line
//! ([`crate::access_log`]) when it is on, else a `tracing` info line. A
//! stream cut by an error or the idle timeout is closed with an RST on
//! each side still connected ([`abort`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::AsyncWriteExt;

use super::proxy_header::{self, Received};
use super::refusal::Refusal;
use super::state::ListenerState;
use super::{abort, connect, sni};
use crate::access_log::{Entry, Methods, Termination};
use crate::acl::Sources;
use crate::address::Peer;
use crate::config::ProxyVersion;
use crate::metrics::Ending;
use crate::stream::Stream;

/// Serves `client` (accepted from `peer`) until both directions are done
/// or an error.
/// `sources` counts the listener's open connections per client address
/// (across reloads); `accepted`: when (for the access log).
pub(super) async fn handle(
    shared: &Arc<ListenerState>,
    sources: &Arc<Sources>,
    mut client: Stream,
    peer: Peer,
    accepted: SystemTime,
) {
    let start = Instant::now();
    let settings = &shared.settings;
    let name = settings.name.as_str();
    // The client as everything else sees it, and where it connected.
    let (mut src, mut dst) = (peer, None);
    if let Stream::Tcp(tcp) = &client {
        let options = crate::net::tcp_options(
            tcp,
            settings.client_keepalive.as_ref(),
            settings.client_user_timeout,
        );
        if let Err(e) = options {
            tracing::debug!(listener = name, client = %peer, "client keepalive or user timeout: {e}");
        }
    }
    if settings.accept_proxy {
        match proxy_header::read(&mut client, settings.proxy_timeout).await {
            Ok(Received::Proxied { src: s, dst: d }) => (src, dst) = (Peer::Ip(s), Some(d)),
            Ok(Received::Unix) => (src, dst) = (Peer::Unix, None),
            Ok(Received::Local) => {}
            Err(e) => {
                let state = if matches!(e, proxy_header::HeaderError::Timeout(_)) {
                    Termination::PreambleTimeout
                } else {
                    Termination::ClientPreamble
                };
                return shared.refuse(peer, Refusal::ProxyHeader, state, accepted, &e);
            }
        }
        if !shared.acl.permits_peer(src) {
            let why = Refusal::Denied;
            let state = Termination::RefusedByHeader;
            return shared.refuse(src, why, state, accepted, &why.detail(settings));
        }
    }
    // Counted even with no bound set: a reload that sets one sees the
    // connections already open.
    let max = settings.max_conns_per_source;
    let Some(_slot) = sources.enter(src.ip(), max) else {
        let why = Refusal::PerSource;
        let state = Termination::PerSource;
        return shared.refuse(src, why, state, accepted, &why.detail(settings));
    };
    // The client has TCP_NODELAY from the listener (`net::listen`).
    let mut balancer = &shared.balancer;
    let mut server_name = None;
    // (A Unix listener has no routes: refused at load.)
    if let (false, Stream::Tcp(tcp)) = (shared.routes.is_empty(), &client) {
        let peeked = sni::server_name(tcp, settings.sni_timeout).await;
        if peeked.rearm {
            let Stream::Tcp(tcp) = client else {
                unreachable!("matched as TCP above");
            };
            client = match sni::rearm(tcp) {
                Ok(c) => Stream::Tcp(c),
                Err(e) => {
                    shared.metrics.closed(Ending::Error);
                    let mut entry = Entry::refused(accepted, src, name, Termination::Internal);
                    entry.total_ms = elapsed_ms(accepted);
                    shared.access_log.record(&entry);
                    tracing::warn!(
                        listener = name,
                        client = %src,
                        error = %e,
                        "connection closed: cannot register the socket again"
                    );
                    return;
                }
            };
        }
        server_name = peeked.name;
        if let Some(group) = server_name.as_deref().and_then(|n| shared.routes.find(n)) {
            balancer = group;
        }
    }
    let via = settings.accept_proxy.then_some(peer);
    let (mut upstream, lease, connected_ms) =
        match connect::connect(shared, balancer, src.ip()).await {
            Ok((upstream, lease)) => (upstream, lease, Some(elapsed_ms(accepted))),
            Err(connect::NoUpstream { error: e, last }) => {
                shared.metrics.closed(Ending::NoUpstream);
                if let Some(suppressed) = shared.may_log_no_upstream() {
                    let mut entry = Entry::refused(accepted, src, name, no_upstream(&e));
                    entry.upstream = last.map(|i| balancer.addr(i));
                    entry.via = via;
                    entry.sni = server_name.as_deref();
                    entry.total_ms = elapsed_ms(accepted);
                    entry.suppressed = suppressed;
                    shared.access_log.record(&entry);
                }
                tracing::warn!(
                    listener = name,
                    client = %src,
                    via = via.map(tracing::field::display),
                    sni = server_name.as_deref(),
                    duration_ms = start.elapsed().as_millis() as u64,
                    error = %e,
                    "connection closed: no upstream"
                );
                return;
            }
        };
    if let Stream::Tcp(tcp) = &upstream {
        // Forwarded bytes are not worth holding back: the sender already
        // chose its segment sizes. (The client has it from the listener.)
        let _ = tcp.set_nodelay(true);
        let options = crate::net::tcp_options(
            tcp,
            settings.upstream_keepalive.as_ref(),
            settings.upstream_user_timeout,
        );
        if let Err(e) = options {
            tracing::debug!(
                listener = name,
                upstream = lease.addr(),
                "upstream keepalive or user timeout: {e}"
            );
        }
    }
    let header_error = match settings.send_proxy {
        Some(version) => send_header(shared, &client, &mut upstream, version, src, dst)
            .await
            .err(),
        None => None,
    };
    let outcome = match header_error {
        None => Some(
            shared
                .forwarder
                .run(&mut client, &mut upstream, &shared.metrics.progress)
                .await,
        ),
        Some(_) => None,
    };
    let error = outcome
        .as_ref()
        .map_or(header_error.as_ref(), |o| o.error.as_ref());
    let state = match (error, &outcome) {
        (None, Some(o)) if o.client_closed_first => Termination::ClientClosedFirst,
        (None, _) => Termination::ServerClosedFirst,
        (Some(_), None) => Termination::ServerReset, // writing the PROXY header
        (Some(e), Some(_)) => cut_by(e, &client),
    };
    let reset_sent = match error {
        // Closed at once: `Forwarder::run` left the last FIN to this close.
        None => {
            drop((client, upstream));
            None
        }
        // The stream was cut: each side still connected gets an RST, not
        // a FIN that would say the stream ended whole (`abort`).
        Some(_) => {
            // At most STALL without progress (a peer that reads nothing
            // more must not hold the connection for a long idle_timeout).
            let stall = settings
                .idle_timeout
                .map_or(abort::STALL, |t| t.min(abort::STALL));
            let reset = tokio::join!(abort::reset(client, stall), abort::reset(upstream, stall));
            for (sent, to) in [(reset.0, "client"), (reset.1, "upstream")] {
                if sent {
                    shared.metrics.reset_sent(to);
                }
            }
            match reset {
                (true, true) => Some("both"),
                (true, false) => Some("client"),
                (false, true) => Some("upstream"),
                (false, false) => None,
            }
        }
    };
    let ending = match error {
        None => Ending::Ok,
        Some(e) if e.kind() == io::ErrorKind::TimedOut => Ending::IdleTimeout,
        Some(_) => Ending::Error,
    };
    shared.metrics.closed(ending);
    let duration_ms = start.elapsed().as_millis() as u64;
    if shared.access_log.is_on() {
        // The access log's line replaces the tracing one.
        return shared.access_log.record(&Entry {
            start: accepted,
            client: src,
            via,
            listener: name,
            upstream: Some(lease.addr()),
            sni: server_name.as_deref(),
            connect_ms: connected_ms,
            total_ms: elapsed_ms(accepted),
            to_upstream: outcome.as_ref().map_or(0, |o| o.to_upstream),
            to_client: outcome.as_ref().map_or(0, |o| o.to_client),
            method: outcome
                .as_ref()
                .map(|o| Methods(o.up_method, o.down_method)),
            termination: state,
            reason: None,
            suppressed: 0,
        });
    }
    // Built only when the line is logged (tracing evaluates a field once
    // the level is enabled): no allocation per connection otherwise.
    let method = || {
        outcome
            .as_ref()
            .map_or_else(|| "none".to_owned(), |o| o.method())
    };
    // `error`, `via` and `sni` are recorded only when there is one.
    tracing::info!(
        listener = name,
        client = %src,
        via = via.map(tracing::field::display),
        sni = server_name.as_deref(),
        upstream = lease.addr(),
        to_upstream = outcome.as_ref().map_or(0, |o| o.to_upstream),
        to_client = outcome.as_ref().map_or(0, |o| o.to_client),
        duration_ms,
        method = method(),
        outcome = ending.as_str(),
        error = error.map(tracing::field::display),
        reset_sent,
        "connection closed"
    );
}

/// Writes the PROXY header of `version` for client `src` to `upstream`;
/// the destination is `dst` (from a received header), else the
/// listener's address, else the one `client` reached. A Unix client is
/// sent with the UNIX family (v2) or as `UNKNOWN` (v1); an IP client
/// with no IP destination (a header's address on a Unix listener) as
/// `LOCAL`/`UNKNOWN`.
async fn send_header(
    shared: &ListenerState,
    client: &Stream,
    upstream: &mut Stream,
    version: ProxyVersion,
    src: Peer,
    dst: Option<SocketAddr>,
) -> io::Result<()> {
    let header = match src {
        Peer::Unix => proxy_header::encode_unix(version, shared.settings.listen.unix()),
        Peer::Ip(src) => {
            let dst = match (dst.or(shared.local), client.tcp()) {
                (Some(d), _) => Some(d),
                (None, Some(tcp)) => Some(tcp.local_addr()?),
                (None, None) => None,
            };
            match dst {
                Some(dst) => proxy_header::encode(version, src, dst),
                None => proxy_header::encode_unknown(version),
            }
        }
    };
    upstream.write_all(&header).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing the PROXY header to the upstream: {e}"),
        )
    })
}

/// Milliseconds since `t` (0 if the clock went back).
pub(super) fn elapsed_ms(t: SystemTime) -> u64 {
    t.elapsed()
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The access log state of a connection no upstream accepted, from the
/// last attempt's error: a timeout, a local resource that ran out, or a
/// refusal (or another error) of the upstream.
fn no_upstream(e: &io::Error) -> Termination {
    use rustix::io::Errno;
    let local = e
        .raw_os_error()
        .map(Errno::from_raw_os_error)
        .is_some_and(|n| {
            matches!(
                n,
                Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM
            )
        });
    match e.kind() {
        io::ErrorKind::TimedOut => Termination::ConnectTimeout,
        io::ErrorKind::OutOfMemory => Termination::LocalResource,
        _ if local => Termination::LocalResource,
        _ => Termination::UpstreamRefused,
    }
}

/// Which side cut a stream that ended with `e` (not a normal end): the
/// idle timeout, else the client if it is gone (TCP closed its socket
/// after a reset from it: no peer address any more; a Unix client's
/// socket shows EOF or a reset), else the upstream.
fn cut_by(e: &io::Error, client: &Stream) -> Termination {
    if e.kind() == io::ErrorKind::TimedOut {
        Termination::IdleTimeout
    } else if client.peer_gone() {
        Termination::ClientReset
    } else {
        Termination::ServerReset
    }
}
