//! [`copy_bidirectional`] and [`copy_bidirectional_with`]: both directions
//! of a connection, like `tokio::io::copy_bidirectional`.

use std::error::Error;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::Poll;

use ::tokio::io::{AsyncRead, AsyncWrite};

use super::direction::{AtEof, Direction};
use super::idle::IdleTimer;
use super::options::CopyOptions;
use super::progress::Side;
use crate::Transfer;

/// Copies both ways between `a` and `b` until both directions are done,
/// zero-copy between tokio sockets: a drop-in replacement for
/// [`tokio::io::copy_bidirectional`](::tokio::io::copy_bidirectional).
///
/// Each direction reads until end of file, writes every byte it read to the
/// other side, then shuts the other side's write half down
/// ([`poll_shutdown`](::tokio::io::AsyncWrite::poll_shutdown)); the other
/// direction goes on until its own end of file. Returns the bytes copied
/// `a` to `b` and `b` to `a`. Between two
/// [`TcpStream`](::tokio::net::TcpStream)s /
/// [`UnixStream`](::tokio::net::UnixStream)s the bytes are spliced through
/// pipes from the [global pool](crate::PipePool::global), taken only while
/// bytes are in flight: an idle connection holds no pipe. Other types take a
/// userspace copy with a 64 KiB buffer per direction. See the [module
/// documentation](super) for details and cancellation.
///
/// # Errors
/// The first error of either direction's read, write, flush or shutdown,
/// as `tokio::io::copy_bidirectional` returns it (`Interrupted` is retried;
/// the other direction stops there too). A read error (a reset by the
/// source, say) is returned once the bytes read before it were written,
/// so that a caller that resets the other side loses none of them; after
/// a write error, bytes read but not yet written are lost, as with tokio.
/// [`copy_bidirectional_with`] also tells how many bytes each direction
/// had written.
///
/// # Example
/// A TCP proxy:
/// ```no_run
/// use tokio::net::{TcpListener, TcpStream};
///
/// # async fn proxy() -> std::io::Result<()> {
/// let listener = TcpListener::bind("0.0.0.0:8080").await?;
/// loop {
///     let (mut client, _) = listener.accept().await?;
///     tokio::spawn(async move {
///         let mut upstream = TcpStream::connect("10.0.0.2:80").await?;
///         pipepool::tokio::copy_bidirectional(&mut client, &mut upstream).await
///     });
/// }
/// # }
/// ```
pub async fn copy_bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let opts = CopyOptions::new();
    match copy_bidirectional_with(a, b, &opts).await {
        Ok(report) => Ok((report.a_to_b.bytes, report.b_to_a.bytes)),
        // The plain `io::Error`, as tokio returns it (same `raw_os_error`).
        Err(e) => Err(e.into_error()),
    }
}

/// [`copy_bidirectional`] with [options](CopyOptions), reporting the
/// [`Method`](crate::Method) of each direction, and the bytes each direction wrote even when
/// the copy fails (to log what a connection moved before a reset). With
/// [`CopyOptions::last_shutdown`] off, the direction that finishes second
/// leaves its writer for the caller to close instead of shutting it down.
///
/// # Errors
/// As [`copy_bidirectional`], in a [`BidiError`] carrying the bytes each
/// direction had written; also an error of kind
/// [`TimedOut`](io::ErrorKind::TimedOut) when an
/// [`idle_timeout`](CopyOptions::idle_timeout) passes without a byte read
/// or written in either direction.
///
/// # Panics
/// When polled with an [`idle_timeout`](CopyOptions::idle_timeout) set on a
/// runtime without a timer.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::net::UnixStream;
/// use pipepool::tokio::{copy_bidirectional_with, CopyOptions};
/// use pipepool::{Method, PoolConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let pool = PoolConfig::builder().build()?;
/// let opts = CopyOptions::new()
///     .pool(pool.clone())
///     .idle_timeout(Some(Duration::from_secs(60)));
///
/// let (mut client, mut a) = UnixStream::pair()?;
/// let (mut b, mut server) = UnixStream::pair()?;
/// let relay = copy_bidirectional_with(&mut a, &mut b, &opts);
/// let peers = async {
///     client.write_all(b"ping").await?;
///     client.shutdown().await?; // a -> b is done: the relay shuts b down
///     let mut got = Vec::new();
///     server.read_to_end(&mut got).await?;
///     assert_eq!(got, b"ping");
///     server.write_all(b"pong!").await?;
///     drop(server); // b -> a is done too
///     Ok::<_, std::io::Error>(())
/// };
///
/// let (report, peers) = tokio::join!(relay, peers);
/// peers?;
/// let report = report?;
/// assert_eq!((report.a_to_b.bytes, report.b_to_a.bytes), (4, 5));
/// assert_eq!(report.a_to_b.method, Method::Splice);
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok(()) }
/// ```
pub async fn copy_bidirectional_with<A, B>(
    a: &mut A,
    b: &mut B,
    opts: &CopyOptions,
) -> Result<BidiReport, BidiError>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    copy_bidirectional_with_prefix(a, b, &[], &[], opts).await
}

