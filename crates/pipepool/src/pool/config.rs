//! Leaf: [`PoolConfig`], how a [`PipePool`](crate::PipePool) is sized, and
//! [`PoolBuilder`], which sets it and rejects a configuration that cannot
//! work. (`PoolBuilder::build`, which makes the pool, is `handle.rs`'s.)

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::sync::DEFAULT_PIPE_SIZE;

/// The largest pipe size accepted (1 GiB): `F_SETPIPE_SZ` takes an `int`
/// and rounds up to a power of two.
pub const MAX_PIPE_SIZE: usize = 1 << 30;

/// The default [`idle_timeout`](PoolConfig::idle_timeout): 10 seconds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`local_cap`](PoolConfig::local_cap): 8 idle pipes per thread.
pub const DEFAULT_LOCAL_CAP: usize = 8;

/// How a [`PipePool`](crate::PipePool) is sized: a valid configuration,
/// read with its getters. Made by [`PoolConfig::default()`] or by a
/// [`PoolBuilder`] ([`PoolConfig::builder`], [`PipePool::builder`](crate::PipePool::builder)),
/// which checks it; the fields are private, so that every `PoolConfig` is
/// one that works and the defaults that follow `max_pipes` stay consistent.
///
/// ```
/// use std::time::Duration;
/// use pipepool::PoolConfig;
///
/// let pool = PoolConfig::builder()
///     .max_pipes(256)
///     .pipe_size(256 * 1024)
///     .idle_timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(pool.config().max_pipes(), 256);
/// assert_eq!(pool.config().max_idle(), 256); // follows max_pipes
/// # Ok::<(), pipepool::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// See [`PoolBuilder::max_pipes`].
    pub(crate) max_pipes: usize,
    /// See [`PoolBuilder::pipe_size`]. In `1..=MAX_PIPE_SIZE`.
    pub(crate) pipe_size: usize,
    /// See [`PoolBuilder::local_cap`]. `<= max_pipes` (the builder
    /// rejects a value set above it).
    pub(crate) local_cap: usize,
    /// See [`PoolBuilder::max_idle`]. Same invariant.
    pub(crate) max_idle: usize,
    /// See [`PoolBuilder::idle_timeout`]. Not zero.
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
    /// A builder starting from [`PoolConfig::default()`].
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            config: PoolConfig::default(),
        }
    }

    /// A builder starting from this configuration.
    pub fn to_builder(&self) -> PoolBuilder {
        PoolBuilder {
            config: self.clone(),
        }
    }

    /// Most pipes alive at once (see [`PoolBuilder::max_pipes`]).
    pub fn max_pipes(&self) -> usize {
        self.max_pipes
    }

    /// The size asked for each new pipe (see [`PoolBuilder::pipe_size`]).
    pub fn pipe_size(&self) -> usize {
        self.pipe_size
    }

    /// Most idle pipes per thread cache (see [`PoolBuilder::local_cap`]).
    pub fn local_cap(&self) -> usize {
        self.local_cap
    }

    /// Most idle pipes in all (see [`PoolBuilder::max_idle`]).
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// How long a pipe may sit idle (see [`PoolBuilder::idle_timeout`]).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
}

/// Sets a [`PoolConfig`]: start from [`PoolConfig::builder`] (or
/// [`PipePool::builder`](crate::PipePool::builder)), change what you need,
/// then [`build`](PoolBuilder::build) the pool, or take the checked
/// [`config`](PoolBuilder::config).
///
/// ```
/// use pipepool::{PipePool, PoolConfig};
///
/// let config = PoolConfig::builder().max_pipes(64).config()?;
/// assert_eq!((config.max_pipes(), config.local_cap()), (64, 8));
/// let pool = PipePool::new(config);
/// # drop(pool);
/// let err = PoolConfig::builder().max_pipes(4).local_cap(5).config().unwrap_err();
/// assert_eq!(err.field(), "local_cap");
/// # Ok::<(), pipepool::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` or `config`"]
pub struct PoolBuilder {
    /// The values so far; checked only by `validate`.
    config: PoolConfig,
}

impl PoolBuilder {
    /// Most pipes alive at once, in use and idle together (a bound on fds:
    /// 2 per pipe, and on kernel memory: `max_pipes * pipe_size`). At the
    /// bound, [`PipePool::get`](crate::PipePool::get) refuses instead of creating a pipe.
    /// Default: a quarter of the soft `RLIMIT_NOFILE`, clamped to 16..=4096.
    ///
    /// `max_idle` and `local_cap` follow: left at their defaults they become
    /// `max_pipes` and `min(8, max_pipes)`; set explicitly, they are lowered
    /// to `max_pipes` if larger (set them after `max_pipes` to have a value
    /// above it rejected by [`config`](PoolBuilder::config) instead).
    pub fn max_pipes(mut self, n: usize) -> Self {
        let c = &mut self.config;
        c.max_pipes = n;
        c.max_idle = if c.max_idle_set { c.max_idle.min(n) } else { n };
        c.local_cap = if c.local_cap_set {
            c.local_cap.min(n)
        } else {
            DEFAULT_LOCAL_CAP.min(n)
        };
        self
    }

    /// The size asked of `F_SETPIPE_SZ` for each new pipe, in bytes.
    /// Default 1 MiB ([`DEFAULT_PIPE_SIZE`](crate::DEFAULT_PIPE_SIZE)).
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.config.pipe_size = bytes;
        self
    }

    /// Most idle pipes kept in each thread's lock-free cache. Default 8
    /// (at most `max_pipes`). `0` turns the thread caches off (every get and
    /// put locks).
    pub fn local_cap(mut self, n: usize) -> Self {
        self.config.local_cap = n;
        self.config.local_cap_set = true;
        self
    }

    /// Most idle pipes kept by the pool in all; a pipe given back past this
    /// is closed and counted as `closed_overflow`. Default: `max_pipes`.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.config.max_idle = n;
        self.config.max_idle_set = true;
        self
    }

    /// How long a pipe may sit idle before the pool closes it (it is closed
    /// after `idle_timeout` and before `idle_timeout * 5 / 4`, see
    /// [`crate::design`]). Default 10 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.idle_timeout = d;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that cannot work:
    /// `pipe_size` of 0 or above [`MAX_PIPE_SIZE`], `local_cap` or
    /// `max_idle` above `max_pipes`, an `idle_timeout` of zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        let err = |field, reason: String| Err(ConfigError { field, reason });
        if c.pipe_size == 0 {
            return err("pipe_size", "must be at least 1 byte (it is 0)".into());
        }
        if c.pipe_size > MAX_PIPE_SIZE {
            return err(
                "pipe_size",
                format!(
                    "{} is above the largest pipe size, {MAX_PIPE_SIZE}",
                    c.pipe_size
                ),
            );
        }
        if c.local_cap > c.max_pipes {
            return err(
                "local_cap",
                format!(
                    "{} is larger than max_pipes ({}): a thread could never fill its cache",
                    c.local_cap, c.max_pipes
                ),
            );
        }
        if c.max_idle > c.max_pipes {
            return err(
                "max_idle",
                format!("{} is larger than max_pipes ({})", c.max_idle, c.max_pipes),
            );
        }
        if c.idle_timeout.is_zero() {
            return err("idle_timeout", "must be longer than zero".into());
        }
        Ok(())
    }

    /// The configuration, checked.
    ///
    /// # Errors
    /// As [`validate`](PoolBuilder::validate).
    pub fn config(self) -> Result<PoolConfig, ConfigError> {
        self.validate()?;
        Ok(self.config)
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
