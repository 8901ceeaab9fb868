//! Helpers for the tests that run the real `spliced` binary: a child
//! process guard that kills on drop, line waits with timeouts, small
//! upstream servers on threads, config files, data and hashes.
#![allow(dead_code)] // each test file uses a different part

pub(crate) mod faults_common;
pub(crate) mod tls;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_spliced");

/// How long any single wait may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A running `spliced`, killed when dropped.
pub(crate) struct Proc {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `spliced ARGS` with `RUST_LOG=info` unless `env` says else.
    pub(crate) fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_env(args, &[])
    }

    /// Starts `spliced ARGS` with extra environment variables.
    pub(crate) fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        Proc::start(cmd, env)
    }

    /// Starts `spliced ARGS` under a hard and soft fd limit of `nofile`.
    pub(crate) fn spawn_with_fd_limit(nofile: u32, args: &[&str]) -> Proc {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(args);
        Proc::start(cmd, &[])
    }

    /// Starts `cmd` (which runs the binary, e.g. through `sh -c`) like
    /// [`Proc::spawn_env`] does.
    pub(crate) fn spawn_command(cmd: Command, env: &[(&str, &str)]) -> Proc {
        Proc::start(cmd, env)
    }

    fn start(mut cmd: Command, env: &[(&str, &str)]) -> Proc {
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn spliced");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Proc {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stdout line containing `needle`; panics after [`WAIT`].
    pub(crate) fn wait_for_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.stdout.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} on stdout; stdout so far: {:?}\nstderr:\n{}",
                    self.stdout,
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for a stdout line containing `needle` printed from now on
    /// (not one seen before); panics after [`WAIT`].
    pub(crate) fn wait_for_new_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no new line with {needle:?} on stdout; stdout so far: {:?}\nstderr:\n{}",
                    self.stdout,
                    self.stderr()
                ),
            }
        }
    }

    /// Writes `text` to `config`, sends SIGHUP and waits for the reload
    /// to be announced; panics if it fails.
    pub(crate) fn reload(&mut self, config: &ConfigFile, text: &str) -> String {
        std::fs::write(&config.path, text).unwrap();
        self.signal(rustix::process::Signal::HUP);
        loop {
            let line = self.wait_for_new_line("reload");
            assert!(!line.contains("reload failed"), "{line}");
            if line.contains("reloaded") {
                return line;
            }
        }
    }

    /// The addresses of the first `n` "listening on ADDR" lines.
    pub(crate) fn listen_addrs(&mut self, n: usize) -> Vec<SocketAddr> {
        let mut addrs = Vec::new();
        while addrs.len() < n {
            let _ = self.wait_for_line("listening on");
            addrs = self
                .stdout
                .iter()
                .filter_map(|l| l.split("listening on ").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
                .collect();
            if addrs.len() < n {
                // wait for the next line
                let line = self.lines.recv_timeout(WAIT).expect("more listening lines");
                self.stdout.push(line);
                addrs.clear();
            }
        }
        addrs.truncate(n);
        addrs
    }

    /// The address of the only listener.
    pub(crate) fn listen_addr(&mut self) -> SocketAddr {
        self.listen_addrs(1)[0]
    }

    /// Sends a signal.
    pub(crate) fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Waits for the exit; panics after `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "spliced did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `spliced ARGS` to the end (killed after `timeout`).
pub(crate) fn run(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spliced");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&e.join().unwrap()).into_owned();
            panic!("spliced {args:?} did not finish within {timeout:?}; stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// A config file, deleted on drop.
pub(crate) struct ConfigFile {
    pub(crate) path: PathBuf,
}

impl ConfigFile {
    pub(crate) fn new(text: &str) -> ConfigFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "spliced-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        ConfigFile { path }
    }

    pub(crate) fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Echoes what `s` (a TCP or Unix stream) sends until end of file (or an
/// error), then shuts its write half down.
pub(crate) fn echo_until_eof<S: Read + Write + std::os::fd::AsFd>(s: &mut S) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = rustix::net::shutdown(&*s, rustix::net::Shutdown::Write);
}

/// An echo upstream on threads: each connection echoes until EOF, then
/// shuts its write half down.
pub(crate) fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            thread::spawn(move || echo_until_eof(&mut s));
        }
    });
    addr
}

/// An upstream on a thread: on each connection it writes `tag` and a
/// newline, then echoes until EOF.
pub(crate) fn tag_server(tag: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tag = format!("{tag}\n");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let tag = tag.clone();
            thread::spawn(move || {
                let _ = s.write_all(tag.as_bytes());
                echo_until_eof(&mut s);
            });
        }
    });
    addr
}

/// A port that refuses connections: a socket bound to it but not
/// listening, kept for the life of the test process, so no other process
/// (another test binary, a concurrent build's tests) can take the port and
/// answer (a closed listener's port could be reused at once).
pub(crate) fn dead_addr() -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    static HELD: Mutex<Vec<Socket>> = Mutex::new(Vec::new());
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    HELD.lock().unwrap().push(s);
    addr
}

/// Connects with read/write timeouts of [`WAIT`].
pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads one `\n`-terminated line (without the newline).
pub(crate) fn read_line(s: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ if b[0] == b'\n' => return Ok(String::from_utf8_lossy(&line).into_owned()),
            _ => line.push(b[0]),
        }
    }
}

/// The SplitMix64 finalizer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `index` of test byte stream `stream`: every stream is its own
/// pseudo-random sequence, so a byte of one stream found at a position of
/// another is caught. The one test data generator of this crate
/// ([`fill`], [`random_bytes`], and the fault tests' streams).
pub(crate) fn word(stream: u64, index: u64) -> u64 {
    mix(stream.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ mix(index ^ 0x5851_F42D_4C95_7F2D))
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

/// The first `len` bytes of test stream `seed` (see [`fill`]).
pub(crate) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill(seed, 0, &mut out);
    out
}

/// SHA-256 as hex.
pub(crate) fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `GET path` over HTTP/1.1 on `addr`; returns (status line, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// Polls `f` every 20 ms until it returns `Some`; panics after [`WAIT`].
pub(crate) fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Where `proc` serves `/metrics`, from its "metrics on http://" line.
pub(crate) fn metrics_at(proc: &mut Proc) -> SocketAddr {
    let line = proc.wait_for_line("metrics on http://");
    line.split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .parse()
        .unwrap()
}

/// The value of the sample `name{labels}` on `/metrics` at `addr` (0 when
/// absent).
pub(crate) fn sample_value(addr: SocketAddr, sample: &str) -> f64 {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Connects to `addr` from the local address `from` (port 0), with read
/// and write timeouts of [`WAIT`]: e.g. from 127.0.0.2, which loopback
/// accepts as a source.
pub(crate) fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .expect("bind the client's source address");
    socket.connect_timeout(&addr.into(), WAIT).expect("connect");
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads exactly one PROXY protocol header (v1 line or v2 binary) from
/// `s`, byte-exact, and returns its bytes.
pub(crate) fn read_proxy_header(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; 16];
    s.read_exact(&mut head[..5])?;
    if &head[..5] == b"PROXY" {
        head.truncate(5);
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            s.read_exact(&mut b)?;
            head.push(b[0]);
            if head.len() > 107 {
                return Err(io::Error::other("v1 line longer than 107 bytes"));
            }
        }
        return Ok(head);
    }
    s.read_exact(&mut head[5..16])?;
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    head.resize(16 + len, 0);
    s.read_exact(&mut head[16..])?;
    Ok(head)
}

/// An upstream on a thread that reads a PROXY header from each
/// connection, sends its bytes to the returned channel, then echoes until
/// EOF.
pub(crate) fn proxy_header_server() -> (SocketAddr, Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let tx = tx.clone();
            thread::spawn(move || {
                s.set_read_timeout(Some(WAIT)).unwrap();
                let Ok(h) = read_proxy_header(&mut s) else {
                    return;
                };
                let _ = tx.send(h);
                echo_until_eof(&mut s);
            });
        }
    });
    (addr, rx)
}

/// Polls `cond` every 20 ms for at most `within`; whether it came true.
pub(crate) fn wait_until_within(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
