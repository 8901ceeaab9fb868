//! SNI routing through the real binary with a real TLS client (rustls)
//! and TLS upstreams holding a self-signed certificate (rcgen): each
//! server name reaches its upstream and the handshake completes end to
//! end through spliced (the certificate is verified by the client), a
//! ClientHello cut in pieces is routed the same, the longest match wins,
//! and a plain-text client or an unknown name takes the default route.

use crate::util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::util::{connect, eventually, read_line, ConfigFile, Proc, WAIT};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, StreamOwned};

/// Every name the test certificate is valid for.
const NAMES: [&str; 5] = [
    "a.example",
    "x.wild.example",
    "deep.x.wild.example",
    "api.wild.example",
    "other.example",
];

/// An upstream that answers each line with `tag name line`: over TLS
/// (`name` being the SNI it saw) when the first byte is a TLS handshake,
/// else in plain text (`name` = `plain`).
fn upstream(tag: &'static str, config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
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
                    let mut tls = StreamOwned::new(conn, s);
                    let mut line = String::new();
                    if BufReader::new(&mut tls).read_line(&mut line).is_err() {
                        return;
                    }
                    let sni = tls.conn.server_name().unwrap_or("none").to_owned();
                    let _ = write!(tls, "{tag} {sni} {line}");
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                } else {
                    let mut s = s;
                    let Ok(line) = read_line(&mut s) else { return };
                    let _ = writeln!(s, "{tag} plain {line}");
                }
            });
        }
    });
    addr
}

/// A TLS client to `name` through `proxy`: sends a line, returns the
/// answer. `split` cuts the ClientHello into pieces sent 50 ms apart.
fn tls_ask(proxy: SocketAddr, config: &Arc<ClientConfig>, name: &str, split: bool) -> String {
    let mut conn = ClientConnection::new(
        Arc::clone(config),
        ServerName::try_from(name.to_owned()).unwrap(),
    )
    .unwrap();
    let mut sock = connect(proxy);
    sock.set_nodelay(true).unwrap();
    if split {
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).unwrap();
        }
        for piece in [&hello[..3], &hello[3..40], &hello[40..]] {
            sock.write_all(piece).unwrap();
            thread::sleep(Duration::from_millis(50));
        }
    }
    let mut tls = StreamOwned::new(conn, sock);
    writeln!(tls, "hello {name}").unwrap();
    tls.flush().unwrap();
    let mut answer = String::new();
    BufReader::new(&mut tls).read_line(&mut answer).unwrap();
    assert!(!tls.conn.is_handshaking(), "the handshake completed");
    answer.trim_end().to_owned()
}

