//! The PROXY protocol through the real binary: `--send-proxy v1|v2` writes
//! the client's address to the upstream before its bytes (checked by hand
//! for v1 and decoded with `ppp` for v2), `--accept-proxy` takes the
//! client's address from the header a balancer sends (logs, and the
//! header sent on), and a missing, malformed or slow header closes only
//! that connection and is counted. With HAProxy in front of and behind
//! spliced (`ci/install.sh` installs `haproxy`).

use crate::util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    connect, eventually, metrics_at, proxy_header_server, sample_value, ConfigFile, Proc, WAIT,
};

/// Sends `data` through `proxy`, expects it echoed, and returns the
/// header the upstream got.
fn echo_through(
    proxy: SocketAddr,
    client: &mut TcpStream,
    data: &[u8],
    headers: &Receiver<Vec<u8>>,
) -> Vec<u8> {
    send_expect(proxy, client, data, data, headers)
}

/// Sends `send` (ending with a PROXY header for spliced, then data),
/// expects `echo` (the data) back, and returns the header the upstream
/// got.
fn send_expect(
    proxy: SocketAddr,
    client: &mut TcpStream,
    send: &[u8],
    echo: &[u8],
    headers: &Receiver<Vec<u8>>,
) -> Vec<u8> {
    client.write_all(send).unwrap();
    let mut back = vec![0u8; echo.len()];
    client.read_exact(&mut back).unwrap();
    assert_eq!(
        back, echo,
        "bytes after the header arrive unchanged (via {proxy})"
    );
    headers
        .recv_timeout(WAIT)
        .expect("the upstream got a header")
}

/// A v2 header decoded by `ppp`: (command is PROXY, source, destination).
fn decode_v2(h: &[u8]) -> (bool, SocketAddr, SocketAddr) {
    let parsed = ppp::v2::Header::try_from(h).expect("a valid v2 header");
    assert_eq!(parsed.header.len(), h.len(), "exactly one header was read");
    let proxy = parsed.command == ppp::v2::Command::Proxy;
    match parsed.addresses {
        ppp::v2::Addresses::IPv4(a) => (
            proxy,
            (a.source_address, a.source_port).into(),
            (a.destination_address, a.destination_port).into(),
        ),
        ppp::v2::Addresses::IPv6(a) => (
            proxy,
            (a.source_address, a.source_port).into(),
            (a.destination_address, a.destination_port).into(),
        ),
        other => panic!("unexpected addresses {other:?}"),
    }
}

#[test]
fn send_proxy_v1_is_the_spec_line_before_the_first_byte() {
    let (upstream, headers) = proxy_header_server();
    let up = upstream.to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--send-proxy",
        "v1",
    ]);
    let proxy = proc.listen_addr();
    let mut c = connect(proxy);
    let h = echo_through(proxy, &mut c, b"hello through v1", &headers);
    let me = c.local_addr().unwrap();
    let line = String::from_utf8(h).unwrap();
    assert_eq!(
        line,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            me.port(),
            proxy.port()
        )
    );
    // ppp agrees.
    let parsed = ppp::v1::Header::try_from(line.as_str()).unwrap();
    assert_eq!(
        parsed.addresses,
        ppp::v1::Addresses::new_tcp4([127, 0, 0, 1], [127, 0, 0, 1], me.port(), proxy.port())
    );

    // On 0.0.0.0 the destination is the address the client reached.
    let mut any = Proc::spawn(&[
        "run",
        "--listen",
        "0.0.0.0:0",
        "--upstream",
        &up,
        "--send-proxy",
        "v1",
    ]);
    let port = any.listen_addr().port();
    let mut c = connect(([127, 0, 0, 1], port).into());
    let h = echo_through(proxy, &mut c, b"via 0.0.0.0", &headers);
    let me = c.local_addr().unwrap();
    assert_eq!(
        String::from_utf8(h).unwrap(),
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n", me.port())
    );
}

