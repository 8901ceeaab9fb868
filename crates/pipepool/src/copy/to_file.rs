//! Socket -> file: [`ToFile`] splices what a socket (or pipe) gives into a
//! file at an offset through a pooled pipe, optionally `tee(2)`-ing the same
//! bytes into a second destination. [`Fill`] is the non-blocking core that
//! the sync driver here and the async one (`tokio::to_file`) share: it says
//! which fd to wait for, each driver waits its own way.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::write_zero;
use crate::sync::PipeMut;
use crate::sys::{self, Errno, FdKind, Wait};
use crate::{CopyError, Method, PipePool, PooledPipe, Transfer};

/// Bytes read through memory at a time where splice cannot be used (a TCP
/// urgent mark, a source or file that refuses splice, a pool at its bound).
const BUF_SIZE: usize = 64 * 1024;

/// Writes what a socket, pipe or other fd gives into a file at an offset,
/// zero-copy: `splice(2)` from the source into a pooled pipe, and from the
/// pipe into the file at the offset (`pwrite` semantics: the file's own
/// offset is not used nor moved, so several uploads may fill one file at
/// once). For uploads written to disk, a cache filled while serving.
///
/// With [`tee`](ToFile::tee), every byte also goes to a second destination
/// (a socket, a pipe): `tee(2)` duplicates the pipe's pages into a second
/// pooled pipe, which is spliced out there, so one read from the source
/// fills the file and answers a client.
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// # fn main() -> std::io::Result<()> {
/// let (mut upload, server) = UnixStream::pair()?;
/// upload.write_all(b"uploaded")?;
/// drop(upload); // end of file
/// let file = tempfile::tempfile()?;
/// let t = pipepool::ToFile::new().copy(&server, &file, 100, u64::MAX)?;
/// assert_eq!(t.bytes, 8);
/// assert_eq!(file.metadata()?.len(), 108); // written at offset 100
/// # Ok(()) }
/// ```
///
/// # When `tee` pays
/// `tee` duplicates page references, not bytes: the file and the second
/// destination get the same read with no copy through user space, and the
/// second destination gets each chunk as soon as it arrived (a cache that
/// fills while the first client is served: the client does not wait for the
/// file). It costs a second pipe and a `tee` call per chunk, and the copy
/// goes at the pace of the slower destination. Writing the file first and
/// `sendfile`-ing it afterwards is zero-copy too and cheaper when nobody
/// waits for the bytes; a destination that is a slow client is better
/// served from the file after the fact than allowed to throttle the upload.
#[derive(Debug, Clone)]
pub struct ToFile<'t> {
    /// The pool to take pipes from; `None`: the global one.
    pool: Option<PipePool>,
    /// The second destination, if any.
    tee: Option<BorrowedFd<'t>>,
    zero_copy: bool,
}

impl Default for ToFile<'_> {
    fn default() -> Self {
        ToFile {
            pool: None,
            tee: None,
            zero_copy: true,
        }
    }
}

impl<'t> ToFile<'t> {
    /// The global pool, no second destination, zero-copy on.
    pub fn new() -> ToFile<'t> {
        ToFile::default()
    }

    /// Takes pipes from `pool` instead of the global one.
    pub fn pool(mut self, pool: PipePool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Sends every byte written to the file to `dst` too (see [`ToFile`]
    /// for when this pays). `dst` may be blocking or not.
    pub fn tee(mut self, dst: BorrowedFd<'t>) -> Self {
        self.tee = Some(dst);
        self
    }

    /// `false` forces `read`/`pwrite` through memory (for comparison and
    /// testing). Default `true`.
    pub fn zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// Copies from `src` into `file` at `offset`, until end of file on
    /// `src` or `len` bytes (`u64::MAX`: no limit); waits with `poll(2)`
    /// where an fd is not ready. Returns the bytes written to the file (the
    /// second destination got the same) and the method: [`Method::Splice`],
    /// or [`Method::Userspace`] where the pool was at its bound or the
    /// kernel refused to splice this source or this file before any byte
    /// moved (a file opened `O_APPEND`, for one).
    ///
    /// # Errors
    /// The first error of `src`, `file` or the second destination, as a
    /// [`CopyError`] with the bytes written to the file until then (the
    /// second destination got at most a pipeful fewer).
    pub fn copy(
        &self,
        src: impl AsFd,
        file: impl AsFd,
        offset: u64,
        len: u64,
    ) -> Result<Transfer, CopyError> {
        let pool = self.pool.as_ref().unwrap_or_else(|| PipePool::global());
        let src = src.as_fd();
        let mut fill = Fill::new(
            pool,
            src,
            file.as_fd(),
            self.tee,
            offset,
            len,
            self.zero_copy,
        )
        .map_err(|e| CopyError::new(0, Method::Userspace, e))?;
        loop {
            let step = fill.step().map_err(|e| fill.error(e))?;
            let waited = match step {
                Step::Done => return Ok(fill.transfer()),
                Step::WaitSource => sys::wait(src, Wait::Readable),
                Step::WaitTee(tee) => sys::wait(tee, Wait::Writable),
            };
            waited.map_err(|e| fill.error(e.into()))?;
        }
    }
}

/// What a [`Fill`] needs before it can go on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    /// End of file or the limit, everything written.
    Done,
    /// The source has nothing to read: wait until it is readable.
    WaitSource,
    /// The second destination is full: wait until it is writable.
    WaitTee(BorrowedFd<'a>),
}

/// How a [`Fill`] moves bytes.
#[derive(Debug)]
enum Path<'p> {
    /// `src -> a -> file`, and `a -tee-> b -> tee` with a second
    /// destination. `a` is empty whenever the source is read; `b` holds
    /// what the second destination has not taken yet.
    Splice {
        a: PooledPipe<'p>,
        b: Option<PooledPipe<'p>>,
    },
    /// `read` into `buf`, `pwrite` to the file, `write` to the second
    /// destination: `buf[..filled]` was read, `buf[stored..filled]` is
    /// still owed to the file and `buf[sent..filled]` to the second
    /// destination (`sent <= stored`: the file is written first).
    Buffered {
        buf: Vec<u8>,
        filled: usize,
        stored: usize,
        sent: usize,
    },
}

