//! TCP urgent data (`MSG_OOB`) through the async copies, against tokio's
//! own `copy` / `copy_bidirectional` as the reference.
//!
//! A TCP splice stops at the urgent mark and never moves past it: it
//! answers `EAGAIN` (the direction stalls while data waits behind the
//! mark) or, once the FIN is in, 0 (read as end of file: the rest is
//! lost). Every copy must deliver what `read(2)` delivers: every in-band
//! byte in order, the urgent byte not inline, end of file only at the real
//! one. Cases: urgent byte at the start, in the middle, last before the
//! FIN, several, and no FIN until everything arrived (a stall fails it);
//! one way (`copy`, also between owned split halves) and both ways at once
//! (`copy_bidirectional`), on both runtimes.

#![cfg(feature = "tokio")]

use crate::util;

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, copy_with, CopyOptions};
use pipepool::Method;
use rustix::net::SendFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::util::net::{runtime, tcp_pair, within};
use crate::util::urgent::Part::{AwaitAll, Data, Pause, Urgent};
use crate::util::urgent::{cases, Part, URGENT};

/// `send(fd, [URGENT], MSG_OOB)` through tokio's readiness.
async fn send_urgent(w: &OwnedWriteHalf) {
    let s: &TcpStream = w.as_ref();
    loop {
        s.writable().await.unwrap();
        let sent = s.try_io(Interest::WRITABLE, || {
            rustix::net::send(s.as_fd(), &[URGENT], SendFlags::OOB).map_err(io::Error::from)
        });
        match sent {
            Ok(1) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("send(MSG_OOB): {other:?}"),
        }
    }
}

