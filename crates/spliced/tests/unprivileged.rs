// A binary of its own: it raises RLIMIT_NOFILE for the whole process (it
// holds more connections than the default soft limit allows). Other tests:
// tests/it/.
//! The proxy as `nobody`, past `/proc/sys/fs/pipe-user-pages-soft`.
//!
//! Started as root with `--user nobody`, spliced binds, then drops to
//! uid/gid 65534 (every thread; checked in `/proc/PID/task/*/status`).
//! Root is exempt from the pipe page limits; `nobody` is not: once its
//! pipes hold more than the soft limit (16384 pages = 64 pipes of 1 MiB by
//! default), new pipes get the kernel minimum (1 page, 2 since Linux 5.14)
//! and `F_SETPIPE_SZ` fails. The test holds more connections mid-transfer
//! than 1 MiB pipes fit under the limit (the upstream does not read, so
//! each connection's pipe stays full), checks that the pool reports small
//! pipes, then lets everything flow: every byte arrives, both ways, through
//! pipes of both sizes.
//!
//! Not root: only checks that `--user` refuses clearly (exit 1).

#[path = "it/util/mod.rs"]
mod util;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use util::faults_common::{metrics_addr, up_stream, Checker, Producer, Scrape};
use util::{faults_common, run, Proc};

const NOBODY: u32 = 65534;
const MIB: u64 = 1 << 20;
/// Longest any one connection may take: its clock starts before the
/// test waits (up to 60 s) for the proxy to hold its pipes, and the
/// connection then still drains, so it must be well past that wait, or a
/// slow machine's healthy client reads as hung.
const CONN_TIMEOUT: Duration = Duration::from_secs(180);

/// The kernel's page size, from `/proc/self/smaps`.
fn page_size() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    smaps
        .lines()
        .find_map(|l| l.strip_prefix("KernelPageSize:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .expect("KernelPageSize in /proc/self/smaps")
        * 1024
}

/// `Uid:`/`Gid:`/`Groups:` of every thread of `pid`.
fn thread_ids(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| {
                    l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Groups:")
                })
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
}

#[test]
fn unknown_users_are_config_errors() {
    let out = run(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--user",
            "no-such-user-spliced",
        ],
        util::WAIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("flag --user") && stderr.contains("no such user `no-such-user-spliced`"),
        "{stderr}"
    );
}

#[test]
fn as_nobody_past_pipe_user_pages_soft_every_byte_still_arrives() {
    if !rustix::process::geteuid().is_root() {
        not_root();
        return;
    }
    let soft_pages: u64 = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // 1 MiB pipes that fit under the soft limit, and enough connections
    // to go well past it.
    let fit = soft_pages * page_size() / MIB;
    let conns = (fit + 36) as usize;
    let past_the_limit = soft_pages > 0 && conns <= 600;
    if !past_the_limit {
        eprintln!(
            "pipe-user-pages-soft is {soft_pages}: not testing past it (only the drop to nobody)"
        );
    }
    let conns = if past_the_limit { conns } else { 20 };
    faults_common::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(180), drive(conns, fit, past_the_limit))
            .await
            .expect("the test took longer than 3 minutes")
    });
}

/// Not root: `--user nobody` must fail at startup, saying why.
fn not_root() {
    let me = rustix::process::geteuid().as_raw();
    eprintln!("not root (uid {me}): the pipe-limit part needs root; checking the refusal only");
    if me == NOBODY {
        return; // already nobody: the drop is a no-op by design
    }
    let out = run(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--user",
            "nobody",
        ],
        util::WAIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("started as root"), "{stderr}");
}

/// What the upstream read on one connection.
#[derive(Debug, Clone)]
struct Seen {
    received: u64,
    sha: [u8; 32],
    bad: u64,
}

