//! The splice path of a direction: [`Splicer`] reads the source socket
//! into a pooled pipe ([`Splicer::poll_splice_in`]), and
//! [`poll_splice_out`] splices a pipe into the destination socket. Neither
//! knows the [`Direction`](super::Direction): the sockets, the pool and the
//! counts come in as arguments, and what happened comes back as a value
//! ([`SpliceIn`], [`SpliceOut`]) for the direction to act on. The pipe
//! with bytes in flight is the direction's
//! ([`InFlight::Pipe`](super::InFlight)).

use std::io;
use std::task::{ready, Context, Poll};

use super::counts::Counts;
use super::SourceKind;
use crate::copy::write_zero;
use crate::sys;
use crate::tokio::detect::{self, Readiness};
use crate::{Method, PipePool, PooledPipe};

/// The state of a direction's splice path: how the next read from the
/// source socket is made.
#[derive(Debug)]
pub(super) struct Splicer {
    /// How the next read from the source is made.
    next_read: NextRead,
    /// [`SourceKind::Tcp`]: the source may hold an urgent mark that a
    /// splice stops at.
    source: SourceKind,
}

/// How a splicing direction makes its next read from the source socket.
///
/// A TCP socket's splice stops at the urgent mark (a byte sent with
/// `MSG_OOB`) and never moves past it: it answers `EAGAIN`, or 0 once the
/// FIN is in, as at the end of file. `read(2)` skips the urgent byte (it is
/// not inline without `SO_OOBINLINE`) and goes on. So a splice is trusted
/// to say "nothing" or "end of file" only where no mark can explain it, and
/// is otherwise followed by a read through the buffer. The checks replace
/// calls the copy makes anyway (the last read of a burst is a peek instead
/// of a splice): no system call is added where no urgent byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NextRead {
    /// `recv(MSG_PEEK)` one byte before the first splice: tokio reports a
    /// fresh socket readable before anything arrived, and an idle
    /// connection must never touch the pool.
    Probe,
    /// After a splice that did not fill the pipe: when the readiness says
    /// the peer shut down, read through the buffer (a 0 there is the end of
    /// file, and the read consumes an urgent byte left before the FIN:
    /// closing a socket with it unread would send a reset); else
    /// `recv(MSG_PEEK)` one byte (it skips an urgent byte; its `EAGAIN` is
    /// the truth, as a splice's would have been).
    Peek,
    /// Splice: the socket has data (a peek said so, the last splice filled
    /// the pipe, or a new readiness event came). A splice answering
    /// `EAGAIN` or 0 here may sit at the urgent mark: the next read goes
    /// through the buffer, with the readiness kept.
    Splice,
    /// Read through the buffer (`read(2)` moves past the urgent mark).
    Buffer,
    /// The last read found nothing and cleared the readiness: the next one
    /// answers a new readiness event.
    AfterWait,
}

/// What [`Splicer::poll_splice_in`] did.
#[derive(Debug)]
pub(super) enum SpliceIn<'p> {
    /// Bytes are in this pipe (never empty), counted as read.
    Filled(PooledPipe<'p>),
    /// Nothing was read; how the next read is made may have changed (or a
    /// stale readiness was cleared): step again.
    Again,
    /// End of file.
    Eof,
    /// This read goes through the buffer: the splicer says so (a read must
    /// move past an urgent mark), or no pipe could be had (the pool is at
    /// its bound, or `pipe2` failed). Only this read: the next one asks
    /// again.
    ThroughBuffer,
    /// The source refused the splice (`EINVAL`, `ENOSYS`, ...) before any
    /// byte was read: copy through memory for good. Nothing was lost.
    Refused,
}

/// What [`poll_splice_out`] did.
#[derive(Debug)]
pub(super) enum SpliceOut {
    /// Bytes went out of the pipe (counted as written), or none (the
    /// destination is full and its readiness was cleared). The pipe may be
    /// empty now.
    Spliced,
    /// The destination refused the splice (`EINVAL`, `ENOSYS`, ...) before
    /// any byte was written: the pipe's bytes must go out another way.
    Refused,
}

