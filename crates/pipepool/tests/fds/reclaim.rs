//! Idle reclamation with real pipes, proved by counting `/proc/self/fd`.
//!
//! The documented bound (see `pipepool::design`): a pipe is closed after it
//! was idle at least `idle_timeout` and at most `idle_timeout + tick`
//! (`tick` = `idle_timeout / 4`), with no call into the pool, wherever it
//! sits: the shared pool or the cache of any thread, running or blocked.
//! (Where `membarrier(2)` is missing, `PoolStats::thread_cache_reclaim` is
//! false and up to `local_cap` pipes per quiet thread may stay: the tests
//! then check that weaker bound instead.)
//!
//! The deadlines add [`SLACK`] to the bound for scheduling on a loaded
//! 2-core machine: the reaper is a thread like any other.
//!
//! While waiting, the tests poll `/proc/self/fd`, never the pool: a call
//! into the pool could be what closes the pipes. Every test holds
//! [`util::fd_lock`], so the counts are not disturbed by each other.

use crate::util;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pipepool::{PipePool, PoolConfig, PooledPipe};

const BURST: usize = 1000;
const TIMEOUT: Duration = Duration::from_millis(200);
/// The documented bound: `idle_timeout + idle_timeout / 4`.
const BOUND: Duration = Duration::from_millis(250);
/// Scheduling slack on top of [`BOUND`] (the reaper thread may run late).
const SLACK: Duration = Duration::from_millis(400);
const LOCAL_CAP: usize = 8;

fn pool(timeout: Duration, local_cap: usize) -> PipePool {
    // Room for the burst's 2,000 fds besides what the process holds.
    util::raise_nofile(2 * BURST as u64 + 512);
    PoolConfig::builder()
        .max_pipes(BURST)
        .max_idle(BURST)
        .local_cap(local_cap)
        .idle_timeout(timeout)
        .build()
        .unwrap()
}

/// Takes `n` pipes at once, then gives them all back. Returns when the
/// first one went back.
fn burst(pool: &PipePool, n: usize) -> Instant {
    let held: Vec<PooledPipe<'_>> = (0..n).map(|_| pool.get().unwrap()).collect();
    assert!(held.iter().all(|p| p.is_empty()));
    let first_back = Instant::now();
    drop(held);
    first_back
}

/// Waits (polling `/proc/self/fd` only) until at most `limit` fds are open,
/// for at most `within` after `since`. Panics with the count on timeout.
#[track_caller]
fn assert_fds_drop_to(limit: usize, since: Instant, within: Duration, what: &str) -> Duration {
    let left = within.saturating_sub(since.elapsed());
    match util::wait_until(left, || util::fd_count() <= limit) {
        Some(_) => {
            let took = since.elapsed();
            eprintln!("{what}: down to {limit} fds {took:?} after the pipes went idle");
            took
        }
        None => panic!(
            "{what}: {} fds open {:?} after the pipes went idle, expected at most {limit}",
            util::fd_count(),
            since.elapsed()
        ),
    }
}

/// The fds a quiet thread may keep: none with thread-cache reclaim, else
/// its `local_cap` pipes.
fn quiet_thread_allowance(pool: &PipePool, threads: usize) -> usize {
    if pool.stats().thread_cache_reclaim {
        0
    } else {
        2 * LOCAL_CAP * threads
    }
}

#[test]
fn a_burst_is_reclaimed_without_calling_the_pool() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = pool(TIMEOUT, LOCAL_CAP);
    let first_back = burst(&pool, BURST);
    let idle_since = Instant::now();
    assert_eq!(util::fd_count(), base + 2 * BURST, "closed at once");

    // Everything is closed by the reaper, this thread's cache included
    // (the thread is busy polling /proc, not using the pool).
    let bound = base + quiet_thread_allowance(&pool, 1);
    assert_fds_drop_to(bound, idle_since, BOUND + SLACK, "main-thread burst");
    let took = first_back.elapsed();
    assert!(
        took >= TIMEOUT,
        "reclaimed after {took:?}, before idle_timeout"
    );

    let s = pool.stats();
    assert!(s.closed_idle >= (BURST - LOCAL_CAP) as u64, "{s:?}");
    assert_eq!(s.closed_idle + s.live, BURST as u64, "{s:?}");
    assert_eq!(
        (s.closed_dirty, s.closed_overflow, s.closed_shutdown),
        (0, 0, 0)
    );
    assert_eq!(util::fd_count(), base + 2 * s.live as usize);
    drop(pool);
    assert_eq!(util::fd_count(), base);
}

