//! TCP urgent data (`MSG_OOB`) through the synchronous copy.
//!
//! A TCP splice stops at the urgent mark and never moves past it: on a
//! non-blocking socket it answers `EAGAIN` (and `poll` keeps saying
//! readable: a spin), on a blocking one or once the FIN is in it answers 0,
//! as at the end of file. The copy must deliver what `read(2)` delivers:
//! every in-band byte in order, the urgent byte not inline (no
//! `SO_OOBINLINE`), and end of file only at the real one. `std::io::copy`
//! (plain `read`/`write`) is the reference; every case runs through it too.

use crate::util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::util::urgent::Part::{AwaitAll, Data, Pause, Urgent};
use crate::util::urgent::{cases, Part, URGENT};
use pipepool::{Copier, PoolConfig};
use rustix::net::SendFlags;

/// `send(fd, [URGENT], MSG_OOB)`, retried while the send buffer is full.
fn send_urgent(socket: &TcpStream) {
    loop {
        match rustix::net::send(socket.as_fd(), &[URGENT], SendFlags::OOB) {
            Ok(1) => return,
            Err(rustix::io::Errno::AGAIN) => util::wait_writable(socket),
            other => panic!("send(MSG_OOB): {other:?}"),
        }
    }
}

/// Sends `parts` on `client`, then half-closes. Returns the in-band bytes.
fn send(mut client: TcpStream, parts: &[Part], received: &AtomicU64) -> Vec<u8> {
    let all = util::pattern(1 << 20);
    let mut sent = Vec::new();
    let mut urgent_sent = false;
    let await_all = |sent: &Vec<u8>| {
        let all_there = util::wait_until(Duration::from_secs(30), || {
            received.load(Ordering::SeqCst) >= sent.len() as u64
        });
        assert!(
            all_there.is_some(),
            "the far end got {} of the {} in-band bytes sent: the copy stalls at the urgent mark",
            received.load(Ordering::SeqCst),
            sent.len()
        );
    };
    for part in parts {
        match *part {
            Data(n) => {
                let at = sent.len();
                let chunk = &all[at..at + n];
                client.write_all(chunk).unwrap();
                sent.extend_from_slice(chunk);
            }
            Urgent => {
                if urgent_sent {
                    await_all(&sent);
                }
                send_urgent(&client);
                urgent_sent = true;
            }
            AwaitAll => await_all(&sent),
            Pause(d) => thread::sleep(d),
        }
    }
    client.shutdown(Shutdown::Write).unwrap();
    sent
}

/// Reads `server` to the end, counting in `received` as it goes.
fn receive(mut server: TcpStream, received: &AtomicU64) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match server.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                received.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("receive: {e}"),
        }
    }
}

/// A connected loopback pair: (connecting end, accepted end).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    (connected, accepted)
}

/// The copies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// `std::io::copy`: the reference (`read`/`write`).
    Std,
    /// `pipepool::Copier` on its zero-copy path.
    Splice,
}

/// The copy's thread CPU time, and what it returned.
struct Relayed {
    bytes: u64,
    cpu: Duration,
}

/// `client -> a | copy | b -> server`: sends `parts`, copies `a` into `b`
/// (non-blocking `a` if `nonblocking`), and checks that `server` received
/// exactly the in-band bytes.
fn run(how: How, nonblocking: bool, name: &str, parts: &[Part]) -> Relayed {
    let (client, mut a) = tcp_pair();
    let (b, server) = tcp_pair();
    a.set_nonblocking(nonblocking).unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let pool = PoolConfig::builder().build().unwrap();
    let relay = thread::spawn(move || {
        let bytes = match how {
            How::Std => io::copy(&mut a, &mut &b).unwrap(),
            How::Splice => {
                let t = Copier::new().pool(pool.clone()).copy(&a, &b).unwrap();
                assert_eq!(t.method, pipepool::Method::Splice);
                t.bytes
            }
        };
        let cpu = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        b.shutdown(Shutdown::Write).unwrap();
        Relayed {
            bytes,
            cpu: Duration::new(cpu.tv_sec as u64, cpu.tv_nsec as u32),
        }
    });
    let receiver = {
        let received = Arc::clone(&received);
        thread::spawn(move || receive(server, &received))
    };
    let sent = send(client, parts, &received);
    let got = receiver.join().unwrap();
    let relayed = relay.join().unwrap();
    let ctx = format!("{how:?}, nonblocking {nonblocking}, urgent byte {name}");
    assert_eq!(got.len(), sent.len(), "{ctx}: bytes received");
    assert!(got == sent, "{ctx}: the in-band bytes, in order");
    assert_eq!(relayed.bytes, sent.len() as u64, "{ctx}: the count");
    relayed
}

#[test]
fn urgent_data_through_a_blocking_source() {
    for (name, parts) in cases() {
        for how in [How::Std, How::Splice] {
            run(how, false, name, &parts);
        }
    }
}

#[test]
fn urgent_data_through_a_non_blocking_source() {
    // `std::io::copy` stops at the first `WouldBlock`: the reference is the
    // blocking run of the same cases.
    for (name, parts) in cases() {
        run(How::Splice, true, name, &parts);
    }
}

/// At the mark, a non-blocking splice answers `EAGAIN` while `poll` says
/// readable: a copy that only waits and retries spins. With the copy sat at
/// the mark (data behind it) for 600 ms, its thread must use far less CPU
/// than that (a bound, not a timing: a spin burns all of it).
#[test]
fn a_non_blocking_source_at_the_mark_does_not_spin() {
    let pause = Duration::from_millis(600);
    let parts = [Data(200_000), Urgent, Data(300_000), AwaitAll, Pause(pause)];
    let relayed = run(How::Splice, true, "then idle", &parts);
    assert!(
        relayed.cpu < pause / 3,
        "the copy used {:?} of CPU over a {pause:?} pause at the mark",
        relayed.cpu
    );
}

/// Urgent data into a pipe: the direct splice (socket -> pipe) has the
/// same mark to get past. The "several" case also pins a deadlock of a
/// blocking socket: its splice waits for data holding the pipe's lock, so
/// the reader cannot take what is already in the pipe while the sender
/// waits for the reader.
#[test]
fn urgent_data_into_a_pipe() {
    for nonblocking in [false, true] {
        for (name, parts) in cases() {
            let (client, a) = tcp_pair();
            a.set_nonblocking(nonblocking).unwrap();
            let (mut pipe_r, pipe_w) = io::pipe().unwrap();
            let received = Arc::new(AtomicU64::new(0));
            let relay = thread::spawn(move || {
                let t = Copier::new().copy(&a, &pipe_w).unwrap();
                drop(pipe_w);
                t
            });
            let receiver = {
                let received = Arc::clone(&received);
                thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = pipe_r.read(&mut buf).unwrap();
                        if n == 0 {
                            return got;
                        }
                        got.extend_from_slice(&buf[..n]);
                        received.fetch_add(n as u64, Ordering::SeqCst);
                    }
                })
            };
            let sent = send(client, &parts, &received);
            let got = receiver.join().unwrap();
            let t = relay.join().unwrap();
            let ctx = format!("into a pipe, nonblocking {nonblocking}, urgent byte {name}");
            assert!(got == sent, "{ctx}: {} of {} bytes", got.len(), sent.len());
            assert_eq!(t.bytes, sent.len() as u64, "{ctx}");
        }
    }
}
