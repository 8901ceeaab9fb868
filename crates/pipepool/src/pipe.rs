//! [`Pipe`]: an owned kernel pipe that knows its real capacity and exactly
//! how many bytes it holds.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::sys;

/// The pipe size the pools ask for unless told otherwise: 1 MiB, like Go
/// (and the default `/proc/sys/fs/pipe-max-size`, so unprivileged processes
/// get it too while under `pipe-user-pages-soft`).
pub const DEFAULT_PIPE_SIZE: usize = 1 << 20;

/// An owned pipe used as the kernel-side buffer of a splice.
///
/// Created with `pipe2(O_CLOEXEC | O_NONBLOCK)`. The pipe counts the bytes
/// that go in and out through its own methods, so [`len`](Pipe::len) is exact
/// and a [`PipePool`](crate::PipePool) can tell a clean pipe from one that
/// still holds somebody's data. The fds are not handed out as `BorrowedFd`
/// for that reason: data moved behind the pipe's back would break the count.
///
/// Both fds are closed on drop.
///
/// # Example
/// ```
/// use pipepool::Pipe;
/// # fn main() -> std::io::Result<()> {
/// let mut pipe = Pipe::with_size(64 * 1024)?;
/// assert!(pipe.capacity() >= 4096); // the real size, whatever was granted
/// pipe.write(b"hello")?;
/// assert_eq!(pipe.len(), 5);
/// let mut buf = [0u8; 5];
/// pipe.read(&mut buf)?;
/// assert!(pipe.is_empty());
/// # Ok(()) }
/// ```
pub struct Pipe {
    /// Read end. `O_NONBLOCK | O_CLOEXEC`.
    read: OwnedFd,
    /// Write end. `O_NONBLOCK | O_CLOEXEC`.
    write: OwnedFd,
    /// What the kernel reported as the pipe's size: the result of
    /// `F_SETPIPE_SZ`, or of `F_GETPIPE_SZ` when the resize was refused.
    /// Never the size that was asked for. The pipe may briefly hold more
    /// (GRO can overfill it), so `len <= capacity` is *not* an invariant.
    capacity: usize,
    /// Bytes written into the pipe minus bytes taken out, through this
    /// type's methods: exactly what the pipe holds.
    len: usize,
    /// Whether the pipe got the size it asked for.
    resized: bool,
}

impl Pipe {
    /// `pipe2(O_CLOEXEC | O_NONBLOCK)` then `fcntl(F_SETPIPE_SZ, size)`.
    ///
    /// A refused resize is not an error: past `/proc/sys/fs/pipe-max-size`
    /// or `pipe-user-pages-soft` (unprivileged users only) the kernel answers
    /// `EPERM`, and the pipe is used at the size it has, which
    /// [`capacity`](Pipe::capacity) reports (after the soft limit, new pipes
    /// have one page, or two since Linux 5.14). [`got_requested_size`](Pipe::got_requested_size) tells
    /// which case happened.
    ///
    /// # Errors
    /// What `pipe2` returns: `EMFILE`/`ENFILE` when out of fds, `ENOMEM`.
    pub fn with_size(size: usize) -> io::Result<Pipe> {
        let (read, write) = sys::pipe()?;
        let (capacity, resized) = match sys::set_pipe_size(&write, size) {
            Ok(real) => (real, true),
            Err(_) => (sys::pipe_size(&write)?, false),
        };
        Ok(Pipe {
            read,
            write,
            capacity,
            len: 0,
            resized,
        })
    }

    /// A pipe of the [default size](DEFAULT_PIPE_SIZE).
    ///
    /// # Errors
    /// As [`with_size`](Pipe::with_size).
    pub fn new() -> io::Result<Pipe> {
        Pipe::with_size(DEFAULT_PIPE_SIZE)
    }

    /// The pipe's real size in bytes, as the kernel reported it.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `F_SETPIPE_SZ` granted the requested size.
    pub fn got_requested_size(&self) -> bool {
        self.resized
    }

    /// How many bytes the pipe holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the pipe holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw fd numbers (read end, write end), for inspection (`fcntl`,
    /// `/proc/self/fdinfo`). Writing through them breaks [`len`](Pipe::len),
    /// which is why no safe handle to them is offered.
    pub fn raw_fds(&self) -> (RawFd, RawFd) {
        (self.read.as_raw_fd(), self.write.as_raw_fd())
    }

    /// `splice(src, NULL, pipe, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`
    /// — move up to `max` bytes from `src` into the pipe.
    ///
    /// The length passed is `min(max, capacity)`, never `usize::MAX`. Returns
    /// the bytes moved; `Ok(0)` means end of file on `src` (when `max > 0`).
    /// A file `src` is read at its file offset, which advances.
    ///
    /// # Errors
    /// - `WouldBlock` (`EAGAIN`): `src` has nothing to read (if it is
    ///   non-blocking), *or* the pipe is full. Splice only into an empty pipe
    ///   to know which.
    /// - `EINVAL`: this `src` cannot be spliced (no `splice_read`, kTLS
    ///   control records, ...): use an ordinary copy instead.
    /// - any error of `src`'s read (`ECONNRESET`, ...).
    ///
    /// See [splice(2)](https://man7.org/linux/man-pages/man2/splice.2.html).
    pub fn splice_from(&mut self, src: impl AsFd, max: usize) -> io::Result<usize> {
        Ok(self.splice_from_errno(src, max)?)
    }

