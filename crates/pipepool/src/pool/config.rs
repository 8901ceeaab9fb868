//! [`PoolConfig`]: how a [`PipePool`] is sized, and the checks that reject a
//! configuration that cannot work.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use super::PipePool;
#[cfg(not(pipepool_loom))]
use crate::pipe::DEFAULT_PIPE_SIZE;
/// The real pipe module is not built under loom; the mock needs a size.
#[cfg(pipepool_loom)]
const DEFAULT_PIPE_SIZE: usize = 1 << 20;

/// The largest pipe size accepted (1 GiB): `F_SETPIPE_SZ` takes an `int`
/// and rounds up to a power of two.
pub const MAX_PIPE_SIZE: usize = 1 << 30;

/// The default [`idle_timeout`](PoolConfig::idle_timeout): 10 seconds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`local_cap`](PoolConfig::local_cap): 8 idle pipes per thread.
pub const DEFAULT_LOCAL_CAP: usize = 8;

/// How a [`PipePool`] is built. Start from [`PoolConfig::default()`], change
/// what you need, then [`build`](PoolConfig::build).
///
/// ```
/// use std::time::Duration;
/// use pipepool::PoolConfig;
///
/// let pool = PoolConfig::default()
///     .max_pipes(256)
///     .pipe_size(256 * 1024)
///     .idle_timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(pool.config().max_pipes, 256);
/// # Ok::<(), pipepool::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most pipes alive at once, in use and idle together (a bound on fds:
    /// 2 per pipe, and on kernel memory: `max_pipes * pipe_size`). At the
    /// bound, [`PipePool::get`] refuses instead of creating a pipe.
    ///
    /// Default: a quarter of the soft `RLIMIT_NOFILE`, clamped to 16..=4096.
    pub max_pipes: usize,
    /// The size asked of `F_SETPIPE_SZ` for each new pipe. Default 1 MiB.
    pub pipe_size: usize,
    /// Most idle pipes kept in each thread's lock-free cache. Default 8.
    /// `0` turns the thread caches off (every get and put locks).
    pub local_cap: usize,
    /// Most idle pipes kept by the pool in all; a pipe given back past this
    /// is closed and counted as `closed_overflow`. Default: `max_pipes`.
    pub max_idle: usize,
    /// How long a pipe may sit idle before the pool closes it. Default 10 s.
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let max_pipes = crate::sys::fd_limit().map_or(4096, |n| (n / 4).clamp(16, 4096) as usize);
        PoolConfig {
            max_pipes,
            pipe_size: DEFAULT_PIPE_SIZE,
            local_cap: DEFAULT_LOCAL_CAP.min(max_pipes),
            max_idle: max_pipes,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl PoolConfig {
    /// Sets [`max_pipes`](PoolConfig::max_pipes); `max_idle` and
    /// `local_cap` follow it down when they were larger (set them after
    /// `max_pipes` to have them checked against it).
    pub fn max_pipes(mut self, n: usize) -> Self {
        self.max_pipes = n;
        self.max_idle = self.max_idle.min(n);
        self.local_cap = self.local_cap.min(n);
        self
    }

    /// Sets [`pipe_size`](PoolConfig::pipe_size).
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.pipe_size = bytes;
        self
    }

    /// Sets [`local_cap`](PoolConfig::local_cap).
    pub fn local_cap(mut self, n: usize) -> Self {
        self.local_cap = n;
        self
    }

    /// Sets [`max_idle`](PoolConfig::max_idle).
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// Sets [`idle_timeout`](PoolConfig::idle_timeout).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that cannot work:
    /// `pipe_size` of 0 or above [`MAX_PIPE_SIZE`], `local_cap` or
    /// `max_idle` above `max_pipes`, an `idle_timeout` of zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: String| Err(ConfigError { field, reason });
        if self.pipe_size == 0 {
            return err("pipe_size", "must be at least 1 byte (it is 0)".into());
        }
        if self.pipe_size > MAX_PIPE_SIZE {
            return err(
                "pipe_size",
                format!(
                    "{} is above the largest pipe size, {MAX_PIPE_SIZE}",
                    self.pipe_size
                ),
            );
        }
        if self.local_cap > self.max_pipes {
            return err(
                "local_cap",
                format!(
                    "{} is larger than max_pipes ({}): a thread could never fill its cache",
                    self.local_cap, self.max_pipes
                ),
            );
        }
        if self.max_idle > self.max_pipes {
            return err(
                "max_idle",
                format!(
                    "{} is larger than max_pipes ({})",
                    self.max_idle, self.max_pipes
                ),
            );
        }
        if self.idle_timeout.is_zero() {
            return err("idle_timeout", "must be longer than zero".into());
        }
        Ok(())
    }

    /// Builds a pool with this configuration.
    ///
    /// # Errors
    /// As [`validate`](PoolConfig::validate).
    pub fn build(self) -> Result<PipePool, ConfigError> {
        PipePool::new(self)
    }
}

/// A [`PoolConfig`] that cannot work, naming the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    /// The name of the offending field of [`PoolConfig`].
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid pipe pool config: `{}` {}",
            self.field, self.reason
        )
    }
}

impl Error for ConfigError {}

impl From<ConfigError> for io::Error {
    fn from(e: ConfigError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}
