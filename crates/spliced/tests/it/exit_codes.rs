//! Through the real binary: a bad config file or flag exits with code 2
//! and says where (the cases are unit tests of `config::load` and of the
//! command line); a runtime failure such as an address in use exits 1.

use std::net::TcpListener;
use std::time::Duration;

use crate::util::{run, ConfigFile};

const T: Duration = Duration::from_secs(20);

#[test]
fn a_bad_file_exits_2_with_file_line_column_and_field() {
    let file = ConfigFile::new(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\nbalance = \"random\"\n",
    );
    let out = run(&["run", "--config", file.arg()], T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "spliced: config error: {}:4:11: field `listener[0].balance`: ",
        file.arg()
    );
    assert!(stderr.contains(&want), "expected {want:?} in: {stderr}");
    assert!(stderr.contains("round-robin"), "{stderr}");
}

#[test]
fn a_missing_file_and_bad_flags_exit_2() {
    let out = run(&["run", "--config", "/nonexistent/spliced.toml"], T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/spliced.toml"), "{stderr}");
    for (args, want) in [
        (&["run", "--listen", "127.0.0.1:0"][..], "--upstream"),
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
            "invalid value '-3' for '--max-conns <N>'",
        ),
    ] {
        let out = run(args, T);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: expected {want} in: {stderr}"
        );
    }
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
