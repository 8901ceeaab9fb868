//! The in-kernel file copies: `copy_file_range(2)` between files and
//! `sendfile(2)` from a file to anything.

use std::io;
use std::os::fd::BorrowedFd;

use super::{wait_if_would_block, AttemptEnd, Job};
use crate::sys::{self, Wait};

/// Largest length passed to one call (the kernel caps a call at
/// `0x7ffff000` bytes anyway).
const CHUNK: usize = 1 << 30;

/// `copy_file_range` until end of file or the limit.
pub(super) fn copy_file_range(job: &mut Job<'_>) -> io::Result<AttemptEnd> {
    run(job, |src, dst, len| sys::copy_file_range(src, dst, len))
}

/// `sendfile` until end of file or the limit.
pub(super) fn sendfile(job: &mut Job<'_>) -> io::Result<AttemptEnd> {
    run(job, |src, dst, len| sys::sendfile(dst, src, len))
}

/// Calls `op(src, dst, len)` until it returns 0 or the limit is reached.
/// Both syscalls read and write in one step, so nothing is in flight
/// between calls and a refusal (or a 0) on the first call is a clean
/// fallback.
fn run(
    job: &mut Job<'_>,
    op: impl Fn(BorrowedFd<'_>, BorrowedFd<'_>, usize) -> sys::Result<usize>,
) -> io::Result<AttemptEnd> {
    let mut first = true;
    while !job.limit_reached() {
        match op(job.src, job.dst, job.next_len(CHUNK)) {
            // procfs and sysfs files report size 0 and these calls return
            // 0 for them: let a method that reads like `read` decide.
            Ok(0) if first => return Ok(AttemptEnd::Unsupported),
            Ok(0) => break,
            Ok(n) => {
                job.consumed(n);
                job.delivered(n);
            }
            Err(e) if first && sys::is_unsupported_errno(e) => return Ok(AttemptEnd::Unsupported),
            // A file source never blocks: EAGAIN is the destination.
            Err(e) => wait_if_would_block(e, job.dst, Wait::Writable)?,
        }
        first = false;
    }
    Ok(AttemptEnd::Done)
}
