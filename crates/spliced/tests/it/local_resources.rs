//! Out of fds while connecting upstreams (`ulimit -n 64`, 60 clients at
//! once): the upstream's `socket(2)` fails with EMFILE. That is the
//! proxy's own shortage, not the upstream's health: the upstream is never
//! blamed (no connect failure counted, no backoff logged), the proxy
//! stops accepting while connections wait for fds, and the clients are
//! served as fds free up.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::util::faults_common::{metrics_addr, Scrape};
use crate::util::{self, Proc};

/// Clients at once, against 64 fds (2 per connection, plus pipes).
const CLIENTS: usize = 60;

/// Connects, waits for every client to have connected, sends a line,
/// reads it back; `Err` says what went wrong.
fn round_trip(proxy: SocketAddr, i: usize, connected: &Barrier) -> Result<(), String> {
    let s = TcpStream::connect(proxy);
    connected.wait();
    // The proxy accepts what its fds allow meanwhile, and connects
    // upstreams for them until it has none left.
    thread::sleep(Duration::from_millis(300));
    let mut s = s.map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let line = format!("client {i}\n");
    s.write_all(line.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut back = String::new();
    BufReader::new(&s)
        .read_line(&mut back)
        .map_err(|e| format!("read: {e}"))?;
    if back == line {
        Ok(())
    } else {
        Err(format!("got {back:?}"))
    }
}

#[test]
fn emfile_on_the_upstream_socket_blames_no_upstream() {
    let up = util::echo_server();
    let mut proc = Proc::spawn_with_fd_limit(
        64,
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.to_string(),
            // Past the fd limit on purpose: the defaults would fit it.
            "--max-conns",
            "1000",
            "--connect-timeout",
            "10s",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let proxy = proc.listen_addr();
    let metrics = metrics_addr(&mut proc);
    let (start, connected) = (
        Arc::new(Barrier::new(CLIENTS)),
        Arc::new(Barrier::new(CLIENTS)),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (start, connected) = (Arc::clone(&start), Arc::clone(&connected));
            thread::spawn(move || {
                start.wait();
                round_trip(proxy, i, &connected)
            })
        })
        .collect();
    let failed: Vec<String> = clients
        .into_iter()
        .filter_map(|c| c.join().unwrap().err())
        .collect();
    let log = proc.stderr();
    assert!(
        log.contains("connecting an upstream: Too many open files"),
        "no upstream socket failed with EMFILE: the test proves nothing\n{log}"
    );
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} clients failed: {failed:?}\n{log}",
        failed.len()
    );
    assert!(!log.contains("goes last in the plans"), "{log}");
    let scrape = Scrape::get(metrics);
    assert_eq!(
        scrape.sum("spliced_upstream_connect_failures_total"),
        0.0,
        "{:?}",
        scrape.0
    );
    assert_eq!(
        scrape.sum_with(
            "spliced_connections_closed_total",
            "outcome=\"no_upstream\""
        ),
        0.0,
        "{:?}",
        scrape.0
    );
    assert_eq!(
        scrape.sum_with("spliced_connections_closed_total", "outcome=\"ok\""),
        CLIENTS as f64,
        "{:?}",
        scrape.0
    );
}
