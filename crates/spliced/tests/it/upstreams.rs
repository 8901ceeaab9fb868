//! Upstream options and run-time control through the real binary:
//! weights, backups, `max_conns`, `--balance source`, and the admin
//! socket's `show`, `drain`, `enable`, `weight` (with their errors and
//! their state across a reload).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;

use crate::admin::{ctl, SocketDir};
use crate::util::{self, connect, connect_from, read_line, tag_server, ConfigFile, Proc};

/// Connects through the proxy and returns the stream and the upstream's tag.
fn tag_via(s: TcpStream) -> (TcpStream, String) {
    let mut s = s;
    let tag = read_line(&mut s).expect("a tag from the upstream");
    (s, tag)
}

/// Closes a connection and waits until the proxy has closed it too.
fn close(mut s: TcpStream) {
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

/// The tags of `n` connections, one after the other, each closed.
fn tags(proxy: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for _ in 0..n {
        let (s, tag) = tag_via(connect(proxy));
        close(s);
        *count.entry(tag).or_insert(0) += 1;
    }
    count
}

/// `spliced ctl show`'s lines, split at tabs.
fn show(sock: &Path) -> Vec<Vec<String>> {
    let out = ctl(sock, &["show"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// `show`'s line for `addr`.
fn row(sock: &Path, addr: SocketAddr) -> Vec<String> {
    let a = addr.to_string();
    show(sock)
        .into_iter()
        .find(|r| r[1] == a)
        .unwrap_or_else(|| panic!("no line for {a}"))
}

#[test]
fn weights_share_the_clients() {
    let (a, b) = (tag_server("A"), tag_server("B"));
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &format!("{a} weight=1"),
        "--upstream",
        &format!("{b} weight=3"),
    ]);
    let got = tags(proc.listen_addr(), 400);
    let on_a = got.get("A").copied().unwrap_or(0);
    // Within a few percent of 1/4 (round-robin's turns make it exact).
    assert!((88..=112).contains(&on_a), "{got:?}");
    assert_eq!(on_a + got.get("B").copied().unwrap_or(0), 400);
}

#[test]
fn backups_only_while_no_primary_is_up_and_max_conns_spills() {
    let (p, k) = (tag_server("P"), tag_server("K"));
    let spawn = |primary: String| {
        Proc::spawn(&[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &primary,
            "--upstream",
            &format!("{k} backup"),
        ])
    };
    let mut proc = spawn(p.to_string());
    let proxy = proc.listen_addr();
    assert_eq!(
        tags(proxy, 20).get("P"),
        Some(&20),
        "the backup got clients"
    );
    drop(proc);
    // (A proxy of its own: a client's lease on P ends a moment after the
    // client sees the close, which max_conns=1 would count.)
    let mut proc = spawn(format!("{p} max_conns=1"));
    let proxy = proc.listen_addr();
    // P full: the next clients spill over to the next upstream.
    let (held, tag) = tag_via(connect(proxy));
    assert_eq!(tag, "P");
    for _ in 0..5 {
        let (s, tag) = tag_via(connect(proxy));
        assert_eq!(tag, "K", "P holds max_conns=1 already");
        close(s);
    }
    close(held);
    // Room again (its lease is released once the proxy logs the close).
    util::eventually("P free again", || {
        let (s, tag) = tag_via(connect(proxy));
        close(s);
        (tag == "P").then_some(())
    });
    drop(proc);

    // The only primary down: every client on the backup.
    let dead = util::dead_addr();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &dead.to_string(),
        "--upstream",
        &format!("{k} backup"),
        "--health-interval",
        "100ms",
        "--health-fall",
        "1",
    ]);
    let proxy = proc.listen_addr();
    proc.wait_for_line("listening on");
    util::eventually("the primary held down", || {
        proc.stderr().contains("upstream down").then_some(())
    });
    assert_eq!(tags(proxy, 20).get("K"), Some(&20));
}