impl Splicer {
    /// A splicer from a socket of kind `source`, before its first read.
    pub(super) fn new(source: SourceKind) -> Splicer {
        Splicer {
            next_read: NextRead::Probe,
            source,
        }
    }

    /// One read from the source socket `src` into a pipe from `pool`, made
    /// the way [`NextRead`] says. `Pending` when the source has nothing
    /// (its read readiness is not there). Reads are added to `counts`,
    /// whose counts also decide the first burst and the fallback.
    pub(super) fn poll_splice_in<'p>(
        &mut self,
        cx: &mut Context<'_>,
        src: detect::Socket<'_>,
        pool: &'p PipePool,
        counts: &mut Counts<'_>,
    ) -> Poll<io::Result<SpliceIn<'p>>> {
        if self.next_read == NextRead::Buffer {
            return Poll::Ready(Ok(SpliceIn::ThroughBuffer));
        }
        // A TCP source may hold an urgent mark that splice stops at.
        let urgent_marks = self.source == SourceKind::Tcp;
        ready!(src.poll_read_ready(cx))?;
        if matches!(self.next_read, NextRead::AfterWait | NextRead::Peek)
            && counts.read() > 0
            && src.read_closed(cx)
        {
            // The peer shut down: the read through the buffer tells the
            // end of file in one call (as a splice would), and cannot be
            // fooled by an urgent mark. (Not before the first byte: a
            // connection's first burst is spliced, as its `Method`
            // says.)
            self.next_read = NextRead::Buffer;
            return Poll::Ready(Ok(SpliceIn::Again));
        }
        if self.next_read == NextRead::Probe && src.read_closed(cx) {
            // The peer shut down: a real event, not the readiness tokio
            // gives a fresh socket, so no peek is needed to tell (a splice
            // that finds only the FIN is checked with a read as ever).
            self.next_read = NextRead::Splice;
        }
        if self.next_read == NextRead::AfterWait {
            // A new readiness event: data, most likely.
            self.next_read = NextRead::Splice;
        }
        if matches!(self.next_read, NextRead::Probe | NextRead::Peek) {
            match src.peek() {
                // End of file, maybe after an urgent byte that the peek
                // skipped without consuming it: a read consumes it.
                Ok(Some(0)) if urgent_marks => {
                    self.next_read = NextRead::Buffer;
                    return Poll::Ready(Ok(SpliceIn::Again));
                }
                Ok(Some(0)) => return Poll::Ready(Ok(SpliceIn::Eof)),
                // Data, or no socket to peek at (the splice will tell).
                Ok(Some(_) | None) => self.next_read = NextRead::Splice,
                // Readiness cleared: the next check waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.next_read = NextRead::AfterWait;
                    return Poll::Ready(Ok(SpliceIn::Again));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let Ok(mut pipe) = pool.get() else {
            return Poll::Ready(Ok(SpliceIn::ThroughBuffer));
        };
        let capacity = pipe.capacity();
        let on_would_block = if urgent_marks {
            Readiness::Keep
        } else {
            Readiness::Clear
        };
        let done = match src.splice_into(&mut pipe, on_would_block) {
            // End of file, or (TCP) the urgent mark with the FIN behind it:
            // a read tells.
            Ok(0) if urgent_marks => {
                self.next_read = NextRead::Buffer;
                give_back(pipe);
                SpliceIn::Again
            }
            Ok(0) => {
                give_back(pipe);
                SpliceIn::Eof
            }
            Ok(n) => {
                counts.add_read(n);
                if urgent_marks && n < capacity {
                    // Maybe stopped at an urgent mark: the next read peeks
                    // (where a splice would have answered `EAGAIN` at the
                    // end of the burst).
                    self.next_read = NextRead::Peek;
                }
                SpliceIn::Filled(pipe)
            }
            // The data a peek or a readiness event announced is behind an
            // urgent mark (or the event was stale): the readiness was kept,
            // and a read moves past the mark.
            Err(e) if urgent_marks && e.kind() == io::ErrorKind::WouldBlock => {
                self.next_read = NextRead::Buffer;
                give_back(pipe);
                SpliceIn::Again
            }
            // Stale readiness, now cleared: the next check waits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_back(pipe);
                SpliceIn::Again
            }
            // The source cannot be spliced (kTLS, an odd fd): nothing was
            // read, so the pipe is empty and goes back clean.
            Err(e) if sys::is_unsupported(&e) && counts.read() == 0 => {
                give_back(pipe);
                SpliceIn::Refused
            }
            Err(e) => return Poll::Ready(Err(e)),
        };
        Poll::Ready(Ok(done))
    }

    /// A read through the buffer (for [`SpliceIn::ThroughBuffer`]) got `n`
    /// bytes where it had room for `room`. From a TCP socket, a read that
    /// filled the buffer leaves more behind: splice it. A shorter one may
    /// have stopped before an urgent mark (or found everything): read
    /// through the buffer again.
    pub(super) fn read_through_buffer(&mut self, n: usize, room: usize) {
        if self.source == SourceKind::Tcp {
            self.next_read = if n >= room {
                NextRead::Splice
            } else {
                NextRead::Buffer
            };
        }
    }

    /// A read through the buffer found nothing and cleared the source's
    /// readiness: from a TCP socket, the next read answers a new event.
    pub(super) fn buffer_found_nothing(&mut self) {
        if self.source == SourceKind::Tcp {
            self.next_read = NextRead::AfterWait;
        }
    }
}

