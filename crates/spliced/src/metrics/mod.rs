//! Prometheus metrics: the proxy's own (`spliced_*`, in [`Metrics`]) and
//! the pipe pool's (`pipepool_*`, read from [`PoolStats`] at each scrape by
//! [`pool::PoolCollector`]), served as text at `/metrics` by [`http`].
//!
//! [`PoolStats`]: pipepool::PoolStats

mod bytes;
pub(crate) mod http;
mod listeners;
mod pool;
mod upstreams;
mod workers;

use std::fmt;
use std::sync::{Arc, OnceLock};

use pipepool::tokio::Progress;
use pipepool::PipePool;

use crate::upstream::Balancer;
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use workers::WorkerLabels;
pub(crate) use workers::WorkerMetrics;

/// Labels: the listener.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

/// Labels: listener, upstream and why the connect failed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    listener: String,
    upstream: String,
    /// `refused`, `timeout` or `error`.
    reason: &'static str,
}

/// Labels: listener and how the connection ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    listener: String,
    /// `ok`, `error`, `idle_timeout` or `no_upstream`.
    outcome: &'static str,
}

/// Labels: listener and the side an RST was sent to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResetLabels {
    listener: String,
    /// `client` or `upstream`.
    to: &'static str,
}

/// Labels: how a config reload (or a DNS lookup) ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `ok` or `error`.
    result: &'static str,
}

/// Labels: listener and why a client was refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    listener: String,
    /// `max_conns`, `denied`, `max_conns_per_source`, `proxy_header` or
    /// `untrusted_proxy`.
    reason: &'static str,
}

/// Every metric of one process, registered in one [`Registry`].
pub(crate) struct Metrics {
    reloads: Family<ReloadLabels, Counter>,
    last_reload: Gauge,
    dns_lookups: Family<ReloadLabels, Counter>,
    registry: Registry,
    active: Family<ListenerLabels, Gauge>,
    accepted: Family<ListenerLabels, Counter>,
    refused: Family<ListenerLabels, Counter>,
    refused_by_reason: Family<RefusedLabels, Counter>,
    accept_errors: Family<ListenerLabels, Counter>,
    closed: Family<OutcomeLabels, Counter>,
    resets_sent: Family<ResetLabels, Counter>,
    /// Per worker thread: connections accepted, and open now.
    worker_accepts: Family<WorkerLabels, Counter>,
    worker_open: Family<WorkerLabels, Gauge>,
    /// Adds each listener's live byte counters to `spliced_bytes_total`.
    bytes: bytes::BytesCollector,
    /// Reports each listener's upstreams as `spliced_upstream_healthy`.
    upstreams: upstreams::UpstreamCollector,
    connect_failures: Family<UpstreamLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Why a connect to an upstream failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// `ECONNREFUSED`.
    Refused,
    /// No answer within `connect_timeout`.
    Timeout,
    /// Anything else (unreachable, name resolution...).
    Error,
}

/// How a proxied connection ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Both directions reached EOF.
    Ok,
    /// An I/O error on either side.
    Error,
    /// No traffic for `idle_timeout`.
    IdleTimeout,
    /// No upstream accepted the connection.
    NoUpstream,
}

impl Ending {
    /// How many endings there are.
    const COUNT: usize = 4;

    /// This ending's place in `0..COUNT`.
    fn index(self) -> usize {
        match self {
            Ending::Ok => 0,
            Ending::Error => 1,
            Ending::IdleTimeout => 2,
            Ending::NoUpstream => 3,
        }
    }

    /// The label value: `ok`, `error`, `idle_timeout`, `no_upstream`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ending::Ok => "ok",
            Ending::Error => "error",
            Ending::IdleTimeout => "idle_timeout",
            Ending::NoUpstream => "no_upstream",
        }
    }
}

