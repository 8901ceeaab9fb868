//! Real network faults through the real binary, each test in its own
//! network namespace (created and deleted by the test, see [`ns`]): loss,
//! a silent upstream, resets, a slow link, a small MTU. Traffic stays on
//! the namespace's own loopback.
//!
//! Each test names the fault and the figure it holds:
//! - `loss_*`: 3% random loss each way on both legs, MTU 1500: 8 echoes of
//!   2 MiB each come back whole (SHA-256), in both copy modes.
//! - `blackhole_*`: the upstream goes silent mid-download; with
//!   `idle_timeout` 2 s every client is closed 1.5-6 s later, with an
//!   RST (the stream was cut), and the proxy's fds return to their level.
//! - `upstream_reset_*` / `injected_reset_*` / `client_reset_*`: a reset
//!   on one leg reaches the other as a reset, after every byte the proxy
//!   received was delivered (data in flight in the pipe or buffer).
//! - `connect_blackholed_upstream_*`: an upstream that drops SYNs costs
//!   `connect_timeout` (1 s), then the next upstream serves the client.
//! - `slow_clients_*`: 100 slow 1 MiB downloads behind a 64 Mbit/s link:
//!   the pipes they held are all closed `pipe_idle_timeout` (1 s) after
//!   the burst, within 3 s.
//! - `memory_*`: after a burst of 300 slow userspace-copy downloads, RSS
//!   is back within 8 MiB of its level before, 5 s after the burst.
//!
//! No test here emulates delay: this kernel has no `netem`. See [`ns`].

mod ns;
mod peers;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use self::ns::{Dir, Netns};
use self::peers::{client, pipe_fds, read_download, rss_kib, spliced, Download};
use crate::util::faults_common::{fd_count, Scrape};
use crate::util::{random_bytes, sha256, wait_until_within};

const MODES: [&str; 2] = ["splice", "userspace"];

/// Counts of the RSTs spliced sent, by side.
fn resets_sent(metrics: SocketAddr, to: &str) -> f64 {
    Scrape::get(metrics).sum_with("spliced_resets_sent_total", &format!("to=\"{to}\""))
}

/// Asserts that `spliced_resets_sent_total{to}` reaches `want`: the
/// counter is bumped once both sides' resets are done, which may be a
/// moment after a peer saw its reset, so it is polled (at most 5 s).
fn assert_resets_sent(metrics: SocketAddr, to: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = resets_sent(metrics, to);
    while got != want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        got = resets_sent(metrics, to);
    }
    assert_eq!(got, want, "spliced_resets_sent_total{{to=\"{to}\"}}");
}

// ---- loss ---------------------------------------------------------------

fn loss(mode: &str) {
    let ns = Netns::new("loss", 1500);
    ns.run(|| {
        let upstream = peers::echo_server();
        let (proc, proxy, _) = spliced(&[upstream], &["--copy", mode, "--idle-timeout", "60s"]);
        for leg in [proxy.port(), upstream.port()] {
            ns.loss(leg, Dir::To, 30);
            ns.loss(leg, Dir::From, 30);
        }
        let size = 2 << 20;
        let echoes: Vec<_> = (0..8u64)
            .map(|i| {
                thread::spawn(move || {
                    let data = random_bytes(0x1055 + i, size);
                    let mut s = client(proxy);
                    let mut w = s.try_clone().unwrap();
                    let want = sha256(&data);
                    let writer = thread::spawn(move || {
                        w.write_all(&data).unwrap();
                        w.shutdown(std::net::Shutdown::Write).unwrap();
                    });
                    let mut got = Vec::new();
                    let read = s.read_to_end(&mut got);
                    writer.join().unwrap();
                    (read.map_err(|e| e.kind()), got.len(), sha256(&got) == want)
                })
            })
            .collect();
        for (i, e) in echoes.into_iter().enumerate() {
            let (read, len, same) = e.join().unwrap();
            assert_eq!(read, Ok(size), "echo {i} ({mode}): {len} bytes back");
            assert!(same, "echo {i} ({mode}): corrupted under 3% loss");
        }
        drop(proc);
    });
}

#[test]
fn loss_3pct_both_legs_echo_intact_splice() {
    loss("splice");
}

