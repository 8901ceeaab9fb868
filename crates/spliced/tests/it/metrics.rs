//! `/metrics` after traffic: the proxy's counters by listener, direction
//! and copy method, upstream connect failures, and every pool statistic.

use crate::util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};

use crate::util::{connect, dead_addr, http_get, read_line, tag_server, ConfigFile, Proc};

/// Every `PoolStats` field, as exported.
const POOL_METRICS: [&str; 16] = [
    "pipepool_live ",
    "pipepool_idle ",
    "pipepool_in_use ",
    "pipepool_created_total ",
    "pipepool_closed_idle_total ",
    "pipepool_closed_dirty_total ",
    "pipepool_closed_overflow_total ",
    "pipepool_closed_shutdown_total ",
    "pipepool_gets_local_total ",
    "pipepool_gets_shared_total ",
    "pipepool_gets_new_total ",
    "pipepool_gets_refused_total ",
    "pipepool_gets_failed_total ",
    "pipepool_capacity_bytes ",
    "pipepool_undersized ",
    "pipepool_resize_failures_total ",
];

/// The value of the sample line starting with `prefix`.
fn value(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Where `proc` serves `/metrics`, from the line it logs at start.
fn metrics_addr(proc: &mut Proc) -> SocketAddr {
    let line = proc.wait_for_line("metrics on http://");
    line.split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .parse()
        .unwrap()
}

/// The sum of the sample lines starting with `prefix` (e.g. one direction's
/// bytes over both copy methods).
fn sum(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends `n` bytes through and reads the tag plus their echo.
fn exchange(proxy: SocketAddr, n: usize) {
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
    let data = vec![b'x'; n];
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), n);
}

