//! Fault injection through the real binary: nothing is lost, nothing
//! crosses connections, and the proxy returns to its baseline.
//!
//! A wave of 1,000 connections is opened and held until the in-test
//! upstream sees every one of them at once, then all transfer together,
//! while a trickle of more connections starts every few milliseconds. Each
//! connection has a mode, a size and a byte pattern drawn from one seeded
//! RNG:
//!
//! - `Echo`: the upstream answers every n bytes it reads with n bytes.
//! - `HalfClose`: the client sends everything and shuts down its write
//!   side, then reads; the upstream answers only after that EOF.
//! - `ServerFirst`: the upstream sends its answer and shuts down first,
//!   while the client still sends.
//! - `SlowClient` / `SlowUpstream`: one side reads in small pieces with
//!   pauses.
//! - `ClientReset`: the client stops after some bytes and resets
//!   (`SO_LINGER` 0, then close).
//! - `UpstreamReset`: the upstream resets after some bytes.
//!
//! Every connection starts with a 32-byte header naming its id and plan;
//! then each direction carries its own pseudo-random stream derived from
//! the id, so that every received byte is checked at its position, on both
//! ends, and a byte of another connection (or a byte reflected back) is
//! counted as a mismatch. Once 75% of the wave is done, the upstream is
//! killed (listener and connections, like a crash) and started again on
//! the same port after a gap; clients during the gap must fail cleanly.
//!
//! Then: zero mismatches; every stream that completed has equal SHA-256 at
//! both ends; every stream that did not complete either reset on purpose
//! or overlapped the upstream's restart; no client hung; a fresh
//! connection works; and the proxy's fds and pool statistics return to
//! their baseline.
//!
//! Three runs, one at a time: `copy = "splice"` with a wave of 1,000;
//! `copy = "userspace"` with 300; and splice with `--max-pipes 4` for 500,
//! where most bursts find the pool at its bound and directions switch
//! between pipe and buffer mid-stream.
//!
//! The seed is printed; set `FAULTS_SEED` to replay a run.
//!
//! Files: [`plan`] (modes, sizes, the header), [`upstream`], [`client`],
//! [`judge`] (the verdict); this one drives the run.
//!
//! A binary of its own: it raises `RLIMIT_NOFILE` for the whole process
//! (its waves hold thousands of sockets in this process). Other tests:
//! `tests/it/`.

#[path = "../it/util/mod.rs"]
mod util;

use util::faults_common;

mod client;
mod judge;
mod plan;
mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use client::{client, ClientRecord};
use faults_common::{fd_count, metrics_addr, Rng, Scrape};
use judge::judge;
use plan::{Mode, Plan};
use upstream::{UpShared, Upstream};
use util::Proc;

/// The default seed (override with `FAULTS_SEED`).
const DEFAULT_SEED: u64 = 0x5EED_F00D_2026;
/// Longest any one client or upstream connection may take.
pub(crate) const CONN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a whole run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the upstream stays down when it restarts.
const GAP: Duration = Duration::from_millis(400);

/// The tests each load the machine fully: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn splice_1000_connections_with_resets_half_closes_slow_readers_and_an_upstream_restart() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    run(&Suite {
        copy: "splice",
        wave: 1000,
        trickle_max: 600,
        max_pipes: None,
        seed: faults_common::seed(DEFAULT_SEED),
    });
}

/// Only 4 pipes for 500 connections: most bursts find the pool at its
/// bound and go through memory, so directions switch between pipe and
/// buffer mid-stream, under the same faults.
#[test]
fn splice_with_4_pipes_for_500_connections_mixes_pipes_and_buffers() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    run(&Suite {
        copy: "splice",
        wave: 500,
        trickle_max: 200,
        max_pipes: Some(4),
        seed: faults_common::seed(DEFAULT_SEED) ^ 0x4_0000_0004,
    });
}

