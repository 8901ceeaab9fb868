//! Hot reload of the per-listener features through the real binary
//! (SIGHUP re-reads `--config`): a new `deny` refuses a client allowed
//! before while its open connection goes on; a changed SNI route sends new
//! TLS connections to its new upstream while an open one stays; a
//! `send_proxy` switched on applies to new connections only;
//! `max_conns_per_source` keeps counting the connections opened before a
//! reload and takes each reload's bound; SNI route groups' upstreams are
//! in `spliced_upstream_healthy` (labelled by group, no duplicate series)
//! and keep their health across a reload that keeps their pattern.

use crate::util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crate::util::{
    connect, connect_from, dead_addr, echo_until_eof, eventually, http_get, metrics_at, read_line,
    ConfigFile, Proc, WAIT,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, StreamOwned};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

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

/// Whether a round trip works on `s` (else spliced closed it).
fn served(s: &mut TcpStream) -> bool {
    if s.write_all(b"ping").is_err() {
        return false;
    }
    let mut b = [0u8; 4];
    s.read_exact(&mut b).is_ok() && &b == b"ping"
}

/// A connection from `from` with one round trip done, or `None` when
/// spliced closed it.
fn open_from(from: &str, proxy: SocketAddr) -> Option<TcpStream> {
    let mut s = connect_from(ip(from), proxy);
    served(&mut s).then_some(s)
}

fn one_listener(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "metrics = \"127.0.0.1:0\"\n[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\
         upstreams = [\"{upstream}\"]\n{extra}"
    )
}

#[test]
fn a_new_deny_refuses_new_connections_only() {
    let (upstream, accepted) = counting_echo();
    let config = ConfigFile::new(&one_listener(upstream, ""));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let mut open = open_from("127.0.0.2", proxy).expect("allowed before the reload");

    proc.reload(&config, &one_listener(upstream, "deny = [\"127.0.0.2\"]\n"));
    assert!(
        open_from("127.0.0.2", proxy).is_none(),
        "the new deny refuses a new connection"
    );
    assert!(
        open_from("127.0.0.3", proxy).is_some(),
        "another address is still allowed"
    );
    assert!(served(&mut open), "the open connection goes on");
    assert!(served(&mut open), "and on");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the refused client dialled no upstream"
    );

    // And back: the deny removed, the address is served again.
    proc.reload(&config, &one_listener(upstream, ""));
    assert!(open_from("127.0.0.2", proxy).is_some());
}

#[test]
fn max_conns_per_source_counts_across_reloads() {
    let (upstream, _) = counting_echo();
    let limit = |n: usize| one_listener(upstream, &format!("max_conns_per_source = {n}\n"));
    let config = ConfigFile::new(&limit(2));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);
    let mut a = open_from("127.0.0.2", proxy).expect("first");
    let mut b = open_from("127.0.0.2", proxy).expect("second");
    assert!(
        open_from("127.0.0.2", proxy).is_none(),
        "a third is refused"
    );

    // The same bound again: the two open before still count.
    proc.reload(&config, &limit(2));
    assert!(
        open_from("127.0.0.2", proxy).is_none(),
        "connections opened before the reload are still counted"
    );
    let other = open_from("127.0.0.4", proxy).expect("another address has its own count");

    // A higher bound: one more, then refused.
    proc.reload(&config, &limit(3));
    let mut c = open_from("127.0.0.2", proxy).expect("a third under the new bound");
    assert!(
        open_from("127.0.0.2", proxy).is_none(),
        "a fourth is refused"
    );

    // No bound: counted all the same, so a lower bound set later sees
    // the connections opened meanwhile.
    proc.reload(&config, &one_listener(upstream, ""));
    let d = open_from("127.0.0.2", proxy).expect("no bound");
    proc.reload(&config, &limit(4));
    assert!(
        open_from("127.0.0.2", proxy).is_none(),
        "the one opened with no bound counts"
    );
    drop(d);
    let e = eventually("a slot back when a connection ends", || {
        open_from("127.0.0.2", proxy)
    });

    // A lower bound refuses new clients and never touches open ones.
    proc.reload(&config, &limit(1));
    assert!(open_from("127.0.0.2", proxy).is_none());
    for s in [&mut a, &mut b, &mut c] {
        assert!(served(s), "an open connection goes on");
    }
    let (_, body) = http_get(metrics, "/metrics");
    let refused = sample(
        &body,
        "spliced_refused_total{listener=\"l\",reason=\"max_conns_per_source\"}",
    );
    assert!(refused >= Some(5.0), "{body}");
    drop((a, b, c, e, other));
}

