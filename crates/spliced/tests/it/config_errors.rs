//! Bad input: a bad config file or flag exits with code 2 and names the
//! file, line and field (or the flag); an address in use exits non-zero
//! with a clear message.

use std::net::TcpListener;
use std::time::Duration;

use crate::util::{run, ConfigFile};

const T: Duration = Duration::from_secs(20);

/// Runs `spliced run --config` on `text`; asserts exit 2 and that stderr
/// names `FILE:LINE:` and the field.
fn rejects(text: &str, line: usize, field: &str) -> String {
    let file = ConfigFile::new(text);
    let out = run(&["run", "--config", file.arg()], T);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let at = format!("{}:{line}:", file.arg());
    assert!(stderr.contains(&at), "expected {at:?} in: {stderr}");
    assert!(
        stderr.contains(&format!("field `{field}`")),
        "expected field `{field}` in: {stderr}"
    );
    stderr
}

const LISTENER: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\n";

#[test]
fn bad_files_name_file_line_and_field() {
    let e = rejects(
        &format!("{LISTENER}balance = \"random\"\n"),
        4,
        "listener[0].balance",
    );
    assert!(e.contains("round-robin"), "{e}");
    rejects("max_conns = \"lots\"\n", 1, "max_conns");
    rejects(
        &format!("{LISTENER}max_con = 5\n"),
        4,
        "listener[0].max_con",
    );
    let e = rejects(
        &format!("# pool\n[pool]\npipe_size = \"2GiB\"\n{LISTENER}"),
        3,
        "pool.pipe_size",
    );
    assert!(e.contains("largest pipe size"), "{e}");
    let twice = "[[listener]]\nlisten = \"127.0.0.1:7777\"\nupstreams = [\"a:1\"]\n";
    let e = rejects(&format!("{twice}{twice}"), 5, "listener[1].listen");
    assert!(e.contains("already"), "{e}");
    rejects(
        &format!("{LISTENER}[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"no-port\"]\n"),
        6,
        "listener[1].upstreams[0]",
    );
    rejects(
        &format!("idle_timeout = \"5 parsecs\"\n{LISTENER}"),
        1,
        "idle_timeout",
    );
    rejects(
        &format!("{LISTENER}connect_timeout = 0\n"),
        4,
        "listener[0].connect_timeout",
    );
    rejects(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = []\n",
        3,
        "listener[0].upstreams",
    );
    rejects(
        &format!("[pool]\nmax_pipes = 0\n{LISTENER}"),
        2,
        "pool.max_pipes",
    );
    let e = rejects("metrics = \"127.0.0.1:9100\n", 1, "metrics");
    assert!(
        e.contains("TOML") || e.contains("string") || e.contains("newline"),
        "{e}"
    );
}

#[test]
fn a_missing_file_and_bad_flags_exit_2() {
    let out = run(&["run", "--config", "/nonexistent/spliced.toml"], T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/spliced.toml"), "{stderr}");

    for (args, flag) in [
        (
            &["run", "--listen", "nowhere", "--upstream", "a:1"][..],
            "--listen",
        ),
        (
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "a:1",
                "--idle-timeout",
                "5 parsecs",
            ],
            "--idle-timeout",
        ),
        (
            &["run", "--listen", "127.0.0.1:0", "--upstream", "a"],
            "--upstream",
        ),
        (&["run", "--listen", "127.0.0.1:0"], "--upstream"),
        (
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "a:1",
                "--max-conns",
                "0",
            ],
            "--max-conns",
        ),
        (
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "a:1",
                "--max-conns",
                "-3",
            ],
            "invalid value '-3' for '--max-conns <N>': `-3`: must be a whole number of at least 1",
        ),
        (
            &["bench", "--target", "127.0.0.1:9", "--conns", "-1"],
            "invalid value '-1' for '--conns <N>'",
        ),
        (
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "a:1",
                "--idle-timeout",
                "-5s",
            ],
            "invalid value '-5s' for '--idle-timeout <DURATION>'",
        ),
        (
            &["bench", "--target", "127.0.0.1:9", "--duration", "-1s"],
            "invalid value '-1s' for '--duration <SECS>'",
        ),
        (&["run"], "--listen"),
        (&["bench", "--mode", "stream"], "--target"),
    ] {
        let out = run(args, T);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?}: expected {flag} in: {stderr}"
        );
    }
}

#[test]
fn flags_override_the_file_and_check_prints_the_result() {
    let file = ConfigFile::new(&format!("max_conns = 5\n{LISTENER}copy = \"userspace\"\n"));
    let out = run(
        &[
            "run",
            "--config",
            file.arg(),
            "--check",
            "--max-conns",
            "7",
            "--copy",
            "splice",
        ],
        T,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(
        stdout.contains("max_conns 7") && stdout.contains("copy splice"),
        "{stdout}"
    );
}

#[test]
fn addresses_in_use_fail_clearly() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["run", "--listen", &addr, "--upstream", "127.0.0.1:9"], T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");

    let out = run(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--metrics",
            &addr,
        ],
        T,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}")),
        "{stderr}"
    );

    let out = run(&["bench", "--serve", &addr], T);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spliced.example.toml");
    let out = run(&["run", "--config", path, "--check"], T);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("listener `web`") && stdout.contains("listener `db`"),
        "{stdout}"
    );
}
