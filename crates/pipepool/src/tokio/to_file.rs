//! [`copy_to_file`] and [`copy_to_file_tee`]: a tokio socket into a file at
//! an offset, through pooled pipes, on the readiness of the socket (and of
//! the second destination). The work is the sync [`ToFile`](crate::ToFile)'s
//! non-blocking core; only the waiting differs.

use std::io;
use std::os::fd::AsFd;

use ::tokio::io::Interest;

use super::options::CopyOptions;
use super::progress::Side;
use super::socket::{when_ready, ReadyFd};
use crate::copy::{Fill, Step};
use crate::{CopyError, Transfer};

/// Writes what `socket` gives into `file` at `offset`, until end of file
/// or `len` bytes (`u64::MAX`: no limit), zero-copy: `splice(2)` from the
/// socket into a pooled pipe and from the pipe into the file, waiting on
/// the socket's read readiness. The file's own offset is neither used nor
/// moved. For uploads written to disk.
///
/// Returns the bytes written to the file and the method:
/// [`Method::Splice`](crate::Method::Splice), or `Userspace` (`read` and
/// `pwrite`) where [`CopyOptions::zero_copy`] is off, the pool was at its
/// bound, or the kernel refused to splice this socket or file before any
/// byte moved (a file opened `O_APPEND`). [`CopyOptions::progress`] counts
/// the bytes written to the file as `a_to_b`; the pool comes from
/// [`CopyOptions::pool`]; the buffer size and the idle timeout are not
/// used (the buffered path reads 64 KiB at a time). The copy holds one
/// pooled pipe until it returns (empty whenever it waits).
///
/// ```
/// use tokio::io::AsyncWriteExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut client, server) = tokio::net::UnixStream::pair()?;
/// client.write_all(b"uploaded bytes").await?;
/// drop(client);
/// let file = tempfile::tempfile()?;
/// let opts = pipepool::tokio::CopyOptions::new();
/// let t = pipepool::tokio::copy_to_file(&server, &file, 0, u64::MAX, &opts).await?;
/// assert_eq!(t.bytes, 14);
/// # Ok(()) }
/// ```
///
/// Writes into the file happen in the task, as a `write(2)` to a file in
/// any event loop does: into the page cache they are cheap; under writeback
/// pressure they stall the worker.
///
/// # Cancellation
/// Dropping the future loses no byte that was counted: a byte counted is in
/// the file, and the pipe is empty whenever the copy waits.
///
/// # Errors
/// The socket's or the file's errors (`ECONNRESET`, `ENOSPC`, ...), as a
/// [`CopyError`] carrying the bytes written to the file until then.
pub async fn copy_to_file<S, F>(
    socket: &S,
    file: F,
    offset: u64,
    len: u64,
    opts: &CopyOptions,
) -> Result<Transfer, CopyError>
where
    S: ReadyFd + ?Sized,
    F: AsFd,
{
    run::<S, S>(socket, file, None, offset, len, opts).await
}

/// [`copy_to_file`] that also sends every byte to `tee`, a second socket,
/// with `tee(2)`: one read from `socket` fills the file and answers
/// another client (see [`ToFile`](crate::ToFile#when-tee-pays) for when
/// this pays). The copy goes at the pace of the slower destination and
/// holds two pooled pipes; the second one holds what `tee` has not taken
/// yet. The count is the file's; `tee` got the same bytes when the copy
/// returns `Ok`.
///
/// # Errors
/// As [`copy_to_file`], and `tee`'s errors (`EPIPE`, ...).
pub async fn copy_to_file_tee<S, F, T>(
    socket: &S,
    file: F,
    offset: u64,
    len: u64,
    tee: &T,
    opts: &CopyOptions,
) -> Result<Transfer, CopyError>
where
    S: ReadyFd + ?Sized,
    F: AsFd,
    T: ReadyFd + ?Sized,
{
    run(socket, file, Some(tee), offset, len, opts).await
}

/// Which readiness the copy waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Nothing,
    Source,
    Tee,
}

async fn run<S, T>(
    socket: &S,
    file: impl AsFd,
    tee: Option<&T>,
    offset: u64,
    len: u64,
    opts: &CopyOptions,
) -> Result<Transfer, CopyError>
where
    S: ReadyFd + ?Sized,
    T: ReadyFd + ?Sized,
{
    let tee_fd = tee.map(|t| t.as_fd());
    let mut fill = Fill::new(
        &opts.pool,
        socket.as_fd(),
        file.as_fd(),
        tee_fd,
        offset,
        len,
        opts.zero_copy,
    )
    .map_err(|e| CopyError::new(0, crate::Method::Userspace, e))?;
    let live = opts.progress.as_ref().map(|p| p.side(Side::AToB));
    let mut counted = 0u64;
    // One step, its bytes counted at once; `WouldBlock` when it needs what
    // `waiting` is already waiting for (so that readiness gets cleared).
    let mut step = |waiting: Waiting| -> io::Result<Step<'_>> {
        let step = fill.step();
        if let Some(live) = live {
            live.add(fill.written() - counted, fill.method());
        }
        counted = fill.written();
        match step? {
            Step::WaitSource if waiting == Waiting::Source => Err(io::ErrorKind::WouldBlock.into()),
            Step::WaitTee(_) if waiting == Waiting::Tee => Err(io::ErrorKind::WouldBlock.into()),
            other => Ok(other),
        }
    };
    let mut waiting = Waiting::Nothing;
    let result = loop {
        let next = match (waiting, tee) {
            (Waiting::Source, _) => when_ready(socket, Interest::READABLE, || step(waiting)).await,
            (Waiting::Tee, Some(tee)) => {
                when_ready(tee, Interest::WRITABLE, || step(waiting)).await
            }
            _ => step(waiting),
        };
        waiting = match next {
            Ok(Step::Done) => break Ok(()),
            Ok(Step::WaitSource) => Waiting::Source,
            Ok(Step::WaitTee(_)) => Waiting::Tee,
            Err(e) => break Err(e),
        };
    };
    match result {
        Ok(()) => Ok(fill.transfer()),
        Err(e) => Err(fill.error(e)),
    }
}
