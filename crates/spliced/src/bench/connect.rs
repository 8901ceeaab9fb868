//! Connect mode: `conns` clients, each in a loop until the duration is
//! over: connect, send `size` bytes of the [`pattern`], read them back
//! (checked), close. Reports connections/s and latency percentiles.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub(crate) use super::options::ConnectOptions;
use super::options::CONNECT_TIMEOUT;
use super::pattern::{pattern, Pattern};
use super::report::{ConnectReport, Failures};

/// Longest a single exchange may take before it counts as an error.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed exchange, so that a dead target is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Connections finished so far (for a progress bar).
#[derive(Debug, Default)]
pub(crate) struct ConnectTally {
    /// Exchanges done, good or not.
    pub(crate) done: AtomicU64,
}

/// What one client did.
#[derive(Debug, Default)]
struct ClientResult {
    latencies_us: Vec<u32>,
    failures: Failures,
}

/// Runs the clients and reports.
pub(crate) async fn run(opts: &ConnectOptions, progress: Arc<ConnectTally>) -> ConnectReport {
    let start = Instant::now();
    let deadline = start + opts.duration;
    let tickets = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..opts.conns as u64)
        .map(|id| {
            let (opts, progress, tickets) =
                (opts.clone(), Arc::clone(&progress), Arc::clone(&tickets));
            tokio::spawn(async move { client(id, &opts, deadline, &progress, &tickets).await })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = Failures::default();
    for t in tasks {
        match t.await {
            Ok(r) => {
                latencies.extend_from_slice(&r.latencies_us);
                failures.merge(r.failures);
            }
            Err(e) => failures.add(&format!("task failed: {e}"), false),
        }
    }
    ConnectReport::new(opts, start.elapsed(), latencies, failures)
}

async fn client(
    id: u64,
    opts: &ConnectOptions,
    deadline: Instant,
    progress: &ConnectTally,
    tickets: &AtomicU64,
) -> ClientResult {
    let mut result = ClientResult::default();
    let mut round = 0u64;
    let mut buf = vec![0u8; opts.size.clamp(1, 256 * 1024)];
    while Instant::now() < deadline {
        if let Some(total) = opts.total {
            if tickets.fetch_add(1, Relaxed) >= total {
                break;
            }
        }
        // Each exchange starts at its own place in the pattern.
        let first = Pattern::start_of(id.wrapping_mul(1_000_003).wrapping_add(round));
        round += 1;
        let t0 = Instant::now();
        let r = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(opts, first, &mut buf)).await;
        progress.done.fetch_add(1, Relaxed);
        match r {
            Ok(Ok(())) => {
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                result.latencies_us.push(us);
            }
            Ok(Err(e)) => {
                let mismatch = e.kind() == io::ErrorKind::InvalidData;
                result.failures.add(&e.to_string(), mismatch);
                tokio::time::sleep(ERROR_PAUSE).await;
            }
            Err(_) => {
                result
                    .failures
                    .add(&format!("exchange took over {EXCHANGE_TIMEOUT:?}"), false);
            }
        }
    }
    result
}

/// One connection: send `size` bytes while reading them back, check, close.
async fn exchange(opts: &ConnectOptions, first: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(opts.target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
        .map_err(|e| io::Error::new(e.kind(), format!("connect {}: {e}", opts.target)))?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.split();
    let p = pattern();
    let size = opts.size as u64;
    let send = async {
        let mut sent = 0u64;
        while sent < size {
            let chunk = p.slice(first + sent, (size - sent).min(64 * 1024) as usize);
            wr.write_all(chunk).await?;
            sent += chunk.len() as u64;
        }
        Ok::<_, io::Error>(())
    };
    let receive = async {
        let mut got = 0u64;
        while got < size {
            let want = (size - got).min(buf.len() as u64) as usize;
            let n = rd.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {got} of {size} bytes came back"),
                ));
            }
            if !p.matches(first + got, &buf[..n]) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("echoed bytes differ from those sent at offset {got}"),
                ));
            }
            got += n as u64;
        }
        Ok(())
    };
    tokio::try_join!(send, receive)?;
    Ok(())
}
