//! A minimal HTTP/1.1 server for `GET /metrics`: one request per
//! connection, then close. Enough for Prometheus and curl; nothing else
//! is served.
//!
//! Bounded, so that a flood of idle or slow clients can neither exhaust
//! the proxy's fds nor stop a scrape: at most [`MAX_CONNS`] connections
//! are open at once, each has [`TIMEOUT`] for the whole exchange (request
//! head in, response out), and when all slots are taken a new client
//! takes the slot of the oldest one still waiting for its request head
//! (that one is closed). A scraper sends its request at once, so it is
//! answered even while hundreds of idle connections come and go.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

use super::Metrics;

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has for the whole exchange: its request head in and the
/// response out.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections open at once (counted in [`crate::limits::RESERVE`]).
pub(crate) const MAX_CONNS: usize = 32;

/// A bound metrics listener.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    listener: TcpListener,
}

/// The connections still waiting for their request head, oldest first,
/// each with the switch that closes it.
#[derive(Debug, Default)]
struct Waiting {
    queue: Mutex<VecDeque<(u64, oneshot::Sender<()>)>>,
}

impl Waiting {
    fn push(&self, id: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.lock().push_back((id, tx));
        rx
    }

    /// Closes the oldest waiting connection; `false` if none waits.
    fn evict_oldest(&self) -> bool {
        // Dropping the sender wakes the connection's receiver.
        self.lock().pop_front().is_some()
    }

    /// Connection `id` no longer waits (answered, or gone).
    fn remove(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, oneshot::Sender<()>)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MetricsServer {
    /// Binds `addr`.
    ///
    /// # Errors
    /// As `bind(2)`, e.g. `AddrInUse`.
    pub(crate) async fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        Ok(MetricsServer {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// Serves on `listener` (a socket taken over from another process).
    pub(crate) fn from_listener(listener: TcpListener) -> MetricsServer {
        MetricsServer { listener }
    }

    /// A duplicate of the listening socket, to hand over (`--takeover`).
    ///
    /// # Errors
    /// As `fcntl(F_DUPFD_CLOEXEC)`.
    pub(crate) fn socket(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd as _;
        self.listener.as_fd().try_clone_to_owned()
    }

    /// The bound address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves requests until the task is dropped.
    pub(crate) async fn serve(self, metrics: Arc<Metrics>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNS));
        let waiting = Arc::new(Waiting::default());
        let mut next_id = 0u64;
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let permit = match Arc::clone(&slots).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    // Full: make room by closing the oldest client that
                    // has not sent its request yet, then wait for its
                    // slot (or, if every client is being answered, for
                    // the first to finish: within TIMEOUT). Not accepting
                    // meanwhile keeps the fds bounded.
                    let evicted = waiting.evict_oldest();
                    tracing::debug!(evicted, "metrics: {MAX_CONNS} connections open");
                    match Arc::clone(&slots).acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return, // never closed
                    }
                }
            };
            next_id += 1;
            let id = next_id;
            let evicted = waiting.push(id);
            let metrics = Arc::clone(&metrics);
            let waiting = Arc::clone(&waiting);
            tokio::spawn(async move {
                let r = tokio::time::timeout(
                    TIMEOUT,
                    exchange(stream, &metrics, evicted, || waiting.remove(id)),
                )
                .await;
                waiting.remove(id);
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!("metrics request failed: {e}"),
                    Err(_) => tracing::debug!("metrics request not done within {TIMEOUT:?}"),
                }
                drop(permit);
            });
        }
    }
}

/// Reads one request head (unless `evicted` fires first), calls
/// `answering`, and writes the answer.
async fn exchange(
    mut stream: TcpStream,
    metrics: &Metrics,
    evicted: oneshot::Receiver<()>,
    answering: impl FnOnce(),
) -> io::Result<()> {
    let head = tokio::select! {
        head = read_head(&mut stream) => head?,
        _ = evicted => {
            return Err(io::Error::other("closed to make room for a newer client"))
        }
    };
    answering();
    respond(stream, &head, metrics).await
}

/// Reads until the end of the request head (`\r\n\r\n`), EOF or
/// [`MAX_HEAD`] bytes. Each read scans only its new bytes (and the 3
/// before them).
async fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if head[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(head)
}

/// Answers the request in `head`.
async fn respond(mut stream: TcpStream, head: &[u8], metrics: &Metrics) -> io::Result<()> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", Metrics::CONTENT_TYPE, metrics.encode()),
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "spliced: metrics at /metrics\n".to_owned(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_owned(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}
