//! The metrics endpoint under a flood: 1,000 idle connections to it
//! (connected, nothing sent) neither exhaust the proxy's fds (it runs
//! under `ulimit -n 512`) nor stop it serving: a scrape still answers and
//! proxied traffic still flows. A client that sends half a request and
//! stalls is closed within the endpoint's timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::util::{connect, http_get, read_line, tag_server, Proc};

/// Where `proc` serves `/metrics`, from the line it logs at start.
fn metrics_addr(proc: &mut Proc) -> SocketAddr {
    let line = proc.wait_for_line("metrics on http://");
    line.split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .parse()
        .unwrap()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_thousand_idle_metrics_connections_exhaust_nothing() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn_with_fd_limit(
        512,
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.to_string(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let proxy = proc.listen_addr();
    let metrics = metrics_addr(&mut proc);
    let pid = proc.pid();
    let (status, _) = http_get(metrics, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let base = fd_count(pid);

    let mut idle = Vec::with_capacity(1000);
    let mut most = 0;
    for i in 0..1000 {
        let s = TcpStream::connect_timeout(&metrics, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(s);
        if i % 50 == 0 {
            most = most.max(fd_count(pid));
        }
    }
    most = most.max(fd_count(pid));
    // At most 32 metrics connections open (+1 being accepted).
    assert!(
        most <= base + 33,
        "{most} fds open with 1,000 idle metrics clients (baseline {base})"
    );

    // A scrape answers while the idle ones are still connected.
    let t = Instant::now();
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("spliced_connections_total"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Proxied traffic flows.
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
    s.write_all(b"hello\n").unwrap();
    assert_eq!(read_line(&mut s).unwrap(), "hello");
    drop(s);

    let stderr = proc.stderr();
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    drop(idle);

    // Half a request, then nothing: closed within the timeout (5 s).
    let mut slow = connect(metrics);
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}
