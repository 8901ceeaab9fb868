//! Defaults that fit the fd limit: spliced raises its soft limit first,
//! then sizes the default `max_conns` and `max_pipes` to the raised limit,
//! so a default start is silent (no warning) and, under a low limit, every
//! connection it admits is served (the bound is `max_conns`, not EMFILE).

use crate::util;

use std::time::Duration;

use crate::util::{connect, read_line, tag_server, Proc};

/// `NAME N` in `text` (the first one), as a number.
fn number_after(text: &str, name: &str) -> usize {
    text.split(&format!("{name} "))
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{name} N` in: {text}"))
}

/// `--check` under `ulimit -n nofile` (soft and hard): (max_conns of the
/// only listener, max_pipes).
fn checked_defaults(nofile: u32) -> (usize, usize) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(util::BIN)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
        ])
        .arg("--check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    (
        number_after(&stdout, "max_conns"),
        number_after(&stdout, "max_pipes"),
    )
}

#[test]
fn a_default_start_is_silent() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.to_string(),
    ]);
    let proxy = proc.listen_addr();
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    let stderr = proc.stderr();
    assert!(
        !stderr.contains("WARN"),
        "a default start warned:\n{stderr}"
    );
    assert!(!stderr.contains("above the fd limit"), "{stderr}");
}

#[test]
fn defaults_shrink_with_the_limit_and_fit() {
    for nofile in [64u32, 256, 1024, 20_000] {
        let (conns, pipes) = checked_defaults(nofile);
        // 2 fds per connection, 2 per pipe, and room for the rest.
        let need = 2 * conns + 2 * pipes;
        assert!(
            need + 16 <= nofile as usize,
            "ulimit -n {nofile}: max_conns {conns} + max_pipes {pipes} need {need} fds"
        );
        assert!(conns >= 8 && pipes >= 2, "{nofile}: {conns} {pipes}");
    }
    let (small, _) = checked_defaults(1024);
    let (large, _) = checked_defaults(20_000);
    assert!(small < large && large <= 10_000, "{small} {large}");
}

/// Under `ulimit -n 256` with default settings: the start says what it
/// chose and warns about nothing; `max_conns` connections are all served
/// and the next is refused by `max_conns`, never by EMFILE.
#[test]
fn a_low_limit_is_filled_to_max_conns_without_emfile() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn_with_fd_limit(
        256,
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.to_string(),
        ],
    );
    let proxy = proc.listen_addr();
    let stderr = proc.stderr();
    let told = util::eventually("the line about the fd limit", || {
        let e = proc.stderr();
        e.contains("fd limit 256: defaults sized to fit")
            .then_some(e)
    });
    let max_conns = number_after(&told, "max_conns");
    let mut held = Vec::new();
    for i in 0..max_conns {
        let mut s = connect(proxy);
        let tag = read_line(&mut s).unwrap_or_else(|e| {
            panic!(
                "connection {i} of {max_conns} not served: {e}\n{}",
                proc.stderr()
            )
        });
        assert_eq!(tag, "UP");
        held.push(s);
    }
    // One more: refused by max_conns (closed at once, no tag).
    let mut extra = connect(proxy);
    assert!(read_line(&mut extra).is_err());
    let stderr = format!("{stderr}{}", proc.stderr());
    assert!(
        stderr.contains("max_conns") && !stderr.contains("Too many open files"),
        "{stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("fd limit")),
        "{stderr}"
    );
    // And the held connections still forward.
    for s in held.iter_mut().step_by(10) {
        use std::io::Write;
        s.write_all(b"ping\n").unwrap();
        assert_eq!(read_line(s).unwrap(), "ping");
    }
}
