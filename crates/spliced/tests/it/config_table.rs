//! Malformed config files and flags, as tables: each case must make
//! `spliced run` exit with code 2 and a message that names the problem:
//! for a file, `FILE:LINE:` and the field; for a flag, the flag. (The
//! cases of `config_errors.rs` are not repeated here.)
//!
//! Every case runs with `--check`, so a case that wrongly passes fails
//! fast (exit 0) instead of starting a proxy.

use std::time::Duration;

use crate::util::{run, ConfigFile};

const T: Duration = Duration::from_secs(20);

/// A valid listener, appended where a case needs one.
const L: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\n";

/// A config file case: (text, line of the error, field, more substrings
/// the message must contain). `{L}` in the text is a valid listener.
type FileCase = (&'static str, usize, &'static str, &'static [&'static str]);

#[rustfmt::skip]
const FILE_CASES: &[FileCase] = &[
    // Process settings.
    ("worker_threads = 0\n{L}", 1, "worker_threads", &["at least 1"]),
    ("worker_threads = 1\nworker_threads = 2\n{L}", 2, "worker_threads", &["duplicate key"]),
    ("grace_period = \"forever\"\n{L}", 1, "grace_period", &["not a duration"]),
    ("metrics = \"localhost\"\n{L}", 1, "metrics", &["IP:PORT"]),
    ("log_level = \"spliced=lots\"\n{L}", 1, "log_level", &["filter"]),
    ("user = \"no-such-user-spliced\"\n{L}", 1, "user", &["no such user `no-such-user-spliced`"]),
    ("user = \"\"\n{L}", 1, "user", &["empty"]),
    ("listeners = 1\n{L}", 1, "listeners", &["unknown field", "listener"]),
    // Listener defaults at the top level.
    ("copy = \"zero\"\n{L}", 1, "copy", &["splice", "userspace"]),
    ("balance = 3\n{L}", 1, "balance", &[]),
    ("connect_attempts = 0\n{L}", 1, "connect_attempts", &["at least 1"]),
    ("max_conns = -1\n{L}", 1, "max_conns", &["-1"]),
    ("idle_timeout = \"-5s\"\n{L}", 1, "idle_timeout", &["not a duration"]),
    // [pool].
    ("[pool]\nidle_timeout = 0\n{L}", 2, "pool.idle_timeout", &["longer than zero"]),
    ("[pool]\npipe_size = 0\n{L}", 2, "pool.pipe_size", &["at least 1 byte"]),
    ("[pool]\npipe_size = \"1.5\"\n{L}", 2, "pool.pipe_size", &["whole number"]),
    ("[pool]\nmax_pipes = 4\nlocal_cap = 2\n{L}", 3, "pool.local_cap", &["unknown field", "max_pipes"]),
    ("[pool]\n[pool]\n{L}", 2, "pool", &["duplicate"]),
    // [[listener]].
    ("[[listener]]\nlisten = \"127.0.0.1:0\"\n", 1, "listener[0].upstreams", &["missing field"]),
    ("[[listener]]\nlisten = \"nowhere\"\nupstreams = [\"a:1\"]\n", 2, "listener[0].listen", &["nowhere", "IP:PORT"]),
    ("[[listener]]\nlisten = \"127.0.0.1:99999\"\nupstreams = [\"a:1\"]\n", 2, "listener[0].listen", &["IP:PORT"]),
    ("[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = \"a:1\"\n", 3, "listener[0].upstreams", &["sequence"]),
    ("[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"a:99999\"]\n", 3, "listener[0].upstreams[0]", &["a:99999"]),
    ("{L}[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"[::1:80\"]\n", 6, "listener[1].upstreams[0]", &["[::1:80"]),
    ("{L}name = \"\"\n", 4, "listener[0].name", &["empty"]),
    // Names and hosts that would break the Prometheus text format (and
    // the log lines): rejected.
    ("{L}name = \"a\\\"b\"\n", 4, "listener[0].name", &["quote, backslash"]),
    ("{L}name = \"a\\nb\"\n", 4, "listener[0].name", &["control character"]),
    ("{L}name = 'a\\b'\n", 4, "listener[0].name", &["backslash"]),
    ("[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"a\\\"b:1\"]\n", 3, "listener[0].upstreams[0]", &["host name"]),
    ("[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"a\\nb:1\"]\n", 3, "listener[0].upstreams[0]", &["host name"]),
    ("{L}max_conns = 0\n", 4, "listener[0].max_conns", &["at least 1"]),
    ("{L}connect_attempts = 0\n", 4, "listener[0].connect_attempts", &["at least 1"]),
    ("{L}dns_ttl = 0\n", 4, "listener[0].dns_ttl", &["longer than zero"]),
    ("dns_ttl = \"soon\"\n{L}", 1, "dns_ttl", &["not a duration"]),
    ("{L}connect_timeout = \"1 fortnight\"\n", 4, "listener[0].connect_timeout", &["fortnight"]),
    ("{L}copy = \"zero-copy\"\n", 4, "listener[0].copy", &["splice"]),
    ("[listener]\nlisten = \"127.0.0.1:0\"\n", 1, "listener", &["sequence"]),
    // Structure and syntax.
    ("# no listener\nworker_threads = 2\n", 1, "listener", &["no [[listener]] table"]),
    ("", 1, "listener", &["no [[listener]] table"]),
    ("[[listener]\nlisten = 1\n", 1, "(syntax)", &["table header"]),
];

/// A flag case: (arguments after `spliced`, substrings of the message).
type FlagCase = (&'static [&'static str], &'static [&'static str]);