#[test]
fn source_keeps_each_client_and_draining_moves_only_its_own() {
    let ups: Vec<SocketAddr> = ["U0", "U1", "U2", "U3"].map(tag_server).to_vec();
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let mut args = vec!["run", "--listen", "127.0.0.1:0", "--balance", "source"];
    let texts: Vec<String> = ups.iter().map(|u| u.to_string()).collect();
    for t in &texts {
        args.extend(["--upstream", t]);
    }
    args.extend(["--admin-socket", sock.to_str().unwrap()]);
    let mut proc = Proc::spawn(&args);
    let proxy = proc.listen_addr();
    let clients: Vec<IpAddr> = (2..=41u8).map(|x| IpAddr::from([127, 0, 0, x])).collect();
    let via = |c: IpAddr| {
        let (s, tag) = tag_via(connect_from(c, proxy));
        close(s);
        tag
    };
    let first: Vec<String> = clients.iter().map(|&c| via(c)).collect();
    for (c, t) in clients.iter().zip(&first) {
        assert_eq!(&via(*c), t, "{c} moved");
    }
    let used: std::collections::HashSet<&String> = first.iter().collect();
    assert!(used.len() >= 3, "40 clients on {used:?} only");
    // Drain the upstream of the first client: only its clients move.
    let drained = &first[0];
    let addr = &texts[drained[1..].parse::<usize>().unwrap()];
    // A `--listen` listener's name is its address as written.
    let out = ctl(&sock, &["drain", "127.0.0.1:0", addr]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (c, t) in clients.iter().zip(&first) {
        let now = via(*c);
        if t == drained {
            assert_ne!(&now, drained, "{c} still on the drained one");
        } else {
            assert_eq!(&now, t, "{c} was not on the drained one but moved");
        }
    }
}

#[test]
fn admin_show_drain_enable_weight_and_errors_across_a_reload() {
    let (a, b) = (tag_server("A"), tag_server("B"));
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let text = |wa: u32| {
        format!(
            "admin_socket = \"{}\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
             upstreams = [\"{a} weight={wa}\", \"{b}\"]\n",
            sock.display()
        )
    };
    let config = ConfigFile::new(&text(1));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let r = row(&sock, a);
    assert_eq!(r[..6], ["web", &a.to_string(), "up", "1", "0", "-"]);
    assert_eq!(
        std::fs::metadata(&sock)
            .map(|m| {
                use std::os::unix::fs::PermissionsExt as _;
                m.permissions().mode() & 0o777
            })
            .unwrap(),
        0o600
    );

    // A long connection to A keeps echoing while A is drained.
    let mut long = connect(proxy);
    let tag = read_line(&mut long).unwrap();
    let (long_addr, other) = if tag == "A" { (a, "B") } else { (b, "A") };
    let out = ctl(&sock, &["drain", "web", &long_addr.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = row(&sock, long_addr);
    assert_eq!((r[2].as_str(), r[4].as_str()), ("drain", "1"), "{r:?}");
    assert!(r[6].contains("runtime: state drain"), "{r:?}");
    assert_eq!(tags(proxy, 6).get(other), Some(&6), "new clients avoid it");
    long.write_all(b"still here\n").unwrap();
    assert_eq!(read_line(&mut long).unwrap(), "still here");

    // Errors: an unknown listener, an unknown address, a bad weight.
    for (words, needle) in [
        (
            vec!["drain", "nope", "1.2.3.4:5"],
            "unknown listener `nope`",
        ),
        (
            vec!["drain", "web", "1.2.3.4:5"],
            "has no upstream `1.2.3.4:5`",
        ),
        (
            vec!["weight", "web", &a.to_string()[..], "x"],
            "is not a weight",
        ),
    ] {
        let out = ctl(&sock, &words);
        assert_eq!(out.status.code(), Some(1), "{words:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{words:?}: {err}");
    }

    // The state and a weight set at run time survive a reload that
    // keeps the upstream; show says they override the file.
    let out = ctl(&sock, &["weight", "web", &a.to_string(), "5"]);
    assert!(out.status.success());
    proc.reload(&config, &text(2));
    let r = row(&sock, a);
    assert_eq!(r[3], "5", "{r:?}");
    assert!(r[6].contains("runtime: weight 5 (file: 2)"), "{r:?}");
    assert_eq!(row(&sock, long_addr)[2], "drain");
    let out = ctl(&sock, &["enable", "web", &long_addr.to_string()]);
    assert!(out.status.success());
    assert_eq!(row(&sock, long_addr)[2], "up");
    let got = tags(proxy, 12);
    assert_eq!(got.len(), 2, "both take clients again: {got:?}");
    close(long);
}
