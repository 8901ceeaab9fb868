// A binary of its own: each round forks a child in which the crate's
// process-wide values (the global pool, the fork handlers' registration,
// whether the heavy fence works) were never initialised, which no other
// test of a shared binary could promise.
//! A fork while another thread initialises the crate's process-wide
//! values: the child must never block on a half-run initialisation.
//!
//! Each round forks a fresh child S (nothing of the crate initialised);
//! in S one thread builds the global pool and takes a pipe while the main
//! thread forks a grandchild G after a short, varying delay; G takes a
//! pipe from the global pool and builds a pool of its own. G must finish
//! within a bound; S reports a hang as its exit code.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use pipepool::PipePool;

/// How long a child may take before it counts as blocked.
const BOUND: Duration = Duration::from_secs(10);
const ROUNDS: u32 = 40;

/// Forks; the child runs `child` and leaves with its code (101 on a
/// panic). Returns the child's pid.
fn fork(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork; the child runs only `child` (pool calls, which the
    // pool's fork handlers make safe, threads, glibc's malloc, which is
    // fork-safe) and leaves with `_exit`, never returning to the caller.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: `_exit` never returns.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// The exit code of child `pid`, or `None` (and the child killed) if it
/// runs past `bound`.
fn wait(pid: libc::pid_t, bound: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                102
            });
        }
        if start.elapsed() > bound {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: reaps our own child; `status` is a valid out pointer.
            let _ = unsafe { libc::waitpid(pid, &mut status, 0) };
            return None;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// One round in a fresh child: see the module's doc. Exit codes: 0 fine,
/// 3 the grandchild hung, 4 it failed.
fn round(delay: Duration) -> i32 {
    let init = thread::spawn(|| {
        let pipe = PipePool::global().get().expect("a pipe in the parent");
        drop(pipe);
    });
    let start = Instant::now();
    while start.elapsed() < delay {
        std::hint::spin_loop();
    }
    let grandchild = fork(|| {
        let global = PipePool::global().get().is_ok();
        let own = PipePool::builder().build().unwrap();
        let own = own.get().is_ok();
        if global && own {
            0
        } else {
            4
        }
    });
    let code = wait(grandchild, BOUND).unwrap_or(3);
    init.join().unwrap();
    code
}

#[test]
fn a_fork_during_initialisation_never_blocks_the_child() {
    for i in 0..ROUNDS {
        // 0 to ~200 µs: before, during and after the initialisation.
        let delay = Duration::from_micros(u64::from(i % 20) * 10);
        let child = fork(move || round(delay));
        // Longer than the child's own bound on the grandchild.
        match wait(child, BOUND * 2) {
            Some(0) => {}
            Some(3) => panic!("round {i}: the grandchild blocked (forked {delay:?} into init)"),
            Some(code) => panic!("round {i}: the child failed with code {code}"),
            None => panic!("round {i}: the child itself blocked"),
        }
    }
}
