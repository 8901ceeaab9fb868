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
//! the pool at its bound (that burst only).
//!
//! A direction's state, as in tokio's `copy_bidirectional`:
//! - [`Phase`]: copying, draining after end of file, shutting the writer
//!   down, done;
//! - [`Path`]: how the source is read, through pipes (a
//!   [`Splicer`], in `direction/splice.rs`, which takes the sockets, pool
//!   and counts as arguments) or through the buffer;
//! - [`InFlight`]: where the bytes read and not yet written are: nowhere,
//!   in a pipe, or in the buffer. One place at a time, and emptied before
//!   the source is read again, so the order of the bytes never changes
//!   when the path does;
//! - [`Counts`]: the bytes read and written.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::task::coop;

use self::counts::Counts;
use self::splice::{destination, poll_splice_out, source, SpliceIn, SpliceOut, Splicer};
use super::detect;
use super::options::CopyOptions;
use super::progress::Side;
use super::userspace::Buffer;
use crate::{Method, PipePool, PooledPipe, Transfer};

mod counts;
mod splice;

/// Bytes a direction writes in one poll before it yields to the scheduler,
/// on top of tokio's coop budget (which every readiness check draws on):
/// about 0.1-1 ms of work, so one busy connection cannot hold a worker
/// thread for long while others wait.
const YIELD_AFTER: u64 = 1 << 20;

/// What a direction does to its writer once the source reached end of
/// file and every byte is written and flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AtEof {
    /// Shuts it down (`poll_shutdown`): `copy_bidirectional`.
    Shutdown,
    /// Leaves it as it is: `copy`, and the direction that finishes second
    /// without [`CopyOptions::last_shutdown`].
    LeaveOpen,
}

/// What the source is, for how it is read through the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceKind {
    /// A tokio TCP socket (or half): its reads may stop short at an urgent
    /// mark with data behind it, so it is read with `recv` until `EAGAIN`
    /// (see [`Direction::poll_fill`]), whether the direction splices or
    /// not.
    Tcp,
    /// Anything else: read with `poll_read`.
    Other,
}

/// Where a direction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the source and writing what it gives.
    Copying,
    /// The source reached end of file: writing what is in flight, then
    /// flushing.
    Draining,
    /// Every byte read is written and flushed: shutting the writer down
    /// ([`AtEof::Shutdown`]).
    ShuttingDown,
    /// Finished.
    Done,
}

/// How a direction reads its source. Chosen in [`Direction::new`]; the only
/// change is the fallback from `Splice` to `Buffer`, and it stays through
/// the end (for [`Direction::method`]).
#[derive(Debug)]
enum Path {
    /// Into pooled pipes, from one socket to another; a burst that finds
    /// no pipe, or must move past an urgent mark, goes through the buffer.
    Splice(Splicer),
    /// Through the buffer: the types cannot be spliced, zero-copy is off,
    /// or (the fallback) the kernel refused to splice before any byte had
    /// moved.
    Buffer,
}

/// Where the bytes read from the source and not yet written are.
#[derive(Debug)]
enum InFlight<'p> {
    /// Nowhere: every byte read was written.
    None,
    /// In this pipe, never empty: an emptied pipe goes back to the pool at
    /// once.
    Pipe(PooledPipe<'p>),
    /// In the direction's [`Buffer`], never empty.
    Buffer,
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
    /// Where the direction is in its life.
    phase: Phase,
    /// How the source is read.
    path: Path,
    /// Where the bytes read and not yet written are.
    in_flight: InFlight<'p>,
    /// The userspace path's memory. Holds bytes exactly when `in_flight`
    /// is [`InFlight::Buffer`]; empty, it holds storage only while its
    /// reader has data (see [`Buffer::release`]).
    buf: Buffer,
    /// Bytes read and written.
    counts: Counts<'p>,
    /// Bytes went through `poll_write` and were not flushed since.
    need_flush: bool,
    /// A read failed while the buffer held bytes (a top-up read in
    /// `drain_buffer`): the direction is [`Phase::Draining`], and fails
    /// with this error once those bytes are written, instead of
    /// finishing. So a reset of the source never costs the bytes received
    /// before it.
    read_error: Option<io::Error>,
    /// What to do with the writer at end of file.
    at_eof: AtEof,
    /// What the source is.
    source: SourceKind,
    /// Where pipes come from.
    pool: &'p PipePool,
}

