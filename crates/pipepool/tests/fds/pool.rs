//! `PipePool` with real pipes: reuse, the bound, dirty pipes, config
//! errors, thread exit, statistics, concurrency, and fd accounting.
//!
//! Several tests compare `/proc/self/fd` counts, which every test of this
//! binary shares, so every test here holds [`util::fd_lock`]: they run one
//! at a time (each takes milliseconds).

use crate::util;

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use pipepool::{GetError, PipePool, PoolBuilder, PoolConfig, PoolStats, PooledPipe};

/// A pool that never reclaims during a test (the reaper is covered by
/// tests/fds/reclaim.rs).
fn config() -> PoolBuilder {
    PoolConfig::builder().idle_timeout(Duration::from_secs(3600))
}

fn closed(s: &PoolStats) -> u64 {
    s.closed_idle + s.closed_dirty + s.closed_overflow + s.closed_shutdown
}

/// The identities that must hold in every quiescent snapshot.
#[track_caller]
fn assert_consistent(s: &PoolStats) {
    assert_eq!(s.live, s.idle + s.in_use, "live != idle + in_use: {s:?}");
    assert_eq!(
        s.created - closed(s),
        s.live,
        "created - closed != live: {s:?}"
    );
    assert_eq!(s.gets_new, s.created, "every creation is a get: {s:?}");
}

/// `pipe:[inode]` of a pipe, its identity.
fn inode(pipe: &PooledPipe<'_>) -> String {
    util::fd_target(pipe.raw_fds().0).unwrap()
}

#[test]
fn get_put_reuses_one_pipe() {
    let _fds = util::fd_lock();
    let pool = config().build().unwrap();
    let first = inode(&pool.get().unwrap());
    for _ in 0..1000 {
        let pipe = pool.get().unwrap();
        assert_eq!(inode(&pipe), first, "a new pipe was handed out");
        assert!(pipe.is_empty());
    }
    let s = pool.stats();
    assert_eq!(s.created, 1);
    assert_eq!(s.gets_new, 1);
    assert_eq!(
        s.gets_local, 1000,
        "gets after the first come from the thread cache"
    );
    assert_eq!(s.gets_shared, 0);
    assert_eq!((s.live, s.idle, s.in_use), (1, 1, 0));
    assert_consistent(&s);
}

/// Each thread keeps its first few pools' caches inline in thread-local
/// storage and the others' boxed: with more pools alive than inline slots,
/// every one still serves its gets from this thread's cache, keeps its own
/// counts, and a pool built after others were dropped starts afresh in the
/// slot it reuses.
#[test]
fn many_pools_each_keep_their_own_thread_cache() {
    const POOLS: usize = 9;
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let round = |pools: &[pipepool::PipePool]| {
        for pool in pools {
            for _ in 0..100 {
                let pipe = pool.get().unwrap();
                assert!(pipe.is_empty());
            }
        }
    };
    let mut pools: Vec<_> = (0..POOLS).map(|_| config().build().unwrap()).collect();
    round(&pools);
    round(&pools);
    // Each pool's reaper makes a pass when it starts (at the pool's first
    // pipe), while this thread gets and puts: it must leave a cache of
    // fresh pipes alone (claiming it would send gets to the shared pool).
    for s in pools.iter().map(|p| p.stats()) {
        assert_eq!((s.created, s.live, s.idle), (1, 1, 1), "{s:?}");
        assert_eq!(s.gets_local, 199, "all but the first get cached: {s:?}");
        assert_consistent(&s);
    }
    assert_eq!(util::fd_count(), base + 2 * POOLS);
    // Drop every other pool and build new ones: they may reuse the freed
    // slots, and must not inherit a pipe or a count from them.
    let mut i = 0;
    pools.retain(|_| {
        i += 1;
        i % 2 == 0
    });
    assert_eq!(
        util::fd_count(),
        base + 2 * pools.len(),
        "dropped pools closed their pipes"
    );
    let fresh: Vec<_> = (0..POOLS / 2 + 1)
        .map(|_| config().build().unwrap())
        .collect();
    round(&fresh);
    for s in fresh.iter().map(|p| p.stats()) {
        assert_eq!((s.created, s.gets_new, s.gets_local), (1, 1, 99), "{s:?}");
        assert_consistent(&s);
    }
    drop(fresh);
    drop(pools);
    assert_eq!(util::fd_count(), base);
}