/// The value of the sample line `prefix VALUE` in `body`.
fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// An upstream that greets each connection with `hi`, then answers its
/// first line with `first LINE` and the next ones with `next LINE`.
fn first_line_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                s.set_read_timeout(Some(WAIT)).unwrap();
                if s.write_all(b"hi\n").is_err() {
                    return;
                }
                let mut lines = BufReader::new(s.try_clone().unwrap()).lines();
                let mut word = "first";
                while let Some(Ok(line)) = lines.next() {
                    if writeln!(s, "{word} {}", line.trim_end()).is_err() {
                        return;
                    }
                    word = "next";
                }
            });
        }
    });
    addr
}

#[test]
fn send_proxy_switched_on_applies_to_new_connections_only() {
    let upstream = first_line_server();
    let config = ConfigFile::new(&one_listener(upstream, ""));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let mut old = connect(proxy);
    assert_eq!(read_line(&mut old).unwrap(), "hi", "upstream connected");

    proc.reload(&config, &one_listener(upstream, "send_proxy = \"v1\"\n"));
    // Its first bytes are sent after the reload: still no header.
    old.write_all(b"hello\n").unwrap();
    assert_eq!(read_line(&mut old).unwrap(), "first hello");
    let mut new = connect(proxy);
    assert_eq!(read_line(&mut new).unwrap(), "hi");
    new.write_all(b"hello\n").unwrap();
    let port = new.local_addr().unwrap().port();
    assert_eq!(
        read_line(&mut new).unwrap(),
        format!(
            "first PROXY TCP4 127.0.0.1 127.0.0.1 {port} {}",
            proxy.port()
        ),
        "a new connection starts with the header"
    );
    assert_eq!(read_line(&mut new).unwrap(), "next hello");
    old.write_all(b"again\n").unwrap();
    assert_eq!(read_line(&mut old).unwrap(), "next again");

    // Switched off again: new connections have no header.
    proc.reload(&config, &one_listener(upstream, ""));
    let mut off = connect(proxy);
    assert_eq!(read_line(&mut off).unwrap(), "hi");
    off.write_all(b"plain\n").unwrap();
    assert_eq!(read_line(&mut off).unwrap(), "first plain");
    new.write_all(b"still\n").unwrap();
    assert_eq!(read_line(&mut new).unwrap(), "next still");
}

