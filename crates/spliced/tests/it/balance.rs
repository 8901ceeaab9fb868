//! Upstream choice: round-robin and least-conn across two upstreams, and a
//! refused or silent upstream followed by the next one.

use crate::util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::util::{connect, dead_addr, read_line, tag_server, ConfigFile, Proc};

/// Connects through the proxy and returns the upstream's tag.
fn tag_via(proxy: SocketAddr) -> (TcpStream, String) {
    let mut s = connect(proxy);
    let tag = read_line(&mut s).expect("a tag from the upstream");
    (s, tag)
}

/// Closes a connection cleanly and waits until the proxy has closed it too.
fn close(mut s: TcpStream) {
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn round_robin_and_least_conn() {
    let (a, b) = (tag_server("A"), tag_server("B"));
    let config = ConfigFile::new(&format!(
        "[[listener]]\nname = \"rr\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{a}\", \"{b}\"]\nbalance = \"round-robin\"\n\
         [[listener]]\nname = \"lc\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{a}\", \"{b}\"]\nbalance = \"least-conn\"\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addrs = proc.listen_addrs(2);
    let (rr, lc) = (addrs[0], addrs[1]);

    // Round-robin: in turn, whatever is open.
    let tags: Vec<String> = (0..4)
        .map(|_| tag_via(rr))
        .map(|(s, t)| {
            close(s);
            t
        })
        .collect();
    assert_eq!(tags, ["A", "B", "A", "B"]);

    // Least-conn: the first client holds A open; after the second (on B)
    // leaves, the third goes to B again (round-robin would say A).
    let (held, first) = tag_via(lc);
    assert_eq!(first, "A");
    let (second, tag) = tag_via(lc);
    assert_eq!(tag, "B");
    close(second);
    // The proxy logs the close, then releases the upstream.
    util::eventually("the close of the second client", || {
        (proc.stderr().matches("listener=\"lc\"").count() >= 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(50));
    let (third, tag) = tag_via(lc);
    assert_eq!(
        tag, "B",
        "least-conn must avoid A, which holds a connection"
    );
    // Both busy with one each: ties go in turn.
    let (fourth, tag4) = tag_via(lc);
    let (fifth, tag5) = tag_via(lc);
    assert_ne!(
        tag4, tag5,
        "two new clients on a tie spread over both upstreams"
    );
    for s in [held, third, fourth, fifth] {
        close(s);
    }
}

#[test]
fn a_refused_upstream_is_skipped_and_all_down_closes_the_client() {
    let live = tag_server("LIVE");
    let (dead1, dead2) = (dead_addr(), dead_addr());
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &dead1.to_string(),
        "--upstream",
        &live.to_string(),
    ]);
    let proxy = proc.listen_addr();
    // Round-robin starts at the dead one for the 1st and 3rd clients: the
    // next one answers every time.
    for _ in 0..3 {
        let (mut s, tag) = tag_via(proxy);
        assert_eq!(tag, "LIVE");
        s.write_all(b"ping\n").unwrap();
        assert_eq!(read_line(&mut s).unwrap(), "ping");
        close(s);
    }
    drop(proc);

    // Every upstream down: the client is closed, and the log says why.
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &dead1.to_string(),
        "--upstream",
        &dead2.to_string(),
    ]);
    let proxy = proc.listen_addr();
    let mut s = connect(proxy);
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the client must be closed when no upstream accepts");
    let log = util::eventually("the no-upstream log line", || {
        let log = proc.stderr();
        log.contains("no upstream").then_some(log)
    });
    assert!(
        log.contains(&dead1.to_string()) && log.contains(&dead2.to_string()),
        "{log}"
    );
    assert!(log.contains("refused"), "{log}");
}

#[test]
fn a_refused_upstream_goes_last_until_it_answers() {
    let live = tag_server("LIVE");
    let dead = dead_addr();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &dead.to_string(),
        "--upstream",
        &live.to_string(),
    ]);
    let proxy = proc.listen_addr();
    // Plain round-robin would start 5 of these 10 clients at the dead
    // upstream. After its first refusal it goes last for 1 s (then 2 s...),
    // so the live one is tried first: one refusal, two if this loop took
    // over a second.
    for _ in 0..10 {
        let (s, tag) = tag_via(proxy);
        assert_eq!(tag, "LIVE");
        close(s);
    }
    let log = util::eventually("ten closes in the log", || {
        let log = proc.stderr();
        (log.matches("connection closed").count() == 10).then_some(log)
    });
    let refusals = log.matches("connect failed").count();
    assert!((1..=2).contains(&refusals), "{refusals} refusals:\n{log}");
    assert!(log.contains("backoff_ms=1000"), "{log}");
}

/// A listener whose accept queue is full: the kernel drops new SYNs, so a
/// connect to it hangs until its timeout.
fn silent_upstream() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue (backlog 0 still queues one or two) without accepting.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(c) => fillers.push(c),
            Err(_) => break,
        }
    }
    (s, fillers, addr)
}

#[test]
fn a_silent_upstream_times_out_then_the_next_answers() {
    let (_listener, _fillers, silent) = silent_upstream();
    let live = tag_server("LIVE");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &silent.to_string(),
        "--upstream",
        &live.to_string(),
        "--connect-timeout",
        "300ms",
    ]);
    let proxy = proc.listen_addr();
    let start = Instant::now();
    let (s, tag) = tag_via(proxy); // round-robin: the silent one first
    assert_eq!(tag, "LIVE");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "the silent upstream was not tried first ({waited:?})"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    close(s);
    let log = util::eventually("the timeout in the log", || {
        let log = proc.stderr();
        log.contains("connection closed").then_some(log)
    });
    assert!(
        log.contains("LIVE") || log.contains(&live.to_string()),
        "{log}"
    );
}
