//! Leaf: one pool's idle stack, its bound, its coarse clock and its
//! counters. Knows nothing of thread caches, the reaper or other pools.
//!
//! The stack is LIFO behind a mutex; its length is mirrored in an atomic so
//! that an empty stack is skipped without locking. Pipes are created and
//! closed outside the lock; the lock only guards pushes and pops of whole
//! batches.

use super::config::PoolConfig;
use super::error::GetError;
use super::stats::{CloseReason, Counters};
use crate::sync::{lock, AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering::*};
use crate::sync::{Instant, Pipe};

/// A pipe of a pool: the pipe, and the pool's generation when it was made.
/// Boxed once at creation, so the pool moves a pointer, not the pipe, on
/// every get and put.
#[derive(Debug)]
pub(super) struct Pooled {
    pub(super) pipe: Pipe,
    /// [`Store::generation`] when the pipe was created. A pipe on loan
    /// across a `fork()` is given back in the child with an older
    /// generation: it is the parent's too, so the child closes it instead
    /// of pooling it.
    pub(super) generation: u64,
}

/// An idle pipe and when it became idle.
#[derive(Debug)]
pub(super) struct Idle {
    pub(super) pipe: Box<Pooled>,
    /// [`Store::now`] when the pipe was given back.
    pub(super) stamp: u64,
}

/// The idle stack, the live count, the clock and the counters of one pool.
#[derive(Debug)]
pub(super) struct Store {
    pub(super) config: PoolConfig,
    /// Idle pipes, newest last. Invariant: every pipe in it is empty.
    idle: Mutex<Vec<Idle>>,
    /// `idle.len()`, readable without the lock (to skip locking an empty
    /// stack, as HAProxy does, and for statistics).
    idle_len: AtomicUsize,
    /// Pipes alive or being created: never above `config.max_pipes`.
    live: AtomicUsize,
    /// Coarse clock in milliseconds since `start`, advanced by the reaper
    /// (and by the slow path), read by the fast path to stamp idle pipes.
    /// It only moves forward.
    clock: AtomicU64,
    /// Moves forward by one in a forked child (the fork handler): the pipes
    /// made before are the parent's. Read on every put, beside `clock`.
    generation: AtomicU64,
    start: Instant,
    /// `idle_timeout` in clock units.
    timeout_ms: u64,
    /// How often the reaper wakes while pipes are alive: `idle_timeout / 8`,
    /// half the reclamation slack *tick* (`idle_timeout / 4`): a pipe is
    /// closed between `idle_timeout` and `idle_timeout + tick` after it was
    /// given back, because the clock lags by up to one period and a pass
    /// comes at most one period late.
    period_ms: u64,
    pub(super) counters: Counters,
    /// Set when the last [`PipePool`](crate::PipePool) handle is dropped:
    /// pipes given back from then on are closed.
    closed: AtomicBool,
}