#[test]
fn each_name_reaches_its_upstream_end_to_end() {
    let tls = util::tls::tls(&NAMES);
    let a = upstream("A", Arc::clone(&tls.server));
    let wild = upstream("W", Arc::clone(&tls.server));
    let api = upstream("API", Arc::clone(&tls.server));
    let default = upstream("D", Arc::clone(&tls.server));
    let config = ConfigFile::new(&format!(
        "[[listener]]\nname = \"tls\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{default}\"]\n\
         [[listener.route]]\nsni = \"a.example\"\nupstreams = [\"{a}\"]\n\
         [[listener.route]]\nsni = \"*.wild.example\"\nupstreams = [\"{wild}\"]\n\
         [[listener.route]]\nsni = \"API.wild.example\"\nupstreams = [\"{api}\"]\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let ask = |name, split| tls_ask(proxy, &tls.client, name, split);

    assert_eq!(ask("a.example", false), "A a.example hello a.example");
    assert_eq!(
        ask("x.wild.example", false),
        "W x.wild.example hello x.wild.example"
    );
    assert_eq!(
        ask("deep.x.wild.example", false),
        "W deep.x.wild.example hello deep.x.wild.example"
    );
    // The exact name is longer than the wildcard: it wins.
    assert_eq!(
        ask("api.wild.example", false),
        "API api.wild.example hello api.wild.example"
    );
    // No route for the name: the default route, still TLS end to end.
    assert_eq!(
        ask("other.example", false),
        "D other.example hello other.example"
    );
    // A ClientHello in three segments.
    assert_eq!(ask("a.example", true), "A a.example hello a.example");
    assert_eq!(
        ask("api.wild.example", true),
        "API api.wild.example hello api.wild.example"
    );

    // Plain text: the default route, bytes unchanged.
    let mut plain = connect(proxy);
    plain.write_all(b"GET / HTTP/1.0\n").unwrap();
    assert_eq!(read_line(&mut plain).unwrap(), "D plain GET / HTTP/1.0");
    drop(plain);

    let log = eventually("eight close lines", || {
        let e = proc.stderr();
        (e.matches("connection closed").count() >= 8).then_some(e)
    });
    assert!(
        log.contains("sni=\"a.example\"") || log.contains("sni=a.example"),
        "{log}"
    );
    assert!(log.contains(&format!("upstream=\"{a}\"")), "{log}");
}

/// spliced with one route, `a.example` to a TLS upstream tagged `A`, and a
/// plain-text default route tagged `plain`, plus `extra` arguments.
fn one_route(extra: &[&str]) -> (Proc, util::tls::Tls) {
    let plain = util::tag_server("plain");
    let tls = util::tls::tls(&NAMES);
    let a = upstream("A", Arc::clone(&tls.server));
    let (a_s, d_s) = (format!("a.example={a}"), plain.to_string());
    let mut args = vec![
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &d_s,
        "--route",
        &a_s,
    ];
    args.extend_from_slice(extra);
    (Proc::spawn(&args), tls)
}

/// Regressions: a ClientHello cut short by EOF made the peek spin on its
/// worker forever (tokio's "read closed" readiness never clears), and a
/// cut one that then times out left its bytes unseen by the copy (the
/// peek had cleared the edge-triggered readiness).
#[test]
fn a_hello_cut_short_by_eof_or_silence() {
    // One worker: a spinning connection would stop every other.
    let (mut proc, tls) = one_route(&["--worker-threads", "1"]);
    let proxy = proc.listen_addr();
    let mut early = connect(proxy);
    early.write_all(&[0x16, 0x03]).unwrap();
    early.shutdown(std::net::Shutdown::Write).unwrap();
    // The two bytes and the EOF go to the default route at once.
    assert_eq!(read_line(&mut early).unwrap(), "plain");
    let mut echoed = Vec::new();
    early.read_to_end(&mut echoed).unwrap();
    assert_eq!(echoed, [0x16, 0x03]);
    assert_eq!(
        tls_ask(proxy, &tls.client, "a.example", false),
        "A a.example hello a.example"
    );

    // Three bytes, more later, then silence: after the hello timeout the
    // bytes reach the default route and are echoed.
    let mut silent = connect(proxy);
    silent.set_nodelay(true).unwrap();
    silent.write_all(&[0x16, 0x03, 0x01]).unwrap();
    thread::sleep(Duration::from_millis(100));
    silent.write_all(&[0x00]).unwrap();
    assert_eq!(read_line(&mut silent).unwrap(), "plain");
    let mut back = [0u8; 4];
    silent.read_exact(&mut back).unwrap();
    assert_eq!(back, [0x16, 0x03, 0x01, 0x00]);
}

/// `--sni-timeout`: a client that starts a ClientHello and goes silent
/// takes the default route after that long, not after the 3 s default
/// (and not before it).
#[test]
fn sni_timeout_sets_the_wait_for_a_hello() {
    let (mut proc, tls) = one_route(&["--sni-timeout", "300ms"]);
    let proxy = proc.listen_addr();
    let mut silent = connect(proxy);
    let start = std::time::Instant::now();
    silent.write_all(&[0x16, 0x03, 0x01]).unwrap();
    assert_eq!(read_line(&mut silent).unwrap(), "plain");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "routed after {waited:?}, before sni_timeout"
    );
    assert!(
        waited < Duration::from_millis(2500),
        "routed after {waited:?}: sni_timeout 300ms not applied"
    );
    let mut back = [0u8; 3];
    silent.read_exact(&mut back).unwrap();
    assert_eq!(back, [0x16, 0x03, 0x01]);
    // A whole hello still takes its route.
    assert_eq!(
        tls_ask(proxy, &tls.client, "a.example", false),
        "A a.example hello a.example"
    );
}

/// A ClientHello record for `name` with a padding extension (21) of
/// `pad` bytes, built by hand.
fn big_hello(name: &str, pad: usize) -> Vec<u8> {
    let n = name.as_bytes();
    let mut exts = vec![0, 0];
    exts.extend_from_slice(&((n.len() + 5) as u16).to_be_bytes());
    exts.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
    exts.push(0);
    exts.extend_from_slice(&(n.len() as u16).to_be_bytes());
    exts.extend_from_slice(n);
    exts.extend_from_slice(&[0, 21]);
    exts.extend_from_slice(&(pad as u16).to_be_bytes());
    exts.resize(exts.len() + pad, 0);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[1; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// ClientHellos longer than the first 2 KiB peek are routed too; one
/// longer than the 16 KiB cap goes to the default route.
#[test]
fn large_hellos() {
    let big = util::tag_server("big");
    let plain = util::tag_server("default");
    let (route, d) = (format!("big.example={big}"), plain.to_string());
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &d,
        "--route",
        &route,
    ]);
    let proxy = proc.listen_addr();
    for (pad, expect) in [
        (100, "big"),
        (5000, "big"),
        (15000, "big"),
        (17000, "default"),
    ] {
        let hello = big_hello("big.example", pad);
        let mut c = connect(proxy);
        c.set_nodelay(true).unwrap();
        // In two writes for the larger ones.
        let half = hello.len() / 2;
        c.write_all(&hello[..half]).unwrap();
        thread::sleep(Duration::from_millis(20));
        c.write_all(&hello[half..]).unwrap();
        assert_eq!(read_line(&mut c).unwrap(), expect, "padding {pad}");
        // The whole ClientHello reached the upstream unchanged.
        let mut echoed = vec![0u8; hello.len()];
        c.read_exact(&mut echoed).unwrap();
        assert!(echoed == hello, "padding {pad}: bytes changed");
    }
}

/// Behind a balancer: the PROXY header is read (exactly), then the
/// ClientHello after it is peeked and routed, and the handshake completes.
#[test]
fn routes_behind_accept_proxy() {
    let tls = util::tls::tls(&NAMES);
    let a = upstream("A", Arc::clone(&tls.server));
    let default = upstream("D", Arc::clone(&tls.server));
    let (a_s, d_s) = (format!("a.example={a}"), default.to_string());
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &d_s,
        "--route",
        &a_s,
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.1",
    ]);
    let proxy = proc.listen_addr();
    for (name, split) in [
        ("a.example", false),
        ("a.example", true),
        ("other.example", false),
    ] {
        let conn = ClientConnection::new(
            Arc::clone(&tls.client),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap();
        let mut sock = connect(proxy);
        sock.set_nodelay(true).unwrap();
        let header = b"PROXY TCP4 192.0.2.9 192.0.2.1 5000 443\r\n";
        if split {
            // The header and the first byte of the ClientHello together.
            let mut conn = conn;
            let mut hello = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut hello).unwrap();
            }
            sock.write_all(&[&header[..], &hello[..1]].concat())
                .unwrap();
            thread::sleep(Duration::from_millis(50));
            sock.write_all(&hello[1..]).unwrap();
            let mut tls = StreamOwned::new(conn, sock);
            writeln!(tls, "hi").unwrap();
            let mut answer = String::new();
            BufReader::new(&mut tls).read_line(&mut answer).unwrap();
            assert_eq!(answer.trim_end(), format!("A {name} hi"));
            continue;
        }
        sock.write_all(header).unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        writeln!(tls, "hi").unwrap();
        let mut answer = String::new();
        BufReader::new(&mut tls).read_line(&mut answer).unwrap();
        let tag = if name == "a.example" { "A" } else { "D" };
        assert_eq!(answer.trim_end(), format!("{tag} {name} hi"));
    }
    let log = eventually("three close lines", || {
        let e = proc.stderr();
        (e.matches("connection closed").count() >= 3).then_some(e)
    });
    assert!(log.contains("client=192.0.2.9:5000"), "{log}");
}

