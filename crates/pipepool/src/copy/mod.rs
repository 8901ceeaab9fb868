//! Synchronous zero-copy copy between any two fds: [`copy()`], [`copy_n`],
//! and the [`Copier`] that configures them.
//!
//! The method is chosen from what the two fds are (`fstat`):
//!
//! | source \ destination | file | pipe | socket or other |
//! |---|---|---|---|
//! | file   | `copy_file_range`, then `sendfile` | `sendfile` | `sendfile` |
//! | pipe   | `splice` (direct) | `splice` (direct) | `splice` (direct) |
//! | socket or other | `splice` through a pooled pipe | `splice` (direct) | `splice` through a pooled pipe |
//!
//! When the kernel refuses a method for this pair (`EINVAL`, `ENOSYS`,
//! `EBADF`, `EXDEV`, `EOPNOTSUPP`) the next one in line is tried, and last a
//! buffered `read`/`write` loop. The switch only happens at a point where no
//! byte is in flight (a pooled pipe that still holds bytes when the
//! destination refuses a splice is drained through memory first), so a
//! fallback never loses or repeats a byte. When the pool is at its bound the
//! copy goes through memory for that call.
//!
//! Blocking and non-blocking fds both work: on `EAGAIN` the copy waits with
//! `poll(2)`. A blocking socket spliced straight into a pipe is waited for
//! with `poll` first (its splice would sleep holding the pipe's lock, so
//! that the pipe's reader could not take what is already in it).
//!
//! TCP urgent data: a splice from a TCP socket stops at the urgent mark
//! (answering 0 on a blocking socket or with the FIN in, `EAGAIN` with
//! `poll` still saying readable otherwise). A splice 0 from a socket is
//! checked with one `read(2)` before it counts as end of file, and an
//! `EAGAIN` right after `poll` said readable reads past the mark; `read`
//! skips the urgent byte (not inline without `SO_OOBINLINE`), as
//! `std::io::copy` does. At most 16 KiB per mark go through memory. The sync copy holds its pooled pipe for the duration of the
//! call.

mod buffered;
mod kernel;
mod method;
mod splice;
mod to_file;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

pub(crate) use method::write_zero;
pub use method::{CopyError, Method, Transfer};
pub use to_file::ToFile;
#[cfg(feature = "tokio")]
pub(crate) use to_file::{Fill, Step};

use crate::sys::{self, FdKind};
use crate::PipePool;

/// Default size of the fallback buffer: 64 KiB.
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;

/// Copies everything from `src` to `dst` until end of file, without going
/// through user space where the kernel allows: like [`std::io::copy`], for
/// any two fds (sockets, pipes, files), using the [global pool](PipePool::global).
///
/// Returns the number of bytes written to `dst`.
///
/// ```
/// use std::io::{Seek, Write};
/// # fn main() -> std::io::Result<()> {
/// let mut src = tempfile::tempfile()?;
/// src.write_all(&vec![7u8; 100_000])?;
/// src.rewind()?;
/// let dst = tempfile::tempfile()?;
/// assert_eq!(pipepool::copy(&src, &dst)?, 100_000);
/// # Ok(()) }
/// ```
///
/// # Errors
/// The first error of `src` or `dst` that no fallback can get around, as a
/// [`CopyError`] carrying the bytes already written
/// ([`CopyError::transfer`]). It converts into [`io::Error`] with `?`.
pub fn copy(src: impl AsFd, dst: impl AsFd) -> Result<u64, CopyError> {
    Copier::new().copy(src, dst).map(|t| t.bytes)
}

/// Copies at most `limit` bytes from `src` to `dst` (fewer at end of file),
/// as [`copy()`] does. Bytes past `limit` are not consumed from `src`.
///
/// # Errors
/// As [`copy()`].
pub fn copy_n(src: impl AsFd, dst: impl AsFd, limit: u64) -> Result<u64, CopyError> {
    Copier::new().limit(limit).copy(src, dst).map(|t| t.bytes)
}

/// A configured copy: which pool, how many bytes at most, whether to use
/// zero-copy at all.
///
/// ```
/// use pipepool::{Copier, Method, PoolConfig};
/// use std::io::{Seek, Write};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PoolConfig::builder().max_pipes(4).build()?;
/// let mut src = tempfile::tempfile()?;
/// src.write_all(b"hello, world")?;
/// src.rewind()?;
/// let (reader, writer) = std::io::pipe()?;
/// let t = Copier::new().pool(pool.clone()).limit(5).copy(&src, &writer)?;
/// assert_eq!(t.bytes, 5);
/// assert_eq!(t.method, Method::Sendfile);
/// # drop(reader);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Copier {
    /// The pool to take pipes from; `None`: the global one.
    pool: Option<PipePool>,
    limit: Option<u64>,
    zero_copy: bool,
    buffer_size: usize,
}

impl Default for Copier {
    fn default() -> Self {
        Copier {
            pool: None,
            limit: None,
            zero_copy: true,
            buffer_size: DEFAULT_BUFFER_SIZE,
        }
    }
}

impl Copier {
    /// A copier with the global pool, no limit, zero-copy on.
    pub fn new() -> Copier {
        Copier::default()
    }

    /// Takes pipes from `pool` (a handle: pass `pool.clone()` to keep
    /// yours) instead of the global one.
    pub fn pool(mut self, pool: PipePool) -> Copier {
        self.pool = Some(pool);
        self
    }

