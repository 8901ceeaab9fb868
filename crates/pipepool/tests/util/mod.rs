//! Helpers shared by the integration tests: fd accounting through
//! `/proc/self/fd`, fd flags through `fcntl` and `/proc/self/fdinfo`, and a
//! serializing lock for the tests that count fds.
//!
//! Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

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
/// panicked (failed) test holding it before.
pub fn fd_lock() -> MutexGuard<'static, ()> {
    FD_LOCK.lock().unwrap_or_else(|p| p.into_inner())
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
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
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

/// Blocks until `fd` is writable (or in error).
pub fn wait_writable(fd: impl AsFd) {
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::OUT,
    )];
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
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    match lim.current {
        Some(cur) if cur < n => {
            lim.current = Some(lim.maximum.map_or(n, |max| max.min(n)));
            setrlimit(Resource::Nofile, lim.clone()).expect("setrlimit(RLIMIT_NOFILE)");
            lim.current.unwrap_or(u64::MAX)
        }
        cur => cur.unwrap_or(u64::MAX),
    }
}

/// Moves everything from `src` to `dst` through `pipe` with
/// `splice_from`/`splice_to`, until end of file on `src`. `dst` must be
/// blocking; `src` may be either. Returns the bytes moved.
pub fn pump(pipe: &mut pipepool::Pipe, src: impl AsFd, dst: impl AsFd) -> u64 {
    let mut total = 0u64;
    loop {
        match pipe.splice_from(&src, pipe.capacity()) {
            Ok(0) => return total,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(&src);
                continue;
            }
            Err(e) => panic!("splice_from: {e}"),
        }
        while !pipe.is_empty() {
            match pipe.splice_to(&dst, pipe.len()) {
                Ok(n) => total += n as u64,
                // SPLICE_F_NONBLOCK can make a blocking socket answer EAGAIN.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(&dst),
                Err(e) => panic!("splice_to: {e}"),
            }
        }
    }
}

/// `len` bytes of a fixed, position-dependent pattern (so a reordering or a
/// dropped chunk shows).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}
