//! TCP keepalive and `TCP_USER_TIMEOUT` per side of a connection, read
//! back with getsockopt on the proxy's own sockets (copied into the test
//! with `pidfd_getfd`): the client side has `client_*`, the upstream
//! side `upstream_*`; without the settings neither side has keepalive.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::sockopt;
use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};

use crate::util::{self, read_line, tag_server, Proc};

/// What the test reads back from one socket.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    keepalive: bool,
    idle: Duration,
    interval: Duration,
    count: u32,
    user_timeout_ms: u32,
}

fn options(fd: &OwnedFd) -> Options {
    Options {
        keepalive: sockopt::socket_keepalive(fd).unwrap(),
        idle: sockopt::tcp_keepidle(fd).unwrap(),
        interval: sockopt::tcp_keepintvl(fd).unwrap(),
        count: sockopt::tcp_keepcnt(fd).unwrap(),
        user_timeout_ms: sockopt::tcp_user_timeout(fd).unwrap(),
    }
}

/// The proxy's socket whose peer is `peer`, copied from process `pid`.
fn socket_to(pid: u32, peer: SocketAddr) -> OwnedFd {
    let pidfd = pidfd_open(Pid::from_raw(pid as i32).unwrap(), PidfdFlags::empty()).unwrap();
    util::eventually("the proxy's socket", || {
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
            let n: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let Ok(fd) = pidfd_getfd(&pidfd, n, PidfdGetfdFlags::empty()) else {
                continue;
            };
            let Ok(Some(addr)) = rustix::net::getpeername(&fd) else {
                continue;
            };
            if SocketAddr::try_from(addr).ok() == Some(peer) {
                return Some(fd);
            }
        }
        None
    })
}

/// A proxy with `flags`, one client connected through it: the proxy's
/// client-side and upstream-side sockets.
fn sockets(flags: &[&str]) -> (Proc, TcpStream, OwnedFd, OwnedFd) {
    let up = tag_server("UP");
    let mut args = vec!["run", "--listen", "127.0.0.1:0"];
    let up_text = up.to_string();
    args.extend(["--upstream", &up_text]);
    args.extend(flags);
    let mut proc = Proc::spawn(&args);
    let proxy = proc.listen_addr();
    let mut client = TcpStream::connect(proxy).unwrap();
    assert_eq!(read_line(&mut client).unwrap(), "UP");
    let client_side = socket_to(proc.pid(), client.local_addr().unwrap());
    let upstream_side = socket_to(proc.pid(), up);
    (proc, client, client_side, upstream_side)
}

#[test]
fn each_side_gets_its_own_keepalive_and_user_timeout() {
    let (_proc, _client, client_side, upstream_side) = sockets(&[
        "--client-keepalive",
        "61s:11s:4",
        "--upstream-keepalive",
        "2m:12s:3",
        "--client-user-timeout",
        "5s",
        "--upstream-user-timeout",
        "7500ms",
    ]);
    assert_eq!(
        options(&client_side),
        Options {
            keepalive: true,
            idle: Duration::from_secs(61),
            interval: Duration::from_secs(11),
            count: 4,
            user_timeout_ms: 5000,
        }
    );
    assert_eq!(
        options(&upstream_side),
        Options {
            keepalive: true,
            idle: Duration::from_secs(120),
            interval: Duration::from_secs(12),
            count: 3,
            user_timeout_ms: 7500,
        }
    );
}

#[test]
fn without_the_settings_no_side_has_keepalive() {
    let (_proc, _client, client_side, upstream_side) = sockets(&[]);
    for fd in [&client_side, &upstream_side] {
        let o = options(fd);
        assert!(!o.keepalive, "{o:?}");
        assert_eq!(o.user_timeout_ms, 0, "{o:?}");
    }
}

#[test]
fn bad_values_are_config_errors() {
    for (flag, value, says) in [
        ("--client-keepalive", "60s:10s", "IDLE:INTERVAL:COUNT"),
        ("--upstream-keepalive", "60s:10s:500", "COUNT"),
        ("--client-keepalive", "500ms:10s:5", "whole seconds"),
        ("--upstream-user-timeout", "1us", "whole milliseconds"),
    ] {
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = up.local_addr().unwrap().to_string();
        let out = util::run(
            &[
                "run",
                "--check",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &up,
                flag,
                value,
            ],
            Duration::from_secs(10),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
}
