//! The two ends around the proxy, on threads of the test (inside its
//! namespace): upstream servers, clients, and what the tests read from
//! the proxy's `/proc` entry.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::util::{fill, Proc};

/// Upper bound of any blocking socket call of the peers: a fault that
/// hangs a test fails it instead.
pub(crate) const IO_LIMIT: Duration = Duration::from_secs(60);

/// An echo upstream on a thread; each connection echoes until EOF.
pub(crate) fn echo_server() -> SocketAddr {
    serve(|mut s| crate::util::echo_until_eof(&mut s))
}

/// An upstream that writes `size` bytes of stream `port-of-client` to each
/// connection, then shuts down its write side and waits for EOF.
pub(crate) fn download_server(size: u64) -> SocketAddr {
    serve(move |mut s| {
        let stream = stream_of(&s);
        if write_stream(&mut s, stream, 0, size).is_ok() {
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read(&mut [0u8; 16]);
        }
    })
}

/// An upstream that writes its stream to each connection until a write
/// fails or `limit` bytes are written (a download that outlasts the test).
pub(crate) fn endless_server(limit: u64) -> SocketAddr {
    serve(move |mut s| {
        let stream = stream_of(&s);
        let _ = write_stream(&mut s, stream, 0, limit);
    })
}

/// An upstream that, on each connection, writes its stream until the path
/// is full (a write blocks for 500 ms: the client does not read), then
/// closes with an RST (`SO_LINGER` 0) and sends the bytes it wrote. The
/// bytes still in its own send buffer are lost with the RST; every byte
/// the proxy received must reach the client before the client sees the
/// reset.
pub(crate) fn fill_then_reset_server() -> (SocketAddr, Receiver<u64>) {
    let (tx, rx) = mpsc::channel();
    let addr = serve(move |mut s| {
        let stream = stream_of(&s);
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut off = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + IO_LIMIT;
        while Instant::now() < deadline {
            fill(stream, off, &mut buf);
            match s.write(&buf) {
                Ok(n) => off += n as u64,
                Err(_) => break,
            }
        }
        reset(s);
        let _ = tx.send(off);
    });
    (addr, rx)
}

/// Closes `s` with an RST.
pub(crate) fn reset(s: TcpStream) {
    SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(s);
}

/// An upstream that reads each connection until EOF or an error and
/// sends how it ended: the bytes it read and the error kind, if any.
pub(crate) fn sink_server() -> (SocketAddr, Receiver<(u64, Option<ErrorKind>)>) {
    let (tx, rx) = mpsc::channel();
    let addr = serve(move |mut s| {
        let mut n = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let end = loop {
            match s.read(&mut buf) {
                Ok(0) => break None,
                Ok(k) => n += k as u64,
                Err(e) => break Some(e.kind()),
            }
        };
        let _ = tx.send((n, end));
    });
    (addr, rx)
}

/// Accepts on a fresh port of 127.0.0.1 and runs `each` per connection on
/// its own thread (with [`IO_LIMIT`] on reads and writes). The threads end
/// with the test process.
fn serve(each: impl Fn(TcpStream) + Send + Sync + Clone + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            s.set_read_timeout(Some(IO_LIMIT)).unwrap();
            s.set_write_timeout(Some(IO_LIMIT)).unwrap();
            let each = each.clone();
            thread::spawn(move || each(s));
        }
    });
    addr
}

/// The byte stream of a connection, named by the client's port (as the
/// upstream sees it, that is the proxy's port: unique while it is open).
fn stream_of(s: &TcpStream) -> u64 {
    u64::from(s.peer_addr().unwrap().port())
}

/// Writes bytes `from..to` of `stream`.
fn write_stream(s: &mut TcpStream, stream: u64, from: u64, to: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = from;
    while off < to {
        let n = buf.len().min((to - off) as usize);
        fill(stream, off, &mut buf[..n]);
        s.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// A client connection to the proxy, with [`IO_LIMIT`] on its calls.
pub(crate) fn client(proxy: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(proxy).expect("connect to the proxy");
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    s.set_write_timeout(Some(IO_LIMIT)).unwrap();
    s
}

/// How a download ended, seen by the client.
#[derive(Debug)]
pub(crate) struct Download {
    /// Bytes received.
    pub(crate) bytes: u64,
    /// Whether every byte was the stream's byte at its position.
    pub(crate) intact: bool,
    /// `None` for a clean end of stream (FIN), else the error's kind.
    pub(crate) end: Option<ErrorKind>,
    /// When it ended.
    pub(crate) at: Instant,
}

/// Reads `s` to its end, checking each byte against the stream the
/// upstream wrote. The stream is named by the proxy's port toward the
/// upstream, which the client does not know: it is taken as the one the
/// first 8 bytes match (`streams` are the candidates, none: no check).
/// `pace`: sleep that long after each read of at most `chunk` bytes (a
/// slow client).
pub(crate) fn read_download(mut s: TcpStream, chunk: usize, pace: Duration) -> (Vec<u8>, Download) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e.kind()),
        }
        if !pace.is_zero() {
            thread::sleep(pace);
        }
    };
    let download = Download {
        bytes: got.len() as u64,
        intact: is_prefix_of_a_stream(&got),
        end,
        at: Instant::now(),
    };
    (got, download)
}

/// Whether `data` is a prefix of one of the upstream's streams (named by
/// a port: all 65,536 are tried on the first 8 bytes, then the match is
/// checked whole).
pub(crate) fn is_prefix_of_a_stream(data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    let head = &data[..data.len().min(8)];
    let mut probe = vec![0u8; head.len()];
    let mut whole = vec![0u8; data.len()];
    (0..=u64::from(u16::MAX)).any(|stream| {
        fill(stream, 0, &mut probe);
        probe == head && {
            fill(stream, 0, &mut whole);
            whole == data
        }
    })
}

/// Spawns `spliced run` (inside the calling thread's namespace) with one
/// listener on a fresh port of 127.0.0.1, the `upstreams`, metrics on a
/// fresh port, and `extra` flags; returns it with its listener and
/// metrics addresses.
pub(crate) fn spliced(upstreams: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let ups: Vec<String> = upstreams.iter().map(|u| u.to_string()).collect();
    let mut args = vec!["run", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"];
    for u in &ups {
        args.extend(["--upstream", u.as_str()]);
    }
    args.extend(extra);
    let mut proc = Proc::spawn(&args);
    let listen = proc.listen_addr();
    let metrics = crate::util::faults_common::metrics_addr(&mut proc);
    (proc, listen, metrics)
}

/// Open fds of `pid` that are pipes.
pub(crate) fn pipe_fds(pid: u32) -> usize {
    fds_of_kind(pid, "pipe:")
}

/// `ss` of the sockets in this namespace, for a failure message.
pub(crate) fn socket_table() -> String {
    std::process::Command::new("ss")
        .args(["-tanpo"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The fds of `pid` whose link target starts with `kind`.
fn fds_of_kind(pid: u32, kind: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with(kind))
        .count()
}

/// Resident memory of `pid`, in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
