//! Unix-socket listeners and upstreams (`unix:/path`) through the real
//! binary: bytes exact over every mix of TCP and Unix sides, the socket
//! file's mode and owner, a stale file replaced, a regular file and a
//! live socket refused, the file removed at exit and kept by a process
//! that took it over, health checks of a Unix upstream, PROXY v2 with the
//! UNIX family (spliced to spliced, and from and to HAProxy), and the
//! access decisions for Unix clients.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use crate::admin::{ctl, SocketDir};
use crate::util::{self, Proc, WAIT};

/// A Unix echo server at `path` on a thread (echoes each connection until
/// EOF, then shuts its write half down).
fn unix_echo(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || util::echo_until_eof(&mut s));
        }
    });
}

/// Either kind of client stream.
trait Duplex: Read + Write + Send + 'static {
    fn clone_box(&self) -> Box<dyn Read + Send>;
    fn shut_write(&self);
}

impl Duplex for TcpStream {
    fn clone_box(&self) -> Box<dyn Read + Send> {
        Box::new(self.try_clone().unwrap())
    }
    fn shut_write(&self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

impl Duplex for UnixStream {
    fn clone_box(&self) -> Box<dyn Read + Send> {
        Box::new(self.try_clone().unwrap())
    }
    fn shut_write(&self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

/// Sends `len` random bytes through `s` (an echo behind it) while
/// reading them back; asserts both SHA-256 equal.
fn echo_exact(mut s: impl Duplex, seed: u64, len: usize) {
    let data = util::random_bytes(seed, len);
    let mut r = s.clone_box();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    });
    s.write_all(&data).unwrap();
    s.shut_write();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(util::sha256(&got), util::sha256(&data), "bytes exact");
}

fn unix_connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

fn unix_arg(path: &Path) -> String {
    format!("unix:{}", path.display())
}

/// Waits for the "listening on unix:PATH" line.
fn wait_listening(p: &mut Proc, path: &Path) {
    p.wait_for_line(&format!("listening on {}", unix_arg(path)));
}

const MIB: usize = 1024 * 1024;

#[test]
fn bytes_are_exact_over_every_mix_of_tcp_and_unix_sides() {
    let dir = SocketDir::new();
    let (front, back) = (dir.path("front.sock"), dir.path("back.sock"));
    unix_echo(&back);
    let tcp_up = util::echo_server().to_string();
    // Unix client -> TCP upstream.
    let mut a = Proc::spawn(&["run", "-l", &unix_arg(&front), "-u", &tcp_up]);
    wait_listening(&mut a, &front);
    echo_exact(unix_connect(&front), 1, 6 * MIB);
    // TCP client -> Unix upstream.
    let mut b = Proc::spawn(&["run", "-l", "127.0.0.1:0", "-u", &unix_arg(&back)]);
    let addr = b.listen_addr();
    echo_exact(util::connect(addr), 2, 6 * MIB);
    // Unix -> Unix, and the userspace copy too.
    let uu = dir.path("uu.sock");
    let mut c = Proc::spawn(&["run", "-l", &unix_arg(&uu), "-u", &unix_arg(&back)]);
    wait_listening(&mut c, &uu);
    echo_exact(unix_connect(&uu), 3, 6 * MIB);
    let us = dir.path("us.sock");
    let mut d = Proc::spawn(&[
        "run",
        "-l",
        &unix_arg(&us),
        "-u",
        &unix_arg(&back),
        "--copy",
        "userspace",
    ]);
    wait_listening(&mut d, &us);
    echo_exact(unix_connect(&us), 4, 2 * MIB);
    // Many at once, across workers (one socket, dup'ed to each).
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let path = uu.clone();
            thread::spawn(move || echo_exact(unix_connect(&path), 10 + i, 256 * 1024))
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn the_socket_file_gets_its_mode_and_owner_and_goes_at_exit() {
    use nix::unistd::{Group, User};
    let dir = SocketDir::new();
    let path = dir.path("owned.sock");
    let up = util::echo_server().to_string();
    let mut p = Proc::spawn(&[
        "run",
        "-l",
        &unix_arg(&path),
        "-u",
        &up,
        "--unix-mode",
        "0660",
        "--unix-owner",
        "nobody",
        "--unix-group",
        "nogroup",
    ]);
    wait_listening(&mut p, &path);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    let nobody = User::from_name("nobody").unwrap().unwrap();
    let nogroup = Group::from_name("nogroup").unwrap().unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.gid(), nogroup.gid.as_raw());
    // No temporary name left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["owned.sock"]);
    echo_exact(unix_connect(&path), 5, 64 * 1024);
    // The default mode: the owner only.
    let plain = dir.path("plain.sock");
    let mut q = Proc::spawn(&["run", "-l", &unix_arg(&plain), "-u", &up]);
    wait_listening(&mut q, &plain);
    let mode = std::fs::metadata(&plain).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);
    // SIGTERM: the files are removed.
    for (proc, path) in [(&mut p, &path), (&mut q, &plain)] {
        proc.signal(rustix::process::Signal::TERM);
        assert!(proc.wait_exit(WAIT).success());
        assert!(!path.exists(), "{} removed at exit", path.display());
    }
}

#[test]
fn a_stale_socket_is_replaced_a_live_one_and_a_regular_file_are_refused() {
    let dir = SocketDir::new();
    let up = util::echo_server().to_string();
    // Stale: bound by a process that is gone (its listener closed).
    let stale = dir.path("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut p = Proc::spawn(&["run", "-l", &unix_arg(&stale), "-u", &up]);
    wait_listening(&mut p, &stale);
    echo_exact(unix_connect(&stale), 6, 64 * 1024);
    // Live: spliced accepts there; a second one is refused, naming it,
    // and leaves the first one's file alone.
    let out = util::run(&["run", "-l", &unix_arg(&stale), "-u", &up], WAIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("stale.sock") && err.contains("a process accepts on this socket"),
        "{err}"
    );
    echo_exact(unix_connect(&stale), 7, 64 * 1024);
    // A regular file: exit 2, never removed.
    let file = dir.path("data");
    std::fs::write(&file, b"keep me").unwrap();
    let out = util::run(&["run", "-l", &unix_arg(&file), "-u", &up], WAIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("exists and is not a socket") && err.contains("/data"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn a_takeover_keeps_the_file_and_the_new_process_removes_it() {
    let dir = SocketDir::new();
    let (admin, path) = (dir.path("admin.sock"), dir.path("l.sock"));
    let up = util::tag_server("T").to_string();
    let listen = unix_arg(&path);
    let args = [
        "run",
        "-l",
        &listen,
        "-u",
        &up,
        "--admin-socket",
        admin.to_str().unwrap(),
    ];
    let mut old = Proc::spawn(&args);
    wait_listening(&mut old, &path);
    let ino = std::fs::metadata(&path).unwrap().ino();
    // A connection open across the handover.
    let mut held = unix_connect(&path);
    let mut tag = [0u8; 2];
    held.read_exact(&mut tag).unwrap();
    assert_eq!(&tag, b"T\n");

    let mut takeover = args.to_vec();
    takeover.extend(["--takeover", admin.to_str().unwrap()]);
    let mut new = Proc::spawn(&takeover);
    new.wait_for_line("took over from the process at");
    wait_listening(&mut new, &path);
    old.wait_for_line("taken over: shutting down");
    held.write_all(b"after\n").unwrap();
    held.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    held.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest, "after\n",
        "the open stream is the old process's to end"
    );
    assert!(old.wait_exit(WAIT).success());
    // The same file, served by the new process.
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino, "kept");
    let mut s = unix_connect(&path);
    s.read_exact(&mut tag).unwrap();
    assert_eq!(&tag, b"T\n");
    drop(s);
    let out = ctl(&admin, &["version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid {}", new.pid())));
    new.signal(rustix::process::Signal::TERM);
    assert!(new.wait_exit(WAIT).success());
    assert!(!path.exists(), "removed when the new process exits");
}

#[test]
fn a_reload_keeps_a_unix_listener_and_removes_a_dropped_one() {
    let dir = SocketDir::new();
    let (a, b) = (dir.path("a.sock"), dir.path("b.sock"));
    let up = util::echo_server();
    let listener = |p: &Path| {
        format!(
            "[[listener]]\nlisten = \"{}\"\nupstreams = [\"{up}\"]\n",
            unix_arg(p)
        )
    };
    let config = util::ConfigFile::new(&format!("{}{}", listener(&a), listener(&b)));
    let mut p = Proc::spawn(&["run", "--config", config.arg()]);
    wait_listening(&mut p, &a);
    wait_listening(&mut p, &b);
    let ino = std::fs::metadata(&a).unwrap().ino();
    // The kept one's file takes a new mode at the reload.
    p.reload(&config, &format!("{}unix_mode = \"0640\"\n", listener(&a)));
    let mode = std::fs::metadata(&a).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640, "unix_mode applied at the reload");
    // Once its accept loops ended (at once: no client waits there).
    assert!(
        util::wait_until_within(WAIT, || !b.exists()),
        "a dropped listener's file is removed"
    );
    assert_eq!(
        std::fs::metadata(&a).unwrap().ino(),
        ino,
        "a kept one stays"
    );
    echo_exact(unix_connect(&a), 8, 64 * 1024);
}

/// `ctl show`'s state of `upstream` on the only listener.
fn upstream_state(admin: &Path, upstream: &str) -> String {
    let out = ctl(admin, &["show"]);
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|r| r.len() > 2 && r[1] == upstream)
        .map(|r| r[2].to_owned())
        .unwrap_or_else(|| panic!("no {upstream} in:\n{text}"))
}

