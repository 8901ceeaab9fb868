//! One direction of a copy, reader -> writer: the state machine that
//! [`copy`](super::copy) runs once and
//! [`copy_bidirectional`](super::copy_bidirectional) runs twice.
//!
//! Between two tokio sockets a direction splices through a pooled pipe:
//!
//! 1. wait until the source is readable (`poll_read_ready`);
//! 2. take an empty pipe from the pool and splice the socket into it
//!    (`try_io`, so `EAGAIN` clears the readiness tokio had cached). The pipe
//!    is empty, so `EAGAIN` can only mean "the socket has nothing";
//! 3. wait until the destination is writable and splice the pipe out, until
//!    it is empty;
//! 4. give the empty pipe back and start again.
//!
//! The pipe is never registered with the reactor: all readiness is the
//! sockets'. A direction holds a pipe only between 2 and 4, and a pipe it
//! holds is never empty, so an idle connection holds none.
//!
//! Everything else goes through a [`Buffer`]: types that cannot be spliced,
//! `zero_copy(false)`, a kernel that refused the first splice (`EINVAL`,
//! `ENOSYS`, ... before any byte moved: for good), and a burst that found
//! the pool at its bound (that burst only). Bytes are only ever in the pipe
//! *or* in the buffer, and each is emptied before the source is read again,
//! so the order of the bytes never changes when the path does.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::task::coop;

use super::detect;
use super::next_read::NextRead;
use super::options::CopyOptions;
use super::userspace::Buffer;
use super::written::Written;
use crate::copy::write_zero;
use crate::sys;
use crate::{Method, PipePool, PooledPipe, Transfer};

/// Bytes a direction writes in one poll before it yields to the scheduler,
/// on top of tokio's coop budget (which every readiness check draws on):
/// about 0.1-1 ms of work, so one busy connection cannot hold a worker
/// thread for long while others wait.
const YIELD_AFTER: u64 = 1 << 20;

/// Where a direction is in its life, and how it moves bytes: one state, as
/// in tokio's `copy_bidirectional`, each variant holding what it needs. The
/// path is chosen once, in [`Direction::new`]; the only change of path is
/// the fallback from `Splice` to `Buffer`.
#[derive(Debug)]
enum State<'p> {
    /// Copying from one socket to another through pooled pipes; a burst
    /// that finds the pool at its bound goes through the buffer.
    Splice(Splicing<'p>),
    /// Copying through the buffer: the types cannot be spliced, zero-copy
    /// is off, or (the fallback) the kernel refused to splice before any
    /// byte had moved.
    Buffer,
    /// End of file reached, and every byte read written and flushed:
    /// shutting the writer down (`copy_bidirectional`). `spliced`: the copy
    /// ended on the splice path.
    ShuttingDown { spliced: bool },
    /// Finished; `spliced` as in `ShuttingDown`.
    Done { spliced: bool },
}

/// The data of the splice path.
#[derive(Debug)]
struct Splicing<'p> {
    /// Bytes spliced from the source and not yet into the destination.
    /// Invariant: `Some` only while the pipe is not empty; an emptied pipe
    /// is given back at once. Never `Some` while the buffer holds bytes.
    pipe: Option<PooledPipe<'p>>,
    /// How the next read from the source socket is made.
    next_read: NextRead,
    /// The source may hold a TCP urgent mark that splice stops at.
    urgent_marks: bool,
}

impl Splicing<'_> {
    /// Gives the pipe, emptied, back to the pool.
    fn give_back_pipe(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            give_back(pipe);
        }
    }
}

/// What one step of the copy loop did.
#[derive(Debug)]
enum Advance {
    /// Something changed; go on.
    Again,
    /// End of file, and every byte read has been written and flushed.
    Finished,
}

/// The state of one direction.
#[derive(Debug)]
pub(super) struct Direction<'p> {
    /// Where pipes come from.
    pool: &'p PipePool,
    /// Where the direction is, and how bytes move.
    state: State<'p>,
    /// The userspace path. Never holds bytes while the splice path holds a
    /// pipe.
    buf: Buffer,
    /// The source reached end of file.
    eof: bool,
    /// Bytes went through `poll_write` and were not flushed since.
    need_flush: bool,
    /// Bytes read from the source, by any path.
    read: u64,
    /// Bytes written to the destination.
    out: Written<'p>,
    /// Shut the writer down after end of file (`copy_bidirectional`).
    shutdown: bool,
}

