//! What the listeners share: [`Context`] (every listener of the process)
//! and [`ListenerState`] (the connections of one listener, built from its
//! settings; a reload builds a new one for the next connections).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use pipepool::PipePool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pressure::Pressure;
use super::refusal::{Refusal, RefusalLog};
use super::sni;
use super::workers::Workers;
use crate::access_log::{AccessLog, Entry, Termination};
use crate::acl::Acl;
use crate::address::Peer;
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

    /// Out of local resources while connecting: accepting pauses.
    pub(super) pressure: Arc<Pressure>,
    /// One line per closed connection (off by default).
    pub(crate) access_log: AccessLog,
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

            pressure: Arc::default(),
            access_log: AccessLog::default(),
        }
    }

    /// The same, with its listeners on `workers`.
    pub(crate) fn with_workers(self, workers: Workers) -> Context {
        Context { workers, ..self }
    }

    /// This context, writing the access log to `log`.
    pub(crate) fn with_access_log(mut self, log: AccessLog) -> Context {
        self.access_log = log;
        self
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
    /// The process's [`Context::pressure`].
    pub(super) pressure: Arc<Pressure>,
    /// The process's access log.
    pub(super) access_log: AccessLog,
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
            &settings.accept_proxy_from,
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
            pressure: Arc::clone(&ctx.pressure),
            access_log: ctx.access_log.clone(),
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

    /// Resolves them again every `dns_ttl` until retired, and checks
    /// the upstreams (if `health_interval` is set) until retired.
    pub(super) fn refresh_dns(&self, ctx: &Context) {
        for b in self.balancers() {
            crate::dns::refresh_every(self.settings.dns_ttl, b, &ctx.metrics, &self.settings.name);
        }
        match self.settings.health_check() {
            Some(check) => {
                let check = Arc::new(check);
                let groups: Vec<&Arc<Balancer>> = self.balancers().collect();
                crate::upstream::spawn_checks(&check, &groups, &self.settings.name);
            }
            // Turned off by a reload: nothing stays held down.
            None => self.balancers().for_each(|b| b.clear_checks()),
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
    /// caller drops it), accepted at `start`; `state`: how the access
    /// log says it ended (at a bounded rate per reason, with the count
    /// left out).
    pub(super) fn refuse(
        &self,
        client: Peer,
        why: Refusal,
        state: Termination,
        start: SystemTime,
        detail: &dyn std::fmt::Display,
    ) {
        self.metrics.refused_because(why.as_str());
        let line = self.refusals.note(&self.settings.name, client, why, detail);
        if let (true, Some(suppressed)) = (self.access_log.is_on(), line) {
            let mut e = Entry::refused(start, client, &self.settings.name, state);
            e.reason = Some(why.as_str());
            e.suppressed = suppressed;
            self.access_log.record(&e);
        }
    }

    /// Whether the access log may write the line of a connection that
    /// found no upstream (at a bounded rate), with how many were left
    /// out since the last one; `None`: leave this one out.
    pub(super) fn may_log_no_upstream(&self) -> Option<u64> {
        self.refusals.may_log_no_upstream()
    }
}
