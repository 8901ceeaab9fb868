//! Fault injection through the real binary: nothing is lost, nothing
//! crosses connections, and the proxy returns to its baseline.
//!
//! A wave of 1,000 connections is opened and held until the in-test
//! upstream sees every one of them at once, then all transfer together,
//! while a trickle of more connections starts every few milliseconds. Each
//! connection has a mode, a size and a byte pattern drawn from one seeded
//! RNG:
//!
//! - `Echo`: the upstream answers every n bytes it reads with n bytes.
//! - `HalfClose`: the client sends everything and shuts down its write
//!   side, then reads; the upstream answers only after that EOF.
//! - `ServerFirst`: the upstream sends its answer and shuts down first,
//!   while the client still sends.
//! - `SlowClient` / `SlowUpstream`: one side reads in small pieces with
//!   pauses.
//! - `ClientReset`: the client stops after some bytes and resets
//!   (`SO_LINGER` 0, then close).
//! - `UpstreamReset`: the upstream resets after some bytes.
//!
//! Every connection starts with a 32-byte header naming its id and plan;
//! then each direction carries its own pseudo-random stream derived from
//! the id, so that every received byte is checked at its position, on both
//! ends, and a byte of another connection (or a byte reflected back) is
//! counted as a mismatch. Once 75% of the wave is done, the upstream is
//! killed (listener and connections, like a crash) and started again on
//! the same port after a gap; clients during the gap must fail cleanly.
//!
//! Then: zero mismatches; every stream that completed has equal SHA-256 at
//! both ends; every stream that did not complete either reset on purpose
//! or overlapped the upstream's restart; no client hung; a fresh
//! connection works; and the proxy's fds and pool statistics return to
//! their baseline.
//!
//! The seed is printed; set `FAULTS_SEED` to replay a run.

mod faults_common;
mod util;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use faults_common::{
    down_stream, fd_count, hex, metrics_addr, up_stream, word, Checker, Producer, Rng, Scrape,
};
use util::Proc;

/// The default seed (override with `FAULTS_SEED`).
const DEFAULT_SEED: u64 = 0x5EED_F00D_2026;
/// Longest any one client or upstream connection may take.
const CONN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a whole run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the upstream stays down when it restarts.
const GAP: Duration = Duration::from_millis(400);
/// Length of the header every connection starts with.
const HEADER: usize = 32;

/// The two tests each load the machine fully: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn splice_1000_connections_with_resets_half_closes_slow_readers_and_an_upstream_restart() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    run(&Suite {
        copy: "splice",
        wave: 1000,
        trickle_max: 600,
        seed: faults_common::seed(DEFAULT_SEED),
    });
}

#[test]
fn userspace_300_connections_with_the_same_faults() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    run(&Suite {
        copy: "userspace",
        wave: 300,
        trickle_max: 200,
        seed: faults_common::seed(DEFAULT_SEED) ^ 0x0005_5E25_0ACE,
    });
}

/// One run's parameters.
struct Suite {
    copy: &'static str,
    /// Connections held open together before any transfers.
    wave: usize,
    /// Most connections started one by one during the run.
    trickle_max: usize,
    seed: u64,
}

/// What a connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Echo = 0,
    HalfClose = 1,
    ServerFirst = 2,
    SlowClient = 3,
    SlowUpstream = 4,
    ClientReset = 5,
    UpstreamReset = 6,
}

impl Mode {
    const ALL: [(Mode, u64); 7] = [
        (Mode::Echo, 34),
        (Mode::HalfClose, 14),
        (Mode::ServerFirst, 10),
        (Mode::SlowClient, 10),
        (Mode::SlowUpstream, 6),
        (Mode::ClientReset, 13),
        (Mode::UpstreamReset, 13),
    ];

    fn from_u8(b: u8) -> Option<Mode> {
        Mode::ALL.iter().map(|m| m.0).find(|m| *m as u8 == b)
    }

    fn resets(self) -> bool {
        matches!(self, Mode::ClientReset | Mode::UpstreamReset)
    }

    fn slow(self) -> bool {
        matches!(self, Mode::SlowClient | Mode::SlowUpstream)
    }
}

/// One connection's plan, sent as its header.
#[derive(Debug, Clone, Copy)]
struct Plan {
    id: u64,
    mode: Mode,
    /// Bytes the client sends (all of them, unless it resets).
    size: u32,
    /// Bytes the upstream answers in `HalfClose` and `ServerFirst`.
    resp: u32,
    /// `ClientReset`/`UpstreamReset`: bytes sent/read before the reset.
    cut: u32,
    /// Seeds the client's chunking and pauses.
    seed: u64,
}

