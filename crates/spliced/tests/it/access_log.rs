//! The access log through the real binary: one line per closed connection
//! with its two-letter termination state, for each state a test can cause
//! on loopback (either side closing first, a reset from either side, the
//! idle timeout, an upstream that refuses or never answers, every kind of
//! refusal, a PROXY header that is late or bad), byte counts exact, the
//! JSON form parsed, the rate bound on refusals, rotation (SIGUSR1 after
//! a rename) and the flush at exit.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::util::{connect, connect_from, dead_addr, echo_until_eof, eventually, ConfigFile, Proc};

/// A fresh path for a log file, removed on drop.
struct LogPath(PathBuf);

impl LogPath {
    fn new() -> LogPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        LogPath(std::env::temp_dir().join(format!(
            "spliced-access-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// The lines written so far.
    fn lines(&self) -> Vec<String> {
        read_lines(&self.0)
    }

    /// Waits until the log has `n` lines; returns them.
    fn wait_lines(&self, n: usize) -> Vec<String> {
        eventually(
            &format!("{n} access log line(s) in {}", self.0.display()),
            || {
                let l = self.lines();
                (l.len() >= n).then_some(l)
            },
        )
    }
}

impl Drop for LogPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A tcplog line's fields: CLIENT [TIME] LISTENER UPSTREAM TC/TT
/// TO_UPSTREAM TO_CLIENT STATE METHOD SNI VIA REASON SUPPRESSED.
#[derive(Debug)]
struct Line {
    client: String,
    listener: String,
    upstream: String,
    connect_ms: i64,
    to_upstream: u64,
    to_client: u64,
    state: String,
    method: String,
    via: String,
    reason: String,
    suppressed: u64,
}

fn parse(line: &str) -> Line {
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 13, "{line}");
    assert!(f[1].starts_with('[') && f[1].ends_with("Z]"), "{line}");
    let (tc, _tt) = f[4].split_once('/').unwrap();
    Line {
        client: f[0].to_owned(),
        listener: f[2].to_owned(),
        upstream: f[3].to_owned(),
        connect_ms: tc.parse().unwrap(),
        to_upstream: f[5].parse().unwrap(),
        to_client: f[6].parse().unwrap(),
        state: f[7].to_owned(),
        method: f[8].to_owned(),
        via: f[10].to_owned(),
        reason: f[11].to_owned(),
        suppressed: f[12].parse().unwrap(),
    }
}

/// spliced with one listener `l` to `upstream`, the access log at `log`,
/// and `extra` flags.
fn spliced(log: &LogPath, upstream: SocketAddr, extra: &[&str]) -> (Proc, SocketAddr) {
    let up = upstream.to_string();
    let mut args = vec![
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--access-log",
        log.arg(),
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args);
    let addr = proc.listen_addr();
    (proc, addr)
}

/// An upstream that runs `serve` on each connection.
fn upstream(serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            thread::spawn(move || serve(s));
        }
    });
    addr
}

fn echo() -> SocketAddr {
    upstream(|mut s| echo_until_eof(&mut s))
}

/// Closes `s` with an RST (SO_LINGER 0).
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

#[test]
fn client_closes_first_then_upstream_closes_first() {
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, echo(), &["--copy", "userspace"]);
    // The client ends its stream first: the echo then ends its own.
    let mut c = connect(addr);
    c.write_all(&[7u8; 1000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 1000);
    let client = c.local_addr().unwrap().to_string();
    drop(c);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(line.client, client);
    assert_eq!(line.state, "C-", "{line:?}");
    assert_eq!((line.to_upstream, line.to_client), (1000, 1000));
    assert_eq!(line.method, "userspace");
    assert!(line.connect_ms >= 0, "{line:?}");
    assert_eq!(line.listener, "127.0.0.1:0"); // the configured address

    // The upstream speaks and ends first; the client reads it all, then
    // closes.
    let talker = upstream(|mut s| {
        s.write_all(&[1u8; 12345]).unwrap();
    });
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, talker, &[]);
    let mut c = connect(addr);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 12345);
    drop(c);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(line.state, "S-", "{line:?}");
    assert_eq!((line.to_upstream, line.to_client), (0, 12345));
    assert_eq!(line.upstream, talker.to_string());
    assert_eq!(line.method, "splice");
}