#[test]
fn at_the_bound_get_refuses_at_once() {
    let _fds = util::fd_lock();
    let pool = config().max_pipes(4).build().unwrap();
    let held: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    let start = Instant::now();
    for _ in 0..3 {
        match pool.get() {
            Err(GetError::Exhausted { max_pipes }) => assert_eq!(max_pipes, 4),
            other => panic!("expected Exhausted, got {other:?}"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "refusing took {:?}",
        start.elapsed()
    );
    let s = pool.stats();
    assert_eq!((s.gets_refused, s.live, s.in_use, s.created), (3, 4, 4, 4));
    assert_consistent(&s);

    let err = io::Error::from(pool.get().unwrap_err());
    assert!(err.to_string().contains("max_pipes"), "{err}");

    let mut held = held;
    let (a, b) = (held.pop().unwrap(), held.pop().unwrap());
    let freed_last = inode(&b);
    drop(a);
    drop(b);
    let again = pool.get().expect("a get succeeds once a pipe is back");
    assert_eq!(
        inode(&again),
        freed_last,
        "the pipe given back last is handed out first"
    );
    let s = pool.stats();
    assert_eq!((s.created, s.gets_refused, s.live, s.in_use), (4, 4, 4, 3));
    assert_consistent(&s);
}

#[test]
fn dirty_pipe_is_closed_and_never_handed_out_again() {
    let _fds = util::fd_lock();
    let pool = config().max_pipes(4).local_cap(2).build().unwrap();

    // Written and left with a byte inside.
    let mut pipe = pool.get().unwrap();
    let (r, w) = pipe.raw_fds();
    let dirty = inode(&pipe);
    assert_eq!(pipe.write(b"x").unwrap(), 1);
    drop(pipe);
    let s = pool.stats();
    assert_eq!((s.closed_dirty, s.live, s.idle), (1, 0, 0), "{s:?}");
    for fd in [r, w] {
        assert_ne!(
            util::fd_target(fd).ok(),
            Some(dirty.clone()),
            "fd {fd} of the dirty pipe is open"
        );
    }

    // Spliced into from a socket, then dropped with the bytes inside.
    let (mut tx, rx) = UnixStream::pair().unwrap();
    tx.write_all(b"secret").unwrap();
    let mut pipe = pool.get().unwrap();
    let dirty2 = inode(&pipe);
    assert_eq!(pipe.splice_from(&rx, 64).unwrap(), 6);
    drop(pipe);
    assert_eq!(pool.stats().closed_dirty, 2);

    // A pipe written and drained is clean again: reused, not closed.
    let mut pipe = pool.get().unwrap();
    let clean = inode(&pipe);
    pipe.write(b"abc").unwrap();
    pipe.read(&mut [0u8; 3]).unwrap();
    drop(pipe);
    assert_eq!(pool.stats().closed_dirty, 2);
    assert_eq!(inode(&pool.get().unwrap()), clean);

    // Every pipe handed out from now on is empty and is not a dirty one.
    for round in 0..50 {
        let held: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
        for pipe in &held {
            let id = inode(pipe);
            assert!(
                id != dirty && id != dirty2,
                "round {round}: the dirty pipe {id} came back"
            );
            assert!(pipe.is_empty());
            assert_eq!(
                pipe.kernel_len().unwrap(),
                0,
                "round {round}: a pipe came with bytes"
            );
        }
    }
    let s = pool.stats();
    assert_eq!(s.closed_dirty, 2);
    assert_consistent(&s);
}

#[test]
fn config_errors_name_the_field() {
    let _fds = util::fd_lock();
    let base = PoolConfig::builder().max_pipes(8);
    let cases = [
        (base.clone().pipe_size(0), "pipe_size"),
        (
            base.clone().pipe_size(pipepool::MAX_PIPE_SIZE + 1),
            "pipe_size",
        ),
        (base.clone().local_cap(9), "local_cap"),
        (base.clone().max_idle(9), "max_idle"),
        (base.clone().idle_timeout(Duration::ZERO), "idle_timeout"),
    ];
    for (config, field) in cases {
        let err = config.clone().build().expect_err(field);
        assert_eq!(err.field(), field, "{config:?}");
        assert_eq!(config.validate().unwrap_err(), err);
        assert!(err.to_string().contains(field), "{err}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
    }
    // The default configuration (what `PipePool::global` builds) is valid.
    PoolConfig::builder().validate().unwrap();
    // The limits themselves are fine.
    base.clone().local_cap(8).max_idle(8).build().unwrap();
    base.clone().pipe_size(1).build().unwrap();
    base.local_cap(0)
        .max_idle(0)
        .idle_timeout(Duration::from_millis(1))
        .build()
        .unwrap();
}

/// Regression: `max_pipes` below the default `local_cap` (8) was rejected
/// (`local_cap` did not follow `max_pipes` down), so the crate's own doc
/// example `PoolConfig::builder().max_pipes(2).build()?` failed.
#[test]
fn small_max_pipes_lowers_local_cap_and_max_idle() {
    let _fds = util::fd_lock();
    let pool = PoolConfig::builder().max_pipes(2).build().unwrap();
    assert_eq!(
        (pool.config().local_cap(), pool.config().max_idle()),
        (2, 2)
    );
    let err = PoolConfig::builder()
        .max_pipes(2)
        .local_cap(3)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "local_cap");
}

#[test]
fn an_exiting_thread_hands_its_cache_back() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = config().max_pipes(16).local_cap(4).build().unwrap();
    let inodes = thread::scope(|s| {
        s.spawn(|| {
            let held: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
            let inodes: HashSet<_> = held.iter().map(inode).collect();
            drop(held);
            let s = pool.stats();
            assert_eq!(
                (s.idle, s.in_use),
                (4, 0),
                "all four in this thread's cache"
            );
            inodes
        })
        .join() // waits for the thread's TLS destructors, unlike the scope
        .unwrap()
    });
    let s = pool.stats();
    assert_eq!(
        (s.live, s.idle, s.in_use, s.closed_shutdown),
        (4, 4, 0, 0),
        "{s:?}"
    );
    assert_eq!(util::fd_count(), base + 8);
    // They are in the shared pool now: this thread gets them from there.
    let mine: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    assert_eq!(mine.iter().map(inode).collect::<HashSet<_>>(), inodes);
    let s = pool.stats();
    assert_eq!(s.created, 4);
    assert!(s.gets_shared >= 1, "{s:?}");
    assert_consistent(&s);
    drop(mine);
    drop(pool);
    assert_eq!(
        util::fd_count(),
        base,
        "pipes left open after the pool was dropped"
    );
}

#[test]
fn stats_stay_consistent() {
    let _fds = util::fd_lock();
    let pool = config()
        .max_pipes(6)
        .local_cap(2)
        .max_idle(3)
        .build()
        .unwrap();
    let mut fresh = PoolStats::default();
    fresh.thread_cache_reclaim = pool.stats().thread_cache_reclaim;
    assert_eq!(pool.stats(), fresh);
    let mut held: Vec<_> = (0..6).map(|_| pool.get().unwrap()).collect();
    let cap = held[0].capacity() as u64;
    let s = pool.stats();
    assert_eq!(
        (s.live, s.in_use, s.idle, s.capacity_bytes),
        (6, 6, 0, 6 * cap)
    );
    assert_consistent(&s);
    held[0].write(b"dirty").unwrap();
    drop(held.remove(0));
    let s = pool.stats();
    assert_eq!((s.closed_dirty, s.live, s.in_use), (1, 5, 5));
    assert_eq!(
        s.capacity_bytes,
        5 * cap,
        "a closed pipe's capacity is subtracted"
    );
    held.truncate(2); // 3 back: 2 to the thread cache, 1 spilled to the shared pool
    let s = pool.stats();
    assert_eq!(s.closed_dirty, 1);
    assert_eq!(s.in_use, 2);
    assert_eq!(s.capacity_bytes, s.live * cap);
    assert_consistent(&s);
    drop(held);
    let s = pool.stats();
    assert_eq!(s.in_use, 0);
    assert_eq!(s.live, s.idle);
    assert!(
        s.idle <= 3 + 2,
        "max_idle 3 shared + local_cap 2 cached: {s:?}"
    );
    assert_consistent(&s);
    let trimmed = pool.trim() as u64;
    let s = pool.stats();
    assert_eq!((s.live, s.idle, s.capacity_bytes), (0, 0, 0), "{s:?}");
    assert_eq!(s.closed_shutdown, trimmed);
    assert_consistent(&s);
    assert_eq!(s.undersized, 0, "root gets the 1 MiB it asks for");
}

/// Regression: a get served from the shared pool was counted once per pipe
/// of the refill batch in `gets_shared`, and those pipes again in
/// `gets_local` when the cache handed them out.
#[test]
fn every_get_is_counted_once() {
    let _fds = util::fd_lock();
    let pool = config().max_pipes(16).local_cap(8).build().unwrap();
    let held: Vec<_> = (0..16).map(|_| pool.get().unwrap()).collect();
    drop(held);
    pool.flush_local();
    let mut gets = 16u64;
    for n in 1..=16 {
        let held: Vec<_> = (0..n).map(|_| pool.get().unwrap()).collect();
        gets += n as u64;
        drop(held);
        if n % 3 == 0 {
            pool.flush_local();
        }
    }
    let s = pool.stats();
    assert_eq!(s.created, 16);
    assert!(s.gets_shared > 0 && s.gets_local > 0, "{s:?}");
    assert_eq!(s.gets_local + s.gets_shared + s.gets_new, gets, "{s:?}");
}

#[test]
fn concurrent_get_put_loses_no_pipe() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    const THREADS: usize = 4;
    const MAX: usize = 6;
    let iters = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    let pool = config()
        .max_pipes(MAX)
        .local_cap(2)
        .max_idle(4)
        .build()
        .unwrap();

    #[derive(Default, Debug)]
    struct Tally {
        got: u64,
        refused: u64,
        dirty: u64,
    }
    // Pipes held by all threads together: never above the bound. (The
    // `live` gauge of a stats snapshot taken while others work can be off,
    // so it is checked only at the end.)
    let out = AtomicUsize::new(0);
    let tallies: Vec<Tally> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, out) = (&pool, &out);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    let mut held = Vec::new();
                    for i in 0..iters {
                        let want = 1 + (i + t) % 2;
                        while held.len() < want {
                            match pool.get() {
                                Ok(pipe) => {
                                    tally.got += 1;
                                    let now_out = out.fetch_add(1, SeqCst) + 1;
                                    assert!(now_out <= MAX, "{now_out} pipes out, max_pipes {MAX}");
                                    assert!(pipe.is_empty());
                                    held.push(pipe);
                                }
                                Err(GetError::Exhausted { .. }) => {
                                    tally.refused += 1;
                                    break;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        if i % 64 == 0 {
                            for pipe in &held {
                                assert_eq!(pipe.kernel_len().unwrap(), 0, "a pipe came with bytes");
                            }
                        }
                        match (i + t) % 23 {
                            0 if !held.is_empty() => {
                                held[0].write(b"left behind").unwrap();
                                tally.dirty += 1;
                                out.fetch_sub(1, SeqCst);
                                drop(held.remove(0));
                            }
                            1 if !held.is_empty() => {
                                held[0].write(b"echo").unwrap();
                                let mut buf = [0u8; 4];
                                assert_eq!(held[0].read(&mut buf).unwrap(), 4);
                                assert_eq!(&buf, b"echo");
                            }
                            _ => {}
                        }
                        if i % 3 != 0 {
                            out.fetch_sub(held.len(), SeqCst);
                            held.clear();
                        }
                    }
                    out.fetch_sub(held.len(), SeqCst);
                    drop(held);
                    tally
                })
            })
            .collect();
        // Join each handle: unlike the end of the scope, join waits for the
        // thread's TLS destructors (which hand its cache back).
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let got: u64 = tallies.iter().map(|t| t.got).sum();
    let refused: u64 = tallies.iter().map(|t| t.refused).sum();
    let dirty: u64 = tallies.iter().map(|t| t.dirty).sum();
    let s = pool.stats();
    assert_consistent(&s);
    assert!(got > iters as u64, "{tallies:?}");
    assert_eq!(s.gets_local + s.gets_shared + s.gets_new, got, "{s:?}");
    assert_eq!(s.gets_refused, refused);
    assert_eq!(s.closed_dirty, dirty);
    assert_eq!(
        s.live, s.idle,
        "pipes still out after every thread finished: {s:?}"
    );
    assert!(s.live <= MAX as u64);
    assert_eq!(
        util::fd_count(),
        base + 2 * s.live as usize,
        "fds vs live pipes: {s:?}"
    );
    drop(pool);
    assert_eq!(util::fd_count(), base);
}