#[test]
fn routes_from_flags_and_a_client_that_closes_early() {
    let tls = util::tls::tls(&NAMES);
    let a = upstream("A", Arc::clone(&tls.server));
    let default = upstream("D", Arc::clone(&tls.server));
    let (a_s, d_s) = (format!("a.example={a}"), default.to_string());
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &d_s,
        "--route",
        &a_s,
    ]);
    let proxy = proc.listen_addr();
    assert_eq!(
        tls_ask(proxy, &tls.client, "a.example", false),
        "A a.example hello a.example"
    );
    assert_eq!(
        tls_ask(proxy, &tls.client, "other.example", false),
        "D other.example hello other.example"
    );
    // Half a record header, then EOF: closed, no crash, the proxy serves on.
    let mut early = connect(proxy);
    early.write_all(&[0x16, 0x03]).unwrap();
    early.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = early.read_to_end(&mut rest);
    // Garbage that looks like a record with an absurd length.
    let mut junk = connect(proxy);
    junk.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x02, 0, 0, 0])
        .unwrap();
    drop(junk);
    assert_eq!(
        tls_ask(proxy, &tls.client, "a.example", true),
        "A a.example hello a.example"
    );
    let _: TcpStream = connect(proxy);
}

/// Regression: a ClientHello trickled one byte per segment made spliced
/// peek (copy) everything received so far and parse it again at every
/// byte: quadratic CPU in the hello's size (an 8 KiB hello: ~32 MiB
/// copied). Now a hello in pieces is peeked again only once the bytes the
/// parser needs are there (counted by `FIONREAD`, no copy). Held exactly,
/// not by time: strace sums the bytes spliced's `MSG_PEEK` calls return
/// while the hello trickles in; it must stay within a few times the
/// hello's size. The hello still takes its route, unchanged.
#[test]
fn a_trickled_hello_is_not_peeked_quadratically() {
    use std::process::{Command, Stdio};

    let big = util::tag_server("big");
    let plain = util::tag_server("default");
    let (route, d) = (format!("big.example={big}"), plain.to_string());
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &d,
        "--route",
        &route,
        "--sni-timeout",
        "60s",
    ]);
    let proxy = proc.listen_addr();
    let hello = big_hello("big.example", 8000);

    let out = std::env::temp_dir().join(format!("spliced-sni-trickle-{}.txt", std::process::id()));
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-s", "0", "-e", "trace=recvfrom,ioctl", "-o"])
        .arg(&out)
        .args(["-p", &proc.pid().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run strace: ci/install.sh installs it (apt-get install strace)");
    // -qq hides "attached": give it a moment to attach to every thread.
    thread::sleep(Duration::from_millis(500));
    assert!(strace.try_wait().unwrap().is_none(), "strace exited early");

    let mut c = connect(proxy);
    c.set_nodelay(true).unwrap();
    for (i, b) in hello.iter().enumerate() {
        c.write_all(std::slice::from_ref(b)).unwrap();
        // Let spliced see most bytes on their own.
        if i % 8 == 0 {
            thread::sleep(Duration::from_micros(200));
        }
    }
    assert_eq!(
        read_line(&mut c).unwrap(),
        "big",
        "the hello takes its route"
    );
    let mut echoed = vec![0u8; hello.len()];
    c.read_exact(&mut echoed).unwrap();
    assert!(echoed == hello, "the hello reached the upstream unchanged");

    let spid = rustix::process::Pid::from_raw(strace.id() as i32).unwrap();
    rustix::process::kill_process(spid, rustix::process::Signal::INT).unwrap();
    let _ = strace.wait();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let mut peeks = 0usize;
    let mut peeked = 0usize;
    for line in text.lines().filter(|l| l.contains("MSG_PEEK")) {
        peeks += 1;
        peeked += line
            .rsplit("= ")
            .next()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
    }
    assert!(peeks >= 2, "strace saw no peek: {peeks}\n{text:.2000}");
    assert!(
        peeked <= 4 * hello.len(),
        "{peeks} peeks copied {peeked} bytes for a {}-byte hello",
        hello.len()
    );
}