/// Sends `parts` (pattern offset by `seed`), then shuts down. Returns the
/// in-band bytes.
async fn send(mut w: OwnedWriteHalf, parts: &[Part], seed: usize, received: &AtomicU64) -> Vec<u8> {
    let all = util::pattern((1 << 20) + seed);
    let all = &all[seed..];
    let mut sent = Vec::new();
    let mut urgent_sent = false;
    for part in parts {
        let await_all = matches!(part, AwaitAll) || (matches!(part, Urgent) && urgent_sent);
        if await_all {
            let want = sent.len() as u64;
            within(
                30,
                "the far end getting every in-band byte (stall at the mark?)",
                async {
                    while received.load(Ordering::SeqCst) < want {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                },
            )
            .await;
        }
        match *part {
            Data(n) => {
                let chunk = &all[sent.len()..sent.len() + n];
                w.write_all(chunk).await.unwrap();
                sent.extend_from_slice(chunk);
            }
            Urgent => {
                send_urgent(&w).await;
                urgent_sent = true;
            }
            AwaitAll => {}
            Pause(d) => tokio::time::sleep(d).await,
        }
    }
    w.shutdown().await.unwrap();
    sent
}

/// Reads to the end, counting in `received` as it goes.
async fn receive(mut r: OwnedReadHalf, received: &AtomicU64, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await.expect(what);
        if n == 0 {
            return got;
        }
        got.extend_from_slice(&buf[..n]);
        received.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// The relays compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// `tokio::io::copy_bidirectional`: the reference.
    TokioBidi,
    /// `pipepool::tokio::copy_bidirectional_with`, splicing.
    SpliceBidi,
    /// The same with `zero_copy(false)`.
    UserspaceBidi,
    /// `tokio::io::copy` one way, then shut the writer down.
    TokioCopy,
    /// `pipepool::tokio::copy_with` one way, splicing.
    SpliceCopy,
    /// `tokio::io::copy` between owned halves (`into_split`).
    TokioHalves,
    /// `pipepool::tokio::copy_with` between owned halves, splicing.
    SpliceHalves,
}

impl Relay {
    /// Reads with tokio's `poll_read` (the references). pipepool's
    /// userspace copy reads TCP sockets with its own `recv`, so it is held
    /// to every case, as the splicing relays are.
    fn reads_through_tokio(self) -> bool {
        matches!(
            self,
            Relay::TokioBidi | Relay::TokioCopy | Relay::TokioHalves
        )
    }

    fn both_ways(self) -> bool {
        matches!(
            self,
            Relay::TokioBidi | Relay::SpliceBidi | Relay::UserspaceBidi
        )
    }

    /// Runs the relay between `a` and `b`; returns the bytes each way.
    async fn run(self, mut a: TcpStream, mut b: TcpStream) -> (u64, u64) {
        match self {
            Relay::TokioBidi => tokio::io::copy_bidirectional(&mut a, &mut b).await.unwrap(),
            Relay::SpliceBidi | Relay::UserspaceBidi => {
                let opts = CopyOptions::new().zero_copy(self == Relay::SpliceBidi);
                let r = copy_bidirectional_with(&mut a, &mut b, &opts)
                    .await
                    .unwrap();
                if self == Relay::SpliceBidi {
                    assert_eq!(r.a_to_b.method, Method::Splice);
                    assert_eq!(r.b_to_a.method, Method::Splice);
                }
                (r.a_to_b.bytes, r.b_to_a.bytes)
            }
            Relay::TokioCopy => {
                let n = tokio::io::copy(&mut a, &mut b).await.unwrap();
                b.shutdown().await.unwrap();
                (n, 0)
            }
            Relay::SpliceCopy => {
                let t = copy_with(&mut a, &mut b, &CopyOptions::new())
                    .await
                    .unwrap();
                assert_eq!(t.method, Method::Splice);
                b.shutdown().await.unwrap();
                (t.bytes, 0)
            }
            Relay::TokioHalves | Relay::SpliceHalves => {
                let (mut a_r, _a_w) = a.into_split();
                let (_b_r, mut b_w) = b.into_split();
                let n = if self == Relay::TokioHalves {
                    tokio::io::copy(&mut a_r, &mut b_w).await.unwrap()
                } else {
                    let t = copy_with(&mut a_r, &mut b_w, &CopyOptions::new())
                        .await
                        .unwrap();
                    assert_eq!(t.method, Method::Splice);
                    t.bytes
                };
                b_w.shutdown().await.unwrap();
                (n, 0)
            }
        }
    }
}

const RELAYS: [Relay; 7] = [
    Relay::TokioBidi,
    Relay::SpliceBidi,
    Relay::UserspaceBidi,
    Relay::TokioCopy,
    Relay::SpliceCopy,
    Relay::TokioHalves,
    Relay::SpliceHalves,
];

/// `client <-> a | relay | b <-> server`: `parts` from the client to the
/// server and (both-ways relays) from the server to the client at once.
async fn scenario(relay: Relay, name: &str, parts: &[Part]) {
    let (client, a) = tcp_pair().await;
    let (b, server) = tcp_pair().await;
    let relayed = tokio::spawn(relay.run(a, b));
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let back: &[Part] = if relay.both_ways() { parts } else { &[] };
    let what = format!("{relay:?}, urgent byte {name}");
    let at_server = format!("{what}: server receiving");
    let at_client = format!("{what}: client receiving");
    let (sent_up, got_up, sent_down, got_down) = within(60, &what, async {
        tokio::join!(
            send(client_w, parts, 0, &up),
            receive(server_r, &up, &at_server),
            send(server_w, back, 7, &down),
            receive(client_r, &down, &at_client),
        )
    })
    .await;
    let ctx = format!("{relay:?}, urgent byte {name}");
    assert_eq!(got_up.len(), sent_up.len(), "{ctx}: bytes client -> server");
    assert!(got_up == sent_up, "{ctx}: in-band bytes client -> server");
    if relay.both_ways() {
        assert_eq!(
            got_down.len(),
            sent_down.len(),
            "{ctx}: bytes server -> client"
        );
        assert!(
            got_down == sent_down,
            "{ctx}: in-band bytes server -> client"
        );
    }
    let counts = relayed.await.unwrap();
    let want = (sent_up.len() as u64, got_down.len() as u64);
    assert_eq!(counts, want, "{ctx}: the counts");
}

fn all_cases(multi_thread: bool) {
    runtime(multi_thread).block_on(async {
        for (name, parts) in cases() {
            // With data behind a mark, the tokio-read relays can hang:
            // tokio's `poll_read` clears the read readiness after a read
            // short of its buffer, and the read that stops before the mark
            // is short, so when the data behind the mark was queued before
            // that read, no readiness event comes until the peer sends
            // more (which it cannot once the buffers are full) or its FIN.
            // They are the reference where nothing follows the mark.
            let waits = !matches!(name, "at the start" | "last before FIN");
            for relay in RELAYS {
                if waits && relay.reads_through_tokio() {
                    continue;
                }
                scenario(relay, name, &parts).await;
            }
        }
    });
}

#[test]
fn urgent_data_current_thread() {
    all_cases(false);
}

#[test]
fn urgent_data_multi_thread() {
    all_cases(true);
}
