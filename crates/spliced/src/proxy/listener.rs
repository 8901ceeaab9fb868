//! One listener, bound ([`Listener`]), then accepting ([`Running`]): each
//! client admitted ([`super::admit`]) is served by a task of its own
//! ([`super::conn`]) with what the listener's connections share now
//! ([`ListenerState`]).

use std::io;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admit::Gate;
use super::conn::elapsed_ms;
use super::state::{Context, ListenerState};
use super::{accept, conn};
use crate::access_log::{Entry, Termination};
use crate::acl::Sources;
use crate::address::ListenAddr;
use crate::config::ListenerSettings;
use crate::metrics::WorkerMetrics;
use crate::net::Listening;
use crate::stream::Acceptor;
use crate::unix_socket::SocketFile;

/// A bound listener, not accepting yet: a list of sockets, each with the
/// worker that accepts on it; our own TCP ones are one per worker (see
/// [`crate::net::bind_sockets`]), passed ones and a Unix socket (one
/// accept queue: no `SO_REUSEPORT` for Unix sockets) are spread by
/// [`spread`].
#[derive(Debug)]
pub(super) struct Listener {
    /// (worker, the socket, a duplicate of it for the worker's runtime):
    /// the duplicate is made here, so that every fd exists once bound.
    sockets: Vec<(usize, Listening, Listening)>,
    /// The bound address, known at bind so that [`Listener::start`]
    /// cannot fail (a reload starts its new listeners only after it
    /// stopped using the old ones).
    addr: ListenAddr,
    /// A Unix listener's socket file, removed when the listener stops.
    file: Option<SocketFile>,
    shared: Arc<ListenerState>,
}