#[test]
fn local_cap_zero_goes_through_the_shared_pool() {
    let _fds = util::fd_lock();
    let pool = config().max_pipes(4).local_cap(0).build().unwrap();
    let first = inode(&pool.get().unwrap());
    for _ in 0..100 {
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        assert!(inode(&a) == first || inode(&b) == first);
    }
    let s = pool.stats();
    assert_eq!(s.created, 2);
    assert_eq!(s.gets_local, 0, "no thread cache with local_cap 0: {s:?}");
    assert_eq!(s.gets_shared, 199, "every get but the two creations: {s:?}");
    assert_eq!((s.live, s.idle), (2, 2));
    assert_consistent(&s);
    // Everything idle is in the shared pool, where trim (and the reaper)
    // see it.
    assert_eq!(pool.trim(), 2);
    assert_eq!(pool.stats().live, 0);
}

#[test]
fn many_pools_come_and_go_without_leaks() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    // Count reaper threads only: other tests' threads (some waiting on the
    // fd lock this test holds) come and go meanwhile.
    let threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim() == "pipepool-reaper")
            .count()
    };
    let base_threads = threads();
    for i in 0..200 {
        let pool = config().max_pipes(4).local_cap(2).build().unwrap();
        let held: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
        assert_eq!(util::fd_count(), base + 6, "pool {i}");
        drop(held);
        if i % 10 == 0 {
            // Another thread's cache for this pool too.
            thread::scope(|s| s.spawn(|| drop(pool.get().unwrap())).join().unwrap());
        }
        let other = pool.clone();
        drop(pool);
        assert_eq!(
            other.get().map(|p| p.is_empty()).ok(),
            Some(true),
            "a clone keeps the pool"
        );
        drop(other);
        assert_eq!(util::fd_count(), base, "pool {i} left fds open");
    }
    // Every pool's reaper thread exits once its pool is gone.
    let left = util::wait_until(Duration::from_secs(5), || threads() <= base_threads);
    assert!(
        left.is_some(),
        "{} threads, {base_threads} before",
        threads()
    );
}

