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

/// A bound listener, not accepting yet.
#[derive(Debug)]
pub(super) struct Listener {
    listener: TcpListener,
    shared: Arc<ListenerState>,
}

impl Listener {
    /// Binds the listen address.
    ///
    /// # Errors
    /// As `bind(2)`/`listen(2)`, e.g. `AddrInUse`.
    pub(super) async fn bind(settings: ListenerSettings, ctx: &Context) -> io::Result<Listener> {
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
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the accept loop.
    pub(super) fn start(self, ctx: &Context) -> io::Result<Running> {
        let all = &ctx.tracker;
        let addr = self.local_addr()?;
        self.shared.refresh_dns(ctx);
        let (current, rx) = watch::channel(Arc::clone(&self.shared));
        // A child: stopping the proxy stops every listener.
        let stop = ctx.stop.child_token();
        let kill = CancellationToken::new();
        let tracker = TaskTracker::new();
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
    pub(super) accept_loop: tokio::task::JoinHandle<()>,
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

/// Accepts clients until `stop`, each admitted by the listener's [`Gate`]
/// and served by its own task with the listener's current
/// [`ListenerState`], then closes the listening socket. Open connections
/// go on (until `kill`). Each is counted in both `trackers` (the
/// process's and the listener's).
async fn serve(
    listener: TcpListener,
    current: watch::Receiver<Arc<ListenerState>>,
    stop: CancellationToken,
    kill: CancellationToken,
    trackers: [TaskTracker; 2],
) {
    let gate = Gate::default();
    // Shared by the connections' tasks without a clone of the token each.
    let kill = Arc::new(kill);
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
            let admitted = match gate.admit(&shared, peer, &trackers) {
                Ok(admitted) => admitted,
                Err(why) => {
                    shared.refuse(peer, why, &why.detail(&shared.settings));
                    drop(stream); // closed at once
                    return;
                }
            };
            let kill = Arc::clone(&kill);
            let sources = Arc::clone(&sources);
            tokio::spawn(async move {
                tokio::select! {
                    () = conn::handle(&shared, &sources, stream, peer) => {}
                    () = kill.cancelled() => tracing::info!(
                        listener = %shared.settings.name,
                        client = %peer,
                        "connection closed: its listener was removed and the grace period is over"
                    ),
                }
                drop(admitted);
            });
        },
        || current.borrow().settings.connect_timeout,
        &first.metrics,
    )
    .await;
}
