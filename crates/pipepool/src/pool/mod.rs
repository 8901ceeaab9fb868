//! [`PipePool`]: pooled pipes with a lock-free per-thread fast path, a bound,
//! and idle reclamation. See [`crate::design`] for the algorithm.

mod config;
mod fence;
#[cfg(not(pipepool_loom))]
mod fork;
mod ids;
mod local;
#[cfg(all(test, pipepool_loom))]
mod loom_models;
mod owned;
#[cfg(not(pipepool_loom))]
mod reaper;
mod shared;
mod stats;

use std::error::Error;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};

pub use config::{ConfigError, PoolConfig, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOCAL_CAP, MAX_PIPE_SIZE};
pub use owned::OwnedPipe;
pub use stats::PoolStats;

use shared::SharedPool;
use stats::CloseReason;

use crate::sync::Arc;

#[cfg(pipepool_loom)]
pub(crate) use crate::mock::Pipe;
#[cfg(not(pipepool_loom))]
pub(crate) use crate::pipe::Pipe;

/// A pipe still tagged by a pool was dropped outside it: taken out of a
/// guard with `mem::swap` through `&mut Pipe`. Its pool counts it closed
/// (as `closed_dirty`: it left the pool's hands), so the bound frees its
/// place.
#[cfg(not(pipepool_loom))]
#[cold]
pub(crate) fn pipe_dropped_outside(tag: u64, capacity: usize, resized: bool) {
    if let Some(owner) = ids::find(tag) {
        owner.account_close(capacity, resized, CloseReason::Dirty);
    }
}

/// A pool of pipes for splicing.
///
/// - [`get`](PipePool::get) hands out an empty pipe: from the calling
///   thread's cache (no lock, no syscall), else from the shared pool, else
///   a new one, unless [`max_pipes`](PoolConfig::max_pipes) are alive, in
///   which case it refuses at once with [`GetError::Exhausted`].
/// - Dropping the [`PooledPipe`] gives it back. A pipe that still holds
///   bytes is closed instead, so no byte can reach another user.
/// - Pipes idle for [`idle_timeout`](PoolConfig::idle_timeout) are closed by
///   a background thread, whether or not the pool is used again, and
///   wherever they sit: the shared pool or any thread's cache, whether that
///   thread runs, sleeps or is blocked. A pipe is closed after it was idle
///   at least `idle_timeout` and at most `idle_timeout * 5 / 4`. (Reclaiming
///   from thread caches needs `membarrier(2)`, Linux 4.14+; without it, see
///   [`PoolStats::thread_cache_reclaim`].)
/// - [`get_owned`](PipePool::get_owned) hands out an [`OwnedPipe`] that
///   holds its own handle to the pool (`Send + 'static`, for spawned tasks).
/// - A process that forks gets a fresh pool in the child: the inherited idle
///   pipes are closed there, never reused, the counters restart and a new
///   reaper starts with the child's first pipe.
///
/// `PipePool` is a cheap handle: clones share one pool. When the last handle
/// is dropped the pool closes its idle pipes, those in other threads'
/// caches included, and its reaper thread exits. (A cache its thread is
/// using at that instant, or every cache where `membarrier(2)` is missing,
/// is closed when its thread next uses any pool or exits.)
///
/// Most code uses the process-wide [`PipePool::global`] pool.
///
/// # Example
/// ```
/// use pipepool::{PipePool, PoolConfig};
///
/// let pool = PoolConfig::default().max_pipes(2).build()?;
/// {
///     let a = pool.get()?;
///     let _b = pool.get()?;
///     assert!(a.is_empty());
///     assert!(pool.get().is_err()); // at the bound: refused, never blocks
/// } // both given back
/// let again = pool.get()?; // reused, not created
/// assert_eq!(pool.stats().created, 2);
/// # drop(again);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PipePool {
    /// The pool itself, one pointer away from every get and put.
    shared: Arc<SharedPool>,
    /// `shared.id`, kept here: the fast path indexes this thread's slots
    /// with it, and every load saved on that chain counts.
    id: usize,
    /// Counts the user-facing handles: the pool shuts down when the last
    /// clone drops (thread caches hold `shared` too, so its count can't
    /// tell).
    _handle: Arc<Handle>,
}