#[test]
fn max_idle_overflow_is_closed_and_counted() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = config()
        .max_pipes(8)
        .local_cap(0)
        .max_idle(2)
        .build()
        .unwrap();
    let held: Vec<_> = (0..5).map(|_| pool.get().unwrap()).collect();
    drop(held);
    let s = pool.stats();
    assert_eq!((s.closed_overflow, s.live, s.idle), (3, 2, 2), "{s:?}");
    assert_consistent(&s);
    assert_eq!(util::fd_count(), base + 4);

    // With a thread cache: the cache holds local_cap, the shared pool
    // max_idle, the rest is closed.
    let pool = config()
        .max_pipes(8)
        .local_cap(2)
        .max_idle(2)
        .build()
        .unwrap();
    let held: Vec<_> = (0..8).map(|_| pool.get().unwrap()).collect();
    drop(held);
    let s = pool.stats();
    assert_eq!(s.live, 4, "2 cached + 2 shared: {s:?}");
    assert_eq!(s.closed_overflow, 4);
    assert_consistent(&s);
}

#[test]
fn pooled_pipe_splices_and_comes_back_clean() {
    let _fds = util::fd_lock();
    let pool = config().max_pipes(2).build().unwrap();
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let (out, mut sink) = UnixStream::pair().unwrap();
    let data = util::pattern(300_000);
    let to_send = data.clone();
    let writer = thread::spawn(move || {
        tx.write_all(&to_send).unwrap();
    });
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        sink.read_to_end(&mut got).unwrap();
        got
    });
    let mut pipe = pool.get().unwrap();
    let id = inode(&pipe);
    assert_eq!(util::pump(&mut pipe, &rx, &out), data.len() as u64);
    drop(out);
    writer.join().unwrap();
    assert!(reader.join().unwrap() == data);
    drop(pipe);
    assert_eq!(pool.stats().closed_dirty, 0);
    assert_eq!(
        inode(&pool.get().unwrap()),
        id,
        "the drained pipe was reused"
    );
}

