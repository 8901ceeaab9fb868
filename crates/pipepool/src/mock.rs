//! A mock pipe for the loom models: no syscalls, but every creation and
//! drop is counted so a model can prove nothing was lost or dropped twice.

use std::io;
use std::os::fd::AsFd;

use crate::sync::{AtomicUsize, Ordering::SeqCst};

loom::lazy_static! {
    static ref CREATED: AtomicUsize = AtomicUsize::new(0);
    static ref DROPPED: AtomicUsize = AtomicUsize::new(0);
}

/// Pipes created in this model execution.
pub(crate) fn created() -> usize {
    CREATED.load(SeqCst)
}

/// Pipes dropped (closed) in this model execution.
pub(crate) fn dropped() -> usize {
    DROPPED.load(SeqCst)
}

/// A stand-in for the real pipe.
#[derive(Debug)]
pub struct Pipe {
    len: usize,
    dropped: bool,
}

/// The size the real pipes default to (the mock ignores sizes).
pub(crate) const DEFAULT_PIPE_SIZE: usize = 1 << 20;

impl Pipe {
    pub(crate) fn with_size(_size: usize) -> io::Result<Pipe> {
        CREATED.fetch_add(1, SeqCst);
        Ok(Pipe {
            len: 0,
            dropped: false,
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        4096
    }

    pub(crate) fn got_requested_size(&self) -> bool {
        true
    }

    /// Whether the mock holds bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pretends `buf` was written in.
    ///
    /// # Errors
    /// Never.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.len += buf.len();
        Ok(buf.len())
    }

    /// Pretends up to `buf.len()` bytes were read out.
    ///
    /// # Errors
    /// Never.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.len);
        self.len -= n;
        Ok(n)
    }

    /// loom models no syscall.
    ///
    /// # Errors
    /// Always `Unsupported`.
    pub fn splice_from(&mut self, _src: impl AsFd, _max: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// loom models no syscall.
    ///
    /// # Errors
    /// Always `Unsupported`.
    pub fn splice_to(&mut self, _dst: impl AsFd, _max: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn splice_from_errno(
        &mut self,
        _src: impl AsFd,
        _max: usize,
    ) -> crate::sys::Result<usize> {
        Err(crate::sys::Errno::NOSYS)
    }

    pub(crate) fn splice_to_errno(
        &mut self,
        _dst: impl AsFd,
        _max: usize,
    ) -> crate::sys::Result<usize> {
        Err(crate::sys::Errno::NOSYS)
    }

    pub(crate) fn read_errno(&mut self, buf: &mut [u8]) -> crate::sys::Result<usize> {
        Ok(self.read(buf).unwrap_or(0))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        assert!(!self.dropped, "mock pipe dropped twice");
        self.dropped = true;
        DROPPED.fetch_add(1, SeqCst);
    }
}

/// Mutable access to a pipe (the real crate's `pipe::PipeMut`).
pub(crate) trait PipeMut {
    fn pipe_mut(&mut self) -> &mut Pipe;
}
