//! Active health checks through the real binary: an upstream killed, one
//! stopped with SIGSTOP (its kernel still completes handshakes), and one
//! blackholed by an nftables drop rule in a network namespace made for
//! the test. Each goes down within `fall x interval + timeout` where the
//! check can see it, gets no client while down, and comes back after
//! `rise` passes.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::admin::{ctl, SocketDir};
use crate::util::{self, connect, read_line, tag_server, ConfigFile, Proc, BIN};

/// A `spliced bench --serve` echo upstream in a process of its own, on
/// `addr` (port 0: any).
fn echo_process(addr: &str) -> (Proc, SocketAddr) {
    let mut p = Proc::spawn(&["bench", "--serve", addr]);
    let a = p.listen_addr();
    (p, a)
}

/// The state and last check of `addr` on listener `listener` (`show`).
fn state(sock: &Path, listener: &str, addr: SocketAddr) -> (String, String) {
    let out = ctl(sock, &["show"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let a = addr.to_string();
    text.lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|r| r[0] == listener && r[1] == a)
        .map(|r| (r[2].to_owned(), r[5].to_owned()))
        .unwrap_or_else(|| panic!("no {listener} {a} in:\n{text}"))
}

/// Waits until `addr` is `want` on `listener`; returns how long it took.
fn wait_state(sock: &Path, listener: &str, addr: SocketAddr, want: &str) -> Duration {
    let start = Instant::now();
    util::eventually(&format!("{listener} {addr} {want}"), || {
        (state(sock, listener, addr).0 == want).then_some(())
    });
    start.elapsed()
}

/// `fall x interval + timeout` of the listeners below, and some slack for
/// a loaded machine (polling, scheduling).
const DEADLINE: Duration = Duration::from_millis(3 * 200 + 200 + 1500);

#[test]
fn a_killed_and_a_stopped_upstream_go_down_get_no_client_and_come_back() {
    let (mut killed, ka) = echo_process("127.0.0.1:0");
    let (stopped, sa) = echo_process("127.0.0.1:0");
    let live = tag_server("LIVE");
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let ups = format!("upstreams = [\"{ka}\", \"{sa}\", \"{live}\"]\n");
    let common = "health_interval = \"200ms\"\nhealth_timeout = \"200ms\"\nhealth_fall = 3\nhealth_rise = 2\n";
    let config = ConfigFile::new(&format!(
        "admin_socket = \"{}\"\nmetrics = \"127.0.0.1:0\"\n{common}\
         [[listener]]\nname = \"conn\"\nlisten = \"127.0.0.1:0\"\n{ups}\
         [[listener]]\nname = \"expect\"\nlisten = \"127.0.0.1:0\"\n{ups}\
         health_send = 'PING\\n'\nhealth_expect = \"PING\"\n",
        sock.display()
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addrs = proc.listen_addrs(2);
    let metrics = util::metrics_at(&mut proc);
    for l in ["conn", "expect"] {
        for a in [ka, sa] {
            util::eventually("a first pass", || {
                (state(&sock, l, a).1 == "pass").then_some(())
            });
        }
    }

    // Killed: refused at once, down for both kinds of check.
    killed.signal(Signal::KILL);
    killed.wait_exit(util::WAIT);
    for l in ["conn", "expect"] {
        let took = wait_state(&sock, l, ka, "down");
        assert!(took < DEADLINE, "{l}: down after {took:?}");
    }
    let up = |l: &str, a: SocketAddr| {
        util::sample_value(
            metrics,
            &format!("spliced_upstream_up{{listener=\"{l}\",upstream=\"{a}\"}}"),
        )
    };
    assert_eq!(up("conn", ka), 0.0);
    assert_eq!(up("conn", live), 1.0);
    let log = proc.stderr();
    assert_eq!(
        log.matches("upstream down").count(),
        2,
        "one line per listener:\n{log}"
    );
    assert!(log.contains("Connection refused"), "{log}");

    // Stopped: its kernel still accepts, so only send/expect sees it.
    stopped.signal(Signal::STOP);
    let took = wait_state(&sock, "expect", sa, "down");
    assert!(took < DEADLINE, "expect: down after {took:?}");
    let (s, last) = state(&sock, "conn", sa);
    assert_eq!((s.as_str(), last.as_str()), ("up", "pass"));
    // No client on a down upstream: every client of `expect` reaches LIVE.
    for _ in 0..9 {
        let mut c = connect(addrs[1]);
        assert_eq!(read_line(&mut c).unwrap(), "LIVE");
    }
    let failed = util::sample_value(
        metrics,
        &format!("spliced_upstream_checks_total{{listener=\"expect\",upstream=\"{sa}\",result=\"fail\"}}"),
    );
    assert!(failed >= 3.0, "{failed} failed checks counted");

    // Both back: after `rise` passes.
    stopped.signal(Signal::CONT);
    let (_again, _) = echo_process(&ka.to_string());
    for (l, a) in [("conn", ka), ("expect", ka), ("expect", sa)] {
        let took = wait_state(&sock, l, a, "up");
        assert!(took < DEADLINE, "{l} {a}: up after {took:?}");
    }
    assert!(proc.stderr().contains("upstream up"));
}

/// A network namespace of the test's own, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "spliced-hc-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// `ip netns exec NAME BIN args...` as a [`Proc`].
    fn spawn(&self, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, BIN]).args(args);
        Proc::spawn_command(cmd, &[])
    }

    /// Runs `nft SCRIPT` inside.
    fn nft(&self, script: &str) {
        sh(&["ip", "netns", "exec", &self.0, "nft", script]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs a command; panics with its output if it fails.
fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_blackholed_upstream_goes_down_by_timeout() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: no network namespace can be made here");
        return;
    }
    let ns = Netns::new();
    let mut upstream = ns.spawn(&["bench", "--serve", "127.0.0.1:0"]);
    let ua = upstream.listen_addr();
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let mut proc = ns.spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &ua.to_string(),
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-fall",
        "2",
        "--admin-socket",
        sock.to_str().unwrap(),
    ]);
    proc.listen_addr();
    util::eventually("a first pass", || {
        (state(&sock, "127.0.0.1:0", ua).1 == "pass").then_some(())
    });
    // Every packet to the upstream's port dropped: a connect never ends.
    ns.nft(&format!(
        "add table inet hc; add chain inet hc out {{ type filter hook output priority 0; policy accept; }}; \
         add rule inet hc out tcp dport {} drop",
        ua.port()
    ));
    let took = wait_state(&sock, "127.0.0.1:0", ua, "down");
    assert!(
        took < Duration::from_millis(2 * 200 + 300 + 1500),
        "down after {took:?}"
    );
    let (_, last) = state(&sock, "127.0.0.1:0", ua);
    assert!(last.contains("no answer within 300ms"), "{last}");
    ns.nft("delete table inet hc");
    wait_state(&sock, "127.0.0.1:0", ua, "up");
}