async fn drive(conns: usize, fit: u64, past_the_limit: bool) {
    // The upstream: reads a connection's 8-byte id at once, then nothing
    // until the gate opens; then echoes everything, checking each byte.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let up_addr = listener.local_addr().unwrap();
    let (open_gate, gate) = watch::channel(false);
    let seen: Arc<Mutex<HashMap<u64, Seen>>> = Arc::default();
    let upstream = tokio::spawn(upstream(listener, gate, Arc::clone(&seen)));

    let mut proc = Proc::spawn_env(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up_addr.to_string(),
            "--copy",
            "splice",
            "--pipe-size",
            "1MiB",
            "--pipe-idle-timeout",
            "1m",
            "--metrics",
            "127.0.0.1:0",
            "--user",
            "nobody",
        ],
        &[("RUST_LOG", "warn")],
    );
    let proxy = proc.listen_addr();
    let metrics = metrics_addr(&mut proc);
    let pid = proc.pid();
    let ids = thread_ids(pid);
    let want = format!(
        "Uid: {NOBODY} {NOBODY} {NOBODY} {NOBODY}; Gid: {NOBODY} {NOBODY} {NOBODY} {NOBODY}; Groups:"
    );
    assert!(
        ids.len() >= 2 && ids.iter().all(|t| *t == want),
        "threads of spliced: {ids:#?}"
    );

    // Clients write their stream until told to stop (upstream not reading).
    let (stop, stopped) = watch::channel(false);
    let mut clients = JoinSet::new();
    for id in 0..conns as u64 {
        clients.spawn(client(proxy, id, stopped.clone()));
    }
    let target = if past_the_limit { fit + 8 } else { 1 };
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let m = Scrape::get(metrics);
        if m.sum("pipepool_in_use") >= target as f64
            && (!past_the_limit || m.sum("pipepool_undersized") > 0.0)
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "never held {target} pipes at once, some of them small: {}\n{}",
            m.summary(),
            proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("held: {}", held.summary());
    if past_the_limit {
        let live = held.sum("pipepool_live");
        assert!(
            held.sum("pipepool_resize_failures_total") > 0.0,
            "{}",
            held.summary()
        );
        assert!(
            held.sum("pipepool_capacity_bytes") < live * MIB as f64,
            "every pipe is 1 MiB: {}",
            held.summary()
        );
    }

    // Let everything flow.
    stop.send_replace(true);
    open_gate.send_replace(true);
    let mut done = Vec::new();
    while let Some(r) = clients.join_next().await {
        done.push(r.unwrap());
    }
    let m = util::eventually("the proxy to close every connection", || {
        let m = Scrape::get(metrics);
        (m.sum("spliced_connections_active") == 0.0 && m.sum("pipepool_in_use") == 0.0).then_some(m)
    });
    eprintln!("after: {}", m.summary());
    let seen = seen.lock().unwrap().clone();
    let mut total = 0;
    for r in &done {
        let (id, sent, sent_sha, got, got_sha, bad) = r.as_ref().unwrap_or_else(|e| {
            panic!("a client failed: {e}\n{}", proc.stderr());
        });
        let up = seen
            .get(id)
            .unwrap_or_else(|| panic!("no upstream record for {id}"));
        assert_eq!((up.bad, *bad), (0, 0), "id {id}: wrong bytes");
        assert_eq!(
            (up.received, up.sha),
            (*sent, *sent_sha),
            "id {id}: client -> upstream"
        );
        assert_eq!((*got, *got_sha), (*sent, *sent_sha), "id {id}: the echo");
        assert!(*sent > 0, "id {id} sent nothing");
        total += sent;
    }
    eprintln!(
        "{} connections, {:.1} MiB each way, as nobody",
        done.len(),
        total as f64 / MIB as f64
    );
    assert_eq!(
        m.sum_with("spliced_connections_closed_total", "outcome=\"error\""),
        0.0,
        "{}",
        m.summary()
    );
    // Bursts are spliced; bytes that arrive with a peer's FIN end through
    // one `recv` (it tells the end of file past a TCP urgent mark).
    let spliced = m.sum_with("spliced_bytes_total", "method=\"splice\"");
    assert!(
        spliced >= 0.95 * 2.0 * total as f64,
        "not spliced: {spliced} of {} bytes; {}",
        2 * total,
        m.summary()
    );
    upstream.abort();
}

/// (id, bytes sent, their SHA-256, bytes echoed back, their SHA-256, wrong bytes).
type Outcome = (u64, u64, [u8; 32], u64, [u8; 32], u64);

/// Writes connection `id`'s stream until `stop`, then shuts down and
/// reads the echo to EOF.
async fn client(
    proxy: SocketAddr,
    id: u64,
    mut stop: watch::Receiver<bool>,
) -> io::Result<Outcome> {
    let run = async {
        // Small buffers on the test's side, so that the proxy's pipes
        // fill with less data.
        let socket = TcpSocket::new_v4()?;
        socket.set_send_buffer_size(64 << 10)?;
        let mut s = socket.connect(proxy).await?;
        s.write_all(&id.to_le_bytes()).await?;
        let (mut r, mut w) = s.split();
        let mut tx = Producer::new(up_stream(id));
        let mut rx = Checker::new(up_stream(id), u64::MAX);
        let send = async {
            loop {
                let chunk = tx.next(64 << 10);
                tokio::select! {
                    written = w.write(chunk) => tx.commit_prefix(written?),
                    _ = stop.wait_for(|&s| s) => break,
                }
            }
            w.shutdown().await?;
            Ok::<_, io::Error>(())
        };
        let mut buf = vec![0u8; 64 << 10];
        let read = async {
            loop {
                let n = r.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, io::Error>(());
                }
                rx.take(&buf[..n]);
            }
        };
        let (sent, read) = tokio::join!(send, read);
        sent?;
        read?;
        Ok((id, tx.sent, tx.sha(), rx.got, rx.sha(), rx.bad))
    };
    tokio::time::timeout(CONN_TIMEOUT, run)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("client {id} hung")))?
}

async fn upstream(
    listener: TcpListener,
    gate: watch::Receiver<bool>,
    seen: Arc<Mutex<HashMap<u64, Seen>>>,
) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let mut gate = gate.clone();
        let seen = Arc::clone(&seen);
        conns.spawn(async move {
            let mut id = [0u8; 8];
            s.read_exact(&mut id).await?;
            let id = u64::from_le_bytes(id);
            let _ = gate.wait_for(|&open| open).await;
            let mut rx = Checker::new(up_stream(id), u64::MAX);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                rx.take(&buf[..n]);
                s.write_all(&buf[..n]).await?;
            }
            seen.lock().unwrap().insert(
                id,
                Seen {
                    received: rx.got,
                    sha: rx.sha(),
                    bad: rx.bad,
                },
            );
            s.shutdown().await?;
            Ok::<_, io::Error>(())
        });
    }
}
