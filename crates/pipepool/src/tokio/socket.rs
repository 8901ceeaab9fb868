//! [`FileSocket`]: the tokio sockets that [`sendfile`](super::sendfile) and
//! [`copy_to_file`](super::copy_to_file) drive: readiness from tokio's
//! reactor, the syscalls on the raw fd.

use std::future::poll_fn;
use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll};

use ::tokio::io::Interest;
use ::tokio::net::{TcpStream, UnixStream};

mod sealed {
    pub trait Sealed {}
    impl Sealed for tokio::net::TcpStream {}
    impl Sealed for tokio::net::UnixStream {}
}

/// A tokio socket whose fd the file copies use directly, waiting on its
/// readiness: [`TcpStream`] and [`UnixStream`]. Sealed: the set may grow.
pub trait FileSocket: AsFd + sealed::Sealed {
    /// Polls for read (`Interest::READABLE`) or write readiness.
    #[doc(hidden)]
    fn poll_ready_for(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>>;

    /// Runs `f` if the socket looks ready for `interest`; a `WouldBlock`
    /// from `f` clears that readiness (tokio's `try_io`).
    #[doc(hidden)]
    fn try_io_for<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>)
        -> io::Result<R>;
}

macro_rules! file_socket {
    ($t:ty) => {
        impl FileSocket for $t {
            fn poll_ready_for(
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

            fn try_io_for<R>(
                &self,
                interest: Interest,
                f: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                self.try_io(interest, f)
            }
        }
    };
}

file_socket!(TcpStream);
file_socket!(UnixStream);

/// Runs `f` on `socket` once it is ready for `interest`, again each time `f`
/// answers `WouldBlock` (which clears the readiness it was run on).
pub(super) async fn when_ready<S: FileSocket + ?Sized, R>(
    socket: &S,
    interest: Interest,
    mut f: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    loop {
        poll_fn(|cx| socket.poll_ready_for(cx, interest)).await?;
        match socket.try_io_for(interest, &mut f) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}