#[test]
fn flush_local_and_trim() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = config().max_pipes(8).local_cap(4).build().unwrap();
    let held: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    drop(held);
    // trim flushes this thread's cache first, then closes the shared pool.
    assert_eq!(pool.trim(), 3);
    let s = pool.stats();
    assert_eq!((s.live, s.closed_shutdown), (0, 3));
    assert_eq!(util::fd_count(), base);
    drop(pool.get().unwrap());
    pool.flush_local();
    assert_eq!(pool.stats().idle, 1);
    assert_eq!(pool.get().map(|_| ()).ok(), Some(()));
    assert_eq!(
        pool.stats().gets_shared,
        1,
        "after flush_local the pipe is shared"
    );
}

#[test]
fn pool_and_guard_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PipePool>();
    let _fds = util::fd_lock();
    let pool = config().max_pipes(1).build().unwrap();
    let pipe = pool.get().unwrap();
    assert!(std::ptr::eq(pipe.pool(), &pool));
    assert!(format!("{pool:?}").contains("max_pipes"));
}

/// Issue 11: the defaults of `max_idle` and `local_cap` follow `max_pipes`
/// both ways; explicit values are kept (lowered only to `max_pipes`).
#[test]
fn config_defaults_follow_max_pipes_both_ways() {
    let c = PoolConfig::builder()
        .max_pipes(4)
        .max_pipes(100)
        .config()
        .unwrap();
    assert_eq!((c.max_idle(), c.local_cap()), (100, 8));
    let c = PoolConfig::builder().max_pipes(4).config().unwrap();
    assert_eq!((c.max_idle(), c.local_cap()), (4, 4));
    let c = PoolConfig::builder()
        .max_idle(5)
        .local_cap(2)
        .max_pipes(100)
        .config()
        .unwrap();
    assert_eq!((c.max_idle(), c.local_cap()), (5, 2));
    let b = PoolConfig::builder().max_idle(50).max_pipes(10);
    let c = b.clone().config().unwrap();
    assert_eq!(c.max_idle(), 10);
    assert_eq!(c.max_pipes(), 10);
    let c = b
        .pipe_size(4096)
        .idle_timeout(Duration::from_secs(3))
        .config()
        .unwrap();
    assert_eq!(
        (c.pipe_size(), c.idle_timeout()),
        (4096, Duration::from_secs(3))
    );
    // A config goes back to a builder with its values.
    assert_eq!(c.to_builder().config().unwrap(), c);
}