impl Plan {
    fn draw(rng: &mut Rng, id: u64) -> Plan {
        let total: u64 = Mode::ALL.iter().map(|m| m.1).sum();
        let mut pick = rng.below(total);
        let mut mode = Mode::Echo;
        for (m, w) in Mode::ALL {
            if pick < w {
                mode = m;
                break;
            }
            pick -= w;
        }
        let mut size = draw_size(rng, mode.slow());
        if mode == Mode::UpstreamReset {
            // It resets after at least one byte of payload, so never
            // before the wave's go.
            size = size.max(1);
        }
        let resp = match mode {
            Mode::HalfClose | Mode::ServerFirst => draw_size(rng, false),
            _ => size,
        };
        let cut = match mode {
            Mode::ClientReset => rng.below(u64::from(size) + 1) as u32,
            Mode::UpstreamReset => rng.range(1, u64::from(size)) as u32,
            _ => size,
        };
        Plan {
            id,
            mode,
            size,
            resp,
            cut,
            seed: rng.next_u64(),
        }
    }

    /// Bytes the client should receive.
    fn expect_down(&self) -> u64 {
        u64::from(self.resp)
    }

    fn check_word(&self) -> u64 {
        word(
            0xC4EC,
            self.id ^ (self.mode as u64) << 56 ^ u64::from(self.size) << 24,
        ) ^ word(u64::from(self.resp), u64::from(self.cut))
    }

    fn encode(&self) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[..8].copy_from_slice(&self.id.to_le_bytes());
        h[8] = self.mode as u8;
        h[12..16].copy_from_slice(&self.size.to_le_bytes());
        h[16..20].copy_from_slice(&self.resp.to_le_bytes());
        h[20..24].copy_from_slice(&self.cut.to_le_bytes());
        h[24..32].copy_from_slice(&self.check_word().to_le_bytes());
        h
    }

    /// `None` for a header that is not one (bytes from elsewhere).
    fn decode(h: &[u8; HEADER]) -> Option<Plan> {
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        let plan = Plan {
            id: u64::from_le_bytes(h[..8].try_into().unwrap()),
            mode: Mode::from_u8(h[8])?,
            size: u32_at(12),
            resp: u32_at(16),
            cut: u32_at(20),
            seed: 0,
        };
        let check = u64::from_le_bytes(h[24..32].try_into().unwrap());
        (h[9..12] == [0, 0, 0] && check == plan.check_word()).then_some(plan)
    }
}

/// 5% empty, 1% of 1-4 MiB (not for slow modes), else up to 320 KiB (96
/// KiB for slow modes).
fn draw_size(rng: &mut Rng, slow: bool) -> u32 {
    let r = rng.below(100);
    let n = if r < 5 {
        0
    } else if r == 5 && !slow {
        rng.range(1 << 20, 4 << 20)
    } else {
        rng.range(1, if slow { 96 << 10 } else { 320 << 10 })
    };
    n as u32
}

// ---------------------------------------------------------------------------
// The upstream

/// What the upstream saw on one connection.
#[derive(Debug, Clone, Default)]
struct UpRecord {
    received: u64,
    recv_sha: [u8; 32],
    sent: u64,
    sent_sha: [u8; 32],
    /// Read to a clean EOF.
    eof: bool,
    /// Killed by a restart before it finished.
    aborted: bool,
    error: Option<String>,
}

