//! [`copy`] and [`copy_with`]: one direction, like `tokio::io::copy`.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use ::tokio::io::{AsyncRead, AsyncWrite};

use super::direction::{AtEof, Direction};
use super::idle::IdleTimer;
use super::options::CopyOptions;
use super::progress::Side;
use crate::{CopyError, Transfer};

/// The ends and the direction of a [`copy_with`], kept together so that
/// dropping the future can first write out what the direction holds
/// ([`Direction::flush_on_drop`]).
struct OneWay<'x, 'p, R: ?Sized, W: ?Sized> {
    reader: &'x mut R,
    writer: &'x mut W,
    dir: Direction<'p>,
}

impl<R: ?Sized, W: ?Sized> Drop for OneWay<'_, '_, R, W> {
    fn drop(&mut self) {
        self.dir.flush_on_drop(&*self.writer);
    }
}

/// Copies everything `reader` gives into `writer`, zero-copy between tokio
/// sockets: a drop-in replacement for [`tokio::io::copy`](::tokio::io::copy).
///
/// Reads until end of file, writes every byte read, flushes `writer`, and
/// returns the number of bytes written. The writer is not shut down (as with
/// tokio's `copy`). Between a [`TcpStream`](::tokio::net::TcpStream) or
/// [`UnixStream`](::tokio::net::UnixStream) (or one of their read halves) and
/// another (or one of their write halves), the bytes are spliced through a
/// pipe from the [global pool](crate::PipePool::global); any other types
/// are copied through a 64 KiB buffer. See the [module
/// documentation](super) for what happens when, and for cancellation.
///
/// # Errors
/// The first error of a read, write or flush, as `tokio::io::copy` returns
/// it (`Interrupted` is retried). Splice errors are those of the sockets
/// (`ECONNRESET`, `EPIPE`, ...); a kernel that refuses to splice before any
/// byte moved is not an error (the copy goes through memory instead), nor
/// is a pool at its bound. [`copy_with`] also tells how many bytes were
/// written before the error.
///
/// # Example
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::net::{TcpListener, TcpStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// let (mut out, mut peer) = tokio::net::UnixStream::pair()?;
///
/// client.write_all(b"spliced, not copied").await?;
/// client.shutdown().await?;
/// let n = pipepool::tokio::copy(&mut server, &mut out).await?; // socket -> pipe -> socket
/// assert_eq!(n, 19);
///
/// drop(out);
/// let mut got = String::new();
/// peer.read_to_string(&mut got).await?;
/// assert_eq!(got, "spliced, not copied");
/// # Ok(()) }
/// ```
pub async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let opts = CopyOptions::new();
    match copy_with(reader, writer, &opts).await {
        Ok(transfer) => Ok(transfer.bytes),
        // The plain `io::Error`, as tokio returns it (same `raw_os_error`).
        Err(e) => Err(e.into_error()),
    }
}

/// [`copy`] with [options](CopyOptions), reporting the [`Method`](crate::Method)
/// used, and the bytes written even when it fails.
///
/// The [`Transfer`]'s method is [`Splice`](crate::Method::Splice) when a
/// byte went through a pipe (or none moved and zero-copy was possible), else
/// [`Userspace`](crate::Method::Userspace).
///
/// # Errors
/// As [`copy`], in a [`CopyError`] that carries the bytes written before
/// the error; also an error of kind
/// [`TimedOut`](io::ErrorKind::TimedOut) when an
/// [`idle_timeout`](CopyOptions::idle_timeout) passes without a byte read
/// or written.
///
/// # Panics
/// When polled with an [`idle_timeout`](CopyOptions::idle_timeout) set on a
/// runtime without a timer.
///
/// # Example
/// ```
/// use pipepool::tokio::{copy_with, CopyOptions};
/// use pipepool::{Method, PoolConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let pool = PoolConfig::builder().max_pipes(8).build()?;
/// let opts = CopyOptions::new().pool(pool.clone());
///
/// // In-memory types cannot be spliced: a userspace copy, silently.
/// let mut reader: &[u8] = b"hello";
/// let mut writer = Vec::new();
/// let done = copy_with(&mut reader, &mut writer, &opts).await?;
/// assert_eq!((done.bytes, done.method), (5, Method::Userspace));
/// assert_eq!(writer, b"hello");
/// # Ok(()) }
/// ```
pub async fn copy_with<R, W>(
    reader: &mut R,
    writer: &mut W,
    opts: &CopyOptions,
) -> Result<Transfer, CopyError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    copy_with_prefix(reader, writer, &[], opts).await
}