/// Issue 9 part 3, and issue 21: a guard hands out no `&mut Pipe`, so a
/// pipe cannot be swapped into another pool's guard (the `compile_fail`
/// doctests of `PooledPipe` and `OwnedPipe` prove it). Swapping whole
/// guards swaps the loans, pool and pipe together: each pool still counts
/// only its own pipes, and each pipe goes home.
#[test]
fn swapped_guards_give_each_pipe_back_to_its_own_pool() {
    let _fds = util::fd_lock();
    let small = config().pipe_size(64 * 1024).build().unwrap();
    let big = config().pipe_size(1 << 20).build().unwrap();
    let mut a = small.get().unwrap();
    let mut b = big.get().unwrap();
    let (a_inode, b_inode) = (inode(&a), inode(&b));
    let (a_cap, b_cap) = (a.capacity() as u64, b.capacity() as u64);
    std::mem::swap(&mut a, &mut b);
    assert!(std::ptr::eq(a.pool(), &big), "a guard's pool left its pipe");
    assert_eq!(inode(&a), b_inode);
    let mut c = small.get_owned().unwrap();
    let mut d = big.get_owned().unwrap();
    std::mem::swap(&mut c, &mut d);
    assert!(std::ptr::eq(c.pool().config(), big.config()));
    drop((a, b, c, d));
    for (pool, cap, home) in [(&small, a_cap, &a_inode), (&big, b_cap, &b_inode)] {
        let s = pool.stats();
        assert_eq!(
            (s.live, s.idle, s.capacity_bytes, s.created),
            (2, 2, 2 * cap, 2),
            "{s:?}"
        );
        assert_consistent(&s);
        let again: Vec<_> = (0..2).map(|_| pool.get().unwrap()).collect();
        assert!(
            again.iter().any(|p| &inode(p) == home),
            "a pool got another pool's pipe"
        );
        assert!(again.iter().all(|p| p.capacity() as u64 == cap));
    }
}

