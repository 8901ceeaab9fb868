//! Zero-downtime upgrade: a new `spliced run ... --takeover PATH` takes
//! the listening sockets of the process answering at PATH.
//!
//! 1. The new process, before it binds anything, asks the old one
//!    `takeover` ([`receive`]): the answer lists each listening socket
//!    (`listener FDS LISTEN NAME`, `metrics FDS LISTEN`) and carries them
//!    (`SCM_RIGHTS`: the same kernel sockets, their accept queues
//!    included). A listener may have several sockets (`FDS`). `LISTEN`
//!    is `IP:PORT` or `unix:/path` (a Unix listener, matched by its
//!    path; its socket file stays, and the new process removes it at
//!    exit: [`crate::unix_socket`]).
//! 2. Its listeners whose name and configured address match one of them
//!    use those sockets ([`taken`], [`taken_metrics`]) instead of binding;
//!    the others bind fresh. It starts accepting: both processes accept
//!    now, from the same queues.
//! 3. It tells the old one `handed-over` ([`finish`]), then closes the
//!    sockets no listener of its own took (listeners the new configuration
//!    dropped) and puts its own admin socket at PATH. The old process stops
//!    accepting (closing its copies of the sockets closes no socket), drains
//!    its open connections up to `grace_period` and exits 0, leaving PATH
//!    to the new process.
//!
//! The old process's side: [`commands`] adds `takeover` and `handed-over`,
//! which pass a [`Request`] to `run`'s loop (it owns the proxy).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use super::client::{request, RequestError};
use super::{Commands, Reply};
use crate::address::ListenAddr;
use crate::net::Listening;

/// One listener's sockets, as the old process hands them over.
#[derive(Debug)]
pub(crate) struct Sockets {
    /// `Some(name)`: a proxy listener; `None`: the metrics socket.
    pub(crate) listener: Option<String>,
    /// The configured address (port 0 stays 0: matched with the name; a
    /// Unix listener by its path, `unix:/path`).
    pub(crate) listen: ListenAddr,
    pub(crate) fds: Vec<OwnedFd>,
}

/// What the admin commands ask of `run`'s loop.
#[derive(Debug)]
pub(crate) enum Request {
    /// Every listening socket, duplicated.
    Sockets(oneshot::Sender<Result<Vec<Sockets>, String>>),
    /// A new process accepts on them: stop accepting, drain, exit 0.
    HandedOver(oneshot::Sender<()>),
}

/// Adds `takeover` and `handed-over` to `commands`; `run`'s loop answers
/// the requests they make on the returned receiver.
pub(crate) fn commands(commands: &mut Commands) -> mpsc::Receiver<Request> {
    let (tx, rx) = mpsc::channel(4);
    let sockets = tx.clone();
    commands.add(
        "takeover",
        "takeover: pass every listening socket (for `spliced run --takeover`)",
        move |_| {
            let tx = sockets.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                tx.send(Request::Sockets(reply))
                    .await
                    .map_err(|_| "shutting down".to_owned())?;
                let all = answer.await.map_err(|_| "shutting down".to_owned())??;
                let mut out = Reply::default();
                for s in all {
                    out.lines.push(match &s.listener {
                        Some(name) => format!("listener {} {} {name}", s.fds.len(), s.listen),
                        None => format!("metrics {} {}", s.fds.len(), s.listen),
                    });
                    out.fds.extend(s.fds);
                }
                if out.fds.len() > super::fds::MAX_FDS {
                    return Err(format!(
                        "{} sockets: more than one message carries ({})",
                        out.fds.len(),
                        super::fds::MAX_FDS
                    ));
                }
                Ok(out)
            }
        },
    );
    commands.add(
        "handed-over",
        "handed-over: another process accepts on the sockets now: stop accepting, drain, exit",
        move |_| {
            let tx = tx.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                tx.send(Request::HandedOver(reply))
                    .await
                    .map_err(|_| "shutting down".to_owned())?;
                answer.await.map_err(|_| "shutting down".to_owned())?;
                Ok(Reply::ok())
            }
        },
    );
    rx
}

/// Why `--takeover` failed (exit code 2; nothing was bound).
#[derive(Debug)]
pub struct TakeoverError(String);

impl std::fmt::Display for TakeoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--takeover: {}", self.0)
    }
}

impl std::error::Error for TakeoverError {}

/// The sockets received and not taken yet.
static RECEIVED: Mutex<Vec<Sockets>> = Mutex::new(Vec::new());

