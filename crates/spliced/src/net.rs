//! Listening sockets with a backlog fit for a proxy.
//!
//! `tokio::net::TcpListener::bind` listens with a backlog of 128: a burst of
//! a few hundred connects then overflows the accept queue and the dropped
//! SYNs cost clients a one-second retransmit. spliced asks for
//! [`BACKLOG`]; the kernel caps it at `net.core.somaxconn` (4096 by
//! default since Linux 5.4), as HAProxy and Go do.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The accept backlog requested for every listener.
pub(crate) const BACKLOG: u32 = 4096;

/// `socket` + `SO_REUSEADDR` + `bind(addr)` + `listen(BACKLOG)`.
///
/// # Errors
/// As `bind(2)` and `listen(2)`: `AddrInUse`, `PermissionDenied`, ...
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
