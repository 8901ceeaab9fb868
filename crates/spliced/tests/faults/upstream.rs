//! The in-test upstream: answers each connection as its header says,
//! checks every byte it receives, records what it saw, and can be killed
//! and started again on the same port.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::faults_common::{down_stream, up_stream, Checker, Producer, Rng};
use crate::plan::{Mode, Plan, HEADER};
use crate::CONN_TIMEOUT;

/// What the upstream saw on one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpRecord {
    pub(crate) received: u64,
    pub(crate) recv_sha: [u8; 32],
    pub(crate) sent: u64,
    pub(crate) sent_sha: [u8; 32],
    /// Read to a clean EOF.
    pub(crate) eof: bool,
    /// Killed by a restart before it finished.
    pub(crate) aborted: bool,
    pub(crate) error: Option<String>,
}

/// The upstream's counters and records, shared by its tasks.
#[derive(Debug, Default)]
pub(crate) struct UpShared {
    pub(crate) records: Mutex<HashMap<u64, UpRecord>>,
    pub(crate) open: AtomicUsize,
    pub(crate) peak: AtomicUsize,
    pub(crate) accepted: AtomicUsize,
    /// Wrong bytes received, bad headers and duplicate ids.
    pub(crate) mismatches: AtomicU64,
    /// Connections that ended before a whole header.
    pub(crate) short_headers: AtomicUsize,
    /// Descriptions of every problem, for the report.
    pub(crate) problems: Mutex<Vec<String>>,
}

impl UpShared {
    fn problem(&self, p: String) {
        self.problems.lock().unwrap().push(p);
    }
}

/// Counts an open upstream connection until dropped.
struct Open(Arc<UpShared>);

impl Open {
    fn new(sh: &Arc<UpShared>) -> Open {
        let now = sh.open.fetch_add(1, Relaxed) + 1;
        sh.peak.fetch_max(now, Relaxed);
        Open(Arc::clone(sh))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// Stores a connection's record when dropped, marked `aborted` unless
/// `finish` was called (the task was killed).
struct Recorder {
    sh: Arc<UpShared>,
    id: u64,
    rec: UpRecord,
    finished: bool,
}

impl Recorder {
    fn finish(mut self, rx: &Checker, tx: &Producer, error: Option<String>) {
        self.note(rx, tx);
        self.rec.error = error;
        self.finished = true;
    }

    fn note(&mut self, rx: &Checker, tx: &Producer) {
        self.rec.received = rx.got;
        self.rec.recv_sha = rx.sha();
        self.rec.sent = tx.sent;
        self.rec.sent_sha = tx.sha();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.rec.aborted = !self.finished;
        let mut records = self.sh.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.insert(self.id, self.rec.clone()).is_some() {
            self.sh.mismatches.fetch_add(1, Relaxed);
            self.sh
                .problem(format!("id {} seen twice by the upstream", self.id));
        }
    }
}

/// The in-test upstream: can be killed and started again on its port.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) sh: Arc<UpShared>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub(crate) async fn start(addr: SocketAddr, sh: Arc<UpShared>) -> io::Result<Upstream> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&sh)));
        Ok(Upstream { addr, sh, task })
    }