#[test]
fn a_burst_in_an_exiting_thread_is_reclaimed_completely() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = pool(TIMEOUT, LOCAL_CAP);
    thread::scope(|s| s.spawn(|| burst(&pool, BURST)).join().unwrap());
    let idle_since = Instant::now();
    // The thread's cache went back to the shared pool when it exited: no
    // thread keeps anything, so the bound is the baseline itself.
    assert_fds_drop_to(base, idle_since, BOUND + SLACK, "exited-thread burst");
    let s = pool.stats();
    assert_eq!(
        (s.closed_idle, s.live, s.idle),
        (BURST as u64, 0, 0),
        "{s:?}"
    );
}

/// Issue 9 part 1: N threads fill their caches, then block on a channel,
/// alive and never touching the pool again. Their pipes are closed within
/// the bound all the same.
#[test]
fn blocked_threads_caches_are_reclaimed() {
    const THREADS: usize = 4;
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = pool(TIMEOUT, LOCAL_CAP);
    let (done_tx, done_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    thread::scope(|s| {
        for _ in 0..THREADS {
            let (pool, done_tx, go_rx) = (&pool, done_tx.clone(), &go_rx);
            s.spawn(move || {
                // local_cap pipes taken and given back: all in this
                // thread's cache.
                burst(pool, LOCAL_CAP);
                done_tx.send(Instant::now()).unwrap();
                // Blocked, holding the cache, until the main thread says.
                let _ = go_rx.lock().unwrap().recv();
            });
        }
        let idle_since = (0..THREADS).map(|_| done_rx.recv().unwrap()).max().unwrap();
        let s = pool.stats();
        assert_eq!(
            (s.live, s.idle),
            ((THREADS * LOCAL_CAP) as u64, (THREADS * LOCAL_CAP) as u64),
            "{s:?}"
        );
        assert_eq!(util::fd_count(), base + 2 * THREADS * LOCAL_CAP);

        let bound = base + quiet_thread_allowance(&pool, THREADS);
        assert_fds_drop_to(bound, idle_since, BOUND + SLACK, "blocked threads' caches");
        if pool.stats().thread_cache_reclaim {
            let s = pool.stats();
            assert_eq!(
                (s.live, s.idle, s.closed_idle),
                (0, 0, (THREADS * LOCAL_CAP) as u64),
                "{s:?}"
            );
        }
        for _ in 0..THREADS {
            go_tx.send(()).unwrap();
        }
    });
    // Exited threads hand back nothing more: their caches were emptied.
    assert_fds_drop_to(
        base,
        Instant::now(),
        BOUND + SLACK,
        "after the threads exited",
    );
    let s = pool.stats();
    assert_eq!(
        (s.closed_idle, s.live),
        ((THREADS * LOCAL_CAP) as u64, 0),
        "{s:?}"
    );
}

/// The same for one blocked thread holding caches of many pools at once:
/// more than fit inline in its thread-local table, so some are boxed. The
/// reaper of each pool reclaims them all the same.
#[test]
fn a_blocked_threads_caches_of_many_pools_are_reclaimed() {
    const POOLS: usize = 7;
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pools: Vec<PipePool> = (0..POOLS).map(|_| pool(TIMEOUT, LOCAL_CAP)).collect();
    let (done_tx, done_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let pools = &pools;
        s.spawn(move || {
            for pool in pools {
                burst(pool, LOCAL_CAP);
            }
            done_tx.send(Instant::now()).unwrap();
            let _ = go_rx.recv();
        });
        let idle_since = done_rx.recv().unwrap();
        assert_eq!(util::fd_count(), base + 2 * POOLS * LOCAL_CAP);
        let allowance = quiet_thread_allowance(&pools[0], POOLS);
        assert_fds_drop_to(
            base + allowance,
            idle_since,
            BOUND + SLACK,
            "one blocked thread's caches of many pools",
        );
        if allowance == 0 {
            for s in pools.iter().map(PipePool::stats) {
                assert_eq!((s.live, s.closed_idle), (0, LOCAL_CAP as u64), "{s:?}");
            }
        }
        go_tx.send(()).unwrap();
    });
    drop(pools);
    assert_eq!(util::fd_count(), base);
}