#[test]
fn loss_3pct_both_legs_echo_intact_userspace() {
    loss("userspace");
}

// ---- blackhole ----------------------------------------------------------

fn blackhole(mode: &str) {
    let ns = Netns::new("bh", 1500);
    ns.run(|| {
        let upstream = peers::endless_server(1 << 30);
        let (proc, proxy, metrics) =
            spliced(&[upstream], &["--copy", mode, "--idle-timeout", "2s"]);
        // Sockets and files: idle pipes stay pooled for pipe_idle_timeout.
        let fds = |pid| fd_count(pid) - pipe_fds(pid);
        let baseline = fds(proc.pid());
        let clients: Vec<_> = (0..5)
            .map(|_| {
                let mut s = client(proxy);
                let mut first = vec![0u8; 64 * 1024];
                s.read_exact(&mut first).unwrap();
                s
            })
            .collect();
        ns.blackhole(upstream.port());
        let cut = Instant::now();
        let readers: Vec<_> = clients
            .into_iter()
            .map(|s| thread::spawn(move || read_download(s, 64 * 1024, Duration::ZERO).1))
            .collect();
        for r in readers {
            let d: Download = r.join().unwrap();
            let after = d.at - cut;
            assert!(
                after >= Duration::from_millis(1500) && after <= Duration::from_millis(6000),
                "{mode}: a client closed {after:?} after the upstream went silent (idle_timeout 2s)"
            );
            assert_eq!(
                d.end,
                Some(ErrorKind::ConnectionReset),
                "{mode}: a stream cut by the idle timeout must end in a reset, not a clean EOF"
            );
        }
        assert!(
            wait_until_within(Duration::from_secs(3), || fds(proc.pid()) <= baseline),
            "{mode}: fds (not pipes) {} after the idle timeout, {baseline} before; sockets now:\n{}",
            fds(proc.pid()),
            peers::socket_table()
        );
        let s = Scrape::get(metrics);
        assert_eq!(
            s.sum_with(
                "spliced_connections_closed_total",
                "outcome=\"idle_timeout\""
            ),
            5.0,
            "{}",
            s.summary()
        );
        assert_resets_sent(metrics, "client", 5.0);
    });
}

#[test]
fn blackhole_upstream_mid_download_closes_within_idle_timeout_splice() {
    blackhole("splice");
}

#[test]
fn blackhole_upstream_mid_download_closes_within_idle_timeout_userspace() {
    blackhole("userspace");
}

// ---- resets -------------------------------------------------------------

/// The upstream fills the path (the client does not read), then resets:
/// the client must get every byte the proxy took in, then the reset.
fn upstream_reset(mode: &str) {
    let ns = Netns::new("rst", 1500);
    ns.run(|| {
        let (upstream, written) = peers::fill_then_reset_server();
        let (proc, proxy, metrics) =
            spliced(&[upstream], &["--copy", mode, "--idle-timeout", "30s"]);
        let s = client(proxy);
        // The client reads only once the upstream has reset.
        let written = written.recv_timeout(peers::IO_LIMIT).unwrap();
        thread::sleep(Duration::from_millis(200));
        let (_, d) = read_download(s, 64 * 1024, Duration::ZERO);
        assert!(d.bytes <= written, "{mode}: {} of {written}", d.bytes);
        let line = crate::util::eventually("the access log line", || {
            let log = proc.stderr();
            let line = log.lines().find(|l| l.contains("connection closed"))?;
            Some(line.to_owned())
        });
        let to_client: u64 = field(&line, "to_client").parse().unwrap();
        assert!(d.intact, "{mode}: bytes out of place");
        assert!(
            d.bytes > 256 * 1024,
            "{mode}: only {} bytes were in flight",
            d.bytes
        );
        assert_eq!(
            d.bytes, to_client,
            "{mode}: the client got {} of the {to_client} bytes the proxy forwarded: {line}",
            d.bytes
        );
        assert_eq!(
            d.end,
            Some(ErrorKind::ConnectionReset),
            "{mode}: an upstream reset must reach the client as a reset: {line}"
        );
        assert!(line.contains("reset_sent=\"client\""), "{line}");
        assert_resets_sent(metrics, "client", 1.0);
    });
}

