//! Many connections at once through `pipepool::tokio::copy_bidirectional_with`
//! over loopback TCP (`client <-> a | relay | b <-> server`), on both
//! runtimes: random sizes both ways, SHA-256 compared at each end, then the
//! pool's statistics and the process's fd count back to where they were.
//! Also the pool at its bound (`max_pipes` 1): every byte still arrives,
//! through the userspace buffer.
//!
//! The tests count pipe and socket fds, so they run one at a time
//! (`util::fd_lock`).

#![cfg(feature = "tokio")]

use crate::util;

use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, CopyOptions, Progress};
use pipepool::{Method, PipePool, PoolBuilder, PoolConfig};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::net::{small_buffers, within, Pairs, PERIOD};

/// What one connection sends each way: a slice of a random block.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Bytes client -> server.
    up: usize,
    /// Bytes server -> client.
    down: usize,
    /// Where in the random block each side's bytes start.
    up_at: usize,
    down_at: usize,
}

/// A random block to take the bytes from (no per-byte generation).
fn block() -> &'static [u8] {
    static BLOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut v = vec![0u8; PERIOD];
        rng.fill(&mut v[..]);
        v
    })
}

/// Writes `data` then shuts down, while reading to end of file; returns
/// the SHA-256 of what was read. Starts reading only after a short pause,
/// so that relays hold pipes full of bytes they cannot write yet (else, on
/// one thread, every burst would be spliced in and out within one poll and
/// a single pipe would serve every connection).
async fn talk(s: TcpStream, data: &[u8]) -> [u8; 32] {
    let (mut r, mut w) = s.into_split();
    let send = async {
        w.write_all(data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let recv = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        <[u8; 32]>::from(hash.finalize())
    };
    tokio::join!(send, recv).1
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Runs `conns` proxied connections at once through `pool`; checks every
/// byte (by SHA-256) and every report. Returns the reports.
async fn proxy_many(
    pool: &'static PipePool,
    progress: &'static Progress,
    conns: usize,
    max_size: usize,
    seed: u64,
) -> Vec<pipepool::tokio::BidiReport> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let plans: Vec<Plan> = (0..conns)
        .map(|_| Plan {
            up: rng.gen_range(0..=max_size),
            down: rng.gen_range(0..=max_size),
            up_at: rng.gen_range(0..PERIOD - max_size),
            down_at: rng.gen_range(0..PERIOD - max_size),
        })
        .collect();
    let pairs = Pairs::new();
    let mut tasks = Vec::with_capacity(conns);
    for plan in plans {
        let (client, mut a) = pairs.pair().await;
        let (mut b, server) = pairs.pair().await;
        // Relays soon wait to write, holding pipes full of bytes: many
        // pipes on loan at once, and a bounded pool runs out.
        small_buffers(&[&client, &a, &b, &server]);
        let up = &block()[plan.up_at..plan.up_at + plan.up];
        let down = &block()[plan.down_at..plan.down_at + plan.down];
        let relay = tokio::spawn(async move {
            let opts = CopyOptions::new()
                .pool(pool.clone())
                .progress(progress.clone());
            copy_bidirectional_with(&mut a, &mut b, &opts).await
        });
        let client = tokio::spawn(talk(client, up));
        let server = tokio::spawn(talk(server, down));
        tasks.push((plan, relay, client, server));
    }
    let mut reports = Vec::with_capacity(conns);
    for (plan, relay, client, server) in tasks {
        let report = relay.await.unwrap().expect("relay");
        assert_eq!(
            (report.a_to_b.bytes, report.b_to_a.bytes),
            (plan.up as u64, plan.down as u64)
        );
        let up = &block()[plan.up_at..plan.up_at + plan.up];
        let down = &block()[plan.down_at..plan.down_at + plan.down];
        assert_eq!(
            server.await.unwrap(),
            sha(up),
            "client -> server bytes differ"
        );
        assert_eq!(
            client.await.unwrap(),
            sha(down),
            "server -> client bytes differ"
        );
        reports.push(report);
    }
    reports
}

/// A pool that lives as long as the test process, as a proxy's does (the
/// relay tasks are spawned, so they need `'static`); each test has its own,
/// so statistics are not shared.
fn leaked_pool(config: PoolBuilder) -> &'static PipePool {
    Box::leak(Box::new(config.build().unwrap()))
}

