//! Top layer: fork safety, a child process never uses a pipe of its parent.
//!
//! After `fork()` the child has copies of the parent's pipe fds, of its
//! pools' idle stacks and of the forking thread's caches. A pipe taken in
//! both processes would mix their bytes. So, with `pthread_atfork` handlers
//! installed when the first pool is built:
//!
//! - **prepare** (parent, before the fork): the forking thread takes the
//!   registry lock and every live pool's locks (`threads`, `idle`, reaper),
//!   in the crate's lock order. No other thread holds a pool lock at the
//!   instant of the fork, so none is left locked forever in the child.
//! - **parent** (after): releases them.
//! - **child** (after, in the child's only thread): every pool forgets its
//!   parent's pipes: its idle stack and every thread cache are emptied and
//!   their pipes closed (the child's copies of the fds only), the caches of
//!   threads that do not exist in the child leave the registry, the pool
//!   moves to a new generation (so an inherited pipe still on loan, made
//!   in an older one, is closed when given back, not pooled), its counters
//!   restart from zero and its reaper is
//!   marked not started (the child's first new pipe starts one). Then the
//!   locks are released.
//!
//! The crate's process-wide values are fork-safe too: the registration of
//! the handlers ([`install`]) and whether the heavy fence works
//! (`sync::heavy_fence_available`) use no `Once` that a fork could leave
//! half-run in the child, and the global pool is initialised under a lock
//! that `prepare` takes ([`without_fork`]).
//!
//! A cache whose thread was inside a get or put at the instant of the fork
//! may be mid-update in the child's copy of memory: its pipes are left
//! alone (their fds stay open in the child, never used) rather than read.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard, PoisonError};

use super::local;
use super::registry::{pools, PoolGuards, Pools, SharedPool};
use super::store::Idle;
use crate::sync::{Arc, BACKGROUND};

/// [`INSTALLED`]: not installed, nor being installed.
const NOT_INSTALLED: u64 = 0;
/// [`INSTALLED`]: the handlers are registered (in this process or, since
/// a child inherits them, in the parent before the fork).
const DONE: u64 = u64::MAX;

/// Where the handlers' registration stands: [`NOT_INSTALLED`], [`DONE`],
/// or the id of the process whose thread is registering them.
///
/// Not a `std::sync::Once`: a fork while another thread is inside
/// `call_once` leaves the child's copy running forever, and the child's
/// first pool would block on it. Here a child that finds its parent's id
/// takes the registration over; if the parent had registered before the
/// fork, the `child` handler ran first and set [`DONE`], so nothing is
/// registered twice.
static INSTALLED: AtomicU64 = AtomicU64::new(NOT_INSTALLED);

/// Installs the handlers, once per process. (Not under loom: see
/// `sync::BACKGROUND`.) Another thread of this process registering them
/// meanwhile is waited for.
pub(super) fn install() {
    if !BACKGROUND {
        return;
    }
    let me = u64::from(std::process::id());
    loop {
        let state = INSTALLED.load(Ordering::Acquire);
        if state == DONE {
            return;
        }
        if state == me {
            // Another thread of ours is registering them: a short call.
            std::thread::yield_now();
            continue;
        }
        // Not started, or started by the parent of this forked child
        // before it registered (else `child` had set DONE).
        if INSTALLED
            .compare_exchange(state, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // Without the handlers a fork is as unsafe as before; nothing
            // else changes, so a failure (ENOMEM) is not worth failing a
            // pool for.
            let _ = crate::sys::at_fork(prepare, parent, child);
            INSTALLED.store(DONE, Ordering::Release);
            return;
        }
    }
}

/// Held around the initialisation of a process-wide value of the crate
/// (the global pool) and by the forking thread from `prepare` to
/// `parent`/`child`: no such value is ever half-initialised in a child.
static INIT: StdMutex<()> = StdMutex::new(());

/// Runs `init` with no fork in between (once the handlers are
/// installed: call [`install`] first).
pub(super) fn without_fork<R>(init: impl FnOnce() -> R) -> R {
    let _held = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    init()
}

/// What the forking thread holds between `prepare` and `parent`/`child`.
struct Held {
    /// Borrow from `pools`; released before `pools` is dropped.
    guards: Vec<PoolGuards<'static>>,
    pools: Vec<Arc<SharedPool>>,
    registry: StdMutexGuard<'static, Pools>,
    /// [`INIT`], taken first and released last.
    init: StdMutexGuard<'static, ()>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

extern "C" fn prepare() {
    let init = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    let registry = pools();
    let live: Vec<Arc<SharedPool>> = registry.list.iter().filter_map(|w| w.upgrade()).collect();
    let guards = live
        .iter()
        .map(|pool| {
            // SAFETY: the `Arc` this points into is kept in `Held::pools`,
            // and `release` drops every guard before it drops `pools`: the
            // `'static` borrow never outlives the `SharedPool`.
            let pool: &'static SharedPool = unsafe { &*(&**pool as *const SharedPool) };
            pool.lock_all()
        })
        .collect();
    let held = Held {
        guards,
        pools: live,
        registry,
        init,
    };
    let _ = HELD.try_with(|h| *h.borrow_mut() = Some(held));
}

extern "C" fn parent() {
    if let Some(held) = take_held() {
        release(held);
    }
}

extern "C" fn child() {
    // The handlers were registered before the fork (they run): the
    // child's copy of the registration may still say "in progress".
    INSTALLED.store(DONE, Ordering::Release);
    let Some(mut held) = take_held() else { return };
    let own = local::this_thread_cells();
    let mut inherited: Vec<Idle> = Vec::new();
    for (pool, (threads, idle, started)) in held.pools.iter().zip(&mut held.guards) {
        inherited.append(idle);
        for cell in threads.iter().map(|c| c.cell()) {
            if let Some(pipes) = cell.take_all_after_fork() {
                inherited.extend(pipes);
            }
        }
        threads.retain(|cell| own.iter().any(|c| cell.is(*c)));
        pool.reset_after_fork(started);
    }
    release(held);
    // The child's copies of the parent's pipes: closed, never reused.
    drop(inherited);
}

fn take_held() -> Option<Held> {
    HELD.try_with(|h| h.borrow_mut().take()).ok().flatten()
}

/// Unlocks in reverse order, then drops the pool references (which may run
/// `SharedPool::drop`, and that takes the registry lock).
fn release(held: Held) {
    let Held {
        guards,
        pools,
        registry,
        init,
    } = held;
    drop(guards);
    drop(registry);
    drop(pools);
    drop(init);
}
