//! Stream mode: `conns` long connections writing the [`pattern`] for a
//! duration (or a byte count each). Echoed bytes are checked as they come
//! back; in one-way mode the sink's byte count is checked at the end.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub(crate) use super::options::StreamOptions;
use super::options::CONNECT_TIMEOUT;
use super::pattern::{pattern, Pattern};
use super::report::{Failures, StreamReport, Verification};

/// Bytes per write.
const CHUNK: usize = 128 * 1024;
/// How long after the writers stop the readers may take to see EOF.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes written so far by all connections (for a progress bar).
#[derive(Debug, Default)]
pub(crate) struct StreamTally {
    /// Bytes written.
    pub(crate) sent: AtomicU64,
}

/// What one connection did.
#[derive(Debug, Default)]
struct ConnResult {
    sent: u64,
    received: u64,
    verification: Verification,
    error: Option<String>,
    mismatch: bool,
}

/// Runs the streams and reports.
pub(crate) async fn run(opts: &StreamOptions, progress: Arc<StreamTally>) -> StreamReport {
    let start = Instant::now();
    let deadline = start + opts.duration;
    let tasks: Vec<_> = (0..opts.conns as u64)
        .map(|id| {
            let (opts, progress) = (opts.clone(), Arc::clone(&progress));
            tokio::spawn(async move { one(id, &opts, deadline, &progress).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| ConnResult {
            error: Some(format!("task failed: {e}")),
            ..ConnResult::default()
        }));
    }
    let elapsed = start.elapsed();
    let mut failures = Failures::default();
    let mut verification = if opts.oneway {
        Verification::Count
    } else {
        Verification::Echo
    };
    for r in &results {
        if r.verification == Verification::None && r.error.is_none() {
            verification = Verification::None;
        }
        if let Some(e) = &r.error {
            failures.add(e, r.mismatch);
        }
    }
    StreamReport::new(
        opts,
        elapsed,
        results.iter().map(|r| r.sent).sum(),
        results.iter().map(|r| r.received).sum(),
        verification,
        failures,
    )
}

async fn one(
    id: u64,
    opts: &StreamOptions,
    deadline: Instant,
    progress: &StreamTally,
) -> ConnResult {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(opts.target)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(format!("connect {}: {e}", opts.target)),
        Err(_) => return failed(format!("connect {}: timed out", opts.target)),
    };
    let (mut rd, mut wr) = stream.into_split();
    let first = Pattern::start_of(id);
    let limit = opts.bytes_per_conn.unwrap_or(u64::MAX);
    let writer = async {
        let p = pattern();
        let mut sent = 0u64;
        while sent < limit && Instant::now() < deadline {
            let chunk = p.slice(first + sent, (limit - sent).min(CHUNK as u64) as usize);
            let n = tokio::select! {
                r = wr.write(chunk) => r?,
                () = tokio::time::sleep_until(deadline) => break,
            };
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            sent += n as u64;
            progress.sent.fetch_add(n as u64, Relaxed);
        }
        wr.shutdown().await?;
        Ok::<u64, io::Error>(sent)
    };
    let reader = async {
        let p = pattern();
        let mut buf = vec![0u8; 256 * 1024];
        let mut received = 0u64;
        let mut tail = Vec::new();
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>((received, tail, None));
            }
            if opts.oneway {
                if tail.len() < 16 {
                    tail.extend_from_slice(&buf[..n.min(16)]);
                }
            } else if !p.matches(first + received, &buf[..n]) {
                let at = received;
                return Ok((received, tail, Some(at)));
            }
            received += n as u64;
        }
    };
    let drain = tokio::time::timeout_at(deadline + DRAIN_TIMEOUT, reader);
    let (w, r) = tokio::join!(writer, drain);
    let mut result = ConnResult::default();
    match w {
        Ok(sent) => result.sent = sent,
        Err(e) => result.error = Some(format!("write: {e}")),
    }
    let (received, tail, bad_at) = match r {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            result.error.get_or_insert(format!("read: {e}"));
            return result;
        }
        Err(_) => {
            result
                .error
                .get_or_insert("no EOF from the server after the writers stopped".into());
            return result;
        }
    };
    result.received = received;
    if let Some(at) = bad_at {
        result.mismatch = true;
        result.error = Some(format!(
            "echoed bytes differ from those sent at offset {at}"
        ));
    } else if opts.oneway {
        check_count(&mut result, &tail);
    } else if result.error.is_none() && received != result.sent {
        result.mismatch = true;
        result.error = Some(format!(
            "sent {} bytes but {} came back",
            result.sent, received
        ));
    } else {
        result.verification = Verification::Echo;
    }
    result
}

/// One-way: the sink answers the count it received (8 bytes, big-endian).
fn check_count(result: &mut ConnResult, tail: &[u8]) {
    result.received = 0;
    match <[u8; 8]>::try_from(tail) {
        Ok(b) if u64::from_be_bytes(b) == result.sent => result.verification = Verification::Count,
        Ok(b) => {
            result.mismatch = true;
            result.error = Some(format!(
                "sent {} bytes but the sink counted {}",
                result.sent,
                u64::from_be_bytes(b)
            ));
        }
        Err(_) if tail.is_empty() => result.verification = Verification::None,
        Err(_) => {
            result.mismatch = true;
            result.error = Some(format!(
                "unexpected reply from the server ({} bytes): is it an echo server? (--oneway expects --sink)",
                tail.len()
            ));
        }
    }
}

fn failed(error: String) -> ConnResult {
    ConnResult {
        error: Some(error),
        ..ConnResult::default()
    }
}
