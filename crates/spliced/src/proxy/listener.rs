//! One listener, bound ([`Listener`]), then accepting ([`Running`]): each
//! client admitted ([`super::admit`]) is served by a task of its own
//! ([`super::conn`]) with what the listener's connections share now
//! ([`ListenerState`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admit::Gate;
use super::state::{Context, ListenerState};
use super::{accept, conn};
use crate::acl::Sources;
use crate::config::ListenerSettings;
use crate::metrics::WorkerMetrics;

/// A bound listener, not accepting yet: one socket per worker (see
/// [`crate::net::bind_sockets`]); a listener is a list of sockets.
#[derive(Debug)]
pub(super) struct Listener {
    sockets: Vec<std::net::TcpListener>,
    shared: Arc<ListenerState>,
}

impl Listener {
    /// Binds the listen address: a socket for each of `ctx`'s workers.
    ///
    /// # Errors
    /// As `bind(2)`/`listen(2)`, e.g. `AddrInUse`.
    pub(super) async fn bind(settings: ListenerSettings, ctx: &Context) -> io::Result<Listener> {
        let workers = ctx.workers.len();
        // A socket passed by systemd (socket activation), else our own.
        let sockets = match crate::systemd::inherited(settings.listen)? {
            Some(l) => {
                // Ours have it from `net::bind_sockets`: accepted sockets inherit it.
                if let Err(e) = crate::net::nodelay_for_accepted(&l) {
                    tracing::warn!(
                        listener = %settings.name,
                        "cannot set TCP_NODELAY on the socket systemd passed ({e}): \
                         clients will have Nagle's algorithm"
                    );
                }
                // One accept queue: every worker accepts from it.
                let l = l.into_std()?;
                let mut sockets = Vec::with_capacity(workers);
                for _ in 1..workers {
                    sockets.push(l.try_clone()?);
                }
                sockets.push(l);
                sockets
            }
            None => crate::net::bind_sockets(settings.listen, workers)?,
        };
        let local = Some(sockets[0].local_addr()?).filter(|a| !a.ip().is_unspecified());
        let shared = ListenerState::new(settings, ctx, None, local);
        shared.resolve(ctx).await;
        Ok(Listener {
            sockets,
            shared: Arc::new(shared),
        })
    }

    /// The bound address (with the real port when 0 was asked).
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sockets[0].local_addr()
    }

    /// Starts an accept loop on each worker, each on its own socket.
    pub(super) fn start(self, ctx: &Context) -> io::Result<Running> {
        let all = &ctx.tracker;
        let addr = self.local_addr()?;
        self.shared.refresh_dns(ctx);
        let (current, rx) = watch::channel(Arc::clone(&self.shared));
        // A child: stopping the proxy stops every listener.
        let stop = ctx.stop.child_token();
        let kill = CancellationToken::new();
        let tracker = TaskTracker::new();
        let listener = Shared {
            gate: Arc::new(Gate::default()),
            sources: Arc::new(Sources::default()),
        };
        let mut accept_loops = Vec::with_capacity(self.sockets.len());
        for (worker, socket) in self.sockets.into_iter().enumerate() {
            accept_loops.push(ctx.workers.spawn(
                worker,
                serve(
                    socket,
                    rx.clone(),
                    stop.clone(),
                    // The worker's own: its connections wait on it alone.
                    kill.child_token(),
                    [all.clone(), tracker.clone()],
                    listener.clone(),
                    ctx.metrics.worker(worker),
                ),
            ));
        }
        Ok(Running {
            addr,
            current,
            stop,
            kill,
            tracker,
            accept_loops,
        })
    }
}

/// What a listener's accept loops share across workers (and reloads).
#[derive(Debug, Clone)]
struct Shared {
    /// `max_conns`.
    gate: Arc<Gate>,
    /// Open connections per client address, checked in `conn::handle`
    /// against the current `max_conns_per_source`.
    sources: Arc<Sources>,
}

/// A listener accepting.
#[derive(Debug)]
pub(super) struct Running {
    /// The bound address.
    pub(super) addr: SocketAddr,
    /// What new connections use; a reload sends a new one.
    pub(super) current: watch::Sender<Arc<ListenerState>>,
    /// Stops the accept loop (the listening socket closes); a child of
    /// the proxy's.
    pub(super) stop: CancellationToken,
    /// Closes the listener's open connections.
    pub(super) kill: CancellationToken,
    /// The listener's open connections.
    pub(super) tracker: TaskTracker,
    /// One per worker.
    pub(super) accept_loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Whether `new` is the same listener as this one: the same configured
    /// address (and, for port 0, the same name).
    pub(super) fn is(&self, new: &ListenerSettings) -> bool {
        let now = self.current.borrow();
        let old = &now.settings;
        old.listen == new.listen && (new.listen.port() != 0 || old.name == new.name)
    }

    pub(super) fn name(&self) -> String {
        self.current.borrow().settings.name.clone()
    }
}

/// Accepts clients on `socket` until `stop`, each admitted by the
/// listener's [`Gate`] and served by its own task (on this worker) with
/// the listener's current [`ListenerState`], then closes the listening
/// socket. Open connections go on (until `kill`). Each is counted in both
/// `trackers` (the process's and the listener's) and in the worker's
/// metrics.
async fn serve(
    socket: std::net::TcpListener,
    mut current: watch::Receiver<Arc<ListenerState>>,
    stop: CancellationToken,
    kill: CancellationToken,
    trackers: [TaskTracker; 2],
    listener: Shared,
    worker: WorkerMetrics,
) {
    // Registered with this worker's runtime.
    let socket = match TcpListener::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot register a listening socket with its worker: {e}");
            return;
        }
    };
    // This worker's reference to the current state, renewed only when a
    // reload sends a new one: the per-connection path takes no lock and
    // writes no reference count shared with the other workers.
    let mut local = Arc::new(Arc::clone(&current.borrow_and_update()));
    // Shared by this worker's connections without a clone of the token each.
    let kill = Arc::new(kill);
    // accept(2) errors are counted under the listener's first name.
    let first = Arc::clone(&local);
    accept::run(
        socket,
        stop,
        |stream, peer| {
            if current.has_changed().unwrap_or(false) {
                local = Arc::new(Arc::clone(&current.borrow_and_update()));
            }
            let open = worker.accepted();
            let shared = Arc::clone(&local);
            let connect_timeout = shared.settings.connect_timeout;
            let admitted = match listener.gate.admit(&shared, peer, &trackers) {
                Ok(admitted) => admitted,
                Err(why) => {
                    shared.refuse(peer, why, &why.detail(&shared.settings));
                    drop(stream); // closed at once
                    return connect_timeout;
                }
            };
            let kill = Arc::clone(&kill);
            let sources = Arc::clone(&listener.sources);
            tokio::spawn(async move {
                tokio::select! {
                    () = conn::handle(&shared, &sources, stream, peer) => {}
                    () = kill.cancelled() => tracing::info!(
                        listener = %shared.settings.name,
                        client = %peer,
                        "connection closed: its listener was removed and the grace period is over"
                    ),
                }
                drop((admitted, open));
            });
            connect_timeout
        },
        &first.metrics,
    )
    .await;
}
