//! SIGTERM/SIGINT: the listener closes at once, an in-flight transfer
//! finishes whole, the process exits 0; the grace period bounds the wait.

use crate::util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{connect, random_bytes, sha256, tag_server, Proc};
use rustix::process::Signal;

/// Size of the slow transfer.
const SIZE: usize = 6 << 20;

/// An upstream that sends [`SIZE`] bytes slowly (about 1.5 s), then closes.
fn slow_sender() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let mut s = s.unwrap();
            thread::spawn(move || {
                let data = random_bytes(7, SIZE);
                for chunk in data.chunks(64 * 1024) {
                    if s.write_all(chunk).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(15));
                }
            });
        }
    });
    addr
}

#[test]
fn sigterm_lets_an_in_flight_transfer_finish_whole_then_exits_0() {
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &slow_sender().to_string(),
        "--grace-period",
        "20s",
    ]);
    let proxy = proc.listen_addr();
    let mut client = connect(proxy);
    let mut got = vec![0u8; 1024];
    client.read_exact(&mut got).unwrap(); // in flight

    proc.signal(Signal::TERM);
    proc.wait_for_line("SIGTERM: shutting down (1 connection(s) open)");
    // Not accepting any more.
    util::eventually("the listener to close", || {
        TcpStream::connect_timeout(&proxy, Duration::from_millis(200))
            .is_err()
            .then_some(())
    });

    client.read_to_end(&mut got).unwrap();
    let done = Instant::now();
    assert_eq!(got.len(), SIZE, "the transfer was cut");
    assert_eq!(sha256(&got), sha256(&random_bytes(7, SIZE)));
    drop(client);
    let status = proc.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        proc.stderr()
    );
    assert!(
        done.elapsed() < Duration::from_secs(5),
        "exit did not follow the last connection"
    );
}

#[test]
fn the_grace_period_bounds_the_wait_and_sigint_works_too() {
    let up = tag_server("UP");
    let mut proc = Proc::spawn(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.to_string(),
        "--grace-period",
        "500ms",
    ]);
    let proxy = proc.listen_addr();
    let mut idle = connect(proxy);
    assert_eq!(util::read_line(&mut idle).unwrap(), "UP");
    let start = Instant::now();
    proc.signal(Signal::INT);
    let status = proc.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "did not wait for the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        proc.stderr().contains("closing 1 connection(s) still open"),
        "{}",
        proc.stderr()
    );
}
