//! What the listeners share: [`Context`] (every listener of the process)
//! and [`ListenerState`] (the connections of one listener, built from its
//! settings; a reload builds a new one for the next connections).

use std::net::SocketAddr;
use std::sync::Arc;

use pipepool::PipePool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::refusal::{Refusal, RefusalLog};
use super::sni;
use super::workers::Workers;
use crate::acl::Acl;
use crate::config::ListenerSettings;
use crate::forward::Forwarder;
use crate::metrics::{ListenerMetrics, Metrics};
use crate::upstream::Balancer;

/// What every listener of one process shares.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The pipe pool.
    pub(crate) pool: PipePool,
    /// The metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    /// Open connections of all listeners, for the grace period.
    pub(crate) tracker: TaskTracker,
    /// Stops every listener's accept loop.
    pub(crate) stop: CancellationToken,
    /// Where the accept loops and connections run.
    pub(crate) workers: Workers,
}

impl Context {
    /// The context of a new proxy over `pool`, counted in `metrics`.
    pub(crate) fn new(pool: PipePool, metrics: Arc<Metrics>) -> Context {
        Context {
            pool,
            metrics,
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            workers: Workers::Current,
        }
    }

    /// The same, with its listeners on `workers`.
    pub(crate) fn with_workers(self, workers: Workers) -> Context {
        Context { workers, ..self }
    }
}

/// What the connections of one listener share: everything built from its
/// settings. A reload builds a new one for the next connections.
#[derive(Debug)]
pub(super) struct ListenerState {
    pub(super) settings: ListenerSettings,
    pub(super) balancer: Arc<Balancer>,
    pub(super) forwarder: Forwarder,
    pub(super) metrics: ListenerMetrics,
    refusals: RefusalLog,
    /// `allow`/`deny` and `accept_proxy_from`.
    pub(super) acl: Acl,
    /// SNI routes; `balancer` is the default route.
    pub(super) routes: sni::Routes,
    /// The bound address when it is one address (not 0.0.0.0 or ::):
    /// every client's destination for `send_proxy`, without a
    /// `getsockname` per connection.
    pub(super) local: Option<SocketAddr>,
}

impl ListenerState {
    /// Builds what connections use from `settings` on the listener bound
    /// at `local` (`None` when it is 0.0.0.0 or ::); `previous` (the
    /// listener's before a reload) hands over its upstreams' state.
    pub(super) fn new(
        settings: ListenerSettings,
        ctx: &Context,
        previous: Option<&ListenerState>,
        local: Option<SocketAddr>,
    ) -> ListenerState {
        let balancer = Balancer::renew(
            settings.balance,
            settings.upstreams.clone(),
            previous.map(|p| &*p.balancer),
        );
        let forwarder = Forwarder {
            pool: ctx.pool.clone(),
            mode: settings.copy,
            idle_timeout: settings.idle_timeout,
        };
        // A route kept by a reload (the same pattern) keeps its upstreams'
        // state too.
        let routes = sni::Routes::new(settings.routes.iter().map(|r| {
            let before = previous.and_then(|p| p.routes.group(&r.sni));
            (
                r.sni.clone(),
                Balancer::renew(r.balance, r.upstreams.clone(), before.map(|b| &**b)),
            )
        }));
        // Reported per group: the default and each route by its pattern.
        let groups = std::iter::once(("default".to_owned(), Arc::clone(&balancer)))
            .chain(settings.routes.iter().filter_map(|r| {
                let b = routes.group(&r.sni)?;
                Some((r.sni.clone(), Arc::clone(b)))
            }))
            .collect();
        let metrics = ctx.metrics.listener(&settings.name, groups);
        let acl = Acl::new(
            settings.allow.clone(),
            settings.deny.clone(),
            settings.accept_proxy_from.clone(),
        );
        ListenerState {
            settings,
            balancer,
            forwarder,
            metrics,
            refusals: RefusalLog::default(),
            acl,
            routes,
            local,
        }
    }

    /// The default group and every route's group.
    fn balancers(&self) -> impl Iterator<Item = &Arc<Balancer>> {
        std::iter::once(&self.balancer).chain(self.routes.groups())
    }

    /// Resolves the upstreams' host names (at load), routes' included.
    pub(super) async fn resolve(&self, ctx: &Context) {
        for b in self.balancers() {
            crate::dns::resolve(b, &ctx.metrics, &self.settings.name).await;
        }
    }

    /// Resolves them again every `dns_ttl` until retired.
    pub(super) fn refresh_dns(&self, ctx: &Context) {
        for b in self.balancers() {
            crate::dns::refresh_every(self.settings.dns_ttl, b, &ctx.metrics, &self.settings.name);
        }
    }

    /// Stops the background lookups of every group (a reload replaced
    /// them or the listener was removed).
    pub(super) fn retire(&self) {
        for b in self.balancers() {
            b.retire();
        }
    }

    /// Counts and logs a client closed at once (it is closed when the
    /// caller drops it).
    pub(super) fn refuse(&self, client: SocketAddr, why: Refusal, detail: &dyn std::fmt::Display) {
        self.metrics.refused_because(why.as_str());
        self.refusals.note(&self.settings.name, client, why, detail);
    }
}
