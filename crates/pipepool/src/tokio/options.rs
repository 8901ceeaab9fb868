//! [`CopyOptions`]: which pool, whether to splice, the fallback buffer's
//! size, the idle timeout of a copy, and whether a bidirectional copy shuts
//! down the last writer.

use std::time::Duration;

use super::progress::Progress;
use crate::{PipePool, DEFAULT_BUFFER_SIZE};

/// How [`copy_with`](super::copy_with) and
/// [`copy_bidirectional_with`](super::copy_bidirectional_with) move bytes.
///
/// Start from [`CopyOptions::new()`] (the [global pool](PipePool::global),
/// zero-copy on, a 64 KiB fallback buffer, no idle timeout, both writers
/// shut down at end of file) and change what
/// you need. The options own what they use: a [`PipePool`] handle and a
/// [`Progress`] handle (both cheap to clone, sharing the pool and the
/// counters), so one `CopyOptions`, or an `Arc` of it, can be moved into
/// or shared by any number of spawned relay tasks.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use pipepool::tokio::{CopyOptions, Progress};
/// use pipepool::PoolConfig;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PoolConfig::builder().max_pipes(64).build()?;
/// let progress = Progress::new();
/// let opts = Arc::new(
///     CopyOptions::new()
///         .pool(pool.clone())
///         .progress(progress.clone())
///         .buffer_size(16 * 1024)
///         .idle_timeout(Some(Duration::from_secs(300))),
/// );
/// let relay = tokio::spawn({
///     let opts = Arc::clone(&opts);
///     async move {
///         let mut reader: &[u8] = b"spawned";
///         let mut writer = Vec::new();
///         pipepool::tokio::copy_with(&mut reader, &mut writer, &opts).await
///     }
/// });
/// assert_eq!(relay.await??.bytes, 7);
/// assert_eq!(progress.a_to_b(), 7);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Where pipes come from.
    pub(super) pool: PipePool,
    /// `false` forces the userspace copy even between sockets.
    pub(super) zero_copy: bool,
    /// Size of the userspace buffer; never 0.
    pub(super) buffer_size: usize,
    /// No byte moved for this long ends the copy with `TimedOut`.
    pub(super) idle_timeout: Option<Duration>,
    /// Live byte counts to update as bytes are written.
    pub(super) progress: Option<Progress>,
    /// `copy_bidirectional_with` shuts down the writer of the direction
    /// that finishes second (tokio's behaviour); `false` leaves it to the
    /// caller's close.
    pub(super) last_shutdown: bool,
}

impl CopyOptions {
    /// The defaults: the global pool, zero-copy on, a
    /// [`DEFAULT_BUFFER_SIZE`] (64 KiB, eight times tokio's 8 KiB: fewer
    /// syscalls for the same bytes) buffer for the userspace copy, no idle
    /// timeout.
    pub fn new() -> CopyOptions {
        CopyOptions {
            pool: PipePool::global().clone(),
            zero_copy: true,
            buffer_size: DEFAULT_BUFFER_SIZE,
            idle_timeout: None,
            progress: None,
            last_shutdown: true,
        }
    }

    /// Takes pipes from `pool` (a handle: pass `pool.clone()` to keep
    /// yours) instead of the global one.
    pub fn pool(mut self, pool: PipePool) -> Self {
        self.pool = pool;
        self
    }

    /// Adds every byte the copy writes to `progress` (a handle: pass
    /// `progress.clone()` and read the counts from yours), as it goes, for
    /// live metrics. Default: none.
    pub fn progress(mut self, progress: Progress) -> Self {
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

    /// Whether [`copy_bidirectional_with`](super::copy_bidirectional_with)
    /// shuts down the writer of the direction that reaches end of file
    /// *second*. Default `true`, as tokio's `copy_bidirectional` does.
    ///
    /// `false` is for a caller that closes both streams as soon as the
    /// copy returns `Ok` (a proxy dropping both sockets): `close(2)` then
    /// sends that FIN itself, and the `shutdown(2)` is saved, one system
    /// call per connection. By then both sources were read to end of file,
    /// so `close` finds nothing unread and sends a FIN, not a reset. Until
    /// the stream is closed its peer does not see end of file, so a caller
    /// that keeps the streams after the copy must leave this on. The
    /// direction that finishes first always shuts its writer down: that
    /// half-close must reach the peer while the other direction goes on.
    /// A shutdown error that the skipped call would have returned is not
    /// reported. [`copy_with`](super::copy_with) ignores this option.
    pub fn last_shutdown(mut self, on: bool) -> Self {
        self.last_shutdown = on;
        self
    }
}

impl Default for CopyOptions {
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
        assert_eq!(o.pool.stats().created, PipePool::global().stats().created);
        assert!(o.zero_copy);
        assert_eq!(o.buffer_size, DEFAULT_BUFFER_SIZE);
        assert_eq!(o.idle_timeout, None);
        assert!(o.progress.is_none());
        assert!(o.last_shutdown);
    }
}
