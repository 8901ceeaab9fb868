//! The proxy: one listener per configured listener, each with its
//! upstream group (and SNI routes, [`sni`]), its `max_conns` bound, its
//! access lists and its accept loop; one task per client connection
//! ([`conn`]), which reads a PROXY header first with `accept_proxy` and
//! writes one with `send_proxy` ([`proxy_header`]).
//!
//! Hot reload ([`Proxy::reload`]): everything a listener's connections use
//! is built from its settings alone ([`ListenerState::new`]) and published in a
//! watch channel; each accept takes the current one, so a reload swaps in
//! a new one for new connections while open connections keep theirs.
//! Settings added to [`ListenerSettings`] (and built in `ListenerState::new`)
//! reload with no further work.

mod abort;
mod accept;
mod conn;
mod connect;
mod proxy_header;
mod sni;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use pipepool::PipePool;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::acl::{Acl, Sources};
use crate::balance::Balancer;
use crate::config::ListenerSettings;
use crate::forward::Forwarder;
use crate::metrics::{ListenerMetrics, Metrics};
use crate::shutdown::{Shutdown, Tracker};

pub(crate) use proxy_header::read as read_proxy_header;

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

/// What the connections of one listener share: everything built from its
/// settings. A reload builds a new one for the next connections.
#[derive(Debug)]
struct ListenerState {
    settings: ListenerSettings,
    balancer: Arc<Balancer>,
    forwarder: Forwarder,
    metrics: ListenerMetrics,
    refusals: accept::RefusalLog,
    /// `allow`/`deny`.
    acl: Acl,
    /// SNI routes; `balancer` is the default route.
    routes: sni::Routes,
    /// The bound address when it is one address (not 0.0.0.0 or ::):
    /// every client's destination for `send_proxy`, without a
    /// `getsockname` per connection.
    local: Option<SocketAddr>,
}

impl ListenerState {
    /// Builds what connections use from `settings` on the listener bound
    /// at `local` (`None` when it is 0.0.0.0 or ::); `previous` (the
    /// listener's before a reload) hands over its upstreams' state.
    fn new(
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
            refusals: accept::RefusalLog::default(),
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
    async fn resolve(&self, ctx: &Context) {
        for b in self.balancers() {
            crate::dns::resolve(b, &ctx.metrics, &self.settings.name).await;
        }
    }

    /// Resolves them again every `dns_ttl` until retired.
    fn refresh_dns(&self, ctx: &Context) {
        for b in self.balancers() {
            crate::dns::refresh_every(self.settings.dns_ttl, b, &ctx.metrics, &self.settings.name);
        }
    }

    /// Stops the background lookups of every group (a reload replaced
    /// them or the listener was removed).
    fn retire(&self) {
        for b in self.balancers() {
            b.retire();
        }
    }

    /// Counts and logs a client closed at once (it is closed when the
    /// caller drops it).
    fn refuse(&self, client: SocketAddr, why: accept::Refusal, detail: &dyn std::fmt::Display) {
        self.metrics.refused_because(why.as_str());
        self.refusals.note(&self.settings.name, client, why, detail);
    }
}

/// A bound listener, not accepting yet.
#[derive(Debug)]
pub(crate) struct Listener {
    listener: TcpListener,
    shared: Arc<ListenerState>,
}

impl Listener {
    /// Binds the listen address.
    ///
    /// # Errors
    /// As `bind(2)`/`listen(2)`, e.g. `AddrInUse`.
    pub(crate) async fn bind(settings: ListenerSettings, ctx: &Context) -> io::Result<Listener> {
        // A socket passed by systemd (socket activation), else our own.
        let listener = match crate::systemd::inherited(settings.listen)? {
            Some(l) => {
                // Ours have it from `net::listen`: accepted sockets inherit it.
                if let Err(e) = crate::net::nodelay_for_accepted(&l) {
                    tracing::warn!(
                        listener = %settings.name,
                        "cannot set TCP_NODELAY on the socket systemd passed ({e}): \
                         clients will have Nagle's algorithm"
                    );
                }
                l
            }
            None => crate::net::listen(settings.listen)?,
        };
        let local = Some(listener.local_addr()?).filter(|a| !a.ip().is_unspecified());
        let shared = ListenerState::new(settings, ctx, None, local);
        shared.resolve(ctx).await;
        Ok(Listener {
            listener,
            shared: Arc::new(shared),
        })
    }

