//! What a benchmark run found: [`StreamReport`] and [`ConnectReport`], as a
//! table for people or JSON for scripts.

use std::time::Duration;

use serde::Serialize;

use super::options::{ConnectOptions, StreamOptions};
use crate::config::units::format_size;

/// Distinct error messages kept per report.
const MAX_SAMPLES: usize = 5;

/// Errors seen, with a few distinct messages.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Failures {
    /// Failed connections or exchanges.
    pub(crate) errors: u64,
    /// Of those, the ones whose bytes came back wrong.
    pub(crate) mismatches: u64,
    /// Up to [`MAX_SAMPLES`] distinct messages.
    pub(crate) samples: Vec<String>,
}

impl Failures {
    /// Counts one failure.
    pub(crate) fn add(&mut self, message: &str, mismatch: bool) {
        self.errors += 1;
        self.mismatches += u64::from(mismatch);
        if self.samples.len() < MAX_SAMPLES && !self.samples.iter().any(|s| s == message) {
            self.samples.push(message.to_owned());
        }
    }

    /// Adds another set.
    pub(crate) fn merge(&mut self, other: Failures) {
        self.errors += other.errors;
        self.mismatches += other.mismatches;
        for s in other.samples {
            if self.samples.len() < MAX_SAMPLES && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }
}

/// How the bytes of a stream run were checked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verification {
    /// Not checked (the server sent nothing back).
    #[default]
    None,
    /// Every echoed byte compared with what was sent.
    Echo,
    /// The sink's byte count compared with what was sent.
    Count,
}

/// A stream-mode run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StreamReport {
    /// The endpoint.
    pub(crate) target: String,
    /// Connections.
    pub(crate) conns: usize,
    /// One-way (sink) or echo.
    pub(crate) oneway: bool,
    /// Measured wall time, seconds.
    pub(crate) seconds: f64,
    /// Bytes written by the clients.
    pub(crate) bytes_sent: u64,
    /// Bytes read back (echo mode).
    pub(crate) bytes_received: u64,
    /// `bytes_sent` as Gbit/s.
    pub(crate) send_gbps: f64,
    /// `bytes_received` as Gbit/s.
    pub(crate) receive_gbps: f64,
    /// How the bytes were checked.
    pub(crate) verified: Verification,
    /// What went wrong.
    pub(crate) failures: Failures,
}

impl StreamReport {
    /// A report from the totals.
    pub(crate) fn new(
        opts: &StreamOptions,
        elapsed: Duration,
        sent: u64,
        received: u64,
        verified: Verification,
        failures: Failures,
    ) -> StreamReport {
        let secs = elapsed.as_secs_f64().max(1e-9);
        StreamReport {
            target: opts.target.to_string(),
            conns: opts.conns,
            oneway: opts.oneway,
            seconds: secs,
            bytes_sent: sent,
            bytes_received: received,
            send_gbps: gbps(sent, secs),
            receive_gbps: gbps(received, secs),
            verified,
            failures,
        }
    }

    /// The table for people.
    pub(crate) fn table(&self) -> String {
        let check = match self.verified {
            Verification::Echo => "every echoed byte checked",
            Verification::Count => "sink byte count checked",
            Verification::None => "not verified (the server answered nothing)",
        };
        let mut t = format!(
            "stream x{} -> {}, {:.2} s, {}, {check}\n",
            self.conns,
            self.target,
            self.seconds,
            if self.oneway { "one way" } else { "echo" }
        );
        t += &format!(
            "  sent      {:>12}  {:>8.2} Gbit/s\n",
            format_size(self.bytes_sent),
            self.send_gbps
        );
        if !self.oneway {
            t += &format!(
                "  received  {:>12}  {:>8.2} Gbit/s\n",
                format_size(self.bytes_received),
                self.receive_gbps
            );
        }
        t + &failure_lines(&self.failures)
    }
}

/// A connect-mode run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConnectReport {
    /// The endpoint.
    pub(crate) target: String,
    /// Concurrent clients.
    pub(crate) conns: usize,
    /// Bytes each way per connection.
    pub(crate) size: usize,
    /// Measured wall time, seconds.
    pub(crate) seconds: f64,
    /// Exchanges completed and verified.
    pub(crate) connections: u64,
    /// `connections` per second.
    pub(crate) conns_per_sec: f64,
    /// Latency of one exchange (connect to last byte back), microseconds.
    pub(crate) latency_us: Latency,
    /// What went wrong.
    pub(crate) failures: Failures,
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Latency {
    /// Median.
    pub(crate) p50: u32,
    /// 99th percentile.
    pub(crate) p99: u32,
    /// Slowest.
    pub(crate) max: u32,
    /// Mean.
    pub(crate) mean: f64,
}

impl Latency {
    /// Percentiles of `samples` (sorted here).
    pub(crate) fn of(samples: &mut [u32]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: samples[samples.len() - 1],
            mean: samples.iter().map(|&s| f64::from(s)).sum::<f64>() / samples.len() as f64,
        }
    }
}

impl ConnectReport {
    /// A report from the samples.
    pub(crate) fn new(
        opts: &ConnectOptions,
        elapsed: Duration,
        mut latencies_us: Vec<u32>,
        failures: Failures,
    ) -> ConnectReport {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let connections = latencies_us.len() as u64;
        ConnectReport {
            target: opts.target.to_string(),
            conns: opts.conns,
            size: opts.size,
            seconds: secs,
            connections,
            conns_per_sec: connections as f64 / secs,
            latency_us: Latency::of(&mut latencies_us),
            failures,
        }
    }

    /// The table for people.
    pub(crate) fn table(&self) -> String {
        let ms = |us: u32| f64::from(us) / 1000.0;
        let mut t = format!(
            "connect x{} -> {}, {} each way, {:.2} s, every echoed byte checked\n",
            self.conns,
            self.target,
            format_size(self.size as u64),
            self.seconds
        );
        t += &format!(
            "  connections {:>10}  {:>10.1} conn/s\n",
            self.connections, self.conns_per_sec
        );
        t += &format!(
            "  latency     p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms\n",
            ms(self.latency_us.p50),
            ms(self.latency_us.p99),
            ms(self.latency_us.max)
        );
        t + &failure_lines(&self.failures)
    }
}

fn failure_lines(f: &Failures) -> String {
    let mut t = format!(
        "  errors    {} ({} with wrong bytes)\n",
        f.errors, f.mismatches
    );
    for s in &f.samples {
        t += &format!("    error: {s}\n");
    }
    t
}

/// Bytes over seconds as Gbit/s.
pub(crate) fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        let l = Latency::of(&mut v);
        assert_eq!((l.p50, l.p99, l.max), (50, 99, 100));
        assert!((l.mean - 50.5).abs() < 1e-9);
        assert_eq!(Latency::of(&mut [7]).p99, 7);
    }

    #[test]
    fn failures_keep_distinct_samples() {
        let mut f = Failures::default();
        f.add("a", false);
        f.add("a", true);
        f.add("b", false);
        assert_eq!((f.errors, f.mismatches, f.samples.len()), (3, 1, 2));
    }
}
