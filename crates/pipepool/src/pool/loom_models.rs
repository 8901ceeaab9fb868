//! loom models of the pool logic, against the mock pipe (`crate::mock`):
//! loom cannot model syscalls, so the pipe only counts its creations and
//! drops, and asserts it is never dropped twice. The models live inside the
//! crate (`--cfg pipepool_loom` and `cfg(test)`), so nothing is public for
//! them.
//!
//! Every model checks, over all interleavings loom explores:
//! - no pipe is lost: once the pool is dropped and the threads are joined,
//!   `created == dropped`;
//! - none is closed twice (the mock panics);
//! - the bound holds: `created - dropped <= max_pipes` whenever a thread
//!   looks (after each get), and a get is refused only at the bound;
//! - a pipe handed out is empty;
//! - the reaper's reclamation from thread caches (the asymmetric fence of
//!   `cell.rs`, a `SeqCst` fence on both sides under loom) never touches a
//!   cache its owner is using: loom's `UnsafeCell` tracking fails the model
//!   on any concurrent access, and the counts prove no pipe is lost or
//!   closed twice while the reaper races get, put and thread exit.
//!
//! loom runs thread-local destructors when a thread exits, but its `join`
//! returns when the thread's closure has returned, *before* those
//! destructors ran (std's `join` waits for them). The models therefore wait,
//! after joining, until the exited threads' caches are retired
//! (`PipePool::thread_caches`) or their pipes dropped.
//!
//! Run with `ci/loom.sh` (`RUSTFLAGS="--cfg pipepool_loom"`, release with
//! debug assertions, `LOOM_MAX_PREEMPTIONS=2`).

use std::time::Duration;

use loom::thread;

use super::local::INLINE;
use crate::mock::{created, dropped};
use crate::{GetError, PipePool, PoolConfig, PooledPipe};

/// A pool for a model. No reaper runs under loom: the models move the
/// clock and reap by hand with `reap_at`.
fn pool(max_pipes: usize, local_cap: usize) -> PipePool {
    PoolConfig::builder()
        .max_pipes(max_pipes)
        .local_cap(local_cap)
        .max_idle(max_pipes)
        .idle_timeout(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// A get that must succeed, checked for emptiness and against the bound.
fn get(pool: &PipePool) -> PooledPipe<'_> {
    let pipe = match pool.get() {
        Ok(pipe) => pipe,
        Err(e) => panic!("get refused below the bound: {e}"),
    };
    assert!(pipe.is_empty(), "a get handed out a pipe with bytes in it");
    assert_bound(pool);
    pipe
}

/// A get that may be refused, but only at the bound.
fn try_get(pool: &PipePool) -> Option<PooledPipe<'_>> {
    match pool.get() {
        Ok(pipe) => {
            assert!(pipe.is_empty());
            assert_bound(pool);
            Some(pipe)
        }
        Err(GetError::Exhausted { max_pipes }) => {
            assert_eq!(max_pipes, pool.config().max_pipes());
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn assert_bound(pool: &PipePool) {
    let alive = created() - dropped();
    let max = pool.config().max_pipes();
    assert!(alive <= max, "{alive} pipes alive, max_pipes {max}");
}

/// Waits until only `n` threads hold a cache for `pool`: the others have
/// run their TLS destructors (handed their pipes back) to the end.
fn wait_thread_exits(pool: &PipePool, n: usize) {
    while pool.thread_caches() > n {
        thread::yield_now();
    }
}

/// At rest (no thread working), the statistics agree with the mock.
fn assert_at_rest(pool: &PipePool) {
    let s = pool.stats();
    assert_eq!(s.in_use, 0, "{s:?}");
    assert_eq!(s.live, s.idle, "{s:?}");
    assert_eq!(s.live as usize, created() - dropped(), "{s:?}");
    assert_eq!(s.created as usize, created(), "{s:?}");
}

/// Drops the last handle and checks that every pipe was closed once.
fn finish(pool: PipePool) {
    drop(pool);
    assert_eq!(created(), dropped(), "pipes lost");
}

#[test]
fn concurrent_get_put() {
    loom::model(|| {
        let pool = pool(2, 1);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    drop(get(&pool));
                    drop(get(&pool));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        wait_thread_exits(&pool, 0);
        assert_at_rest(&pool);
        assert!(created() <= 2);
        finish(pool);
    });
}

#[test]
fn concurrent_refill_and_spill() {
    loom::model(|| {
        // local_cap 2: holding two pipes and giving them back fills the
        // cache; the next put spills a batch to the shared pool, and a cache
        // that runs empty refills from it, while the other thread does the
        // same.
        let pool = pool(4, 2);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    // Up to 3 + 3 pipes wanted, 4 allowed: any get may be
                    // refused, but only at the bound.
                    let held = (try_get(&pool), try_get(&pool));
                    let third = try_get(&pool);
                    drop(held);
                    drop(third); // a full cache spills one
                    pool.flush_local();
                    drop(try_get(&pool)); // refill from the shared pool
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        wait_thread_exits(&pool, 0);
        assert_at_rest(&pool);
        finish(pool);
    });
}

#[test]
fn concurrent_get_put_at_the_bound() {
    loom::model(|| {
        // Two threads, one pipe allowed, no thread cache: one may be
        // refused, never both may hold a pipe.
        let pool = pool(1, 0);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || try_get(&pool).is_some())
            })
            .collect();
        let got = threads.into_iter().map(|t| t.join().unwrap());
        assert!(got.filter(|&ok| ok).count() >= 1, "both gets refused");
        wait_thread_exits(&pool, 0);
        assert_at_rest(&pool);
        assert_eq!(created(), 1);
        finish(pool);
    });
}

