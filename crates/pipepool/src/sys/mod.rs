//! The one module that talks to the kernel.
//!
//! Every syscall the crate makes goes through a function here. They are thin,
//! safe wrappers over [`rustix`] that
//!
//! - retry `EINTR` in one place ([`retry_on_intr`]),
//! - fix the flags the rest of the crate relies on (`O_CLOEXEC | O_NONBLOCK`
//!   on pipes, `SPLICE_F_MOVE | SPLICE_F_NONBLOCK` on every splice, never
//!   `SPLICE_F_MORE`),
//! - and return [`rustix::io::Result`]: the [`Errno`] stays typed inside the
//!   crate (callers match `Errno::AGAIN`, `Errno::INVAL`, ... directly) and
//!   becomes an `io::Error` only at the public boundary (`?` converts).
//!
//! The tokio glue still takes `io::Error` from `read`, `write`, `peek_byte`
//! and `is_unsupported`; the rest of the crate uses the typed `read_errno`,
//! `write_errno` and `is_unsupported_errno` beside them.
//!
//! Everything in this file is safe Rust because rustix already is, except
//! [`at_fork`]: rustix does not wrap `pthread_atfork`, so it calls libc in
//! one `unsafe` block. The crate's other `unsafe` is in `tokio/cast.rs`
//! (type detection for the tokio glue), `pool/local.rs` and `pool/cell.rs`
//! (the thread caches) and `pool/fork.rs` (the fork handlers), each block
//! with its `SAFETY`.

#![cfg_attr(pipepool_loom, allow(dead_code))] // the loom build uses none of the syscalls

use std::os::fd::{AsFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::FileType;
pub(crate) use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

/// What every wrapper here returns: the value, or the typed [`Errno`].
pub(crate) type Result<T> = rustix::io::Result<T>;

/// Runs `f` until it returns something other than `EINTR`.
pub(crate) fn retry_on_intr<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `pipe2(O_CLOEXEC | O_NONBLOCK)`: a new pipe, returned as (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    retry_on_intr(|| rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK))
}

/// `fcntl(fd, F_SETPIPE_SZ, size)`: returns the size the kernel really set
/// (a power of two number of pages, at least `size`).
pub(crate) fn set_pipe_size(fd: impl AsFd, size: usize) -> Result<usize> {
    retry_on_intr(|| rustix::pipe::fcntl_setpipe_size(fd.as_fd(), size))
}

/// `fcntl(fd, F_GETPIPE_SZ)`: the pipe's current capacity in bytes.
pub(crate) fn pipe_size(fd: impl AsFd) -> Result<usize> {
    retry_on_intr(|| rustix::pipe::fcntl_getpipe_size(fd.as_fd()))
}

/// `splice(fd_in, NULL, fd_out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`.
///
/// File offsets, where a side is a file, are the fds' own. Never passes
/// `SPLICE_F_MORE` (it acts like `TCP_CORK` and stalls small exchanges).
pub(crate) fn splice(fd_in: impl AsFd, fd_out: impl AsFd, len: usize) -> Result<usize> {
    retry_on_intr(|| {
        rustix::pipe::splice(
            fd_in.as_fd(),
            None,
            fd_out.as_fd(),
            None,
            len,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )
    })
}

/// `sendfile(out_fd, in_fd, NULL, count)`, from the input's file offset.
pub(crate) fn sendfile(out_fd: impl AsFd, in_fd: impl AsFd, count: usize) -> Result<usize> {
    retry_on_intr(|| rustix::fs::sendfile(out_fd.as_fd(), in_fd.as_fd(), None, count))
}

/// `sendfile(out_fd, in_fd, &offset, count)`: from `in_fd` at `*offset`,
/// which advances by the bytes sent; `in_fd`'s own file offset is left alone
/// (so one file may serve many sends at once).
#[cfg(all(feature = "tokio", not(pipepool_loom)))]
pub(crate) fn sendfile_at(
    out_fd: impl AsFd,
    in_fd: impl AsFd,
    offset: &mut u64,
    count: usize,
) -> Result<usize> {
    retry_on_intr(|| rustix::fs::sendfile(out_fd.as_fd(), in_fd.as_fd(), Some(&mut *offset), count))
}

/// `splice(fd_in, NULL, fd_out, &offset, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`:
/// into a file at `*offset`, which advances; `fd_out`'s own file offset is
/// left alone.
pub(crate) fn splice_at(
    fd_in: impl AsFd,
    fd_out: impl AsFd,
    offset: &mut u64,
    len: usize,
) -> Result<usize> {
    retry_on_intr(|| {
        rustix::pipe::splice(
            fd_in.as_fd(),
            None,
            fd_out.as_fd(),
            Some(&mut *offset),
            len,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )
    })
}

