//! Upstream host names: resolved when the config is loaded (at start and
//! at each reload) and again in the background every `dns_ttl`, so that
//! no client connection waits for a blocking `getaddrinfo`. The results
//! live in the [`Balancer`]; a failed lookup keeps the last good
//! addresses. Lookups are counted in `spliced_dns_lookups_total`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::upstream::Balancer;

/// Longest wait for one lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves every host name of `balancer` (listener `listener`'s), all at
/// once, and stores the results.
pub(crate) async fn resolve(balancer: &Balancer, metrics: &Metrics, listener: &str) {
    let mut lookups = JoinSet::new();
    for (index, addr) in balancer.names() {
        lookups.spawn(async move {
            let r = lookup(&addr).await;
            (index, addr, r)
        });
    }
    while let Some(done) = lookups.join_next().await {
        let Ok((index, addr, r)) = done else { continue };
        metrics.dns_lookup(r.is_ok());
        match &r {
            Ok(addrs) => tracing::debug!(listener, upstream = %addr, "resolved to {addrs:?}"),
            Err(e) => tracing::warn!(listener, upstream = %addr, "cannot resolve: {e}"),
        }
        let shown = r.as_ref().ok().cloned();
        if balancer.set_resolved(index, r) {
            tracing::info!(listener, upstream = %addr, "resolves to {:?}", shown.unwrap_or_default());
        }
    }
}

/// `getaddrinfo(host, port)` on tokio's blocking pool, with a timeout.
async fn lookup(addr: &str) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(addr)).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("`{addr}`: no address"))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(format!("`{addr}`: {e}")),
        Err(_) => Err(format!("`{addr}`: no answer within {LOOKUP_TIMEOUT:?}")),
    }
}

/// Resolves `balancer`'s names again every `ttl`, in the background,
/// until it is retired (replaced by a reload) or dropped.
pub(crate) fn refresh_every(
    ttl: Duration,
    balancer: &Arc<Balancer>,
    metrics: &Arc<Metrics>,
    listener: &str,
) {
    if balancer.names().is_empty() {
        return;
    }
    let weak = Arc::downgrade(balancer);
    let metrics = Arc::clone(metrics);
    let listener = listener.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl).await;
            let Some(balancer) = weak.upgrade() else {
                return;
            };
            if balancer.is_retired() {
                return;
            }
            resolve(&balancer, &metrics, &listener).await;
        }
    });
}
