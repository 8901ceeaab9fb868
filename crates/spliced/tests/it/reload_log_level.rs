//! A reload (SIGHUP) applies the config file's new `log_level` through
//! the real binary, unless `--log-level` (or `RUST_LOG`) set the filter:
//! then the flag's filter stays and the reload says it overrides the
//! file's. A bad filter fails the reload and changes nothing.

use crate::util;

use std::net::SocketAddr;
use std::time::Duration;

use crate::util::{connect, metrics_at, read_line, sample_value, tag_server, ConfigFile, Proc};

fn config(log_level: &str, upstream: SocketAddr) -> String {
    format!(
        "log_level = \"{log_level}\"\nmetrics = \"127.0.0.1:0\"\n[[listener]]\nname = \"l\"\n\
         listen = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\n"
    )
}

/// Opens one connection through `proxy`, closes it, and waits until
/// spliced has counted it closed; returns the client's address (which its
/// "connection closed" log line names).
fn one_connection(proxy: SocketAddr, metrics: SocketAddr, closed_before: f64) -> String {
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
    let client = s.local_addr().unwrap().to_string();
    drop(s);
    util::eventually("the connection to be counted closed", || {
        (sample_value(
            metrics,
            "spliced_connections_closed_total{listener=\"l\",outcome=\"ok\"}",
        ) > closed_before)
            .then_some(())
    });
    // The log line follows the count at once; leave it time to be written.
    std::thread::sleep(Duration::from_millis(300));
    client
}

/// Whether stderr has the "connection closed" info line of `client`.
fn logged_close(proc: &Proc, client: &str) -> bool {
    proc.stderr()
        .lines()
        .any(|l| l.contains("connection closed") && l.contains(&format!("client={client}")))
}

#[test]
fn a_reload_applies_a_new_log_level() {
    let up = tag_server("UP");
    let file = ConfigFile::new(&config("warn", up));
    // No RUST_LOG (empty counts as unset): the file's level applies.
    let mut proc = Proc::spawn_env(&["run", "--config", file.arg()], &[("RUST_LOG", "")]);
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);

    let quiet = one_connection(proxy, metrics, 0.0);
    assert!(!logged_close(&proc, &quiet), "{}", proc.stderr());

    let line = proc.reload(&file, &config("info", up));
    assert!(line.contains("log_level `info` in effect"), "{line}");
    let heard = one_connection(proxy, metrics, 1.0);
    util::eventually("the info line of the connection", || {
        logged_close(&proc, &heard).then_some(())
    });
    assert!(!logged_close(&proc, &quiet), "{}", proc.stderr());
    assert!(
        proc.stderr().contains("reload: log_level `info` in effect"),
        "{}",
        proc.stderr()
    );

    // A bad filter: the reload fails, naming the field; info stays.
    std::fs::write(&file.path, config("spliced=lots", up)).unwrap();
    proc.signal(rustix::process::Signal::HUP);
    let line = proc.wait_for_new_line("reload failed");
    assert!(
        line.contains("field `log_level`") && line.contains("bad filter"),
        "{line}"
    );
    let heard = one_connection(proxy, metrics, 2.0);
    util::eventually("the info line after the failed reload", || {
        logged_close(&proc, &heard).then_some(())
    });

    // And back to warn: quiet again.
    let line = proc.reload(&file, &config("warn", up));
    assert!(line.contains("log_level `warn` in effect"), "{line}");
    let quiet = one_connection(proxy, metrics, 3.0);
    assert!(!logged_close(&proc, &quiet), "{}", proc.stderr());
}

#[test]
fn the_log_level_flag_wins_over_a_reloaded_file() {
    let up = tag_server("UP");
    let file = ConfigFile::new(&config("warn", up));
    let mut proc = Proc::spawn_env(
        &["run", "--config", file.arg(), "--log-level", "warn"],
        &[("RUST_LOG", "")],
    );
    let proxy = proc.listen_addr();
    let metrics = metrics_at(&mut proc);

    let line = proc.reload(&file, &config("info", up));
    assert!(
        line.contains("the config's log_level is overridden by --log-level `warn`"),
        "{line}"
    );
    let quiet = one_connection(proxy, metrics, 0.0);
    assert!(!logged_close(&proc, &quiet), "{}", proc.stderr());
}
