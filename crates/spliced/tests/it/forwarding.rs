//! Bytes arrive whole and in order, both ways at once, through the real
//! binary, with `copy = "splice"` and `copy = "userspace"`; the log line at
//! close reports them.

use crate::util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use crate::util::{connect, random_bytes, sha256, ConfigFile, Proc};

/// Sizes the upstream sends, by accept order; and the clients send.
const SERVER_SIZES: [usize; 4] = [5 << 20 | 3, 0, 1, 2 << 20];
const CLIENT_SIZES: [usize; 4] = [0, 1, (3 << 20) + 7, 5 << 20];

/// What the upstream saw on one connection: (sha of what it received,
/// sha of what it sent).
type Seen = (String, String);

/// An upstream that sends its payload while it reads the client's, then
/// reports both hashes.
fn hashing_server() -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let n = accepted.fetch_add(1, Ordering::Relaxed);
            let tx = tx.clone();
            thread::spawn(move || {
                let payload = random_bytes(1000 + n as u64, SERVER_SIZES[n % SERVER_SIZES.len()]);
                let sent = sha256(&payload);
                let mut w = s.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    w.write_all(&payload).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                writer.join().unwrap();
                tx.send((sha256(&got), sent)).unwrap();
            });
        }
    });
    (addr, rx)
}

/// One client: sends its bytes (then half-closes) while reading the
/// upstream's; returns (sha sent, sha received, bytes sent, bytes received).
fn client(proxy: SocketAddr, seed: u64, size: usize) -> (String, String, usize, usize) {
    let mut s = connect(proxy);
    let data = random_bytes(seed, size);
    let sent = sha256(&data);
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    (sent, sha256(&got), size, got.len())
}

#[test]
fn sha256_matches_both_ways_with_splice_and_userspace() {
    let (upstream, seen) = hashing_server();
    let config = ConfigFile::new(&format!(
        "[[listener]]\nname = \"zero-copy\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\ncopy = \"splice\"\n\
         [[listener]]\nname = \"buffered\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\ncopy = \"userspace\"\n"
    ));
    let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
    let addrs = proc.listen_addrs(2);

    // (sha the client sent, sha it received) of every connection.
    let mut pairs = Vec::new();
    for (round, &proxy) in addrs.iter().enumerate() {
        let clients: Vec<_> = CLIENT_SIZES
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let seed = (round * 10 + i) as u64;
                thread::spawn(move || client(proxy, seed, size))
            })
            .collect();
        for c in clients {
            let (sent, received, _, n) = c.join().unwrap();
            assert!(
                SERVER_SIZES.contains(&n),
                "received {n} bytes: not one of the payloads"
            );
            pairs.push((sent, received));
        }
    }
    // The upstream's view, (sha received, sha sent), must be the same set
    // of pairs: every connection's bytes arrived whole, both ways.
    let mut reports: Vec<Seen> = (0..pairs.len())
        .map(|_| seen.recv_timeout(util::WAIT).expect("upstream report"))
        .collect();
    pairs.sort();
    reports.sort();
    assert_eq!(
        pairs, reports,
        "bytes differ between what was sent and what arrived"
    );

    // One log line per connection at close, with bytes and method.
    let log = util::eventually("8 close lines", || {
        let log = proc.stderr();
        (log.matches("connection closed").count() >= 8).then_some(log)
    });
    assert!(
        log.contains("method=\"splice\"") || log.contains("method=splice"),
        "{log}"
    );
    assert!(
        log.contains("method=\"userspace\"") || log.contains("method=userspace"),
        "{log}"
    );
    assert!(log.contains(&format!("to_upstream={}", 5 << 20)), "{log}");
    assert!(log.contains(&format!("to_client={}", 5 << 20 | 3)), "{log}");
    assert!(
        log.contains("listener=\"zero-copy\"") || log.contains("listener=zero-copy"),
        "{log}"
    );
}