#[test]
fn health_checks_take_a_gone_unix_upstream_down_and_back_up() {
    let dir = SocketDir::new();
    let (admin, back) = (dir.path("admin.sock"), dir.path("back.sock"));
    let spare = util::echo_server().to_string();
    let target = unix_arg(&back);
    unix_echo(&back);
    let mut p = Proc::spawn(&[
        "run",
        "-l",
        "127.0.0.1:0",
        "-u",
        &target,
        "-u",
        &format!("{spare} backup"),
        "--health-interval",
        "200ms",
        "--health-fall",
        "2",
        "--health-rise",
        "2",
        "--admin-socket",
        admin.to_str().unwrap(),
    ]);
    let addr = p.listen_addr();
    util::eventually("the unix upstream is up", || {
        (upstream_state(&admin, &target) == "up").then_some(())
    });
    echo_exact(util::connect(addr), 9, 64 * 1024);
    // Its socket is gone: down.
    std::fs::remove_file(&back).unwrap();
    util::eventually("the unix upstream goes down", || {
        (upstream_state(&admin, &target) == "down").then_some(())
    });
    // Clients go to the backup meanwhile.
    echo_exact(util::connect(addr), 10, 64 * 1024);
    // Back (a new socket at the path): up again.
    unix_echo(&back);
    util::eventually("the unix upstream comes back", || {
        (upstream_state(&admin, &target) == "up").then_some(())
    });
}

