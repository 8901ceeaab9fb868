//! A reload is all or nothing: when one of its new listeners cannot bind
//! (its port is in use), every running listener goes on as it was, with
//! its old settings, none removed; once the port is free the same file
//! applies, the listener it drops stops accepting (it was still tracked),
//! and the process stops cleanly.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::util::{self, connect, read_line, tag_server, ConfigFile, Proc};
use rustix::process::Signal;

/// A port free now (bound once, then closed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn listener(name: &str, port: u16, upstream: SocketAddr) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nupstreams = [\"{upstream}\"]\n"
    )
}

/// The tag the upstream of a new connection to `addr` sends.
fn tag_of(addr: SocketAddr) -> String {
    let mut s = connect(addr);
    read_line(&mut s).unwrap()
}

#[test]
fn a_reload_with_a_port_in_use_changes_nothing() {
    let (a, b) = (tag_server("A"), tag_server("B"));
    let (one, two) = (free_port(), free_port());
    // Held by the test: the reload's new listener cannot bind it.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let three = busy.local_addr().unwrap().port();
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let config = ConfigFile::new(&format!(
        "{}{}",
        listener("one", one, a),
        listener("two", two, a)
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let _ = proc.listen_addrs(2);
    assert_eq!(tag_of(at(one)), "A");

    // `one` to B, `two` removed, `three` added on the busy port.
    let new = format!("{}{}", listener("one", one, b), listener("three", three, b));
    std::fs::write(&config.path, &new).unwrap();
    proc.signal(Signal::HUP);
    let line = proc.wait_for_line("reload failed");
    assert!(
        line.contains(&format!("cannot listen on 127.0.0.1:{three}")),
        "{line}"
    );
    // Nothing changed: `one` keeps its upstream, `two` still accepts.
    assert_eq!(tag_of(at(one)), "A");
    assert_eq!(tag_of(at(two)), "A");

    // The port is free: the same file applies.
    drop(busy);
    let line = proc.reload(&config, &new);
    assert!(
        line.contains("1 listener(s) kept, 1 added, 1 removed (two)"),
        "{line}"
    );
    assert_eq!(tag_of(at(one)), "B");
    assert_eq!(tag_of(at(three)), "B");
    util::eventually(
        "the removed listener to refuse",
        || match TcpStream::connect(at(two)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        },
    );
    proc.signal(Signal::TERM);
    assert!(proc.wait_exit(Duration::from_secs(10)).success());
}
