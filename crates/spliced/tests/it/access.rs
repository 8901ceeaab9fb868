//! Access control through the real binary: `allow`/`deny` with IPv4 and
//! IPv6 loopback clients (127.0.0.2 and friends are bound as source
//! addresses), deny winning, the PROXY header's address checked with
//! `accept_proxy`, PROXY headers believed only from `accept_proxy_from`
//! peers, and `max_conns_per_source`. A refused client is closed before
//! any upstream is dialled and counted by reason.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crate::util::{
    connect, connect_from, echo_until_eof, eventually, metrics_at, sample_value, ConfigFile, Proc,
};

/// An echo upstream that counts the connections it accepts.
fn counting_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || echo_until_eof(&mut s));
        }
    });
    (addr, count)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Whether a round trip works on `s` (else spliced closed it).
fn served(mut s: TcpStream) -> bool {
    if s.write_all(b"ping").is_err() {
        return false;
    }
    let mut b = [0u8; 4];
    s.read_exact(&mut b).is_ok() && &b == b"ping"
}

#[test]
fn allow_and_deny_with_ipv4_and_ipv6() {
    let (upstream, accepted) = counting_echo();
    let config = ConfigFile::new(&format!(
        "[[listener]]\nname = \"v4\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\n\
         allow = [\"127.0.0.0/29\"]\ndeny = [\"127.0.0.3\", \"127.0.0.4/31\"]\n\
         [[listener]]\nname = \"v6-denied\"\nlisten = \"[::1]:0\"\nupstreams = [\"{upstream}\"]\n\
         deny = [\"::1/128\"]\n\
         [[listener]]\nname = \"v6-allowed\"\nlisten = \"[::1]:0\"\nupstreams = [\"{upstream}\"]\n\
         allow = [\"::1\"]\ndeny = [\"127.0.0.0/8\"]\n\
         [[listener]]\nname = \"v6-not-listed\"\nlisten = \"[::1]:0\"\nupstreams = [\"{upstream}\"]\n\
         allow = [\"2001:db8::/32\"]\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg(), "--metrics", "127.0.0.1:0"]);
    let addrs = proc.listen_addrs(4);
    let metrics = metrics_at(&mut proc);
    let (v4, v6_denied, v6_allowed, v6_not_listed) = (addrs[0], addrs[1], addrs[2], addrs[3]);

    assert!(served(connect_from(ip("127.0.0.2"), v4)), "allowed");
    assert!(served(connect_from(ip("127.0.0.1"), v4)), "allowed");
    assert!(
        !served(connect_from(ip("127.0.0.3"), v4)),
        "denied by address"
    );
    assert!(
        !served(connect_from(ip("127.0.0.5"), v4)),
        "denied by network"
    );
    assert!(
        !served(connect_from(ip("127.0.0.9"), v4)),
        "not in the allow list"
    );
    assert!(!served(connect_from(ip("::1"), v6_denied)), "::1 denied");
    assert!(served(connect_from(ip("::1"), v6_allowed)), "::1 allowed");
    assert!(
        !served(connect_from(ip("::1"), v6_not_listed)),
        "::1 not listed"
    );

    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "refused clients dial no upstream"
    );
    let denied = |l: &str| {
        sample_value(
            metrics,
            &format!("spliced_refused_total{{listener=\"{l}\",reason=\"denied\"}}"),
        )
    };
    eventually("the refusals counted", || {
        (denied("v4") == 3.0 && denied("v6-denied") == 1.0 && denied("v6-not-listed") == 1.0)
            .then_some(())
    });
    assert_eq!(denied("v6-allowed"), 0.0);
    let log = proc.stderr();
    assert!(log.contains("address not allowed"), "{log}");
}

#[test]
fn with_accept_proxy_the_header_address_is_checked() {
    let (upstream, accepted) = counting_echo();
    let up = upstream.to_string();
    // Each refusal is logged at debug level (warnings: once a second).
    let mut proc = Proc::spawn_env(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up,
            "--accept-proxy",
            "--accept-proxy-from",
            "127.0.0.1",
            "--allow",
            "127.0.0.0/8",
            "--allow",
            "198.51.100.0/24",
            "--deny",
            "198.51.100.66",
        ],
        &[("RUST_LOG", "debug")],
    );
    let proxy = proc.listen_addr();
    // The balancer (127.0.0.1) is allowed, but spliced checks the client.
    let mut denied = connect(proxy);
    denied
        .write_all(b"PROXY TCP4 198.51.100.66 127.0.0.1 1000 80\r\n")
        .unwrap();
    assert!(!served(denied));
    let mut outside = connect(proxy);
    outside
        .write_all(b"PROXY TCP4 203.0.113.1 127.0.0.1 1000 80\r\n")
        .unwrap();
    assert!(!served(outside));
    let mut ok = connect(proxy);
    ok.write_all(b"PROXY TCP4 198.51.100.1 127.0.0.1 1000 80\r\n")
        .unwrap();
    assert!(served(ok));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let log = eventually("two refusals logged", || {
        let e = proc.stderr();
        (e.contains("198.51.100.66") && e.contains("203.0.113.1")).then_some(e)
    });
    assert!(log.contains("refused"), "{log}");
}

