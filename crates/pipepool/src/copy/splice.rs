//! The splice loops: through a pooled pipe (neither side is a pipe), or
//! directly (one side is a pipe).

use std::io;

use super::buffered::{self, ReadPastMark};
use super::{wait_if_would_block, write_zero, AttemptEnd, Job};
use crate::sys::{self, Errno, Wait};
use crate::PipePool;

/// Largest length of one direct splice.
const DIRECT_CHUNK: usize = 1 << 20;

/// `src -> pooled pipe -> dst`.
///
/// Reads into the pipe only when it is empty, so `EAGAIN` on the way in
/// means "the source has nothing", and on the way out "the destination is
/// full"; each is waited for with `poll`. If the destination refuses splice
/// while the pipe holds bytes, those bytes are written out through memory
/// and the rest of the copy is buffered. If any other error leaves bytes in
/// the pipe, the pipe goes back to the pool dirty, which closes it.
pub(super) fn pooled(
    job: &mut Job<'_>,
    pool: &PipePool,
    buf_size: usize,
) -> io::Result<AttemptEnd> {
    let Ok(mut pipe) = pool.get() else {
        return Ok(AttemptEnd::Userspace);
    };
    let mut first_in = true;
    let mut first_out = true;
    // The last splice in answered `EAGAIN` and `poll` then said readable.
    let mut waited = false;
    while !job.limit_reached() {
        debug_assert!(pipe.is_empty());
        let want = job.next_len(pipe.capacity());
        match pipe.splice_from_errno(job.src, want) {
            // End of file, or a socket's urgent mark (with the FIN behind
            // it, or on a blocking socket): a read tells.
            Ok(0) if job.src_is_socket => match buffered::read_past_mark(job)? {
                ReadPastMark::EndOfFile => break,
                _ => continue,
            },
            Ok(0) => break,
            Ok(n) => job.consumed(n),
            Err(e) if first_in && sys::is_unsupported_errno(e) => {
                return Ok(AttemptEnd::Unsupported)
            }
            // Readable, yet nothing to splice: the urgent mark.
            Err(Errno::AGAIN) if waited && job.src_is_socket => {
                waited = buffered::read_past_mark(job)? == ReadPastMark::Waited;
                continue;
            }
            Err(e) => {
                wait_if_would_block(e, job.src, Wait::Readable)?;
                waited = true;
                continue;
            }
        }
        waited = false;
        first_in = false;
        while !pipe.is_empty() {
            match pipe.splice_to_errno(job.dst, usize::MAX) {
                Ok(0) => return Err(write_zero()),
                Ok(n) => job.delivered(n),
                Err(e) if first_out && sys::is_unsupported_errno(e) => {
                    // The destination takes no splice: deliver what the pipe
                    // holds through memory, then copy the rest that way.
                    buffered::drain_pipe(job, &mut pipe, buf_size)?;
                    return Ok(AttemptEnd::Userspace);
                }
                Err(e) => wait_if_would_block(e, job.dst, Wait::Writable)?,
            }
            first_out = false;
        }
    }
    Ok(AttemptEnd::Done)
}

/// `src -> dst` in one splice per chunk, one of them being a pipe. Nothing
/// is ever in flight between calls.
///
/// `EAGAIN` is ambiguous here (source empty, or destination full), so the
/// copy waits until the source is readable *and* the destination writable.
pub(super) fn direct(job: &mut Job<'_>) -> io::Result<AttemptEnd> {
    let mut first = true;
    // The last splice answered `EAGAIN` and `poll` then said ready.
    let mut waited = false;
    // A splice from a blocking socket into a pipe waits for data holding
    // the pipe's lock, so that the pipe's reader cannot take the bytes
    // already in it: a deadlock when the sender waits for the reader. Such
    // a source is waited for with `poll` first; the splice then never
    // sleeps.
    let blocking_socket = job.src_is_socket && !sys::is_nonblocking(job.src)?;
    while !job.limit_reached() {
        if blocking_socket {
            sys::wait(job.src, Wait::Readable)?;
        }
        match sys::splice(job.src, job.dst, job.next_len(DIRECT_CHUNK)) {
            // End of file, or a socket's urgent mark: a read tells.
            Ok(0) if job.src_is_socket => match buffered::read_past_mark(job)? {
                ReadPastMark::EndOfFile => break,
                _ => continue,
            },
            Ok(0) => break,
            Ok(n) => {
                job.consumed(n);
                job.delivered(n);
                waited = false;
            }
            Err(e) if first && sys::is_unsupported_errno(e) => return Ok(AttemptEnd::Unsupported),
            // Both ready, yet nothing moves: the source's urgent mark.
            Err(Errno::AGAIN) if waited && job.src_is_socket => {
                waited = buffered::read_past_mark(job)? == ReadPastMark::Waited;
            }
            Err(Errno::AGAIN) => {
                sys::wait(job.src, Wait::Readable)?;
                sys::wait(job.dst, Wait::Writable)?;
                waited = true;
            }
            Err(e) => return Err(e.into()),
        }
        first = false;
    }
    Ok(AttemptEnd::Done)
}