#[test]
fn resets_from_either_side_with_exact_counts() {
    // The client sends 300 bytes, reads their echo, then resets.
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, echo(), &[]);
    let mut c = connect(addr);
    c.write_all(&[3u8; 300]).unwrap();
    let mut back = [0u8; 300];
    c.read_exact(&mut back).unwrap();
    reset(c);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(line.state, "CD", "{line:?}");
    assert_eq!((line.to_upstream, line.to_client), (300, 300));

    // The upstream reads 5 bytes, answers 2, then resets.
    let resetter = upstream(|mut s| {
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"ok").unwrap();
        thread::sleep(Duration::from_millis(100));
        reset(s);
    });
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, resetter, &[]);
    let mut c = connect(addr);
    c.write_all(b"hello").unwrap();
    let mut b = [0u8; 2];
    c.read_exact(&mut b).unwrap();
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(line.state, "SD", "{line:?}");
    assert_eq!((line.to_upstream, line.to_client), (5, 2));
}

#[test]
fn idle_timeout() {
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, echo(), &["--idle-timeout", "300ms"]);
    let mut c = connect(addr);
    c.write_all(b"abc").unwrap();
    let mut b = [0u8; 3];
    c.read_exact(&mut b).unwrap();
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(line.state, "cD", "{line:?}");
    assert_eq!((line.to_upstream, line.to_client), (3, 3));
}

#[test]
fn upstream_refused_and_connect_timeout() {
    let log = LogPath::new();
    let dead = dead_addr();
    let (_proc, addr) = spliced(&log, dead, &[]);
    let c = connect(addr);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(line.state, "SC", "{line:?}");
    assert_eq!(line.upstream, dead.to_string(), "the upstream tried last");
    assert_eq!(line.connect_ms, -1);
    assert_eq!((line.to_upstream, line.to_client), (0, 0));
    assert_eq!(line.method, "-");
    drop(c);

    // A listener whose accept queue is full drops SYNs: the connect
    // never completes.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..3 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&full_addr.into());
        fillers.push(s);
    }
    thread::sleep(Duration::from_millis(100));
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, full_addr, &["--connect-timeout", "300ms"]);
    let c = connect(addr);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(line.state, "sC", "{line:?}");
    assert_eq!(
        line.upstream,
        full_addr.to_string(),
        "the upstream that timed out"
    );
    drop((c, fillers, full));
}

#[test]
fn refusals_by_acl_limits_and_untrusted_proxies() {
    let up = echo();
    // Denied at accept.
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, up, &["--deny", "127.0.0.2"]);
    let c = connect_from(ip("127.0.0.2"), addr);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(
        (line.state.as_str(), line.reason.as_str()),
        ("PA", "denied")
    );
    assert_eq!(line.client, c.local_addr().unwrap().to_string());

    // max_conns at accept, max_conns_per_source after.
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, up, &["--max-conns", "1"]);
    let held = connect(addr);
    let _refused = connect(addr);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(
        (line.state.as_str(), line.reason.as_str()),
        ("LA", "max_conns")
    );
    drop(held);
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, up, &["--max-conns-per-source", "1"]);
    let _held = connect(addr);
    let _refused = connect(addr);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(
        (line.state.as_str(), line.reason.as_str()),
        ("LR", "max_conns_per_source")
    );

    // A peer outside accept_proxy_from; a header whose address is denied.
    let log = LogPath::new();
    let flags = [
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.1",
        "--deny",
        "10.0.0.0/8",
    ];
    let (_proc, addr) = spliced(&log, up, &flags);
    let _untrusted = connect_from(ip("127.0.0.3"), addr);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(
        (line.state.as_str(), line.reason.as_str()),
        ("PA", "untrusted_proxy")
    );
    let mut c = connect(addr);
    c.write_all(b"PROXY TCP4 10.1.1.1 10.0.0.1 1234 80\r\nhello")
        .unwrap();
    let line = parse(&log.wait_lines(2)[1]);
    assert_eq!(
        (line.state.as_str(), line.reason.as_str()),
        ("PR", "denied")
    );
    assert_eq!(line.client, "10.1.1.1:1234");
}

#[test]
fn proxy_header_late_bad_and_good() {
    let log = LogPath::new();
    let flags = [
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.1",
        "--proxy-timeout",
        "300ms",
    ];
    let (_proc, addr) = spliced(&log, echo(), &flags);
    let _silent = connect(addr);
    let line = parse(&log.wait_lines(1)[0]);
    assert_eq!(
        (line.state.as_str(), line.reason.as_str()),
        ("cR", "proxy_header")
    );
    let mut bad = connect(addr);
    bad.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let line = parse(&log.wait_lines(2)[1]);
    assert_eq!(
        (line.state.as_str(), line.reason.as_str()),
        ("CR", "proxy_header")
    );
    // A good header: the client is the header's, the balancer is `via`;
    // the header's bytes are not counted as forwarded.
    let mut c = connect(addr);
    c.write_all(b"PROXY TCP4 192.0.2.7 192.0.2.1 4000 80\r\nping")
        .unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"ping");
    let line = parse(&log.wait_lines(3)[2]);
    assert_eq!(line.client, "192.0.2.7:4000");
    assert_eq!(line.via, c.local_addr().unwrap().to_string());
    assert_eq!((line.to_upstream, line.to_client), (4, 4));
    assert_eq!(line.state, "C-");
}