/// Shuts the pool down when the last [`PipePool`] clone goes.
struct Handle {
    shared: Arc<SharedPool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        local::flush(&self.shared);
        self.shared.shut_down();
    }
}

impl PipePool {
    /// Builds a pool.
    ///
    /// # Errors
    /// A [`ConfigError`] when the configuration cannot work.
    pub fn new(config: PoolConfig) -> Result<PipePool, ConfigError> {
        config.validate()?;
        let shared = Arc::new(SharedPool::new(ids::acquire(), config));
        #[cfg(not(pipepool_loom))]
        ids::register(&shared);
        Ok(PipePool {
            _handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
            id: shared.id,
            shared,
        })
    }

    /// The process-wide pool, built with [`PoolConfig::default()`] on first
    /// use. The copy functions use it unless given another pool.
    ///
    /// # Panics
    /// Never: the default configuration always validates (`tests/pool.rs`
    /// checks it).
    #[cfg(not(pipepool_loom))]
    pub fn global() -> &'static PipePool {
        static GLOBAL: std::sync::OnceLock<PipePool> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| {
            PipePool::new(PoolConfig::default()).expect("the default pool config is valid")
        })
    }

    fn shared(&self) -> &Arc<SharedPool> {
        &self.shared
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared().config
    }

    /// An empty pipe, given back when the returned guard drops.
    ///
    /// # Errors
    /// - [`GetError::Exhausted`]: `max_pipes` pipes are alive. Nothing was
    ///   created and nothing blocked: copy through memory for this transfer.
    /// - [`GetError::Create`]: `pipe2` failed (`EMFILE`, `ENFILE`, `ENOMEM`).
    #[inline]
    pub fn get(&self) -> Result<PooledPipe<'_>, GetError> {
        let pipe = match local::pop(self.id) {
            Some(pipe) => pipe,
            None => self.get_slow()?,
        };
        Ok(PooledPipe {
            pool: self,
            pipe: Some(pipe),
        })
    }

    #[cold]
    fn get_slow(&self) -> Result<Box<Pipe>, GetError> {
        match local::refill(self.shared()) {
            Some(pipe) => Ok(pipe),
            None => SharedPool::create(self.shared()),
        }
    }

    /// An empty pipe, given back when the returned [`OwnedPipe`] drops.
    /// The guard holds its own handle to the pool, so it is `Send + 'static`
    /// and can move into a spawned thread or task; [`get`](PipePool::get)
    /// is a little cheaper where a borrow will do.
    ///
    /// ```
    /// use pipepool::PipePool;
    ///
    /// let pool = PipePool::global();
    /// let mut pipe = pool.get_owned()?;
    /// let worker = std::thread::spawn(move || {
    ///     pipe.write(b"moved")?;
    ///     let mut buf = [0u8; 5];
    ///     pipe.read(&mut buf)?;
    ///     assert!(pipe.is_empty());
    ///     Ok::<_, std::io::Error>(())
    /// }); // the pipe goes back to the pool when the thread drops it
    /// worker.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`get`](PipePool::get).
    pub fn get_owned(&self) -> Result<OwnedPipe, GetError> {
        let guard = self.get()?;
        Ok(OwnedPipe::new(self.clone(), guard.into_box()))
    }

    #[inline]
    fn put(&self, pipe: Box<Pipe>) {
        let shared = self.shared();
        if !pipe.is_empty() || pipe.pool_tag() != shared.tag() {
            return self.put_odd(pipe);
        }
        if let Err(pipe) = local::push(shared, self.id, pipe) {
            self.put_shared(pipe);
        }
    }

    /// A pipe with bytes inside is closed, never pooled; a pipe of another
    /// pool (swapped through `&mut Pipe`) goes back to its own pool.
    #[cold]
    #[inline(never)]
    fn put_odd(&self, pipe: Box<Pipe>) {
        if pipe.pool_tag() != self.shared().tag() {
            return SharedPool::put_foreign(pipe);
        }
        self.shared().close(pipe, CloseReason::Dirty);
    }

    /// No usable thread cache: straight to the shared pool.
    #[cold]
    #[inline(never)]
    fn put_shared(&self, pipe: Box<Pipe>) {
        let shared = self.shared();
        let stamp = shared.now();
        SharedPool::give_batch(shared, [shared::Idle { pipe, stamp }]);
    }

    /// A snapshot of the pool's statistics.
    pub fn stats(&self) -> PoolStats {
        self.shared().stats()
    }

    /// Hands the calling thread's cached pipes back to the shared pool (where
    /// the reaper sees them). For a thread about to go quiet for a long time.
    pub fn flush_local(&self) {
        local::flush(self.shared());
    }

    /// Closes every idle pipe of the shared pool now (not those cached by
    /// other threads). Returns how many were closed.
    pub fn trim(&self) -> usize {
        self.flush_local();
        self.shared().trim()
    }

    /// Moves the pool's clock to `now_ms` and closes the pipes idle for
    /// `idle_timeout`, as the reaper would. Returns how many. (There is no
    /// reaper thread under loom.)
    #[cfg(all(test, pipepool_loom))]
    fn reap_at(&self, now_ms: u64) -> usize {
        self.shared().set_clock(now_ms);
        self.shared().reap()
    }

    /// How many threads hold a cache for this pool (registered, not yet
    /// retired by their TLS destructor): loom's `join` returns before the
    /// joined thread's TLS destructors have run (std's waits for them), so
    /// a model waits on this to see a thread's exit complete.
    #[cfg(all(test, pipepool_loom))]
    fn thread_caches(&self) -> usize {
        self.shared().thread_count()
    }
}