    /// The bound address (with the real port when 0 was asked).
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the accept loop.
    fn start(self, ctx: &Context) -> io::Result<Running> {
        let all = &ctx.tracker;
        let addr = self.local_addr()?;
        self.shared.refresh_dns(ctx);
        let (current, rx) = watch::channel(Arc::clone(&self.shared));
        let stop = Shutdown::new();
        let kill = Shutdown::new();
        let tracker = Tracker::default();
        let accept_loop = tokio::spawn(serve(
            self.listener,
            rx,
            stop.clone(),
            kill.clone(),
            [all.clone(), tracker.clone()],
        ));
        Ok(Running {
            addr,
            current,
            stop,
            kill,
            tracker,
            accept_loop,
        })
    }
}

/// One connection counted against its listener's `max_conns` until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Accepts clients until `stop`, each served by its own task with the
/// listener's current [`ListenerState`], then closes the listening socket. Open
/// connections go on (until `kill`). Each is counted in both `trackers`
/// (the process's and the listener's).
async fn serve(
    listener: TcpListener,
    current: watch::Receiver<Arc<ListenerState>>,
    stop: Shutdown,
    kill: Shutdown,
    trackers: [Tracker; 2],
) {
    // Open connections, checked against the current `max_conns` (a
    // reload that lowers it refuses new clients until enough have closed).
    let open = Arc::new(AtomicUsize::new(0));
    // Open connections per client address, checked in `conn::handle`
    // against the current `max_conns_per_source` the same way.
    let sources = Arc::new(Sources::default());
    // accept(2) errors are counted under the listener's first name.
    let first = Arc::clone(&current.borrow());
    accept::run(
        listener,
        stop,
        |stream, peer| {
            let shared = Arc::clone(&current.borrow());
            let m = &shared.metrics;
            // With accept_proxy the client's address is the header's
            // (checked once it is read), and only a trusted peer may send
            // one: anyone else is closed before a byte is read.
            let admitted = if shared.settings.accept_proxy {
                shared.acl.trusts_proxy(peer.ip()).then_some(()).ok_or((
                    accept::Refusal::UntrustedProxy,
                    "peer not in accept_proxy_from",
                ))
            } else {
                shared
                    .acl
                    .permits(peer.ip())
                    .then_some(())
                    .ok_or((accept::Refusal::Denied, "address not allowed"))
            };
            if let Err((why, detail)) = admitted {
                shared.refuse(peer, why, &detail);
                drop(stream); // closed at once
                return;
            }
            let max_conns = shared.settings.max_conns;
            if open.fetch_add(1, Relaxed) >= max_conns {
                open.fetch_sub(1, Relaxed);
                m.refused.inc();
                let why = format_args!("max_conns ({max_conns}) connections open");
                shared.refuse(peer, accept::Refusal::MaxConns, &why);
                drop(stream); // closed at once
                return;
            }
            let slot = Slot(Arc::clone(&open));
            m.accepted.inc();
            let active = ActiveGuard::new(m.active.clone());
            let tracked = trackers.each_ref().map(Tracker::track);
            let kill = kill.clone();
            let sources = Arc::clone(&sources);
            tokio::spawn(async move {
                tokio::select! {
                    () = conn::handle(&shared, &sources, stream, peer) => {}
                    () = kill.triggered() => tracing::info!(
                        listener = %shared.settings.name,
                        client = %peer,
                        "connection closed: its listener was removed and the grace period is over"
                    ),
                }
                drop((active, slot, tracked));
            });
        },
        || current.borrow().settings.connect_timeout,
        &first.metrics,
    )
    .await;
}

/// A listener accepting.
#[derive(Debug)]
struct Running {
    /// The bound address.
    addr: SocketAddr,
    /// What new connections use; a reload sends a new one.
    current: watch::Sender<Arc<ListenerState>>,
    /// Stops the accept loop (the listening socket closes).
    stop: Shutdown,
    /// Closes the listener's open connections.
    kill: Shutdown,
    /// The listener's open connections.
    tracker: Tracker,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Whether `new` is the same listener as this one: the same configured
    /// address (and, for port 0, the same name).
    fn is(&self, new: &ListenerSettings) -> bool {
        let now = self.current.borrow();
        let old = &now.settings;
        old.listen == new.listen && (new.listen.port() != 0 || old.name == new.name)
    }