    /// Kills the listener and every connection (dropping their sockets,
    /// as a crash would), waits `gap`, and listens again on the same port.
    /// Returns when it went down and when it was back.
    pub(crate) async fn restart(self, gap: Duration) -> (Upstream, Instant, Instant) {
        let down = Instant::now();
        self.task.abort();
        let _ = self.task.await; // the JoinSet of connections is dropped: all aborted
        tokio::time::sleep(gap).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let up = loop {
            match Upstream::start(self.addr, Arc::clone(&self.sh)).await {
                Ok(up) => break up,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("upstream rebind: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        (up, down, Instant::now())
    }
}

async fn accept_loop(listener: TcpListener, sh: Arc<UpShared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => {
                    sh.accepted.fetch_add(1, Relaxed);
                    conns.spawn(serve(s, Arc::clone(&sh)));
                }
                Err(e) => {
                    sh.problem(format!("upstream accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        sh.problem(format!("upstream task panicked: {e}"));
                    }
                }
            }
        }
    }
}

/// One upstream connection: header, then the plan's behaviour.
async fn serve(mut s: TcpStream, sh: Arc<UpShared>) {
    let _open = Open::new(&sh);
    let mut head = [0u8; HEADER];
    match tokio::time::timeout(CONN_TIMEOUT, s.read_exact(&mut head)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => {
            // Reset (or closed) before a whole header: a client reset or
            // a client of the restart gap. Nothing to check.
            sh.short_headers.fetch_add(1, Relaxed);
            return;
        }
        Err(_) => {
            sh.problem("upstream: no header within the timeout".into());
            return;
        }
    }
    let Some(plan) = Plan::decode(&head) else {
        sh.mismatches.fetch_add(1, Relaxed);
        sh.problem(format!("upstream: a bad header {head:02x?}"));
        return;
    };
    let mut rec = Recorder {
        sh: Arc::clone(&sh),
        id: plan.id,
        rec: UpRecord::default(),
        finished: false,
    };
    let mut rx = Checker::new(up_stream(plan.id), u64::from(plan.size));
    let mut tx = Producer::new(down_stream(plan.id));
    let mut rng = Rng::new(plan.seed ^ 0xABCD);
    let result = tokio::time::timeout(
        CONN_TIMEOUT,
        answer(&mut s, &plan, &mut rx, &mut tx, &mut rng),
    )
    .await;
    if rx.bad > 0 {
        sh.mismatches.fetch_add(rx.bad, Relaxed);
        sh.problem(format!(
            "upstream: {} wrong byte(s) on id {} ({:?}), first at {:?}",
            rx.bad, plan.id, plan.mode, rx.first_bad
        ));
    }
    rec.rec.eof = matches!(result, Ok(Ok(true)));
    let error = match result {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => {
            sh.problem(format!(
                "upstream: id {} ({:?}) hung past {CONN_TIMEOUT:?}",
                plan.id, plan.mode
            ));
            Some("timed out".into())
        }
    };
    rec.finish(&rx, &tx, error);
    if plan.mode == Mode::UpstreamReset {
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
}

/// The upstream side of `plan`. `Ok(true)`: the client's stream ended with
/// a clean EOF.
async fn answer(
    s: &mut TcpStream,
    plan: &Plan,
    rx: &mut Checker,
    tx: &mut Producer,
    rng: &mut Rng,
) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    match plan.mode {
        Mode::Echo | Mode::SlowUpstream | Mode::SlowClient | Mode::ClientReset => {
            let slow = plan.mode == Mode::SlowUpstream;
            loop {
                let want = if slow {
                    rng.range(1024, 16384) as usize
                } else {
                    buf.len()
                };
                let n = s.read(&mut buf[..want]).await?;
                if n == 0 {
                    break;
                }
                rx.take(&buf[..n]);
                s.write_all(tx.next(n)).await?;
                tx.commit();
                if slow {
                    tokio::time::sleep(Duration::from_millis(rng.range(1, 3))).await;
                }
            }
            s.shutdown().await?;
            Ok(true)
        }
        Mode::UpstreamReset => {
            while rx.got < u64::from(plan.cut) {
                let want = (u64::from(plan.cut) - rx.got).min(buf.len() as u64) as usize;
                let n = s.read(&mut buf[..want]).await?;
                if n == 0 {
                    return Ok(true);
                }
                rx.take(&buf[..n]);
                s.write_all(tx.next(n)).await?;
                tx.commit();
            }
            Ok(false) // the caller resets
        }
        Mode::HalfClose => {
            read_to_end(s, rx, &mut buf).await?;
            write_stream(s, tx, u64::from(plan.resp), 64 << 10, rng).await?;
            s.shutdown().await?;
            Ok(true)
        }
        Mode::ServerFirst => {
            let (mut r, mut w) = s.split();
            let send = async {
                write_stream(&mut w, tx, u64::from(plan.resp), 64 << 10, rng).await?;
                w.shutdown().await
            };
            let (sent, read) = tokio::join!(send, read_to_end(&mut r, rx, &mut buf));
            sent?;
            read?;
            Ok(true)
        }
    }
}

async fn read_to_end<R: AsyncRead + Unpin>(
    r: &mut R,
    rx: &mut Checker,
    buf: &mut [u8],
) -> io::Result<()> {
    loop {
        let n = r.read(buf).await?;
        if n == 0 {
            return Ok(());
        }
        rx.take(&buf[..n]);
    }
}

/// Writes `tx`'s stream up to byte `upto`, in chunks of 1..=`chunk_max`.
pub(crate) async fn write_stream<W: AsyncWrite + Unpin>(
    w: &mut W,
    tx: &mut Producer,
    upto: u64,
    chunk_max: u64,
    rng: &mut Rng,
) -> io::Result<()> {
    while tx.sent < upto {
        let n = rng.range(1, chunk_max).min(upto - tx.sent) as usize;
        w.write_all(tx.next(n)).await?;
        tx.commit();
    }
    Ok(())
}