#[test]
fn no_pipe_is_closed_before_idle_timeout() {
    let _fds = util::fd_lock();
    let timeout = Duration::from_millis(400);
    // One pipe in this thread's cache, in the reaper's view from the start.
    let pool = pool(timeout, LOCAL_CAP);
    let pipe = pool.get().unwrap();
    let (r, _) = pipe.raw_fds();
    let id = util::fd_target(r).unwrap();
    drop(pipe);
    let idle_since = Instant::now();

    for fraction in [0.5, 0.9] {
        let at = timeout.mul_f64(fraction);
        thread::sleep(at.saturating_sub(idle_since.elapsed()));
        assert_eq!(
            util::fd_target(r).ok(),
            Some(id.clone()),
            "closed before {at:?} idle"
        );
        assert_eq!(pool.stats().closed_idle, 0);
    }
    if !pool.stats().thread_cache_reclaim {
        pool.flush_local();
    }
    let closed = util::wait_until(
        (timeout * 5 / 4 + SLACK).saturating_sub(idle_since.elapsed()),
        || util::fd_target(r).ok().as_ref() != Some(&id),
    );
    assert!(
        closed.is_some(),
        "still open {:?} after it went idle",
        idle_since.elapsed()
    );
    assert!(idle_since.elapsed() >= timeout);
    assert_eq!(pool.stats().closed_idle, 1);
}

/// The reaper takes only stale pipes: a thread that keeps using one pipe
/// (get, put, short pause) for several timeouts keeps that very pipe.
#[test]
fn a_pipe_in_use_is_never_reclaimed() {
    let _fds = util::fd_lock();
    let pool = pool(TIMEOUT, LOCAL_CAP);
    let first = pool.get().unwrap();
    let (r, _) = first.raw_fds();
    let id = util::fd_target(r).unwrap();
    drop(first);
    let start = Instant::now();
    while start.elapsed() < 3 * TIMEOUT {
        let pipe = pool.get().unwrap();
        assert_eq!(
            pipe.raw_fds().0,
            r,
            "a fresh pipe: the warm one was reclaimed"
        );
        assert_eq!(util::fd_target(r).unwrap(), id);
        drop(pipe);
        thread::sleep(TIMEOUT / 10);
    }
    let s = pool.stats();
    assert_eq!((s.created, s.closed_idle), (1, 0), "{s:?}");
}

/// Regression: with `local_cap` 0 a refill still took two pipes and kept
/// one in the thread cache, out of the reaper's sight forever.
#[test]
fn with_local_cap_zero_nothing_outlives_the_timeout() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = pool(TIMEOUT, 0);
    burst(&pool, 10);
    drop(pool.get().unwrap());
    let idle_since = Instant::now();
    assert_fds_drop_to(base, idle_since, BOUND + SLACK, "local_cap 0");
    assert_eq!(pool.stats().closed_idle, 10);
}

/// The reaper reclaiming from thread caches while their threads get and
/// put as fast as they can, with pauses longer than the timeout so that
/// caches go stale under the threads' feet: every pipe handed out is empty
/// and works (a write and a read of one byte; a pipe closed under its user
/// would fail with `EBADF`, or another pipe reusing its fds would show up
/// in the count), and at the end every fd is closed exactly once.
#[test]
fn reclaim_under_concurrent_gets_and_puts() {
    const THREADS: usize = 4;
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = pool(Duration::from_millis(40), 4);
    let run = Duration::from_millis(1200);
    thread::scope(|s| {
        for t in 0..THREADS {
            let pool = &pool;
            s.spawn(move || {
                let start = Instant::now();
                let mut i = 0u64;
                while start.elapsed() < run {
                    let held: Vec<PooledPipe<'_>> = (0..1 + (i as usize + t) % 4)
                        .map(|_| pool.get().unwrap())
                        .collect();
                    for mut p in held {
                        assert!(p.is_empty());
                        assert_eq!(p.kernel_len().unwrap(), 0, "a pipe with bytes handed out");
                        p.write(&[t as u8]).unwrap();
                        let mut b = [0u8; 1];
                        assert_eq!(p.read(&mut b).unwrap(), 1);
                        assert_eq!(b[0], t as u8);
                    }
                    i += 1;
                    if i % 200 == (t as u64) * 50 {
                        thread::sleep(Duration::from_millis(60)); // caches go stale
                    }
                }
            });
        }
    });
    let s = pool.stats();
    assert_eq!(
        s.live + s.closed_idle + s.closed_overflow + s.closed_dirty + s.closed_shutdown,
        s.created,
        "{s:?}"
    );
    assert_eq!(s.in_use, 0, "{s:?}");
    assert!(
        s.closed_idle > 0,
        "nothing was reclaimed: the test proves little: {s:?}"
    );
    assert_eq!(util::fd_count(), base + 2 * s.live as usize, "{s:?}");
    drop(pool);
    assert_eq!(util::fd_count(), base);
}
