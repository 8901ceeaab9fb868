//! Out of fds on the forwarding side: the proxy runs under `ulimit -n 64`
//! (soft and hard, since spliced raises its soft limit to the hard one)
//! with `copy = "splice"`, and is filled with connections until it has no
//! two fds left. Every pipe the pool then tries to create fails with
//! EMFILE, so every burst must fall back to the userspace copy, and still
//! deliver every byte to the right place, with no connection ending in an
//! error. (`accept_backoff.rs` covers the accept side of EMFILE.)
//!
//! Also checked: the limit really is 64; the proxy refuses what it cannot
//! hold and says EMFILE ("Too many open files") on stderr; it does not
//! spin while stuck at the limit; once the connections close it serves
//! again, with pipes; its fds return to the baseline.

use crate::util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::faults_common::{cpu_ticks, fd_count, metrics_addr, Scrape};
use crate::util::{random_bytes, sha256, Proc};

/// The fd limit of the proxy.
const NOFILE: u32 = 64;
/// Bytes each held connection sends (and gets back).
const SIZE: usize = 256 << 10;

/// An echo upstream on threads (no greeting), counting accepted connections.
fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            count.fetch_add(1, SeqCst);
            thread::spawn(move || util::echo_until_eof(&mut s));
        }
    });
    (addr, accepted)
}

/// Fd numbers below the limit that `pid` could still open. (Counting
/// `/proc/PID/fd` is not enough: fds inherited from the test harness,
/// such as cargo's jobserver pipe, may sit above the limit.)
fn free_fds(pid: u32) -> usize {
    let used = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&fd| fd < NOFILE)
        .count();
    NOFILE as usize - used
}

/// Connects; `true` if the proxy reached the upstream for it within
/// `within` (the upstream's accept count went up).
fn proxied(proxy: SocketAddr, accepted: &AtomicUsize, within: Duration) -> (TcpStream, bool) {
    let before = accepted.load(SeqCst);
    let s = TcpStream::connect(proxy).expect("connect to the proxy");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if accepted.load(SeqCst) > before {
            return (s, true);
        }
        thread::sleep(Duration::from_millis(5));
    }
    (s, false)
}

/// Sends `data` on `s` while reading the same number of bytes back;
/// returns the SHA-256 of what came back. Leaves the connection open.
fn echo(s: &TcpStream, data: Vec<u8>) -> String {
    s.set_read_timeout(Some(util::WAIT)).unwrap();
    s.set_write_timeout(Some(util::WAIT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let len = data.len();
    let writer = thread::spawn(move || w.write_all(&data).map(|()| data));
    let mut back = vec![0u8; len];
    let mut r = s;
    r.read_exact(&mut back).expect("the echo");
    writer.join().unwrap().expect("send");
    sha256(&back)
}

#[test]
fn out_of_fds_pipes_fall_back_to_userspace_and_every_byte_arrives() {
    let (up, accepted) = echo_server();
    let mut proc = Proc::spawn_with_fd_limit(
        NOFILE,
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.to_string(),
            "--copy",
            "splice",
            "--metrics",
            "127.0.0.1:0",
            "--pipe-idle-timeout",
            "1m",
            // Past the fd limit on purpose: the defaults would fit it.
            "--max-conns",
            "1000",
        ],
    );
    let proxy = proc.listen_addr();
    let metrics = metrics_addr(&mut proc);
    let pid = proc.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["64", "64"], "{line}");
    let start = Scrape::get(metrics);
    assert_eq!(start.sum("pipepool_live"), 0.0);
    thread::sleep(Duration::from_millis(200));
    let base_fds = fd_count(pid);

    // Fill: 2 fds per proxied connection, until one is not proxied (the
    // proxy is left with one fd or none: either way no pipe fits).
    let mut held = Vec::new();
    let refused = loop {
        let (s, ok) = proxied(proxy, &accepted, Duration::from_millis(500));
        if !ok {
            break s;
        }
        held.push(s);
        assert!(held.len() < NOFILE as usize, "never ran out of fds");
    };
    let free = free_fds(pid);
    assert!(
        free < 2 && held.len() >= 10,
        "{} connections held, {free} fd(s) free (baseline {base_fds})",
        held.len()
    );
    drop(refused);
    let log = util::eventually("EMFILE on stderr", || {
        let log = proc.stderr();
        log.contains("Too many open files").then_some(log)
    });

    // Every held connection moves data at once: no pipe can be created.
    let sent: Vec<(Vec<u8>, String)> = (0..held.len())
        .map(|k| {
            let data = random_bytes(0xFD00 + k as u64, SIZE + k);
            let sha = sha256(&data);
            (data, sha)
        })
        .collect();
    let backs: Vec<String> = thread::scope(|scope| {
        let tasks: Vec<_> = held
            .iter()
            .zip(&sent)
            .map(|(s, (data, _))| scope.spawn(move || echo(s, data.clone())))
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (k, ((_, want), got)) in sent.iter().zip(&backs).enumerate() {
        assert_eq!(got, want, "connection {k}: the echo differs");
    }

    // Stuck at the limit (a client waiting in the backlog): no spinning.
    let pending = TcpStream::connect(proxy).unwrap();
    thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let ticks = cpu_ticks(pid) - before;
    assert!(ticks < 20, "{ticks} clock ticks in 1 s at the fd limit");

    // Close everything; every proxied connection ended cleanly.
    for s in &held {
        s.shutdown(Shutdown::Write).unwrap();
    }
    for mut s in held {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("EOF after the echo");
        assert!(rest.is_empty(), "{} bytes after the echo", rest.len());
    }
    drop(pending);
    let m = util::eventually("the connections to close", || {
        let m = Scrape::get(metrics);
        (m.sum("spliced_connections_active") == 0.0).then_some(m)
    });
    let n = sent.len() as f64;
    // Both directions of every held connection moved data while no pipe
    // could be created: each asked the pool at least once, in vain. (Pipes
    // may appear while the connections close and free fds.)
    assert!(
        m.sum("pipepool_gets_failed_total") >= 2.0 * n,
        "{}",
        m.summary()
    );
    assert_eq!(
        m.sum_with("spliced_connections_closed_total", "outcome=\"error\""),
        0.0,
        "{}\n{log}",
        m.summary()
    );
    assert!(
        m.sum_with("spliced_connections_closed_total", "outcome=\"ok\"") >= n,
        "{}",
        m.summary()
    );
    let moved: usize = sent.iter().map(|(d, _)| d.len()).sum();
    for direction in ["client_to_upstream", "upstream_to_client"] {
        let bytes = m.sum_with("spliced_bytes_total", &format!("direction=\"{direction}\""));
        assert_eq!(bytes, moved as f64, "{direction}: {}", m.summary());
    }

    // Serves again, through pipes now.
    let fresh = util::connect(proxy);
    let data = random_bytes(0xF2E5, 1 << 20);
    let want = sha256(&data);
    assert_eq!(echo(&fresh, data), want);
    drop(fresh);
    let m = util::eventually("the fresh connection through a pipe", || {
        let m = Scrape::get(metrics);
        let done = m.sum("spliced_connections_active") == 0.0;
        (done && fd_count(pid) == base_fds + 2 * m.sum("pipepool_live") as usize).then_some(m)
    });
    assert!(m.sum("pipepool_created_total") >= 1.0, "{}", m.summary());
    assert_eq!(m.sum("pipepool_in_use"), 0.0, "{}", m.summary());
    assert!(
        m.sum_with("spliced_bytes_total", "method=\"splice\"") > 0.0,
        "{}",
        m.summary()
    );
}
