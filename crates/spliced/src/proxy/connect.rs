//! Connecting a client's upstream: the balancer's plan, one attempt per
//! upstream with `connect_timeout` each, the next upstream after a refusal
//! or a timeout, and a summary of every failure when all attempts fail.
//! Each outcome goes back to the balancer (passive health), but for a
//! local resource error ([`pressure`]): the connection waits for the
//! resource instead, and the upstream is not blamed.
//!
//! The connect itself is [`connect_addr`]: tokio's `TcpStream::connect`
//! without its `getsockopt(SO_ERROR)` once the socket is writable, which
//! only an error needs; a `unix:/path` upstream is tokio's
//! `UnixStream::connect` (a Unix connect completes at once or fails:
//! `ECONNREFUSED` for a socket nobody accepts on, `ENOENT` for a missing
//! file, `EAGAIN` for a full accept queue, all the upstream's failures).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use tokio::time::error::Elapsed;
use tokio::time::Instant;

use super::pressure::{self, Retry};
use super::state::ListenerState;
use crate::metrics::ConnectFailure;
use crate::stream::Stream;
use crate::upstream::{Balancer, Lease};

/// Why no upstream was connected.
#[derive(Debug)]
pub(super) struct NoUpstream {
    /// The last attempt's error (its kind kept), its message listing each
    /// attempt; or, when no upstream was usable, one saying so.
    pub(super) error: io::Error,
    /// The balancer's index of the upstream tried last; `None` when none
    /// was usable.
    pub(super) last: Option<usize>,
}

/// Connects to the first upstream of `balancer`'s plan (for a client
/// from `client`) that accepts. With `balance = source`, a client with
/// no IP address (a Unix peer) hashes as the unspecified address `::`,
/// which no TCP client has: the Unix clients of a listener are one
/// source, and go to one upstream while it is up.
///
/// # Errors
/// When every attempt failed: the error of the last one (its kind kept),
/// with a message listing each attempt, and which upstream that was; when
/// no upstream is usable (down, drained, disabled, weight 0 or full), one
/// saying so.
pub(super) async fn connect(
    shared: &Arc<ListenerState>,
    balancer: &Arc<Balancer>,
    client: Option<IpAddr>,
) -> Result<(Stream, Lease), NoUpstream> {
    let settings = &shared.settings;
    let client = client.unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    let plan = balancer.plan(settings.connect_attempts, client);
    if plan.is_empty() {
        return Err(NoUpstream {
            error: io::Error::other(
                "no usable upstream (every one is down, drained, disabled, of weight 0 or full)",
            ),
            last: None,
        });
    }
    // Allocated at the first failure only: none on the common path.
    let mut failures = Vec::new();
    let mut last_kind = io::ErrorKind::Other;
    let mut last = None;
    for index in plan {
        last = Some(index);
        // Full since the plan was made: the next one.
        let Some(lease) = balancer.try_lease(index) else {
            failures.push(format!("{}: full (max_conns)", balancer.addr(index)));
            continue;
        };
        let (why, text, kind) = match attempt(shared, &lease).await {
            Ok(Ok(stream)) => {
                if lease.succeeded() {
                    tracing::info!(listener = %settings.name, upstream = lease.addr(), "upstream answers again");
                }
                return Ok((stream, lease));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                (ConnectFailure::Refused, e.to_string(), e.kind())
            }
            Ok(Err(e)) if pressure::is_local_resource(&e) => {
                // This process is short of fds or memory, not the upstream
                // of its health: neither blamed nor counted, and the next
                // upstream would fail the same way.
                tracing::warn!(
                    listener = %settings.name,
                    upstream = lease.addr(),
                    "connect failed: {e} (a local resource, for {:?}); \
                     the upstream is not blamed",
                    settings.connect_timeout
                );
                return Err(NoUpstream {
                    error: io::Error::new(
                        e.kind(),
                        format!("no local resource for an upstream socket: {e}"),
                    ),
                    last,
                });
            }
            Ok(Err(e)) => (ConnectFailure::Error, e.to_string(), e.kind()),
            Err(_) => (
                ConnectFailure::Timeout,
                format!("no answer within {:?}", settings.connect_timeout),
                io::ErrorKind::TimedOut,
            ),
        };
        shared.metrics.connect_failed(lease.addr(), why);
        let backoff = lease.failed();
        tracing::warn!(
            listener = %settings.name,
            upstream = lease.addr(),
            backoff_ms = backoff.as_millis() as u64,
            "connect failed: {text}; the upstream goes last in the plans meanwhile"
        );
        failures.push(format!("{}: {text}", lease.addr()));
        last_kind = kind;
    }
    Err(NoUpstream {
        error: io::Error::new(
            last_kind,
            format!("no upstream accepted ({})", failures.join("; ")),
        ),
        last,
    })
}

