//! Closing a connection whose stream was cut: by a reset from one side, a
//! read or write error, or the idle timeout. A FIN would tell the other
//! side that the stream ended whole, and for every protocol that frames by
//! connection close (HTTP/1.0 bodies, raw downloads) a truncated transfer
//! would look complete. So each side still connected gets an RST
//! (`SO_LINGER` 0, then close), but only after every byte already written
//! to its socket was acknowledged by its peer: the peer reads them all,
//! then the reset (Linux keeps received bytes readable after an RST).
//!
//! A normal end of stream never comes here: it stays a FIN.
//!
//! A Unix socket has no RST: a cut Unix side is closed at once, and its
//! peer reads EOF (a truncated stream looks whole to it, as a FIN would;
//! a peer writing into it gets `EPIPE`). No `SO_LINGER` or `SIOCOUTQ` on
//! it, and it is not counted in `spliced_resets_sent_total`.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{sleep, Instant};

use crate::stream::Stream;

/// The longest a side's send queue may make no progress before the RST
/// (`idle_timeout` instead, when it is shorter).
pub(super) const STALL: Duration = Duration::from_secs(10);

/// How often a side's send queue is looked at while it drains.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Resets `socket` once its send queue has drained, or once it made no
/// progress for `stall` (a peer that reads nothing more). Whether an RST
/// was sent: `false` when TCP had closed the connection already (reset by
/// its peer, or timed out), which has no peer address any more, and for
/// a Unix side (closed, see above).
pub(super) async fn reset(socket: Stream, stall: Duration) -> bool {
    let socket = match socket {
        Stream::Tcp(s) => s,
        // No reset on a Unix socket: just closed.
        Stream::Unix(_) => return false,
    };
    if socket.peer_addr().is_err() {
        return false;
    }
    let mut left = unsent(&socket).unwrap_or(0);
    let mut deadline = Instant::now() + stall;
    while left > 0 && Instant::now() < deadline {
        sleep(DRAIN_POLL).await;
        let now = unsent(&socket).unwrap_or(0);
        if now < left {
            deadline = Instant::now() + stall;
        }
        left = now;
    }
    // On failure the close below is a FIN instead: nothing better is left.
    let _ = rustix::net::sockopt::set_socket_linger(&socket, Some(Duration::ZERO));
    drop(socket);
    true
}

/// Bytes written to `socket` that its peer has not acknowledged yet
/// (`SIOCOUTQ`).
fn unsent(socket: &TcpStream) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is an open socket borrowed from `socket` for this call;
    // SIOCOUTQ (= TIOCOUTQ on Linux) writes one `int` through the pointer,
    // which points at `n`, alive and writable for the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}
