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
//! A cache whose thread was inside a get or put at the instant of the fork
//! may be mid-update in the child's copy of memory: its pipes are left
//! alone (their fds stay open in the child, never used) rather than read.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::sync::{MutexGuard as StdMutexGuard, Once};

use super::local;
use super::registry::{pools, PoolGuards, Pools, SharedPool};
use super::store::Idle;
use crate::sync::{Arc, BACKGROUND};

/// Installs the handlers, once per process. (Not under loom: see
/// `sync::BACKGROUND`.)
pub(super) fn install() {
    if !BACKGROUND {
        return;
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Without the handlers a fork is as unsafe as before; nothing else
        // changes, so a failure (ENOMEM) is not worth failing a pool for.
        let _ = crate::sys::at_fork(prepare, parent, child);
    });
}

/// What the forking thread holds between `prepare` and `parent`/`child`.
struct Held {
    /// Borrow from `pools`; released before `pools` is dropped.
    guards: Vec<PoolGuards<'static>>,
    pools: Vec<Arc<SharedPool>>,
    registry: StdMutexGuard<'static, Pools>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

extern "C" fn prepare() {
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
    };
    let _ = HELD.try_with(|h| *h.borrow_mut() = Some(held));
}

extern "C" fn parent() {
    if let Some(held) = take_held() {
        release(held);
    }
}

extern "C" fn child() {
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
    } = held;
    drop(guards);
    drop(registry);
    drop(pools);
}
