// A binary of its own: the test re-runs this binary as a child that drops
// the whole process to `nobody` (setgroups/setgid/setuid) before it makes a
// pipe. (Other tests: tests/it/.)
//! The pool past `/proc/sys/fs/pipe-user-pages-soft`, as an unprivileged
//! user.
//!
//! Once a user without `CAP_SYS_RESOURCE`/`CAP_SYS_ADMIN` holds more pipe
//! pages than the soft limit, the kernel creates new pipes with the minimum
//! number of pages (1 before Linux 5.14, 2 since: `PIPE_MIN_DEF_BUFFERS`)
//! and refuses `F_SETPIPE_SZ` with `EPERM`. The pool must keep working with
//! those small pipes and report their real size.
//!
//! Root is exempt from the limit, which is exactly why the test drops to
//! `nobody`: the test re-runs its own binary with [`CHILD_ENV`] set; that
//! child calls `setgroups`/`setgid`/`setuid` (for the whole process) before
//! it creates any pipe, takes more 1 MiB pipes than the soft limit allows,
//! and prints what it saw on one `RESULT` line that the parent checks.

#[path = "it/util/mod.rs"]
mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pipepool::PoolConfig;

const CHILD_ENV: &str = "PIPEPOOL_TEST_UNPRIVILEGED_CHILD";
const TEST_NAME: &str = "past_pipe_user_pages_soft_the_pool_keeps_working";
const NOBODY: u32 = 65534;
const MIB: usize = 1 << 20;

#[test]
fn past_pipe_user_pages_soft_the_pool_keeps_working() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let page = util::page_size();
    let out = run_child();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| Some(l.split_once("RESULT ")?.1)) // libtest may print first
        .unwrap_or_else(|| panic!("no RESULT line from the child:\n{stdout}\n{stderr}"));
    let r: HashMap<&str, u64> = line
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k, v.parse().unwrap_or_else(|_| panic!("{kv}")))
        })
        .collect();
    let get = |k: &str| {
        *r.get(k)
            .unwrap_or_else(|| panic!("{k} missing from {line}"))
    };
    eprintln!("child: {line}");

    if rustix::process::geteuid().is_root() {
        assert_eq!(
            (get("uid"), get("gid")),
            (NOBODY as u64, NOBODY as u64),
            "the child did not drop to nobody"
        );
    }
    assert_eq!(
        get("cap_eff"),
        0,
        "the child kept capabilities (it would be exempt)"
    );

    let wanted = get("wanted");
    let soft_pipes = get("soft_pages") * page as u64 / MIB as u64;
    assert!(
        wanted > soft_pipes,
        "the test asked for no more than the soft limit"
    );
    // The pool kept working: every get gave a pipe.
    assert_eq!(get("got"), wanted, "gets failed past the soft limit");
    assert_eq!(get("failed"), 0);
    // The first pipes got the size asked for, the later ones the minimum.
    let (full, small, middle) = (get("full"), get("small"), get("middle"));
    assert!(
        full >= 1 && full <= soft_pipes,
        "{full} pipes of 1 MiB, soft limit {soft_pipes}"
    );
    assert!(small >= wanted - soft_pipes, "{small} minimum-size pipes");
    assert!(middle <= 1, "{middle} pipes between the minimum and 1 MiB");
    assert_eq!(full + small + middle, wanted);
    let last = get("last_capacity") as usize;
    assert!(
        last == page || last == 2 * page,
        "the last pipe has {last} bytes, not one or two pages"
    );
    // Every capacity() is what F_GETPIPE_SZ says, and the stats show it.
    assert_eq!(
        get("capacity_mismatches"),
        0,
        "capacity() differs from F_GETPIPE_SZ"
    );
    assert_eq!(get("undersized"), small + middle);
    assert_eq!(get("resize_failures"), small + middle);
    assert_eq!(get("capacity_bytes"), get("sum_capacity"));
    assert_eq!(get("live"), wanted);
    // Data goes through a small pipe intact.
    assert_eq!(get("spliced_capacity") as usize, last);
    assert_eq!(get("spliced"), get("splice_len"));
    assert_eq!(
        get("splice_intact"),
        1,
        "bytes differ after splicing through a small pipe"
    );
    // Given back, the small pipes are pooled like the others.
    assert_eq!((get("after_in_use"), get("after_live")), (0, wanted));
    assert_eq!(get("after_undersized"), small + middle);
}