/// The upstream's counters and records, shared by its tasks.
#[derive(Debug, Default)]
struct UpShared {
    records: Mutex<HashMap<u64, UpRecord>>,
    open: AtomicUsize,
    peak: AtomicUsize,
    accepted: AtomicUsize,
    /// Wrong bytes received, bad headers and duplicate ids.
    mismatches: AtomicU64,
    /// Connections that ended before a whole header.
    short_headers: AtomicUsize,
    /// Descriptions of every problem, for the report.
    problems: Mutex<Vec<String>>,
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
struct Upstream {
    addr: SocketAddr,
    sh: Arc<UpShared>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(addr: SocketAddr, sh: Arc<UpShared>) -> io::Result<Upstream> {
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
    async fn restart(self, gap: Duration) -> (Upstream, Instant, Instant) {
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
                    rng.range(512, 4096) as usize
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
async fn write_stream<W: AsyncWrite + Unpin>(
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

// ---------------------------------------------------------------------------
// The clients

/// What a client saw.
#[derive(Debug, Clone)]
struct ClientRecord {
    plan: Plan,
    start: Instant,
    end: Instant,
    sent: u64,
    sent_sha: [u8; 32],
    received: u64,
    recv_sha: [u8; 32],
    bad: u64,
    first_bad: Option<u64>,
    /// Sent everything, then read exactly what was due and a clean EOF.
    complete: bool,
    hung: bool,
    error: Option<String>,
}

/// Runs one client; `gate`: connect, then wait for the go.
async fn client(
    proxy: SocketAddr,
    plan: Plan,
    gate: Option<watch::Receiver<bool>>,
) -> ClientRecord {
    let start = Instant::now();
    let mut rx = Checker::new(down_stream(plan.id), plan.expect_down());
    let mut tx = Producer::new(up_stream(plan.id));
    let mut rng = Rng::new(plan.seed);
    let result = tokio::time::timeout(CONN_TIMEOUT, async {
        let mut s = TcpStream::connect(proxy).await?;
        // The header at once: a burst of connects can overflow the
        // proxy's SYN queue, and a connection answered with a SYN cookie
        // exists on the proxy's side only once data arrives.
        s.write_all(&plan.encode()).await?;
        if let Some(mut gate) = gate {
            let _ = gate.wait_for(|&go| go).await;
        }
        exchange(&mut s, &plan, &mut rx, &mut tx, &mut rng).await
    })
    .await;
    let (complete, hung, error) = match result {
        Ok(Ok(eof)) => {
            let complete = eof && tx.sent == u64::from(plan.size) && rx.got == plan.expect_down();
            (complete, false, None)
        }
        Ok(Err(e)) => (false, false, Some(e.to_string())),
        Err(_) => (false, true, Some("timed out".into())),
    };
    ClientRecord {
        plan,
        start,
        end: Instant::now(),
        sent: tx.sent,
        sent_sha: tx.sha(),
        received: rx.got,
        recv_sha: rx.sha(),
        bad: rx.bad,
        first_bad: rx.first_bad,
        complete: complete && !plan.mode.resets(),
        hung,
        error,
    }
}

/// The client side of `plan`. `Ok(true)`: everything was sent and the
/// answer ended with a clean EOF.
async fn exchange(
    s: &mut TcpStream,
    plan: &Plan,
    rx: &mut Checker,
    tx: &mut Producer,
    rng: &mut Rng,
) -> io::Result<bool> {
    let chunk_max = [97, 4096, 64 << 10][rng.below(3) as usize];
    let mut read_rng = Rng::new(rng.next_u64());
    let slow = plan.mode == Mode::SlowClient;
    let mut buf = vec![0u8; 64 << 10];
    match plan.mode {
        Mode::ClientReset => {
            {
                let (mut r, mut w) = s.split();
                let send = async {
                    write_stream(&mut w, tx, u64::from(plan.cut), chunk_max, rng).await?;
                    tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
                    Ok::<_, io::Error>(())
                };
                let read = receive(&mut r, rx, &mut buf, None);
                // Whichever ends first (normally the sender), then reset.
                tokio::select! {
                    _ = send => {}
                    _ = read => {}
                }
            }
            socket2::SockRef::from(&*s).set_linger(Some(Duration::ZERO))?;
            Ok(false) // the socket is closed (reset) when dropped
        }
        Mode::HalfClose => {
            write_stream(s, tx, u64::from(plan.size), chunk_max, rng).await?;
            s.shutdown().await?;
            receive(s, rx, &mut buf, None).await?;
            Ok(true)
        }
        _ => {
            let (mut r, mut w) = s.split();
            let send = async {
                write_stream(&mut w, tx, u64::from(plan.size), chunk_max, rng).await?;
                w.shutdown().await
            };
            let pauses = slow.then_some(&mut read_rng);
            let (sent, read) = tokio::join!(send, receive(&mut r, rx, &mut buf, pauses));
            sent?;
            read?;
            Ok(true)
        }
    }
}

/// Reads to EOF; with `pauses`, in small pieces with sleeps in between.
async fn receive<R: AsyncRead + Unpin>(
    r: &mut R,
    rx: &mut Checker,
    buf: &mut [u8],
    mut pauses: Option<&mut Rng>,
) -> io::Result<()> {
    loop {
        let want = match pauses.as_deref_mut() {
            Some(rng) => rng.range(1024, 8192) as usize,
            None => buf.len(),
        };
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok(());
        }
        rx.take(&buf[..n]);
        if let Some(rng) = pauses.as_deref_mut() {
            tokio::time::sleep(Duration::from_millis(rng.range(1, 4))).await;
        }
    }
}

// ---------------------------------------------------------------------------
// The run

fn run(suite: &Suite) {
    let started = Instant::now();
    eprintln!(
        "faults ({}): seed {:#x} (set FAULTS_SEED to replay)",
        suite.copy, suite.seed
    );
    let limit = faults_common::raise_fd_limit();
    let need = 2 * (suite.wave + suite.trickle_max) as u64 + 256;
    assert!(
        limit >= need,
        "this test needs {need} fds in the test process, the hard limit is {limit}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(RUN_TIMEOUT, drive(suite))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the run took longer than {RUN_TIMEOUT:?} (seed {:#x})",
                    suite.seed
                )
            })
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    eprintln!(
        "faults ({}): passed in {:.1?}",
        suite.copy,
        started.elapsed()
    );
}

async fn drive(suite: &Suite) {
    let seed = suite.seed;
    let sh = Arc::new(UpShared::default());
    let upstream = Upstream::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&sh))
        .await
        .unwrap();
    let mut proc = Proc::spawn_env(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream.addr.to_string(),
            "--copy",
            suite.copy,
            "--metrics",
            "127.0.0.1:0",
            "--connect-timeout",
            "2s",
            "--pipe-idle-timeout",
            "1s",
            "--grace-period",
            "1s",
        ],
        &[("RUST_LOG", "info")],
    );
    let proxy = proc.listen_addr();
    let metrics = metrics_addr(&mut proc);
    let pid = proc.pid();
    let _ = Scrape::get(metrics); // the metrics path, once, before the baseline
    let base_fds = stable_fd_count(pid);
    eprintln!(
        "faults: proxy {proxy}, metrics {metrics}, upstream {}, baseline {base_fds} fds",
        upstream.addr
    );

    let mut rng = Rng::new(seed);
    let (go, gate) = watch::channel(false);
    let mut clients = JoinSet::new();
    for id in 0..suite.wave as u64 {
        let plan = Plan::draw(&mut rng, id);
        clients.spawn(client(proxy, plan, Some(gate.clone())));
    }
    // Every client of the wave is proxied at once before anything moves.
    wait_until(
        "the wave to be held open",
        Duration::from_secs(60),
        || sh.open.load(Relaxed) >= suite.wave,
        &proc,
    )
    .await;
    let peak_held = sh.open.load(Relaxed);
    go.send_replace(true);
    let go_at = Instant::now();

    // The trickle: one more client every 6 ms, at most half of them
    // before the restart, until a second after it.
    let (phase, trickle_phase) = watch::channel(Phase::Before);
    let trickle = tokio::spawn(trickle(
        proxy,
        Rng::new(seed ^ 0x7121_C4E0),
        suite.trickle_max,
        trickle_phase,
    ));

    // Restart the upstream once 75% of the wave is done.
    let mut records = Vec::new();
    while records.len() < suite.wave * 3 / 4 {
        records.push(clients.join_next().await.unwrap().unwrap());
    }
    phase.send_replace(Phase::Restarting);
    let (upstream, down, back) = upstream.restart(GAP).await;
    eprintln!(
        "faults: upstream restarted {:.1?} after the go ({} of the wave done)",
        down - go_at,
        records.len()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    phase.send_replace(Phase::Stop);
    while let Some(r) = clients.join_next().await {
        records.push(r.unwrap());
    }
    let trickled = trickle.await.unwrap();
    let n_trickled = trickled.len();
    records.extend(trickled);
    wait_until(
        "the upstream's connections to end",
        Duration::from_secs(30),
        || sh.open.load(Relaxed) == 0,
        &proc,
    )
    .await;

    let report = judge(&records, &sh, down, back, seed);
    eprintln!("{}", report.summary);
    let stderr = proc.stderr();
    assert!(
        report.failures.is_empty(),
        "{} failure(s) (seed {seed:#x}):\n{}\n{}\nproxy stderr (tail):\n{}",
        report.failures.len(),
        report
            .failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        report.summary,
        tail(&stderr, 40)
    );
    assert!(
        peak_held >= suite.wave,
        "only {peak_held} connections were proxied at once"
    );
    assert!(
        n_trickled >= 50,
        "only {n_trickled} connections trickled in"
    );

    // The proxy still serves.
    let fresh = Plan {
        id: 9_999_999,
        mode: Mode::Echo,
        size: 1 << 20,
        resp: 1 << 20,
        cut: 1 << 20,
        seed: 1,
    };
    let r = client(proxy, fresh, None).await;
    assert!(
        r.complete && r.bad == 0,
        "a fresh connection after the run failed: {r:?}\n{}",
        tail(&proc.stderr(), 20)
    );
    wait_until(
        "the upstream's last connection to end",
        Duration::from_secs(10),
        || sh.open.load(Relaxed) == 0,
        &proc,
    )
    .await;
    let up = sh.records.lock().unwrap()[&fresh.id].clone();
    assert_eq!((up.recv_sha, up.sent_sha), (r.sent_sha, r.recv_sha));

    // Back to the baseline: no connection open, no pipe in use, every fd
    // beyond the baseline an idle pipe's.
    let last = std::cell::RefCell::new(String::new());
    let settled = wait_until_some(Duration::from_secs(10), || {
        let m = Scrape::get(metrics);
        let fds = fd_count(pid);
        let live = m.sum("pipepool_live");
        *last.borrow_mut() = format!("fds {fds} (baseline {base_fds}); {}", m.summary());
        let ok = m.sum("spliced_connections_active") == 0.0
            && m.sum("pipepool_in_use") == 0.0
            && live == m.sum("pipepool_idle")
            && fds == base_fds + 2 * live as usize;
        ok.then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("not back to the baseline: {}", last.borrow()));
    eprintln!("faults: settled: {}", last.borrow());
    // A connection that fails with bytes in a pipe drops that pipe (the
    // pool closes it, never reuses it): at most one per direction of each
    // failed connection. (That none was reused is what 0 mismatches show.)
    let failed = settled.sum_with("spliced_connections_closed_total", "outcome=\"error\"")
        + settled.sum_with(
            "spliced_connections_closed_total",
            "outcome=\"idle_timeout\"",
        );
    assert!(
        settled.sum("pipepool_closed_dirty_total") <= 2.0 * failed,
        "more dirty pipes than failed connections could leave: {}",
        settled.summary()
    );
    let refused = settled.sum_with(
        "spliced_upstream_connect_failures_total",
        "reason=\"refused\"",
    );
    assert!(
        refused > 0.0
            && settled.sum_with(
                "spliced_connections_closed_total",
                "outcome=\"no_upstream\""
            ) > 0.0,
        "no client met the restart gap: {}",
        settled.summary()
    );
    if suite.copy == "splice" {
        assert!(
            settled.sum("pipepool_created_total") > 0.0,
            "{}",
            settled.summary()
        );
        assert!(
            settled.sum_with("spliced_bytes_total", "method=\"splice\"") > 0.0,
            "nothing was spliced: {}",
            settled.summary()
        );
    } else {
        assert_eq!(
            settled.sum("pipepool_created_total"),
            0.0,
            "copy = userspace took pipes: {}",
            settled.summary()
        );
    }
    assert!(
        !stderr.contains("panicked"),
        "the proxy panicked:\n{stderr}"
    );
    drop(upstream);
}

/// Where the run is, for the trickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Restarting,
    Stop,
}