    fn name(&self) -> String {
        self.current.borrow().settings.name.clone()
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
    ctx: Context,
}

impl Bound {
    /// Starts accepting on every listener.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub(crate) fn start(self) -> io::Result<Proxy> {
        let mut running = Vec::with_capacity(self.listeners.len());
        for l in self.listeners {
            running.push(l.start(&self.ctx)?);
        }
        let mut proxy = Proxy {
            addrs: Vec::new(),
            listeners: running,
            ctx: self.ctx,
        };
        proxy.update_addrs();
        Ok(proxy)
    }
}

/// What a reload changed.
#[derive(Debug, Default)]
pub(crate) struct Reloaded {
    /// Listeners bound by the reload: name and address.
    pub(crate) added: Vec<(String, SocketAddr)>,
    /// Listeners that stopped accepting.
    pub(crate) removed: Vec<String>,
    /// Listeners kept, with their settings re-applied.
    pub(crate) kept: usize,
}

/// Every listener of one process, accepting.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Name and bound address of each listener.
    addrs: Vec<(String, SocketAddr)>,
    /// In the order of the config.
    listeners: Vec<Running>,
    ctx: Context,
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
        Ok(Bound {
            listeners: bind_all(listeners, ctx).await?,
            ctx: ctx.clone(),
        })
    }

    /// Name and bound address of each listener.
    pub(crate) fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    fn update_addrs(&mut self) {
        self.addrs = self.listeners.iter().map(|r| (r.name(), r.addr)).collect();
    }

    /// Connections open now.
    pub(crate) fn active(&self) -> usize {
        self.ctx.tracker.active()
    }

    /// Applies a new list of listeners: the new ones are bound (all or
    /// none: on an error nothing changes) and accept; those no longer
    /// listed stop accepting, and their open connections are closed if
    /// still open after `grace`; the others take their new settings for
    /// their next connections. Open connections are never touched
    /// otherwise.
    ///
    /// # Errors
    /// A new listener that cannot bind, named with its address.
    pub(crate) async fn reload(
        &mut self,
        listeners: Vec<ListenerSettings>,
        grace: Duration,
    ) -> anyhow::Result<Reloaded> {
        // Pair each new listener with the running one it replaces, if any.
        let mut taken = vec![false; self.listeners.len()];
        let mut pairs = Vec::with_capacity(listeners.len());
        let mut fresh = Vec::new();
        for settings in listeners {
            let found =
                (0..self.listeners.len()).find(|&i| !taken[i] && self.listeners[i].is(&settings));
            if let Some(i) = found {
                taken[i] = true;
            } else {
                fresh.push(settings.clone());
            }
            pairs.push((settings, found));
        }
        // Bind first: an error leaves everything as it was.
        let mut bound = bind_all(fresh, &self.ctx).await?.into_iter();
        let mut old: Vec<Option<Running>> = self.listeners.drain(..).map(Some).collect();
        let mut done = Reloaded::default();
        for (settings, found) in pairs {
            match found.and_then(|i| old[i].take()) {
                Some(r) => {
                    let previous = Arc::clone(&r.current.borrow());
                    let shared =
                        ListenerState::new(settings, &self.ctx, Some(&previous), previous.local);
                    shared.resolve(&self.ctx).await;
                    shared.refresh_dns(&self.ctx);
                    r.current.send_replace(Arc::new(shared));
                    previous.retire();
                    done.kept += 1;
                    self.listeners.push(r);
                }
                None => {
                    let l = bound.next().expect("one bound listener per new one");
                    let r = l.start(&self.ctx)?;
                    done.added.push((r.name(), r.addr));
                    self.listeners.push(r);
                }
            }
        }
        for r in old.into_iter().flatten() {
            done.removed.push(r.name());
            r.current.borrow().retire();
            r.stop.trigger();
            tokio::spawn(async move {
                let _ = r.accept_loop.await;
                let left = r.tracker.drained(grace).await;
                if left > 0 {
                    tracing::warn!(
                        "closing {left} connection(s) of a removed listener after the grace period"
                    );
                    r.kill.trigger();
                }
            });
        }
        let names: Vec<String> = self.listeners.iter().map(Running::name).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.ctx.metrics.retain_listeners(&names);
        self.update_addrs();
        Ok(done)
    }

    /// Stops accepting (the listening sockets close), then waits up to
    /// `grace` for open connections to finish. Returns how many were still
    /// open (they end when the runtime does).
    pub(crate) async fn stop(self, grace: Duration) -> usize {
        for r in &self.listeners {
            r.stop.trigger();
        }
        for r in self.listeners {
            let _ = r.accept_loop.await;
        }
        self.ctx.tracker.drained(grace).await
    }
}

/// Binds every listener (all or none).
///
/// # Errors
/// The first listener that cannot bind, named with its address.
async fn bind_all(
    listeners: Vec<ListenerSettings>,
    ctx: &Context,
) -> anyhow::Result<Vec<Listener>> {
    use anyhow::Context as _;
    let mut bound = Vec::with_capacity(listeners.len());
    for settings in listeners {
        let (name, addr) = (settings.name.clone(), settings.listen);
        let l = Listener::bind(settings, ctx)
            .await
            .with_context(|| format!("cannot listen on {addr} (listener `{name}`)"))?;
        bound.push(l);
    }
    Ok(bound)
}
