//! One client connection: connect an upstream, forward both ways, then log
//! one line and count the outcome.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;

use super::{connect, Shared};
use crate::metrics::Ending;

/// Serves `client` until both directions are done or an error.
pub(super) async fn handle(shared: &Arc<Shared>, mut client: TcpStream, peer: SocketAddr) {
    let start = Instant::now();
    let name = shared.settings.name.as_str();
    // Forwarded bytes are not worth holding back: the sender already chose
    // its segment sizes.
    let _ = client.set_nodelay(true);
    let (mut upstream, lease) = match connect::connect(shared).await {
        Ok(ok) => ok,
        Err(e) => {
            shared.metrics.closed(Ending::NoUpstream);
            tracing::warn!(
                listener = name,
                client = %peer,
                duration_ms = start.elapsed().as_millis() as u64,
                error = %e,
                "connection closed: no upstream"
            );
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let outcome = shared
        .forwarder
        .run(&mut client, &mut upstream, &shared.metrics.progress)
        .await;
    drop((client, upstream));
    let ending = match &outcome.error {
        None => Ending::Ok,
        Some(e) if e.kind() == io::ErrorKind::TimedOut => Ending::IdleTimeout,
        Some(_) => Ending::Error,
    };
    shared.metrics.closed(ending);
    let duration_ms = start.elapsed().as_millis() as u64;
    let method = outcome.method();
    // `error` is recorded only when there is one.
    tracing::info!(
        listener = name,
        client = %peer,
        upstream = lease.addr(),
        to_upstream = outcome.to_upstream,
        to_client = outcome.to_client,
        duration_ms,
        method,
        outcome = ending.as_str(),
        error = outcome.error.as_ref().map(tracing::field::display),
        "connection closed"
    );
}
