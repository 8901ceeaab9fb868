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
/// what you need with the builder methods, then [`build`](PoolConfig::build).
/// The `get_*` methods read the values back (the fields are private, so
/// that the defaults that follow `max_pipes` stay consistent).
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
/// assert_eq!(pool.config().get_max_pipes(), 256);
/// assert_eq!(pool.config().get_max_idle(), 256); // follows max_pipes
/// # Ok::<(), pipepool::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// See [`max_pipes`](PoolConfig::max_pipes).
    pub(crate) max_pipes: usize,
    /// See [`pipe_size`](PoolConfig::pipe_size).
    pub(crate) pipe_size: usize,
    /// See [`local_cap`](PoolConfig::local_cap). Invariant (unless set
    /// explicitly above it, which `validate` rejects): `<= max_pipes`.
    pub(crate) local_cap: usize,
    /// See [`max_idle`](PoolConfig::max_idle). Same invariant.
    pub(crate) max_idle: usize,
    /// See [`idle_timeout`](PoolConfig::idle_timeout).
    pub(crate) idle_timeout: Duration,
    /// Whether `local_cap` / `max_idle` were set by the user; if not they
    /// follow `max_pipes` (their defaults are derived from it).
    local_cap_set: bool,
    max_idle_set: bool,
}

/// Equal when the values are (whether a value was set or defaulted does
/// not matter).
impl PartialEq for PoolConfig {
    fn eq(&self, other: &Self) -> bool {
        (
            self.max_pipes,
            self.pipe_size,
            self.local_cap,
            self.max_idle,
            self.idle_timeout,
        ) == (
            other.max_pipes,
            other.pipe_size,
            other.local_cap,
            other.max_idle,
            other.idle_timeout,
        )
    }
}

impl Eq for PoolConfig {}

impl Default for PoolConfig {
    fn default() -> Self {
        let max_pipes = crate::sys::fd_limit().map_or(4096, |n| (n / 4).clamp(16, 4096) as usize);
        PoolConfig {
            max_pipes,
            pipe_size: DEFAULT_PIPE_SIZE,
            local_cap: DEFAULT_LOCAL_CAP.min(max_pipes),
            max_idle: max_pipes,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            local_cap_set: false,
            max_idle_set: false,
        }
    }
}

impl PoolConfig {
    /// Most pipes alive at once, in use and idle together (a bound on fds:
    /// 2 per pipe, and on kernel memory: `max_pipes * pipe_size`). At the
    /// bound, [`PipePool::get`] refuses instead of creating a pipe.
    /// Default: a quarter of the soft `RLIMIT_NOFILE`, clamped to 16..=4096.
    ///
    /// `max_idle` and `local_cap` follow: left at their defaults they become
    /// `max_pipes` and `min(8, max_pipes)`; set explicitly, they are lowered
    /// to `max_pipes` if larger (set them after `max_pipes` to have a value
    /// above it rejected by [`validate`](PoolConfig::validate) instead).
    pub fn max_pipes(mut self, n: usize) -> Self {
        self.max_pipes = n;
        self.max_idle = if self.max_idle_set {
            self.max_idle.min(n)
        } else {
            n
        };
        self.local_cap = if self.local_cap_set {
            self.local_cap.min(n)
        } else {
            DEFAULT_LOCAL_CAP.min(n)
        };
        self
    }

    /// The size asked of `F_SETPIPE_SZ` for each new pipe, in bytes.
    /// Default 1 MiB ([`DEFAULT_PIPE_SIZE`](crate::DEFAULT_PIPE_SIZE)).
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.pipe_size = bytes;
        self
    }

    /// Most idle pipes kept in each thread's lock-free cache. Default 8
    /// (at most `max_pipes`). `0` turns the thread caches off (every get and
    /// put locks).
    pub fn local_cap(mut self, n: usize) -> Self {
        self.local_cap = n;
        self.local_cap_set = true;
        self
    }

    /// Most idle pipes kept by the pool in all; a pipe given back past this
    /// is closed and counted as `closed_overflow`. Default: `max_pipes`.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n;
        self.max_idle_set = true;
        self
    }

    /// How long a pipe may sit idle before the pool closes it (it is closed
    /// after `idle_timeout` and before `idle_timeout * 5 / 4`, see
    /// [`crate::design`]). Default 10 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// The value set by [`max_pipes`](PoolConfig::max_pipes).
    pub fn get_max_pipes(&self) -> usize {
        self.max_pipes
    }

    /// The value set by [`pipe_size`](PoolConfig::pipe_size).
    pub fn get_pipe_size(&self) -> usize {
        self.pipe_size
    }

    /// The value set by [`local_cap`](PoolConfig::local_cap) (or its default).
    pub fn get_local_cap(&self) -> usize {
        self.local_cap
    }

    /// The value set by [`max_idle`](PoolConfig::max_idle) (or its default).
    pub fn get_max_idle(&self) -> usize {
        self.max_idle
    }

    /// The value set by [`idle_timeout`](PoolConfig::idle_timeout).
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
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