#[test]
fn thread_exit_hands_its_full_cache_back() {
    loom::model(|| {
        let pool = pool(3, 2);
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                let (a, b) = (get(&pool), get(&pool));
                drop(a);
                drop(b);
                // The cache is full (local_cap 2); exiting hands it back.
            })
        };
        // Meanwhile: a get here is served by the shared pool (if the worker
        // has exited) or creates a pipe; never more than max_pipes.
        drop(try_get(&pool));
        worker.join().unwrap();
        wait_thread_exits(&pool, 1); // this thread keeps its own cache
        assert_at_rest(&pool);
        let s = pool.stats();
        assert!(s.live >= 2, "the worker's cache was lost: {s:?}");
        finish(pool);
    });
}

#[test]
fn thread_exit_races_with_the_last_handle() {
    loom::model(|| {
        let pool = pool(2, 2);
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                drop(get(&pool));
                drop(pool);
                // The TLS destructor gives the cached pipe back, maybe to a
                // pool whose last handle is being dropped right now.
            })
        };
        drop(pool);
        worker.join().unwrap();
        // No handle is left to ask; wait for the worker's TLS destructor
        // through the mock. A lost pipe keeps this loop spinning until loom
        // gives up on the branch count, which fails the model.
        while dropped() < created() {
            thread::yield_now();
        }
        assert_eq!((created(), dropped()), (1, 1));
    });
}

#[test]
fn reclamation_races_with_get_and_put() {
    loom::model(|| {
        // local_cap 0: every get and put goes through the shared pool, where
        // the reaper works.
        let pool = pool(2, 0);
        drop((get(&pool), get(&pool))); // two idle pipes, stamped at time 0
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                // A get may be refused while the reaper is closing pipes:
                // they count against the bound until their fds are closed.
                drop(try_get(&pool));
                drop(try_get(&pool));
            })
        };
        // The reaper's pass at a time when the first two are stale.
        let reaped = pool.reap_at(1_000);
        worker.join().unwrap();
        wait_thread_exits(&pool, 1);
        assert!(reaped <= 2);
        assert_at_rest(&pool);
        let s = pool.stats();
        assert_eq!(s.closed_idle as usize, reaped);
        finish(pool);
    });
}

#[test]
fn reclamation_races_with_a_thread_cache() {
    loom::model(|| {
        // The worker's put may stamp with the old or the new clock, and may
        // move a stale cached pipe to the shared pool while the reaper runs.
        let pool = pool(2, 2);
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                drop((try_get(&pool), try_get(&pool)));
                drop(try_get(&pool));
            })
        };
        pool.reap_at(1_000);
        worker.join().unwrap();
        wait_thread_exits(&pool, 0);
        assert_at_rest(&pool);
        pool.reap_at(10_000); // everything in the shared pool is stale now
        let s = pool.stats();
        assert!(s.live <= 2);
        assert_eq!(s.closed_idle as usize + s.live as usize, created(), "{s:?}");
        finish(pool);
    });
}

#[test]
fn dirty_put_is_closed_never_handed_out() {
    loom::model(|| {
        let pool = pool(2, 1);
        let dirty = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut pipe = get(&pool);
                pipe.write(&[0]).unwrap();
                drop(pipe); // closed: it holds a byte
                drop(get(&pool)); // and the next get gets a clean one
            })
        };
        let clean = {
            let pool = pool.clone();
            thread::spawn(move || drop(get(&pool)))
        };
        dirty.join().unwrap();
        clean.join().unwrap();
        wait_thread_exits(&pool, 0);
        let s = pool.stats();
        assert_eq!(s.closed_dirty, 1, "{s:?}");
        assert_at_rest(&pool);
        finish(pool);
    });
}