/// [`copy_with`] after `prefix`: bytes already read from `reader` (a
/// `BufReader`'s leftovers, the read-ahead of an HTTP layer) are written to
/// `writer` first, then everything `reader` gives, spliced where
/// [`copy_with`] would splice.
///
/// The prefix is written as the copy's first bytes, waiting on the
/// writer's readiness like any other (a prefix larger than the socket's
/// send buffer goes out as the peer reads), and is counted in the returned
/// [`Transfer`], in a [`CopyError`]'s count and in a
/// [`Progress`](super::Progress) as it is written (as
/// [`Userspace`](crate::Method::Userspace) bytes there; the `Transfer`'s
/// method says how the reader's own bytes went). It is copied once into the
/// copy's buffer, so the caller's slice is free when this returns its
/// future.
///
/// A prefix is one connection's bytes, so it is an argument here and not
/// a [`CopyOptions`] field: the options are shared by every relay.
///
/// # Errors
/// As [`copy_with`].
///
/// # Panics
/// As [`copy_with`].
///
/// # Example
/// ```
/// use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
/// use pipepool::tokio::{copy_with_prefix, CopyOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut client, server) = tokio::net::UnixStream::pair()?;
/// let (mut out, mut peer) = tokio::net::UnixStream::pair()?;
/// client.write_all(b"HELLO\nand the rest").await?;
/// client.shutdown().await?;
///
/// // Read the first line through a `BufReader`, which reads ahead...
/// let mut server = BufReader::new(server);
/// let mut line = String::new();
/// server.read_line(&mut line).await?;
/// assert_eq!(line, "HELLO\n");
/// // ... then splice the rest, its leftovers first.
/// let leftovers = server.buffer().to_vec();
/// let mut server = server.into_inner();
/// let opts = CopyOptions::new();
/// let done = copy_with_prefix(&mut server, &mut out, &leftovers, &opts).await?;
/// assert_eq!(done.bytes, 12);
///
/// drop(out);
/// let mut got = String::new();
/// peer.read_to_string(&mut got).await?;
/// assert_eq!(got, "and the rest");
/// # Ok(()) }
/// ```
pub async fn copy_with_prefix<R, W>(
    reader: &mut R,
    writer: &mut W,
    prefix: &[u8],
    opts: &CopyOptions,
) -> Result<Transfer, CopyError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let dir = Direction::new(
        opts,
        &*reader,
        &*writer,
        AtEof::LeaveOpen,
        Side::AToB,
        prefix,
    );
    let mut state = OneWay {
        reader,
        writer,
        dir,
    };
    let mut idle = IdleTimer::new(opts.idle_timeout);
    poll_fn(|cx| {
        let OneWay {
            reader,
            writer,
            dir,
        } = &mut state;
        let error = match dir.poll(cx, &mut **reader, &mut **writer) {
            Poll::Ready(Ok(bytes)) => {
                return Poll::Ready(Ok(Transfer {
                    bytes,
                    method: dir.method(),
                }))
            }
            Poll::Ready(Err(e)) => e,
            Poll::Pending => match idle.as_mut().map(|t| t.poll(cx, dir.activity())) {
                Some(Poll::Ready(timed_out)) => timed_out,
                _ => return Poll::Pending,
            },
        };
        // What dropping the future would write anyway, written now, so
        // that the count includes it.
        dir.flush_on_drop(&**writer);
        Poll::Ready(Err(CopyError::new(dir.written(), dir.method(), error)))
    })
    .await
}
