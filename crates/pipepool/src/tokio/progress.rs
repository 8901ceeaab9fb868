//! [`Progress`]: live byte counts that copies update as they write, for
//! metrics that must not wait for a connection to close.

use std::sync::Arc;

use crate::sync::{AtomicU64, Ordering::Relaxed};
use crate::Method;

/// How many [`Method`]s there are: one counter each.
const METHODS: usize = 4;

/// The counter of `method` in a direction's `[AtomicU64; METHODS]`.
fn slot(method: Method) -> usize {
    match method {
        Method::Splice => 0,
        Method::Userspace => 1,
        Method::Sendfile => 2,
        Method::CopyFileRange => 3,
    }
}

/// Live byte counts of the copies given it through
/// [`CopyOptions::progress`](super::CopyOptions::progress), by direction and
/// by method: each copy adds the bytes it writes to its destination as soon
/// as the destination has taken them. One `Progress` may serve any number of
/// copies at once (a proxy listener shares one between all its
/// connections), so it is read as a sum, never reset. It is a handle:
/// clones share the counters, so give the options a clone and read yours.
///
/// `a_to_b` is `a` -> `b` for [`copy_bidirectional_with`] and reader ->
/// writer for [`copy_with`]. The final report of a copy still gives its own
/// counts; the two agree once the copy is over.
///
/// [`copy_bidirectional_with`]: super::copy_bidirectional_with
/// [`copy_with`]: super::copy_with
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use pipepool::tokio::{copy_with, CopyOptions, Progress};
/// use pipepool::Method;
///
/// let progress = Progress::new();
/// let opts = CopyOptions::new().progress(progress.clone());
/// let mut reader: &[u8] = b"hello";
/// let mut writer = Vec::new();
/// copy_with(&mut reader, &mut writer, &opts).await?;
/// assert_eq!(progress.a_to_b(), 5);
/// assert_eq!(progress.a_to_b_by(Method::Userspace), 5); // not sockets: userspace
/// assert_eq!(progress.b_to_a(), 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// `[a_to_b, b_to_a]`, each one counter per [`Method`] (see [`slot`]).
    bytes: Arc<[[AtomicU64; METHODS]; 2]>,
}

impl Progress {
    /// Counts at zero.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// Bytes written `a` -> `b` (reader -> writer) so far, by any method.
    pub fn a_to_b(&self) -> u64 {
        self.sum(0)
    }

    /// Bytes written `b` -> `a` so far, by any method.
    pub fn b_to_a(&self) -> u64 {
        self.sum(1)
    }

    /// Bytes written `a` -> `b` so far by `method`. The async copies move
    /// bytes by [`Method::Splice`] and [`Method::Userspace`];
    /// [`sendfile_with`](super::sendfile_with) by [`Method::Sendfile`] (or
    /// `Userspace` where it falls back).
    pub fn a_to_b_by(&self, method: Method) -> u64 {
        self.by(0, method)
    }

    /// Bytes written `b` -> `a` so far by `method` (as
    /// [`a_to_b_by`](Progress::a_to_b_by)).
    pub fn b_to_a_by(&self, method: Method) -> u64 {
        self.by(1, method)
    }

    fn sum(&self, side: usize) -> u64 {
        self.bytes[side].iter().map(|c| c.load(Relaxed)).sum()
    }

    fn by(&self, side: usize, method: Method) -> u64 {
        self.bytes[side][slot(method)].load(Relaxed)
    }

    /// The counters of one side.
    pub(super) fn side(&self, side: Side) -> Live<'_> {
        let index = match side {
            Side::AToB => 0,
            Side::BToA => 1,
        };
        Live(&self.bytes[index])
    }
}

/// Which of a [`Progress`]'s two sides a direction counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// `a` -> `b` of a bidirectional copy; reader -> writer of a one-way
    /// copy.
    AToB,
    /// `b` -> `a` of a bidirectional copy.
    BToA,
}

/// One direction's counters in a [`Progress`], one per [`Method`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Live<'p>(&'p [AtomicU64; METHODS]);

impl Live<'_> {
    /// Counts `n` bytes written by `method`.
    pub(super) fn add(self, n: u64, method: Method) {
        self.0[slot(method)].fetch_add(n, Relaxed);
    }
}
