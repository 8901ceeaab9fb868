//! The splice path of a direction: [`Splicing`], its data, and the two
//! moves that use a pipe (read the source socket into one, splice it out
//! into the destination socket).

use std::io;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite};

use super::{poll_flush_while_idle, Advance, Direction, State};
use crate::copy::write_zero;
use crate::sys;
use crate::tokio::detect;
use crate::tokio::next_read::NextRead;
use crate::PooledPipe;

/// The data of the splice path.
#[derive(Debug)]
pub(super) struct Splicing<'p> {
    /// Bytes spliced from the source and not yet into the destination.
    /// Invariant: `Some` only while the pipe is not empty; an emptied pipe
    /// is given back at once. Never `Some` while the buffer holds bytes.
    pub(super) pipe: Option<PooledPipe<'p>>,
    /// How the next read from the source socket is made.
    pub(super) next_read: NextRead,
}

impl Splicing<'_> {
    /// Gives the pipe, emptied, back to the pool.
    fn give_back_pipe(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            give_back(pipe);
        }
    }
}

impl Direction<'_> {
    /// Splices what the pipe holds into the writer (a socket).
    pub(super) fn drain_pipe<W>(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut W,
    ) -> Poll<io::Result<Advance>>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let State::Splice(splicing) = &mut self.state else {
            return Poll::Ready(Ok(Advance::Again));
        };
        let Some(pipe) = splicing.pipe.as_mut() else {
            return Poll::Ready(Ok(Advance::Again));
        };
        let dst = destination(&*writer);
        ready!(dst.poll_write_ready(cx))?;
        match dst.splice_out_of(pipe) {
            Ok(0) => return Poll::Ready(Err(write_zero())),
            Ok(n) => {
                self.out.add(n, true);
                if pipe.is_empty() {
                    splicing.give_back_pipe();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if sys::is_unsupported(&e) && self.out.total == 0 => {
                // The destination takes no splice. Nothing is lost: the
                // bytes move to the buffer and go out through
                // `poll_write`, as everything after them will.
                self.buf.take_from_pipe(pipe)?;
                self.state = State::Buffer;
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
        Poll::Ready(Ok(Advance::Again))
    }

    /// One read from the source socket into a pipe, made the way
    /// [`NextRead`] says. `None` when no pipe could be had (or the
    /// direction does not splice): the caller reads through the buffer
    /// instead.
    pub(super) fn read_into_pipe<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Option<Poll<io::Result<Advance>>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        // A TCP source may hold an urgent mark that splice stops at.
        let urgent_marks = self.tcp_source;
        let State::Splice(splicing) = &mut self.state else {
            return None;
        };
        let src = source(&*reader);
        match src.poll_read_ready(cx) {
            Poll::Pending => {
                return Some(poll_flush_while_idle(&mut self.need_flush, cx, writer));
            }
            Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
            Poll::Ready(Ok(())) => {}
        }
        if matches!(splicing.next_read, NextRead::AfterWait | NextRead::Peek)
            && self.read > 0
            && src.read_closed(cx)
        {
            // The peer shut down: the read through the buffer tells the
            // end of file in one call (as a splice would), and cannot be
            // fooled by an urgent mark. (Not before the first byte: a
            // connection's first burst is spliced, as its `Method`
            // says.)
            splicing.next_read = NextRead::Buffer;
            return Some(Poll::Ready(Ok(Advance::Again)));
        }
        if splicing.next_read == NextRead::Probe && src.read_closed(cx) {
            // The peer shut down: a real event, not the readiness tokio
            // gives a fresh socket, so no peek is needed to tell (a splice
            // that finds only the FIN is checked with a read as ever).
            splicing.next_read = NextRead::Splice;
        }
        if splicing.next_read == NextRead::AfterWait {
            // A new readiness event: data, most likely.
            splicing.next_read = NextRead::Splice;
        }
        if matches!(splicing.next_read, NextRead::Probe | NextRead::Peek) {
            match src.peek() {
                // End of file, maybe after an urgent byte that the peek
                // skipped without consuming it: a read consumes it.
                Ok(Some(0)) if urgent_marks => {
                    splicing.next_read = NextRead::Buffer;
                    return Some(Poll::Ready(Ok(Advance::Again)));
                }
                Ok(Some(0)) => {
                    self.eof = true;
                    return Some(Poll::Ready(Ok(Advance::Again)));
                }
                // Data, or no socket to peek at (the splice will tell).
                Ok(Some(_) | None) => splicing.next_read = NextRead::Splice,
                // Readiness cleared: the next check waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    splicing.next_read = NextRead::AfterWait;
                    return Some(Poll::Ready(Ok(Advance::Again)));
                }
                Err(e) => return Some(Poll::Ready(Err(e))),
            }
        }
        // No pipe (the pool is at its bound, or `pipe2` failed): `None`.
        let mut pipe = self.pool.get().ok()?;
        let capacity = pipe.capacity();
        match src.splice_into(&mut pipe, !urgent_marks) {
            // End of file, or (TCP) the urgent mark with the FIN behind it:
            // a read tells.
            Ok(0) if urgent_marks => {
                splicing.next_read = NextRead::Buffer;
                give_back(pipe);
            }
            Ok(0) => {
                self.eof = true;
                give_back(pipe);
            }
            Ok(n) => {
                self.read += n as u64;
                splicing.pipe = Some(pipe);
                if urgent_marks && n < capacity {
                    // Maybe stopped at an urgent mark: the next read peeks
                    // (where a splice would have answered `EAGAIN` at the
                    // end of the burst).
                    splicing.next_read = NextRead::Peek;
                }
            }
            // The data a peek or a readiness event announced is behind an
            // urgent mark (or the event was stale): the readiness was kept,
            // and a read moves past the mark.
            Err(e) if urgent_marks && e.kind() == io::ErrorKind::WouldBlock => {
                splicing.next_read = NextRead::Buffer;
                give_back(pipe);
            }
            // Stale readiness, now cleared: the next check waits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => give_back(pipe),
            Err(e) if sys::is_unsupported(&e) && self.read == 0 => {
                // The source cannot be spliced (kTLS, an odd fd): nothing
                // was read, so copy through memory instead.
                drop(pipe);
                self.state = State::Buffer;
            }
            Err(e) => return Some(Poll::Ready(Err(e))),
        }
        Some(Poll::Ready(Ok(Advance::Again)))
    }
}