impl Store {
    pub(super) fn new(config: PoolConfig) -> Store {
        let timeout_ms = u64::try_from(config.idle_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Store {
            idle: Mutex::new(Vec::new()),
            idle_len: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            start: Instant::now(),
            timeout_ms,
            period_ms: (timeout_ms / 8).max(1),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            config,
        }
    }

    /// The coarse clock: at most one reaper period behind real time while
    /// any pipe is alive.
    #[inline]
    pub(super) fn now(&self) -> u64 {
        self.clock.load(Relaxed)
    }

    /// The pool's fork generation: pipes made with another are a parent
    /// process's.
    #[inline]
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// Moves the clock to real time (under loom, time stands still unless
    /// a model moves it with [`set_clock`](Store::set_clock)).
    pub(super) fn advance_clock(&self) {
        self.set_clock(self.start.elapsed_ms());
    }

    /// Moves the clock forward to `ms`.
    pub(super) fn set_clock(&self, ms: u64) {
        self.clock.fetch_max(ms, Relaxed);
    }

    /// How often the reaper wakes while pipes are alive.
    pub(super) fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// Whether a pipe stamped `stamp` has been idle for at least
    /// `idle_timeout`, allowing for the stamp lagging real time by up to
    /// one reaper period.
    #[inline]
    pub(super) fn is_stale(&self, stamp: u64, now: u64) -> bool {
        now.saturating_sub(stamp) >= self.timeout_ms + self.period_ms
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    pub(super) fn live(&self) -> usize {
        self.live.load(SeqCst)
    }

    /// Idle pipes in the stack (without locking it).
    pub(super) fn idle_len(&self) -> usize {
        self.idle_len.load(Relaxed)
    }

    /// Locks the stack (the fork handler holds it across `fork()`).
    pub(super) fn lock_idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        lock(&self.idle)
    }

    /// Appends up to `n` idle pipes to `out`, oldest first (the newest
    /// last, where a `pop` finds it), for one get
    /// (counted once in `gets_shared`; the rest of the batch is counted in
    /// `gets_local` as the thread cache hands it out). Returns how many.
    pub(super) fn take_batch(&self, n: usize, out: &mut Vec<Idle>) -> usize {
        if self.idle_len.load(Relaxed) == 0 {
            return 0;
        }
        let mut idle = lock(&self.idle);
        let k = n.min(idle.len());
        let from = idle.len() - k;
        out.extend(idle.drain(from..));
        self.idle_len.store(idle.len(), Relaxed);
        drop(idle);
        if k > 0 {
            Counters::bump(&self.counters.gets_shared);
        }
        k
    }

    /// Takes back idle pipes. Those past `max_idle`, or given back after
    /// the pool was closed, are closed (outside the lock).
    pub(super) fn give_batch(&self, batch: impl IntoIterator<Item = Idle>) {
        let mut to_close = Vec::new();
        // `closed` is read under the lock: `close_all` sets it before its
        // `trim` takes the lock, so a batch either lands before the trim
        // (which closes it) or sees `closed` (and closes it here).
        let mut idle = lock(&self.idle);
        let reason = if self.is_closed() {
            to_close.extend(batch);
            CloseReason::Shutdown
        } else {
            for item in batch {
                debug_assert!(
                    item.pipe.pipe.is_empty(),
                    "a dirty pipe reached the idle stack"
                );
                if idle.len() < self.config.max_idle {
                    idle.push(item);
                } else {
                    to_close.push(item);
                }
            }
            self.idle_len.store(idle.len(), Relaxed);
            CloseReason::Overflow
        };
        drop(idle);
        for item in to_close {
            self.close(item.pipe, reason);
        }
    }

    /// Creates a new pipe if fewer than `max_pipes` are alive.
    pub(super) fn create(&self) -> Result<Box<Pooled>, GetError> {
        let max = self.config.max_pipes;
        let reserved = self
            .live
            .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1));
        if reserved.is_err() {
            Counters::bump(&self.counters.gets_refused);
            return Err(GetError::Exhausted { max_pipes: max });
        }
        self.advance_clock();
        match Pipe::with_size(self.config.pipe_size) {
            Ok(pipe) => {
                let c = &self.counters;
                Counters::bump(&c.created);
                Counters::bump(&c.gets_new);
                c.capacity_bytes.fetch_add(pipe.capacity() as u64, Relaxed);
                if !pipe.got_requested_size() {
                    Counters::bump(&c.undersized);
                    Counters::bump(&c.resize_failures);
                }
                Ok(Box::new(Pooled {
                    pipe,
                    generation: self.generation(),
                }))
            }
            Err(e) => {
                self.live.fetch_sub(1, AcqRel);
                Counters::bump(&self.counters.gets_failed);
                Err(GetError::Create(e))
            }
        }
    }

    /// Closes a pipe of this pool, counting why (by the pipe's own recorded
    /// capacity).
    pub(super) fn close(&self, pipe: Box<Pooled>, reason: CloseReason) {
        let (capacity, resized) = (pipe.pipe.capacity(), pipe.pipe.got_requested_size());
        drop(pipe);
        let c = &self.counters;
        c.capacity_bytes.fetch_sub(capacity as u64, Relaxed);
        if !resized {
            c.undersized.fetch_sub(1, Relaxed);
        }
        Counters::bump(c.closed(reason));
        self.live.fetch_sub(1, AcqRel);
    }

    /// Moves the pipes of the stack that are stale at `now` into `out`.
    pub(super) fn take_stale(&self, now: u64, out: &mut Vec<Idle>) {
        let mut idle = lock(&self.idle);
        let mut i = 0;
        while i < idle.len() {
            if self.is_stale(idle[i].stamp, now) {
                out.push(idle.swap_remove(i));
            } else {
                i += 1;
            }
        }
        // swap_remove broke the newest-last order; restore it so that
        // gets keep taking the warmest pipes.
        idle.sort_unstable_by_key(|item| item.stamp);
        self.idle_len.store(idle.len(), Relaxed);
    }

    /// Closes every pipe in the stack now. Returns how many.
    pub(super) fn trim(&self) -> usize {
        let all = {
            let mut idle = lock(&self.idle);
            self.idle_len.store(0, Relaxed);
            std::mem::take(&mut *idle)
        };
        let n = all.len();
        for item in all {
            self.close(item.pipe, CloseReason::Shutdown);
        }
        n
    }

    /// Marks the pool closed and closes the stack's pipes.
    pub(super) fn close_all(&self) {
        self.closed.store(true, Release);
        self.trim();
    }

    /// In a forked child, with the stack's lock held and its pipes already
    /// taken out: a new generation, and the counters restart.
    pub(super) fn reset_after_fork(&self) {
        self.generation.fetch_add(1, Relaxed);
        self.idle_len.store(0, Relaxed);
        self.live.store(0, SeqCst);
        self.counters.reset();
    }
}