impl Listener {
    /// Binds the listen address: a socket for each of `ctx`'s workers.
    ///
    /// # Errors
    /// As `bind(2)`/`listen(2)`, e.g. `AddrInUse`.
    pub(super) async fn bind(settings: ListenerSettings, ctx: &Context) -> io::Result<Listener> {
        let workers = ctx.workers.len();
        let listen = match &settings.listen {
            ListenAddr::Tcp(addr) => *addr,
            ListenAddr::Unix(path) => {
                return Listener::bind_unix(path.clone(), settings, ctx).await
            }
        };
        // The sockets of the process this one takes over (`--takeover`),
        // else one passed by systemd (socket activation), else our own.
        let sockets = match taken_over(&settings)? {
            Some(taken) => spread(taken, workers)?,
            None => match crate::systemd::inherited(listen)? {
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
                    spread(vec![Listening::Tcp(l.into_std()?)], workers)?
                }
                None => crate::net::bind_sockets(listen, workers)?
                    .into_iter()
                    .map(Listening::Tcp)
                    .enumerate()
                    .collect(),
            },
        };
        let Some(addr) = sockets[0].1.tcp_addr()? else {
            unreachable!("a TCP listener's sockets are TCP");
        };
        // The accept loop registers a duplicate with its worker's runtime,
        // so that the socket itself stays a std socket the admin thread
        // can hand over (`Running::sockets`); both close when the loop ends.
        let sockets = sockets
            .into_iter()
            .map(|(worker, socket)| Ok((worker, socket.try_clone()?, socket)))
            .collect::<io::Result<Vec<_>>>()?;
        let local = Some(addr).filter(|a| !a.ip().is_unspecified());
        let shared = ListenerState::new(settings, ctx, None, local);
        shared.resolve(ctx).await;
        Ok(Listener {
            sockets,
            addr: ListenAddr::Tcp(addr),
            file: None,
            shared: Arc::new(shared),
        })
    }

    /// Binds a Unix listener at `path` ([`crate::unix_socket::bind`]),
    /// or takes over the socket of the process this one replaces: one
    /// socket, a duplicate of it for each worker.
    ///
    /// # Errors
    /// As [`crate::unix_socket::bind`].
    async fn bind_unix(
        path: std::path::PathBuf,
        settings: ListenerSettings,
        ctx: &Context,
    ) -> io::Result<Listener> {
        let (taken, file) = match taken_over(&settings)? {
            // The file stays where the old process put it; this process
            // removes it at exit.
            Some(taken) => (taken, Some(SocketFile::adopt(&path)?)),
            None => match crate::systemd::inherited_unix(&path)? {
                // systemd's file (its mode and owner): systemd removes it.
                Some(l) => (vec![Listening::Unix(l)], None),
                None => {
                    let (l, file) = crate::unix_socket::bind(&path, &settings.unix_file())?;
                    (vec![Listening::Unix(l)], Some(file))
                }
            },
        };
        let sockets = spread(taken, ctx.workers.len())?
            .into_iter()
            .map(|(worker, socket)| Ok((worker, socket.try_clone()?, socket)))
            .collect::<io::Result<Vec<_>>>()?;
        let shared = ListenerState::new(settings, ctx, None, None);
        shared.resolve(ctx).await;
        Ok(Listener {
            sockets,
            addr: ListenAddr::Unix(path),
            file,
            shared: Arc::new(shared),
        })
    }

    /// Starts an accept loop on each worker, each on its own socket.
    /// Cannot fail: nothing is left undone when a reload starts it.
    pub(super) fn start(self, ctx: &Context) -> Running {
        let all = &ctx.tracker;
        let addr = self.addr;
        let file = self.file;
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
        let mut sockets = Vec::with_capacity(self.sockets.len());
        for (worker, for_runtime, socket) in self.sockets {
            let socket = Arc::new(socket);
            sockets.push(Arc::downgrade(&socket));
            accept_loops.push(ctx.workers.spawn(
                worker,
                serve(
                    (socket, for_runtime),
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
        Running {
            addr,
            file,
            sockets,
            current,
            stop,
            kill,
            tracker,
            accept_loops,
        }
    }
}

/// The sockets the process this one takes over passed for `settings`'s
/// listener (`--takeover`), if it had that listener.
///
/// # Errors
/// If a socket cannot be made non-blocking.
fn taken_over(settings: &ListenerSettings) -> io::Result<Option<Vec<Listening>>> {
    crate::admin::takeover::taken(&settings.name, &settings.listen)
}

/// Passed sockets (not empty) over `workers` workers: socket `i` to worker
/// `i % workers`, and a worker left without one accepts on a duplicate
/// of socket `worker % n` (the same accept queue). No socket is closed:
/// the kernel resets what waits in a closed socket's queue.
///
/// # Errors
/// As `fcntl(F_DUPFD_CLOEXEC)`.
fn spread(sockets: Vec<Listening>, workers: usize) -> io::Result<Vec<(usize, Listening)>> {
    let n = sockets.len();
    let workers = workers.max(1);
    let mut out = Vec::with_capacity(n.max(workers));
    for worker in n..workers {
        out.push((worker, sockets[worker % n].try_clone()?));
    }
    out.extend(
        sockets
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i % workers, s)),
    );
    out.sort_by_key(|(worker, _)| *worker);
    Ok(out)
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
    pub(super) addr: ListenAddr,
    /// A Unix listener's socket file: removed when this is dropped (once
    /// the accept loops ended), unless another process took it over.
    pub(super) file: Option<SocketFile>,
    /// The listening sockets, while their accept loops (which own them)
    /// run: handed over to a process taking over (`--takeover`).
    pub(super) sockets: Vec<Weak<Listening>>,
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
        old.listen == new.listen && (!new.listen.is_any_port() || old.name == new.name)
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
    (owned, for_runtime): (Arc<Listening>, Listening),
    mut current: watch::Receiver<Arc<ListenerState>>,
    stop: CancellationToken,
    kill: CancellationToken,
    trackers: [TaskTracker; 2],
    listener: Shared,
    worker: WorkerMetrics,
) {
    // Registered with this worker's runtime; `owned` stays a std socket
    // the admin thread can hand over; both close when this loop ends.
    let socket = match Acceptor::register(for_runtime) {
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
        &socket,
        stop,
        |stream, peer| {
            if current.has_changed().unwrap_or(false) {
                local = Arc::new(Arc::clone(&current.borrow_and_update()));
            }
            let open = worker.accepted();
            let shared = Arc::clone(&local);
            let connect_timeout = shared.settings.connect_timeout;
            let start = SystemTime::now();
            let admitted = match listener.gate.admit(&shared, peer, &trackers) {
                Ok(admitted) => admitted,
                Err(why) => {
                    let detail = why.detail(&shared.settings);
                    shared.refuse(peer, why, why.at_accept(), start, &detail);
                    drop(stream); // closed at once
                    return connect_timeout;
                }
            };
            let kill = Arc::clone(&kill);
            let sources = Arc::clone(&listener.sources);
            tokio::spawn(async move {
                tokio::select! {
                    () = conn::handle(&shared, &sources, stream, peer, start) => {}
                    () = kill.cancelled() => {
                        tracing::info!(
                            listener = %shared.settings.name,
                            client = %peer,
                            "connection closed: its listener was removed and the grace period is over"
                        );
                        // (The bytes it moved went with its task.)
                        let mut e = Entry::refused(start, peer, &shared.settings.name, Termination::Killed);
                        e.total_ms = elapsed_ms(start);
                        shared.access_log.record(&e);
                    }
                }
                drop((admitted, open));
            });
            connect_timeout
        },
        &first.metrics,
        &first.pressure,
    )
    .await;
    drop((socket, owned));
}

#[cfg(test)]
mod tests {
    use super::spread;

    use super::Listening;

    fn sockets(n: usize) -> Vec<Listening> {
        (0..n)
            .map(|_| Listening::Tcp(std::net::TcpListener::bind("127.0.0.1:0").unwrap()))
            .collect()
    }

    fn port(s: &Listening) -> u16 {
        s.tcp_addr().unwrap().unwrap().port()
    }

    fn ports(spread: &[(usize, Listening)]) -> Vec<(usize, u16)> {
        spread.iter().map(|(w, s)| (*w, port(s))).collect()
    }

    /// Every worker gets a socket, every passed socket is kept (none
    /// closed: its queue would be reset), and a worker left over shares a
    /// passed socket's queue.
    #[test]
    fn passed_sockets_cover_every_worker_and_none_is_dropped() {
        let one = sockets(1);
        let p = port(&one[0]);
        assert_eq!(ports(&spread(one, 3).unwrap()), [(0, p), (1, p), (2, p)]);

        let three = sockets(3);
        let ps: Vec<u16> = three.iter().map(port).collect();
        assert_eq!(
            ports(&spread(three, 2).unwrap()),
            [(0, ps[0]), (0, ps[2]), (1, ps[1])]
        );

        let two = sockets(2);
        let ps: Vec<u16> = two.iter().map(port).collect();
        assert_eq!(ports(&spread(two, 2).unwrap()), [(0, ps[0]), (1, ps[1])]);
        let two = sockets(2);
        let ps: Vec<u16> = two.iter().map(port).collect();
        assert_eq!(
            ports(&spread(two, 3).unwrap()),
            [(0, ps[0]), (1, ps[1]), (2, ps[0])]
        );
    }
}
