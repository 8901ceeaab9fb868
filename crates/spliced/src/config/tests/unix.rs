//! Unix-socket listeners and upstreams in the file and as flags:
//! `unix:/path` wherever an address is, the socket file's settings, and
//! what a Unix listener refuses (rules on IP addresses, an
//! `accept_proxy_from` without `unix`, SNI routes), each named.

use std::path::Path;

use super::{load_text, load_with, run_args};
use crate::acl::ProxySource;
use crate::address::ListenAddr;
use crate::config::unix::UnixMode;

const UNIX: &str = "[[listener]]\nlisten = \"unix:/run/x.sock\"\nupstreams = [\"127.0.0.1:9\"]\n";

#[test]
fn unix_listeners_and_upstreams_in_the_file() {
    let s = load_text(&format!(
        "unix_group = \"nogroup\"\n{UNIX}unix_mode = \"0660\"\nunix_owner = \"nobody\"\n\
         [[listener]]\nlisten = \"127.0.0.1:0\"\n\
         upstreams = [\"unix:/run/app.sock weight=2\", {{ addr = \"unix:/run/b.sock\", backup = true }}]\n"
    ))
    .unwrap();
    let (a, b) = (&s.listeners[0], &s.listeners[1]);
    assert_eq!(a.listen, ListenAddr::Unix("/run/x.sock".into()));
    assert_eq!(a.name, "unix:/run/x.sock", "named after its address");
    assert_eq!(a.unix_mode, Some(UnixMode(0o660)));
    assert_eq!(a.unix_owner.as_deref(), Some("nobody"));
    assert_eq!(
        a.unix_group.as_deref(),
        Some("nogroup"),
        "a top-level default"
    );
    let file = a.unix_file();
    assert_eq!(file.mode, Some(0o660));
    assert_eq!(b.upstreams[0].unix_path(), Some(Path::new("/run/app.sock")));
    assert_eq!(b.upstreams[0].weight(), 2);
    assert_eq!(b.upstreams[1].unix_path(), Some(Path::new("/run/b.sock")));
    assert!(b.upstreams[1].is_backup());
    assert_eq!(b.unix_mode, None);
}

#[test]
fn unix_listeners_and_upstreams_as_flags() {
    let args = run_args(&[
        "--listen",
        "unix:/run/f.sock",
        "--upstream",
        "unix:/run/u.sock",
        "--unix-mode",
        "600",
        "--unix-owner",
        "65534",
        "--unix-group",
        "0",
    ])
    .unwrap();
    let s = crate::config::load("", &args).unwrap();
    let l = &s.listeners[0];
    assert_eq!(l.listen.unix(), Some(Path::new("/run/f.sock")));
    assert_eq!(l.upstreams[0].as_str(), "unix:/run/u.sock");
    assert_eq!(l.unix_mode, Some(UnixMode(0o600)));
    assert_eq!(
        (l.unix_owner.as_deref(), l.unix_group.as_deref()),
        (Some("65534"), Some("0"))
    );
    let e = run_args(&["--listen", "unix:x.sock"])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("absolute"), "{e}");
    let e = run_args(&["--unix-mode", "0999"])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("octal"), "{e}");
}

#[test]
fn a_unix_listener_refuses_rules_on_ip_addresses() {
    for (extra, field, words) in [
        (
            "allow = [\"10.0.0.0/8\"]\n",
            "listener[0].allow",
            "has `allow`",
        ),
        (
            "deny = [\"10.0.0.0/8\"]\n",
            "listener[0].deny",
            "has `deny`",
        ),
        (
            "max_conns_per_source = 3\n",
            "listener[0].max_conns_per_source",
            "use max_conns",
        ),
        (
            "accept_proxy = true\naccept_proxy_from = [\"0.0.0.0/0\"]\n",
            "listener[0].accept_proxy_from",
            "add `unix`",
        ),
        (
            "[[listener.route]]\nsni = \"a.example\"\nupstreams = [\"10.0.0.1:443\"]\n",
            "listener[0].route",
            "SNI",
        ),
    ] {
        let e = load_text(&format!("{UNIX}{extra}")).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        let text = e.to_string();
        assert!(
            text.contains(words) && text.contains("unix:/run/x.sock"),
            "{text}"
        );
    }
    // With accept_proxy and its `unix` entry, the header's address is
    // judged: the lists apply to it.
    let s = load_text(&format!(
        "{UNIX}accept_proxy = true\naccept_proxy_from = [\"unix\"]\nallow = [\"10.0.0.0/8\"]\n\
         max_conns_per_source = 3\n"
    ))
    .unwrap();
    assert_eq!(s.listeners[0].accept_proxy_from, [ProxySource::Unix]);
    // A flag: the same check, the same field.
    let e = load_with(UNIX, &["--deny", "10.0.0.0/8"]).unwrap_err();
    assert_eq!(e.field, "listener[0].deny", "{e}");
    // On a TCP listener the unix entry is harmless and the lists apply.
    let s = load_text(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\n\
         accept_proxy = true\naccept_proxy_from = [\"unix\", \"10.0.0.1\"]\n",
    )
    .unwrap();
    assert_eq!(s.listeners[0].accept_proxy_from.len(), 2);
}

#[test]
fn bad_unix_values_name_their_field() {
    for (text, field, words) in [
        (
            "[[listener]]\nlisten = \"unix:run/x.sock\"\nupstreams = [\"127.0.0.1:9\"]\n",
            "listener[0].listen",
            "absolute",
        ),
        (
            "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"unix:a.sock\"]\n",
            "listener[0].upstreams[0]",
            "absolute",
        ),
        (
            &format!("{UNIX}unix_mode = \"rw\"\n"),
            "listener[0].unix_mode",
            "octal",
        ),
        (
            &format!("{UNIX}unix_owner = \"\"\n"),
            "listener[0].unix_owner",
            "empty",
        ),
        (
            &format!("{UNIX}accept_proxy = true\naccept_proxy_from = [\"local\"]\n"),
            "listener[0].accept_proxy_from[0]",
            "`unix`",
        ),
        (
            &format!("{UNIX}{UNIX}"),
            "listener[1].listen",
            "already the address",
        ),
    ] {
        let e = load_text(text).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains(words), "{e}");
    }
}

/// `--check` (and a start) looks the socket file's owner and group up,
/// as it looks `user` up: an unknown one is an error naming its key.
#[test]
fn unknown_owner_or_group_fails_the_check() {
    for (extra, field) in [
        (
            "unix_owner = \"no-such-user-spliced\"\n",
            "listener[0].unix_owner",
        ),
        (
            "unix_group = \"no-such-group-spliced\"\n",
            "listener[0].unix_group",
        ),
    ] {
        let args = run_args(&["--config", super::FILE, "--check"]).unwrap();
        let e = crate::run::check_text(&format!("{UNIX}{extra}"), &args).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains("-spliced`"), "{e}");
    }
    let args = run_args(&["--config", super::FILE, "--check"]).unwrap();
    let ok = format!("{UNIX}unix_owner = \"nobody\"\nunix_group = \"0\"\n");
    assert!(crate::run::check_text(&ok, &args).is_ok());
}
