//! `CopyOptions::progress`: a relay's byte counts are live (readable while
//! the copy runs, exact at each point the far ends can check), split by
//! method, shared by several copies, and equal to the final report.

#![cfg(feature = "tokio")]

use pipepool::tokio::{copy_bidirectional_with, CopyOptions, Progress};
use pipepool::{Method, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::net::{tcp_pair, within};

const UP: usize = 1 << 20;
const DOWN: usize = 2 << 10;

/// Relays `a` <-> `b` on a task of its own, counting into `progress`.
fn relay(
    mut a: TcpStream,
    mut b: TcpStream,
    progress: &Progress,
    zero_copy: bool,
) -> tokio::task::JoinHandle<(u64, u64)> {
    let progress = progress.clone();
    let pool = PoolConfig::builder().build().unwrap();
    tokio::spawn(async move {
        let opts = CopyOptions::new()
            .pool(pool.clone())
            .zero_copy(zero_copy)
            .progress(progress.clone());
        let report = copy_bidirectional_with(&mut a, &mut b, &opts)
            .await
            .unwrap();
        (report.a_to_b.bytes, report.b_to_a.bytes)
    })
}

/// Sends `UP` bytes client -> server and `DOWN` back through a relay and
/// checks the counts at each step, while the relay still runs.
async fn exchange(
    client: &mut TcpStream,
    server: &mut TcpStream,
    progress: &Progress,
    before: (u64, u64),
) {
    let up = vec![0x11u8; UP];
    let mut got = vec![0u8; UP];
    let (w, r) = tokio::join!(client.write_all(&up), server.read_exact(&mut got));
    w.unwrap();
    r.unwrap();
    // The server has read every byte: the relay wrote them all, no more
    // (its count follows its write at once; on a multi-thread runtime the
    // relay's worker may be a moment behind the server's).
    settles(|| progress.a_to_b(), before.0 + UP as u64).await;
    assert_eq!(progress.b_to_a(), before.1);
    server.write_all(&[0x22u8; DOWN]).await.unwrap();
    let mut back = vec![0u8; DOWN];
    client.read_exact(&mut back).await.unwrap();
    settles(|| progress.b_to_a(), before.1 + DOWN as u64).await;
    assert_eq!(progress.a_to_b(), before.0 + UP as u64);
}

/// Waits (up to 5 s) for `count` to reach `want`, and checks it never
/// passes it.
async fn settles(count: impl Fn() -> u64, want: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = count();
        assert!(now <= want, "counted {now} bytes, only {want} were sent");
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "count stuck at {now}, want {want}"
        );
        tokio::task::yield_now().await;
    }
}

/// Closes both far ends and waits for the relay.
async fn finish(
    mut client: TcpStream,
    mut server: TcpStream,
    relay: tokio::task::JoinHandle<(u64, u64)>,
) -> (u64, u64) {
    client.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await.unwrap();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    within(30, "relay", relay).await.unwrap()
}

/// Spliced relay: live counts, all under `Splice`, equal to the report.
async fn counts_are_live_and_by_method() {
    let progress = Progress::new();
    let (mut client, a) = tcp_pair().await;
    let (b, mut server) = tcp_pair().await;
    let task = relay(a, b, &progress, true);
    within(
        30,
        "first exchange",
        exchange(&mut client, &mut server, &progress, (0, 0)),
    )
    .await;
    let mid = (progress.a_to_b(), progress.b_to_a());
    within(
        30,
        "second exchange",
        exchange(&mut client, &mut server, &progress, mid),
    )
    .await;
    let report = finish(client, server, task).await;
    let total = (2 * UP as u64, 2 * DOWN as u64);
    assert_eq!(report, total);
    assert_eq!((progress.a_to_b(), progress.b_to_a()), total);
    assert_eq!(progress.a_to_b_by(Method::Splice), total.0);
    assert_eq!(progress.b_to_a_by(Method::Splice), total.1);
    assert_eq!(progress.a_to_b_by(Method::Userspace), 0);
    assert_eq!(progress.a_to_b_by(Method::Sendfile), 0);
}

/// Two relays, one spliced and one in userspace, sharing one `Progress`:
/// the counts add up, each under its method.
async fn one_progress_serves_many_copies() {
    let progress = Progress::new();
    let (mut c1, a1) = tcp_pair().await;
    let (b1, mut s1) = tcp_pair().await;
    let (mut c2, a2) = tcp_pair().await;
    let (b2, mut s2) = tcp_pair().await;
    let t1 = relay(a1, b1, &progress, true);
    let t2 = relay(a2, b2, &progress, false);
    within(
        30,
        "exchange 1",
        exchange(&mut c1, &mut s1, &progress, (0, 0)),
    )
    .await;
    let mid = (progress.a_to_b(), progress.b_to_a());
    within(30, "exchange 2", exchange(&mut c2, &mut s2, &progress, mid)).await;
    assert_eq!(finish(c1, s1, t1).await, (UP as u64, DOWN as u64));
    assert_eq!(finish(c2, s2, t2).await, (UP as u64, DOWN as u64));
    assert_eq!(progress.a_to_b_by(Method::Splice), UP as u64);
    assert_eq!(progress.a_to_b_by(Method::Userspace), UP as u64);
    assert_eq!(progress.b_to_a_by(Method::Splice), DOWN as u64);
    assert_eq!(progress.b_to_a_by(Method::Userspace), DOWN as u64);
}

on_both_runtimes!(
    counts_are_live_and_by_method,
    one_progress_serves_many_copies
);