/// `tee(fd_in, fd_out, len, SPLICE_F_NONBLOCK)`: duplicate up to `len` bytes
/// of one pipe into another without consuming them.
pub(crate) fn tee(fd_in: impl AsFd, fd_out: impl AsFd, len: usize) -> Result<usize> {
    retry_on_intr(|| rustix::pipe::tee(fd_in.as_fd(), fd_out.as_fd(), len, SpliceFlags::NONBLOCK))
}

/// `pread(fd, buf, offset)`.
#[cfg(all(feature = "tokio", not(pipepool_loom)))]
pub(crate) fn pread(fd: impl AsFd, buf: &mut [u8], offset: u64) -> Result<usize> {
    retry_on_intr(|| rustix::io::pread(fd.as_fd(), &mut *buf, offset))
}

/// `pwrite(fd, buf, offset)`.
pub(crate) fn pwrite(fd: impl AsFd, buf: &[u8], offset: u64) -> Result<usize> {
    retry_on_intr(|| rustix::io::pwrite(fd.as_fd(), buf, offset))
}

/// `copy_file_range(fd_in, NULL, fd_out, NULL, len, 0)`, at both file offsets.
pub(crate) fn copy_file_range(fd_in: impl AsFd, fd_out: impl AsFd, len: usize) -> Result<usize> {
    retry_on_intr(|| rustix::fs::copy_file_range(fd_in.as_fd(), None, fd_out.as_fd(), None, len))
}

/// `read(fd, buf)`.
pub(crate) fn read_errno(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    retry_on_intr(|| rustix::io::read(fd.as_fd(), &mut *buf))
}

/// `write(fd, buf)`.
pub(crate) fn write_errno(fd: impl AsFd, buf: &[u8]) -> Result<usize> {
    retry_on_intr(|| rustix::io::write(fd.as_fd(), buf))
}

/// [`read_errno`] as an `io::Result`, for the tokio glue (`try_io`).
#[cfg(all(feature = "tokio", not(pipepool_loom)))]
pub(crate) fn read(fd: impl AsFd, buf: &mut [u8]) -> std::io::Result<usize> {
    Ok(read_errno(fd, buf)?)
}

/// [`write_errno`] as an `io::Result`, for the tokio glue.
#[cfg(all(feature = "tokio", not(pipepool_loom)))]
pub(crate) fn write(fd: impl AsFd, buf: &[u8]) -> std::io::Result<usize> {
    Ok(write_errno(fd, buf)?)
}

