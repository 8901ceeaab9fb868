//! The worker model (issue 22): with `per-thread` (the default) each of N
//! workers has its own listening socket (`SO_REUSEPORT`) and accepts a
//! share of the connections, counted per worker on `/metrics`
//! (`spliced_worker_accepts_total`, `spliced_worker_connections`);
//! `work-stealing` (tokio's multi-thread runtime) forwards as well.

use std::io::Write;
use std::net::TcpStream;

use crate::util::{connect, eventually, http_get, metrics_at, read_line, tag_server, Proc};

const WORKERS: usize = 4;
/// Connections held open at once: with 4 accept queues, the chance that
/// the kernel's hash leaves one empty is 4 * (3/4)^64, about 1e-8.
const CONNS: usize = 64;

/// `name{worker="i"}` for each worker, from one scrape.
fn per_worker(body: &str, name: &str) -> Vec<f64> {
    (0..WORKERS)
        .map(|i| {
            let prefix = format!("{name}{{worker=\"{i}\"}} ");
            body.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map_or(0.0, |v| v.trim().parse().unwrap())
        })
        .collect()
}

/// Every worker accepts: connections held open at once are spread over
/// all the workers' sockets, and the per-worker counters add up to them.
#[test]
fn every_worker_accepts_a_share() {
    let up = tag_server("up").to_string();
    let workers = WORKERS.to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--worker-threads",
        &workers,
        "--metrics",
        "127.0.0.1:0",
    ]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);
    let mut open: Vec<TcpStream> = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let mut s = connect(proxy);
        // Through to the upstream: accepted, admitted and connected.
        assert_eq!(read_line(&mut s).unwrap(), "up");
        open.push(s);
    }
    let (_, body) = http_get(metrics, "/metrics");
    let accepts = per_worker(&body, "spliced_worker_accepts_total");
    let held = per_worker(&body, "spliced_worker_connections");
    assert!(
        accepts.iter().all(|&n| n >= 1.0),
        "a worker accepted nothing: {accepts:?}\n{body}"
    );
    assert_eq!(accepts.iter().sum::<f64>(), CONNS as f64, "{accepts:?}");
    assert_eq!(held.iter().sum::<f64>(), CONNS as f64, "{held:?}");
    // Each worker holds the connections it accepted.
    assert_eq!(accepts, held);
    drop(open);
    eventually("the open gauges back to 0", || {
        let (_, body) = http_get(metrics, "/metrics");
        per_worker(&body, "spliced_worker_connections")
            .iter()
            .all(|&n| n == 0.0)
            .then_some(())
    });
}

/// `--worker-model work-stealing` forwards both ways, and its
/// connections count under worker 0 (one runtime).
#[test]
fn work_stealing_forwards() {
    let up = tag_server("ws").to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--worker-model",
        "work-stealing",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "ws");
    s.write_all(b"ping\n").unwrap();
    assert_eq!(read_line(&mut s).unwrap(), "ping");
    let (_, body) = http_get(metrics, "/metrics");
    assert_eq!(
        per_worker(&body, "spliced_worker_accepts_total"),
        [1.0, 0.0, 0.0, 0.0]
    );
}
