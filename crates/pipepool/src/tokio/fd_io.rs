//! [`FdIo`]: any [`ReadyFd`] as a tokio reader and writer that the copy
//! functions splice.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::socket::{did_not_run, ReadyFd};
use crate::sys;

/// Any [`ReadyFd`] (tokio's pipes, an [`AsyncFd`](::tokio::io::unix::AsyncFd)
/// of a TUN device or a socket pair, a type of yours) as an
/// [`AsyncRead`] + [`AsyncWrite`] that [`copy`](super::copy),
/// [`copy_bidirectional`](super::copy_bidirectional) and their `_with`
/// and `_with_prefix` forms splice: between two `FdIo`s, or an `FdIo` and
/// a tokio socket, the bytes go through a pooled pipe as between two
/// sockets.
///
/// Reads are `read(2)` and writes `write(2)` on the fd when it is ready
/// (where a copy must go through memory); shutting the writer down is
/// `shutdown(SHUT_WR)` on a socket and nothing on other fds (a pipe's
/// reader sees end of file when every write end is closed: drop the
/// `Sender`). A TCP socket is told apart from others once, in
/// [`new`](FdIo::new) (one `getsockopt`), for its urgent data (see the
/// [module documentation](super#tcp-urgent-data)).
///
/// ```
/// use tokio::io::AsyncWriteExt;
/// use tokio::net::unix::pipe;
/// use pipepool::tokio::{copy, FdIo};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut tx, rx) = pipe::pipe()?;
/// let (out, mut peer) = tokio::net::UnixStream::pair()?;
/// tx.write_all(b"through a pipe").await?;
/// drop(tx); // end of file for the reader
/// let n = copy(&mut FdIo::new(&rx), &mut FdIo::new(&out)).await?; // spliced
/// assert_eq!(n, 14);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct FdIo<'a> {
    /// The fd and its readiness.
    fd: &'a (dyn ReadyFd + Sync + 'a),
    /// The fd is a TCP socket (a splice from it stops at an urgent mark).
    tcp: bool,
}

impl<'a> FdIo<'a> {
    /// Borrows `fd` as a reader and writer.
    pub fn new<T: ReadyFd + Sync>(fd: &'a T) -> FdIo<'a> {
        FdIo {
            fd,
            tcp: sys::is_tcp(fd),
        }
    }

    /// The fd and its readiness.
    pub(crate) fn ready_fd(self) -> &'a (dyn ReadyFd + Sync + 'a) {
        self.fd
    }

    /// Whether the fd is a TCP socket.
    pub(crate) fn is_tcp(self) -> bool {
        self.tcp
    }

    /// Runs `op` once the fd is ready for `interest`, again after each
    /// `WouldBlock` (which clears the readiness); `Interrupted` is retried.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.fd.poll_fd_ready(cx, interest))?;
            let mut out = None;
            let done = self
                .fd
                .try_fd_io(interest, &mut || op().map(|n| out = Some(n)));
            match done {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Poll::Ready(Err(e)),
                Ok(()) => return Poll::Ready(out.ok_or_else(did_not_run)),
            }
        }
    }
}

impl fmt::Debug for FdIo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdIo")
            .field("fd", &self.fd.as_fd())
            .field("tcp", &self.tcp)
            .finish()
    }
}

impl AsyncRead for FdIo<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let free = buf.initialize_unfilled();
        let n = ready!(self.poll_io(cx, Interest::READABLE, || sys::read(self.fd, &mut *free)))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for FdIo<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Interest::WRITABLE, || sys::write(self.fd, data))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(sys::shutdown_write(self.fd))
    }
}