/// Starts a client every 6 ms (ids from 1,000,000): at most `max / 2`
/// before the restart, at most `max` in all, none after `Phase::Stop`.
async fn trickle(
    proxy: SocketAddr,
    mut rng: Rng,
    max: usize,
    mut phase: watch::Receiver<Phase>,
) -> Vec<ClientRecord> {
    let mut started = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(6));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0..max as u64 {
        if k as usize >= max / 2 {
            let _ = phase.wait_for(|&p| p != Phase::Before).await;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = phase.wait_for(|&p| p == Phase::Stop) => break,
        }
        started.spawn(client(proxy, Plan::draw(&mut rng, 1_000_000 + k), None));
    }
    started.join_all().await
}

/// The verdict on every record.
struct Report {
    failures: Vec<String>,
    summary: String,
}

fn judge(
    records: &[ClientRecord],
    sh: &UpShared,
    down: Instant,
    back: Instant,
    seed: u64,
) -> Report {
    let ups = sh.records.lock().unwrap();
    let mut failures: Vec<String> = sh.problems.lock().unwrap().clone();
    let mut by_mode: BTreeMap<Mode, [usize; 3]> = BTreeMap::new(); // complete, excused, total
    let mut after_restart = 0;
    let mut gap_clean = 0;
    let (mut bytes_up, mut bytes_down) = (0u64, 0u64);
    for r in records {
        let p = &r.plan;
        let what = format!(
            "id {} {:?} size {} resp {} cut {}",
            p.id, p.mode, p.size, p.resp, p.cut
        );
        let counts = by_mode.entry(p.mode).or_default();
        counts[2] += 1;
        if r.bad > 0 {
            failures.push(format!(
                "{what}: {} wrong byte(s) received by the client, first at {:?}",
                r.bad, r.first_bad
            ));
        }
        if r.hung {
            failures.push(format!(
                "{what}: the client hung (sent {}, received {})",
                r.sent, r.received
            ));
        }
        let overlapped = r.start <= back && r.end >= down;
        let up = ups.get(&p.id);
        if r.start > back {
            after_restart += 1;
        }
        if overlapped && r.start >= down && r.received == 0 && !r.complete {
            gap_clean += 1;
        }
        if r.complete {
            counts[0] += 1;
            bytes_up += r.sent;
            bytes_down += r.received;
            match up {
                // An empty answer and a clean EOF, but the upstream was
                // killed before it had the header: the proxy passed on
                // the upstream's FIN, as it should.
                None if overlapped => counts[1] += 1,
                None => failures.push(format!("{what}: complete, but the upstream has no record")),
                // Killed by the restart while still reading.
                Some(u) if u.aborted => counts[1] += 1,
                Some(u) => {
                    if !(u.eof && u.received == u64::from(p.size) && u.recv_sha == r.sent_sha) {
                        failures.push(format!(
                            "{what}: client sent {} bytes sha {}, upstream got {} sha {} (eof {}, error {:?}, aborted {})",
                            r.sent, hex(&r.sent_sha), u.received, hex(&u.recv_sha), u.eof, u.error, u.aborted
                        ));
                    }
                    if u.sent != r.received || u.sent_sha != r.recv_sha {
                        failures.push(format!(
                            "{what}: upstream sent {} bytes sha {}, client got {} sha {}",
                            u.sent,
                            hex(&u.sent_sha),
                            r.received,
                            hex(&r.recv_sha)
                        ));
                    }
                }
            }
        } else if p.mode.resets() {
            // Reset on purpose: every byte that arrived was checked.
        } else if overlapped {
            counts[1] += 1;
        } else {
            failures.push(format!(
                "{what}: LOST: incomplete without a reset or the restart (sent {}, received {}, error {:?}, upstream {:?})",
                r.sent, r.received, r.error, up
            ));
        }
    }
    for (mode, [complete, _, total]) in &by_mode {
        if !mode.resets() && *complete == 0 && *total > 0 {
            failures.push(format!("no {mode:?} connection completed out of {total}"));
        }
    }
    let mismatches = sh.mismatches.load(Relaxed) + records.iter().map(|r| r.bad).sum::<u64>();
    if after_restart < 20 {
        failures.push(format!(
            "only {after_restart} clients started after the restart"
        ));
    }
    let summary = format!(
        "faults: seed {seed:#x}: {} clients, {mismatches} mismatches; by mode [complete, excused by the restart, total]: {by_mode:?}; \
         {after_restart} started after the restart, {gap_clean} failed cleanly in the gap; \
         upstream: {} accepted, peak {} open, {} short headers; {:.1} MiB up, {:.1} MiB down in complete streams",
        records.len(),
        sh.accepted.load(Relaxed),
        sh.peak.load(Relaxed),
        sh.short_headers.load(Relaxed),
        bytes_up as f64 / (1 << 20) as f64,
        bytes_down as f64 / (1 << 20) as f64,
    );
    Report { failures, summary }
}

/// Polls `f` every 10 ms; panics after `within`.
async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool, proc: &Proc) {
    let deadline = Instant::now() + within;
    while !f() {
        if Instant::now() > deadline {
            let stderr = proc.stderr();
            let errors: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("error") || l.contains("WARN") || l.contains("panic"))
                .take(30)
                .collect();
            panic!(
                "timed out waiting for {what}; the proxy's errors and warnings:\n{}",
                errors.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `f` every 100 ms until `Some`, or `None` after `within`.
async fn wait_until_some<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The child's fd count once two reads 100 ms apart agree.
fn stable_fd_count(pid: u32) -> usize {
    let mut last = fd_count(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = fd_count(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the proxy's fd count does not settle");
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