/// Issue 11: `get_owned` is `Send + 'static`, moves into a thread, and is
/// given back (not closed) when that thread drops it.
#[test]
fn owned_pipe_moves_into_a_thread_and_comes_back() {
    fn send_static<T: Send + 'static>(_: &T) {}
    let _fds = util::fd_lock();
    let pool = config().build().unwrap();
    let mut pipe = pool.get_owned().unwrap();
    send_static(&pipe);
    let first = util::fd_target(pipe.raw_fds().0).unwrap();
    let moved = thread::spawn(move || {
        pipe.write(b"owned").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(pipe.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"owned");
        assert_eq!(pipe.read(&mut buf).unwrap(), 0, "read of an empty pipe");
        assert_eq!(pipe.pool().stats().in_use, 1);
    });
    moved.join().unwrap(); // the thread's cache went to the shared pool
    let s = pool.stats();
    assert_eq!((s.live, s.idle, s.closed_dirty), (1, 1, 0), "{s:?}");
    let again = pool.get().unwrap();
    assert_eq!(inode(&again), first);
    drop(again);
    // A dirty owned pipe is closed like a borrowed one.
    let mut dirty = pool.get_owned().unwrap();
    dirty.write(b"x").unwrap();
    drop(dirty);
    assert_eq!(pool.stats().closed_dirty, 1);
}

/// Runs `child` in a forked child process and returns its exit code.
/// `child` returns 0 for success or a code naming the failed check; a
/// panic is code 101. The parent gives the child `timeout` (a deadlock in
/// the child fails the test instead of hanging it).
fn in_forked_child(timeout: Duration, child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: fork in a multi-threaded process: the child runs only the
    // closure (pool calls, which the pool's fork handlers make safe, and
    // glibc's malloc, which is fork-safe) and leaves with `_exit`, never
    // returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: `_exit` is async-signal-safe and never returns.
        unsafe { libc::_exit(code) };
    }
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
            return libc::WEXITSTATUS(status);
        }
        if start.elapsed() > timeout {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("forked child still running after {timeout:?}: deadlocked");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Issue 9 part 2, the reproduction: the parent puts a pipe back and
/// forks; the child takes a pipe and writes 6 bytes. The child must get a
/// pipe of its own (not one of the parent's, idle or on loan), start its
/// counters at zero and run its own reaper; the parent's next get must be
/// clean.
#[test]
fn a_forked_child_never_uses_the_parents_pipes() {
    let _fds = util::fd_lock();
    let pool = config()
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    // Idle pipes in this thread's cache and in the shared pool, and one on
    // loan across the fork.
    let held: Vec<_> = (0..12).map(|_| pool.get().unwrap()).collect();
    let parents: HashSet<String> = held.iter().map(inode).collect();
    let on_loan = pool.get().unwrap();
    let on_loan_inode = inode(&on_loan);
    drop(held);
    pool.flush_local(); // some in the shared pool
    for _ in 0..3 {
        drop(pool.get().unwrap()); // and some back in the cache
    }
    let code = in_forked_child(Duration::from_secs(20), || {
        let s = pool.stats();
        if (s.live, s.created, s.idle) != (0, 0, 0) {
            return 2; // counters did not restart
        }
        let mut mine = match pool.get() {
            Ok(p) => p,
            Err(_) => return 3,
        };
        let it = inode(&mine);
        if parents.contains(&it) || it == on_loan_inode {
            return 4; // a parent's pipe handed out
        }
        if mine.write(b"child!").is_err() {
            return 5;
        }
        drop(mine); // dirty: closed
        drop(on_loan); // inherited, on loan: closed, not pooled
        let next = pool.get().unwrap();
        let n = inode(&next);
        if parents.contains(&n) || n == on_loan_inode {
            return 6;
        }
        let (r, _) = next.raw_fds();
        drop(next);
        // The child's reaper closes its idle pipe within the bound.
        let gone = util::wait_until(Duration::from_secs(5), || {
            util::fd_target(r).ok() != Some(n.clone())
        });
        if gone.is_none() {
            return 7; // no reaper in the child
        }
        0
    });
    assert_eq!(code, 0, "forked child failed check {code}");
    // The parent's pipes are untouched: clean, and the one on loan too.
    let mut seen = Vec::new();
    for _ in 0..12 {
        let p = pool.get().unwrap();
        assert_eq!(
            p.kernel_len().unwrap(),
            0,
            "the child's bytes reached the parent"
        );
        seen.push(p);
    }
    let s = pool.stats();
    assert_eq!(s.closed_dirty, 0, "{s:?}");
}

/// Issue 9 part 2: a fork while another thread is inside the pool (holding
/// the shared pool's lock at any moment: `local_cap` 0 makes every get and
/// put lock it) never leaves the child deadlocked.
#[test]
fn fork_while_another_thread_holds_the_pool_lock() {
    let _fds = util::fd_lock();
    let pool = config().local_cap(0).build().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the other thread even when an assertion fails.
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(SeqCst) {
                drop(pool.get().unwrap());
            }
        });
        let _stop = Stop(&stop);
        for round in 0..20 {
            let code = in_forked_child(Duration::from_secs(5), || {
                let p = pool.get().unwrap();
                drop(p);
                i32::from(pool.stats().created != 1)
            });
            assert_eq!(code, 0, "round {round}");
        }
    });
}

