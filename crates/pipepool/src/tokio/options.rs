//! [`CopyOptions`]: which pool, whether to splice, the fallback buffer's
//! size and the idle timeout of a copy.

use std::time::Duration;

use super::progress::Progress;
use crate::{PipePool, DEFAULT_BUFFER_SIZE};

/// How [`copy_with`](super::copy_with) and
/// [`copy_bidirectional_with`](super::copy_bidirectional_with) move bytes.
///
/// Start from [`CopyOptions::new()`] (the [global pool](PipePool::global),
/// zero-copy on, a 64 KiB fallback buffer, no idle timeout) and change what
/// you need. The copy futures borrow the options, and through them the pool:
/// a pipe on loan is a [`PooledPipe`](crate::PooledPipe) that borrows its
/// pool. To `tokio::spawn` copies that use a pool of your own, give the pool
/// a `'static` lifetime: build it once into a `static`
/// [`OnceLock`](std::sync::OnceLock), or `Box::leak` it at start-up.
///
/// ```
/// use std::time::Duration;
/// use pipepool::tokio::CopyOptions;
/// use pipepool::PoolConfig;
///
/// let pool = PoolConfig::default().max_pipes(64).build()?;
/// let opts = CopyOptions::new()
///     .pool(&pool)
///     .buffer_size(16 * 1024)
///     .idle_timeout(Some(Duration::from_secs(300)));
/// # drop(opts);
/// # Ok::<(), pipepool::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CopyOptions<'p> {
    /// Where pipes come from.
    pub(super) pool: &'p PipePool,
    /// `false` forces the userspace copy even between sockets.
    pub(super) zero_copy: bool,
    /// Size of the userspace buffer; never 0.
    pub(super) buffer_size: usize,
    /// No byte moved for this long ends the copy with `TimedOut`.
    pub(super) idle_timeout: Option<Duration>,
    /// Benchmark knob: keep a direction's pipe for its whole life instead of
    /// giving it back whenever it is empty.
    pub(super) hold_pipe: bool,
    /// Live byte counts to update as bytes are written.
    pub(super) progress: Option<&'p Progress>,
}

impl<'p> CopyOptions<'p> {
    /// The defaults: the global pool, zero-copy on, a
    /// [`DEFAULT_BUFFER_SIZE`] (64 KiB, eight times tokio's 8 KiB: fewer
    /// syscalls for the same bytes) buffer for the userspace copy, no idle
    /// timeout.
    pub fn new() -> CopyOptions<'p> {
        CopyOptions {
            pool: PipePool::global(),
            zero_copy: true,
            buffer_size: DEFAULT_BUFFER_SIZE,
            idle_timeout: None,
            hold_pipe: false,
            progress: None,
        }
    }

    /// Takes pipes from `pool` instead of the global one.
    pub fn pool(mut self, pool: &'p PipePool) -> Self {
        self.pool = pool;
        self
    }

    /// Adds every byte the copy writes to `progress`, as it goes (for live
    /// metrics). Default: none.
    pub fn progress(mut self, progress: &'p Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// `false` forces the userspace copy even where splicing would work
    /// (to compare, or to work around a kernel that misbehaves). Default
    /// `true`; types that cannot be spliced use the userspace copy anyway.
    pub fn zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// The size of the userspace buffer, allocated only when a direction
    /// copies through memory: types that cannot be spliced, `zero_copy(false)`,
    /// a kernel that refuses to splice, or a burst that found the pool at its
    /// bound. Default [`DEFAULT_BUFFER_SIZE`].
    ///
    /// # Panics
    /// If `bytes` is 0 (as tokio's `copy_bidirectional_with_sizes` does).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "buffer_size must be greater than 0");
        self.buffer_size = bytes;
        self
    }

    /// Ends the copy with an error of kind
    /// [`TimedOut`](std::io::ErrorKind::TimedOut) when no byte has moved,
    /// in either direction, for `timeout`. Also covers a half-closed
    /// connection whose other direction has gone quiet, which otherwise
    /// lingers in `FIN_WAIT2` / `CLOSE_WAIT` for ever. Default `None`.
    ///
    /// The copy futures then use a tokio timer: they panic when polled on a
    /// runtime built without [`enable_time`](::tokio::runtime::Builder::enable_time).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Keeps the first pipe a direction takes until the copy ends, instead
    /// of giving it back whenever it is empty: what the other splice crates
    /// do. For benchmarking the per-burst get/put; not meant for use (an
    /// idle connection then holds its pipes).
    #[doc(hidden)]
    pub fn hold_pipe(mut self, hold: bool) -> Self {
        self.hold_pipe = hold;
        self
    }
}

impl Default for CopyOptions<'_> {
    fn default() -> Self {
        CopyOptions::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "buffer_size must be greater than 0")]
    fn zero_buffer_size_panics() {
        let _ = CopyOptions::new().buffer_size(0);
    }

    #[test]
    fn defaults() {
        let o = CopyOptions::default();
        assert!(std::ptr::eq(o.pool, PipePool::global()));
        assert!(o.zero_copy);
        assert_eq!(o.buffer_size, DEFAULT_BUFFER_SIZE);
        assert_eq!(o.idle_timeout, None);
        assert!(!o.hold_pipe);
    }
}
