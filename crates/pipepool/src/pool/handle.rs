//! Top layer: [`PipePool`], the handle users hold, and its guards
//! [`PooledPipe`] and [`OwnedPipe`].
//!
//! The guards give their users no `&mut Pipe`: they deref to `&Pipe` (to
//! read `len`, `capacity`, ...) and forward the operations that change the
//! pipe (`splice_from`, `splice_to`, `write`, `read`). So a pooled pipe
//! cannot be swapped for another pipe (`mem::swap` needs two `&mut Pipe`),
//! and a put always gives back the pipe the get handed out: the pool needs
//! no tag on its pipes to tell its own from others'.

use std::fmt;
use std::io;
use std::ops::Deref;
use std::os::fd::AsFd;

use super::config::{ConfigError, PoolBuilder, PoolConfig};
use super::error::GetError;
use super::registry::SharedPool;
use super::stats::{CloseReason, PoolStats};
use super::store::{Idle, Pooled};
use super::{fork, local, reaper};
use crate::sync::{Arc, Pipe, PipeMut};

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
/// let pool = PoolConfig::builder().max_pipes(2).build()?;
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
    pub(super) id: usize,
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
        reaper::stop(&self.shared);
    }
}

impl PipePool {
    /// Builds a pool. (A [`PoolConfig`] is valid by construction: see
    /// [`PoolBuilder::config`].)
    pub fn new(config: PoolConfig) -> PipePool {
        fork::install();
        let shared = SharedPool::new(config);
        PipePool {
            _handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
            id: shared.id,
            shared,
        }
    }

    /// A builder starting from [`PoolConfig::default()`]; the same as
    /// [`PoolConfig::builder`].
    pub fn builder() -> PoolBuilder {
        PoolConfig::builder()
    }

    /// The process-wide pool, built with [`PoolConfig::default()`] on first
    /// use. The copy functions use it unless given another pool.
    pub fn global() -> &'static PipePool {
        static GLOBAL: std::sync::OnceLock<PipePool> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| PipePool::new(PoolConfig::default()))
    }

    fn shared(&self) -> &Arc<SharedPool> {
        &self.shared
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        self.shared().config()
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
    fn get_slow(&self) -> Result<Box<Pooled>, GetError> {
        if let Some(pipe) = local::refill(self.shared()) {
            return Ok(pipe);
        }
        let pipe = self.shared().store.create()?;
        // A pipe alive: make sure a reaper watches it.
        reaper::ensure_awake(self.shared());
        Ok(pipe)
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
        Ok(OwnedPipe {
            pool: self.clone(),
            pipe: Some(guard.into_box()),
        })
    }

    /// Gives a pipe back. Only a guard calls this, with the pipe it got
    /// from this pool: guards hand out no `&mut Pipe`, so no other pipe can
    /// have taken its place.
    #[inline]
    fn put(&self, pipe: Box<Pooled>) {
        let shared = self.shared();
        if !pipe.pipe.is_empty() || pipe.generation != shared.store.generation() {
            return self.put_odd(pipe);
        }
        if let Err(pipe) = local::push(shared, self.id, pipe) {
            self.put_shared(pipe);
        }
    }

    /// A pipe with bytes inside is closed, never pooled. A pipe made before
    /// a `fork()` (on loan across it) is the parent's too: the child closes
    /// its copy, uncounted (its counters restarted at the fork).
    #[cold]
    #[inline(never)]
    fn put_odd(&self, pipe: Box<Pooled>) {
        if pipe.generation != self.shared().store.generation() {
            return drop(pipe);
        }
        self.shared().store.close(pipe, CloseReason::Dirty);
    }

    /// No usable thread cache: straight to the shared pool.
    #[cold]
    #[inline(never)]
    fn put_shared(&self, pipe: Box<Pooled>) {
        let shared = self.shared();
        let stamp = shared.store.now();
        local::give_back(shared, [Idle { pipe, stamp }]);
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
        self.shared().store.trim()
    }

    /// Moves the pool's clock to `now_ms` and closes the pipes idle for
    /// `idle_timeout`, as the reaper would. Returns how many. (There is no
    /// reaper thread under loom.)
    #[cfg(test)]
    #[allow(dead_code)] // the loom models' (built with `pipepool_loom` only)
    pub(super) fn reap_at(&self, now_ms: u64) -> usize {
        self.shared().store.set_clock(now_ms);
        self.shared().reap()
    }

    /// How many threads hold a cache for this pool (registered, not yet
    /// retired by their TLS destructor): loom's `join` returns before the
    /// joined thread's TLS destructors have run (std's waits for them), so
    /// a model waits on this to see a thread's exit complete.
    #[cfg(test)]
    #[allow(dead_code)] // the loom models' (built with `pipepool_loom` only)
    pub(super) fn thread_caches(&self) -> usize {
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

/// The operations that change a pipe, forwarded by both guards: the guards
/// hand out `&Pipe` only (see the module docs).
macro_rules! forward_pipe_ops {
    ($guard:ty, $name:literal) => {
        impl $guard {
            /// The pool the pipe came from.
            pub fn pool(&self) -> &PipePool {
                &self.pool
            }

            /// [`Pipe::splice_from`] on the pooled pipe: `splice(2)` up to
            /// `max` bytes from `src` into the pipe.
            ///
            /// # Errors
            /// As [`Pipe::splice_from`]: `WouldBlock` (`src` has nothing, or
            /// the pipe is full), `EINVAL` (`src` cannot be spliced), `src`'s
            /// read errors.
            pub fn splice_from(&mut self, src: impl AsFd, max: usize) -> io::Result<usize> {
                self.pipe_mut().splice_from(src, max)
            }

            /// [`Pipe::splice_to`] on the pooled pipe: `splice(2)` up to `max`
            /// of the bytes it holds into `dst`.
            ///
            /// # Errors
            /// As [`Pipe::splice_to`]: `WouldBlock` (`dst` is full), `EINVAL`
            /// (`dst` takes no splice), `dst`'s write errors.
            pub fn splice_to(&mut self, dst: impl AsFd, max: usize) -> io::Result<usize> {
                self.pipe_mut().splice_to(dst, max)
            }

            /// [`Pipe::write`] on the pooled pipe: copies bytes from memory
            /// into it.
            ///
            /// # Errors
            /// `WouldBlock` when the pipe is full.
            pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.pipe_mut().write(buf)
            }

            /// [`Pipe::read`] on the pooled pipe: copies bytes out of it into
            /// memory (`Ok(0)` at once when it is empty).
            ///
            /// # Errors
            /// What `read(2)` returns on a pipe that holds bytes, which in
            /// practice is nothing.
            pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.pipe_mut().read(buf)
            }

            /// [`splice_from`](Self::splice_from) with the typed errno, for
            /// the crate's own copy loops.
            #[allow(dead_code)] // not every build has a copy loop
            pub(crate) fn splice_from_errno(
                &mut self,
                src: impl AsFd,
                max: usize,
            ) -> crate::sys::Result<usize> {
                self.pipe_mut().splice_from_errno(src, max)
            }

            /// [`splice_to`](Self::splice_to) with the typed errno.
            #[allow(dead_code)]
            pub(crate) fn splice_to_errno(
                &mut self,
                dst: impl AsFd,
                max: usize,
            ) -> crate::sys::Result<usize> {
                self.pipe_mut().splice_to_errno(dst, max)
            }

            /// [`read`](Self::read) with the typed errno.
            #[allow(dead_code)]
            pub(crate) fn read_errno(&mut self, buf: &mut [u8]) -> crate::sys::Result<usize> {
                self.pipe_mut().read_errno(buf)
            }

            fn pooled(&self) -> &Pooled {
                self.pipe
                    .as_ref()
                    .expect(concat!($name, " holds its pipe until dropped"))
            }
        }

        impl Deref for $guard {
            type Target = Pipe;
            #[inline]
            fn deref(&self) -> &Pipe {
                &self.pooled().pipe
            }
        }

        /// The crate's own code (which swaps nothing) may pass the pipe on.
        impl PipeMut for $guard {
            #[inline]
            fn pipe_mut(&mut self) -> &mut Pipe {
                &mut self
                    .pipe
                    .as_mut()
                    .expect(concat!($name, " holds its pipe until dropped"))
                    .pipe
            }
        }

        impl Drop for $guard {
            #[inline]
            fn drop(&mut self) {
                if let Some(pipe) = self.pipe.take() {
                    self.pool.put(pipe);
                }
            }
        }

        impl fmt::Debug for $guard {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple($name)
                    .field(&self.pipe.as_ref().map(|p| &p.pipe))
                    .finish()
            }
        }
    };
}