/// Issue 9 part 3: the reaper survives failures. In a child process: the
/// first creation fails (`RLIMIT_NOFILE` leaves no fd), then the reaper's
/// spawn fails (`RLIMIT_NPROC` 0, as `nobody`) while a pipe is created; with the limits lifted, the next creation must start
/// the reaper, which then closes every idle pipe. (Before, the reaper was
/// woken only when the live count went from 0 to 1.)
#[test]
fn the_reaper_starts_after_failed_creations_and_spawns() {
    let _fds = util::fd_lock();
    let code = in_forked_child(Duration::from_secs(30), || {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let pool = config()
            .idle_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let nofile = getrlimit(Resource::Nofile);
        // No new fd at all until the limit is restored.
        let tight = Rlimit {
            current: Some(0),
            maximum: nofile.maximum,
        };
        setrlimit(Resource::Nofile, tight).unwrap();
        if !matches!(pool.get(), Err(GetError::Create(_))) {
            return 2;
        }
        setrlimit(Resource::Nofile, nofile).unwrap();
        // No thread may be created: the pipe is created, the reaper is not.
        // (RLIMIT_NPROC binds only unprivileged users, so the child becomes
        // `nobody`, and stays dumpable to read its own /proc/self/fd.)
        // SAFETY: plain syscalls on this single-threaded child.
        unsafe {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return 8;
            }
            libc::prctl(libc::PR_SET_DUMPABLE, 1);
        }
        let nproc = getrlimit(Resource::Nproc);
        let none = Rlimit {
            current: Some(0),
            maximum: nproc.maximum,
        };
        setrlimit(Resource::Nproc, none).unwrap();
        let first = pool.get();
        let spawn_failed = thread::Builder::new().spawn(|| ()).is_err();
        setrlimit(Resource::Nproc, nproc).unwrap();
        let Ok(first) = first else { return 3 };
        if !spawn_failed {
            return 4; // the limit did not stop threads: the test proves nothing
        }
        let second = pool.get().unwrap(); // live 1 -> 2: must start the reaper
        let fds = [inode(&first), inode(&second)];
        let raw = [first.raw_fds().0, second.raw_fds().0];
        drop((first, second));
        let gone = util::wait_until(Duration::from_secs(5), || {
            raw.iter()
                .zip(&fds)
                .all(|(r, id)| util::fd_target(*r).ok().as_ref() != Some(id))
        });
        if gone.is_none() {
            return 5; // the reaper never ran
        }
        if pool.stats().gets_failed != 1 {
            return 6;
        }
        0
    });
    assert_eq!(code, 0, "child failed check {code}");
}

/// Dropping the last handle closes the idle pipes in the caches of other
/// threads too (they are alive, blocked, and never touch a pool again).
#[test]
fn dropping_the_pool_closes_other_threads_cached_pipes() {
    let _fds = util::fd_lock();
    let base = util::fd_count();
    let pool = config().build().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let worker = {
        let pool = pool.clone();
        thread::spawn(move || {
            let held: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
            drop(held); // four pipes in this thread's cache
            drop(pool);
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        })
    };
    ready_rx.recv().unwrap();
    assert_eq!(util::fd_count(), base + 8);
    let reclaim = pool.stats().thread_cache_reclaim;
    drop(pool);
    if reclaim {
        assert_eq!(
            util::fd_count(),
            base,
            "pipes left in a live thread's cache"
        );
    }
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!(util::fd_count(), base);
}
