//! systemd integration through the real binary: `sd_notify` messages on a
//! real unix datagram socket given as `$NOTIFY_SOCKET` (READY at start,
//! RELOADING then READY around a SIGHUP, STOPPING at SIGTERM), and socket
//! activation (a listening socket passed as fd 3 with `LISTEN_FDS` and
//! `LISTEN_PID` is used by the listener with its address).

use crate::util;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use crate::util::{connect, read_line, tag_server, ConfigFile, Proc};
use rustix::process::Signal;

/// The next datagram on `sock`, as text.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_ready_reloading_stopping() {
    let up = tag_server("UP");
    let dir = std::env::temp_dir().join(format!("spliced-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(util::WAIT)).unwrap();
    let config = ConfigFile::new(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\n"
    ));
    let mut proc = Proc::spawn_env(
        &["run", "--config", config.arg()],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let addr = proc.listen_addr();
    let ready = next(&sock);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=listening: web on {addr}")),
        "{ready:?}"
    );
    let mut s = connect(addr);
    assert_eq!(read_line(&mut s).unwrap(), "UP");

    proc.signal(Signal::HUP);
    let reloading = next(&sock);
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    let again = next(&sock);
    assert!(again.lines().any(|l| l == "READY=1"), "{again:?}");

    drop(s); // no grace period to wait for
    proc.signal(Signal::TERM);
    let stopping = next(&sock);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_activation_uses_the_passed_socket() {
    let up = tag_server("UP");
    // The socket systemd would have bound, passed without CLOEXEC.
    let passed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = passed.local_addr().unwrap();
    rustix::io::fcntl_setfd(&passed, rustix::io::FdFlags::empty()).unwrap();
    let fd = passed.as_raw_fd();
    let config = ConfigFile::new(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"{addr}\"\nupstreams = [\"{up}\"]\n"
    ));
    let move_to_3 = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd} {fd}<&-; ")
    };
    // bash: dash takes only one-digit fds in redirections.
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "{move_to_3}export LISTEN_FDS=1 LISTEN_PID=$$; exec \"$0\" \"$@\""
        ))
        .arg(util::BIN)
        .args(["run", "--config", config.arg()]);
    let mut proc = Proc::spawn_command(cmd, &[]);
    // Binding the address again would fail: `passed` is still open here.
    assert_eq!(proc.listen_addr(), addr);
    drop(passed);
    let mut s = connect(addr);
    assert_eq!(read_line(&mut s).unwrap(), "UP");
    util::eventually("the log line", || {
        proc.stderr()
            .contains("socket activation: systemd passed listening sockets")
            .then_some(())
    });
}
