//! Listening sockets with a backlog fit for a proxy.
//!
//! `tokio::net::TcpListener::bind` listens with a backlog of 128: a burst of
//! a few hundred connects then overflows the accept queue and the dropped
//! SYNs cost clients a one-second retransmit. spliced asks for
//! [`BACKLOG`]; the kernel caps it at `net.core.somaxconn` (4096 by
//! default since Linux 5.4), as HAProxy and Go do.
//!
//! Listening sockets also carry `TCP_NODELAY`: Linux copies it (as every
//! TCP option) into each socket `accept(2)` returns, so clients get it
//! without a `setsockopt` per connection.
//!
//! Keepalive and `TCP_USER_TIMEOUT`, per side of a connection
//! ([`tcp_options`]), are set on each socket: a reload may change them.
//!
//! [`Listening`]: a listener's socket as bound, passed or handed over,
//! TCP or Unix (`crate::unix_socket` binds those).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use crate::config::keepalive::Keepalive;

/// The accept backlog requested for every listener.
pub(crate) const BACKLOG: u32 = 4096;

/// `socket` + `SO_REUSEADDR` + `TCP_NODELAY` (for the accepted sockets,
/// [`nodelay_for_accepted`]) + `bind(addr)` + `listen(BACKLOG)`.
///
/// # Errors
/// As `bind(2)` and `listen(2)`: `AddrInUse`, `PermissionDenied`, ...
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The listening sockets of one listener: `count` sockets on `addr`
/// (with the real port when 0 was asked), each as [`listen`] makes them,
/// non-blocking and close-on-exec; with `SO_REUSEPORT` when `count` is more
/// than one, so that the kernel spreads new connections over their accept
/// queues (one per worker). Every listener binds through here: a process
/// that adopts its sockets from another replaces this call.
///
/// # Errors
/// As `socket(2)`, `bind(2)` and `listen(2)`: `AddrInUse`,
/// `PermissionDenied`, ...
pub(crate) fn bind_sockets(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let mut sockets: Vec<std::net::TcpListener> = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        // After the first, the port it got (when 0 was asked).
        let at = sockets
            .first()
            .map_or(Ok(addr), std::net::TcpListener::local_addr)?;
        sockets.push(bind_one(at, count > 1)?);
    }
    Ok(sockets)
}

/// One listening socket on `addr` (see [`bind_sockets`]).
fn bind_one(addr: SocketAddr, reuseport: bool) -> io::Result<std::net::TcpListener> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    if reuseport {
        sockopt::set_socket_reuseport(&fd, true)?;
    }
    sockopt::set_tcp_nodelay(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, BACKLOG as i32)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Sets `TCP_NODELAY` on `listener` (a socket systemd passed: [`listen`]
/// sets it on spliced's own), so that every socket it accepts has it:
/// forwarded bytes are not worth holding back, the sender already chose
/// its segment sizes.
///
/// # Errors
/// As `setsockopt(2)`.
pub(crate) fn nodelay_for_accepted(listener: &TcpListener) -> io::Result<()> {
    rustix::net::sockopt::set_tcp_nodelay(listener, true)?;
    Ok(())
}

/// Sets what `keepalive` and `user_timeout` ask on one side of a
/// connection (`client_keepalive`, `upstream_user_timeout`, ...):
/// `SO_KEEPALIVE` with `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT`,
/// and `TCP_USER_TIMEOUT`. No call when neither is set.
///
/// # Errors
/// As `setsockopt(2)`.
pub(crate) fn tcp_options(
    fd: impl AsFd,
    keepalive: Option<&Keepalive>,
    user_timeout: Option<Duration>,
) -> io::Result<()> {
    use rustix::net::sockopt;
    let fd = fd.as_fd();
    if let Some(k) = keepalive {
        sockopt::set_tcp_keepidle(fd, k.idle)?;
        sockopt::set_tcp_keepintvl(fd, k.interval)?;
        sockopt::set_tcp_keepcnt(fd, k.count)?;
        sockopt::set_socket_keepalive(fd, true)?;
    }
    if let Some(t) = user_timeout {
        // Checked at load: whole milliseconds within u32.
        let ms = u32::try_from(t.as_millis()).unwrap_or(u32::MAX);
        sockopt::set_tcp_user_timeout(fd, ms)?;
    }
    Ok(())
}

/// A listening socket as bound (or received): std, not registered with
/// any runtime yet.
#[derive(Debug)]
pub(crate) enum Listening {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix stream listener.
    Unix(std::os::unix::net::UnixListener),
}

impl Listening {
    /// A duplicate of the socket (the same accept queue).
    ///
    /// # Errors
    /// As `fcntl(F_DUPFD_CLOEXEC)`.
    pub(crate) fn try_clone(&self) -> io::Result<Listening> {
        Ok(match self {
            Listening::Tcp(l) => Listening::Tcp(l.try_clone()?),
            Listening::Unix(l) => Listening::Unix(l.try_clone()?),
        })
    }

    /// The bound TCP address; `None` for a Unix socket.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub(crate) fn tcp_addr(&self) -> io::Result<Option<SocketAddr>> {
        match self {
            Listening::Tcp(l) => l.local_addr().map(Some),
            Listening::Unix(_) => Ok(None),
        }
    }
}

impl AsFd for Listening {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listening::Tcp(l) => l.as_fd(),
            Listening::Unix(l) => l.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel behaviour spliced relies on to save a `setsockopt` per
    /// client: an accepted socket inherits `TCP_NODELAY` from its
    /// listener (checked on the accepted socket itself), and only from it.
    #[tokio::test(flavor = "current_thread")]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (accepted, _) = accepted.unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY was not inherited");
        assert!(
            !client.unwrap().nodelay().unwrap(),
            "the connecting side has it too?"
        );

        // And a listener without it hands out sockets without it: the
        // option comes from the listener, not from a default.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = plain.local_addr().unwrap();
        let (_c, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), plain.accept());
        assert!(!accepted.unwrap().0.nodelay().unwrap());
        nodelay_for_accepted(&plain).unwrap();
        let (_c, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), plain.accept());
        assert!(
            accepted.unwrap().0.nodelay().unwrap(),
            "set on a bound listener"
        );
    }

    /// A listener's sockets share one port (the real one when 0 was asked),
    /// each accepts, and a port another socket holds is refused.
    #[test]
    fn bind_sockets_shares_one_port() {
        let sockets = bind_sockets("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addr = sockets[0].local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert!(sockets.iter().all(|s| s.local_addr().unwrap() == addr));
        // Connections from many source ports reach every socket's queue.
        let clients: Vec<_> = (0..48)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut total = 0;
        for s in &sockets {
            let mut n = 0;
            while s.accept().is_ok() {
                n += 1;
            }
            assert!(n > 0, "a socket of the group accepted nothing");
            total += n;
        }
        assert_eq!(total, clients.len());
        // A port held by a socket without SO_REUSEPORT stays taken.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = plain.local_addr().unwrap();
        for count in [1, 2] {
            let err = bind_sockets(taken, count).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{count} socket(s)");
        }
    }
}