/// The state of one socket -> file copy: non-blocking steps that report
/// which fd to wait for.
#[derive(Debug)]
pub(crate) struct Fill<'a, 'p> {
    src: BorrowedFd<'a>,
    file: BorrowedFd<'a>,
    tee: Option<BorrowedFd<'a>>,
    /// `src` is a socket: a splice stops at a TCP urgent mark, and `EAGAIN`
    /// or 0 from it is checked with a `read`.
    src_is_socket: bool,
    /// Where the next byte goes in the file.
    offset: u64,
    /// Bytes still to read from the source.
    remaining: u64,
    /// Bytes written to the file, and by which method.
    written: u64,
    path: Path<'p>,
}

impl<'a, 'p> Fill<'a, 'p> {
    pub(crate) fn new(
        pool: &'p PipePool,
        src: BorrowedFd<'a>,
        file: BorrowedFd<'a>,
        tee: Option<BorrowedFd<'a>>,
        offset: u64,
        len: u64,
        zero_copy: bool,
    ) -> io::Result<Fill<'a, 'p>> {
        let src_is_socket = sys::fd_kind(src)? == FdKind::Socket;
        let pipes = || {
            let a = pool.get().ok()?;
            let b = match tee {
                Some(_) => Some(pool.get().ok()?),
                None => None,
            };
            Some(Path::Splice { a, b })
        };
        let path = match zero_copy.then(pipes).flatten() {
            Some(path) => path,
            None => Path::buffered(0),
        };
        Ok(Fill {
            src,
            file,
            tee,
            src_is_socket,
            offset,
            remaining: len,
            written: 0,
            path,
        })
    }

    /// The bytes written to the file so far.
    #[cfg(feature = "tokio")]
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    pub(crate) fn method(&self) -> Method {
        match self.path {
            Path::Splice { .. } => Method::Splice,
            Path::Buffered { .. } => Method::Userspace,
        }
    }

    pub(crate) fn transfer(&self) -> Transfer {
        Transfer {
            bytes: self.written,
            method: self.method(),
        }
    }

    pub(crate) fn error(&self, e: io::Error) -> CopyError {
        CopyError::new(self.written, self.method(), e)
    }

