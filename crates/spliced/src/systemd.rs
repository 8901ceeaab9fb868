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
//!   or at a reload). See `crates/spliced/spliced.service`.
//!
//! `unsafe` here: taking ownership of the fds systemd passed (see
//! [`take_inherited`]).
#![allow(unsafe_code)]

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::sync::{Mutex, PoisonError};

use sd_notify::NotifyState;

/// The inherited listening sockets no listener has taken yet.
static INHERITED: Mutex<Vec<(SocketAddr, TcpListener)>> = Mutex::new(Vec::new());

/// Takes the listening sockets passed by systemd, once, at start (before
/// the runtime starts its threads); returns their addresses. Passed fds that
/// are not bound TCP sockets are closed and reported.
///
/// # Errors
/// A malformed `LISTEN_FDS`/`LISTEN_PID`.
pub(crate) fn take_inherited() -> std::io::Result<Vec<SocketAddr>> {
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
        let listener = TcpListener::from(fd);
        match listener.local_addr() {
            Ok(addr) => {
                addrs.push(addr);
                inherited.push((addr, listener));
            }
            Err(e) => {
                tracing::warn!("fd {raw} passed by systemd is not a TCP socket ({e}): closed")
            }
        }
    }
    Ok(addrs)
}

/// The inherited socket bound to `addr`, if systemd passed one (each is
/// handed out once), ready for tokio.
///
/// # Errors
/// If it cannot be made non-blocking or registered with the runtime.
pub(crate) fn inherited(addr: SocketAddr) -> std::io::Result<Option<tokio::net::TcpListener>> {
    let mut inherited = INHERITED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(i) = inherited.iter().position(|(a, _)| *a == addr) else {
        return Ok(None);
    };
    let (_, listener) = inherited.swap_remove(i);
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener).map(Some)
}

/// The addresses of inherited sockets no listener took.
pub(crate) fn unused() -> Vec<SocketAddr> {
    INHERITED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(a, _)| *a)
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
