//! The proxy: one [`Listener`] per configured listener, each with its
//! upstream group, its `max_conns` bound and its accept loop; one task per
//! client connection ([`conn`]).

mod accept;
mod conn;
mod connect;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pipepool::PipePool;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::balance::Balancer;
use crate::config::ListenerSettings;
use crate::forward::Forwarder;
use crate::metrics::{ListenerMetrics, Metrics};
use crate::shutdown::{Shutdown, Tracker};

/// What every listener of one process shares.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The pipe pool.
    pub(crate) pool: PipePool,
    /// The metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    /// Open connections of all listeners, for the grace period.
    pub(crate) tracker: Tracker,
}

/// A bound listener, ready to [`serve`](Listener::serve).
#[derive(Debug)]
pub(crate) struct Listener {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Permits for `max_conns` open client connections.
    limit: Arc<Semaphore>,
    tracker: Tracker,
}

/// What the connections of one listener share.
#[derive(Debug)]
struct Shared {
    settings: ListenerSettings,
    balancer: Arc<Balancer>,
    forwarder: Forwarder,
    metrics: ListenerMetrics,
    refusals: accept::RefusalLog,
}

impl Listener {
    /// Binds the listen address.
    ///
    /// # Errors
    /// As `bind(2)`/`listen(2)`, e.g. `AddrInUse`.
    pub(crate) async fn bind(settings: ListenerSettings, ctx: &Context) -> io::Result<Listener> {
        let listener = crate::net::listen(settings.listen)?;
        let balancer = Balancer::new(settings.balance, settings.upstreams.clone());
        let forwarder = Forwarder {
            pool: ctx.pool.clone(),
            mode: settings.copy,
            idle_timeout: settings.idle_timeout,
        };
        let metrics = ctx.metrics.listener(&settings.name, &balancer);
        Ok(Listener {
            listener,
            limit: Arc::new(Semaphore::new(settings.max_conns)),
            shared: Arc::new(Shared {
                settings,
                balancer,
                forwarder,
                metrics,
                refusals: accept::RefusalLog::default(),
            }),
            tracker: ctx.tracker.clone(),
        })
    }

    /// The bound address (with the real port when 0 was asked).
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The listener's settings.
    pub(crate) fn settings(&self) -> &ListenerSettings {
        &self.shared.settings
    }

    /// Accepts clients until `shutdown`, each served by its own task, then
    /// closes the listening socket. Open connections go on.
    pub(crate) async fn serve(self, shutdown: Shutdown) {
        let Listener {
            listener,
            shared,
            limit,
            tracker,
        } = self;
        accept::run(
            listener,
            shutdown,
            |stream, peer| {
                let m = &shared.metrics;
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    m.refused.inc();
                    shared
                        .refusals
                        .note(&shared.settings.name, peer, shared.settings.max_conns);
                    drop(stream); // closed at once
                    return;
                };
                m.accepted.inc();
                let active = ActiveGuard::new(m.active.clone());
                let tracked = tracker.track();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    conn::handle(&shared, stream, peer).await;
                    drop((active, permit, tracked));
                });
            },
            &shared.metrics,
        )
        .await;
    }
}

/// One count in the `active` connections gauge, taken back when dropped:
/// also when the connection's task panics or is dropped by the runtime.
#[derive(Debug)]
struct ActiveGuard(Gauge);

impl ActiveGuard {
    fn new(gauge: Gauge) -> ActiveGuard {
        gauge.inc();
        ActiveGuard(gauge)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every listener of one process, bound but not accepting yet.
#[derive(Debug)]
pub(crate) struct Bound {
    listeners: Vec<Listener>,
    tracker: Tracker,
}

impl Bound {
    /// Starts accepting on every listener.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub(crate) fn start(self) -> io::Result<Proxy> {
        let shutdown = Shutdown::new();
        let mut addrs = Vec::with_capacity(self.listeners.len());
        let mut accept_loops = Vec::with_capacity(self.listeners.len());
        for l in self.listeners {
            addrs.push((l.settings().name.clone(), l.local_addr()?));
            accept_loops.push(tokio::spawn(l.serve(shutdown.clone())));
        }
        Ok(Proxy {
            addrs,
            shutdown,
            tracker: self.tracker,
            accept_loops,
        })
    }
}

/// Every listener of one process, accepting.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Name and bound address of each listener.
    addrs: Vec<(String, SocketAddr)>,
    shutdown: Shutdown,
    tracker: Tracker,
    accept_loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Binds every listener (all or none), then starts accepting.
    ///
    /// # Errors
    /// The first listener that cannot bind, named with its address.
    pub(crate) async fn start(
        listeners: Vec<ListenerSettings>,
        ctx: &Context,
    ) -> anyhow::Result<Proxy> {
        Ok(Proxy::bind(listeners, ctx).await?.start()?)
    }

    /// Binds every listener (all or none); [`Bound::start`] then accepts.
    ///
    /// # Errors
    /// The first listener that cannot bind, named with its address.
    pub(crate) async fn bind(
        listeners: Vec<ListenerSettings>,
        ctx: &Context,
    ) -> anyhow::Result<Bound> {
        use anyhow::Context as _;
        let mut bound = Vec::with_capacity(listeners.len());
        for settings in listeners {
            let (name, addr) = (settings.name.clone(), settings.listen);
            let l = Listener::bind(settings, ctx)
                .await
                .with_context(|| format!("cannot listen on {addr} (listener `{name}`)"))?;
            bound.push(l);
        }
        Ok(Bound {
            listeners: bound,
            tracker: ctx.tracker.clone(),
        })
    }

    /// Name and bound address of each listener.
    pub(crate) fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// Connections open now.
    pub(crate) fn active(&self) -> usize {
        self.tracker.active()
    }

    /// Stops accepting (the listening sockets close), then waits up to
    /// `grace` for open connections to finish. Returns how many were still
    /// open (they end when the runtime does).
    pub(crate) async fn stop(self, grace: std::time::Duration) -> usize {
        self.shutdown.trigger();
        for task in self.accept_loops {
            let _ = task.await;
        }
        self.tracker.drained(grace).await
    }
}
