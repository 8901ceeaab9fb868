//! [`load`] on files and flags: the values it resolves, and the errors it
//! gives, with the file, line, column and field (or the flag) of each.

mod errors;
mod proxy_features;
mod table;
mod unix;
mod upstreams;

use std::time::Duration;

use clap::Parser;

use super::{load, Balance, ConfigError, CopyMode, Origin, RunArgs, Settings};

/// The name the config file has in errors.
const FILE: &str = "FILE";

/// `spliced run ARGS` as clap parses it.
pub(super) fn run_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }
    Run::try_parse_from(std::iter::once("run").chain(args.iter().copied())).map(|r| r.run)
}

/// [`load`] of `text` as the file `FILE`, with the flags `flags`.
pub(super) fn load_with(text: &str, flags: &[&str]) -> Result<Settings, ConfigError> {
    let mut all = vec!["--config", FILE];
    all.extend_from_slice(flags);
    load(text, &run_args(&all).expect("flags parse"))
}

/// [`load`] of `text` as the file `FILE`.
fn load_text(text: &str) -> Result<Settings, ConfigError> {
    load_with(text, &[])
}

#[test]
fn a_full_file() {
    let s = load_text(
        "max_conns = 7\nidle_timeout = \"1m\"\n[pool]\nmax_pipes = 4\npipe_size = \"64KiB\"\n\
         [[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"a:1\", \"b:2\"]\n\
         balance = \"least-conn\"\nmax_conns = 3\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         upstreams = [\"[::1]:80\"]\ncopy = \"userspace\"\nidle_timeout = 0\n",
    )
    .unwrap();
    assert_eq!(s.listeners.len(), 2);
    let (a, b) = (&s.listeners[0], &s.listeners[1]);
    assert_eq!(
        (a.name.as_str(), a.balance, a.max_conns),
        ("web", Balance::LeastConn, 3)
    );
    assert_eq!(a.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(
        (b.copy, b.max_conns, b.idle_timeout),
        (CopyMode::Userspace, 7, None)
    );
    assert_eq!(b.connect_attempts, 1);
    assert_eq!((s.pool.max_pipes(), s.pool.pipe_size()), (4, 65536));
}

#[test]
fn errors_name_line_and_field() {
    let e = load_text(
        "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\nbalance = \"random\"\n",
    )
    .unwrap_err();
    assert_eq!(e.field, "listener[0].balance");
    assert!(matches!(e.origin, Origin::File { line: 4, .. }), "{e}");

    let e = load_text(
        "[pool]\nmax_pipes = 0\n[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\n",
    )
    .unwrap_err();
    assert_eq!(e.field, "pool.max_pipes");
    assert!(
        matches!(
            e.origin,
            Origin::File {
                line: 2,
                col: 13,
                ..
            }
        ),
        "{e}"
    );

    let e = load_text("[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\", \"nope\"]\n")
        .unwrap_err();
    assert_eq!(e.field, "listener[0].upstreams[1]");

    let e =
        load_text("[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\nmax_con = 1\n")
            .unwrap_err();
    assert_eq!(e.field, "listener[0].max_con");
    assert!(matches!(e.origin, Origin::File { line: 4, .. }), "{e}");

    let e = load_text("[[listener]]\nupstreams = [\"a:1\"]\n").unwrap_err();
    assert_eq!(e.field, "listener[0].listen", "{e}");
}

#[test]
fn every_table_setting_is_a_top_level_default_too() {
    let l = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"a:1\"]\n";
    let s = load_text(&format!(
        "send_proxy = \"v1\"\naccept_proxy = true\nproxy_timeout = \"2s\"\n\
         accept_proxy_from = [\"10.0.0.1\"]\n\
         max_conns_per_source = 5\n{l}{l}max_conns_per_source = 6\nsend_proxy = \"v2\"\n"
    ))
    .unwrap();
    let (a, b) = (&s.listeners[0], &s.listeners[1]);
    assert_eq!(
        (a.send_proxy, a.accept_proxy, a.max_conns_per_source),
        (Some(super::ProxyVersion::V1), true, Some(5))
    );
    assert_eq!(a.proxy_timeout, Duration::from_secs(2));
    assert_eq!(
        (b.send_proxy, b.accept_proxy, b.max_conns_per_source),
        (Some(super::ProxyVersion::V2), true, Some(6))
    );
    let e = load_text(&format!("\nproxy_timeout = 0\n{l}")).unwrap_err();
    assert_eq!(e.field, "proxy_timeout");
    assert!(matches!(e.origin, Origin::File { line: 2, .. }), "{e}");
    let e = load_text(&format!("{l}max_conns_per_source = 0\n")).unwrap_err();
    assert_eq!(e.field, "listener[0].max_conns_per_source");
}

#[test]
fn flags_win_over_both_layers() {
    let text =
        "copy = \"userspace\"\n[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\n\
                connect_timeout = \"9s\"\n";
    let e = load_with(text, &["--copy", "splice", "--connect-timeout", "0"]).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.origin.clone()),
        ("connect_timeout", Origin::Flag("connect-timeout"))
    );
    let s = load_with(text, &["--copy", "splice", "--connect-timeout", "1s"]).unwrap();
    let l = &s.listeners[0];
    assert_eq!(
        (l.copy, l.connect_timeout),
        (CopyMode::Splice, Duration::from_secs(1))
    );
    let s = load_with(text, &[]).unwrap();
    let l = &s.listeners[0];
    assert_eq!(
        (l.copy, l.connect_timeout),
        (CopyMode::Userspace, Duration::from_secs(9))
    );
}

#[test]
fn a_reload_keeps_the_running_pools_size_unless_the_file_sets_it() {
    let l = "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\n";
    let nofile = Some(4096);
    let mut s = load_text(l).unwrap();
    s.fit_fds(nofile, Some(100));
    assert_eq!((s.pool.max_pipes(), s.pool.max_idle()), (100, 100));
    let fit = crate::limits::fit(nofile, &[None], Some(100));
    assert_eq!(s.listeners[0].max_conns, fit.max_conns[0]);
    let mut s = load_text(&format!("[pool]\nmax_pipes = 7\n{l}")).unwrap();
    s.fit_fds(nofile, Some(100));
    assert_eq!(s.pool.max_pipes(), 7);
}

#[test]
fn label_syntax() {
    assert!(super::checks::check_label("web (eu-1) é").is_ok());
    assert!(super::checks::check_label("a\"b").is_err());
    assert!(super::checks::check_label("a\\b").is_err());
    assert!(super::checks::check_label("a\nb").is_err());
    assert!(super::checks::check_label("a\tb").is_err());
    assert!(super::checks::check_label(&"x".repeat(129)).is_err());
}
