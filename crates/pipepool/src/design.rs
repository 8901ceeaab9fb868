//! How the pool works, and the invariants it keeps. (Documentation only.)
//!
//! # Layers
//! 1. **Thread cache** (`pool/local.rs`). A thread-local table indexed by
//!    pool id; each entry is a `Vec` of idle pipes (oldest first, at most
//!    `local_cap`) touched only by its thread. `get` pops, `put` pushes; the
//!    only shared-memory traffic is a relaxed load and store of the thread's
//!    own counters and a relaxed load of the pool's coarse clock. No lock,
//!    no read-modify-write atomic, no syscall.
//! 2. **Shared pool** (`pool/shared.rs`). A mutex-guarded stack of idle
//!    pipes. A thread cache that runs empty takes `local_cap / 2 + 1` pipes
//!    at once; one that runs full gives its `local_cap / 2` oldest back. The
//!    stack length is mirrored in an atomic so an empty stack is skipped
//!    without locking. Pipes are created and closed outside the lock.
//! 3. **Creation** (`Shared::create`). A new pipe is made only after
//!    reserving a place in `live` with a compare-and-swap below `max_pipes`;
//!    at the bound `get` returns [`GetError::Exhausted`](crate::GetError) at
//!    once. `pipe2(O_CLOEXEC|O_NONBLOCK)` then `F_SETPIPE_SZ(pipe_size)`: if
//!    the kernel refuses the size, the pipe is kept at its real size, which
//!    [`Pipe::capacity`](crate::Pipe::capacity) and the statistics report.
//! 4. **Reaper** (`pool/reaper.rs`). One thread per pool, started with the
//!    first pipe. While pipes are alive it wakes every tick
//!    (`idle_timeout / 4`), moves the coarse clock forward and closes shared
//!    pipes idle for `idle_timeout + tick` by the clock. With no pipe alive it
//!    sleeps until one is created.
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
//! - **Ids are unique.** A pool id is released only when the pool's shared
//!   state is dropped, and every thread cache holds a strong reference to
//!   that state, so a thread's slot `i` always belongs to the one live pool
//!   with id `i`.
//!
//! # Timing of reclamation
//! The clock lags real time by at most one tick while pipes are alive and the
//! reaper thread is scheduled on time, so a pipe is never closed before it
//! was idle `idle_timeout`, and a pipe in the shared pool is closed by about
//! `idle_timeout + 3 * tick` (= 1.75 x `idle_timeout`), without any call into
//! the pool. (If the reaper is starved of CPU, pipes given back meanwhile
//! carry an old stamp and may be closed early: only a lost reuse, never a
//! lost byte.)
//!
//! Thread caches are not visible to the reaper (that is the price of a fast
//! path without atomics). A thread moves its stale pipes to the shared pool
//! whenever it gives a pipe back, and all of them when it exits or calls
//! [`PipePool::flush_local`](crate::PipePool::flush_local). So the exact
//! bound on pipes that outlive `idle_timeout` is **`local_cap` pipes per
//! thread that has not given a pipe back to this pool since they went idle**
//! (default `local_cap`: 8, so 16 fds per such thread).
//!
//! # Compared with HAProxy and Go
//! HAProxy's pool has the same two layers but never frees an idle pipe; Go's
//! `sync.Pool` frees idle pipes only when the garbage collector runs, and
//! has no bound. This pool bounds both the live pipes and how long idle ones
//! live.