/// The access log's lines at `path`, once there are `n`.
fn log_lines(path: &Path, n: usize) -> Vec<String> {
    util::eventually(&format!("{n} access log line(s)"), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() >= n).then_some(lines)
    })
}

/// A server that reads one PROXY v2 header of the UNIX family from each
/// connection, checks it, then echoes: `Ok(dst path)` of the header.
fn read_v2_unix(s: &mut TcpStream) -> Result<String, String> {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).map_err(|e| e.to_string())?;
    if &head[..12] != b"\r\n\r\n\0\r\nQUIT\n" || head[12] != 0x21 || head[13] != 0x31 {
        return Err(format!("not a v2 PROXY UNIX stream header: {head:02x?}"));
    }
    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
    let mut addrs = vec![0u8; len];
    s.read_exact(&mut addrs).map_err(|e| e.to_string())?;
    if len != 216 {
        return Err(format!("address block of {len} bytes"));
    }
    let dst = &addrs[108..216];
    let end = dst.iter().position(|&b| b == 0).unwrap_or(108);
    Ok(String::from_utf8_lossy(&dst[..end]).into_owned())
}

#[test]
fn proxy_v2_carries_a_unix_client_from_spliced_to_spliced() {
    let dir = SocketDir::new();
    let front = dir.path("front.sock");
    // What spliced sends: the UNIX family with its listener's path.
    let (hdr_tx, hdr_rx) = std::sync::mpsc::channel();
    let checker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let checker_addr = checker.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for s in checker.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = hdr_tx.send(read_v2_unix(&mut s));
        }
    });
    let mut a = Proc::spawn(&[
        "run",
        "-l",
        &unix_arg(&front),
        "-u",
        &checker_addr,
        "--send-proxy",
        "v2",
    ]);
    wait_listening(&mut a, &front);
    let mut s = unix_connect(&front);
    s.write_all(b"x").unwrap();
    let got = hdr_rx.recv_timeout(WAIT).unwrap();
    assert_eq!(got, Ok(front.display().to_string()));
    drop((s, a));

    // Round trip: a Unix client of spliced A, sent as UNIX to spliced B
    // (accept_proxy from A's address), whose access log names the client
    // `unix`; B's own Unix listener believes only with `unix` listed.
    let log = dir.path("b.log");
    let echo = util::echo_server().to_string();
    let mut b = Proc::spawn(&[
        "run",
        "-l",
        "127.0.0.1:0",
        "-u",
        &echo,
        "--accept-proxy",
        "--accept-proxy-from",
        "127.0.0.1",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    let b_addr = b.listen_addr().to_string();
    let front2 = dir.path("front2.sock");
    let mut a = Proc::spawn(&[
        "run",
        "-l",
        &unix_arg(&front2),
        "-u",
        &b_addr,
        "--send-proxy",
        "v2",
    ]);
    wait_listening(&mut a, &front2);
    echo_exact(unix_connect(&front2), 11, MIB);
    let lines = log_lines(&log, 1);
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[0], "unix", "{}", lines[0]);
    assert!(fields[10].starts_with("127.0.0.1:"), "via A: {}", lines[0]);
    // v1 for a Unix client: PROXY UNKNOWN, which B takes as "the
    // connection's own addresses" (A's).
    let front3 = dir.path("front3.sock");
    let mut a1 = Proc::spawn(&[
        "run",
        "-l",
        &unix_arg(&front3),
        "-u",
        &b_addr,
        "--send-proxy",
        "v1",
    ]);
    wait_listening(&mut a1, &front3);
    echo_exact(unix_connect(&front3), 12, 64 * 1024);
    let lines = log_lines(&log, 2);
    assert!(lines[1].starts_with("127.0.0.1:"), "{}", lines[1]);
    drop(b);
}

