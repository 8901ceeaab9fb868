//! Helpers shared by the integration tests: fd accounting through
//! `/proc/self/fd`, fd flags through `fcntl` and `/proc/self/fdinfo`, and a
//! serializing lock for the tests that count fds.
//!
//! Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unreachable_pub)] // shared by several test binaries, each using a part

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The fds open in this process right now (the fd `read_dir` itself holds
/// while listing is not included).
pub fn open_fds() -> BTreeSet<RawFd> {
    let dir = fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    let mut fds: BTreeSet<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory fd of the listing is gone now; drop the entries that no
    // longer exist (it is the only one that can have closed meanwhile).
    fds.retain(|&fd| fd_is_open(fd));
    fds
}

/// How many fds this process has open (cheap enough to poll with
/// thousands open: one directory listing, no per-fd syscall).
pub fn fd_count() -> usize {
    let dir = fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    // Minus the listing's own directory fd, which it always shows.
    dir.count() - 1
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok()
}

/// What `fd` points to, as `/proc/self/fd` says: `pipe:[inode]` for a pipe.
/// Pipe inodes are never reused while the process runs (they come from a
/// counter), unlike fd numbers, so this identifies a pipe.
pub fn fd_target(fd: RawFd) -> io::Result<String> {
    Ok(fs::read_link(format!("/proc/self/fd/{fd}"))?
        .to_string_lossy()
        .into_owned())
}

/// The `flags:` field of `/proc/self/fdinfo/<fd>` (the file status flags
/// and `O_CLOEXEC`, in octal there).
pub fn fdinfo_flags(fd: RawFd) -> u32 {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).expect("read fdinfo");
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("fdinfo has a flags: line");
    u32::from_str_radix(line.trim(), 8).expect("fdinfo flags are octal")
}

/// Runs `f` on a borrowed handle to `fd`.
///
/// # Panics
/// If `fd` is not open (checked first, so the borrow never names a closed
/// fd).
pub fn with_fd<R>(fd: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
    assert!(fd_is_open(fd), "fd {fd} is not open");
    // SAFETY: `fd` is open (checked above) and owned by a value the caller
    // keeps alive across this call; the borrow does not outlive `f`.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    f(fd)
}

/// `fcntl(F_GETFD)` has `FD_CLOEXEC`.
pub fn is_cloexec(fd: RawFd) -> bool {
    with_fd(fd, |fd| {
        rustix::io::fcntl_getfd(fd)
            .expect("F_GETFD")
            .contains(rustix::io::FdFlags::CLOEXEC)
    })
}

/// `fcntl(F_GETFL)` has `O_NONBLOCK`.
pub fn is_nonblocking(fd: RawFd) -> bool {
    with_fd(fd, |fd| {
        rustix::fs::fcntl_getfl(fd)
            .expect("F_GETFL")
            .contains(rustix::fs::OFlags::NONBLOCK)
    })
}

/// `fcntl(F_GETPIPE_SZ)`.
pub fn pipe_size(fd: RawFd) -> usize {
    with_fd(fd, |fd| {
        rustix::pipe::fcntl_getpipe_size(fd).expect("F_GETPIPE_SZ")
    })
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).expect("page size")
}

static FD_LOCK: Mutex<()> = Mutex::new(());

/// Serializes the tests of one binary that open fds or count them, so that
/// a count is never disturbed by a test running alongside. Tolerates a
/// panicked (failed) test holding it before. Before returning, waits (at
/// most 2 s) until the fd count has held still for 100 ms: the test before
/// may have left threads that close fds after it returned (a runtime's
/// blocking pool, a socket's last close on another thread), which a count
/// taken as a baseline would otherwise include.
pub fn fd_lock() -> MutexGuard<'static, ()> {
    let guard = FD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let deadline = Instant::now() + Duration::from_secs(2);
    let (mut last, mut since) = (fd_count(), Instant::now());
    while since.elapsed() < Duration::from_millis(100) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
        let now = fd_count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    guard
}

/// Polls `cond` every millisecond until it holds or `timeout` has passed.
/// Returns how long it took, or `None` on timeout.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Blocks until `fd` is readable (or hung up).
pub fn wait_readable(fd: impl AsFd) {
    wait(fd, rustix::event::PollFlags::IN);
}

/// Blocks until `fd` is writable (or in error).
pub fn wait_writable(fd: impl AsFd) {
    wait(fd, rustix::event::PollFlags::OUT);
}