#[test]
fn send_proxy_v2_over_ipv4_and_ipv6() {
    let (upstream, headers) = proxy_header_server();
    let config = ConfigFile::new(&format!(
        "[[listener]]\nname = \"v4\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\nsend_proxy = \"v2\"\n\
         [[listener]]\nname = \"v6\"\nlisten = \"[::1]:0\"\nupstreams = [\"{upstream}\"]\nsend_proxy = \"v2\"\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addrs = proc.listen_addrs(2);
    for proxy in addrs {
        let mut c = connect(proxy);
        // Enough bytes to be spliced in several pieces.
        let data = util::random_bytes(7, 300_000);
        let w = {
            let mut c = c.try_clone().unwrap();
            let data = data.clone();
            thread::spawn(move || c.write_all(&data).unwrap())
        };
        let mut back = vec![0u8; data.len()];
        c.read_exact(&mut back).unwrap();
        w.join().unwrap();
        assert!(back == data, "bytes after the header arrive unchanged");
        let h = headers.recv_timeout(WAIT).unwrap();
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(h[12], 0x21, "version 2, command PROXY");
        let family = if proxy.is_ipv4() { 0x11 } else { 0x21 };
        assert_eq!(h[13], family, "TCP over IPv4/IPv6");
        let (is_proxy, src, dst) = decode_v2(&h);
        assert!(is_proxy);
        assert_eq!(src, c.local_addr().unwrap());
        assert_eq!(dst, proxy);
    }
}

#[test]
fn accept_proxy_takes_the_client_address_from_the_header() {
    let (upstream, headers) = proxy_header_server();
    let up = upstream.to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.1",
        "--send-proxy",
        "v2",
    ]);
    let proxy = proc.listen_addr();

    // v1, cut in two segments, the client's first bytes right behind it.
    let mut c = connect(proxy);
    c.set_nodelay(true).unwrap();
    c.write_all(b"PROXY TCP4 203.0.113.7 198.51").unwrap();
    thread::sleep(Duration::from_millis(100));
    let h = send_expect(
        proxy,
        &mut c,
        b".100.1 4242 443\r\nfirst bytes",
        b"first bytes",
        &headers,
    );
    // That sent the rest of the header and the data at once: the data was
    // echoed whole (checked above) and not taken for header.
    let (is_proxy, src, dst) = decode_v2(&h);
    assert!(is_proxy);
    assert_eq!(src, "203.0.113.7:4242".parse().unwrap());
    assert_eq!(dst, "198.51.100.1:443".parse().unwrap());
    drop(c);

    // v2 from a balancer, IPv6, with a TLV, then data in the same write.
    let mut c = connect(proxy);
    let mut v2 = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (
            "[2001:db8::5]:5000".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:443".parse::<SocketAddr>().unwrap(),
        ),
    )
    .write_tlv(ppp::v2::Type::Authority, b"example.org")
    .unwrap()
    .build()
    .unwrap();
    v2.extend_from_slice(b"after v2");
    let n = v2.len();
    c.write_all(&v2[..n - 8]).unwrap();
    let h = send_expect(proxy, &mut c, &v2[n - 8..], b"after v2", &headers);
    let (_, src, dst) = decode_v2(&h);
    assert_eq!(src, "[2001:db8::5]:5000".parse().unwrap());
    assert_eq!(dst, "[2001:db8::1]:443".parse().unwrap());
    drop(c);

    // LOCAL (a balancer's health check): the connection's own addresses.
    let mut c = connect(proxy);
    let h = send_expect(
        proxy,
        &mut c,
        b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00local",
        b"local",
        &headers,
    );
    let (_, src, _) = decode_v2(&h);
    assert_eq!(src, c.local_addr().unwrap());

    drop(c);
    let log = eventually("close log lines", || {
        let e = proc.stderr();
        (e.matches("connection closed").count() >= 3).then_some(e)
    });
    assert!(
        log.contains("client=203.0.113.7:4242") && log.contains("client=[2001:db8::5]:5000"),
        "the close log names the header's client:\n{log}"
    );
    assert!(log.contains("via=127.0.0.1:"), "{log}");
}