#[test]
fn unix_clients_are_never_let_through_ip_rules() {
    let dir = SocketDir::new();
    let path = dir.path("acl.sock");
    let up = util::echo_server().to_string();
    let listen = unix_arg(&path);
    // allow/deny/max_conns_per_source on a Unix listener: exit 2, named.
    for (flags, key) in [
        (&["--allow", "0.0.0.0/0"][..], "has `allow`"),
        (&["--deny", "10.0.0.0/8"][..], "has `deny`"),
        (
            &["--max-conns-per-source", "2"][..],
            "has `max_conns_per_source`",
        ),
        (
            &["--accept-proxy", "--accept-proxy-from", "127.0.0.1"][..],
            "add `unix` to accept_proxy_from",
        ),
    ] {
        let mut args = vec!["run", "-l", &listen, "-u", &up];
        args.extend_from_slice(flags);
        let out = util::run(&args, WAIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(key), "{flags:?}: {err}");
        assert!(!path.exists(), "nothing bound");
    }
    // With accept_proxy and `unix`, the header's address is judged: a
    // header with an allowed address is served, a denied one refused,
    // and a header-less (LOCAL) client, which has no address, is refused
    // by the allow list too.
    let mut p = Proc::spawn(&[
        "run",
        "-l",
        &listen,
        "-u",
        &up,
        "--accept-proxy",
        "--accept-proxy-from",
        "unix",
        "--allow",
        "10.0.0.0/8",
    ]);
    wait_listening(&mut p, &path);
    let mut ok = unix_connect(&path);
    ok.write_all(b"PROXY TCP4 10.1.1.1 10.0.0.1 1234 80\r\nhello\n")
        .unwrap();
    let mut back = [0u8; 6];
    ok.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello\n");
    for header in [
        &b"PROXY TCP4 192.0.2.1 10.0.0.1 1234 80\r\nhello\n"[..],
        &b"PROXY UNKNOWN\r\nhello\n"[..],
    ] {
        let mut s = unix_connect(&path);
        s.write_all(header).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            got.is_empty(),
            "refused: {:?}",
            String::from_utf8_lossy(header)
        );
    }
}

/// An HAProxy config in `dir`, started in the foreground; killed on drop.
struct Haproxy(std::process::Child);