/// Splices what `pipe` holds into the destination socket `dst`, once it is
/// writable, and adds what went out to `counts` (whose count of written
/// bytes also decides whether a refusal is a fallback or an error).
///
/// # Errors
/// The socket's, and `WriteZero` when it took no byte.
pub(super) fn poll_splice_out(
    cx: &mut Context<'_>,
    dst: detect::Socket<'_>,
    pipe: &mut PooledPipe<'_>,
    counts: &mut Counts<'_>,
) -> Poll<io::Result<SpliceOut>> {
    ready!(dst.poll_write_ready(cx))?;
    match dst.splice_out_of(pipe) {
        Ok(0) => Poll::Ready(Err(write_zero())),
        Ok(n) => {
            counts.add_written(n, Method::Splice);
            Poll::Ready(Ok(SpliceOut::Spliced))
        }
        // The send buffer is full, and the readiness is cleared: the next
        // poll waits.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Ready(Ok(SpliceOut::Spliced)),
        Err(e) if sys::is_unsupported(&e) && counts.written() == 0 => {
            Poll::Ready(Ok(SpliceOut::Refused))
        }
        Err(e) => Poll::Ready(Err(e)),
    }
}

/// The socket a direction reads from, when it splices or its source is a
/// TCP socket: the direction found the socket type when it was made, and
/// the detection is by type, so it holds for every poll.
pub(super) fn source<R: ?Sized>(reader: &R) -> detect::Socket<'_> {
    detect::read_socket(reader).expect("the direction's source was a socket when it was made")
}

/// The socket a splicing direction writes to (as [`source`]).
pub(super) fn destination<W: ?Sized>(writer: &W) -> detect::Socket<'_> {
    detect::write_socket(writer).expect("a direction splices only into a socket")
}