#[test]
fn metrics_after_traffic() {
    let up = tag_server("UP");
    let dead = dead_addr();
    let config = ConfigFile::new(&format!(
        "metrics = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"z\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{dead}\", \"{up}\"]\ncopy = \"splice\"\n\
         [[listener]]\nname = \"u\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\ncopy = \"userspace\"\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addrs = proc.listen_addrs(2);
    let metrics = metrics_addr(&mut proc);

    exchange(addrs[0], 100_000); // first try: the dead upstream, then UP
    exchange(addrs[0], 100_000);
    exchange(addrs[1], 50_000);

    // A connection's task updates the counters after its client saw EOF:
    // wait until every connection of both listeners has been accounted.
    let body = util::eventually("the byte counters", || {
        let (status, body) = http_get(metrics, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let up = value(&body, "spliced_bytes_total{listener=\"u\",direction=\"client_to_upstream\",method=\"userspace\"}");
        let active = |l: &str| {
            value(
                &body,
                &format!("spliced_connections_active{{listener=\"{l}\"}}"),
            )
        };
        (up == Some(50_000.0) && active("z") == Some(0.0) && active("u") == Some(0.0))
            .then_some(body)
    });
    let sample =
        |prefix: &str| value(&body, prefix).unwrap_or_else(|| panic!("no {prefix} in:\n{body}"));
    assert_eq!(sample("spliced_connections_total{listener=\"z\"}"), 2.0);
    assert_eq!(sample("spliced_connections_total{listener=\"u\"}"), 1.0);
    assert_eq!(sample("spliced_connections_active{listener=\"z\"}"), 0.0);
    assert_eq!(
        sample("spliced_connections_refused_total{listener=\"z\"}"),
        0.0
    );
    // A splice listener splices a connection's bursts; bytes that arrive
    // with the peer's FIN end through one `recv` (which tells the end of
    // file past any TCP urgent mark), so the tail may count as userspace.
    let both = |dir: &str| {
        let at = |m: &str| {
            value(
                &body,
                &format!(
                    "spliced_bytes_total{{listener=\"z\",direction=\"{dir}\",method=\"{m}\"}}"
                ),
            )
            .unwrap_or(0.0)
        };
        (at("splice"), at("splice") + at("userspace"))
    };
    let (spliced, total) = both("client_to_upstream");
    assert!(spliced > 0.0 && total == 200_000.0, "{spliced} {total}");
    let (spliced, total) = both("upstream_to_client");
    // Two tags "UP\n" and the echoes.
    assert!(spliced > 0.0 && total == 200_006.0, "{spliced} {total}");
    assert_eq!(
        sample("spliced_bytes_total{listener=\"u\",direction=\"upstream_to_client\",method=\"userspace\"}"),
        50_003.0
    );
    assert_eq!(
        sample(&format!(
            "spliced_upstream_connect_failures_total{{listener=\"z\",upstream=\"{dead}\",reason=\"refused\"}}"
        )),
        1.0
    );
    assert_eq!(
        sample("spliced_connections_closed_total{listener=\"z\",outcome=\"ok\"}"),
        2.0
    );
    for name in POOL_METRICS {
        assert!(
            body.lines().any(|l| l.starts_with(name)),
            "no {name} in:\n{body}"
        );
    }
    assert!(
        sample("pipepool_created_total ") >= 1.0,
        "splice used no pipe:\n{body}"
    );
    assert!(
        body.contains("# TYPE pipepool_created_total counter"),
        "{body}"
    );
    assert!(body.contains("# TYPE pipepool_live gauge"), "{body}");

    let (status, _) = http_get(metrics, "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

/// A connection's bytes are in `spliced_bytes_total` while it is still
/// open, not only after it closes.
#[test]
fn bytes_are_counted_while_the_connection_runs() {
    let up = tag_server("UP");
    let config = ConfigFile::new(&format!(
        "metrics = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"live\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addr = proc.listen_addr();
    let metrics = metrics_addr(&mut proc);
    let mut s = connect(addr);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
    for round in 1..=2u32 {
        let data = vec![b'x'; 300_000];
        s.write_all(&data).unwrap();
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).unwrap();
        let (to_up, to_client) = (
            300_000.0 * f64::from(round),
            300_000.0 * f64::from(round) + 3.0,
        );
        util::eventually("the live byte counters", || {
            let (_, body) = http_get(metrics, "/metrics");
            let got = (
                sum(
                    &body,
                    "spliced_bytes_total{listener=\"live\",direction=\"client_to_upstream\"",
                ),
                sum(
                    &body,
                    "spliced_bytes_total{listener=\"live\",direction=\"upstream_to_client\"",
                ),
            );
            assert!(got.0 <= to_up && got.1 <= to_client, "{got:?}:\n{body}");
            (got == (to_up, to_client)).then_some(())
        });
        // Counted while the connection is open.
        let (_, body) = http_get(metrics, "/metrics");
        assert_eq!(
            value(&body, "spliced_connections_active{listener=\"live\"}"),
            Some(1.0),
            "{body}"
        );
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

/// `spliced_upstream_healthy`: 0 for an upstream backing off after failed
/// connects, 1 for one in turn.
#[test]
fn upstream_health_is_exported() {
    let up = tag_server("UP");
    let dead = dead_addr();
    let config = ConfigFile::new(&format!(
        "metrics = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"bad\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{dead}\"]\n\
         [[listener]]\nname = \"good\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addrs = proc.listen_addrs(2);
    let metrics = metrics_addr(&mut proc);
    let healthy = |body: &str, listener: &str, upstream: &str| {
        value(
            body,
            &format!("spliced_upstream_healthy{{listener=\"{listener}\",group=\"default\",upstream=\"{upstream}\"}}"),
        )
    };
    let (_, body) = http_get(metrics, "/metrics");
    assert_eq!(
        healthy(&body, "bad", &dead.to_string()),
        Some(1.0),
        "{body}"
    );
    // Three clients, three refusals in a row: the dead upstream backs off
    // for 1 s, then 2, then 4 from the third.
    for _ in 0..3 {
        let mut s = connect(addrs[0]);
        let mut buf = [0u8; 8];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "no upstream: closed");
    }
    let body = util::eventually("three refusals counted", || {
        let (_, body) = http_get(metrics, "/metrics");
        let refused = format!(
            "spliced_upstream_connect_failures_total{{listener=\"bad\",upstream=\"{dead}\",reason=\"refused\"}}"
        );
        (value(&body, &refused) == Some(3.0)).then_some(body)
    });
    assert_eq!(
        healthy(&body, "bad", &dead.to_string()),
        Some(0.0),
        "{body}"
    );
    assert_eq!(healthy(&body, "good", &up.to_string()), Some(1.0), "{body}");
}