/// `run --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --check`, then these.
#[rustfmt::skip]
const RUN_FLAG_CASES: &[FlagCase] = &[
    (&["--connect-timeout", "0"], &["--connect-timeout", "longer than zero"]),
    (&["--connect-attempts", "0"], &["--connect-attempts", "at least 1"]),
    (&["--dns-ttl", "0"], &["--dns-ttl", "longer than zero"]),
    (&["--worker-threads", "0"], &["--worker-threads", "at least 1"]),
    (&["--max-pipes", "0"], &["--max-pipes", "at least 1"]),
    (&["--max-pipes", "99999999999999999999999"], &["--max-pipes", "too large"]),
    (&["--pipe-size", "0"], &["--pipe-size", "at least 1 byte"]),
    (&["--pipe-size", "2GiB"], &["--pipe-size", "largest pipe size"]),
    (&["--pipe-size", "1.5"], &["--pipe-size", "whole number"]),
    (&["--pipe-idle-timeout", "0"], &["--pipe-idle-timeout", "longer than zero"]),
    (&["--metrics", "nowhere"], &["--metrics", "nowhere"]),
    (&["--balance", "random"], &["--balance", "least-conn"]),
    (&["--copy", "zero"], &["--copy", "userspace"]),
    (&["--grace-period", "x"], &["--grace-period", "not a duration"]),
    (&["--log-level", "spliced=lots"], &["--log-level", "filter"]),
    (&["--user", ""], &["--user", "empty"]),
    (&["--user", "no-such-user-spliced"], &["--user", "no such user"]),
    (&["--upstream", "[::1:80"], &["--upstream", "[::1:80"]),
    (&["--listen", "127.0.0.1:0"], &["--listen", "multiple"]),
    (&["--nope"], &["--nope"]),
    (&["extra-arg"], &["extra-arg"]),
];

/// Whole command lines.
#[rustfmt::skip]
const OTHER_FLAG_CASES: &[FlagCase] = &[
    (&["bench", "--serve", "127.0.0.1:0", "--echo", "--sink"], &["--echo", "--sink"]),
    (&["bench", "--target", "127.0.0.1:9", "--serve", "127.0.0.1:0"], &["--target", "--serve"]),
    (&["bench", "--target", "127.0.0.1:9", "--duration", "soon"], &["--duration"]),
    (&["demo", "--conns", "0"], &["--conns", "at least 1"]),
    (&["frobnicate"], &["frobnicate"]),
    (&["--log-level", "[", "run"], &["--log-level"]),
];

/// Runs `args`; returns a description of what is wrong, if anything.
fn check(args: &[&str], want: &[&str]) -> Option<String> {
    let out = run(args, T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) {
        return Some(format!(
            "{args:?}: exit {:?}, not 2; stderr: {stderr}",
            out.status.code()
        ));
    }
    let missing: Vec<&&str> = want.iter().filter(|w| !stderr.contains(**w)).collect();
    (!missing.is_empty()).then(|| format!("{args:?}: {missing:?} not in: {stderr}"))
}

#[test]
fn every_bad_file_exits_2_naming_file_line_and_field() {
    let mut failures = Vec::new();
    for &(text, line, field, extra) in FILE_CASES {
        let text = text.replace("{L}", L);
        let file = ConfigFile::new(&text);
        let mut want = vec![
            format!("{}:{line}:", file.arg()),
            format!("field `{field}`"),
        ];
        want.extend(extra.iter().map(|s| s.to_string()));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        if let Some(f) = check(&["run", "--config", file.arg(), "--check"], &want) {
            failures.push(format!("{text:?}\n  {f}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} file cases failed:\n{}",
        failures.len(),
        FILE_CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn every_bad_flag_exits_2_naming_the_flag() {
    let two = ConfigFile::new(&format!("{L}{L}"));
    let several: &[&str] = &["run", "--config", two.arg(), "--upstream", "b:2", "--check"];
    let mut failures = Vec::new();
    for &(extra, want) in RUN_FLAG_CASES {
        let mut args = vec![
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--check",
        ];
        args.extend_from_slice(extra);
        failures.extend(check(&args, want));
    }
    for &(args, want) in OTHER_FLAG_CASES {
        failures.extend(check(args, want));
    }
    failures.extend(check(several, &["--upstream", "several"]));
    assert!(
        failures.is_empty(),
        "{} flag case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_cases_are_not_vacuous() {
    // The valid listener and flags on their own pass: each case fails for
    // its own reason.
    let file = ConfigFile::new(L);
    let out = run(&["run", "--config", file.arg(), "--check"], T);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--check",
        ],
        T,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
