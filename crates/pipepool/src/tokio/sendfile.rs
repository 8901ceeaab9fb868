//! [`sendfile`] and [`sendfile_with`]: a byte range of a file to a tokio
//! socket with `sendfile(2)`, driven by the socket's write readiness.

use std::io;
use std::os::fd::AsFd;

use ::tokio::io::Interest;

use super::options::CopyOptions;
use super::progress::Side;
use super::socket::{when_ready, ReadyFd};
use crate::copy::write_zero;
use crate::sys;
use crate::{CopyError, Method, Transfer};

/// Largest count passed to one `sendfile` (the kernel caps a call at
/// `0x7ffff000` bytes anyway; a non-blocking socket takes what its send
/// buffer has room for).
const CHUNK: u64 = 1 << 30;

/// Sends up to `len` bytes of `file`, from `offset`, to `socket` with
/// `sendfile(2)`: the file's pages go to the socket without passing through
/// user space, and no thread blocks (the copy waits on the socket's write
/// readiness, as a `write` would). `len = u64::MAX` sends to the end of the
/// file. The file's own offset is neither used nor moved, so one `File`
/// (a `std::fs::File`, a `tokio::fs::File`, anything `AsFd`) may serve any
/// number of sends at once. Options: [`sendfile_with`].
///
/// Returns the bytes sent and the method: [`Method::Sendfile`], or
/// [`Method::Userspace`] where the kernel refused `sendfile` for this file
/// before any byte moved (`EINVAL`, `ENOSYS`, ...), or the file claimed no
/// bytes where it has some (procfs), and the range went through `pread`
/// and `write` instead. A file that ends before `offset + len`, or shrinks
/// (truncated) during the send, gives a short count: never a hang, never a
/// loop.
///
/// ```
/// use std::io::Write;
/// use tokio::io::AsyncReadExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut file = tempfile::tempfile()?;
/// file.write_all(b"hello, sendfile")?;
/// let (socket, mut peer) = tokio::net::UnixStream::pair()?;
/// let sent = pipepool::tokio::sendfile(&file, &socket, 7, 8).await?;
/// assert_eq!((sent.bytes, sent.method), (8, pipepool::Method::Sendfile));
/// drop(socket);
/// let mut got = String::new();
/// peer.read_to_string(&mut got).await?;
/// assert_eq!(got, "sendfile");
/// # Ok(()) }
/// ```
///
/// Reads from the file happen in the task, as with `sendfile` in any event
/// loop: from the page cache they are cheap; a cold file on a slow disk
/// stalls the worker while the kernel reads it.
///
/// # Cancellation
/// Dropping the future loses nothing: every byte counted (in a
/// [`Progress`](super::Progress)) reached the socket, and nothing is in
/// flight between two `sendfile` calls.
///
/// # Errors
/// The socket's errors (`EPIPE`, `ECONNRESET` when the peer went away) and
/// the file's read errors (`EIO`), as a [`CopyError`] carrying the bytes
/// sent until then.
pub async fn sendfile<F, S>(
    file: F,
    socket: &S,
    offset: u64,
    len: u64,
) -> Result<Transfer, CopyError>
where
    F: AsFd,
    S: ReadyFd + ?Sized,
{
    sendfile_with(file, socket, offset, len, &CopyOptions::new()).await
}

/// [`sendfile`] with options: [`CopyOptions::progress`] counts the bytes as
/// they are sent (by [`Method::Sendfile`], or `Userspace` on the fallback),
/// [`CopyOptions::zero_copy`]`(false)` forces the `pread`/`write` path and
/// [`CopyOptions::buffer_size`] sizes its buffer. The pool and the idle
/// timeout are not used.
///
/// # Errors
/// As [`sendfile`].
pub async fn sendfile_with<F, S>(
    file: F,
    socket: &S,
    offset: u64,
    len: u64,
    opts: &CopyOptions,
) -> Result<Transfer, CopyError>
where
    F: AsFd,
    S: ReadyFd + ?Sized,
{
    let file = file.as_fd();
    let live = opts.progress.as_ref().map(|p| p.side(Side::AToB));
    let mut sent = 0u64;
    let mut at = offset;
    if opts.zero_copy {
        while sent < len {
            let want = usize::try_from((len - sent).min(CHUNK)).unwrap_or(usize::MAX);
            let result = when_ready(socket, Interest::WRITABLE, || {
                Ok(sys::sendfile_at(socket.as_fd(), file, &mut at, want)?)
            })
            .await;
            match result {
                // End of file (short count), or on the first call maybe a
                // file that says so where it is not (procfs reports size
                // 0): the buffered copy below tells.
                Ok(0) => break,
                Ok(n) => {
                    sent += n as u64;
                    if let Some(live) = live {
                        live.add(n as u64, Method::Sendfile);
                    }
                }
                Err(e) if sent == 0 && sys::is_unsupported(&e) => break,
                Err(e) => return Err(CopyError::new(sent, Method::Sendfile, e)),
            }
        }
        if sent > 0 || len == 0 {
            return Ok(Transfer {
                bytes: sent,
                method: Method::Sendfile,
            });
        }
    }
    let moved = buffered(file, socket, at, len, opts, &mut sent).await;
    // A fallback that found nothing to send either: the range is empty,
    // and `sendfile` told the truth.
    let method = match (opts.zero_copy, sent) {
        (true, 0) => Method::Sendfile,
        _ => Method::Userspace,
    };
    match moved {
        Ok(()) => Ok(Transfer {
            bytes: sent,
            method,
        }),
        Err(e) => Err(CopyError::new(sent, Method::Userspace, e)),
    }
}

/// `pread` then `write` until `len` bytes (counted in `sent`) or end of
/// file.
async fn buffered<S: ReadyFd + ?Sized>(
    file: std::os::fd::BorrowedFd<'_>,
    socket: &S,
    mut at: u64,
    len: u64,
    opts: &CopyOptions,
    sent: &mut u64,
) -> io::Result<()> {
    let live = opts.progress.as_ref().map(|p| p.side(Side::AToB));
    let size = usize::try_from(len.min(opts.buffer_size as u64)).unwrap_or(opts.buffer_size);
    let mut buf = vec![0u8; size.max(1)];
    while *sent < len {
        let want = usize::try_from(len - *sent).map_or(buf.len(), |r| r.min(buf.len()));
        let n = sys::pread(file, &mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        at += n as u64;
        let mut data = &buf[..n];
        while !data.is_empty() {
            let w = when_ready(socket, Interest::WRITABLE, || {
                sys::write(socket.as_fd(), data)
            })
            .await?;
            if w == 0 {
                return Err(write_zero());
            }
            data = &data[w..];
            *sent += w as u64;
            if let Some(live) = live {
                live.add(w as u64, Method::Userspace);
            }
        }
    }
    Ok(())
}
