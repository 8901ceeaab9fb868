//! The fallback: `read` into a buffer, `write` it all out.

use std::io;
use std::os::fd::BorrowedFd;

use super::{wait_if_would_block, write_zero, Job};
use crate::sync::PipeMut;
use crate::sys::{self, Wait};

/// Copies through a buffer of `buf_size` bytes until end of file or the
/// limit.
pub(super) fn copy(job: &mut Job<'_>, buf_size: usize) -> io::Result<()> {
    let mut buf = vec![0u8; buf_size];
    while !job.limit_reached() {
        let len = job.next_len(buf.len());
        let n = match sys::read_errno(job.src, &mut buf[..len]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                wait_if_would_block(e, job.src, Wait::Readable)?;
                continue;
            }
        };
        job.consumed(n);
        write_all(job, &buf[..n])?;
    }
    Ok(())
}

/// Writes what `pipe` holds to the destination through memory, leaving the
/// pipe empty.
pub(super) fn drain_pipe(
    job: &mut Job<'_>,
    pipe: &mut impl PipeMut,
    buf_size: usize,
) -> io::Result<()> {
    let pipe = pipe.pipe_mut();
    let mut buf = vec![0u8; buf_size.min(pipe.len()).max(1)];
    while !pipe.is_empty() {
        let n = pipe.read_errno(&mut buf)?;
        write_all(job, &buf[..n])?;
    }
    Ok(())
}

/// Bytes [`read_past_mark`] reads at most in one go.
const MARK_CHUNK: usize = 16 * 1024;

/// What [`read_past_mark`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadPastMark {
    /// End of file: the splice's 0 was the real one.
    EndOfFile,
    /// Bytes read and written to the destination; splicing may go on.
    Moved,
    /// Nothing to read yet (the urgent byte, if any, was skipped); the
    /// source was waited for.
    Waited,
}

/// One `read(2)` from a socket whose splice answered 0 (or `EAGAIN` while
/// `poll` said readable), written out in full. A TCP splice stops at the
/// urgent mark and never moves past it, answering as at the end of file;
/// `read` skips the urgent byte (not inline without `SO_OOBINLINE`) and
/// tells the truth. At most [`MARK_CHUNK`] bytes go through memory; the
/// splice takes over again after them.
pub(super) fn read_past_mark(job: &mut Job<'_>) -> io::Result<ReadPastMark> {
    let mut buf = [0u8; MARK_CHUNK];
    let len = job.next_len(buf.len());
    match sys::read_errno(job.src, &mut buf[..len]) {
        Ok(0) => Ok(ReadPastMark::EndOfFile),
        Ok(n) => {
            job.consumed(n);
            write_all(job, &buf[..n])?;
            Ok(ReadPastMark::Moved)
        }
        Err(e) => {
            wait_if_would_block(e, job.src, Wait::Readable)?;
            Ok(ReadPastMark::Waited)
        }
    }
}

fn write_all(job: &mut Job<'_>, mut data: &[u8]) -> io::Result<()> {
    let dst: BorrowedFd<'_> = job.dst;
    while !data.is_empty() {
        match sys::write_errno(dst, data) {
            Ok(0) => return Err(write_zero()),
            Ok(n) => {
                job.delivered(n);
                data = &data[n..];
            }
            Err(e) => wait_if_would_block(e, dst, Wait::Writable)?,
        }
    }
    Ok(())
}