#[test]
fn a_bad_header_closes_only_its_connection_and_is_counted() {
    let (upstream, headers) = proxy_header_server();
    let up = upstream.to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.1",
        "--proxy-timeout",
        "300ms",
        "--send-proxy",
        "v1",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);

    // A good connection, open throughout.
    let mut good = connect(proxy);
    let h = send_expect(
        proxy,
        &mut good,
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx",
        b"x",
        &headers,
    );
    assert_eq!(h, b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n");

    let closed_at_once = |mut s: TcpStream, what: &str| {
        let t = Instant::now();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("{what}: got {n} bytes instead of a close"),
        }
        t.elapsed()
    };
    // No header: plain HTTP.
    let mut c = connect(proxy);
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    closed_at_once(c, "no header");
    // Malformed v1.
    let mut c = connect(proxy);
    c.write_all(b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n")
        .unwrap();
    closed_at_once(c, "malformed");
    // Too long a v1 line.
    let mut c = connect(proxy);
    c.write_all(&[b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat())
        .unwrap();
    closed_at_once(c, "oversized");
    // Slow: half a header, then nothing.
    let mut c = connect(proxy);
    c.write_all(b"PROXY TCP4 1.2.3.4").unwrap();
    let waited = closed_at_once(c, "slow");
    assert!(
        waited >= Duration::from_millis(200),
        "closed after {waited:?}"
    );
    // Silent: nothing at all.
    let waited = closed_at_once(connect(proxy), "silent");
    assert!(
        waited >= Duration::from_millis(200),
        "closed after {waited:?}"
    );

    let refused = "spliced_refused_total{listener=\"127.0.0.1:0\",reason=\"proxy_header\"}";
    eventually("5 refusals counted", || {
        (sample_value(metrics, refused) == 5.0).then_some(())
    });
    assert!(
        headers.try_recv().is_err(),
        "no refused client reached the upstream"
    );
    // The good one still works.
    good.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    good.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
    let log = proc.stderr();
    assert!(log.contains("bad PROXY header"), "{log}");
    assert!(
        log.contains("reason=\"proxy_header\"") || log.contains("reason=proxy_header"),
        "{log}"
    );
}

/// A free loopback port (bound once, then closed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills HAProxy when dropped.
struct HaProxy(std::process::Child);

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// client -> HAProxy (send-proxy-v2) -> spliced (accept_proxy,
/// send_proxy v1) -> HAProxy (accept-proxy, send-proxy-v2) -> upstream:
/// the upstream sees the first client's address, so each side parsed the
/// other's header.
#[test]
fn haproxy_in_front_and_behind() {
    assert!(
        Command::new("haproxy").arg("-v").output().is_ok(),
        "haproxy is not installed: run ci/install.sh (or apt-get install haproxy)"
    );
    let (upstream, headers) = proxy_header_server();
    let (front, back) = (free_port(), free_port());
    let spliced_back = format!("127.0.0.1:{back}");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &spliced_back,
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.1",
        "--send-proxy",
        "v1",
    ]);
    let spliced = proc.listen_addr();
    let cfg = ConfigFile::new(&format!(
        "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend front\n  bind 127.0.0.1:{front}\n  default_backend to_spliced\n\
         backend to_spliced\n  server s {spliced} send-proxy-v2\n\
         frontend back\n  bind 127.0.0.1:{back} accept-proxy\n  default_backend to_upstream\n\
         backend to_upstream\n  server u {upstream} send-proxy-v2\n"
    ));
    let child = Command::new("haproxy")
        .args(["-db", "-f", cfg.arg()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    let _haproxy = HaProxy(child);
    let front: SocketAddr = ([127, 0, 0, 1], front).into();
    let mut c = eventually("haproxy to listen", || TcpStream::connect(front).ok());
    c.set_read_timeout(Some(WAIT)).unwrap();
    let h = echo_through(front, &mut c, b"through two haproxies", &headers);
    let (is_proxy, src, _) = decode_v2(&h);
    assert!(is_proxy);
    assert_eq!(
        src,
        c.local_addr().unwrap(),
        "the first client's address, end to end"
    );
    let log = eventually("a close line", || {
        drop(c.try_clone().map(|s| s.shutdown(std::net::Shutdown::Both)));
        let e = proc.stderr();
        e.contains("connection closed").then_some(e)
    });
    assert!(
        log.contains(&format!("client={}", c.local_addr().unwrap())),
        "{log}"
    );
}

/// The load generator through `--send-proxy v2` and `--route` (what the
/// CPU-per-connection comparison runs): `spliced bench --serve
/// --accept-proxy` strips the header, so every echo verifies.
#[test]
fn bench_through_send_proxy_and_routes() {
    let mut server = Proc::spawn(&[
        "bench",
        "--serve",
        "127.0.0.1:0",
        "--echo",
        "--accept-proxy",
    ]);
    let upstream = server.listen_addr().to_string();
    let route = format!("a.example={upstream}");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--send-proxy",
        "v2",
        "--route",
        &route,
    ]);
    let target = proc.listen_addr().to_string();
    let out = util::run(
        &[
            "bench",
            "--target",
            &target,
            "--mode",
            "connect",
            "--conns",
            "4",
            "--duration",
            "0.5",
            "--json",
        ],
        WAIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["failures"]["errors"], 0, "{v}");
    assert!(v["connections"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        !server.stderr().contains("bench server:"),
        "{}",
        server.stderr()
    );
}