impl Metrics {
    /// Registers every metric; the pool's are read from `pool` at each scrape.
    pub(crate) fn new(pool: &PipePool) -> Metrics {
        let bytes = bytes::BytesCollector::default();
        let upstreams = upstreams::UpstreamCollector::default();
        let mut m = Metrics {
            reloads: Family::default(),
            last_reload: Gauge::default(),
            dns_lookups: Family::default(),
            registry: Registry::default(),
            active: Family::default(),
            accepted: Family::default(),
            refused: Family::default(),
            refused_by_reason: Family::default(),
            accept_errors: Family::default(),
            closed: Family::default(),
            resets_sent: Family::default(),
            worker_accepts: Family::default(),
            worker_open: Family::default(),
            bytes: bytes.clone(),
            upstreams: upstreams.clone(),
            connect_failures: Family::default(),
        };
        let sub = m.registry.sub_registry_with_prefix("spliced");
        sub.register(
            "connections_active",
            "Client connections open now",
            m.active.clone(),
        );
        sub.register(
            "connections",
            "Client connections accepted",
            m.accepted.clone(),
        );
        sub.register(
            "connections_refused",
            "Client connections closed at once because max_conns were open",
            m.refused.clone(),
        );
        sub.register(
            "refused",
            "Clients closed at once, by reason (max_conns, denied, max_conns_per_source, \
             proxy_header, untrusted_proxy)",
            m.refused_by_reason.clone(),
        );
        sub.register(
            "accept_errors",
            "Errors from accept(2) (EMFILE, ENFILE, ...); the listener backs off",
            m.accept_errors.clone(),
        );
        sub.register(
            "connections_closed",
            "Proxied connections ended, by outcome",
            m.closed.clone(),
        );
        sub.register(
            "resets_sent",
            "RSTs sent because the stream was cut (a reset or error on the other side, \
             or the idle timeout), by side (client, upstream)",
            m.resets_sent.clone(),
        );
        sub.register(
            "worker_accepts",
            "Client connections accepted, by worker thread",
            m.worker_accepts.clone(),
        );
        sub.register(
            "worker_connections",
            "Client connections open now, by worker thread",
            m.worker_open.clone(),
        );
        sub.register(
            "upstream_connect_failures",
            "Failed connects to an upstream, by reason",
            m.connect_failures.clone(),
        );
        sub.register(
            "config_reloads",
            "Config reloads (SIGHUP), by result",
            m.reloads.clone(),
        );
        sub.register(
            "config_last_reload_seconds",
            "Unix time of the last successful config load (start or reload)",
            m.last_reload.clone(),
        );
        sub.register(
            "dns_lookups",
            "Lookups of upstream host names (at load and every dns_ttl), by result",
            m.dns_lookups.clone(),
        );
        for result in ["ok", "error"] {
            let _ = m.reloads.get_or_create(&ReloadLabels { result });
            let _ = m.dns_lookups.get_or_create(&ReloadLabels { result });
        }
        m.loaded();
        m.registry.register_collector(Box::new(bytes));
        m.registry.register_collector(Box::new(upstreams));
        m.registry
            .register_collector(Box::new(pool::PoolCollector::new(pool.clone())));
        m
    }

    /// The `Content-Type` of [`encode`](Metrics::encode)'s output.
    pub(crate) const CONTENT_TYPE: &'static str = prometheus_text::CONTENT_TYPE;

    /// The whole registry in the Prometheus text format (0.0.4).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// Notes a successful config load now.
    fn loaded(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.last_reload.set(now);
    }

