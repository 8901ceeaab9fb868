//! Helpers shared by the fault-injection tests (`faults.rs`,
//! `faults_fdlimit.rs`, `unprivileged.rs`): a seeded RNG, per-connection
//! byte patterns and their check, `/metrics` scraping, and the child's fds
//! and CPU time from `/proc`.
#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};

/// SplitMix64: small, fast, and the same sequence everywhere for a seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// The SplitMix64 finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `index` of byte stream `stream`: every stream is its own
/// pseudo-random sequence, so a byte of one stream found at a position of
/// another is caught.
pub(crate) fn word(stream: u64, index: u64) -> u64 {
    mix(stream.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ mix(index ^ 0x5851_F42D_4C95_7F2D))
}

/// The byte stream a client sends on connection `id`.
pub(crate) fn up_stream(id: u64) -> u64 {
    id << 1
}

/// The byte stream the upstream sends back on connection `id`.
pub(crate) fn down_stream(id: u64) -> u64 {
    (id << 1) | 1
}

/// Fills `buf` with bytes `offset..offset + buf.len()` of `stream`.
pub(crate) fn fill(stream: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut rest = buf;
    // Up to the next word boundary.
    let head = ((8 - pos % 8) % 8).min(rest.len() as u64) as usize;
    if head > 0 {
        let w = word(stream, pos / 8).to_le_bytes();
        let start = (pos % 8) as usize;
        rest[..head].copy_from_slice(&w[start..start + head]);
        rest = &mut rest[head..];
        pos += head as u64;
    }
    let mut index = pos / 8;
    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(stream, index).to_le_bytes());
        index += 1;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let n = tail.len();
        tail.copy_from_slice(&word(stream, index).to_le_bytes()[..n]);
    }
}

/// Checks received bytes against a stream, keeping a running SHA-256.
#[derive(Debug)]
pub(crate) struct Checker {
    stream: u64,
    /// Bytes taken so far.
    pub(crate) got: u64,
    /// Bytes the sender will send at most; more are wrong by definition.
    limit: u64,
    /// Wrong bytes: not the pattern at their position, or past `limit`.
    pub(crate) bad: u64,
    /// Position of the first wrong byte.
    pub(crate) first_bad: Option<u64>,
    sha: Sha256,
    scratch: Vec<u8>,
}

impl Checker {
    pub(crate) fn new(stream: u64, limit: u64) -> Checker {
        Checker {
            stream,
            got: 0,
            limit,
            bad: 0,
            first_bad: None,
            sha: Sha256::new(),
            scratch: Vec::new(),
        }
    }

    /// Takes the next received bytes.
    pub(crate) fn take(&mut self, data: &[u8]) {
        let in_limit = (self.limit.saturating_sub(self.got)).min(data.len() as u64) as usize;
        self.scratch.resize(in_limit, 0);
        fill(self.stream, self.got, &mut self.scratch);
        if self.scratch[..] != data[..in_limit] {
            let wrong = self
                .scratch
                .iter()
                .zip(data)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| i);
            let mut n = 0;
            for i in wrong {
                self.first_bad.get_or_insert(self.got + i as u64);
                n += 1;
            }
            self.bad += n;
        }
        if in_limit < data.len() {
            self.first_bad.get_or_insert(self.got + in_limit as u64);
            self.bad += (data.len() - in_limit) as u64;
        }
        self.sha.update(data);
        self.got += data.len() as u64;
    }

    /// SHA-256 of everything taken.
    pub(crate) fn sha(&self) -> [u8; 32] {
        self.sha.clone().finalize().into()
    }
}

/// Produces a stream's bytes for sending, keeping a running SHA-256.
#[derive(Debug)]
pub(crate) struct Producer {
    stream: u64,
    /// Bytes produced (and, once `commit`ted, written).
    pub(crate) sent: u64,
    sha: Sha256,
    buf: Vec<u8>,
}

impl Producer {
    pub(crate) fn new(stream: u64) -> Producer {
        Producer {
            stream,
            sent: 0,
            sha: Sha256::new(),
            buf: Vec::new(),
        }
    }

    /// The next `n` bytes (not counted until [`commit`](Self::commit)).
    pub(crate) fn next(&mut self, n: usize) -> &[u8] {
        self.buf.resize(n, 0);
        fill(self.stream, self.sent, &mut self.buf);
        &self.buf
    }

    /// Counts the bytes of the last [`next`](Self::next) as written.
    pub(crate) fn commit(&mut self) {
        self.commit_prefix(self.buf.len());
    }

    /// Counts the first `n` bytes of the last [`next`](Self::next) as
    /// written (a short write).
    pub(crate) fn commit_prefix(&mut self, n: usize) {
        self.sha.update(&self.buf[..n]);
        self.sent += n as u64;
    }

    /// SHA-256 of everything committed.
    pub(crate) fn sha(&self) -> [u8; 32] {
        self.sha.clone().finalize().into()
    }
}

/// One `/metrics` scrape: `name{labels}` -> value.
#[derive(Debug, Clone)]
pub(crate) struct Scrape(pub(crate) HashMap<String, f64>);

impl Scrape {
    /// GETs `/metrics` at `addr`.
    pub(crate) fn get(addr: SocketAddr) -> Scrape {
        let (status, body) = crate::util::http_get(addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        let samples = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect();
        Scrape(samples)
    }

    /// The sum of every sample of metric `name` (all label sets); 0 if none.
    pub(crate) fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .map(|(_, v)| v)
            .sum::<f64>()
            + 0.0 // an empty f64 sum is -0.0
    }

    /// The sum of the samples of `name` whose labels contain `label`
    /// (e.g. `outcome="error"`).
    pub(crate) fn sum_with(&self, name: &str, label: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name) && k.contains(label))
            .map(|(_, v)| v)
            .sum::<f64>()
            + 0.0
    }

    /// The pool and connection figures, for messages.
    pub(crate) fn summary(&self) -> String {
        let names = [
            "spliced_connections_active",
            "spliced_connections_total",
            "pipepool_live",
            "pipepool_idle",
            "pipepool_in_use",
            "pipepool_created_total",
            "pipepool_closed_dirty_total",
            "pipepool_gets_refused_total",
            "pipepool_gets_failed_total",
            "pipepool_undersized",
            "pipepool_resize_failures_total",
        ];
        let mut s: Vec<String> = names
            .iter()
            .map(|n| format!("{n}={}", self.sum(n)))
            .collect();
        for outcome in ["ok", "error", "idle_timeout", "no_upstream"] {
            s.push(format!(
                "closed[{outcome}]={}",
                self.sum_with(
                    "spliced_connections_closed_total",
                    &format!("outcome=\"{outcome}\"")
                )
            ));
        }
        s.join(" ")
    }
}

/// The metrics address from the "metrics on http://ADDR/metrics" line.
pub(crate) fn metrics_addr(proc: &mut crate::util::Proc) -> SocketAddr {
    proc.wait_for_line("metrics on http://")
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .expect("metrics line")
        .parse()
        .expect("metrics address")
}

/// Open fds of process `pid`.
pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// utime + stime of `pid`, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the ")" of the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Raises this process's soft fd limit to the hard one; returns it.
pub(crate) fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(rlimit::INFINITY).expect("raise RLIMIT_NOFILE")
}

/// The test seed: `$FAULTS_SEED` (decimal or 0x-hex) or `default`.
pub(crate) fn seed(default: u64) -> u64 {
    match std::env::var("FAULTS_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("FAULTS_SEED={s:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// Hex of a digest, for messages.
pub(crate) fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