/// [`copy_bidirectional_with`] after bytes already read from either side:
/// `read_from_a` (read from `a` before the copy) is written to `b` first,
/// `read_from_b` to `a`, then everything else, spliced where
/// [`copy_bidirectional_with`] would splice.
///
/// For a connection whose first bytes an HTTP layer read: a hyper
/// `Upgraded` connection (a CONNECT tunnel, a WebSocket) downcast to a
/// `TcpStream` comes with `read_buf`, bytes the server read ahead from the
/// client; a `BufReader`'s `buffer()` holds its leftovers. Each prefix is
/// written as its direction's first bytes, waiting on the writer's
/// readiness like any other, and counted in that direction's
/// [`Transfer`], in a [`BidiError`]'s counts and in a
/// [`Progress`](super::Progress) as it is written. The `examples/
/// connect_proxy.rs` CONNECT proxy shows it with hyper.
///
/// A prefix is one connection's bytes, so it is an argument here and not
/// a [`CopyOptions`] field: the options are shared by every relay.
///
/// # Errors
/// As [`copy_bidirectional_with`].
///
/// # Panics
/// As [`copy_bidirectional_with`].
///
/// # Example
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use pipepool::tokio::{copy_bidirectional_with_prefix, CopyOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut client, mut a) = tokio::net::UnixStream::pair()?;
/// let (mut b, mut server) = tokio::net::UnixStream::pair()?;
/// // Bytes a server had read from the client before handing it over.
/// let read_ahead = b"early ";
/// let opts = CopyOptions::new();
/// let relay = copy_bidirectional_with_prefix(&mut a, &mut b, read_ahead, b"", &opts);
/// let peers = async {
///     client.write_all(b"bytes").await?;
///     client.shutdown().await?;
///     let mut got = String::new();
///     server.read_to_string(&mut got).await?;
///     assert_eq!(got, "early bytes");
///     server.shutdown().await
/// };
/// let (report, peers) = tokio::join!(relay, peers);
/// peers?;
/// assert_eq!(report?.a_to_b.bytes, 11);
/// # Ok(()) }
/// ```
pub async fn copy_bidirectional_with_prefix<A, B>(
    a: &mut A,
    b: &mut B,
    read_from_a: &[u8],
    read_from_b: &[u8],
    opts: &CopyOptions,
) -> Result<BidiReport, BidiError>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let a_to_b = Direction::new(opts, &*a, &*b, AtEof::Shutdown, Side::AToB, read_from_a);
    let b_to_a = Direction::new(opts, &*b, &*a, AtEof::Shutdown, Side::BToA, read_from_b);
    let mut state = BothWays {
        a,
        b,
        a_to_b,
        b_to_a,
    };
    let mut idle = IdleTimer::new(opts.idle_timeout);
    // Whether a -> b finished before b -> a (`None`: neither yet).
    let mut a_to_b_first = None;
    poll_fn(|cx| {
        let BothWays {
            a,
            b,
            a_to_b,
            b_to_a,
        } = &mut state;
        // Like tokio: poll a -> b, then b -> a, and stop at the first error.
        // Without `last_shutdown`, the direction that finishes second
        // leaves its writer to the caller's close.
        let error = 'failed: {
            if !opts.last_shutdown && b_to_a.is_done() {
                a_to_b.skip_shutdown();
            }
            let ab = match a_to_b.poll(cx, &mut **a, &mut **b) {
                Poll::Ready(Err(e)) => break 'failed e,
                other => other,
            };
            if !opts.last_shutdown && a_to_b.is_done() {
                b_to_a.skip_shutdown();
            }
            let ba = match b_to_a.poll(cx, &mut **b, &mut **a) {
                Poll::Ready(Err(e)) => break 'failed e,
                other => other,
            };
            if a_to_b_first.is_none() && (ab.is_ready() || ba.is_ready()) {
                a_to_b_first = Some(ab.is_ready());
            }
            if ab.is_ready() && ba.is_ready() {
                return Poll::Ready(Ok(BidiReport {
                    a_to_b: a_to_b.transfer(),
                    b_to_a: b_to_a.transfer(),
                    a_to_b_first: a_to_b_first.unwrap_or(true),
                }));
            }
            let activity = a_to_b.activity() + b_to_a.activity();
            match idle.as_mut().map(|t| t.poll(cx, activity)) {
                Some(Poll::Ready(timed_out)) => timed_out,
                _ => return Poll::Pending,
            }
        };
        // What dropping the future would write anyway, written now, so
        // that the counts include it: every count is what the destination
        // accepted.
        a_to_b.flush_on_drop(&**b);
        b_to_a.flush_on_drop(&**a);
        Poll::Ready(Err(BidiError {
            a_to_b: a_to_b.transfer(),
            b_to_a: b_to_a.transfer(),
            error,
        }))
    })
    .await
}