/// An upstream that answers each line with `tag name line` until EOF:
/// over TLS (`name` being the SNI it saw) when the first byte is a TLS
/// handshake, else in plain text (`name` = `plain`).
fn upstream(tag: &'static str, config: &Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::clone(config);
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let config = Arc::clone(&config);
            thread::spawn(move || {
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut first = [0u8; 1];
                if s.peek(&mut first).unwrap_or(0) == 0 {
                    return;
                }
                if first[0] == 0x16 {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = BufReader::new(StreamOwned::new(conn, s));
                    let mut line = String::new();
                    while matches!(tls.read_line(&mut line), Ok(n) if n > 0) {
                        let t = tls.get_mut();
                        let sni = t.conn.server_name().unwrap_or("none").to_owned();
                        if write!(t, "{tag} {sni} {line}")
                            .and_then(|()| t.flush())
                            .is_err()
                        {
                            return;
                        }
                        line.clear();
                    }
                } else {
                    let mut s = s;
                    while let Ok(line) = read_line(&mut s) {
                        if writeln!(s, "{tag} plain {line}").is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A TLS connection to `a.example` through the proxy, kept open.
struct TlsClient(BufReader<StreamOwned<ClientConnection, TcpStream>>);

impl TlsClient {
    fn new(proxy: SocketAddr, config: &Arc<ClientConfig>) -> TlsClient {
        let name = ServerName::try_from("a.example").unwrap();
        let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
        TlsClient(BufReader::new(StreamOwned::new(conn, connect(proxy))))
    }

    /// Sends `line`, returns the answer.
    fn ask(&mut self, line: &str) -> String {
        let t = self.0.get_mut();
        writeln!(t, "{line}").unwrap();
        t.flush().unwrap();
        let mut answer = String::new();
        self.0.read_line(&mut answer).unwrap();
        answer.trim_end().to_owned()
    }
}

#[test]
fn a_changed_sni_route_applies_to_new_connections_only() {
    let tls = util::tls::tls(&["a.example"]);
    let a = upstream("A", &tls.server);
    let b = upstream("B", &tls.server);
    let d = upstream("D", &tls.server);
    let route = |to: SocketAddr| {
        one_listener(
            d,
            &format!("[[listener.route]]\nsni = \"a.example\"\nupstreams = [\"{to}\"]\n"),
        )
    };
    let config = ConfigFile::new(&route(a));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let mut old = TlsClient::new(proxy, &tls.client);
    assert_eq!(old.ask("one"), "A a.example one");

    proc.reload(&config, &route(b));
    let mut new = TlsClient::new(proxy, &tls.client);
    assert_eq!(new.ask("one"), "B a.example one", "the new route");
    assert_eq!(old.ask("two"), "A a.example two", "the open one stays");
    let mut plain = connect(proxy);
    plain.write_all(b"text\n").unwrap();
    assert_eq!(read_line(&mut plain).unwrap(), "D plain text");
    assert_eq!(new.ask("two"), "B a.example two");
    assert_eq!(old.ask("three"), "A a.example three");
}

/// Sends a ClientHello for `name` and waits until spliced closes the
/// connection (its route's only upstream is dead).
fn hello_to_nowhere(proxy: SocketAddr, config: &Arc<ClientConfig>, name: &str) {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    let mut s = connect(proxy);
    s.write_all(&hello).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "closed with no answer");
}

#[test]
fn route_groups_are_in_the_health_metric_and_keep_it_across_reloads() {
    let tls = util::tls::tls(&["a.example"]);
    let up = upstream("UP", &tls.server);
    let dead = dead_addr();
    // `up` is in two groups, and twice in one.
    let text = |extra: &str| {
        one_listener(
            up,
            &format!(
                "[[listener.route]]\nsni = \"a.example\"\nupstreams = [\"{dead}\"]\n\
                 [[listener.route]]\nsni = \"*.b.example\"\nupstreams = [\"{up}\", \"{up}\"]\n{extra}"
            ),
        )
    };
    let config = ConfigFile::new(&text(""));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);
    let series = |group: &str, upstream: SocketAddr| {
        format!(
            "spliced_upstream_healthy{{listener=\"l\",group=\"{group}\",upstream=\"{upstream}\"}}"
        )
    };
    let check = |body: &str, group: &str, upstream: SocketAddr, healthy: f64| {
        let s = series(group, upstream);
        assert_eq!(
            body.lines().filter(|l| l.starts_with(&s)).count(),
            1,
            "one series {s}:\n{body}"
        );
        assert_eq!(sample(body, &s), Some(healthy), "{s}:\n{body}");
    };
    let (_, body) = http_get(metrics, "/metrics");
    check(&body, "default", up, 1.0);
    check(&body, "a.example", dead, 1.0);
    check(&body, "*.b.example", up, 1.0);
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with("spliced_upstream_healthy{"))
            .count(),
        3,
        "{body}"
    );

    // Failed connects in the route's group: it backs off for 1, 2, 4,
    // then 8 s (long enough to outlast the reload below).
    for _ in 0..4 {
        hello_to_nowhere(proxy, &tls.client, "a.example");
    }
    let (_, body) = http_get(metrics, "/metrics");
    check(&body, "a.example", dead, 0.0);
    check(&body, "default", up, 1.0);

    // A reload that keeps the pattern (and adds a route) keeps its state;
    // the new route starts healthy.
    let more = format!("[[listener.route]]\nsni = \"c.example\"\nupstreams = [\"{dead}\"]\n");
    proc.reload(&config, &text(&more));
    let (_, body) = http_get(metrics, "/metrics");
    check(&body, "a.example", dead, 0.0);
    check(&body, "c.example", dead, 1.0);
    check(&body, "*.b.example", up, 1.0);
}
