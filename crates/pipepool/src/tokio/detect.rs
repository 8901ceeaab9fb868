//! Which copies can splice, and the socket operations the splice path
//! needs: readiness from tokio, the splice itself through
//! [`Pipe`](crate::Pipe) inside `try_io` so that tokio learns about `EAGAIN`.
//! Every kind of [`Socket`] is driven through its [`ReadyFd`]
//! implementation (tokio's sockets and the user's [`FdIo`](super::FdIo)
//! alike).
//!
//! The type detection is in [`super::cast`]; this file is safe code.

use std::io;
use std::os::fd::BorrowedFd;
use std::task::{Context, Poll};

use ::tokio::io::Interest;

pub(super) use super::cast::{read_socket, write_socket, Socket};
use super::socket::{did_not_run, ReadyFd};
use crate::sync::PipeMut;
use crate::sys;

/// The two sockets a direction splices between, when `R` reads from a tokio
/// socket and `W` writes to one.
pub(super) fn splice_pair<'a, R: ?Sized, W: ?Sized>(
    reader: &'a R,
    writer: &'a W,
) -> Option<(Socket<'a>, Socket<'a>)> {
    Some((read_socket(reader)?, write_socket(writer)?))
}

/// What a splice that answers `WouldBlock` does to the read readiness
/// tokio holds for the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Readiness {
    /// Clears it: the next poll waits for a new event.
    Clear,
    /// Keeps it: the next read is made without waiting.
    Keep,
}

impl<'a> Socket<'a> {
    /// The fd and its readiness, whatever the socket is.
    fn fd(self) -> &'a (dyn ReadyFd + Sync + 'a) {
        match self {
            Socket::Tcp(s) => s,
            Socket::Unix(s) => s,
            Socket::Fd(f) => f.ready_fd(),
        }
    }

    /// Runs `op` under `try_fd_io` and returns what it returned.
    fn try_io<R>(
        self,
        interest: Interest,
        mut op: impl FnMut(BorrowedFd<'_>) -> io::Result<R>,
    ) -> io::Result<R> {
        let fd = self.fd();
        let mut out = None;
        let done = fd.try_fd_io(interest, &mut || op(fd.as_fd()).map(|r| out = Some(r)));
        done?;
        out.ok_or_else(did_not_run)
    }

    /// Waits for read readiness (data, end of file, or an error).
    pub(super) fn poll_read_ready(self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fd().poll_fd_ready(cx, Interest::READABLE)
    }

    /// Waits for write readiness.
    pub(super) fn poll_write_ready(self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fd().poll_fd_ready(cx, Interest::WRITABLE)
    }

    /// `recv(MSG_PEEK)` of one byte: `Some(1)` when the socket has data,
    /// `Some(0)` at end of file, `None` when the fd is no socket after all;
    /// `WouldBlock` (nothing yet) clears the socket's read readiness.
    pub(super) fn peek(self) -> io::Result<Option<usize>> {
        self.try_io(Interest::READABLE, |fd| sys::peek_byte(fd))
    }

    /// Whether the socket can carry TCP urgent data that a splice stops at
    /// (a TCP socket; a Unix socket's `MSG_OOB` byte is skipped by splice
    /// as by `read`).
    pub(super) fn has_urgent_mark(self) -> bool {
        match self {
            Socket::Tcp(_) => true,
            Socket::Unix(_) => false,
            Socket::Fd(f) => f.is_tcp(),
        }
    }

    /// Whether the read readiness tokio holds for the socket says that the
    /// peer shut its side down (`EPOLLRDHUP`). No system call: called right
    /// after [`poll_read_ready`](Socket::poll_read_ready) returned `Ready`,
    /// the readiness is there and is only read.
    pub(super) fn read_closed(self, cx: &mut Context<'_>) -> bool {
        self.fd().fd_read_closed(cx)
    }

    /// Splices from the socket into `pipe`, which must be empty: then
    /// `WouldBlock` can only mean that the socket has nothing to read (or,
    /// on TCP, that it sits at the urgent mark). `on_would_block` says
    /// whether `try_io` then clears the socket's read readiness, or keeps
    /// it for a `read` that tells the two apart. `Ok(0)` is end of file
    /// (or, on TCP, the urgent mark with the end of file behind it).
    pub(super) fn splice_into(
        self,
        pipe: &mut impl PipeMut,
        on_would_block: Readiness,
    ) -> io::Result<usize> {
        let clear = on_would_block == Readiness::Clear;
        let pipe = pipe.pipe_mut();
        debug_assert!(pipe.is_empty(), "splice into a pipe that is not empty");
        #[cfg(test)]
        if let Some(errno) = tests::injected_failure() {
            return Err(errno.into());
        }
        let splice = |fd: BorrowedFd<'_>| match pipe.splice_from(fd, usize::MAX) {
            Err(e) if !clear && e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            other => other.map(Some),
        };
        self.try_io(Interest::READABLE, splice)?
            .ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }

    /// `read(2)` from the socket (`recv`; skips an urgent byte at the
    /// mark); `WouldBlock` clears the socket's read readiness, a short read
    /// does not.
    pub(super) fn recv(self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_io(Interest::READABLE, |fd| sys::read(fd, &mut *buf))
    }

    /// Splices what `pipe` holds into the socket now, bypassing tokio's
    /// readiness: for a copy future being dropped, which will not wait.
    /// `WouldBlock` when the socket's send buffer is full.
    pub(super) fn splice_now(self, pipe: &mut impl PipeMut) -> io::Result<usize> {
        pipe.pipe_mut().splice_to(self.fd().as_fd(), usize::MAX)
    }

    /// `write(2)` of `data` into the socket now, bypassing tokio's
    /// readiness (as [`splice_now`](Socket::splice_now)).
    pub(super) fn write_now(self, data: &[u8]) -> io::Result<usize> {
        sys::write(self.fd().as_fd(), data)
    }

    /// Splices what `pipe` holds into the socket; `WouldBlock` (the socket's
    /// send buffer is full) clears its write readiness.
    pub(super) fn splice_out_of(self, pipe: &mut impl PipeMut) -> io::Result<usize> {
        let pipe = pipe.pipe_mut();
        self.try_io(Interest::WRITABLE, |fd| pipe.splice_to(fd, usize::MAX))
    }
}

/// A way for unit tests to make a splice in fail as the kernel would
/// (no socket refuses `splice` reads on current kernels).
#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use rustix::io::Errno;

    thread_local! {
        /// Let this many splices in through, then fail the next with this
        /// errno.
        static FAIL_SPLICE_IN: Cell<Option<(usize, Errno)>> = const { Cell::new(None) };
    }

    /// Makes the splice in after the next `after` ones (on this thread)
    /// fail with `errno`.
    pub(in crate::tokio) fn fail_splice_in(after: usize, errno: Errno) {
        FAIL_SPLICE_IN.set(Some((after, errno)));
    }

    pub(super) fn injected_failure() -> Option<Errno> {
        match FAIL_SPLICE_IN.get()? {
            (0, errno) => {
                FAIL_SPLICE_IN.set(None);
                Some(errno)
            }
            (n, errno) => {
                FAIL_SPLICE_IN.set(Some((n - 1, errno)));
                None
            }
        }
    }
}