impl<'p> Direction<'p> {
    /// A direction from `reader` to `writer`. It splices when zero-copy is
    /// on and both are tokio sockets (or socket halves); `at_eof` says what
    /// becomes of the writer after end of file; `side` which side of the
    /// options' [`Progress`](super::Progress) it counts in. `prefix`: bytes
    /// read from `reader` before the copy, written before anything else:
    /// they start in flight, in the buffer, as if the direction had just
    /// read them.
    pub(super) fn new<R: ?Sized, W: ?Sized>(
        opts: &'p CopyOptions,
        reader: &R,
        writer: &W,
        at_eof: AtEof,
        side: Side,
        prefix: &[u8],
    ) -> Direction<'p> {
        let source = match detect::read_socket(reader) {
            Some(s) if s.has_urgent_mark() => SourceKind::Tcp,
            _ => SourceKind::Other,
        };
        let path = match detect::splice_pair(reader, writer).filter(|_| opts.zero_copy) {
            Some(_) => Path::Splice(Splicer::new(source)),
            None => Path::Buffer,
        };
        let mut buf = Buffer::new(opts.buffer_size);
        let mut counts = Counts::new(opts.progress.as_ref().map(|p| p.side(side)));
        buf.preload(prefix);
        counts.add_prefix(prefix.len());
        Direction {
            phase: Phase::Copying,
            path,
            in_flight: if prefix.is_empty() {
                InFlight::None
            } else {
                InFlight::Buffer
            },
            buf,
            counts,
            need_flush: false,
            read_error: None,
            at_eof,
            source,
            pool: &opts.pool,
        }
    }

    /// For a copy future being dropped: writes the bytes in flight (in the
    /// pipe or the buffer) into `writer`, as far as the socket takes them
    /// now, without waiting. Only tokio sockets can be written without a
    /// `Context`; for other writers, and for what does not fit, the bytes
    /// go with the future (a pipe left with bytes is closed by the pool,
    /// never reused).
    pub(super) fn flush_on_drop<W: ?Sized>(&mut self, writer: &W) {
        let Some(socket) = detect::write_socket(writer) else {
            return;
        };
        match &mut self.in_flight {
            InFlight::None => {}
            InFlight::Pipe(pipe) => {
                while !pipe.is_empty() {
                    match socket.splice_now(pipe) {
                        Ok(n) if n > 0 => self.counts.add_written(n, Method::Splice),
                        _ => break,
                    }
                }
                if pipe.is_empty() {
                    self.in_flight = InFlight::None; // back to the pool, clean
                }
            }
            InFlight::Buffer => {
                while !self.buf.is_empty() {
                    match socket.write_now(self.buf.pending()) {
                        Ok(n) if n > 0 => {
                            self.buf.consume(n);
                            self.counts.add_written(n, Method::Userspace);
                        }
                        _ => break,
                    }
                }
                if self.buf.is_empty() {
                    self.in_flight = InFlight::None;
                }
            }
        }
    }

    /// Finished: end of file reached, everything written, and the writer
    /// shut down if it was to be.
    pub(super) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Leaves the writer open at end of file after all (a
    /// [`CopyOptions::last_shutdown`] of `false`, once the other direction
    /// is done). No effect once the shutdown has begun.
    pub(super) fn skip_shutdown(&mut self) {
        self.at_eof = AtEof::LeaveOpen;
    }

    /// Bytes written to the destination so far.
    pub(super) fn written(&self) -> u64 {
        self.counts.written()
    }

    /// What the direction has written so far, and how.
    pub(super) fn transfer(&self) -> Transfer {
        Transfer {
            bytes: self.counts.written(),
            method: self.method(),
        }
    }

    /// A number that grows whenever a byte is read or written: for the idle
    /// timeout. (The prefix is not counted as read: it was read before.)
    pub(super) fn activity(&self) -> u64 {
        self.counts.read() + self.counts.written()
    }

    /// [`Method::Splice`] if a byte went through a pipe, or if no byte of
    /// the source moved yet (a prefix aside: it is always written from
    /// memory) and the direction would splice; else [`Method::Userspace`].
    pub(super) fn method(&self) -> Method {
        let would_splice = matches!(self.path, Path::Splice(_));
        let from_source = self.counts.written().saturating_sub(self.counts.prefix());
        if self.counts.spliced() > 0 || (from_source == 0 && would_splice) {
            Method::Splice
        } else {
            Method::Userspace
        }
    }

    /// Drives the direction: `Ready(Ok(bytes written))` once the source hit
    /// end of file, every byte was written and flushed, and (with
    /// [`AtEof::Shutdown`]) the writer was shut down. Stays `Ready` if
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
            match self.phase {
                Phase::Copying | Phase::Draining => {
                    ready!(self.poll_copy(cx, reader, writer))?;
                    self.phase = match self.at_eof {
                        AtEof::Shutdown => Phase::ShuttingDown,
                        AtEof::LeaveOpen => Phase::Done,
                    };
                }
                Phase::ShuttingDown => {
                    ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                    self.phase = Phase::Done;
                }
                Phase::Done => return Poll::Ready(Ok(self.counts.written())),
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
        let written_before = self.counts.written();
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
                    if self.counts.written() - written_before >= YIELD_AFTER {
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

    /// One move: write out what is in flight, else finish at end of file,
    /// else read.
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
        debug_assert!(self.in_flight_is_true(), "{:?}", self.in_flight);
        // 1. Bytes in flight go out first. Nothing is read into a pipe
        //    meanwhile: the next splice in must find the pipe empty.
        match self.in_flight {
            InFlight::Pipe(_) => return self.splice_out(cx, writer),
            InFlight::Buffer => return self.drain_buffer(cx, reader, writer),
            InFlight::None => {}
        }
        // 2. Everything read is written: a read that failed meanwhile
        //    fails the direction now; at end of file, flush and finish.
        if let Some(e) = self.read_error.take() {
            return Poll::Ready(Err(e));
        }
        if self.phase == Phase::Draining {
            ready!(Pin::new(&mut *writer).poll_flush(cx))?;
            self.need_flush = false;
            return Poll::Ready(Ok(Advance::Finished));
        }
        // 3. Read more: into a pipe if we can; without a pipe (the pool is
        //    at its bound, or out of fds) this burst goes through memory.
        if let Path::Splice(splicer) = &mut self.path {
            match splicer.poll_splice_in(cx, source(&*reader), self.pool, &mut self.counts) {
                Poll::Pending => return self.poll_flush_while_idle(cx, writer),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(SpliceIn::Filled(pipe))) => self.in_flight = InFlight::Pipe(pipe),
                Poll::Ready(Ok(SpliceIn::Again)) => {}
                Poll::Ready(Ok(SpliceIn::Eof)) => self.phase = Phase::Draining,
                // Nothing was read: copy through memory from now on.
                Poll::Ready(Ok(SpliceIn::Refused)) => self.path = Path::Buffer,
                Poll::Ready(Ok(SpliceIn::ThroughBuffer)) => {
                    return self.read_into_buffer(cx, reader, writer)
                }
            }
            return Poll::Ready(Ok(Advance::Again));
        }
        self.read_into_buffer(cx, reader, writer)
    }

    /// Whether [`InFlight`] says where the bytes are: a pipe in flight
    /// is never empty, and the buffer holds bytes exactly when it is in
    /// flight.
    fn in_flight_is_true(&self) -> bool {
        match &self.in_flight {
            InFlight::None => self.buf.is_empty(),
            InFlight::Pipe(pipe) => !pipe.is_empty() && self.buf.is_empty(),
            InFlight::Buffer => !self.buf.is_empty(),
        }
    }

    /// Splices what the pipe in flight holds into the writer (a socket);
    /// an emptied pipe goes back to the pool.
    fn splice_out<W>(&mut self, cx: &mut Context<'_>, writer: &mut W) -> Poll<io::Result<Advance>>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let InFlight::Pipe(pipe) = &mut self.in_flight else {
            return Poll::Ready(Ok(Advance::Again));
        };
        match ready!(poll_splice_out(
            cx,
            destination(&*writer),
            pipe,
            &mut self.counts
        ))? {
            SpliceOut::Spliced => {
                if pipe.is_empty() {
                    self.in_flight = InFlight::None; // back to the pool
                }
            }
            SpliceOut::Refused => {
                // The destination takes no splice. Nothing is lost: the
                // bytes move to the buffer and go out through
                // `poll_write`, as everything after them will. The
                // emptied pipe goes back to the pool.
                let taken = self.buf.take_from_pipe(pipe);
                self.in_flight = if self.buf.is_empty() {
                    InFlight::None
                } else {
                    InFlight::Buffer
                };
                taken?;
                self.path = Path::Buffer;
            }
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
                self.counts.add_written(n, Method::Userspace);
                self.need_flush = true;
                if self.buf.is_empty() {
                    self.in_flight = InFlight::None;
                    if matches!(self.path, Path::Splice(_)) {
                        // The end of a burst through memory: back to pipes.
                        self.buf.release();
                    }
                }
                Poll::Ready(Ok(Advance::Again))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // More bytes now make a larger write later.
                if self.phase == Phase::Copying && self.buf.has_room() {
                    match ready!(self.poll_fill(cx, reader)) {
                        Ok(0) => self.phase = Phase::Draining,
                        Ok(n) => self.counts.add_read(n),
                        // Written out first; see `Direction::read_error`.
                        Err(e) => {
                            self.phase = Phase::Draining;
                            self.read_error = Some(e);
                        }
                    }
                }
                Poll::Pending
            }
        }
    }

    /// One read into the buffer, which is empty.
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
            Poll::Ready(Ok(0)) => self.phase = Phase::Draining,
            Poll::Ready(Ok(n)) => {
                self.counts.add_read(n);
                self.in_flight = InFlight::Buffer;
                if let Path::Splice(splicer) = &mut self.path {
                    splicer.read_through_buffer(n, room);
                }
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                // Nothing to read: an empty buffer goes back to the thread's
                // spares, so an idle connection holds none.
                self.buf.release();
                if let Path::Splice(splicer) = &mut self.path {
                    splicer.buffer_found_nothing();
                }
                return self.poll_flush_while_idle(cx, writer);
            }
        }
        if matches!(self.path, Path::Splice(_)) && self.buf.is_empty() {
            self.buf.release();
        }
        Poll::Ready(Ok(Advance::Again))
    }

    /// Reads once into the buffer. From a TCP socket (spliced or not), the
    /// read is a `recv` of its own whose readiness is cleared only by
    /// `EAGAIN`: tokio's `poll_read` clears it after any read short of the
    /// buffer, and a read that stops before an urgent mark is short with
    /// data waiting behind the mark (no new readiness event would come:
    /// tokio's own copy stalls there). The price: after a short read, one
    /// `recv` more that answers `EAGAIN`.
    fn poll_fill<R>(&mut self, cx: &mut Context<'_>, reader: &mut R) -> Poll<io::Result<usize>>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        if self.source == SourceKind::Other {
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

    /// The reader has nothing for now: flush what went through `poll_write`
    /// so that a writer that buffers does not sit on bytes the peer is
    /// waiting for, then wait.
    fn poll_flush_while_idle<W>(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut W,
    ) -> Poll<io::Result<Advance>>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.need_flush {
            ready!(Pin::new(&mut *writer).poll_flush(cx))?;
            self.need_flush = false;
        }
        Poll::Pending
    }
}
