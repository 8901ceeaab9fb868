//! The moves of a direction through its userspace buffer: all of them
//! when the direction does not splice, and a burst that found no pipe when
//! it does.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite};

use super::splice::source;
use super::{poll_flush_while_idle, Advance, Direction, State};
use crate::tokio::next_read::NextRead;

impl Direction<'_> {
    /// Writes what the buffer holds into the writer; while the writer is
    /// not ready, tops the buffer up.
    pub(super) fn drain_buffer<R, W>(
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
                    match ready!(self.poll_fill(cx, reader)) {
                        Ok(0) => self.eof = true,
                        Ok(n) => self.read += n as u64,
                        // Written out first; see `Direction::read_error`.
                        Err(e) => {
                            self.eof = true;
                            self.read_error = Some(e);
                        }
                    }
                }
                Poll::Pending
            }
        }
    }

    /// One read into the buffer.
    pub(super) fn read_into_buffer<R, W>(
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
                    if self.tcp_source {
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
                    if self.tcp_source {
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
        if !self.tcp_source {
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