#[test]
fn reaper_reclaims_a_quiet_threads_cache() {
    loom::model(|| {
        // The worker fills its cache and stays alive (it waits for the
        // main thread); the reaper, at a time when the pipes are stale,
        // must take them all without the worker's help.
        let pool = pool(2, 2);
        let (tx, rx) = loom::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = loom::sync::mpsc::channel::<()>();
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                drop((get(&pool), get(&pool)));
                tx.send(()).unwrap();
                go_rx.recv().unwrap(); // alive, not touching the pool
            })
        };
        rx.recv().unwrap(); // the worker's pipes are in its cache
        let reaped = pool.reap_at(1_000);
        assert_eq!(reaped, 2, "stale pipes left in a quiet thread's cache");
        go_tx.send(()).unwrap();
        worker.join().unwrap();
        wait_thread_exits(&pool, 0);
        assert_at_rest(&pool);
        assert_eq!(pool.stats().live, 0);
        finish(pool);
    });
}

#[test]
fn reclaim_races_with_get_and_put_on_a_cache() {
    loom::model(|| reclaim_while_the_owner_gets_and_puts(pool(2, 2)));
}

#[test]
fn reclaim_races_with_get_and_put_on_a_boxed_cache() {
    loom::model(|| {
        // More pools alive than a thread has inline slots: the pool built
        // next has an id past them, so a boxed slot, reclaimed the same way.
        // (Ids are process-wide: `ci/loom.sh` runs one model at a time.)
        let others: Vec<PipePool> = (0..INLINE).map(|_| pool(1, 1)).collect();
        let boxed = pool(2, 2);
        assert!(boxed.id >= INLINE, "pool id {} < {INLINE}", boxed.id);
        reclaim_while_the_owner_gets_and_puts(boxed);
        drop(others);
    });
}

/// The model body, on `pool` (`max_pipes` 2, `local_cap` 2).
fn reclaim_while_the_owner_gets_and_puts(pool: PipePool) {
    // The worker's cache holds a stale pipe; the reaper reclaims while
    // the worker gets and puts through that same cache. Either the
    // reaper takes the pipe (the worker then gets a new one) or the
    // worker does (the reaper skips the busy cache or sees it empty).
    drop(get(&pool)); // this thread's cache: one pipe, stamped at 0
    let (tx, rx) = loom::sync::mpsc::channel::<()>();
    let reaper = {
        let pool = pool.clone();
        thread::spawn(move || {
            rx.recv().unwrap();
            pool.reap_at(1_000)
        })
    };
    tx.send(()).unwrap();
    let pipe = get(&pool);
    drop(pipe);
    let reaped = reaper.join().unwrap();
    assert!(reaped <= 1);
    let s = pool.stats();
    assert_eq!(s.closed_idle as usize, reaped, "{s:?}");
    // The get took the cached pipe or (reclaimed first) made one; the
    // put may be reclaimed too if it was stamped before the clock moved.
    assert!(s.created <= 2, "{s:?}");
    assert_at_rest(&pool);
    finish(pool);
}

#[test]
fn reclaim_races_with_thread_exit() {
    loom::model(|| {
        // The reaper reclaims from a cache whose thread is exiting (its
        // TLS destructor takes the cache out of the registry and hands the
        // pipes back): every pipe ends closed exactly once.
        let pool = pool(2, 2);
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || drop((get(&pool), get(&pool))))
        };
        let reaped = pool.reap_at(1_000);
        worker.join().unwrap();
        wait_thread_exits(&pool, 0);
        assert!(reaped <= 2);
        assert_at_rest(&pool);
        pool.reap_at(10_000);
        let s = pool.stats();
        assert_eq!((s.live, s.closed_idle as usize), (0, created()), "{s:?}");
        finish(pool);
    });
}

#[test]
fn dropping_the_pool_reclaims_a_live_threads_cache() {
    loom::model(|| {
        // The worker caches two pipes, lets go of its handle and stays
        // alive; dropping the last handle must close its cached pipes.
        let pool = pool(2, 2);
        let (tx, rx) = loom::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = loom::sync::mpsc::channel::<()>();
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                drop((get(&pool), get(&pool)));
                drop(pool);
                tx.send(()).unwrap();
                go_rx.recv().unwrap();
            })
        };
        rx.recv().unwrap();
        drop(pool);
        assert_eq!(
            (created(), dropped()),
            (2, 2),
            "a live thread's cache kept its pipes"
        );
        go_tx.send(()).unwrap();
        worker.join().unwrap();
    });
}
