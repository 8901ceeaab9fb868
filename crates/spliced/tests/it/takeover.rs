//! Zero-downtime upgrade (`--takeover PATH`) through the real binaries:
//! under load, no short connection fails, long streams spanning the
//! handover arrive whole, the listening socket is the same kernel socket,
//! and the old process exits 0 once its streams end; listeners added and
//! removed by the new configuration; the failures (exit code 2, nothing
//! bound).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use crate::admin::{ctl, SocketDir};
use crate::util::{self, read_line, tag_server, ConfigFile, Proc};

/// The inode of the socket listening on `addr` (IPv4), from
/// /proc/net/tcp: the same inode is the same kernel socket.
fn listening_inode(addr: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let want = format!(":{:04X}", addr.port());
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f[1].ends_with(&want) && f[3] == "0A").then(|| f[9].parse().unwrap())
    })
}

/// Whether the process `pid` still runs (not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// One short exchange: connect, the tag line, 64 bytes echoed, close.
fn short_exchange(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let tag = read_line(&mut s)?;
    let msg = [b'x'; 64];
    s.write_all(&msg)?;
    let mut back = [0u8; 64];
    s.read_exact(&mut back)?;
    if tag != "T" || back != msg {
        return Err(std::io::Error::other(format!("wrong answer (tag {tag:?})")));
    }
    Ok(())
}

/// A stream of `chunks` 64 KiB chunks written slowly (`pause` each);
/// tells `started` after the first MiB; returns the SHA-256 sent and
/// received.
fn long_stream(
    addr: SocketAddr,
    seed: u64,
    chunks: usize,
    pause: Duration,
    started: mpsc::Sender<()>,
) -> (String, String) {
    let data = util::random_bytes(seed, chunks * 64 * 1024);
    let mut s = util::connect(addr);
    assert_eq!(read_line(&mut s).unwrap(), "T");
    let mut r = s.try_clone().unwrap();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        util::sha256(&got)
    });
    for (i, c) in data.chunks(64 * 1024).enumerate() {
        s.write_all(c).unwrap();
        if i == 16 {
            let _ = started.send(());
        }
        thread::sleep(pause);
    }
    s.shutdown(Shutdown::Write).unwrap();
    (util::sha256(&data), reader.join().unwrap())
}