#[test]
fn userspace_300_connections_with_the_same_faults() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    run(&Suite {
        copy: "userspace",
        wave: 300,
        trickle_max: 200,
        max_pipes: None,
        seed: faults_common::seed(DEFAULT_SEED) ^ 0x0005_5E25_0ACE,
    });
}

/// One run's parameters.
struct Suite {
    copy: &'static str,
    /// Connections held open together before any transfers.
    wave: usize,
    /// Most connections started one by one during the run.
    trickle_max: usize,
    /// `--max-pipes`, if not the default.
    max_pipes: Option<usize>,
    seed: u64,
}

fn run(suite: &Suite) {
    let started = Instant::now();
    eprintln!(
        "faults ({}, max_pipes {:?}): seed {:#x} (set FAULTS_SEED to replay)",
        suite.copy, suite.max_pipes, suite.seed
    );
    let limit = faults_common::raise_fd_limit();
    let need = 2 * (suite.wave + suite.trickle_max) as u64 + 256;
    assert!(
        limit >= need,
        "this test needs {need} fds in the test process, the hard limit is {limit}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(RUN_TIMEOUT, drive(suite))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the run took longer than {RUN_TIMEOUT:?} (seed {:#x})",
                    suite.seed
                )
            })
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    eprintln!(
        "faults ({}): passed in {:.1?}",
        suite.copy,
        started.elapsed()
    );
}

