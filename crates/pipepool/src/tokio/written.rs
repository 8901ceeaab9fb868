//! [`Written`]: what a direction has written to its destination, counted
//! as it is written.

use super::progress::Live;

/// What a direction has written to its destination.
#[derive(Debug)]
pub(super) struct Written<'p> {
    /// Bytes, by any path.
    pub(super) total: u64,
    /// The part of `total` that came out of a pipe.
    pub(super) spliced: u64,
    /// Where the bytes are also counted as they are written, if anywhere.
    live: Option<Live<'p>>,
}

impl<'p> Written<'p> {
    /// Nothing written yet; bytes also counted in `live`, if any.
    pub(super) fn new(live: Option<Live<'p>>) -> Written<'p> {
        Written {
            total: 0,
            spliced: 0,
            live,
        }
    }

    /// Counts `n` bytes written, out of the pipe (`spliced`) or the buffer.
    pub(super) fn add(&mut self, n: usize, spliced: bool) {
        let n = n as u64;
        self.total += n;
        if spliced {
            self.spliced += n;
        }
        if let Some(live) = self.live {
            live.add(n, spliced);
        }
    }
}