/// A pipe on loan from a [`PipePool`]; derefs to `&`[`Pipe`] and forwards
/// the operations that change it ([`splice_from`](PooledPipe::splice_from),
/// [`splice_to`](PooledPipe::splice_to), [`write`](PooledPipe::write),
/// [`read`](PooledPipe::read)).
///
/// Given back on drop if empty, closed otherwise (counted as `closed_dirty`).
///
/// It hands out no `&mut Pipe`, so the pooled pipe cannot be swapped for
/// another one:
/// ```compile_fail
/// let pool = pipepool::PipePool::global();
/// let (mut a, mut b) = (pool.get().unwrap(), pool.get().unwrap());
/// std::mem::swap(&mut *a, &mut *b); // no `DerefMut`
/// ```
pub struct PooledPipe<'a> {
    pool: &'a PipePool,
    /// Always `Some`, taken out only in `drop` (or by `get_owned`).
    pipe: Option<Box<Pooled>>,
}

impl PooledPipe<'_> {
    /// Takes the pipe out without giving it back.
    fn into_box(mut self) -> Box<Pooled> {
        self.pipe
            .take()
            .expect("PooledPipe holds its pipe until dropped")
    }
}

forward_pipe_ops!(PooledPipe<'_>, "PooledPipe");

/// A pipe on loan from a [`PipePool`] that owns a handle to the pool, so it
/// is `Send + 'static`: it can move into a spawned thread or task. Like
/// [`PooledPipe`], it derefs to `&`[`Pipe`] and forwards the operations
/// that change it; given back on drop if empty, closed otherwise (counted
/// as `closed_dirty`).
///
/// From [`PipePool::get_owned`]. (sharded-slab's `Entry` / `OwnedEntry`
/// pair is the model.)
///
/// ```compile_fail
/// let pool = pipepool::PipePool::global();
/// let mut a = pool.get_owned().unwrap();
/// let mut mine = pipepool::Pipe::new().unwrap();
/// std::mem::swap(&mut *a, &mut mine); // no `DerefMut`
/// ```
pub struct OwnedPipe {
    pool: PipePool,
    /// Always `Some`, taken out only in `drop`.
    pipe: Option<Box<Pooled>>,
}

forward_pipe_ops!(OwnedPipe, "OwnedPipe");

/// (Here rather than in `config.rs`: the configuration is a leaf, the pool
/// it builds the top.)
impl PoolBuilder {
    /// Builds a pool with this configuration.
    ///
    /// # Errors
    /// As [`validate`](PoolBuilder::validate).
    pub fn build(self) -> Result<PipePool, ConfigError> {
        Ok(PipePool::new(self.config()?))
    }
}