/// Gives an empty pipe back to the pool.
fn give_back(pipe: PooledPipe<'_>) {
    debug_assert!(pipe.is_empty());
    drop(pipe); // empty: back to the pool's cache
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
    use ::tokio::net::UnixStream;
    use rustix::io::Errno;

    use super::*;

    use crate::tokio::detect::tests::fail_splice_in;
    use crate::tokio::{copy_with, CopyOptions};
    use crate::{Method, PoolConfig};

    /// Fails the test instead of hanging it.
    async fn within<F: std::future::Future>(fut: F) -> F::Output {
        ::tokio::time::timeout(std::time::Duration::from_secs(30), fut)
            .await
            .expect("still running after 30 s")
    }

    /// The splicer on its own, given the sockets, pool and counts: an idle
    /// source takes no pipe; a burst goes in and out of one pipe, which
    /// goes back to the pool empty.
    #[tokio::test(flavor = "current_thread")]
    async fn splicer_moves_a_burst_through_one_pipe() {
        let pool = PoolConfig::builder().build().unwrap();
        let (mut client, a) = UnixStream::pair().unwrap();
        let (b, mut server) = UnixStream::pair().unwrap();
        let mut splicer = Splicer::new(SourceKind::Other);
        let mut counts = Counts::new(None);
        // Nothing sent: whatever the splicer answers, no pipe is taken.
        for _ in 0..3 {
            let polled = poll_fn(|cx| {
                Poll::Ready(splicer.poll_splice_in(cx, source(&a), &pool, &mut counts))
            })
            .await;
            match polled {
                Poll::Pending => break,
                Poll::Ready(Ok(SpliceIn::Again)) => {}
                other => panic!("an idle source gave {other:?}"),
            }
        }
        assert_eq!((pool.stats().created, counts.read()), (0, 0));

        client.write_all(b"hello").await.unwrap();
        let mut pipe = within(async {
            loop {
                let read =
                    poll_fn(|cx| splicer.poll_splice_in(cx, source(&a), &pool, &mut counts)).await;
                match read.unwrap() {
                    SpliceIn::Filled(pipe) => break pipe,
                    SpliceIn::Again => {}
                    other => panic!("data gave {other:?}"),
                }
            }
        })
        .await;
        assert_eq!((pipe.len(), counts.read()), (5, 5));
        assert_eq!(pool.stats().in_use, 1);

        let out = poll_fn(|cx| poll_splice_out(cx, destination(&b), &mut pipe, &mut counts)).await;
        assert!(matches!(out, Ok(SpliceOut::Spliced)), "{out:?}");
        assert!(pipe.is_empty());
        assert_eq!((counts.written(), counts.spliced()), (5, 5));
        drop(pipe);
        let stats = pool.stats();
        assert_eq!((stats.in_use, stats.closed_dirty), (0, 0), "{stats:?}");
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    /// `EINVAL` on the very first splice in: the direction copies through
    /// memory for good, and every byte arrives.
    #[tokio::test(flavor = "current_thread")]
    async fn source_refusing_the_first_splice_falls_back() {
        let pool = PoolConfig::builder().build().unwrap();
        let (mut client, mut a) = UnixStream::pair().unwrap();
        let (mut b, mut server) = UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let sender = ::tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
        });
        fail_splice_in(0, Errno::INVAL);
        let opts = CopyOptions::new().pool(pool.clone());
        let receiver = async {
            let mut got = vec![0u8; data.len()];
            server.read_exact(&mut got).await.unwrap();
            got
        };
        let (done, got) =
            within(async { ::tokio::join!(copy_with(&mut a, &mut b, &opts), receiver) }).await;
        let done = done.unwrap();
        assert_eq!(
            (done.bytes, done.method),
            (data.len() as u64, Method::Userspace)
        );
        assert!(got == data);
        sender.await.unwrap();
        let stats = pool.stats();
        // The pipe taken for the refused splice went back clean.
        assert_eq!(
            (stats.created, stats.in_use, stats.closed_dirty),
            (1, 0, 0),
            "{stats:?}"
        );
    }

    /// `EINVAL` after bytes moved is an error, as Go and HAProxy treat it:
    /// the count says what was delivered.
    #[tokio::test(flavor = "current_thread")]
    async fn refusal_after_bytes_moved_is_an_error() {
        let pool = PoolConfig::builder().build().unwrap();
        let (mut client, mut a) = UnixStream::pair().unwrap();
        let (mut b, mut server) = UnixStream::pair().unwrap();
        fail_splice_in(1, Errno::INVAL);
        let opts = CopyOptions::new().pool(pool.clone());
        let copy = copy_with(&mut a, &mut b, &opts);
        let peers = async {
            client.write_all(b"first").await.unwrap();
            let mut got = [0u8; 5];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"first");
            client.write_all(b"second").await.unwrap();
        };
        let (err, ()) = within(async { ::tokio::join!(copy, peers) }).await;
        let err = err.unwrap_err();
        assert_eq!(
            err.error().raw_os_error(),
            Some(Errno::INVAL.raw_os_error())
        );
        assert_eq!(
            (err.transfer().bytes, err.transfer().method),
            (5, Method::Splice)
        );
    }
}