/// Blocks in `poll(2)` until `fd` has one of `events` (or an error).
fn wait(fd: impl AsFd, events: rustix::event::PollFlags) {
    let mut fds = [rustix::event::PollFd::new(&fd, events)];
    loop {
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            other => {
                other.expect("poll");
                return;
            }
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to at least `n` (up to the hard limit)
/// for the tests that hold many pipes. Returns the soft limit now in force.
pub fn raise_nofile(n: u64) -> u64 {
    rlimit::increase_nofile_limit(n).expect("setrlimit(RLIMIT_NOFILE)")
}

/// Moves everything from `src` to `dst` through `pipe` with
/// `splice_from`/`splice_to`, until end of file on `src`. `dst` must be
/// blocking; `src` may be either. Returns the bytes moved.
pub fn pump(pipe: &mut impl Pump, src: impl AsFd, dst: impl AsFd) -> u64 {
    let mut total = 0u64;
    loop {
        let capacity = pipe.capacity();
        match pipe.splice_from(src.as_fd(), capacity) {
            Ok(0) => return total,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(&src);
                continue;
            }
            Err(e) => panic!("splice_from: {e}"),
        }
        while pipe.len() > 0 {
            let len = pipe.len();
            match pipe.splice_to(dst.as_fd(), len) {
                Ok(n) => total += n as u64,
                // SPLICE_F_NONBLOCK can make a blocking socket answer EAGAIN.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(&dst),
                Err(e) => panic!("splice_to: {e}"),
            }
        }
    }
}

/// A pipe [`pump`] can drive: a [`pipepool::Pipe`] or a pool's guard
/// (which forwards the splices, having no `&mut Pipe` to give).
pub trait Pump {
    fn splice_from(&mut self, src: BorrowedFd<'_>, max: usize) -> io::Result<usize>;
    fn splice_to(&mut self, dst: BorrowedFd<'_>, max: usize) -> io::Result<usize>;
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
}

macro_rules! impl_pump {
    ($($t:ty),*) => {$(
        impl Pump for $t {
            fn splice_from(&mut self, src: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
                <$t>::splice_from(self, src, max)
            }
            fn splice_to(&mut self, dst: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
                <$t>::splice_to(self, dst, max)
            }
            fn len(&self) -> usize {
                pipepool::Pipe::len(self)
            }
            fn capacity(&self) -> usize {
                pipepool::Pipe::capacity(self)
            }
        }
    )*};
}
impl_pump!(
    pipepool::Pipe,
    pipepool::PooledPipe<'_>,
    pipepool::OwnedPipe
);

/// `len` bytes of a fixed, position-dependent pattern (so a reordering or a
/// dropped chunk shows): test stream 0 of [`pattern_of`].
pub fn pattern(len: usize) -> Vec<u8> {
    pattern_of(0, len)
}

/// The first `len` bytes of test stream `stream`: pseudo-random and
/// position-dependent, so a dropped, repeated or reordered chunk shows,
/// and so does a byte of another stream. The one test data generator of
/// this crate's tests.
pub fn pattern_of(stream: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut index = 0u64;
    while out.len() < len {
        out.extend_from_slice(&pattern_word(stream, index).to_le_bytes());
        index += 1;
    }
    out.truncate(len);
    out
}

/// Word `index` of test stream `stream` (SplitMix64's finalizer of both).
fn pattern_word(stream: u64, index: u64) -> u64 {
    let mut z =
        stream.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How many of this process's fds point to something whose
/// `/proc/self/fd` link starts with one of `kinds` (`"pipe:"`, `"socket:"`,
/// `"anon_inode:"`, ...).
pub fn fd_count_of(kinds: &[&str]) -> usize {
    let dir = fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            kinds.iter().any(|k| target.starts_with(k))
        })
        .count()
}

/// How many of this process's fds are pipes (`/proc/self/fd/N -> pipe:[..]`).
pub fn pipe_fd_count() -> usize {
    fd_count_of(&["pipe:"])
}

/// How many of this process's fds are pipes or sockets: what a copy could
/// leak. Unlike [`fd_count`], not disturbed by a runtime that a previous
/// test dropped and whose threads still close its epoll and eventfd fds.
pub fn pipe_and_socket_fd_count() -> usize {
    fd_count_of(&["pipe:", "socket:"])
}

/// Raises `RLIMIT_NOFILE` (soft, and hard too when allowed: root) to at
/// least `n`. Returns the soft limit now in force, which is below `n` only
/// when the hard limit could not be raised.
pub fn raise_nofile_hard(n: u64) -> u64 {
    let (_, hard) = rlimit::Resource::NOFILE
        .get()
        .expect("getrlimit(RLIMIT_NOFILE)");
    if hard < n {
        // Root may raise the hard limit; anyone else gets EPERM and the
        // soft limit goes up to the hard one only.
        let _ = rlimit::Resource::NOFILE.set(n, n);
    }
    raise_nofile(n)
}

/// The urgent-data cases of the sync and async copy tests.
pub mod urgent;

/// Helpers for the `tokio_*` tests: loopback pairs, a checked byte stream,
/// timeouts.
#[cfg(feature = "tokio")]
pub mod net {
    use std::future::Future;
    use std::io;
    use std::sync::OnceLock;
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpSocket, TcpStream};
    use tokio::sync::Mutex;

    /// Runs `fut`, panicking with `what` if it takes longer than `secs`:
    /// a bug fails the test instead of hanging it.
    pub async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
        match tokio::time::timeout(Duration::from_secs(secs), fut).await {
            Ok(out) => out,
            Err(_) => panic!("{what}: still running after {secs} s"),
        }
    }

    /// Makes connected loopback TCP pairs from one listener (backlog 4096).
    /// Connect and accept are serialized, so each caller gets its own
    /// connection's two ends even when many tasks make pairs at once.
    pub struct Pairs {
        listener: TcpListener,
        lock: Mutex<()>,
    }

    impl Pairs {
        /// A listener on 127.0.0.1, port chosen by the kernel.
        pub fn new() -> Pairs {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
            Pairs {
                listener: socket.listen(4096).expect("listen"),
                lock: Mutex::new(()),
            }
        }

        /// A connected pair: (connecting end, accepted end).
        pub async fn pair(&self) -> (TcpStream, TcpStream) {
            let _one_at_a_time = self.lock.lock().await;
            let addr = self.listener.local_addr().expect("local_addr");
            let (connected, accepted) =
                tokio::join!(TcpStream::connect(addr), self.listener.accept());
            let connected = connected.expect("connect");
            let (accepted, peer) = accepted.expect("accept");
            assert_eq!(peer, connected.local_addr().expect("local_addr"));
            (connected, accepted)
        }
    }

    /// A runtime: multi-thread with 2 workers, or current-thread; all
    /// drivers on.
    pub fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
        let mut builder = if multi_thread {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        builder.enable_all().build().expect("runtime")
    }

    /// Builds and drops a runtime, once per process: tokio opens a socket
    /// pair for signal delivery the first time a runtime is built, and keeps
    /// it for the life of the process. Call before taking an fd baseline.
    pub fn warm_up_runtime() {
        static WARM_UP: std::sync::Once = std::sync::Once::new();
        WARM_UP.call_once(|| drop(runtime(true)));
    }

    /// Runs `fut` on a runtime of its own, for the tests that count pipes
    /// and sockets: waits afterwards until the runtime's teardown (which
    /// finishes on its own threads) has closed its fds, so the next test
    /// starts from a clean count, and panics if pipes or sockets are left
    /// over. Take [`super::fd_lock`] first.
    pub fn run_counted<F: Future>(multi_thread: bool, fut: F) -> F::Output {
        warm_up_runtime();
        let before = super::pipe_and_socket_fd_count();
        let out = runtime(multi_thread).block_on(fut);
        let settled = super::wait_until(Duration::from_secs(10), || {
            super::pipe_and_socket_fd_count() <= before
        });
        assert!(
            settled.is_some(),
            "{} pipe and socket fds left, {before} before the runtime",
            super::pipe_and_socket_fd_count()
        );
        out
    }

    /// Asks for 8 KiB socket buffers (the kernel doubles that) on each of
    /// `sockets`, so that a relay writing to them soon has to wait, holding
    /// a pipe full of bytes meanwhile. (Buffers below loopback's 64 KiB MSS
    /// can make TCP's silly-window avoidance stall a sender until a persist
    /// timeout: slower, never wrong.)
    pub fn small_buffers(sockets: &[&TcpStream]) {
        use rustix::net::sockopt;
        for s in sockets {
            sockopt::set_socket_send_buffer_size(s, 8 << 10).expect("SO_SNDBUF");
            sockopt::set_socket_recv_buffer_size(s, 8 << 10).expect("SO_RCVBUF");
        }
    }

    /// A relay task: `copy_bidirectional_with` between two sockets.
    pub type Relay =
        tokio::task::JoinHandle<Result<pipepool::tokio::BidiReport, pipepool::tokio::BidiError>>;

    /// `n` relays, `client <-> a | copy_bidirectional_with | b <-> server`,
    /// each on a task of its own with `opts`; returns the far ends
    /// `(client, server)` and the tasks.
    pub async fn spawn_relays(
        n: usize,
        opts: &pipepool::tokio::CopyOptions,
    ) -> (Vec<(TcpStream, TcpStream)>, Vec<Relay>) {
        let (front, back) = (Pairs::new(), Pairs::new());
        let mut peers = Vec::with_capacity(n);
        let mut relays = Vec::with_capacity(n);
        within(120, "connecting", async {
            for _ in 0..n {
                let (client, mut a) = front.pair().await;
                let (mut b, server) = back.pair().await;
                let opts = opts.clone();
                relays.push(tokio::spawn(async move {
                    pipepool::tokio::copy_bidirectional_with(&mut a, &mut b, &opts).await
                }));
                peers.push((client, server));
            }
        })
        .await;
        (peers, relays)
    }

    /// Sends one byte client -> server and one back on every pair.
    pub async fn one_byte_each_way(peers: &mut [(TcpStream, TcpStream)]) {
        within(120, "one byte each way", async {
            for (client, server) in peers {
                let mut byte = [0u8; 1];
                client.write_all(b"?").await.unwrap();
                server.read_exact(&mut byte).await.unwrap();
                server.write_all(b"!").await.unwrap();
                client.read_exact(&mut byte).await.unwrap();
                assert_eq!(&byte, b"!");
            }
        })
        .await;
    }

    /// Hangs up every pair and checks that every relay then ends, having
    /// moved one byte each way.
    pub async fn hang_up(peers: Vec<(TcpStream, TcpStream)>, relays: Vec<Relay>) {
        drop(peers);
        within(120, "relays", async {
            for relay in relays {
                let report = relay.await.unwrap().expect("relay");
                assert_eq!((report.a_to_b.bytes, report.b_to_a.bytes), (1, 1));
            }
        })
        .await;
    }

    /// One connected loopback TCP pair.
    pub async fn tcp_pair() -> (TcpStream, TcpStream) {
        Pairs::new().pair().await
    }

    /// The checked streams repeat a random block of this many bytes: a
    /// prime, so that no pipe or buffer size lines up with it.
    pub const PERIOD: usize = 1_000_003;

    /// The random block of stream `which` (0 or 1).
    fn block(which: usize) -> &'static [u8] {
        static BLOCKS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
        let blocks =
            BLOCKS.get_or_init(|| [super::pattern_of(1, PERIOD), super::pattern_of(2, PERIOD)]);
        &blocks[which]
    }

    /// Writes the first `len` bytes of checked stream `which`.
    pub async fn send_stream<W>(w: &mut W, which: usize, len: u64) -> io::Result<()>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let block = block(which);
        let mut pos = 0u64;
        while pos < len {
            let at = (pos % PERIOD as u64) as usize;
            let n = (PERIOD - at).min((len - pos).min(256 << 10) as usize);
            w.write_all(&block[at..at + n]).await?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Reads to end of file, checking every byte against stream `which`.
    /// Returns the bytes read.
    ///
    /// # Panics
    /// At the first byte that differs.
    pub async fn recv_stream<R>(r: &mut R, which: usize) -> io::Result<u64>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        recv_stream_slowly(r, which, 256 << 10, Duration::ZERO).await
    }

    /// [`recv_stream`] reading at most `chunk` bytes at a time, sleeping
    /// `pause` between reads.
    pub async fn recv_stream_slowly<R>(
        r: &mut R,
        which: usize,
        chunk: usize,
        pause: Duration,
    ) -> io::Result<u64>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        let block = block(which);
        let mut buf = vec![0u8; chunk];
        let mut pos = 0u64;
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(pos);
            }
            let mut got = &buf[..n];
            while !got.is_empty() {
                let at = (pos % PERIOD as u64) as usize;
                let k = got.len().min(PERIOD - at);
                assert!(
                    got[..k] == block[at..at + k],
                    "stream {which}: wrong bytes in {pos}..{}",
                    pos + k as u64
                );
                pos += k as u64;
                got = &got[k..];
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// `on_both_runtimes!(a, b)`: for each `async fn a()` of the test file, a
/// `#[tokio::test]` on a 2-worker multi-thread runtime (`multi_thread::a`)
/// and one on a current-thread runtime (`current_thread::a`).
#[cfg(feature = "tokio")]
#[allow(unused_macros)] // most test binaries do not use it
macro_rules! on_both_runtimes {
    ($($scenario:ident),* $(,)?) => {
        mod multi_thread {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario().await
                }
            )*
        }
        mod current_thread {
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $scenario() {
                    super::$scenario().await
                }
            )*
        }
    };
}