/// The forged-header attack: with `accept_proxy`, a peer outside
/// `accept_proxy_from` claims an allowed client address. It is closed
/// before spliced reads a byte, whatever its header says; the trusted
/// balancer's headers still count (allow/deny on the header's address).
#[test]
fn a_proxy_header_counts_only_from_a_trusted_peer() {
    let (upstream, accepted) = counting_echo();
    let up = upstream.to_string();
    let mut proc = Proc::spawn_env(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up,
            "--accept-proxy",
            "--accept-proxy-from",
            "127.0.0.2",
            "--accept-proxy-from",
            "127.0.0.8/30",
            "--allow",
            "10.0.0.0/8",
            "--deny",
            "127.0.0.0/8",
            "--metrics",
            "127.0.0.1:0",
        ],
        &[("RUST_LOG", "debug")],
    );
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);
    let forged = b"PROXY TCP4 10.1.1.1 10.0.0.1 1234 80\r\n";
    for from in ["127.0.0.1", "127.0.0.3", "127.0.0.12"] {
        let mut s = connect_from(ip(from), proxy);
        // The write may fail already: the connection is closed at accept.
        let _ = s.write_all(forged);
        assert!(
            !served(s),
            "a header from {from} (untrusted) is not believed"
        );
    }
    for from in ["127.0.0.2", "127.0.0.9", "127.0.0.11"] {
        let mut s = connect_from(ip(from), proxy);
        s.write_all(forged).unwrap();
        assert!(served(s), "a header from {from} (trusted) is believed");
    }
    // Trusted, but the header's client is denied: the header's address
    // is the one judged.
    let mut s = connect_from(ip("127.0.0.2"), proxy);
    s.write_all(b"PROXY TCP4 127.0.0.5 10.0.0.1 1234 80\r\n")
        .unwrap();
    assert!(!served(s));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "only trusted, allowed clients dial"
    );
    let sample = |reason: &str| {
        sample_value(
            metrics,
            &format!("spliced_refused_total{{listener=\"127.0.0.1:0\",reason=\"{reason}\"}}"),
        )
    };
    eventually("the refusals counted by reason", || {
        (sample("untrusted_proxy") == 3.0 && sample("denied") == 1.0).then_some(())
    });
    assert_eq!(sample("proxy_header"), 0.0, "no header was read from them");
    let log = proc.stderr();
    assert!(log.contains("peer not in accept_proxy_from"), "{log}");
}

/// Untrusted peers that open connections and send nothing are closed at
/// once: they hold no `max_conns` slot until `proxy_timeout`, so the
/// balancer's clients still get in.
#[test]
fn an_untrusted_header_less_flood_holds_no_slot() {
    let (upstream, _) = counting_echo();
    let up = upstream.to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.2",
        "--max-conns",
        "20",
        "--proxy-timeout",
        "60s",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);
    let flood: Vec<TcpStream> = (0..150)
        .map(|_| connect_from(ip("127.0.0.1"), proxy))
        .collect();
    // Each one is closed by spliced (EOF or reset), long before the 60 s
    // proxy_timeout: read_to_end returns.
    for mut s in flood {
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty()),
            Err(e) => assert_ne!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "an untrusted connection was held open"
            ),
        }
    }
    let sample = "spliced_refused_total{listener=\"127.0.0.1:0\",reason=\"untrusted_proxy\"}";
    eventually("150 refusals counted", || {
        (sample_value(metrics, sample) == 150.0).then_some(())
    });
    // All 20 slots are free for the trusted balancer.
    let held: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut s = connect_from(ip("127.0.0.2"), proxy);
            s.write_all(format!("PROXY TCP4 10.0.0.{i} 10.0.0.1 1234 80\r\n").as_bytes())
                .unwrap();
            s.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).expect("a trusted client is served");
            s
        })
        .collect();
    drop(held);
}

#[test]
fn max_conns_per_source() {
    let (upstream, _) = counting_echo();
    let up = upstream.to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--max-conns-per-source",
        "2",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);
    let open_from = |from: &str| {
        let mut s = connect_from(ip(from), proxy);
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).map(|_| s)
    };
    let a = open_from("127.0.0.2").expect("first");
    let b = open_from("127.0.0.2").expect("second");
    assert!(
        open_from("127.0.0.2").is_err(),
        "a third from 127.0.0.2 is refused"
    );
    let other = open_from("127.0.0.4").expect("another address has its own count");
    drop(a);
    // The slot comes back when the connection ends.
    let again = eventually("a slot for 127.0.0.2 again", || open_from("127.0.0.2").ok());
    let sample = "spliced_refused_total{listener=\"127.0.0.1:0\",reason=\"max_conns_per_source\"}";
    assert!(sample_value(metrics, sample) >= 1.0);
    drop((b, other, again));
    let log = proc.stderr();
    assert!(log.contains("max_conns_per_source (2)"), "{log}");
}