/// Asks the process at `path` for its listening sockets (step 1), and
/// keeps them for [`taken`]. Blocking: call it before the runtime starts.
///
/// # Errors
/// [`TakeoverError`]: nothing answers at `path` (gone, a stale socket,
/// not a socket), the answer is not spliced's, or its sockets are not
/// bound TCP sockets.
pub(crate) fn receive(path: &Path) -> Result<Vec<(Option<String>, ListenAddr)>, TakeoverError> {
    let fail = |why: String| TakeoverError(why);
    let answer = request(path, &["takeover"]).map_err(|e| match e {
        RequestError::Failed(m) => fail(format!("the process at {} refused: {m}", path.display())),
        other => fail(other.to_string()),
    })?;
    let not_spliced = |why: &str| {
        fail(format!(
            "{} is not a spliced admin socket (its answer to `takeover`: {why})",
            path.display()
        ))
    };
    let mut fds = answer.fds.into_iter();
    let mut all = Vec::new();
    for line in &answer.lines {
        let mut words = line.splitn(4, ' ');
        let kind = words.next().unwrap_or_default();
        let count: usize = words
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| not_spliced(line))?;
        let listen: ListenAddr = words
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| not_spliced(line))?;
        let listener = match (kind, words.next()) {
            ("listener", Some(name)) => Some(name.to_owned()),
            ("metrics", None) => None,
            _ => return Err(not_spliced(line)),
        };
        let mine: Vec<OwnedFd> = fds.by_ref().take(count).collect();
        if mine.len() != count {
            return Err(not_spliced("fewer sockets than listed"));
        }
        for fd in &mine {
            let fd = fd.try_clone().map_err(|e| fail(e.to_string()))?;
            let bound = match &listen {
                ListenAddr::Tcp(_) => std::net::TcpListener::from(fd).local_addr().map(drop),
                ListenAddr::Unix(_) => std::os::unix::net::UnixListener::from(fd)
                    .local_addr()
                    .map(drop),
            };
            let kind = if listen.unix().is_some() {
                "Unix"
            } else {
                "TCP"
            };
            bound.map_err(|e| {
                fail(format!(
                    "a socket passed for {line} is not a {kind} socket: {e}"
                ))
            })?;
        }
        all.push(Sockets {
            listener,
            listen,
            fds: mine,
        });
    }
    if all.is_empty() {
        return Err(not_spliced("no socket"));
    }
    let addrs = all
        .iter()
        .map(|s| (s.listener.clone(), s.listen.clone()))
        .collect();
    *RECEIVED.lock().unwrap_or_else(PoisonError::into_inner) = all;
    Ok(addrs)
}

/// Takes the received sockets of the listener `name` on `listen`, if the
/// old process had it, non-blocking, for its workers to register (step 2).
///
/// # Errors
/// If a socket cannot be made non-blocking.
pub(crate) fn taken(name: &str, listen: &ListenAddr) -> std::io::Result<Option<Vec<Listening>>> {
    take(|s| s.listener.as_deref() == Some(name) && s.listen == *listen)
}

/// Takes the received metrics socket on `listen`, if any.
///
/// # Errors
/// As [`taken`].
pub(crate) fn taken_metrics(
    listen: SocketAddr,
) -> std::io::Result<Option<Vec<std::net::TcpListener>>> {
    let taken = take(|s| s.listener.is_none() && s.listen == ListenAddr::Tcp(listen))?;
    Ok(taken.map(|all| {
        all.into_iter()
            .filter_map(|l| match l {
                Listening::Tcp(l) => Some(l),
                Listening::Unix(_) => None,
            })
            .collect()
    }))
}

fn take(matches: impl Fn(&Sockets) -> bool) -> std::io::Result<Option<Vec<Listening>>> {
    let mut received = RECEIVED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(i) = received
        .iter()
        .position(|s| !s.fds.is_empty() && matches(s))
    else {
        return Ok(None);
    };
    let sockets = received.swap_remove(i);
    let mut out = Vec::with_capacity(sockets.fds.len());
    for fd in sockets.fds {
        // Checked at receive: the kind the address says.
        let l = match sockets.listen {
            ListenAddr::Tcp(_) => Listening::Tcp(std::net::TcpListener::from(fd)),
            ListenAddr::Unix(_) => Listening::Unix(std::os::unix::net::UnixListener::from(fd)),
        };
        rustix::io::ioctl_fionbio(&l, true)?;
        out.push(l);
    }
    Ok(Some(out))
}

/// Tells the process at `path` that this one accepts now (step 3), then
/// closes the received sockets that no listener took; returns their
/// descriptions. Blocking.
///
/// # Errors
/// If the old process cannot be told (it may have exited: it then
/// closed its copies anyway).
pub(crate) fn finish(path: &Path) -> Result<Vec<String>, RequestError> {
    let told = request(path, &["handed-over"]).map(|_| ());
    let left: Vec<Sockets> =
        std::mem::take(&mut *RECEIVED.lock().unwrap_or_else(PoisonError::into_inner));
    let closed = left
        .iter()
        .map(|s| match &s.listener {
            Some(name) => format!("listener `{name}` on {}", s.listen),
            None => format!("metrics on {}", s.listen),
        })
        .collect();
    drop(left);
    told.map(|()| closed)
}