    /// Copies at most `bytes`.
    pub fn limit(mut self, bytes: u64) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// `false` forces the buffered `read`/`write` path (for comparison and
    /// testing). Default `true`.
    pub fn zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// The size of the fallback buffer. Default [`DEFAULT_BUFFER_SIZE`].
    ///
    /// # Panics
    /// If `bytes` is 0.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "Copier::buffer_size must be at least 1 byte");
        self.buffer_size = bytes;
        self
    }

    /// The pool pipes come from: the one given, else the global one.
    fn pool_or_global(&self) -> &PipePool {
        self.pool.as_ref().unwrap_or_else(|| PipePool::global())
    }

    /// Runs the copy from `src` to `dst`.
    ///
    /// # Errors
    /// As [`copy()`].
    pub fn copy(&self, src: impl AsFd, dst: impl AsFd) -> Result<Transfer, CopyError> {
        let mut job = Job {
            src: src.as_fd(),
            dst: dst.as_fd(),
            src_is_socket: false,
            remaining: self.limit,
            copied: 0,
        };
        let plan = if self.zero_copy {
            let kinds = sys::fd_kind(job.src).and_then(|s| Ok((s, sys::fd_kind(job.dst)?)));
            let (s, d) = kinds.map_err(|e| CopyError::new(0, Method::Userspace, e.into()))?;
            job.src_is_socket = s == FdKind::Socket;
            plan(s, d)
        } else {
            &[]
        };
        for &step in plan {
            let result = match step {
                Attempt::CopyFileRange => kernel::copy_file_range(&mut job),
                Attempt::Sendfile => kernel::sendfile(&mut job),
                Attempt::SpliceDirect => splice::direct(&mut job),
                Attempt::SplicePooled => {
                    splice::pooled(&mut job, self.pool_or_global(), self.buffer_size)
                }
            };
            let method = step.method();
            match result {
                Ok(AttemptEnd::Done) => {
                    return Ok(Transfer {
                        bytes: job.copied,
                        method,
                    })
                }
                Ok(AttemptEnd::Unsupported) => continue,
                Ok(AttemptEnd::Userspace) => break,
                Err(e) => return Err(CopyError::new(job.copied, method, e)),
            }
        }
        match buffered::copy(&mut job, self.buffer_size) {
            Ok(()) => Ok(Transfer {
                bytes: job.copied,
                method: Method::Userspace,
            }),
            Err(e) => Err(CopyError::new(job.copied, Method::Userspace, e)),
        }
    }
}

/// One zero-copy attempt of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    CopyFileRange,
    Sendfile,
    /// `splice` between the two fds (one of them is a pipe).
    SpliceDirect,
    /// `splice` in and out of a pipe from the pool.
    SplicePooled,
}

impl Attempt {
    fn method(self) -> Method {
        match self {
            Attempt::CopyFileRange => Method::CopyFileRange,
            Attempt::Sendfile => Method::Sendfile,
            Attempt::SpliceDirect | Attempt::SplicePooled => Method::Splice,
        }
    }
}

/// The zero-copy methods to try, in order, for a (source, destination)
/// pair; the buffered copy always comes last.
fn plan(src: FdKind, dst: FdKind) -> &'static [Attempt] {
    use FdKind::*;
    match (src, dst) {
        (File, File) => &[
            Attempt::CopyFileRange,
            Attempt::Sendfile,
            Attempt::SplicePooled,
        ],
        (File, _) => &[Attempt::Sendfile, Attempt::SpliceDirect],
        (Pipe, _) | (_, Pipe) => &[Attempt::SpliceDirect],
        _ => &[Attempt::SplicePooled],
    }
}

/// How an attempt ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptEnd {
    /// End of file or limit reached.
    Done,
    /// The kernel refused this method while no byte was in flight: try the
    /// next one.
    Unsupported,
    /// Go straight to the buffered copy (no pipe to be had from the pool,
    /// or the destination refused splice after bytes moved).
    Userspace,
}

/// The state of one copy, shared by the attempts so that counts carry over
/// a fallback.
#[derive(Debug)]
struct Job<'a> {
    src: BorrowedFd<'a>,
    dst: BorrowedFd<'a>,
    /// `src` is a socket: a splice from it stops at a TCP urgent mark, and
    /// its 0 is checked with a `read` before it counts as end of file.
    src_is_socket: bool,
    /// Bytes still allowed, if there is a limit.
    remaining: Option<u64>,
    /// Bytes written to `dst` so far.
    copied: u64,
}

impl Job<'_> {
    /// How many bytes the next call may move: `chunk`, capped by the limit.
    fn next_len(&self, chunk: usize) -> usize {
        match self.remaining {
            Some(r) => usize::try_from(r).unwrap_or(usize::MAX).min(chunk),
            None => chunk,
        }
    }

    /// Records `n` bytes read from `src` (they count against the limit).
    fn consumed(&mut self, n: usize) {
        if let Some(r) = &mut self.remaining {
            *r -= n as u64;
        }
    }

    /// Records `n` bytes written to `dst`.
    fn delivered(&mut self, n: usize) {
        self.copied += n as u64;
    }

    fn limit_reached(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// Waits with `poll` when `err` is `EAGAIN`; returns the error otherwise.
fn wait_if_would_block(err: sys::Errno, fd: BorrowedFd<'_>, what: sys::Wait) -> io::Result<()> {
    if err == sys::Errno::AGAIN {
        Ok(sys::wait(fd, what)?)
    } else {
        Err(err.into())
    }
}