/// The socket a direction reads from, when it splices or its source is a
/// TCP socket: [`Direction::new`] found the socket type then, and the
/// detection is by type, so it holds for every poll.
pub(super) fn source<R: ?Sized>(reader: &R) -> detect::Socket<'_> {
    detect::read_socket(reader).expect("the direction's source was a socket when it was made")
}

/// The socket a splicing direction writes to (as [`source`]).
fn destination<W: ?Sized>(writer: &W) -> detect::Socket<'_> {
    detect::write_socket(writer).expect("a direction splices only into a socket")
}

/// Gives an empty pipe back to the pool.
fn give_back(pipe: PooledPipe<'_>) {
    debug_assert!(pipe.is_empty());
    drop(pipe); // empty: back to the pool's cache
}

#[cfg(test)]
mod tests {
    use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
    use ::tokio::net::UnixStream;
    use rustix::io::Errno;

    use crate::tokio::detect::tests::fail_splice_in;
    use crate::tokio::{copy_with, CopyOptions};
    use crate::{Method, PoolConfig};

    /// Fails the test instead of hanging it.
    async fn within<F: std::future::Future>(fut: F) -> F::Output {
        ::tokio::time::timeout(std::time::Duration::from_secs(30), fut)
            .await
            .expect("still running after 30 s")
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
        assert_eq!((err.bytes_copied(), err.method()), (5, Method::Splice));
    }
}