    /// Moves bytes until the copy is done or an fd is not ready. Every call
    /// that returns leaves nothing owed to the file: what was read is in
    /// the file (the second destination may still be owed some).
    pub(crate) fn step(&mut self) -> io::Result<Step<'a>> {
        loop {
            let step = match &mut self.path {
                Path::Splice { .. } => self.splice_step(),
                Path::Buffered { .. } => self.buffered_step(),
            };
            match step {
                // The kernel refused a splice (of the source, or into the
                // file) before any byte reached the file or the second
                // destination: go on through memory.
                Err(e) if self.written == 0 && is_refusal(&e) => self.switch_to_buffered()?,
                other => return other,
            }
        }
    }

    /// Switches to the buffered path, taking along the bytes the first pipe
    /// holds (the second one holds a duplicate of them, dropped).
    fn switch_to_buffered(&mut self) -> io::Result<()> {
        let held = match &self.path {
            Path::Splice { a, .. } => a.len(),
            Path::Buffered { .. } => 0,
        };
        let mut path = Path::buffered(held);
        if let (Path::Splice { a, b }, Path::Buffered { buf, filled, .. }) =
            (&mut self.path, &mut path)
        {
            while !a.is_empty() {
                *filled += a.read(&mut buf[*filled..])?;
            }
            if let Some(b) = b {
                let mut scratch = [0u8; 4096];
                while !b.is_empty() {
                    b.read(&mut scratch)?;
                }
            }
        }
        self.path = path;
        Ok(())
    }

    fn splice_step(&mut self) -> io::Result<Step<'a>> {
        let Path::Splice { a, b } = &mut self.path else {
            unreachable!("splice_step on the buffered path")
        };
        loop {
            // What the second destination is owed goes first.
            if let (Some(b), Some(tee)) = (b.as_mut(), self.tee) {
                while !b.is_empty() {
                    match b.splice_to_errno(tee, usize::MAX) {
                        Ok(0) => return Err(write_zero()),
                        Ok(_) => {}
                        Err(Errno::AGAIN) => return Ok(Step::WaitTee(tee)),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if !a.is_empty() {
                // Duplicate what the second destination should get, then
                // write exactly that much to the file.
                let chunk = match b.as_mut() {
                    Some(b) => a.pipe_mut().tee_to(b.pipe_mut(), usize::MAX)?,
                    None => a.len(),
                };
                let mut left = chunk;
                while left > 0 {
                    let n = a
                        .pipe_mut()
                        .splice_to_at(self.file, &mut self.offset, left)?;
                    if n == 0 {
                        return Err(write_zero());
                    }
                    left -= n;
                    self.written += n as u64;
                }
                continue;
            }
            if self.remaining == 0 {
                return Ok(Step::Done);
            }
            let want = usize::try_from(self.remaining).unwrap_or(usize::MAX);
            match a.splice_from_errno(self.src, want) {
                Ok(0) if !self.src_is_socket => return Ok(Step::Done),
                // A socket's 0 (end of file, or an urgent mark with the FIN
                // behind it) or EAGAIN (nothing, or the urgent mark): a
                // `read` tells, and skips the urgent byte.
                Ok(0) => {}
                Ok(n) => {
                    self.remaining -= n as u64;
                    continue;
                }
                Err(Errno::AGAIN) if !self.src_is_socket => return Ok(Step::WaitSource),
                Err(Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
            let mut buf = [0u8; 16 * 1024];
            let len = buf.len().min(want).min(a.capacity());
            match sys::read_errno(self.src, &mut buf[..len]) {
                Ok(0) => return Ok(Step::Done),
                Ok(n) => {
                    self.remaining -= n as u64;
                    // Into the empty pipe (it has room for `n`), so that the
                    // file and the second destination get it as any chunk.
                    let put = a.write(&buf[..n])?;
                    debug_assert_eq!(put, n);
                }
                Err(Errno::AGAIN) => return Ok(Step::WaitSource),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn buffered_step(&mut self) -> io::Result<Step<'a>> {
        let Path::Buffered {
            buf,
            filled,
            stored,
            sent,
        } = &mut self.path
        else {
            unreachable!("buffered_step on the splice path")
        };
        loop {
            while *stored < *filled {
                match sys::pwrite(self.file, &buf[*stored..*filled], self.offset)? {
                    0 => return Err(write_zero()),
                    w => {
                        *stored += w;
                        self.offset += w as u64;
                        self.written += w as u64;
                    }
                }
            }
            if let Some(tee) = self.tee {
                while *sent < *filled {
                    match sys::write_errno(tee, &buf[*sent..*filled]) {
                        Ok(0) => return Err(write_zero()),
                        Ok(n) => *sent += n,
                        Err(Errno::AGAIN) => return Ok(Step::WaitTee(tee)),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if self.remaining == 0 {
                return Ok(Step::Done);
            }
            let len = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
            let n = match sys::read_errno(self.src, &mut buf[..len]) {
                Ok(0) => return Ok(Step::Done),
                Ok(n) => n,
                Err(Errno::AGAIN) => return Ok(Step::WaitSource),
                Err(e) => return Err(e.into()),
            };
            self.remaining -= n as u64;
            (*filled, *stored, *sent) = (n, 0, 0);
        }
    }
}

impl Path<'_> {
    /// The buffered path, with room for `held` bytes at least.
    fn buffered(held: usize) -> Self {
        Path::Buffered {
            buf: vec![0u8; BUF_SIZE.max(held)],
            filled: 0,
            stored: 0,
            sent: 0,
        }
    }
}

/// Whether `e` is the kernel refusing to splice this pair.
fn is_refusal(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|raw| sys::is_unsupported_errno(Errno::from_raw_os_error(raw)))
}
