//! `spliced bench` against `spliced bench --serve`: stream and connect
//! modes, direct and through the proxy, JSON and table output; wrong bytes
//! are reported as errors.

use crate::util;

use std::net::SocketAddr;
use std::time::Duration;

use crate::util::{run, Proc};

const T: Duration = Duration::from_secs(60);

fn server(mode: &str) -> (Proc, SocketAddr) {
    let mut p = Proc::spawn(&["bench", "--serve", "127.0.0.1:0", mode]);
    let addr = p.listen_addr();
    (p, addr)
}

fn json(args: &[&str]) -> (serde_json::Value, i32) {
    let out = run(args, T);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: not JSON:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().unwrap_or(-1))
}

#[test]
fn stream_and_connect_against_the_embedded_server_and_through_spliced() {
    let (_echo, echo) = server("--echo");
    let (_sink, sink) = server("--sink");
    let target = echo.to_string();

    let (v, code) = json(&[
        "bench",
        "--target",
        &target,
        "--mode",
        "stream",
        "--conns",
        "2",
        "--duration",
        "0.5",
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["mode"], "stream");
    assert_eq!(v["verified"], "echo");
    assert_eq!(v["failures"]["errors"], 0);
    assert!(v["bytes_sent"].as_u64().unwrap() > 0);
    assert_eq!(v["bytes_sent"], v["bytes_received"]);

    let (v, code) = json(&[
        "bench",
        "--target",
        &sink.to_string(),
        "--oneway",
        "--size",
        "3MiB",
        "--duration",
        "10s",
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["verified"], "count");
    assert_eq!(v["bytes_sent"], 3 << 20);

    let (v, code) = json(&[
        "bench",
        "--target",
        &target,
        "--mode",
        "connect",
        "--conns",
        "4",
        "--size",
        "2000",
        "--duration",
        "0.5",
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["mode"], "connect");
    assert!(v["connections"].as_u64().unwrap() > 0);
    assert!(v["latency_us"]["p99"].as_u64().unwrap() >= v["latency_us"]["p50"].as_u64().unwrap());

    // Through spliced, with the table output.
    let mut proxy = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &target,
        "--log-level",
        "warn",
    ]);
    let via = proxy.listen_addr().to_string();
    for mode in ["stream", "connect"] {
        let out = run(
            &[
                "bench",
                "--target",
                &via,
                "--mode",
                mode,
                "--conns",
                "2",
                "--duration",
                "0.5",
            ],
            T,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(if mode == "stream" { "Gbit/s" } else { "conn/s" }),
            "{stdout}"
        );
        assert!(
            stdout.contains("errors    0 (0 with wrong bytes)"),
            "{stdout}"
        );
    }
}

#[test]
fn wrong_bytes_and_dead_targets_are_errors() {
    // An echo client against a sink gets 8 count bytes instead of its echo.
    let (_sink, sink) = server("--sink");
    let (v, code) = json(&[
        "bench",
        "--target",
        &sink.to_string(),
        "--size",
        "100000",
        "--duration",
        "5s",
        "--json",
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["failures"]["mismatches"], 1, "{v}");

    let dead = util::dead_addr().to_string();
    let out = run(
        &[
            "bench",
            "--target",
            &dead,
            "--mode",
            "connect",
            "--conns",
            "1",
            "--duration",
            "0.2",
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused"));
}
