//! Out of fds: `accept` fails with EMFILE while the limit lasts. The
//! listener must back off (no busy loop: little CPU while stuck) and serve
//! again once fds are free.

use crate::util;

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use crate::util::{read_line, tag_server, Proc};

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" of the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn emfile_backs_off_without_spinning_and_recovers() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn_with_fd_limit(
        48,
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.to_string(),
            "--copy",
            "userspace",
            // Past the fd limit on purpose: the defaults would fit it.
            "--max-conns",
            "1000",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let proxy = proc.listen_addr();
    let metrics: std::net::SocketAddr = proc
        .wait_for_line("metrics on http://")
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .parse()
        .unwrap();

    // Hold connections until the proxy runs out of fds (2 per connection).
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(proxy).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match read_line(&mut s) {
            Ok(tag) if tag == "UP" => held.push(s),
            _ => break, // not served: the proxy is out of fds
        }
    }
    assert!(
        held.len() >= 5 && held.len() < 40,
        "served {} connections under 48 fds",
        held.len()
    );
    // A connection costs the proxy 2 fds, so it may have one left (then
    // accept works and the upstream socket fails). An idle metrics client
    // takes that one (for the metrics server's 5 s read timeout), then
    // clients wait in the backlog while accept fails with EMFILE.
    let idle_metrics = TcpStream::connect(metrics).unwrap();
    thread::sleep(Duration::from_millis(300));
    let pending: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(proxy).unwrap()).collect();
    let log = util::eventually("an accept error in the log", || {
        let log = proc.stderr();
        log.contains("accept failed").then_some(log)
    });
    assert!(
        log.contains("Too many open files") || log.contains("os error 24"),
        "{log}"
    );

    // Stuck at the limit: at most a few ticks of CPU per second.
    let before = cpu_ticks(proc.pid());
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(proc.pid()) - before;
    assert!(
        used < 30,
        "{used} clock ticks in 1 s at the fd limit: a busy loop?"
    );

    // Free the fds: clients are served again.
    drop((held, pending, idle_metrics));
    util::eventually("service after the fds are freed", || {
        let mut s = TcpStream::connect(proxy).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        (read_line(&mut s).ok()? == "UP").then_some(())
    });
}