impl<'p> Direction<'p> {
    /// A direction from `reader` to `writer`. It splices when zero-copy is
    /// on and both are tokio sockets (or socket halves); `shutdown` says
    /// whether the writer is shut down after end of file; `a_to_b` which
    /// side of the options' [`Progress`](super::Progress) it counts in.
    pub(super) fn new<R: ?Sized, W: ?Sized>(
        opts: &'p CopyOptions,
        reader: &R,
        writer: &W,
        shutdown: bool,
        a_to_b: bool,
    ) -> Direction<'p> {
        let state = match detect::splice_pair(reader, writer).filter(|_| opts.zero_copy) {
            Some((src, _)) => State::Splice(Splicing {
                pipe: None,
                next_read: NextRead::Probe,
                urgent_marks: src.has_urgent_mark(),
            }),
            None => State::Buffer,
        };
        Direction {
            pool: &opts.pool,
            state,
            buf: Buffer::new(opts.buffer_size),
            eof: false,
            need_flush: false,
            read: 0,
            out: Written::new(opts.progress.as_ref().map(|p| p.side(a_to_b))),
            shutdown,
        }
    }

    /// For a copy future being dropped: writes the bytes this direction
    /// holds (in its pipe or its buffer) into `writer`, as far as the socket
    /// takes them now, without waiting. Only tokio sockets can be written
    /// without a `Context`; for other writers, and for what does not fit,
    /// the bytes go with the future (a pipe left with bytes is closed by the
    /// pool, never reused). Bytes are only ever in the pipe or in the
    /// buffer, so their order is kept.
    pub(super) fn flush_on_drop<W: ?Sized>(&mut self, writer: &W) {
        let Some(socket) = detect::write_socket(writer) else {
            return;
        };
        if let State::Splice(splicing) = &mut self.state {
            if let Some(pipe) = splicing.pipe.as_mut() {
                while !pipe.is_empty() {
                    match socket.splice_now(pipe) {
                        Ok(n) if n > 0 => self.out.add(n, true),
                        _ => break,
                    }
                }
                if pipe.is_empty() {
                    splicing.pipe = None; // back to the pool, clean
                }
            }
        }
        while !self.buf.is_empty() {
            match socket.write_now(self.buf.pending()) {
                Ok(n) if n > 0 => {
                    self.buf.consume(n);
                    self.out.add(n, false);
                }
                _ => break,
            }
        }
    }

    /// Bytes written to the destination so far.
    pub(super) fn written(&self) -> u64 {
        self.out.total
    }

    /// What the direction has written so far, and how.
    pub(super) fn transfer(&self) -> Transfer {
        Transfer {
            bytes: self.out.total,
            method: self.method(),
        }
    }

    /// A number that grows whenever a byte is read or written: for the idle
    /// timeout.
    pub(super) fn activity(&self) -> u64 {
        self.read + self.out.total
    }

    /// [`Method::Splice`] if a byte went through a pipe, or if none moved
    /// yet and the direction would splice; else [`Method::Userspace`].
    pub(super) fn method(&self) -> Method {
        let would_splice = matches!(
            self.state,
            State::Splice(_)
                | State::ShuttingDown { spliced: true }
                | State::Done { spliced: true }
        );
        if self.out.spliced > 0 || (self.out.total == 0 && would_splice) {
            Method::Splice
        } else {
            Method::Userspace
        }
    }

    /// Drives the direction: `Ready(Ok(bytes written))` once the source hit
    /// end of file, every byte was written and flushed, and (for
    /// `copy_bidirectional`) the writer was shut down. Stays `Ready` if
    /// polled again.
    pub(super) fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            match self.state {
                State::Splice(_) | State::Buffer => {
                    ready!(self.poll_copy(cx, reader, writer))?;
                    let spliced = matches!(self.state, State::Splice(_));
                    self.state = if self.shutdown {
                        State::ShuttingDown { spliced }
                    } else {
                        State::Done { spliced }
                    };
                }
                State::ShuttingDown { spliced } => {
                    ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                    self.state = State::Done { spliced };
                }
                State::Done { .. } => return Poll::Ready(Ok(self.out.total)),
            }
        }
    }

    /// Steps until the copy is finished, nothing can move, or
    /// [`YIELD_AFTER`] bytes were written in this poll.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let coop = ready!(coop::poll_proceed(cx));
        let written_before = self.out.total;
        loop {
            let activity = self.activity();
            let step = self.step(cx, reader, writer);
            if self.activity() != activity
                || matches!(step, Poll::Ready(Ok(Advance::Finished) | Err(_)))
            {
                coop.made_progress();
            }
            match step {
                Poll::Ready(Ok(Advance::Again)) => {
                    if self.out.total - written_before >= YIELD_AFTER {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Ok(Advance::Finished)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// One move: write out what the pipe or buffer holds, else finish at end
    /// of file, else read.
    fn step<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<Advance>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        // 1. Bytes in a pipe go out first. Nothing is read meanwhile: the
        //    next splice in must find the pipe empty.
        if matches!(self.state, State::Splice(Splicing { pipe: Some(_), .. })) {
            return self.drain_pipe(cx, writer);
        }
        // 2. Bytes in the buffer go out next; while the writer is not ready,
        //    top the buffer up.
        if !self.buf.is_empty() {
            return self.drain_buffer(cx, reader, writer);
        }
        // 3. Everything read is written: at end of file, flush and finish.
        if self.eof {
            ready!(Pin::new(&mut *writer).poll_flush(cx))?;
            self.need_flush = false;
            return Poll::Ready(Ok(Advance::Finished));
        }

        // 4. Read more: into a pipe if we can; without a pipe (the pool is
        //    at its bound, or out of fds) this burst goes through memory.
        if matches!(&self.state, State::Splice(s) if s.next_read != NextRead::Buffer) {
            if let Some(done) = self.read_into_pipe(cx, reader, writer) {
                return done;
            }
        }
        self.read_into_buffer(cx, reader, writer)
    }

    /// Splices what the pipe holds into the writer (a socket).
    fn drain_pipe<W>(&mut self, cx: &mut Context<'_>, writer: &mut W) -> Poll<io::Result<Advance>>
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

    /// Writes what the buffer holds into the writer; while the writer is
    /// not ready, tops the buffer up.
    fn drain_buffer<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<Advance>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        match self.buf.poll_drain(cx, Pin::new(&mut *writer)) {
            Poll::Ready(Ok(n)) => {
                self.out.add(n, false);
                self.need_flush = true;
                if matches!(self.state, State::Splice(_)) && self.buf.is_empty() {
                    // The end of a burst through memory: back to pipes.
                    self.buf.release();
                }
                Poll::Ready(Ok(Advance::Again))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // More bytes now make a larger write later.
                if !self.eof && self.buf.has_room() {
                    match ready!(self.poll_fill(cx, reader))? {
                        0 => self.eof = true,
                        n => self.read += n as u64,
                    }
                }
                Poll::Pending
            }
        }
    }

    /// One read from the source socket into a pipe, made the way
    /// [`NextRead`] says. `None` when no pipe could be had (or the
    /// direction does not splice): the caller reads through the buffer
    /// instead.
    fn read_into_pipe<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Option<Poll<io::Result<Advance>>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let State::Splice(splicing) = &mut self.state else {
            return None;
        };
        let urgent_marks = splicing.urgent_marks;
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

    /// One read into the buffer.
    fn read_into_buffer<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<Advance>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let room = self.buf.room();
        match self.poll_fill(cx, reader) {
            Poll::Ready(Ok(0)) => self.eof = true,
            Poll::Ready(Ok(n)) => {
                self.read += n as u64;
                if let State::Splice(s) = &mut self.state {
                    if s.urgent_marks {
                        // A read that filled the buffer leaves more behind:
                        // splice it. A shorter one may have stopped before
                        // an urgent mark (or found everything): read
                        // through the buffer again.
                        s.next_read = if n >= room {
                            NextRead::Splice
                        } else {
                            NextRead::Buffer
                        };
                    }
                }
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                // Nothing to read: an empty buffer goes back to the thread's
                // spares, so an idle connection holds none.
                self.buf.release();
                if let State::Splice(s) = &mut self.state {
                    if s.urgent_marks {
                        s.next_read = NextRead::AfterWait;
                    }
                }
                return poll_flush_while_idle(&mut self.need_flush, cx, writer);
            }
        }
        if matches!(self.state, State::Splice(_)) && self.buf.is_empty() {
            self.buf.release();
        }
        Poll::Ready(Ok(Advance::Again))
    }

    /// Reads once into the buffer. From a TCP socket this direction
    /// splices, the read is a `recv` of its own whose readiness is cleared
    /// only by `EAGAIN`: tokio's `poll_read` clears it after any read short
    /// of the buffer, and a read that stops before an urgent mark is short
    /// with data waiting behind the mark (no new readiness event would
    /// come: tokio's own copy stalls there).
    fn poll_fill<R>(&mut self, cx: &mut Context<'_>, reader: &mut R) -> Poll<io::Result<usize>>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        if !matches!(&self.state, State::Splice(s) if s.urgent_marks) {
            return self.buf.poll_fill(cx, Pin::new(&mut *reader));
        }
        let src = source(&*reader);
        loop {
            ready!(src.poll_read_ready(cx))?;
            match self.buf.fill_with(|free| src.recv(free)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

/// The socket a splicing direction reads from. [`Direction::new`] chose to
/// splice because both sides are tokio sockets, and the detection is by
/// type: it holds for every poll.
fn source<R: ?Sized>(reader: &R) -> detect::Socket<'_> {
    detect::read_socket(reader).expect("a direction splices only from a socket")
}

/// The socket a splicing direction writes to (as [`source`]).
fn destination<W: ?Sized>(writer: &W) -> detect::Socket<'_> {
    detect::write_socket(writer).expect("a direction splices only into a socket")
}

/// The reader has nothing for now: flush what went through `poll_write` so
/// that a writer that buffers does not sit on bytes the peer is waiting
/// for, then wait.
fn poll_flush_while_idle<W>(
    need_flush: &mut bool,
    cx: &mut Context<'_>,
    writer: &mut W,
) -> Poll<io::Result<Advance>>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    if *need_flush {
        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
        *need_flush = false;
    }
    Poll::Pending
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

    use super::super::detect::tests::fail_splice_in;
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
        let pool = PoolConfig::default().build().unwrap();
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
        let pool = PoolConfig::default().build().unwrap();
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