impl Haproxy {
    fn start(dir: &Path, config: &str) -> Option<Haproxy> {
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        Some(Haproxy(child))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HAProxy on both sides of spliced, all over Unix sockets: HAProxy's
/// `send-proxy-v2` from its Unix listener into spliced (`accept_proxy`
/// with `unix` trusted), and spliced's header for a Unix client into
/// HAProxy's `bind unix@... accept-proxy`. Bytes exact end to end.
///
/// HAProxy 2.6 sends a Unix client as v2 `LOCAL` (not the UNIX family),
/// and resets a connection whose v2 header has the UNIX family (on any
/// bind): behind it, spliced is set to `send_proxy = "v1"`, whose
/// `PROXY UNKNOWN` it accepts (the README says so).
#[test]
fn haproxy_sends_into_and_accepts_from_spliced_over_unix_sockets() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        panic!("haproxy is not installed (ci/install.sh installs it)");
    }
    let dir = SocketDir::new();
    let (h_front, s_front, h_back) = (
        dir.path("h-front.sock"),
        dir.path("s-front.sock"),
        dir.path("h-back.sock"),
    );
    let echo = util::echo_server();
    let log = dir.path("access.log");
    // client -> HAProxy (unix) -> send-proxy-v2 -> spliced (unix,
    // accept-proxy from unix) -> send-proxy v2 -> HAProxy (unix,
    // accept-proxy) -> echo (TCP).
    let config = format!(
        "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend front\n  bind unix@{hf} mode 600\n  default_backend to_spliced\n\
         backend to_spliced\n  server s unix@{sf} send-proxy-v2\n\
         frontend back\n  bind unix@{hb} mode 600 accept-proxy\n  default_backend echo\n\
         backend echo\n  server e {echo}\n",
        hf = h_front.display(),
        sf = s_front.display(),
        hb = h_back.display(),
    );
    let mut s = Proc::spawn(&[
        "run",
        "-l",
        &unix_arg(&s_front),
        "-u",
        &unix_arg(&h_back),
        "--accept-proxy",
        "--accept-proxy-from",
        "unix",
        "--send-proxy",
        "v1",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    wait_listening(&mut s, &s_front);
    let _h = Haproxy::start(&dir.0, &config).expect("haproxy starts");
    assert!(
        util::wait_until_within(WAIT, || h_front.exists() && h_back.exists()),
        "haproxy binds its sockets"
    );
    echo_exact(unix_connect(&h_front), 13, 2 * MIB);
    let lines = log_lines(&log, 1);
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        fields[0], "unix",
        "HAProxy's LOCAL header read: {}",
        lines[0]
    );
    assert_eq!(
        fields[10], "unix",
        "via HAProxy's Unix socket: {}",
        lines[0]
    );
    assert_eq!(fields[5], (2 * MIB).to_string(), "{}", lines[0]);
}

/// `balance = source`: Unix clients have no address and hash as one
/// source, so all of them go to one upstream (while it is up).
#[test]
fn source_balance_sends_every_unix_client_to_one_upstream() {
    let dir = SocketDir::new();
    let path = dir.path("src.sock");
    let tags: Vec<String> = ["A", "B", "C", "D"]
        .iter()
        .map(|t| util::tag_server(t).to_string())
        .collect();
    let listen = unix_arg(&path);
    let mut args = vec!["run", "-l", &listen];
    for t in &tags {
        args.extend(["-u", t]);
    }
    args.extend(["--balance", "source"]);
    let mut p = Proc::spawn(&args);
    wait_listening(&mut p, &path);
    let tag = || {
        let mut s = unix_connect(&path);
        let mut t = [0u8; 2];
        s.read_exact(&mut t).unwrap();
        t[0]
    };
    let first = tag();
    for _ in 0..12 {
        assert_eq!(tag(), first, "one source, one upstream");
    }
}

/// Socket activation: a Unix socket systemd passed (fd 3, `LISTEN_FDS`)
/// is used by the listener on its path instead of binding, and its file,
/// systemd's, stays when spliced exits.
#[test]
fn socket_activation_passes_a_unix_socket_whose_file_stays() {
    use std::os::fd::AsRawFd;
    let dir = SocketDir::new();
    let path = dir.path("activated.sock");
    let up = util::tag_server("UP").to_string();
    // The socket systemd would have bound, passed without CLOEXEC.
    let passed = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let ino = std::fs::metadata(&path).unwrap().ino();
    rustix::io::fcntl_setfd(&passed, rustix::io::FdFlags::empty()).unwrap();
    let fd = passed.as_raw_fd();
    let move_to_3 = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd} {fd}<&-; ")
    };
    let listen = unix_arg(&path);
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "{move_to_3}export LISTEN_FDS=1 LISTEN_PID=$$; exec \"$0\" \"$@\""
        ))
        .arg(util::BIN)
        .args(["run", "-l", &listen, "-u", &up]);
    let mut p = Proc::spawn_command(cmd, &[]);
    wait_listening(&mut p, &path);
    drop(passed);
    let mut s = unix_connect(&path);
    let mut tag = [0u8; 3];
    s.read_exact(&mut tag).unwrap();
    assert_eq!(&tag, b"UP\n");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.ino(), ino, "the passed socket, not a new one");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640, "systemd's mode");
    drop(s);
    p.signal(rustix::process::Signal::TERM);
    assert!(p.wait_exit(WAIT).success());
    assert!(path.exists(), "systemd's file is systemd's to remove");
}