#[test]
fn json_lines_parse() {
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, echo(), &["--access-log-format", "json"]);
    let mut c = connect(addr);
    c.write_all(b"json").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    let lines = log.wait_lines(1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["state"], "C-");
    assert_eq!(v["to_upstream"], 4);
    assert_eq!(v["to_client"], 4);
    assert_eq!(v["client"], c.local_addr().unwrap().to_string());
    assert_eq!(v["listener"], "127.0.0.1:0");
    assert!(v["connect_ms"].is_u64(), "{v}");
    assert!(v["total_ms"].is_u64(), "{v}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    assert!(v["sni"].is_null() && v["via"].is_null(), "{v}");
}

/// 40 refusals at once: at most 10 lines a second, and a line after a
/// gap says how many were left out; every refusal is a line or counted
/// in one.
#[test]
fn refusals_are_logged_at_a_bounded_rate() {
    let log = LogPath::new();
    let (_proc, addr) = spliced(&log, echo(), &["--deny", "127.0.0.0/8"]);
    let burst: Vec<TcpStream> = (0..40).map(|_| connect(addr)).collect();
    thread::sleep(Duration::from_millis(1100));
    let first = log.lines().len();
    drop(burst);
    let _late = connect(addr);
    let lines: Vec<Line> = log.wait_lines(first + 1).iter().map(|l| parse(l)).collect();
    assert!(lines.iter().all(|l| l.state == "PA"), "{lines:?}");
    assert!(lines.len() < 41 && first <= 20, "{lines:?}");
    let counted: u64 = lines.iter().map(|l| 1 + l.suppressed).sum();
    assert_eq!(counted, 41, "{lines:?}");
    assert!(lines.iter().any(|l| l.suppressed > 0), "{lines:?}");
}

#[test]
fn sigusr1_reopens_after_a_rename_and_exit_flushes() {
    let log = LogPath::new();
    let (mut proc, addr) = spliced(&log, echo(), &[]);
    let one = |addr| {
        let mut c = connect(addr);
        c.write_all(b"x").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        c.local_addr().unwrap().to_string()
    };
    let first = one(addr);
    log.wait_lines(1);
    let rotated = PathBuf::from(format!("{}.1", log.arg()));
    std::fs::rename(&log.0, &rotated).unwrap();
    proc.signal(rustix::process::Signal::USR1);
    eventually("the reopen", || {
        proc.stderr().contains("access log: reopened").then_some(())
    });
    let second = one(addr);
    let lines = log.wait_lines(1);
    assert!(lines[0].starts_with(&second), "{lines:?}");
    let old = read_lines(&rotated);
    let _ = std::fs::remove_file(&rotated);
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0].starts_with(&first), "{old:?}");

    // At exit, what is pending is written at once.
    let third = one(addr);
    proc.signal(rustix::process::Signal::TERM);
    assert!(proc.wait_exit(Duration::from_secs(10)).success());
    let lines = log.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with(&third), "{lines:?}");
}

/// A reload that names another file moves the log there; the old file
/// keeps what was written before.
#[test]
fn a_reload_moves_the_log_to_its_new_path() {
    let (a, b) = (LogPath::new(), LogPath::new());
    let up = echo();
    let text = |log: &LogPath| {
        format!(
            "access_log = \"{}\"\n[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\
             upstreams = [\"{up}\"]\n",
            log.arg()
        )
    };
    let config = ConfigFile::new(&text(&a));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addr = proc.listen_addr();
    let one = || {
        let mut c = connect(addr);
        c.shutdown(Shutdown::Write).unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    };
    one();
    a.wait_lines(1);
    proc.reload(&config, &text(&b));
    eventually("the reopen", || {
        proc.stderr().contains("access log: reopened").then_some(())
    });
    one();
    let lines = b.wait_lines(1);
    assert_eq!(parse(&lines[0]).listener, "l");
    assert_eq!(a.lines().len(), 1);
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