/// After the runtime is gone (its worker threads handed their pipe caches
/// back), closing the pool's idle pipes brings the pipe and socket fds back
/// to `baseline`, and the pool to zero.
fn assert_back_to_baseline(pool: &PipePool, baseline: usize) {
    let settled = util::wait_until(Duration::from_secs(10), || {
        pool.trim();
        util::pipe_and_socket_fd_count() == baseline
    });
    assert!(
        settled.is_some(),
        "pipe and socket fds: {} now, {baseline} before ({:?}); pool: {:?}",
        util::pipe_and_socket_fd_count(),
        fd_targets(),
        pool.stats()
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.live, stats.in_use, stats.idle),
        (0, 0, 0),
        "{stats:?}"
    );
}

/// What every fd of the process points to, for failure messages.
fn fd_targets() -> Vec<String> {
    util::open_fds()
        .into_iter()
        .map(|fd| format!("{fd}:{}", util::fd_target(fd).unwrap_or_default()))
        .collect()
}

/// 1,000 connections at once, 0..=96 KiB each way.
fn thousand_connections(multi_thread: bool) {
    let _serial = util::fd_lock();
    util::net::warm_up_runtime();
    util::raise_nofile(20_000);
    let pool = leaked_pool(PoolConfig::builder());
    let baseline = util::pipe_and_socket_fd_count();
    let rt = util::net::runtime(multi_thread);

    let reports = rt.block_on(within(
        240,
        "1,000 connections",
        proxy_many(pool, Box::leak(Box::default()), 1000, 96 << 10, 1),
    ));
    let moved: u64 = reports
        .iter()
        .map(|r| r.a_to_b.bytes + r.b_to_a.bytes)
        .sum();
    assert!(moved > 50 << 20, "{moved} bytes");
    for r in &reports {
        // Everything went through pipes: the pool was never at its bound.
        assert_eq!(
            (r.a_to_b.method, r.b_to_a.method),
            (Method::Splice, Method::Splice)
        );
    }
    let stats = pool.stats();
    assert_eq!(stats.in_use, 0, "a pipe still on loan: {stats:?}");
    assert_eq!(
        stats.closed_dirty, 0,
        "a pipe was dropped with bytes: {stats:?}"
    );
    assert_eq!(stats.gets_refused + stats.gets_failed, 0, "{stats:?}");
    assert!(stats.created > 0);
    drop(rt);
    assert_back_to_baseline(pool, baseline);
}

/// `max_pipes` 1 and 200 connections at once: most bursts find the pool
/// at its bound and go through memory; nothing is lost, nothing fails.
fn pool_at_its_bound(multi_thread: bool) {
    let _serial = util::fd_lock();
    util::net::warm_up_runtime();
    let pool = leaked_pool(PoolConfig::builder().max_pipes(1).local_cap(1));
    let progress: &'static Progress = Box::leak(Box::default());
    let baseline = util::pipe_and_socket_fd_count();
    let rt = util::net::runtime(multi_thread);

    let reports = rt.block_on(within(
        240,
        "200 connections",
        proxy_many(pool, progress, 200, 256 << 10, 2),
    ));
    let stats = pool.stats();
    assert!(stats.gets_refused > 0, "the bound was never hit: {stats:?}");
    assert_eq!(stats.created, 1, "{stats:?}");
    assert_eq!((stats.in_use, stats.closed_dirty), (0, 0), "{stats:?}");
    // Bursts went through memory (a direction's `Method` says `Splice` as
    // soon as one of its bursts had a pipe, so count bytes).
    let through_memory =
        progress.a_to_b_by(Method::Userspace) + progress.b_to_a_by(Method::Userspace);
    assert!(through_memory > 0, "no burst copied through memory");
    let total: u64 = reports
        .iter()
        .map(|r| r.a_to_b.bytes + r.b_to_a.bytes)
        .sum();
    assert_eq!(progress.a_to_b() + progress.b_to_a(), total);
    drop(rt);
    assert_back_to_baseline(pool, baseline);
}

#[test]
fn thousand_connections_multi_thread() {
    thousand_connections(true);
}

#[test]
fn thousand_connections_current_thread() {
    thousand_connections(false);
}

#[test]
fn pool_at_its_bound_multi_thread() {
    pool_at_its_bound(true);
}

#[test]
fn pool_at_its_bound_current_thread() {
    pool_at_its_bound(false);
}
