//! systemd integration, both optional and inert outside systemd:
//!
//! - `Type=notify-reload` (or `notify`): `READY=1` once every listener
//!   accepts, `RELOADING=1` (with `MONOTONIC_USEC`) then `READY=1` around a
//!   SIGHUP reload, `STOPPING=1` at SIGINT/SIGTERM, each with a `STATUS=`
//!   line, sent to `$NOTIFY_SOCKET` by the `sd-notify` crate. Nothing is
//!   sent when the variable is unset.
//! - An upgrade in place (`--takeover`): the new process sends `MAINPID=`
//!   itself before the old one stops (see `crates/spliced/spliced-upgrade.service`).
//! - Socket activation: the listening sockets systemd passes
//!   (`LISTEN_FDS`/`LISTEN_PID`, from fd 3) are used, instead of binding,
//!   by the listeners whose `listen` address they are bound to (at start
//!   or at a reload). See `crates/spliced/spliced.service`. A Unix stream
//!   socket (`ListenStream=/run/x.sock`) goes to the listener on
//!   `unix:/run/x.sock`; its file is systemd's (`SocketMode=`,
//!   `SocketUser=`, removed by systemd), never removed by spliced.
//!
//! `unsafe` here: taking ownership of the fds systemd passed (see
//! [`take_inherited`]).
#![allow(unsafe_code)]

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use sd_notify::NotifyState;

use crate::address::ListenAddr;
use crate::net::Listening;

/// The inherited listening sockets no listener has taken yet.
static INHERITED: Mutex<Vec<(ListenAddr, Listening)>> = Mutex::new(Vec::new());

/// Takes the listening sockets passed by systemd, once, at start (before
/// the runtime starts its threads); returns their addresses. Passed fds that
/// are not bound TCP or Unix (at a path) sockets are closed and reported.
///
/// # Errors
/// A malformed `LISTEN_FDS`/`LISTEN_PID`.
pub(crate) fn take_inherited() -> std::io::Result<Vec<ListenAddr>> {
    let fds = sd_notify::listen_fds()?;
    // Not for children, and never taken twice: the variables describe
    // this process's fds. (Called in `run` before the runtime or any
    // other thread exists.)
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut inherited = INHERITED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut addrs = Vec::new();
    for raw in fds {
        // SAFETY: `listen_fds` checked that LISTEN_PID is this process,
        // so systemd passed fds 3..3+LISTEN_FDS to it for it to own; the
        // variables are removed above, so no fd is taken twice, and
        // nothing in this process opened or owns them.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        match bound(fd) {
            Ok((addr, listener)) => {
                addrs.push(addr.clone());
                inherited.push((addr, listener));
            }
            Err(e) => tracing::warn!(
                "fd {raw} passed by systemd is not a TCP or Unix stream socket at a path \
                 ({e}): closed"
            ),
        }
    }
    Ok(addrs)
}

/// The address `fd` is bound to, by its family: TCP, or a Unix socket at
/// a path.
fn bound(fd: OwnedFd) -> std::io::Result<(ListenAddr, Listening)> {
    use rustix::net::AddressFamily;
    if rustix::net::sockopt::socket_domain(&fd)? == AddressFamily::UNIX {
        let listener = UnixListener::from(fd);
        let path = listener.local_addr()?.as_pathname().map(Path::to_owned);
        let Some(path) = path else {
            return Err(std::io::Error::other("an unnamed or abstract Unix socket"));
        };
        return Ok((ListenAddr::Unix(path), Listening::Unix(listener)));
    }
    let listener = TcpListener::from(fd);
    Ok((
        ListenAddr::Tcp(listener.local_addr()?),
        Listening::Tcp(listener),
    ))
}

/// The inherited Unix socket at `path`, if systemd passed one (each is
/// handed out once), non-blocking.
///
/// # Errors
/// If it cannot be made non-blocking.
pub(crate) fn inherited_unix(path: &Path) -> std::io::Result<Option<UnixListener>> {
    let mut inherited = INHERITED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(i) = inherited.iter().position(|(a, _)| a.unix() == Some(path)) else {
        return Ok(None);
    };
    let Listening::Unix(listener) = inherited.swap_remove(i).1 else {
        unreachable!("a unix: address is a Unix socket's");
    };
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// The inherited socket bound to `addr`, if systemd passed one (each is
/// handed out once), ready for tokio.
///
/// # Errors
/// If it cannot be made non-blocking or registered with the runtime.
pub(crate) fn inherited(addr: SocketAddr) -> std::io::Result<Option<tokio::net::TcpListener>> {
    let mut inherited = INHERITED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(i) = inherited
        .iter()
        .position(|(a, _)| *a == ListenAddr::Tcp(addr))
    else {
        return Ok(None);
    };
    let Listening::Tcp(listener) = inherited.swap_remove(i).1 else {
        unreachable!("an IP:PORT address is a TCP socket's");
    };
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener).map(Some)
}

/// The addresses of inherited sockets no listener took.
pub(crate) fn unused() -> Vec<ListenAddr> {
    INHERITED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(a, _)| a.clone())
        .collect()
}

/// Sends `states` and a status line to the service manager, if any.
fn notify(states: &[NotifyState<'_>], status: &str) {
    let mut all = states.to_vec();
    all.push(NotifyState::Status(status));
    if let Err(e) = sd_notify::notify(&all) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// Every listener accepts (at start, or after a reload).
pub(crate) fn ready(status: &str) {
    notify(&[NotifyState::Ready], status);
}

/// A reload starts.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now], "reloading"),
        Err(e) => tracing::debug!("no monotonic clock for sd_notify: {e}"),
    }
}

/// This process takes over from the main one (`--takeover`): `MAINPID=`
/// this process, so that systemd (with `NotifyAccess=all`) follows it
/// when the old one exits.
pub(crate) fn main_pid() {
    notify(&[NotifyState::MainPid(std::process::id())], "taking over");
}

/// Shutting down.
pub(crate) fn stopping(status: &str) {
    notify(&[NotifyState::Stopping], status);
}