    /// [`splice_from`](Pipe::splice_from) with the typed errno, for the
    /// crate's own copy loops.
    pub(crate) fn splice_from_errno(&mut self, src: impl AsFd, max: usize) -> sys::Result<usize> {
        let n = sys::splice(src, &self.write, max.min(self.capacity))?;
        self.len += n;
        Ok(n)
    }

    /// `splice(pipe, NULL, dst, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`
    /// — move up to `max` of the bytes the pipe holds into `dst`.
    ///
    /// Returns the bytes moved (`Ok(0)` when the pipe is empty or `max` is 0).
    ///
    /// # Errors
    /// - `WouldBlock` (`EAGAIN`): `dst` is non-blocking and full.
    /// - `EINVAL`: `dst` cannot take a splice (for example opened `O_APPEND`).
    /// - any error of `dst`'s write (`EPIPE`, `ECONNRESET`, ...).
    pub fn splice_to(&mut self, dst: impl AsFd, max: usize) -> io::Result<usize> {
        Ok(self.splice_to_errno(dst, max)?)
    }

    /// [`splice_to`](Pipe::splice_to) with the typed errno, for the crate's
    /// own copy loops.
    pub(crate) fn splice_to_errno(&mut self, dst: impl AsFd, max: usize) -> sys::Result<usize> {
        let len = max.min(self.len);
        if len == 0 {
            return Ok(0);
        }
        let n = sys::splice(&self.read, dst, len)?;
        self.len -= n;
        Ok(n)
    }

    /// [`splice_to`](Pipe::splice_to) into a file at `*offset` (which
    /// advances by the bytes moved), leaving the file's own offset alone.
    pub(crate) fn splice_to_at(
        &mut self,
        dst: impl AsFd,
        offset: &mut u64,
        max: usize,
    ) -> sys::Result<usize> {
        let len = max.min(self.len);
        if len == 0 {
            return Ok(0);
        }
        let n = sys::splice_at(&self.read, dst, offset, len)?;
        self.len -= n;
        Ok(n)
    }

    /// `tee(self, other, max)`: duplicates up to `max` of the bytes this
    /// pipe holds into `other`, consuming none of them here. Returns the
    /// bytes duplicated (the first ones this pipe holds; fewer when `other`
    /// has less room).
    pub(crate) fn tee_to(&mut self, other: &mut Pipe, max: usize) -> sys::Result<usize> {
        let len = max.min(self.len);
        if len == 0 {
            return Ok(0);
        }
        let n = sys::tee(&self.read, &other.write, len)?;
        other.len += n;
        Ok(n)
    }

    /// `write(pipe, buf)`: copy bytes from memory into the pipe.
    ///
    /// # Errors
    /// `WouldBlock` when the pipe is full.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = sys::write_errno(&self.write, buf)?;
        self.len += n;
        Ok(n)
    }

    /// `read(pipe, buf)`: copy bytes out of the pipe into memory.
    ///
    /// Returns the bytes copied: at most `buf.len()` and at most
    /// [`len`](Pipe::len). `Ok(0)` when the pipe is empty or `buf` is
    /// (without a syscall: the pipe knows what it holds, so an empty pipe
    /// never blocks nor fails with `WouldBlock`).
    ///
    /// # Errors
    /// What `read(2)` returns on a pipe that holds bytes, which in practice
    /// is nothing.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_errno(buf)?)
    }

    /// [`read`](Pipe::read) with the typed errno, for the crate's own copy
    /// loops.
    pub(crate) fn read_errno(&mut self, buf: &mut [u8]) -> sys::Result<usize> {
        if self.len == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = sys::read_errno(&self.read, buf)?;
        self.len -= n;
        Ok(n)
    }

    /// `ioctl(FIONREAD)`: what the kernel says the pipe holds. Equal to
    /// [`len`](Pipe::len); for tests and assertions.
    ///
    /// # Errors
    /// Only if the ioctl fails, which it does not on a live pipe.
    pub fn kernel_len(&self) -> io::Result<usize> {
        Ok(sys::bytes_readable(&self.read)?)
    }
}

/// Mutable access to a pipe, for the crate's own copy loops: from a
/// [`Pipe`], or from a pool's guard, which gives its users no `&mut Pipe`
/// (so a pooled pipe cannot be swapped out of its guard) but lets the
/// crate's own code, which swaps nothing, pass its pipe on.
pub(crate) trait PipeMut {
    fn pipe_mut(&mut self) -> &mut Pipe;
}

impl PipeMut for Pipe {
    fn pipe_mut(&mut self) -> &mut Pipe {
        self
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("read", &self.read.as_raw_fd())
            .field("write", &self.write.as_raw_fd())
            .field("capacity", &self.capacity)
            .field("len", &self.len)
            .finish()
    }
}