/// The two ends and the two directions of a [`copy_bidirectional_with`],
/// kept together so that dropping the future (cancellation) can first
/// write out what the directions hold ([`Direction::flush_on_drop`]).
struct BothWays<'x, 'p, A: ?Sized, B: ?Sized> {
    a: &'x mut A,
    b: &'x mut B,
    a_to_b: Direction<'p>,
    b_to_a: Direction<'p>,
}

impl<A: ?Sized, B: ?Sized> Drop for BothWays<'_, '_, A, B> {
    fn drop(&mut self) {
        self.a_to_b.flush_on_drop(&*self.b);
        self.b_to_a.flush_on_drop(&*self.a);
    }
}

/// What a finished [`copy_bidirectional_with`] moved, and how, one
/// [`Transfer`] per direction. A direction's method is [`Method::Splice`](crate::Method::Splice)
/// when a byte went through a pipe (or none moved and zero-copy was
/// possible), else [`Method::Userspace`](crate::Method::Userspace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BidiReport {
    /// Read from `a` and written to `b`.
    pub a_to_b: Transfer,
    /// Read from `b` and written to `a`.
    pub b_to_a: Transfer,
    /// Whether `a` -> `b` finished (end of file from `a`, every byte
    /// written) before `b` -> `a` did: which side ended its stream first.
    /// `true` too when both finished in the same poll.
    pub a_to_b_first: bool,
}

/// A failed [`copy_bidirectional_with`]: the error, and what each
/// direction had written before it, and how (a [`Transfer`] each, as in
/// [`BidiReport`]).
///
/// Converts into [`io::Error`] (keeping the kind), so `?` works in functions
/// returning `io::Result`; the counts can be read back with
/// [`BidiError::from_io`]. Its `Display` says what failed and the counts;
/// the cause is its [`source()`](Error::source) (as for
/// [`CopyError`](crate::CopyError)).
#[derive(Debug)]
pub struct BidiError {
    a_to_b: Transfer,
    b_to_a: Transfer,
    error: io::Error,
}

