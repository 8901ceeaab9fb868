//! The PROXY protocol, access and SNI settings in the config file and as
//! flags: `--check` prints them, and a bad one exits with code 2 naming
//! the file, line and field (or the flag).

use std::time::Duration;

use crate::util::{run, ConfigFile};

const T: Duration = Duration::from_secs(20);

const LISTENER: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\n";

/// Runs `spliced run --config FILE ARGS --check`; returns (exit code,
/// stdout, stderr).
fn check(text: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let file = ConfigFile::new(text);
    let mut all = vec!["run", "--config", file.arg()];
    all.extend_from_slice(args);
    all.push("--check");
    let out = run(&all, T);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stderr = stderr.replace(file.arg(), "FILE");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn check_prints_every_setting() {
    let (code, out, err) = check(
        &format!(
            "{LISTENER}send_proxy = \"v2\"\naccept_proxy = true\nproxy_timeout = \"750ms\"\n\
             allow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"10.1.2.3/16\"]\nmax_conns_per_source = 20\n\
             [[listener.route]]\nsni = \"API.example.com\"\nupstreams = [\"10.0.0.5:443\", \"10.0.0.6:443\"]\nbalance = \"least-conn\"\n\
             [[listener.route]]\nsni = \"*.example.com\"\nupstreams = [\"10.0.0.7:443\"]\n"
        ),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "  send_proxy v2",
        "  accept_proxy, proxy_timeout 750ms",
        "  allow [10.0.0.0/8, ::1/128]",
        "  deny [10.1.0.0/16]",
        "  max_conns_per_source 20",
        "  route sni `api.example.com`: least-conn to [10.0.0.5:443, 10.0.0.6:443]",
        "  route sni `*.example.com`: round-robin to [10.0.0.7:443]",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    // Flags replace the file's lists and routes.
    let (code, out, err) = check(
        &format!("{LISTENER}allow = [\"10.0.0.0/8\"]\n"),
        &[
            "--allow",
            "192.0.2.0/24",
            "--send-proxy",
            "v1",
            "--route",
            "a.example=10.0.0.1:443",
            "--route",
            "a.example=10.0.0.2:443",
            "--max-conns-per-source",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "  allow [192.0.2.0/24]",
        "  send_proxy v1",
        "  max_conns_per_source 3",
        "  route sni `a.example`: round-robin to [10.0.0.1:443, 10.0.0.2:443]",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    // Nothing set: no extra lines.
    let (_, out, _) = check(LISTENER, &[]);
    assert!(!out.contains("  "), "{out}");
}

#[test]
fn bad_settings_name_line_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("send_proxy = \"v3\"\n", "FILE:4:", "listener[0].send_proxy"),
        (
            "proxy_timeout = 0\n",
            "FILE:4:",
            "listener[0].proxy_timeout",
        ),
        (
            "allow = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n",
            "FILE:4:",
            "listener[0].allow[1]",
        ),
        (
            "deny = [\"example.com\"]\n",
            "FILE:4:",
            "listener[0].deny[0]",
        ),
        (
            "max_conns_per_source = 0\n",
            "FILE:4:",
            "listener[0].max_conns_per_source",
        ),
        (
            "[[listener.route]]\nsni = \"bad name\"\nupstreams = [\"a:1\"]\n",
            "FILE:5:",
            "listener[0].route[0].sni",
        ),
        (
            "[[listener.route]]\nsni = \"a.example\"\nupstreams = []\n",
            "FILE:6:",
            "listener[0].route[0].upstreams",
        ),
        (
            "[[listener.route]]\nsni = \"a.example\"\nupstreams = [\"nope\"]\n",
            "FILE:6:",
            "listener[0].route[0].upstreams[0]",
        ),
        (
            "[[listener.route]]\nsni = \"a.example\"\nupstreams = [\"a:1\"]\n\
             [[listener.route]]\nsni = \"A.example\"\nupstreams = [\"a:2\"]\n",
            "FILE:8:",
            "listener[0].route[1].sni",
        ),
        (
            "[[listener.route]]\nsni = \"a.*.example\"\nupstreams = [\"a:1\"]\n",
            "FILE:5:",
            "listener[0].route[0].sni",
        ),
    ];
    for (extra, at, field) in cases {
        let (code, _, err) = check(&format!("{LISTENER}{extra}"), &[]);
        assert_eq!(code, Some(2), "{extra}: {err}");
        assert!(err.contains(at), "{extra}: expected {at} in {err}");
        assert!(err.contains(&format!("field `{field}`")), "{extra}: {err}");
    }
    for (flag, value) in [
        ("--allow", "10.0.0.0/99"),
        ("--deny", "nope"),
        ("--route", "no-equals-sign"),
        ("--send-proxy", "v9"),
        ("--max-conns-per-source", "0"),
    ] {
        let (code, _, err) = check(LISTENER, &[flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
    let (code, _, err) = check(LISTENER, &["--route", "bad name=10.0.0.1:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--route"), "{err}");
    let two = format!("{LISTENER}{LISTENER}");
    let (code, _, err) = check(&two, &["--route", "a.example=10.0.0.1:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("single listener"), "{err}");
}