async fn drive(suite: &Suite) {
    let seed = suite.seed;
    let sh = Arc::new(UpShared::default());
    let upstream = Upstream::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&sh))
        .await
        .unwrap();
    let max_pipes = suite.max_pipes.map(|n| n.to_string());
    let up_addr = upstream.addr.to_string();
    let mut args = vec![
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up_addr,
        "--copy",
        suite.copy,
        "--metrics",
        "127.0.0.1:0",
        "--connect-timeout",
        "2s",
        "--pipe-idle-timeout",
        "1s",
        "--grace-period",
        "1s",
    ];
    if let Some(n) = &max_pipes {
        args.extend(["--max-pipes", n]);
    }
    let mut proc = Proc::spawn_env(&args, &[("RUST_LOG", "info")]);
    let proxy = proc.listen_addr();
    let metrics = metrics_addr(&mut proc);
    let pid = proc.pid();
    let _ = Scrape::get(metrics); // the metrics path, once, before the baseline
    let base_fds = stable_fd_count(pid);
    eprintln!(
        "faults: proxy {proxy}, metrics {metrics}, upstream {}, baseline {base_fds} fds",
        upstream.addr
    );

    let mut rng = Rng::new(seed);
    let (go, gate) = watch::channel(false);
    let mut clients = JoinSet::new();
    for id in 0..suite.wave as u64 {
        let plan = Plan::draw(&mut rng, id);
        clients.spawn(client(proxy, plan, Some(gate.clone())));
    }
    // Every client of the wave is proxied at once before anything moves.
    wait_until(
        "the wave to be held open",
        Duration::from_secs(60),
        || sh.open.load(Relaxed) >= suite.wave,
        &proc,
    )
    .await;
    let peak_held = sh.open.load(Relaxed);
    go.send_replace(true);
    let go_at = Instant::now();

    // The trickle: one more client every 6 ms, at most half of them
    // before the restart, until a second (or, loaded, more) after it.
    let (phase, trickle_phase) = watch::channel(Phase::Before);
    let spawned = Arc::new(AtomicUsize::new(0));
    let trickle = tokio::spawn(trickle(
        proxy,
        Rng::new(seed ^ 0x7121_C4E0),
        suite.trickle_max,
        trickle_phase,
        Arc::clone(&spawned),
    ));

    // Restart the upstream once 75% of the wave is done.
    let mut records = Vec::new();
    while records.len() < suite.wave * 3 / 4 {
        records.push(clients.join_next().await.unwrap().unwrap());
    }
    phase.send_replace(Phase::Restarting);
    let (upstream, down, back) = upstream.restart(GAP).await;
    eprintln!(
        "faults: upstream restarted {:.1?} after the go ({} of the wave done)",
        down - go_at,
        records.len()
    );
    // A second of trickle after the restart, longer on a loaded machine
    // (at most 15 s) until enough clients started after it and in all
    // for the judge's counts to mean something.
    let at_back = spawned.load(Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let until = Instant::now() + Duration::from_secs(15);
    while (spawned.load(Relaxed) < at_back + 30 || spawned.load(Relaxed) < 60)
        && spawned.load(Relaxed) < suite.trickle_max
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    phase.send_replace(Phase::Stop);
    while let Some(r) = clients.join_next().await {
        records.push(r.unwrap());
    }
    let trickled = trickle.await.unwrap();
    let n_trickled = trickled.len();
    records.extend(trickled);
    wait_until(
        "the upstream's connections to end",
        Duration::from_secs(30),
        || sh.open.load(Relaxed) == 0,
        &proc,
    )
    .await;

    let report = judge(&records, &sh, down, back, seed);
    eprintln!("{}", report.summary);
    let stderr = proc.stderr();
    assert!(
        report.failures.is_empty(),
        "{} failure(s) (seed {seed:#x}):\n{}\n{}\nproxy stderr (tail):\n{}",
        report.failures.len(),
        report
            .failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        report.summary,
        tail(&stderr, 40)
    );
    assert!(
        peak_held >= suite.wave,
        "only {peak_held} connections were proxied at once"
    );
    assert!(
        n_trickled >= 50,
        "only {n_trickled} connections trickled in"
    );

    // The proxy still serves.
    let fresh = Plan {
        id: 9_999_999,
        mode: Mode::Echo,
        size: 1 << 20,
        resp: 1 << 20,
        cut: 1 << 20,
        seed: 1,
    };
    let r = client(proxy, fresh, None).await;
    assert!(
        r.complete && r.bad == 0,
        "a fresh connection after the run failed: {r:?}\n{}",
        tail(&proc.stderr(), 20)
    );
    wait_until(
        "the upstream's last connection to end",
        Duration::from_secs(10),
        || sh.open.load(Relaxed) == 0,
        &proc,
    )
    .await;
    let up = sh.records.lock().unwrap()[&fresh.id].clone();
    assert_eq!((up.recv_sha, up.sent_sha), (r.sent_sha, r.recv_sha));

    // Back to the baseline: no connection open, no pipe in use, every fd
    // beyond the baseline an idle pipe's.
    let last = std::cell::RefCell::new(String::new());
    // A connection cut by the upstream's crash may still wait (at most
    // 10 s without progress) for its client to acknowledge what it was
    // sent before its reset.
    let settled = wait_until_some(Duration::from_secs(25), || {
        let m = Scrape::get(metrics);
        let fds = fd_count(pid);
        let live = m.sum("pipepool_live");
        *last.borrow_mut() = format!("fds {fds} (baseline {base_fds}); {}", m.summary());
        let ok = m.sum("spliced_connections_active") == 0.0
            && m.sum("pipepool_in_use") == 0.0
            && live == m.sum("pipepool_idle")
            && fds == base_fds + 2 * live as usize;
        ok.then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("not back to the baseline: {}", last.borrow()));
    eprintln!("faults: settled: {}", last.borrow());
    // A connection that fails with bytes in a pipe drops that pipe (the
    // pool closes it, never reuses it): at most one per direction of each
    // failed connection. (That none was reused is what 0 mismatches show.)
    let failed = settled.sum_with("spliced_connections_closed_total", "outcome=\"error\"")
        + settled.sum_with(
            "spliced_connections_closed_total",
            "outcome=\"idle_timeout\"",
        );
    assert!(
        settled.sum("pipepool_closed_dirty_total") <= 2.0 * failed,
        "more dirty pipes than failed connections could leave: {}",
        settled.summary()
    );
    let refused = settled.sum_with(
        "spliced_upstream_connect_failures_total",
        "reason=\"refused\"",
    );
    assert!(
        refused > 0.0
            && settled.sum_with(
                "spliced_connections_closed_total",
                "outcome=\"no_upstream\""
            ) > 0.0,
        "no client met the restart gap: {}",
        settled.summary()
    );
    if let Some(n) = suite.max_pipes {
        assert!(
            settled.sum("pipepool_gets_refused_total") > 0.0
                && settled.sum("pipepool_live") <= n as f64,
            "the pool was never at its bound of {n}: {}",
            settled.summary()
        );
    }
    if suite.copy == "splice" {
        assert!(
            settled.sum("pipepool_created_total") > 0.0,
            "{}",
            settled.summary()
        );
        assert!(
            settled.sum_with("spliced_bytes_total", "method=\"splice\"") > 0.0,
            "nothing was spliced: {}",
            settled.summary()
        );
    } else {
        assert_eq!(
            settled.sum("pipepool_created_total"),
            0.0,
            "copy = userspace took pipes: {}",
            settled.summary()
        );
    }
    assert!(
        !stderr.contains("panicked"),
        "the proxy panicked:\n{stderr}"
    );
    drop(upstream);
}

/// Where the run is, for the trickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Restarting,
    Stop,
}

