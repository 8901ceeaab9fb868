//! Upstream host names are resolved when the config is loaded and again
//! in the background every `dns_ttl`, never once per connection: counted
//! by `spliced_dns_lookups_total`, with "localhost" upstreams.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use crate::util::{connect, http_get, read_line, tag_server, ConfigFile, Proc};

fn lookups(metrics: SocketAddr, result: &str) -> f64 {
    let (_, body) = http_get(metrics, "/metrics");
    let prefix = format!("spliced_dns_lookups_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{body}"))
}

fn start(ttl: &str, upstream: &str) -> (Proc, SocketAddr, SocketAddr) {
    let config = ConfigFile::new(&format!(
        "metrics = \"127.0.0.1:0\"\ndns_ttl = \"{ttl}\"\n\
         [[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let proxy = proc.listen_addr();
    let metrics = proc
        .wait_for_line("metrics on http://")
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .parse()
        .unwrap();
    // The file is read at start only (no reload here).
    drop(config);
    (proc, proxy, metrics)
}

#[test]
fn names_resolve_once_at_load_not_per_connection() {
    let up = tag_server("UP");
    let (_proc, proxy, metrics) = start("1h", &format!("localhost:{}", up.port()));
    assert_eq!(lookups(metrics, "ok"), 1.0);
    for _ in 0..30 {
        let mut s = connect(proxy);
        assert_eq!(read_line(&mut s).unwrap(), "UP");
    }
    assert_eq!(lookups(metrics, "ok"), 1.0, "a lookup per connection?");
    assert_eq!(lookups(metrics, "error"), 0.0);
}

#[test]
fn names_are_resolved_again_every_ttl() {
    let up = tag_server("UP");
    let (_proc, proxy, metrics) = start("200ms", &format!("localhost:{}", up.port()));
    thread::sleep(Duration::from_millis(1500));
    let n = lookups(metrics, "ok");
    assert!(
        (4.0..=10.0).contains(&n),
        "{n} lookups in 1.5 s at a 200 ms TTL"
    );
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
}

#[test]
fn ip_upstreams_are_never_looked_up() {
    let up = tag_server("UP");
    let (_proc, proxy, metrics) = start("100ms", &up.to_string());
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(lookups(metrics, "ok") + lookups(metrics, "error"), 0.0);
}
