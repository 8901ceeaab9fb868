//! [`Counts`]: what a direction has read from its source and written to
//! its destination, counted as it goes.

use crate::tokio::progress::Live;
use crate::Method;

/// The bytes a direction has read and written. Every path and every move
/// (the splice path, the buffer, a drop's last writes) counts through it,
/// so the report, the error's counts and the [`Progress`] agree.
///
/// [`Progress`]: crate::tokio::Progress
#[derive(Debug)]
pub(super) struct Counts<'p> {
    /// Bytes read from the source, by any path (not the prefix).
    read: u64,
    /// Bytes read before the copy began and handed to it (a prefix),
    /// written before anything read from the source; part of `written`
    /// once written.
    prefix: u64,
    /// Bytes written to the destination, by any path.
    written: u64,
    /// The part of `written` that came out of a pipe.
    spliced: u64,
    /// Where written bytes are also counted as they go, if anywhere.
    live: Option<Live<'p>>,
}

impl<'p> Counts<'p> {
    /// Nothing read or written yet; written bytes also counted in `live`,
    /// if any.
    pub(super) fn new(live: Option<Live<'p>>) -> Counts<'p> {
        Counts {
            read: 0,
            prefix: 0,
            written: 0,
            spliced: 0,
            live,
        }
    }

    /// Counts `n` bytes of a prefix: read before the copy, to be written
    /// first.
    pub(super) fn add_prefix(&mut self, n: usize) {
        self.prefix += n as u64;
    }

    /// Bytes of the prefix (written or not).
    pub(super) fn prefix(&self) -> u64 {
        self.prefix
    }

    /// Counts `n` bytes read from the source.
    pub(super) fn add_read(&mut self, n: usize) {
        self.read += n as u64;
    }

    /// Counts `n` bytes written to the destination by `method`
    /// ([`Method::Splice`] out of a pipe, [`Method::Userspace`] out of the
    /// buffer).
    pub(super) fn add_written(&mut self, n: usize, method: Method) {
        let n = n as u64;
        self.written += n;
        if method == Method::Splice {
            self.spliced += n;
        }
        if let Some(live) = self.live {
            live.add(n, method);
        }
    }

    /// Bytes read from the source so far (the prefix not included).
    pub(super) fn read(&self) -> u64 {
        self.read
    }

    /// Bytes written to the destination so far.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// The part of [`written`](Counts::written) that came out of a pipe.
    pub(super) fn spliced(&self) -> u64 {
        self.spliced
    }
}