#[test]
fn an_upgrade_under_load_loses_no_connection_and_no_byte() {
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let upstream = tag_server("T").to_string();
    let args = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--grace-period",
        "60s",
        "--admin-socket",
        sock.to_str().unwrap(),
    ];
    let mut old = Proc::spawn(&args);
    let addr = old.listen_addr();
    let inode = listening_inode(addr).expect("a listening socket");

    // Short connections back to back the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let shorts: Vec<_> = (0..3)
        .map(|_| {
            let (stop, ok, failed, errors) = (
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
                Arc::clone(&errors),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match short_exchange(addr) {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            errors.lock().unwrap().push(e.to_string());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    // Long streams spanning the handover (about 3 s each).
    let (started, first_mib) = mpsc::channel();
    let streams: Vec<_> = (0..3)
        .map(|i| {
            let started = started.clone();
            thread::spawn(move || {
                long_stream(addr, 100 + i, 96, Duration::from_millis(30), started)
            })
        })
        .collect();
    for _ in 0..3 {
        first_mib.recv_timeout(util::WAIT).expect("the streams run");
    }
    thread::sleep(Duration::from_millis(200));
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 0, "short connections run before the handover");

    let mut takeover = args.to_vec();
    takeover.extend(["--takeover", sock.to_str().unwrap()]);
    let mut new = Proc::spawn(&takeover);
    new.wait_for_line("took over from the process at");
    assert_eq!(new.listen_addr(), addr, "the same port");
    old.wait_for_line("taken over: shutting down");
    // The old process drains its streams: still there while they run.
    assert!(alive(old.pid()), "the old process waits for its streams");
    for s in streams {
        let (sent, got) = s.join().unwrap();
        assert_eq!(sent, got, "a stream spanning the handover arrives whole");
    }
    assert!(
        old.wait_exit(util::WAIT).success(),
        "the old process exits 0"
    );
    // Served by the new process alone now.
    let after_exit = ok.load(Ordering::Relaxed);
    util::eventually("short connections through the new process", || {
        (ok.load(Ordering::Relaxed) > after_exit + 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for t in shorts {
        t.join().unwrap();
    }
    eprintln!(
        "short connections: {before} before the handover, {} in all",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no connection failed ({} ok): {:?}",
        ok.load(Ordering::Relaxed),
        errors.lock().unwrap()
    );
    assert_eq!(
        listening_inode(addr),
        Some(inode),
        "the listening socket is the same kernel socket"
    );
    // The admin socket is the new process's now.
    let out = ctl(&sock, &["version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid {}", new.pid())));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_new_configuration_keeps_matching_listeners_binds_new_ones_and_drops_the_rest() {
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let (a, b, c) = (tag_server("A"), tag_server("B"), tag_server("C"));
    let listener = |name: &str, up: SocketAddr| {
        format!(
            "[[listener]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\n"
        )
    };
    let top = format!(
        "admin_socket = \"{}\"\nmetrics = \"127.0.0.1:0\"\n",
        sock.display()
    );
    let config = ConfigFile::new(&format!("{top}{}{}", listener("a", a), listener("b", b)));
    let mut old = Proc::spawn(&["run", "--config", config.arg()]);
    let old_addrs = old.listen_addrs(2);
    let mut held_b = util::connect(old_addrs[1]);
    assert_eq!(read_line(&mut held_b).unwrap(), "B");

    std::fs::write(
        &config.path,
        format!("{top}{}{}", listener("a", a), listener("c", c)),
    )
    .unwrap();
    let mut new = Proc::spawn(&[
        "run",
        "--config",
        config.arg(),
        "--takeover",
        sock.to_str().unwrap(),
    ]);
    let new_addrs = new.listen_addrs(2);
    assert_eq!(new_addrs[0], old_addrs[0], "`a` is taken over");
    assert_ne!(new_addrs[1], old_addrs[1]);
    new.wait_for_line("took over");
    let tag = |addr| {
        let mut s = util::connect(addr);
        read_line(&mut s).unwrap()
    };
    assert_eq!(tag(new_addrs[0]), "A");
    assert_eq!(tag(new_addrs[1]), "C");
    // `b`'s open connection is the old process's to drain; its listener
    // is gone.
    util::eventually("`b` to stop accepting", || {
        TcpStream::connect_timeout(&old_addrs[1], Duration::from_millis(200))
            .is_err()
            .then_some(())
    });
    held_b.write_all(b"still here\n").unwrap();
    assert_eq!(read_line(&mut held_b).unwrap(), "still here");
    drop(held_b);
    assert!(old.wait_exit(util::WAIT).success());
    assert_eq!(tag(new_addrs[0]), "A");
    // The metrics socket was handed over too: the same port, the new
    // process's counters (it served the two connections above).
    let metrics = util::metrics_at(&mut new);
    assert_eq!(metrics, util::metrics_at(&mut old));
    let (status, body) = util::http_get(metrics, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("listener=\"c\""), "{body}");
}

/// Runs `spliced run --takeover path` on a port nothing else uses;
/// checks exit code 2, the message, and that nothing was bound.
fn takeover_fails(path: &Path, message: &str) {
    let dir = SocketDir::new();
    let admin = dir.path("new.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = util::run(
        &[
            "run",
            "--listen",
            &port.to_string(),
            "--upstream",
            "127.0.0.1:1",
            "--admin-socket",
            admin.to_str().unwrap(),
            "--takeover",
            path.to_str().unwrap(),
        ],
        util::WAIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(message), "{message:?} not in: {stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "nothing was bound"
    );
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        0,
        "no admin socket made"
    );
}

#[test]
fn takeover_without_a_spliced_fails_with_exit_code_2_and_binds_nothing() {
    let dir = SocketDir::new();
    takeover_fails(&dir.path("missing.sock"), "no such socket");
    // A stale socket: its process is gone.
    let stale = dir.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    takeover_fails(&stale, "nothing listens there");
    // Not a socket at all.
    let file = dir.path("file");
    std::fs::write(&file, "hello").unwrap();
    takeover_fails(&file, "is not a spliced admin socket: it is not a socket");
    // A socket that speaks something else.
    let other = dir.path("other.sock");
    let server = std::os::unix::net::UnixListener::bind(&other).unwrap();
    thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.write_all(b"220 welcome\n");
        }
    });
    takeover_fails(&other, "is not a spliced admin socket");
}

/// Under systemd (`NotifyAccess=all`), the new process names itself the
/// main one (`MAINPID=`) before the old one stops, then `READY=1`.
#[test]
fn the_new_process_tells_systemd_it_is_the_main_one() {
    use std::os::unix::net::UnixDatagram;
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let notify = dir.path("notify.sock");
    let n = UnixDatagram::bind(&notify).unwrap();
    n.set_read_timeout(Some(util::WAIT)).unwrap();
    let next = || {
        let mut buf = [0u8; 4096];
        let len = n.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    };
    let upstream = tag_server("T").to_string();
    let args = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--admin-socket",
        sock.to_str().unwrap(),
    ];
    let env = [("NOTIFY_SOCKET", notify.to_str().unwrap())];
    let mut old = Proc::spawn_env(&args, &env);
    old.listen_addr();
    assert!(next().contains("READY=1"));
    let mut takeover = args.to_vec();
    takeover.extend(["--takeover", sock.to_str().unwrap()]);
    let mut new = Proc::spawn_env(&takeover, &env);
    new.wait_for_line("took over");
    let main = next();
    assert!(
        main.lines().any(|l| l == format!("MAINPID={}", new.pid())),
        "{main:?}"
    );
    let mut rest = vec![next(), next()];
    rest.sort();
    assert!(rest.iter().any(|m| m.contains("READY=1")), "{rest:?}");
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
    assert!(old.wait_exit(util::WAIT).success());
}

