//! How the pool works, and the invariants it keeps. (Documentation only.)
//!
//! # Modules, in layers
//! Each layer calls only the layers below it; none calls up (no callback,
//! no import of a higher module), and `pipe.rs` knows nothing of the pool.
//! - **Leaves**: `pool/config.rs` (the settings and their builder),
//!   `pool/stats.rs` (counters), `pool/error.rs`, `pool/store.rs` (one
//!   pool's idle stack, its bound `live`, its coarse clock and its
//!   counters; its fork generation), `pool/cell.rs` (one thread's cache
//!   for one pool and the handshake that lets the reaper into it).
//! - **Middle**: `pool/registry.rs`: a pool's shared state (`SharedPool`:
//!   its store, the registry of its threads' caches, the reaper's
//!   handshake) and the registry of pools (ids, the list the fork handlers
//!   lock).
//! - **Top**: `pool/handle.rs` (`PipePool`, `PooledPipe`, `OwnedPipe`),
//!   `pool/local.rs` (each thread's table of caches: the fast path),
//!   `pool/reaper.rs` (the reaper thread), `pool/fork.rs` (the fork
//!   handlers). Waking the reaper after a creation or a hand-back, and
//!   installing the fork handlers, happen here, not in the layers below.
//!
//! Under `--cfg pipepool_loom` only `sync.rs` changes (loom's atomics,
//! locks, cells and thread-locals, a mock pipe, a clock that stands still,
//! a `SeqCst` fence for `membarrier`, and `BACKGROUND = false`: no reaper
//! thread, no fork handlers); the layers build the same both ways.
//!
//! # How a get and a put go
//! 1. **Thread cache** (`pool/local.rs`, `pool/cell.rs`). A thread-local table of slots
//!    indexed by pool id (the first four slots inline in thread-local
//!    storage, so the fast path follows no pointer from the pool handle to
//!    the pipe; the others boxed); each slot is a `Vec` of idle pipes
//!    (oldest first, at most `local_cap`) filled and emptied only by its
//!    thread, and shared with the reaper through an asymmetric fence
//!    (below): the pool's registry holds a pointer to each slot's cell,
//!    taken out before the slot is freed or the thread's table destroyed. `get` pops, `put`
//!    pushes; around that the thread stores `busy = true`, issues a compiler
//!    fence, loads the reaper's `claimed` flag, and stores `busy = false`;
//!    it also stores its own counters and loads the pool's coarse clock. No
//!    lock, no read-modify-write atomic, no syscall, no hardware fence.
//! 2. **Shared pool** (`pool/store.rs`). A mutex-guarded stack of idle
//!    pipes. A thread cache that runs empty takes `local_cap / 2 + 1` pipes
//!    at once; one that runs full gives its `local_cap / 2` oldest back. The
//!    stack length is mirrored in an atomic so an empty stack is skipped
//!    without locking. Pipes are created and closed outside the lock.
//! 3. **Creation** (`Store::create`). A new pipe is made only after
//!    reserving a place in `live` with a compare-and-swap below `max_pipes`;
//!    at the bound `get` returns [`GetError::Exhausted`](crate::GetError) at
//!    once. `pipe2(O_CLOEXEC|O_NONBLOCK)` then `F_SETPIPE_SZ(pipe_size)`: if
//!    the kernel refuses the size, the pipe is kept at its real size, which
//!    [`Pipe::capacity`](crate::Pipe::capacity) and the statistics report.
//! 4. **Reaper** (`pool/reaper.rs`). One thread per pool, started with the
//!    first pipe. While pipes are alive it wakes every *period*
//!    (`idle_timeout / 8`, half a *tick* of `idle_timeout / 4`), moves the
//!    coarse clock forward and closes the pipes idle for
//!    `idle_timeout + period` by the clock: those of the shared stack, and
//!    those of every thread's cache (5). With no pipe alive it sleeps until
//!    one is created. Every creation and every hand-back to the shared pool
//!    checks a `sleeping` flag and wakes (or spawns again, if spawning
//!    failed) the reaper (the top layer does: `handle.rs` after a creation,
//!    `local.rs` after a hand-back); the reaper sets `sleeping` before it checks the
//!    live count, both `SeqCst`, so no wake-up is lost.
//! 5. **Reclaiming from thread caches** (`pool/cell.rs`; the heavy fence
//!    is `sync::heavy_fence`).
//!    Holding the pool's registry lock, the reaper sets `claimed` on each
//!    cache whose oldest pipe is stale (each cache publishes its count and
//!    the stamp of its oldest pipe; a cache of fresh pipes, a busy thread's
//!    usually, is left alone, so its gets and puts never fall back to the
//!    shared pool for the length of the fence), then calls
//!    `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: when it returns,
//!    every running thread of the process has executed a full memory
//!    barrier. It then reads each cache's `busy`: a cache not busy is the
//!    reaper's (it takes the stale pipes from the front) until it clears
//!    `claimed` with a release store. This is the store-buffer pattern with
//!    the owner's fence moved into the kernel: either the reaper sees
//!    `busy`, or the owner sees `claimed` (and uses the shared pool for
//!    that one call), or both. A busy cache is retried up to three times in
//!    the pass. Without `membarrier` (Linux < 4.14, seccomp), the reaper
//!    leaves caches alone and [`PoolStats::thread_cache_reclaim`](crate::PoolStats)
//!    is `false`.
//! 6. **Fork** (`pool/fork.rs`). `pthread_atfork` handlers: before the
//!    fork the forking thread takes the registry lock and every pool's
//!    locks (no other thread can hold one at the fork, so none is left
//!    locked in the child); after it, the parent just unlocks; the child
//!    empties every pool (idle stack and caches, closing its copies of the
//!    parent's fds), drops the caches of threads that do not exist in it,
//!    moves every pool to a new generation, zeroes the counters and
//!    marks the reaper not started, then unlocks.
//!
//! # Invariants
//! - **No byte crosses users.** A pipe enters an idle list only through
//!   `put`, which closes any pipe whose byte count is not zero
//!   (`closed_dirty`). [`Pipe`](crate::Pipe) counts every byte in and out
//!   through its own methods and never hands out its fds, so the count is
//!   exact.
//! - **The bound holds.** `live` (pipes alive plus creations in progress) is
//!   only raised by a successful CAS below `max_pipes`, and lowered exactly
//!   once per closed pipe or failed creation.
//! - **Nothing leaks.** Every pipe is in exactly one place: a guard, a thread
//!   cache, the shared stack, or a local variable on its way to be closed.
//!   A thread's caches are handed back by its thread-local destructor. When
//!   the last `PipePool` handle drops, the shared stack is closed and pipes
//!   given back later are closed on arrival.
//! - **A pool counts only its own pipes.** A guard derefs to `&Pipe` only
//!   and forwards the operations that change the pipe, so no user can swap
//!   a pooled pipe for another (`mem::swap` needs a `&mut Pipe`; swapping
//!   whole guards moves pool and pipe together). A put therefore always
//!   gives a pool back a pipe it made, and `live` and `capacity_bytes` are
//!   decremented by the pool that incremented them, by the pipe's own
//!   recorded capacity. No pool tag travels with the pipes, and no pipe of
//!   another pool (or of none) can arrive in a put.
//! - **No pipe crosses a fork.** A forked child never hands out a pipe it
//!   inherited: see (6). Those idle at the fork are closed by the handler;
//!   one on loan across the fork carries its pool's older generation
//!   (stamped in the pool's box at creation, compared on put with the
//!   pool's, which sits beside the clock the put reads anyway): the child
//!   closes it when it is given back, uncounted.
//! - **Ids are unique.** A pool id is released only when the pool's shared
//!   state is dropped, and every thread cache holds a strong reference to
//!   that state, so a thread's slot `i` always belongs to the one live pool
//!   with id `i`.
//!
//! # Timing of reclamation
//! **No pipe stays open more than `idle_timeout + tick` (`tick` =
//! `idle_timeout / 4`) after it was last given back, whether it sits in the
//! shared stack or in any thread's cache, and whether that thread is
//! running, parked or blocked; and none is closed before it was idle
//! `idle_timeout`.** The clock lags real time by at most one period (the
//! reaper moves it at every pass), so a pipe given back at `T` carries a
//! stamp in `[T - period, T]`; it is stale once the clock passes
//! `stamp + idle_timeout + period`, which is after `T + idle_timeout` and by
//! `T + idle_timeout + period`; the next pass, at most one period later,
//! closes it: by `T + idle_timeout + 2 * period = T + idle_timeout + tick`.
//!
//! The bound assumes the reaper thread is scheduled on time and, for pipes
//! in thread caches, that `membarrier` works (`PoolStats::thread_cache_reclaim`).
//! A cache whose thread is inside a get or put at every one of the three
//! tries of a pass waits for the next pass (one period later); such a thread
//! is busy with the pool and moves its own stale pipes out at its next put
//! anyway. A pass looks at the caches first and the shared stack second: a
//! refill that moves pipes from the shared stack into a cache in between
//! (or a spill the other way) takes them out of that pass's reach, so they
//! wait one period more. Without `membarrier`, the bound for thread caches is the old
//! one: a thread moves its stale pipes to the shared pool whenever it gives
//! a pipe back, and all of them when it exits or calls
//! [`PipePool::flush_local`](crate::PipePool::flush_local), so at most
//! `local_cap` pipes per quiet thread outlive `idle_timeout`. If the reaper
//! is starved of CPU, pipes given back meanwhile carry an old stamp and may
//! be closed early: only a lost reuse, never a lost byte.
//!
//! # Compared with HAProxy and Go
//! HAProxy's pool has the same two layers but never frees an idle pipe; Go's
//! `sync.Pool` frees idle pipes only when the garbage collector runs, and
//! has no bound. This pool bounds both the live pipes and how long idle ones
//! live.
