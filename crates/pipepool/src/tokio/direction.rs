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
//!
//! The direction's state is one [`State`]; the moves of the splice path are
//! in `direction/splice.rs`, those of the buffer path in
//! `direction/buffer.rs`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::task::coop;

use self::splice::Splicing;
use super::detect;
use super::next_read::NextRead;
use super::options::CopyOptions;
use super::userspace::Buffer;
use super::written::Written;
use crate::{Method, PipePool, Transfer};

mod buffer;
mod splice;

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
    /// A read failed while the buffer still held bytes (a top-up read in
    /// `drain_buffer`): reading stops, the bytes already read go out
    /// first, then the direction fails with this error. So a reset of the
    /// source never costs the bytes received before it.
    read_error: Option<io::Error>,
    /// Bytes went through `poll_write` and were not flushed since.
    need_flush: bool,
    /// Bytes read from the source, by any path.
    read: u64,
    /// Bytes written to the destination.
    out: Written<'p>,
    /// Shut the writer down after end of file (`copy_bidirectional`).
    shutdown: bool,
    /// The reader is a TCP socket, so its reads may stop short at an
    /// urgent mark with data behind it: read it with `recv` until `EAGAIN`
    /// (see `poll_fill`), whether the direction splices or not.
    tcp_source: bool,
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
        let tcp_source = detect::read_socket(reader).is_some_and(|s| s.has_urgent_mark());
        let state = match detect::splice_pair(reader, writer).filter(|_| opts.zero_copy) {
            Some(_) => State::Splice(Splicing {
                pipe: None,
                next_read: NextRead::Probe,
            }),
            None => State::Buffer,
        };
        Direction {
            pool: &opts.pool,
            state,
            buf: Buffer::new(opts.buffer_size),
            eof: false,
            read_error: None,
            need_flush: false,
            read: 0,
            out: Written::new(opts.progress.as_ref().map(|p| p.side(a_to_b))),
            shutdown,
            tcp_source,
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

    /// Finished: end of file reached, everything written, and the writer
    /// shut down if it was to be.
    pub(super) fn is_done(&self) -> bool {
        matches!(self.state, State::Done { .. })
    }

    /// Does not shut the writer down at end of file after all (a
    /// [`CopyOptions::last_shutdown`] of `false`, once the other direction
    /// is done). No effect once the shutdown has begun.
    pub(super) fn skip_shutdown(&mut self) {
        self.shutdown = false;
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
        // 3. Everything read is written: a read that failed meanwhile
        //    fails the direction now; at end of file, flush and finish.
        if let Some(e) = self.read_error.take() {
            return Poll::Ready(Err(e));
        }
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
