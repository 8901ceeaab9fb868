//! The PROXY protocol, access and SNI settings in the config file and as
//! flags: `--check` prints them, and a bad one is rejected (exit code 2)
//! naming the file, line and field (or the flag).

use super::{run_args, FILE};

const LISTENER: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\n";

/// `spliced run --config FILE ARGS --check` on `text`: (exit code,
/// `--check`'s output, the error), as the binary would give them.
fn check(text: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["--config", FILE];
    all.extend_from_slice(args);
    all.push("--check");
    let args = match run_args(&all) {
        Ok(args) => args,
        Err(e) => return (Some(e.exit_code()), String::new(), e.to_string()),
    };
    match crate::run::check_text(text, &args) {
        Ok(out) => (Some(0), out, String::new()),
        Err(e) => (Some(2), String::new(), e.to_string()),
    }
}

#[test]
fn check_prints_every_setting() {
    let (code, out, err) = check(
        &format!(
            "{LISTENER}send_proxy = \"v2\"\naccept_proxy = true\nproxy_timeout = \"750ms\"\n\
             accept_proxy_from = [\"192.0.2.0/24\", \"2001:db8::1\"]\n\
             allow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"10.1.2.3/16\"]\nmax_conns_per_source = 20\n\
             [[listener.route]]\nsni = \"API.example.com\"\nupstreams = [\"10.0.0.5:443\", \"10.0.0.6:443\"]\nbalance = \"least-conn\"\n\
             [[listener.route]]\nsni = \"*.example.com\"\nupstreams = [\"10.0.0.7:443\"]\n"
        ),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "  send_proxy v2",
        "  accept_proxy from [192.0.2.0/24, 2001:db8::1/128], proxy_timeout 750ms",
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
        // Any peer could claim any address: accept_proxy names whom to believe.
        (
            "accept_proxy = true\n",
            "FILE:4:",
            "listener[0].accept_proxy_from",
        ),
        (
            "accept_proxy = true\naccept_proxy_from = []\n",
            "FILE:4:",
            "listener[0].accept_proxy_from",
        ),
        (
            "accept_proxy = true\naccept_proxy_from = [\"10.0.0.0/8\", \"balancer\"]\n",
            "FILE:5:",
            "listener[0].accept_proxy_from[1]",
        ),
        (
            "accept_proxy_from = [\"10.0.0.0/8\"]\n",
            "FILE:4:",
            "listener[0].accept_proxy_from",
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
    let (code, _, err) = check(LISTENER, &["--accept-proxy"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--accept-proxy") && err.contains("accept_proxy_from"),
        "{err}"
    );
    let (code, _, err) = check(LISTENER, &["--accept-proxy-from", "10.0.0.0/99"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--accept-proxy-from"), "{err}");
    // The top level's list serves every listener; a listener's own wins.
    let (code, out, err) = check(
        &format!(
            "accept_proxy = true\naccept_proxy_from = [\"192.0.2.1\"]\n{LISTENER}{LISTENER}\
             accept_proxy_from = [\"198.51.100.0/24\"]\n"
        ),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "  accept_proxy from [192.0.2.1/32], proxy_timeout 3s",
        "  accept_proxy from [198.51.100.0/24], proxy_timeout 3s",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    // The flag replaces every listener's list.
    let (code, out, err) = check(
        &format!("{LISTENER}accept_proxy = true\naccept_proxy_from = [\"192.0.2.1\"]\n"),
        &["--accept-proxy-from", "127.0.0.1"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.lines()
            .any(|l| l == "  accept_proxy from [127.0.0.1/32], proxy_timeout 3s"),
        "{out}"
    );
    let (code, _, err) = check(LISTENER, &["--route", "bad name=10.0.0.1:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--route"), "{err}");
    let two = format!("{LISTENER}{LISTENER}");
    let (code, _, err) = check(&two, &["--route", "a.example=10.0.0.1:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("single listener"), "{err}");
}
