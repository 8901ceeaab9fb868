//! Connecting a client's upstream: the balancer's plan, one attempt per
//! upstream with `connect_timeout` each, the next upstream after a refusal
//! or a timeout, and a summary of every failure when all attempts fail.
//! Each outcome goes back to the balancer (passive health).

use std::io;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::ListenerState;
use crate::balance::{Balancer, Lease};
use crate::metrics::ConnectFailure;

/// Connects to the first upstream of `balancer`'s plan that accepts.
///
/// # Errors
/// When every attempt failed: the error of the last one (its kind kept),
/// with a message listing each attempt.
pub(super) async fn connect(
    shared: &Arc<ListenerState>,
    balancer: &Arc<Balancer>,
) -> io::Result<(TcpStream, Lease)> {
    let settings = &shared.settings;
    let plan = balancer.plan(settings.connect_attempts);
    let mut failures = Vec::with_capacity(plan.len());
    let mut last_kind = io::ErrorKind::Other;
    for index in plan {
        let lease = balancer.lease(index);
        // Resolved at load and in the background (crate::dns): no lookup here.
        let attempt = tokio::time::timeout(settings.connect_timeout, async {
            TcpStream::connect(&*lease.socket_addrs()?).await
        });
        let (why, text, kind) = match attempt.await {
            Ok(Ok(stream)) => {
                if lease.succeeded() {
                    tracing::info!(listener = %settings.name, upstream = lease.addr(), "upstream answers again");
                }
                return Ok((stream, lease));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                (ConnectFailure::Refused, e.to_string(), e.kind())
            }
            Ok(Err(e)) => (ConnectFailure::Error, e.to_string(), e.kind()),
            Err(_) => (
                ConnectFailure::Timeout,
                format!("no answer within {:?}", settings.connect_timeout),
                io::ErrorKind::TimedOut,
            ),
        };
        shared.metrics.connect_failed(lease.addr(), why);
        let backoff = lease.failed();
        tracing::warn!(
            listener = %settings.name,
            upstream = lease.addr(),
            backoff_ms = backoff.as_millis() as u64,
            "connect failed: {text}; the upstream goes last in the plans meanwhile"
        );
        failures.push(format!("{}: {text}", lease.addr()));
        last_kind = kind;
    }
    Err(io::Error::new(
        last_kind,
        format!("no upstream accepted ({})", failures.join("; ")),
    ))
}
