//! The admin socket (`--admin-socket PATH`) and `spliced ctl`: mode 0600,
//! owned by the run user (also after `--user`), removed at exit; the line
//! protocol's answers and errors through the real binaries.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustix::process::Signal;

use crate::util::{self, tag_server, Proc};

/// A fresh directory for sockets, removed when dropped.
pub(crate) struct SocketDir(pub(crate) PathBuf);

impl SocketDir {
    pub(crate) fn new() -> SocketDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spliced-admin-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        SocketDir(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `spliced ctl --socket PATH words...`.
pub(crate) fn ctl(path: &Path, words: &[&str]) -> std::process::Output {
    let mut args = vec!["ctl", "--socket", path.to_str().unwrap()];
    args.extend_from_slice(words);
    util::run(&args, Duration::from_secs(20))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ctl_talks_to_the_admin_socket_which_is_0600_and_removed_at_exit() {
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &tag_server("a").to_string(),
        "--admin-socket",
        sock.to_str().unwrap(),
    ]);
    proc.listen_addr();
    let meta = std::fs::symlink_metadata(&sock).expect("the socket file exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    // Only the socket: no temporary name left beside it.
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);

    let out = ctl(&sock, &["version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("spliced {} pid {}", env!("CARGO_PKG_VERSION"), proc.pid())
    );
    let help = ctl(&sock, &["help"]);
    assert!(help.status.success());
    assert!(
        text(&help.stdout).contains("version:"),
        "{}",
        text(&help.stdout)
    );

    let bad = ctl(&sock, &["no-such-command", "x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("unknown command `no-such-command`"),
        "{}",
        text(&bad.stderr)
    );

    // A second process cannot take a live admin socket.
    let second = util::run(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--admin-socket",
            sock.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("another process answers there"),
        "{}",
        text(&second.stderr)
    );
    assert!(
        ctl(&sock, &["version"]).status.success(),
        "still the first's"
    );

    proc.signal(Signal::TERM);
    assert!(proc.wait_exit(util::WAIT).success());
    assert!(!sock.exists(), "removed at exit");
}

#[test]
fn ctl_without_a_spliced_says_so_and_fails() {
    let dir = SocketDir::new();
    let missing = ctl(&dir.path("none.sock"), &["version"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no such socket"),
        "{}",
        text(&missing.stderr)
    );
    // A stale socket file: bound once, nobody listening any more.
    let stale = dir.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let out = ctl(&stale, &["version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nothing listens there"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_stale_socket_file_is_replaced_at_start() {
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
        "--admin-socket",
        sock.to_str().unwrap(),
    ]);
    proc.listen_addr();
    assert!(ctl(&sock, &["version"]).status.success());
}

/// Started as root with `--user nobody`: the socket is created before the
/// drop, owned by nobody, still answers, and is removed at exit (the
/// directory is nobody's to write).
#[test]
fn the_admin_socket_belongs_to_the_user_after_the_privilege_drop() {
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
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
        "--user",
        "nobody",
        "--admin-socket",
        sock.to_str().unwrap(),
    ]);
    proc.listen_addr();
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(ctl(&sock, &["version"]).status.success());
    proc.signal(Signal::TERM);
    assert!(proc.wait_exit(util::WAIT).success());
    assert!(!sock.exists(), "removed at exit, after the drop");
}

/// The raw protocol: one line in, `ok` + body or `error: ...` out, then
/// the server closes; a request without its newline within 4096 bytes
/// is refused.
#[test]
fn the_line_protocol_answers_and_closes() {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixStream;
    let dir = SocketDir::new();
    let sock = dir.path("admin.sock");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
        "--admin-socket",
        sock.to_str().unwrap(),
    ]);
    proc.listen_addr();
    let exchange = |request: &[u8]| {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(util::WAIT)).unwrap();
        s.write_all(request).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    assert_eq!(
        exchange(b"version\n"),
        format!(
            "ok\nspliced {} pid {}\n",
            env!("CARGO_PKG_VERSION"),
            proc.pid()
        )
    );
    assert_eq!(
        exchange(b"\n"),
        "error: empty request: send a command (try `help`)\n"
    );
    let long = vec![b'x'; 5000];
    assert_eq!(
        exchange(&long),
        "error: a request is one line of at most 4096 bytes, ended by a newline\n"
    );
}