impl fmt::Debug for PipePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipePool")
            .field("config", self.config())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A pipe on loan from a [`PipePool`]; derefs to [`Pipe`].
///
/// Given back on drop if empty, closed otherwise (counted as `closed_dirty`).
pub struct PooledPipe<'a> {
    pool: &'a PipePool,
    /// Always `Some`, taken out only in `drop`.
    pipe: Option<Box<Pipe>>,
}

impl PooledPipe<'_> {
    /// The pool the pipe came from.
    pub fn pool(&self) -> &PipePool {
        self.pool
    }

    /// Takes the pipe out without giving it back.
    fn into_box(mut self) -> Box<Pipe> {
        self.pipe
            .take()
            .expect("PooledPipe holds its pipe until dropped")
    }
}

impl Deref for PooledPipe<'_> {
    type Target = Pipe;
    fn deref(&self) -> &Pipe {
        self.pipe
            .as_ref()
            .expect("PooledPipe holds its pipe until dropped")
    }
}

impl DerefMut for PooledPipe<'_> {
    fn deref_mut(&mut self) -> &mut Pipe {
        self.pipe
            .as_mut()
            .expect("PooledPipe holds its pipe until dropped")
    }
}

impl Drop for PooledPipe<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            self.pool.put(pipe);
        }
    }
}

impl fmt::Debug for PooledPipe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PooledPipe").field(&self.pipe).finish()
    }
}

/// Why [`PipePool::get`] gave no pipe.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// `max_pipes` pipes are alive (pipes being closed at that moment by
    /// another thread or the reaper still count). Copy through memory
    /// instead.
    Exhausted {
        /// The pool's bound.
        max_pipes: usize,
    },
    /// Creating a pipe failed: the error of `pipe2` (or of sizing the
    /// pipe), also this error's `source()`.
    Create(io::Error),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Exhausted { max_pipes } => {
                write!(
                    f,
                    "pipe pool exhausted: all {max_pipes} pipes (max_pipes) are in use"
                )
            }
            GetError::Create(_) => f.write_str("could not create a pipe"),
        }
    }
}

impl Error for GetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GetError::Create(e) => Some(e),
            GetError::Exhausted { .. } => None,
        }
    }
}

impl From<GetError> for io::Error {
    fn from(e: GetError) -> io::Error {
        match e {
            GetError::Create(e) => e,
            e @ GetError::Exhausted { .. } => io::Error::other(e),
        }
    }
}