    /// Registers `dropped` as `spliced_access_log_dropped_total`: access
    /// log lines dropped because its writer fell behind.
    pub(crate) fn count_access_log_drops(&mut self, dropped: Counter) {
        self.registry.sub_registry_with_prefix("spliced").register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind (a slow disk)",
            dropped,
        );
    }

    /// Counts a config reload; a successful one also sets
    /// `spliced_config_last_reload_seconds`.
    pub(crate) fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
        if ok {
            self.loaded();
        }
    }

    /// Every listener's upstream groups now (for the admin socket's
    /// upstream commands, [`crate::upstream::command`]).
    pub(crate) fn upstream_groups(&self) -> Vec<(String, Arc<upstreams::Groups>)> {
        self.upstreams.snapshot()
    }

    /// Counts a lookup of an upstream's host name.
    pub(crate) fn dns_lookup(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.dns_lookups
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// The counters of worker `index` (created at its first use).
    pub(crate) fn worker(&self, index: usize) -> WorkerMetrics {
        let labels = WorkerLabels {
            worker: index.to_string(),
        };
        WorkerMetrics {
            accepts: self.worker_accepts.get_or_create(&labels).clone(),
            open: self.worker_open.get_or_create(&labels).clone(),
        }
    }

    /// Forgets the upstreams of the listeners not in `names` (removed by a
    /// reload). Their counters stay: counters never go back.
    pub(crate) fn retain_listeners(&self, names: &[&str]) {
        self.upstreams.retain(names);
    }

    /// The handles of one listener, so that the hot path does no lookup;
    /// its upstreams are reported from `groups` (`default` and each SNI
    /// route's pattern, with its balancer), which replace the listener's
    /// previous ones after a reload.
    pub(crate) fn listener(
        self: &Arc<Self>,
        name: &str,
        groups: Vec<(String, Arc<Balancer>)>,
    ) -> ListenerMetrics {
        self.upstreams.set(name, &Arc::new(groups));
        let l = ListenerLabels {
            listener: name.to_owned(),
        };
        ListenerMetrics {
            metrics: Arc::clone(self),
            name: name.to_owned(),
            active: self.active.get_or_create(&l).clone(),
            accepted: self.accepted.get_or_create(&l).clone(),
            refused: self.refused.get_or_create(&l).clone(),
            accept_errors: self.accept_errors.get_or_create(&l).clone(),
            progress: self.bytes.progress(name),
            closed: Arc::default(),
        }
    }
}

/// The metrics of one listener.
#[derive(Debug, Clone)]
pub(crate) struct ListenerMetrics {
    metrics: Arc<Metrics>,
    name: String,
    /// `spliced_connections_active`.
    pub(crate) active: Gauge,
    /// `spliced_connections_total`.
    pub(crate) accepted: Counter,
    /// `spliced_connections_refused_total`.
    pub(crate) refused: Counter,
    /// `spliced_accept_errors_total`.
    pub(crate) accept_errors: Counter,
    /// `spliced_bytes_total`: the live counters every connection of this
    /// listener adds to as it forwards.
    pub(crate) progress: Arc<Progress>,
    /// `spliced_connections_closed_total`, by [`Ending::index`]: looked up
    /// in the family (a lock and a label allocation) at each outcome's
    /// first use only.
    closed: Arc<[OnceLock<Counter>; Ending::COUNT]>,
}

impl ListenerMetrics {
    /// Counts a failed connect to `upstream`.
    pub(crate) fn connect_failed(&self, upstream: &str, why: ConnectFailure) {
        let reason = match why {
            ConnectFailure::Refused => "refused",
            ConnectFailure::Timeout => "timeout",
            ConnectFailure::Error => "error",
        };
        self.metrics
            .connect_failures
            .get_or_create(&UpstreamLabels {
                listener: self.name.clone(),
                upstream: upstream.to_owned(),
                reason,
            })
            .inc();
    }

    /// Counts a client closed at once for `reason` (`spliced_refused_total`).
    pub(crate) fn refused_because(&self, reason: &'static str) {
        self.metrics
            .refused_by_reason
            .get_or_create(&RefusedLabels {
                listener: self.name.clone(),
                reason,
            })
            .inc();
    }

    /// Counts an RST sent `to` a side (`client` or `upstream`) whose
    /// stream was cut (`spliced_resets_sent_total`).
    pub(crate) fn reset_sent(&self, to: &'static str) {
        self.metrics
            .resets_sent
            .get_or_create(&ResetLabels {
                listener: self.name.clone(),
                to,
            })
            .inc();
    }

    /// Counts a finished connection by its outcome (its bytes were
    /// counted as they went, in [`progress`](ListenerMetrics::progress)).
    pub(crate) fn closed(&self, ending: Ending) {
        self.closed[ending.index()]
            .get_or_init(|| {
                self.metrics
                    .closed
                    .get_or_create(&OutcomeLabels {
                        listener: self.name.clone(),
                        outcome: ending.as_str(),
                    })
                    .clone()
            })
            .inc();
    }
}