#[test]
fn upstream_reset_reaches_client_as_reset_after_data_in_flight_splice() {
    upstream_reset("splice");
}

#[test]
fn upstream_reset_reaches_client_as_reset_after_data_in_flight_userspace() {
    upstream_reset("userspace");
}

/// An RST injected on the upstream leg (nftables answers the proxy's next
/// segment to the upstream with one) mid-download: every one of 5 clients
/// sees a reset, never a clean EOF.
fn injected_reset(mode: &str) {
    let ns = Netns::new("inj", 1500);
    ns.run(|| {
        let upstream = peers::endless_server(1 << 30);
        let (_proc, proxy, metrics) =
            spliced(&[upstream], &["--copy", mode, "--idle-timeout", "30s"]);
        let readers: Vec<_> = (0..5)
            .map(|_| {
                let s = client(proxy);
                thread::spawn(move || read_download(s, 16 * 1024, Duration::from_millis(2)).1)
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        ns.reset_senders_to(upstream.port());
        for r in readers {
            let d = r.join().unwrap();
            assert!(d.intact && d.bytes > 0, "{mode}: {d:?}");
            assert_eq!(
                d.end,
                Some(ErrorKind::ConnectionReset),
                "{mode}: a download cut by a reset on the upstream leg looked complete"
            );
        }
        assert_resets_sent(metrics, "client", 5.0);
    });
}

#[test]
fn injected_reset_on_upstream_leg_reaches_clients_splice() {
    injected_reset("splice");
}

#[test]
fn injected_reset_on_upstream_leg_reaches_clients_userspace() {
    injected_reset("userspace");
}

/// The client sends 1 MiB, then resets: the upstream reads the 1 MiB,
/// then a reset, never a clean EOF.
fn client_reset(mode: &str) {
    let ns = Netns::new("crst", 1500);
    ns.run(|| {
        let (upstream, ends) = peers::sink_server();
        let (_proc, proxy, metrics) =
            spliced(&[upstream], &["--copy", mode, "--idle-timeout", "30s"]);
        let mut s = client(proxy);
        s.write_all(&random_bytes(7, 1 << 20)).unwrap();
        // Every byte reached the upstream's socket before the reset: the
        // proxy must forward them all, then the reset.
        thread::sleep(Duration::from_millis(500));
        peers::reset(s);
        let (n, end) = ends.recv_timeout(peers::IO_LIMIT).unwrap();
        assert_eq!(n, 1 << 20, "{mode}: bytes before the reset");
        assert_eq!(
            end,
            Some(ErrorKind::ConnectionReset),
            "{mode}: a client reset must reach the upstream as a reset"
        );
        assert_resets_sent(metrics, "upstream", 1.0);
    });
}

#[test]
fn client_reset_reaches_upstream_as_reset_splice() {
    client_reset("splice");
}

#[test]
fn client_reset_reaches_upstream_as_reset_userspace() {
    client_reset("userspace");
}

/// A normal end of stream stays a FIN: a whole download ends in a clean
/// EOF, and no reset is counted.
#[test]
fn normal_eof_stays_fin_both_modes() {
    let ns = Netns::new("fin", 1500);
    ns.run(|| {
        let upstream = peers::download_server(1 << 20);
        for mode in MODES {
            let (_proc, proxy, metrics) = spliced(&[upstream], &["--copy", mode]);
            let (_, d) = read_download(client(proxy), 64 * 1024, Duration::ZERO);
            assert_eq!((d.bytes, d.end, d.intact), (1 << 20, None, true), "{mode}");
            assert_eq!(resets_sent(metrics, "client"), 0.0, "{mode}");
        }
    });
}

// ---- connect ------------------------------------------------------------

/// The first upstream drops every SYN: each client whose turn hits it waits
/// `connect_timeout` (1 s), then the next upstream serves it.
#[test]
fn connect_blackholed_upstream_moves_to_next_within_connect_timeout() {
    let ns = Netns::new("conn", 1500);
    ns.run(|| {
        let dead = peers::echo_server();
        let alive = peers::echo_server();
        ns.blackhole(dead.port());
        let (_proc, proxy, metrics) = spliced(&[dead, alive], &["--connect-timeout", "1s"]);
        let mut slow = 0;
        for i in 0..4u8 {
            let start = Instant::now();
            let mut s = client(proxy);
            s.write_all(&[i]).unwrap();
            let mut b = [0u8];
            s.read_exact(&mut b).unwrap();
            assert_eq!(b[0], i);
            let took = start.elapsed();
            assert!(took < Duration::from_millis(4000), "client {i}: {took:?}");
            if took >= Duration::from_millis(900) {
                slow += 1;
            }
        }
        assert!(slow >= 1, "no client hit the blackholed upstream");
        let failed = Scrape::get(metrics).sum("spliced_upstream_connect_failures_total");
        assert_eq!(failed, f64::from(slow));
    });
}

// ---- slow clients: pipes and memory given back ----------------------------

/// Runs `n` downloads of 1 MiB at once through a 64 Mbit/s link (from the
/// proxy's listener port), each client reading 16 KiB every 10 ms;
/// samples `sample(pid)` every 100 ms and returns its peak.
fn slow_burst(
    ns: &Netns,
    proxy: SocketAddr,
    pid: u32,
    n: usize,
    sample: impl Fn(u32) -> u64,
) -> u64 {
    ns.rate_limit_from(proxy.port(), "64mbit");
    let readers: Vec<_> = (0..n)
        .map(|_| {
            let s = client(proxy);
            thread::spawn(move || read_download(s, 16 * 1024, Duration::from_millis(10)).1)
        })
        .collect();
    let mut peak = 0;
    while !readers.iter().all(|r| r.is_finished()) {
        peak = peak.max(sample(pid));
        thread::sleep(Duration::from_millis(100));
    }
    for r in readers {
        let d = r.join().unwrap();
        assert_eq!((d.bytes, d.end), (1 << 20, None));
    }
    peak
}

#[test]
fn slow_clients_pipes_closed_after_pipe_idle_timeout() {
    let ns = Netns::new("slow", 1500);
    ns.run(|| {
        let upstream = peers::download_server(1 << 20);
        let (proc, proxy, _) = spliced(&[upstream], &["--pipe-idle-timeout", "1s"]);
        let before = pipe_fds(proc.pid());
        let peak = slow_burst(&ns, proxy, proc.pid(), 100, |p| pipe_fds(p) as u64);
        assert!(peak >= before as u64 + 20, "pipes at peak: {peak}");
        let end = Instant::now();
        assert!(
            wait_until_within(Duration::from_secs(3), || pipe_fds(proc.pid()) <= before),
            "pipe fds {} {:?} after the burst ({before} before, {peak} at peak)",
            pipe_fds(proc.pid()),
            end.elapsed()
        );
    });
}

#[test]
fn memory_returned_after_burst_of_slow_userspace_clients() {
    let ns = Netns::new("mem", 1500);
    ns.run(|| {
        let upstream = peers::download_server(1 << 20);
        let (proc, proxy, _) = spliced(&[upstream], &["--copy", "userspace"]);
        // One connection first, so that what every connection needs once
        // (runtime, thread caches) is in the level before.
        let (_, d) = read_download(client(proxy), 64 * 1024, Duration::ZERO);
        assert_eq!(d.bytes, 1 << 20);
        thread::sleep(Duration::from_millis(500));
        let before = rss_kib(proc.pid());
        let peak = slow_burst(&ns, proxy, proc.pid(), 300, rss_kib);
        thread::sleep(Duration::from_secs(5));
        let after = rss_kib(proc.pid());
        eprintln!("RSS KiB: before {before}, peak {peak}, 5 s after {after}");
        assert!(
            peak > before + 8 * 1024,
            "the burst did not use memory: {before} -> {peak} KiB"
        );
        assert!(
            after <= before + 8 * 1024,
            "RSS 5 s after the burst: {after} KiB, {before} KiB before ({peak} at peak)"
        );
    });
}

/// The value of `key=value` in a log line (quotes removed).
fn field<'l>(line: &'l str, key: &str) -> &'l str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        .trim_matches('"')
}
