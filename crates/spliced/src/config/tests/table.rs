//! Malformed config files, as a table: each case makes [`load`] (or the
//! user lookup after it) fail with a message that names `FILE:LINE:` and
//! the field. (The cases of `errors.rs` are not repeated here; the flags'
//! table is in `cli.rs`.)

use super::{run_args, FILE};

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

/// `spliced run --config FILE --check` on `text`: the error's text, or
/// `None` if it passes.
pub(super) fn error_of(text: &str) -> Option<String> {
    let args = run_args(&["--config", FILE, "--check"]).expect("flags parse");
    crate::run::check_text(text, &args)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn every_bad_file_names_file_line_and_field() {
    let mut failures = Vec::new();
    for &(text, line, field, extra) in FILE_CASES {
        let text = text.replace("{L}", L);
        let mut want = vec![format!("{FILE}:{line}:"), format!("field `{field}`")];
        want.extend(extra.iter().map(|s| s.to_string()));
        match error_of(&text) {
            None => failures.push(format!("{text:?}: passes")),
            Some(e) => {
                let missing: Vec<&String> =
                    want.iter().filter(|w| !e.contains(w.as_str())).collect();
                if !missing.is_empty() {
                    failures.push(format!("{text:?}\n  {missing:?} not in: {e}"));
                }
            }
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
fn the_cases_are_not_vacuous() {
    // The valid listener on its own passes: each case fails for its own
    // reason.
    assert_eq!(error_of(L), None);
}
