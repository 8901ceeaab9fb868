//! Issue 9 part 1, through the real binary: after a burst of load with
//! `--pipe-idle-timeout 1s`, the proxy's pipe fds are back to what they
//! were before the load within 3 s, although its worker threads (and their
//! pipe caches) stay alive and quiet.

use crate::util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{connect, read_line, tag_server, Proc};

/// Pipe fds the process holds (its stdio pipes included).
fn pipe_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("pipe:"))
        .count()
}

/// One stream: `len` bytes through the proxy to the echoing upstream and
/// back.
fn echo_through(proxy: SocketAddr, len: usize) {
    let mut s = connect(proxy);
    assert_eq!(read_line(&mut s).unwrap(), "up");
    let data = util::random_bytes(len as u64, len);
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), len);
}

#[test]
fn idle_pipes_are_closed_after_load_even_in_quiet_workers() {
    let upstream = tag_server("up");
    let up = upstream.to_string();
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--pipe-idle-timeout",
        "1s",
    ]);
    let proxy = proc.listen_addr();
    let pid = proc.pid();
    let before = pipe_fds(pid);

    // Watch the pipe count during the load, so the test knows pipes were
    // really used.
    let done = AtomicBool::new(false);
    let peak = AtomicUsize::new(before);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(pipe_fds(pid), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
        });
        // 16 concurrent streams, then short connections.
        thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| echo_through(proxy, 4 << 20));
            }
        });
        for _ in 0..32 {
            echo_through(proxy, 64 * 1024);
        }
        done.store(true, Ordering::Relaxed);
    });
    let peak = peak.into_inner();
    assert!(
        peak > before,
        "no pipe was ever open ({before} pipe fds before, {peak} at the peak): the test proves nothing"
    );

    let idle_since = Instant::now();
    let back = util::wait_until_within(Duration::from_secs(3), || pipe_fds(pid) <= before);
    assert!(
        back,
        "{} pipe fds {:?} after the load (before it: {before}, peak {peak}); stderr:\n{}",
        pipe_fds(pid),
        idle_since.elapsed(),
        proc.stderr()
    );
    eprintln!(
        "pipe fds: {before} before, {peak} at the peak, back to {} after {:?}",
        pipe_fds(pid),
        idle_since.elapsed()
    );
}
