//! Hot reload through the real binary: SIGHUP re-reads `--config`. A
//! transfer open across several reloads (one of them a broken file)
//! arrives intact; new connections follow the new file; a listener added
//! by a reload accepts, a removed one refuses new clients and its open
//! connections run until the grace period, then close; a broken file is
//! rejected with FILE:LINE: field and the running config stays; a new
//! max_conns applies at once; the reloads are counted in the metrics.

use crate::util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    connect, http_get, random_bytes, read_line, sha256, tag_server, ConfigFile, Proc,
};
use rustix::process::Signal;

/// A port free now (bound once, then closed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn listener(name: &str, port: u16, upstream: SocketAddr, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nupstreams = [\"{upstream}\"]\n{extra}"
    )
}

/// The tag the upstream of a new connection to `addr` sends.
fn tag_of(addr: SocketAddr) -> String {
    let mut s = connect(addr);
    read_line(&mut s).unwrap()
}

/// The value of the sample line starting with `prefix`.
fn value(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn reloads_apply_to_new_connections_and_never_touch_open_ones() {
    let (a, b) = (tag_server("A"), tag_server("B"));
    let (main_port, gone_port, extra_port) = (free_port(), free_port(), free_port());
    let main = SocketAddr::from(([127, 0, 0, 1], main_port));
    let gone = SocketAddr::from(([127, 0, 0, 1], gone_port));
    let extra = SocketAddr::from(([127, 0, 0, 1], extra_port));
    let head = "metrics = \"127.0.0.1:0\"\ngrace_period = \"30s\"\n";
    let config = ConfigFile::new(&format!(
        "{head}{}{}",
        listener("main", main_port, a, ""),
        listener("gone", gone_port, a, "")
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let _ = proc.listen_addrs(2);
    let metrics: SocketAddr = proc
        .wait_for_line("metrics on http://")
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(tag_of(main), "A");

    // The long transfer: half now, half after the reloads, echoed back.
    let data = random_bytes(7, 16 << 20);
    let half = data.len() / 2;
    let mut long = connect(main);
    assert_eq!(read_line(&mut long).unwrap(), "A");
    let reader = {
        let mut r = long.try_clone().unwrap();
        let n = data.len();
        thread::spawn(move || {
            let mut back = Vec::with_capacity(n);
            r.read_to_end(&mut back).unwrap();
            back
        })
    };
    let (go_on, wait) = mpsc::channel::<()>();
    let writer = {
        let mut w = long.try_clone().unwrap();
        let data = data.clone();
        thread::spawn(move || {
            w.write_all(&data[..half]).unwrap();
            wait.recv().unwrap();
            w.write_all(&data[half..]).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    // A connection to the listener the first reload removes.
    let mut on_gone = connect(gone);
    assert_eq!(read_line(&mut on_gone).unwrap(), "A");

    // Reload 1: main goes to B, `gone` is removed (1 s grace), `extra`
    // is added.
    std::fs::write(
        &config.path,
        format!(
            "metrics = \"127.0.0.1:0\"\ngrace_period = \"1s\"\n{}{}",
            listener("main", main_port, b, "balance = \"least-conn\"\n"),
            listener("extra", extra_port, b, "max_conns = 1\n")
        ),
    )
    .unwrap();
    proc.signal(Signal::HUP);
    let line = proc.wait_for_line("reloaded");
    assert!(
        line.contains("1 listener(s) kept, 1 added, 1 removed (gone)"),
        "{line}"
    );
    assert!(proc
        .wait_for_line(&format!("listening on {extra}"))
        .contains("`extra`"));
    assert_eq!(tag_of(main), "B");
    assert_eq!(tag_of(extra), "B");
    util::eventually(
        "the removed listener to refuse",
        || match TcpStream::connect(gone) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        },
    );
    // Its open connection still works, then closes after the grace period.
    on_gone.write_all(b"still\n").unwrap();
    assert_eq!(read_line(&mut on_gone).unwrap(), "still");
    let t = Instant::now();
    on_gone
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = [0u8; 16];
    let closed = matches!(on_gone.read(&mut rest), Ok(0) | Err(_));
    assert!(
        closed && t.elapsed() < Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );

    // Reload 2: a broken file. Rejected, named, nothing changes.
    std::fs::write(
        &config.path,
        format!(
            "{}balance = \"random\"\n",
            listener("main", main_port, a, "")
        ),
    )
    .unwrap();
    proc.signal(Signal::HUP);
    let line = proc.wait_for_line("reload failed");
    assert!(
        line.contains(&format!("{}:5:", config.arg()))
            && line.contains("field `listener[0].balance`"),
        "{line}"
    );
    util::eventually("the error on stderr", || {
        proc.stderr()
            .contains("the running config stays")
            .then_some(())
    });
    assert_eq!(tag_of(main), "B");
    // `extra` keeps max_conns = 1: one held connection, the next refused.
    let mut held = util::eventually("a connection to `extra`", || {
        let mut s = connect(extra);
        (read_line(&mut s).ok()? == "B").then_some(s)
    });
    let mut refused = connect(extra);
    assert!(
        read_line(&mut refused).is_err(),
        "max_conns = 1 not applied"
    );

    // Reload 3: main back to A, extra kept (default max_conns).
    std::fs::write(
        &config.path,
        format!(
            "metrics = \"127.0.0.1:0\"\n{}{}",
            listener("main", main_port, a, ""),
            listener("extra", extra_port, b, "")
        ),
    )
    .unwrap();
    proc.signal(Signal::HUP);
    let line = proc.wait_for_line("2 listener(s) kept, 0 added, 0 removed");
    assert!(line.contains("reloaded"), "{line}");
    assert_eq!(tag_of(main), "A");
    assert_eq!(tag_of(extra), "B", "the new max_conns applies at once");
    held.write_all(b"held\n").unwrap();
    assert_eq!(read_line(&mut held).unwrap(), "held");

    // The transfer, open across all three, arrives intact.
    go_on.send(()).unwrap();
    writer.join().unwrap();
    let back = reader.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert_eq!(sha256(&back), sha256(&data));

    let (_, body) = http_get(metrics, "/metrics");
    assert_eq!(
        value(&body, "spliced_config_reloads_total{result=\"ok\"}"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        value(&body, "spliced_config_reloads_total{result=\"error\"}"),
        Some(1.0)
    );
    assert!(value(&body, "spliced_config_last_reload_seconds").unwrap() > 1.6e9);
    // The removed listener's upstreams are no longer reported.
    assert!(
        !body.contains("spliced_upstream_healthy{listener=\"gone\""),
        "{body}"
    );
    assert!(body.contains("spliced_upstream_healthy{listener=\"extra\""));
}

#[test]
fn sighup_without_a_config_file_is_ignored() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.to_string(),
    ]);
    let addr = proc.listen_addr();
    proc.signal(Signal::HUP);
    util::eventually("the warning", || {
        proc.stderr().contains("nothing to re-read").then_some(())
    });
    assert_eq!(tag_of(addr), "UP");
}

#[test]
fn sighup_during_the_grace_period_changes_nothing() {
    let up = tag_server("UP");
    let config = ConfigFile::new(&format!(
        "grace_period = \"30s\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addr = proc.listen_addr();
    let mut open = connect(addr);
    assert_eq!(read_line(&mut open).unwrap(), "UP");
    proc.signal(Signal::TERM);
    proc.wait_for_line("shutting down (1 connection(s) open)");
    proc.signal(Signal::HUP);
    util::eventually("the SIGHUP to be seen", || {
        proc.stderr()
            .contains("SIGHUP while shutting down: ignored")
            .then_some(())
    });
    // Still waiting for the open connection, which still works.
    open.write_all(b"on\n").unwrap();
    assert_eq!(read_line(&mut open).unwrap(), "on");
    drop(open);
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
    assert!(!proc.stderr().contains("again"), "{}", proc.stderr());
}