/// One upstream's attempt within `connect_timeout`. While the connect
/// fails for want of a local resource (see [`pressure`]), the accept
/// loops pause and the attempt waits and tries again, until the timeout;
/// the last such error is its result then.
async fn attempt(shared: &ListenerState, lease: &Lease) -> Result<io::Result<Stream>, Elapsed> {
    let deadline = Instant::now() + shared.settings.connect_timeout;
    let mut retry = Retry::default();
    loop {
        // Resolved at load and in the background (crate::dns): no lookup here.
        let tried = tokio::time::timeout_at(deadline, async {
            match lease.unix_path() {
                Some(path) => UnixStream::connect(path).await.map(Stream::Unix),
                None => connect_any(&lease.socket_addrs()?).await.map(Stream::Tcp),
            }
        })
        .await;
        match tried {
            Ok(Err(e)) if pressure::is_local_resource(&e) => {
                shared.pressure.hit(&e);
                let wake = Instant::now() + retry.next();
                if wake >= deadline {
                    return Ok(Err(e));
                }
                tokio::time::sleep_until(wake).await;
            }
            done => return done,
        }
    }
}

/// Connects to the first of `addrs` that accepts, in order, as
/// `TcpStream::connect` does with a list.
///
/// # Errors
/// The last address's error; `InvalidInput` when `addrs` is empty.
async fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = None;
    for &addr in addrs {
        match connect_addr(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the upstream resolved to no address",
        )
    }))
}

/// A non-blocking connect to `addr`, as `TcpStream::connect` makes it
/// (`socket`, `connect`, register, wait until writable) but for the last
/// step: tokio asks `getsockopt(SO_ERROR)` on every connect, this only
/// when the readiness says error or hang-up. A failed connect always
/// shows as one of them: the kernel sets the socket's error (`EPOLLERR`)
/// and closes it (`EPOLLHUP`), so a writable socket without either is
/// connected, and the call is saved on every successful connect.
///
/// # Errors
/// As `connect(2)`: the call's own error (`ENETUNREACH`, ...), or the
/// socket's error once the attempt failed (`ECONNREFUSED`, `ETIMEDOUT`,
/// `EHOSTUNREACH`, ...).
pub(super) async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    let done = match rustix::net::connect(&fd, &addr) {
        Ok(()) => true, // connected at once (loopback can)
        Err(Errno::INPROGRESS) => false,
        Err(e) => return Err(e.into()),
    };
    // Non-blocking, as `from_std` requires.
    let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
    if done {
        return Ok(stream);
    }
    loop {
        let ready = stream.ready(Interest::WRITABLE | Interest::ERROR).await?;
        if ready.is_error() || ready.is_write_closed() {
            // What tokio does on every connect: the error, if the socket
            // has one (else it connected and the peer already hung up: a
            // connection, as tokio returns it).
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
        }
        if ready.is_writable() || ready.is_write_closed() {
            return Ok(stream);
        }
        // `EPOLLERR` alone with no socket error: only the error queue
        // (`IP_RECVERR`, never set here) does that. Not connected yet: clear
        // it and wait on, as tokio would.
        let _ = stream.try_io(Interest::ERROR, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A port where nothing listens (bound, then closed).
    fn closed_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connects_and_carries_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stream, accepted) = tokio::join!(connect_addr(addr), listener.accept());
        let (mut stream, (mut server, _)) = (stream.unwrap(), accepted.unwrap());
        assert_eq!(stream.peer_addr().unwrap(), addr);
        stream.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert!(stream.take_error().unwrap().is_none());
    }

    /// A refusal is reported as tokio reports it: same kind, same errno,
    /// same message.
    #[tokio::test(flavor = "current_thread")]
    async fn refusal_is_the_same_error_as_tokios() {
        let addr = closed_port();
        let ours = connect_addr(addr).await.unwrap_err();
        let tokios = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(ours.kind(), io::ErrorKind::ConnectionRefused, "{ours}");
        assert_eq!(ours.raw_os_error(), tokios.raw_os_error());
        assert_eq!(ours.to_string(), tokios.to_string());
    }

    /// An error of `connect(2)` itself (a TCP connect to the broadcast
    /// address fails at once) is passed on as std reports it.
    #[tokio::test(flavor = "current_thread")]
    async fn immediate_error_is_the_same_as_std() {
        let addr: SocketAddr = "255.255.255.255:80".parse().unwrap();
        let Err(std_err) = std::net::TcpStream::connect(addr) else {
            panic!("a TCP connect to the broadcast address succeeded");
        };
        let ours = connect_addr(addr).await.unwrap_err();
        assert_eq!(
            ours.raw_os_error(),
            std_err.raw_os_error(),
            "{ours} / {std_err}"
        );
    }

    /// Every address is tried in order: the first that accepts wins; when
    /// none does, the last one's error comes back.
    #[tokio::test(flavor = "current_thread")]
    async fn tries_each_address_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        let (refused, refused_too) = (closed_port(), closed_port());
        let addrs = [refused, good];
        let (stream, _) = tokio::join!(connect_any(&addrs), listener.accept());
        assert_eq!(stream.unwrap().peer_addr().unwrap(), good);
        let err = connect_any(&[refused, refused_too]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = connect_any(&[]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