/// Runs this test again in a child process with [`CHILD_ENV`] set.
fn run_child() -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        stderr.read_to_end(&mut v).unwrap();
        v
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child did not finish in 60 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Drops to `nobody` for the whole process (all threads), if root.
fn drop_privileges() {
    if !rustix::process::geteuid().is_root() {
        return; // already unprivileged: the limit applies as it is
    }
    // SAFETY: plain syscall wrappers; the pointer is null with a zero count.
    // glibc applies setgid/setuid to every thread of the process.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(NOBODY), 0, "setgid");
        assert_eq!(libc::setuid(NOBODY), 0, "setuid");
        // A uid change makes the process non-dumpable, which hides its own
        // /proc/self/fd from it; the fd helpers need it.
        assert_eq!(libc::prctl(libc::PR_SET_DUMPABLE, 1), 0, "PR_SET_DUMPABLE");
    }
}

fn read_number(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn cap_eff() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

fn child() {
    drop_privileges();
    let page = util::page_size();
    let soft_pages = read_number("/proc/sys/fs/pipe-user-pages-soft");
    assert!(
        soft_pages > 0,
        "pipe-user-pages-soft is 0 (no limit): nothing to test"
    );
    assert!(
        read_number("/proc/sys/fs/pipe-max-size") >= MIB as u64,
        "pipe-max-size is below 1 MiB"
    );
    let wanted = soft_pages as usize * page / MIB + 32;

    let pool = PoolConfig::builder()
        .max_pipes(wanted + 8)
        .max_idle(wanted + 8)
        .pipe_size(MIB)
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut held = Vec::new();
    let mut failed = 0;
    for _ in 0..wanted {
        match pool.get() {
            Ok(pipe) => held.push(pipe),
            Err(e) => {
                eprintln!("get failed: {e}");
                failed += 1;
            }
        }
    }
    let caps: Vec<usize> = held.iter().map(|p| p.capacity()).collect();
    let mismatches = held
        .iter()
        .filter(|p| p.capacity() != util::pipe_size(p.raw_fds().1))
        .count();
    let full = caps.iter().filter(|&&c| c == MIB).count();
    let small = caps.iter().filter(|&&c| c <= 2 * page).count();
    let middle = caps.len() - full - small;
    let s = pool.stats();

    // Splice through the last (smallest) pipe.
    let mut pipe = held.pop().unwrap();
    let spliced_capacity = pipe.capacity();
    let data = util::pattern(300_001);
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let (out, mut sink) = UnixStream::pair().unwrap();
    let to_send = data.clone();
    let writer = thread::spawn(move || tx.write_all(&to_send).unwrap());
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        sink.read_to_end(&mut got).unwrap();
        got
    });
    let spliced = util::pump(&mut pipe, &rx, &out);
    drop(out);
    writer.join().unwrap();
    let intact = reader.join().unwrap() == data;
    drop(pipe);
    drop(held);
    let after = pool.stats();

    println!(
        "RESULT uid={} gid={} cap_eff={} soft_pages={soft_pages} wanted={wanted} got={} failed={failed} \
         full={full} small={small} middle={middle} last_capacity={} capacity_mismatches={mismatches} \
         undersized={} resize_failures={} capacity_bytes={} sum_capacity={} live={} \
         spliced_capacity={spliced_capacity} spliced={spliced} splice_len={} splice_intact={} \
         after_in_use={} after_live={} after_undersized={}",
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
        cap_eff(),
        caps.len(),
        caps.last().copied().unwrap_or(0),
        s.undersized,
        s.resize_failures,
        s.capacity_bytes,
        caps.iter().sum::<usize>(),
        s.live,
        data.len(),
        u8::from(intact),
        after.in_use,
        after.live,
        after.undersized,
    );
}
