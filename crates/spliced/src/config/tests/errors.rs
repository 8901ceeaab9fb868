//! Bad files name the file, line and field; flags override the file and
//! `--check` shows the result; the shipped example is valid.

use super::table::error_of;
use super::{run_args, FILE};

const LISTENER: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\n";

/// Asserts that `text` is rejected at `FILE:LINE:` naming `field`;
/// returns the message.
fn rejects(text: &str, line: usize, field: &str) -> String {
    let e = error_of(text).unwrap_or_else(|| panic!("{text:?} passes"));
    let at = format!("{FILE}:{line}:");
    assert!(e.contains(&at), "expected {at:?} in: {e}");
    assert!(
        e.contains(&format!("field `{field}`")),
        "expected field `{field}` in: {e}"
    );
    e
}

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
fn errors_give_line_and_column() {
    let e = error_of(&format!("[pool]\nmax_pipes = 0\n{LISTENER}")).unwrap();
    assert!(e.starts_with("FILE:2:13: field `pool.max_pipes`: "), "{e}");
    let e = error_of(&format!("{LISTENER}balance = \"random\"\n")).unwrap();
    assert!(
        e.starts_with("FILE:4:11: field `listener[0].balance`: "),
        "{e}"
    );
}

#[test]
fn flags_override_the_file_and_check_prints_the_result() {
    let args = run_args(&[
        "--config",
        FILE,
        "--check",
        "--max-conns",
        "7",
        "--copy",
        "splice",
    ])
    .unwrap();
    let out = crate::run::check_text(
        &format!("max_conns = 5\n{LISTENER}copy = \"userspace\"\n"),
        &args,
    )
    .unwrap();
    assert!(out.contains("configuration OK"), "{out}");
    assert!(
        out.contains("max_conns 7") && out.contains("copy splice"),
        "{out}"
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let text = include_str!("../../../spliced.example.toml");
    let args = run_args(&["--config", "spliced.example.toml", "--check"]).unwrap();
    let out = crate::run::check_text(text, &args).unwrap();
    assert!(
        out.contains("listener `web`") && out.contains("listener `db`"),
        "{out}"
    );
}
