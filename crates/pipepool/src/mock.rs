//! A mock pipe for the loom models: no syscalls, but every creation and
//! drop is counted so a model can prove nothing was lost or dropped twice.

use std::io;

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
    pool_tag: u64,
}

impl Pipe {
    pub(crate) fn with_size(_size: usize) -> io::Result<Pipe> {
        CREATED.fetch_add(1, SeqCst);
        Ok(Pipe {
            len: 0,
            dropped: false,
            pool_tag: 0,
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        4096
    }

    pub(crate) fn got_requested_size(&self) -> bool {
        true
    }

    pub(crate) fn pool_tag(&self) -> u64 {
        self.pool_tag
    }

    pub(crate) fn set_pool_tag(&mut self, tag: u64) {
        self.pool_tag = tag;
    }

    /// Whether the mock holds bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pretends `n` bytes were spliced in.
    pub(crate) fn fill(&mut self, n: usize) {
        self.len += n;
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        assert!(!self.dropped, "mock pipe dropped twice");
        self.dropped = true;
        DROPPED.fetch_add(1, SeqCst);
    }
}