/// A new process that fails after receiving the sockets (a new listener
/// cannot bind) exits 1; the old one keeps serving, and keeps its admin
/// socket.
#[test]
fn a_new_process_that_fails_leaves_the_old_one_serving() {
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let a = tag_server("A");
    let listener = |name: &str, listen: &str| {
        format!("[[listener]]\nname = \"{name}\"\nlisten = \"{listen}\"\nupstreams = [\"{a}\"]\n")
    };
    let top = format!("admin_socket = \"{}\"\n", sock.display());
    let config = ConfigFile::new(&format!("{top}{}", listener("a", "127.0.0.1:0")));
    let mut old = Proc::spawn(&["run", "--config", config.arg()]);
    let addr = old.listen_addr();
    // A port taken by someone else.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    std::fs::write(
        &config.path,
        format!(
            "{top}{}{}",
            listener("a", "127.0.0.1:0"),
            listener("b", &busy_addr)
        ),
    )
    .unwrap();
    let out = util::run(
        &[
            "run",
            "--config",
            config.arg(),
            "--takeover",
            sock.to_str().unwrap(),
        ],
        util::WAIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {busy_addr}")),
        "{stderr}"
    );
    let mut s = util::connect(addr);
    assert_eq!(read_line(&mut s).unwrap(), "A");
    let version = ctl(&sock, &["version"]);
    assert!(String::from_utf8_lossy(&version.stdout).contains(&format!("pid {}", old.pid())));
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        1,
        "no temporary socket left"
    );
}

/// Started as root with `--user nobody` on both sides: the new process
/// (root until its sockets are bound) takes over from the old (nobody).
#[test]
fn an_upgrade_works_across_the_privilege_drop() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: --user cannot be tested here");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("nobody");
    let dir = SocketDir::new();
    std::os::unix::fs::chown(&dir.0, Some(nobody.uid.as_raw()), None).unwrap();
    let sock = dir.path("admin.sock");
    let upstream = tag_server("T").to_string();
    let args = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--user",
        "nobody",
        "--admin-socket",
        sock.to_str().unwrap(),
    ];
    let mut old = Proc::spawn(&args);
    let addr = old.listen_addr();
    let mut takeover = args.to_vec();
    takeover.extend(["--takeover", sock.to_str().unwrap()]);
    let mut new = Proc::spawn(&takeover);
    new.wait_for_line("took over");
    assert!(old.wait_exit(util::WAIT).success());
    short_exchange(addr).unwrap();
    let meta = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    let out = ctl(&sock, &["version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid {}", new.pid())));
    new.signal(rustix::process::Signal::TERM);
    assert!(new.wait_exit(util::WAIT).success());
    assert!(!sock.exists());
}
