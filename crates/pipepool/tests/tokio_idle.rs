// A binary of its own: it raises RLIMIT_NOFILE for the whole process and
// holds up to 40,000 fds, counted in /proc/self/fd. (Other tests: tests/it/.)
//! An idle connection holds no pipe: 10,000 open, idle connections proxied
//! through `copy_bidirectional_with` (`client <-> a | relay | b <-> server`
//! over loopback TCP) hold 0 pipes in use and 0 pipe fds, before any byte
//! moved and after a byte went each way on every one of them. Both
//! runtimes.
//!
//! Each proxied connection takes 4 fds in this process (both ends of two
//! TCP connections), 40,000 in all: the test raises `RLIMIT_NOFILE`,
//! including the hard limit when it may (root). Where the hard limit cannot
//! be raised that far, it proxies as many connections as the limit allows
//! (`(limit - fds open - 256) / 4`) and says so on stderr; with the 20,000
//! hard limit of the development machine as an unprivileged user, that is
//! about 4,900.

#![cfg(feature = "tokio")]

#[path = "it/util/mod.rs"]
mod util;

use std::time::Duration;

use pipepool::tokio::CopyOptions;
use pipepool::{PipePool, PoolConfig};

use util::net::{hang_up, one_byte_each_way, spawn_relays};

/// The connections the test wants.
const WANTED: usize = 10_000;

/// How many connections the fd limit allows (at most [`WANTED`]).
fn connections() -> usize {
    let limit = util::raise_nofile_hard(4 * WANTED as u64 + 1024);
    let room = (limit as usize).saturating_sub(util::fd_count() + 256) / 4;
    let n = room.min(WANTED);
    if n < WANTED {
        eprintln!("RLIMIT_NOFILE is {limit}: testing {n} idle connections, not {WANTED}");
    }
    assert!(n >= 1000, "RLIMIT_NOFILE {limit} is too low for this test");
    n
}

async fn idle_connections(n: usize) {
    // `local_cap(0)`: every idle pipe is in the shared pool, where `trim`
    // reaches it. Leaked: the spawned relays need a `'static` pool.
    let pool: &'static PipePool = Box::leak(Box::new(
        PoolConfig::builder().local_cap(0).build().unwrap(),
    ));
    let pipe_fds = util::pipe_fd_count();

    let (mut peers, relays) = spawn_relays(n, &CopyOptions::new().pool(pool.clone())).await;
    // Let every relay run until it waits for its sockets.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = pool.stats();
    assert_eq!(
        (stats.created, stats.in_use),
        (0, 0),
        "{n} idle connections: {stats:?}"
    );
    assert_eq!(
        util::pipe_fd_count(),
        pipe_fds,
        "{n} idle connections hold pipe fds"
    );

    // One byte each way on every connection: each direction takes a pipe
    // and gives it back.
    one_byte_each_way(&mut peers).await;
    let stats = pool.stats();
    assert!(stats.created > 0, "no pipe was used: {stats:?}");
    assert_eq!(
        stats.in_use, 0,
        "{n} idle connections hold pipes: {stats:?}"
    );
    assert_eq!(stats.closed_dirty, 0, "{stats:?}");
    // Only the pool's idle pipes are open, and closing those leaves none.
    assert_eq!(util::pipe_fd_count(), pipe_fds + 2 * stats.live as usize);
    pool.trim();
    assert_eq!(pool.stats().live, 0);
    assert_eq!(
        util::pipe_fd_count(),
        pipe_fds,
        "{n} idle connections hold pipe fds"
    );

    // Hang up: every relay sees end of file both ways and finishes.
    hang_up(peers, relays).await;
    pool.trim();
}

#[test]
fn ten_thousand_idle_connections_multi_thread() {
    let _serial = util::fd_lock();
    let n = connections();
    util::net::run_counted(true, idle_connections(n));
}

#[test]
fn ten_thousand_idle_connections_current_thread() {
    let _serial = util::fd_lock();
    let n = connections();
    util::net::run_counted(false, idle_connections(n));
}