/// Starts a client every 6 ms (ids from 1,000,000): at most `max / 2`
/// before the restart, at most `max` in all, none after `Phase::Stop`.
async fn trickle(
    proxy: SocketAddr,
    mut rng: Rng,
    max: usize,
    mut phase: watch::Receiver<Phase>,
    spawned: Arc<AtomicUsize>,
) -> Vec<ClientRecord> {
    let mut started = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(6));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0..max as u64 {
        if k as usize >= max / 2 {
            let _ = phase.wait_for(|&p| p != Phase::Before).await;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = phase.wait_for(|&p| p == Phase::Stop) => break,
        }
        started.spawn(client(proxy, Plan::draw(&mut rng, 1_000_000 + k), None));
        spawned.fetch_add(1, Relaxed);
    }
    started.join_all().await
}

/// Polls `f` every 10 ms; panics after `within`.
async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool, proc: &Proc) {
    let deadline = Instant::now() + within;
    while !f() {
        if Instant::now() > deadline {
            let stderr = proc.stderr();
            let errors: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("error") || l.contains("WARN") || l.contains("panic"))
                .take(30)
                .collect();
            panic!(
                "timed out waiting for {what}; the proxy's errors and warnings:\n{}",
                errors.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `f` every 100 ms until `Some`, or `None` after `within`.
async fn wait_until_some<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The child's fd count once two reads 100 ms apart agree.
fn stable_fd_count(pid: u32) -> usize {
    let mut last = fd_count(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = fd_count(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the proxy's fd count does not settle");
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The pattern helpers themselves.
mod pattern {
    use crate::faults_common::Checker;
    use crate::util::fill;

    #[test]
    fn fill_is_position_exact_at_any_alignment() {
        let mut whole = vec![0u8; 100];
        fill(7, 0, &mut whole);
        for start in 0..20 {
            for len in [0, 1, 5, 8, 13, 40] {
                let mut part = vec![0u8; len];
                fill(7, start as u64, &mut part);
                assert_eq!(part, whole[start..start + len]);
            }
        }
        let mut other = vec![0u8; 100];
        fill(8, 0, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn checker_counts_foreign_and_extra_bytes() {
        let mut c = Checker::new(3, 20);
        let mut right = vec![0u8; 10];
        fill(3, 0, &mut right);
        c.take(&right);
        assert_eq!(c.bad, 0);
        let mut foreign = vec![0u8; 10];
        fill(4, 10, &mut foreign);
        c.take(&foreign);
        assert!(c.bad >= 9, "{}", c.bad);
        assert_eq!(c.first_bad.map(|p| p >= 10), Some(true));
        let mut extra = vec![0u8; 5];
        fill(3, 20, &mut extra);
        let before = c.bad;
        c.take(&extra);
        assert_eq!(c.bad, before + 5, "bytes past the limit are wrong");
    }
}