/// `recv(fd, buf, 1, MSG_PEEK | MSG_DONTWAIT)`: whether a socket has a byte
/// to read (`Ok(Some(1))`), is at end of file (`Ok(Some(0))`), or has
/// nothing yet (`WouldBlock`), without taking anything. `Ok(None)` when `fd`
/// is not a socket (`ENOTSOCK`): nothing can be told that way.
#[cfg(all(feature = "tokio", not(pipepool_loom)))]
pub(crate) fn peek_byte(fd: impl AsFd) -> std::io::Result<Option<usize>> {
    use rustix::net::RecvFlags;
    let mut byte = [0u8; 1];
    let peeked = retry_on_intr(|| {
        rustix::net::recv(fd.as_fd(), &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT)
    });
    match peeked {
        Ok((n, _)) => Ok(Some(n)),
        Err(Errno::NOTSOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `getsockopt(fd, SOL_SOCKET, SO_PROTOCOL)` — whether `fd` is a TCP
/// socket (whose splice stops at an urgent mark). `false` for anything
/// that is not a socket.
#[cfg(feature = "tokio")]
pub(crate) fn is_tcp(fd: impl AsFd) -> bool {
    matches!(
        rustix::net::sockopt::socket_protocol(fd),
        Ok(Some(p)) if p == rustix::net::ipproto::TCP
    )
}

/// `shutdown(fd, SHUT_WR)` — end of file for the peer of a socket. An fd
/// that is no socket (a pipe, a device) has nothing to shut down: `Ok`.
#[cfg(feature = "tokio")]
pub(crate) fn shutdown_write(fd: impl AsFd) -> std::io::Result<()> {
    match rustix::net::shutdown(fd, rustix::net::Shutdown::Write) {
        Ok(()) | Err(Errno::NOTSOCK) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What an fd is, as far as choosing a copy strategy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A pipe or FIFO: splice works on it directly.
    Pipe,
    /// A regular file: sendfile and copy_file_range read from it.
    File,
    /// A socket.
    Socket,
    /// Anything else (character device, block device, ...).
    Other,
}

/// `fstat(fd)`, reduced to the [`FdKind`].
pub(crate) fn fd_kind(fd: impl AsFd) -> Result<FdKind> {
    let st = retry_on_intr(|| rustix::fs::fstat(fd.as_fd()))?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::Fifo => FdKind::Pipe,
        FileType::RegularFile => FdKind::File,
        FileType::Socket => FdKind::Socket,
        _ => FdKind::Other,
    })
}

/// Which readiness to wait for in [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `POLLIN`
    Readable,
    /// `POLLOUT`
    Writable,
}

/// `poll([{fd, events}], 1, -1)`: blocks until `fd` is ready (or reports
/// an error or hang-up condition, which the next I/O call then surfaces).
pub(crate) fn wait(fd: impl AsFd, what: Wait) -> Result<()> {
    let events = match what {
        Wait::Readable => PollFlags::IN,
        Wait::Writable => PollFlags::OUT,
    };
    let fd = fd.as_fd();
    retry_on_intr(|| {
        let mut fds = [PollFd::new(&fd, events)];
        rustix::event::poll(&mut fds, None)
    })?;
    Ok(())
}

/// `fcntl(fd, F_GETFL)`: whether `O_NONBLOCK` is set on the fd.
pub(crate) fn is_nonblocking(fd: impl AsFd) -> Result<bool> {
    let flags = retry_on_intr(|| rustix::fs::fcntl_getfl(fd.as_fd()))?;
    Ok(flags.contains(rustix::fs::OFlags::NONBLOCK))
}

/// `FIONREAD`: the bytes waiting to be read from `fd` (for a pipe, what it holds).
pub(crate) fn bytes_readable(fd: impl AsFd) -> Result<usize> {
    retry_on_intr(|| rustix::io::ioctl_fionread(fd.as_fd())).map(|n| n as usize)
}

/// `getrlimit(RLIMIT_NOFILE)`: the soft limit on open fds, if it has one.
pub(crate) fn fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Whether an errno means "this pair of fds cannot take this syscall":
/// `EINVAL`, `ENOSYS`, `EBADF`, `EXDEV`, `EOPNOTSUPP`. Before any byte has
/// moved, the caller may then fall back to another method.
pub(crate) fn is_unsupported_errno(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::INVAL | Errno::NOSYS | Errno::BADF | Errno::XDEV | Errno::OPNOTSUPP
    )
}

/// [`is_unsupported_errno`] for an `io::Error` (the tokio glue, whose
/// errors come through tokio's `io::Result`s).
#[cfg(all(feature = "tokio", not(pipepool_loom)))]
pub(crate) fn is_unsupported(err: &std::io::Error) -> bool {
    err.raw_os_error()
        .is_some_and(|raw| is_unsupported_errno(Errno::from_raw_os_error(raw)))
}

/// `membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)`, after checking
/// with `MEMBARRIER_CMD_QUERY` that the kernel has it — register this
/// process for [`membarrier_private_expedited`]. Idempotent.
///
/// # Errors
/// `ENOSYS`/`EINVAL` when the kernel (or a seccomp filter) lacks the
/// command. See [membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html).
pub(crate) fn membarrier_register() -> Result<()> {
    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand};
    if !membarrier_query().contains_command(MembarrierCommand::PrivateExpedited) {
        return Err(Errno::NOSYS);
    }
    membarrier(MembarrierCommand::RegisterPrivateExpedited)
}

/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` — when it returns, every
/// running thread of this process has executed a full memory barrier.
///
/// # Errors
/// `EPERM` when this process is not registered (a forked child must
/// register again), `ENOSYS`/`EINVAL` without kernel support.
pub(crate) fn membarrier_private_expedited() -> Result<()> {
    rustix::thread::membarrier(rustix::thread::MembarrierCommand::PrivateExpedited)
}

/// `pthread_atfork(prepare, parent, child)` — run `prepare` in the forking
/// thread before every `fork()`, `parent` after it in the parent, `child`
/// after it in the child.
///
/// # Errors
/// `ENOMEM`. See [pthread_atfork(3)](https://man7.org/linux/man-pages/man3/pthread_atfork.3.html).
#[allow(unsafe_code)]
pub(crate) fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> Result<()> {
    // SAFETY: the three are plain `extern "C" fn()`s that live for the
    // whole program (fn items), which is all `pthread_atfork` asks.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    match rc {
        0 => Ok(()),
        errno => Err(Errno::from_raw_os_error(errno)),
    }
}
