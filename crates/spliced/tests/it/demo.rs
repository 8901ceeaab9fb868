//! `spliced demo --small` runs on its own and prints its table.

use crate::util;

use std::time::Duration;

#[test]
fn demo_small_prints_its_table() {
    let out = util::run(&["demo", "--small"], Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for needle in [
        "Gbit/s",
        "CPU s/GB",
        "CPU us/conn",
        "the proxy's CPU per GB",
        "conn/s",
        "p99 ms",
        "created",
        "reused",
        "closed idle",
        "closed dirty",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name) && l.contains("MiB"))
            .unwrap_or_else(|| panic!("no {name} row in:\n{stdout}"))
            .to_owned()
    };
    for name in ["splice ", "userspace "] {
        let line = row(name);
        let cells: Vec<&str> = line.split_whitespace().collect();
        let gbps: f64 = cells[1].parse().unwrap();
        let cpu_per_gb: f64 = cells[2].parse().unwrap();
        let errors: u64 = cells.last().unwrap().parse().unwrap();
        assert!(gbps > 0.0, "{stdout}");
        // The proxy's thread did the forwarding: it used some CPU, and less
        // than one core and a half (it is one thread; the whole process would
        // show about two).
        assert!(
            cpu_per_gb > 0.0 && cpu_per_gb * gbps / 8.0 < 1.5,
            "{stdout}"
        );
        assert_eq!(errors, 0, "{stdout}");
    }
    // The splice run used the pool: at least one pipe created.
    let pool_row = stdout
        .lines()
        .skip_while(|l| !l.contains("created"))
        .find(|l| l.starts_with("splice "))
        .unwrap_or_else(|| panic!("no pool row for splice in:\n{stdout}"));
    let created: u64 = pool_row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(created >= 1, "{stdout}");
}