impl BidiError {
    /// What was written `a` to `b` before the error, and how.
    pub fn a_to_b(&self) -> Transfer {
        self.a_to_b
    }

    /// What was written `b` to `a` before the error, and how.
    pub fn b_to_a(&self) -> Transfer {
        self.b_to_a
    }

    /// The underlying error.
    pub fn error(&self) -> &io::Error {
        &self.error
    }

    /// The error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }

    /// The underlying error, dropping the counts.
    pub fn into_error(self) -> io::Error {
        self.error
    }

    /// The `BidiError` inside an `io::Error` made by `From<BidiError>`.
    pub fn from_io(err: &io::Error) -> Option<&BidiError> {
        err.get_ref()?.downcast_ref::<BidiError>()
    }
}

impl fmt::Display for BidiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bidirectional copy failed after {} bytes a->b ({}) and {} bytes b->a ({})",
            self.a_to_b.bytes, self.a_to_b.method, self.b_to_a.bytes, self.b_to_a.method,
        )
    }
}

impl Error for BidiError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

impl From<BidiError> for io::Error {
    fn from(e: BidiError) -> io::Error {
        io::Error::new(e.error.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    #[test]
    fn error_keeps_kind_and_counts_through_io_error() {
        let e = BidiError {
            a_to_b: Transfer {
                bytes: 3,
                method: Method::Splice,
            },
            b_to_a: Transfer {
                bytes: 4,
                method: Method::Userspace,
            },
            error: io::Error::from(io::ErrorKind::ConnectionReset),
        };
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert!(
            e.to_string()
                .contains("3 bytes a->b (splice) and 4 bytes b->a (userspace)"),
            "{e}"
        );
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
        let back = BidiError::from_io(&io).unwrap();
        assert_eq!((back.a_to_b().bytes, back.b_to_a().bytes), (3, 4));
        assert_eq!(back.b_to_a().method, Method::Userspace);
        assert!(BidiError::from_io(&io::Error::other("x")).is_none());
    }

    /// The side that ends its stream first is reported, either way.
    #[::tokio::test]
    async fn reports_which_side_ended_first() {
        use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
        use ::tokio::net::UnixStream;
        for a_first in [true, false] {
            let (mut a_peer, mut a) = UnixStream::pair().unwrap();
            let (mut b, mut b_peer) = UnixStream::pair().unwrap();
            let opts = CopyOptions::new();
            let relay = copy_bidirectional_with(&mut a, &mut b, &opts);
            let peers = async {
                let (first, second) = if a_first {
                    (&mut a_peer, &mut b_peer)
                } else {
                    (&mut b_peer, &mut a_peer)
                };
                first.write_all(b"x").await.unwrap();
                first.shutdown().await.unwrap();
                let mut got = Vec::new();
                second.read_to_end(&mut got).await.unwrap();
                assert_eq!(got, b"x");
                second.shutdown().await.unwrap();
                let mut rest = Vec::new();
                first.read_to_end(&mut rest).await.unwrap();
            };
            let (report, ()) = ::tokio::join!(relay, peers);
            assert_eq!(report.unwrap().a_to_b_first, a_first);
        }
    }

    #[test]
    fn error_prints_its_cause_once() {
        let cause = io::Error::from(io::ErrorKind::ConnectionReset).to_string();
        let transfer = Transfer {
            bytes: 1,
            method: Method::Splice,
        };
        let err = || BidiError {
            a_to_b: transfer,
            b_to_a: transfer,
            error: io::Error::from(io::ErrorKind::ConnectionReset),
        };
        assert!(!err().to_string().contains(&cause), "{}", err());
        let chain = format!("{:#}", anyhow::Error::new(err()));
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert!(chain.ends_with(&format!("(splice): {cause}")), "{chain}");
        // Through the `io::Error` that `?` makes of it.
        let chain = format!("{:#}", anyhow::Error::new(io::Error::from(err())));
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
    }
}
