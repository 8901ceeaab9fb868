//! `max_conns` refuses past the bound and recovers; `idle_timeout` closes
//! quiet connections and spares busy ones.

use crate::util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{connect, read_line, tag_server, Proc};

/// Whether the proxy closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true, // reset
        }
    }
}

fn echo_once(s: &mut TcpStream, msg: &str) {
    s.write_all(format!("{msg}\n").as_bytes()).unwrap();
    assert_eq!(read_line(s).unwrap(), msg);
}

#[test]
fn max_conns_refuses_then_recovers() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.to_string(),
        "--max-conns",
        "2",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let proxy = proc.listen_addr();
    let metrics: std::net::SocketAddr = proc
        .wait_for_line("metrics on")
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let mut a = connect(proxy);
    let mut b = connect(proxy);
    assert_eq!(read_line(&mut a).unwrap(), "UP");
    assert_eq!(read_line(&mut b).unwrap(), "UP");

    // The third is closed at once.
    let mut c = connect(proxy);
    assert!(
        closed_within(&mut c, Duration::from_secs(5)),
        "the third client was not refused"
    );
    echo_once(&mut a, "still fine");

    let (_, body) = util::http_get(metrics, "/metrics");
    assert!(
        body.contains("spliced_connections_refused_total{listener=\"127.0.0.1:0\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("spliced_connections_active{listener=\"127.0.0.1:0\"} 2"),
        "{body}"
    );
    assert!(proc.stderr().contains("max_conns (2)"), "{}", proc.stderr());

    // A slot frees up: new clients are served again.
    drop(b);
    let mut d = util::eventually("a slot after a close", || {
        let mut d = connect(proxy);
        read_line(&mut d).ok().map(|_| d)
    });
    echo_once(&mut d, "served again");
}

#[test]
fn idle_timeout_closes_quiet_connections_only() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.to_string(),
        "--idle-timeout",
        "400ms",
    ]);
    let proxy = proc.listen_addr();
    let mut quiet = connect(proxy);
    let mut busy = connect(proxy);
    assert_eq!(read_line(&mut quiet).unwrap(), "UP");
    assert_eq!(read_line(&mut busy).unwrap(), "UP");

    // The busy one talks every 100 ms for 1.2 s: three timeouts' worth.
    let start = Instant::now();
    let talker = thread::spawn(move || {
        for i in 0..12 {
            echo_once(&mut busy, &format!("tick {i}"));
            thread::sleep(Duration::from_millis(100));
        }
        busy
    });
    assert!(
        closed_within(&mut quiet, Duration::from_secs(5)),
        "the quiet connection stayed open"
    );
    let quiet_for = start.elapsed();
    assert!(
        quiet_for >= Duration::from_millis(300),
        "closed too early: {quiet_for:?}"
    );
    let busy = talker.join().expect("the busy connection was cut");
    drop(busy);
    let log = util::eventually("the idle close in the log", || {
        let log = proc.stderr();
        log.contains("outcome=\"idle_timeout\"").then_some(log)
    });
    assert!(log.contains("connection closed"), "{log}");
}
