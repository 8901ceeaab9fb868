//! [`ReadyFd`]: what pipepool needs of an fd to drive it from tokio: the
//! raw fd, its readiness, and a way to tell tokio that an operation found
//! nothing. Implemented for tokio's sockets and pipes and for
//! [`AsyncFd`]; users implement it for their own types.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::pin;
use std::task::{Context, Poll};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use ::tokio::net::unix::pipe;
use ::tokio::net::{TcpStream, UnixStream};

/// An fd that tokio's reactor watches: pipepool runs its system calls
/// (`splice`, `sendfile`, `read`, `write`) on [`as_fd`](AsFd::as_fd) when
/// the fd is ready, and tells the reactor when a call finds nothing.
///
/// Implemented for [`TcpStream`], [`UnixStream`], tokio's
/// [`pipe::Sender`] and [`pipe::Receiver`], and [`AsyncFd<T>`] of any
/// `T: AsRawFd` (every `AsFd` is one: a TUN device, a vsock, a character
/// device, a socket made elsewhere). For a type of your own, forward to the tokio type inside it
/// (as below). [`sendfile`](super::sendfile) and
/// [`copy_to_file`](super::copy_to_file) take a `ReadyFd`, and
/// [`FdIo`](super::FdIo) makes one a reader and writer that
/// [`copy`](super::copy) and [`copy_bidirectional`](super::copy_bidirectional)
/// splice.
///
/// The fd must be non-blocking (tokio's types and a registered `AsyncFd`
/// are).
///
/// ```
/// use std::io;
/// use std::os::fd::{AsFd, BorrowedFd};
/// use std::task::{Context, Poll};
/// use pipepool::tokio::ReadyFd;
/// use tokio::io::Interest;
///
/// /// A socket with a name, for the logs.
/// struct Named {
///     name: String,
///     socket: tokio::net::UnixStream,
/// }
///
/// impl AsFd for Named {
///     fn as_fd(&self) -> BorrowedFd<'_> {
///         self.socket.as_fd()
///     }
/// }
///
/// impl ReadyFd for Named {
///     fn poll_fd_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
///         self.socket.poll_fd_ready(cx, interest)
///     }
///     fn try_fd_io(
///         &self,
///         interest: Interest,
///         op: &mut dyn FnMut() -> io::Result<()>,
///     ) -> io::Result<()> {
///         self.socket.try_fd_io(interest, op)
///     }
/// }
/// ```
pub trait ReadyFd: AsFd {
    /// Polls until the fd is ready for `interest` ([`Interest::READABLE`]
    /// or [`Interest::WRITABLE`], never both): `Ready(Ok(()))` when it may
    /// be (tokio's cached readiness says so), registering `cx`'s waker
    /// otherwise.
    ///
    /// # Errors
    /// The reactor's (the runtime is shutting down, ...).
    fn poll_fd_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>>;

    /// Runs `op` (a system call on the fd) if the fd looks ready for
    /// `interest`, and returns what it returned. When `op` fails with
    /// [`WouldBlock`](io::ErrorKind::WouldBlock), the readiness for
    /// `interest` is cleared, so that the next
    /// [`poll_fd_ready`](ReadyFd::poll_fd_ready) waits for a new event
    /// (tokio's `try_io`). Without readiness, answers `WouldBlock` without
    /// running `op`.
    ///
    /// # Errors
    /// `op`'s, and `WouldBlock` when the fd is not ready.
    fn try_fd_io(
        &self,
        interest: Interest,
        op: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()>;

    /// Whether the readiness the last [`poll_fd_ready`](ReadyFd::poll_fd_ready)
    /// for reading returned says the peer shut its side down
    /// (`EPOLLRDHUP`). No system call. The default, `false` ("not known"),
    /// is always correct: the copy then learns the end of file from a read,
    /// as it does anyway.
    fn fd_read_closed(&self, cx: &mut Context<'_>) -> bool {
        let _ = cx;
        false
    }
}

/// The readiness-flavoured methods of tokio's stream types, which all have
/// `poll_read_ready`, `poll_write_ready`, `try_io` and `ready`.
macro_rules! tokio_stream {
    ($t:ty) => {
        impl ReadyFd for $t {
            fn poll_fd_ready(
                &self,
                cx: &mut Context<'_>,
                interest: Interest,
            ) -> Poll<io::Result<()>> {
                if interest.is_readable() {
                    self.poll_read_ready(cx)
                } else {
                    self.poll_write_ready(cx)
                }
            }

            fn try_fd_io(
                &self,
                interest: Interest,
                op: &mut dyn FnMut() -> io::Result<()>,
            ) -> io::Result<()> {
                self.try_io(interest, op)
            }

            fn fd_read_closed(&self, cx: &mut Context<'_>) -> bool {
                // Called right after `poll_read_ready` returned `Ready`:
                // the readiness is there and is only read.
                matches!(
                    pin!(self.ready(Interest::READABLE)).poll(cx),
                    Poll::Ready(Ok(r)) if r.is_read_closed()
                )
            }
        }
    };
}

tokio_stream!(TcpStream);
tokio_stream!(UnixStream);

impl ReadyFd for pipe::Receiver {
    fn poll_fd_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        if !interest.is_readable() {
            return Poll::Ready(Err(wrong_end(
                "a pipe's read end (Receiver) cannot be written",
            )));
        }
        self.poll_read_ready(cx)
    }

    fn try_fd_io(
        &self,
        _interest: Interest,
        op: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        self.try_io(op)
    }
}

impl ReadyFd for pipe::Sender {
    fn poll_fd_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        if !interest.is_writable() {
            return Poll::Ready(Err(wrong_end("a pipe's write end (Sender) cannot be read")));
        }
        self.poll_write_ready(cx)
    }

    fn try_fd_io(
        &self,
        _interest: Interest,
        op: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        self.try_io(op)
    }
}

impl<T: AsRawFd> ReadyFd for AsyncFd<T> {
    fn poll_fd_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        // The guard only tells; `try_fd_io` clears the readiness.
        let ready = if interest.is_readable() {
            self.poll_read_ready(cx)
        } else {
            self.poll_write_ready(cx)
        };
        ready.map_ok(drop)
    }

    fn try_fd_io(
        &self,
        interest: Interest,
        op: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        self.try_io(interest, |_| op())
    }

    fn fd_read_closed(&self, cx: &mut Context<'_>) -> bool {
        matches!(self.poll_read_ready(cx), Poll::Ready(Ok(g)) if g.ready().is_read_closed())
    }
}

/// The error for a pipe end used the wrong way round.
fn wrong_end(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Runs `f` on `fd` once it is ready for `interest`, again each time `f`
/// answers `WouldBlock` (which clears the readiness it was run on).
pub(super) async fn when_ready<S: ReadyFd + ?Sized, R>(
    fd: &S,
    interest: Interest,
    mut f: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    loop {
        poll_fn(|cx| fd.poll_fd_ready(cx, interest)).await?;
        let mut out = None;
        let done = fd.try_fd_io(interest, &mut || f().map(|r| out = Some(r)));
        match done {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
            Ok(()) => return out.ok_or_else(did_not_run),
        }
    }
}

/// A [`ReadyFd::try_fd_io`] that answered `Ok` without running the
/// operation: a broken implementation.
pub(super) fn did_not_run() -> io::Error {
    io::Error::other("ReadyFd::try_fd_io returned Ok without running the operation")
}
