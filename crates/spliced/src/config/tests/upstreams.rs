//! Upstream options (`ADDR weight=N backup max_conns=N`, or a table), the
//! `source` balance and the health-check settings, from the file and from
//! flags, and their errors.

use std::time::Duration;

use super::{load_with, table::error_of, Balance};

const HEAD: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\n";

#[test]
fn strings_and_tables_give_the_same_upstreams() {
    let s = load_with(
        &format!(
            "{HEAD}upstreams = [\"a:1 weight=3 backup\", {{ addr = \"b:2\", weight = 0, max_conns = 9 }},\n\
             {{ addr = \"c:3\", backup = true }}]\nbalance = \"source\"\n\
             [[listener.route]]\nsni = \"x.example\"\nupstreams = [{{ addr = \"d:4\", weight = 2 }}]\n"
        ),
        &[],
    )
    .unwrap();
    let l = &s.listeners[0];
    let specs: Vec<String> = l.upstreams.iter().map(|u| u.spec()).collect();
    assert_eq!(
        specs,
        [
            "a:1 weight=3 backup",
            "b:2 weight=0 max_conns=9",
            "c:3 backup"
        ]
    );
    assert_eq!(l.balance, Balance::Source);
    assert_eq!(l.routes[0].upstreams[0].spec(), "d:4 weight=2");
    // From flags, `--route` included.
    let s = load_with(
        "",
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "a:1 max_conns=2",
            "--route",
            "x.example=b:2 backup",
        ],
    )
    .unwrap();
    assert_eq!(s.listeners[0].upstreams[0].max_conns(), Some(2));
    assert!(s.listeners[0].routes[0].upstreams[0].is_backup());
}

#[test]
fn health_settings_and_their_defaults() {
    let s = load_with(&format!("{HEAD}upstreams = [\"a:1\"]\n"), &[]).unwrap();
    assert!(s.listeners[0].health_check().is_none(), "off by default");
    let s = load_with(
        &format!(
            "health_interval = \"2s\"\n{HEAD}upstreams = [\"a:1\"]\nhealth_send = 'PING\\r\\n'\n\
             health_expect = \"+PONG\"\nhealth_fall = 5\n"
        ),
        &["--health-rise", "4"],
    )
    .unwrap();
    let c = s.listeners[0].health_check().unwrap();
    assert_eq!(
        (c.interval, c.timeout, c.rise, c.fall),
        (Duration::from_secs(2), Duration::from_secs(2), 4, 5)
    );
    assert_eq!(c.send.as_deref(), Some(&b"PING\r\n"[..]));
    assert_eq!(c.expect.as_deref(), Some(&b"+PONG"[..]));
    let s = load_with(
        &format!("{HEAD}upstreams = [\"a:1\"]\n"),
        &["--health-interval", "1s", "--health-timeout", "300ms"],
    )
    .unwrap();
    assert_eq!(
        s.listeners[0].health_check().unwrap().timeout,
        Duration::from_millis(300)
    );
}

#[test]
fn bad_options_name_file_line_and_field() {
    for (text, needles) in [
        (
            format!("{HEAD}upstreams = [\"a:1 weight=x\"]\n"),
            &[
                "FILE:3:",
                "listener[0].upstreams[0]",
                "`weight=x` needs a whole number",
            ][..],
        ),
        (
            format!("{HEAD}upstreams = [\"a:1 drain\"]\n"),
            &["listener[0].upstreams[0]", "unknown option `drain`"][..],
        ),
        (
            format!("{HEAD}upstreams = [{{ addr = \"a:1\", wieght = 2 }}]\n"),
            &["FILE:3:", "an upstream: \"host:port [weight=N]"][..],
        ),
        (
            format!("{HEAD}upstreams = [{{ addr = \"a:1 backup\" }}]\n"),
            &["addr is one host:port"][..],
        ),
        (
            format!("{HEAD}upstreams = [\"a:1\"]\nhealth_send = \"\\\\q\"\n"),
            &["FILE:4:", "health_send", "unknown escape `\\q`"][..],
        ),
        (
            format!("{HEAD}upstreams = [\"a:1\"]\nhealth_rise = 0\n"),
            &["health_rise", "at least 1"][..],
        ),
    ] {
        let e = error_of(&text).unwrap_or_else(|| panic!("accepted: {text}"));
        for n in needles {
            assert!(e.contains(n), "{n:?} not in: {e}");
        }
    }
}
