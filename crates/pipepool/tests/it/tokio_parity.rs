//! Parity with tokio: the same scenarios run through
//! `tokio::io::copy_bidirectional`, `pipepool::tokio::copy_bidirectional`
//! (splice) and `pipepool::tokio::copy_bidirectional_with(zero_copy(false))`
//! (the userspace fallback), over real loopback TCP
//! (`client <-> a | relay | b <-> server`), on both runtimes. Each scenario
//! checks its expected result, and that the three agree on it: the bytes
//! each way, the error kind, and what each peer received (every byte
//! checked).

#![cfg(feature = "tokio")]

use std::io;
use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, copy_with, CopyOptions};
use pipepool::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::net::{recv_stream, recv_stream_slowly, send_stream, tcp_pair, within};

/// The copies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    /// `tokio::io::copy_bidirectional` / `tokio::io::copy`: the reference.
    Tokio,
    /// `pipepool::tokio::copy_bidirectional` / `copy`: the drop-in.
    Splice,
    /// pipepool with `zero_copy(false)`.
    Userspace,
}

const IMPLS: [Impl; 3] = [Impl::Tokio, Impl::Splice, Impl::Userspace];

impl Impl {
    async fn bidi(self, a: &mut TcpStream, b: &mut TcpStream) -> io::Result<(u64, u64)> {
        match self {
            Impl::Tokio => tokio::io::copy_bidirectional(a, b).await,
            Impl::Splice => pipepool::tokio::copy_bidirectional(a, b).await,
            Impl::Userspace => {
                let opts = CopyOptions::new().zero_copy(false);
                let report = copy_bidirectional_with(a, b, &opts)
                    .await
                    .map_err(|e| e.into_error())?;
                assert_eq!(report.a_to_b.method, Method::Userspace);
                assert_eq!(report.b_to_a.method, Method::Userspace);
                Ok((report.a_to_b.bytes, report.b_to_a.bytes))
            }
        }
    }

    async fn copy(self, r: &mut TcpStream, w: &mut TcpStream) -> io::Result<u64> {
        match self {
            Impl::Tokio => tokio::io::copy(r, w).await,
            Impl::Splice => pipepool::tokio::copy(r, w).await,
            Impl::Userspace => {
                let opts = CopyOptions::new().zero_copy(false);
                let done = copy_with(r, w, &opts).await.map_err(|e| e.into_error())?;
                assert_eq!(done.method, Method::Userspace);
                Ok(done.bytes)
            }
        }
    }
}

/// What a scenario observed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// The relay's result: bytes a->b and b->a, or the error's kind.
    relay: Result<(u64, u64), io::ErrorKind>,
    /// Bytes the client received (all checked), up to end of file or error.
    client_got: u64,
    /// Bytes the server received (all checked).
    server_got: u64,
}

type Peer = tokio::task::JoinHandle<u64>;

/// Sets up `client <-> a | relay | b <-> server`, spawns the two peers,
/// runs the relay in this task, then collects everything.
async fn run<C, S, CF, SF>(imp: Impl, client: C, server: S) -> Outcome
where
    C: FnOnce(TcpStream) -> CF,
    S: FnOnce(TcpStream) -> SF,
    CF: std::future::Future<Output = u64> + Send + 'static,
    SF: std::future::Future<Output = u64> + Send + 'static,
{
    let (client_end, mut a) = tcp_pair().await;
    let (mut b, server_end) = tcp_pair().await;
    let client: Peer = tokio::spawn(client(client_end));
    let server: Peer = tokio::spawn(server(server_end));
    let relay = within(60, "relay", imp.bidi(&mut a, &mut b)).await;
    // As a proxy does: the relay's sockets close when it returns.
    drop((a, b));
    let client_got = within(60, "client", client).await.expect("client task");
    let server_got = within(60, "server", server).await.expect("server task");
    Outcome {
        relay: relay.map_err(|e| e.kind()),
        client_got,
        server_got,
    }
}

/// Runs `scenario` for each implementation; asserts that all agree and
/// returns the common outcome.
async fn parity<F, Fut>(scenario: F) -> Outcome
where
    F: Fn(Impl) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut outcomes = Vec::new();
    for imp in IMPLS {
        outcomes.push((imp, scenario(imp).await));
    }
    let reference = outcomes[0].1.clone();
    for (imp, outcome) in &outcomes {
        assert_eq!(outcome, &reference, "{imp:?} differs from tokio");
    }
    reference
}

/// Reads to end of file (checking stream `which`), tolerating a reset
/// (then returns what it got before).
async fn recv_lenient(s: &mut TcpStream, which: usize) -> u64 {
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut check = Vec::new();
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got += n as u64;
                check.extend_from_slice(&buf[..n]);
            }
        }
    }
    let mut replay: &[u8] = &check;
    assert_eq!(recv_stream(&mut replay, which).await.unwrap(), got);
    got
}

const N: u64 = 300 << 10;
const M: u64 = 200 << 10;

async fn client_eof_first() {
    let outcome = parity(|imp| {
        run(
            imp,
            |mut c| async move {
                send_stream(&mut c, 0, N).await.unwrap();
                c.shutdown().await.unwrap();
                recv_stream(&mut c, 1).await.unwrap()
            },
            |mut s| async move {
                let got = recv_stream(&mut s, 0).await.unwrap();
                // The client's end of file arrived; this direction still works.
                send_stream(&mut s, 1, M).await.unwrap();
                s.shutdown().await.unwrap();
                got
            },
        )
    })
    .await;
    assert_eq!(
        outcome,
        Outcome {
            relay: Ok((N, M)),
            client_got: M,
            server_got: N
        }
    );
}

async fn server_eof_first() {
    let outcome = parity(|imp| {
        run(
            imp,
            |mut c| async move {
                let got = recv_stream(&mut c, 1).await.unwrap();
                send_stream(&mut c, 0, N).await.unwrap();
                c.shutdown().await.unwrap();
                got
            },
            |mut s| async move {
                send_stream(&mut s, 1, M).await.unwrap();
                s.shutdown().await.unwrap();
                recv_stream(&mut s, 0).await.unwrap()
            },
        )
    })
    .await;
    assert_eq!(
        outcome,
        Outcome {
            relay: Ok((N, M)),
            client_got: M,
            server_got: N
        }
    );
}

/// The client half-closes at once; the server keeps sending 8 MiB while
/// and after it sees that end of file.
async fn half_close_other_direction_still_sending() {
    const BIG: u64 = 8 << 20;
    let outcome = parity(|imp| {
        run(
            imp,
            |mut c| async move {
                c.write_all(b"request").await.unwrap();
                c.shutdown().await.unwrap();
                recv_stream(&mut c, 1).await.unwrap()
            },
            |s| async move {
                let (mut r, mut w) = s.into_split();
                let sender = tokio::spawn(async move {
                    send_stream(&mut w, 1, BIG).await.unwrap();
                    w.shutdown().await.unwrap();
                });
                let mut request = Vec::new();
                r.read_to_end(&mut request).await.unwrap();
                assert_eq!(request, b"request");
                sender.await.unwrap();
                request.len() as u64
            },
        )
    })
    .await;
    assert_eq!(
        outcome,
        Outcome {
            relay: Ok((7, BIG)),
            client_got: BIG,
            server_got: 7
        }
    );
}

async fn zero_byte_streams() {
    let outcome = parity(|imp| {
        run(
            imp,
            |mut c| async move {
                c.shutdown().await.unwrap();
                recv_stream(&mut c, 1).await.unwrap()
            },
            |mut s| async move {
                s.shutdown().await.unwrap();
                recv_stream(&mut s, 0).await.unwrap()
            },
        )
    })
    .await;
    assert_eq!(
        outcome,
        Outcome {
            relay: Ok((0, 0)),
            client_got: 0,
            server_got: 0
        }
    );
}

/// 64 MiB each way at once.
async fn large_streams_both_ways() {
    const BIG: u64 = 64 << 20;
    let both_ways = |which_out: usize, which_in: usize| {
        move |s: TcpStream| async move {
            let (mut r, mut w) = s.into_split();
            let sender = tokio::spawn(async move {
                send_stream(&mut w, which_out, BIG).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let got = recv_stream(&mut r, which_in).await.unwrap();
            sender.await.unwrap();
            got
        }
    };
    let outcome = parity(|imp| run(imp, both_ways(0, 1), both_ways(1, 0))).await;
    assert_eq!(
        outcome,
        Outcome {
            relay: Ok((BIG, BIG)),
            client_got: BIG,
            server_got: BIG
        }
    );
}

/// The server reads 16 KiB at a time with a pause after each read: the
/// relay spends most of its time waiting to write.
async fn slow_reader() {
    const LEN: u64 = 2 << 20;
    let outcome = parity(|imp| {
        run(
            imp,
            |mut c| async move {
                send_stream(&mut c, 0, LEN).await.unwrap();
                c.shutdown().await.unwrap();
                recv_stream(&mut c, 1).await.unwrap()
            },
            |mut s| async move {
                let got = recv_stream_slowly(&mut s, 0, 16 << 10, Duration::from_millis(1))
                    .await
                    .unwrap();
                s.shutdown().await.unwrap();
                got
            },
        )
    })
    .await;
    assert_eq!(
        outcome,
        Outcome {
            relay: Ok((LEN, 0)),
            client_got: 0,
            server_got: LEN
        }
    );
}

/// The client resets its connection (SO_LINGER 0, then close) after the
/// server received everything it sent: the relay, waiting to read from
/// `a`, gets `ECONNRESET`.
async fn client_resets_mid_stream() {
    const SENT: u64 = 256 << 10;
    let outcome = parity(|imp| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        run(
            imp,
            move |mut c| async move {
                send_stream(&mut c, 0, SENT).await.unwrap();
                rx.await.unwrap(); // the server has it all
                c.set_zero_linger().unwrap();
                drop(c); // RST
                0
            },
            move |mut s| async move {
                let mut buf = vec![0u8; SENT as usize];
                s.read_exact(&mut buf).await.unwrap();
                let mut replay: &[u8] = &buf;
                assert_eq!(recv_stream(&mut replay, 0).await.unwrap(), SENT);
                tx.send(()).unwrap();
                // The relay fails and closes `b`: end of file here.
                let rest = recv_lenient(&mut s, 0).await;
                SENT + rest
            },
        )
    })
    .await;
    assert_eq!(
        outcome,
        Outcome {
            relay: Err(io::ErrorKind::ConnectionReset),
            client_got: 0,
            server_got: SENT
        }
    );
}

/// The server resets its connection while the client is still sending:
/// the relay fails either reading from `b` (`ECONNRESET`) or writing to it
/// (`ECONNRESET` or `EPIPE`), depending on timing, for every copy alike.
async fn server_resets_while_client_sends() {
    const READ_BEFORE_RST: usize = 1 << 20;
    for imp in IMPLS {
        let outcome = run(
            imp,
            |mut c| async move {
                // Keep sending until the relay gives up on this connection.
                let _ = send_stream(&mut c, 0, 64 << 20).await;
                0
            },
            |mut s| async move {
                let mut buf = vec![0u8; READ_BEFORE_RST];
                s.read_exact(&mut buf).await.unwrap();
                s.set_zero_linger().unwrap();
                drop(s); // RST
                READ_BEFORE_RST as u64
            },
        )
        .await;
        assert!(
            matches!(
                outcome.relay,
                Err(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
            ),
            "{imp:?}: {outcome:?}"
        );
        assert_eq!(outcome.server_got, READ_BEFORE_RST as u64);
    }
}

/// `copy` (one way): the same count, and the writer is *not* shut down.
async fn copy_one_way_leaves_writer_open() {
    for imp in IMPLS {
        let (mut client, mut a) = tcp_pair().await;
        let (mut b, mut server) = tcp_pair().await;
        let sender = tokio::spawn(async move {
            send_stream(&mut client, 0, N).await.unwrap();
            client.shutdown().await.unwrap();
        });
        let n = within(60, "copy", imp.copy(&mut a, &mut b)).await.unwrap();
        assert_eq!(n, N, "{imp:?}");
        sender.await.unwrap();
        let mut buf = vec![0u8; N as usize];
        server.read_exact(&mut buf).await.unwrap();
        let mut replay: &[u8] = &buf;
        assert_eq!(recv_stream(&mut replay, 0).await.unwrap(), N);
        // No end of file yet: `copy` does not shut the writer down.
        let more = tokio::time::timeout(Duration::from_millis(50), server.read(&mut buf)).await;
        assert!(more.is_err(), "{imp:?}: the writer was shut down");
        drop(b);
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
    }
}

/// Errors come back as tokio's do: the raw OS error, not a wrapper.
async fn plain_errors_are_raw_os_errors() {
    let (client, mut a) = tcp_pair().await;
    let (mut b, _server) = tcp_pair().await;
    client.set_zero_linger().unwrap();
    drop(client);
    let err = within(
        60,
        "relay",
        pipepool::tokio::copy_bidirectional(&mut a, &mut b),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::CONNRESET.raw_os_error())
    );
}

on_both_runtimes!(
    client_eof_first,
    server_eof_first,
    half_close_other_direction_still_sending,
    zero_byte_streams,
    large_streams_both_ways,
    slow_reader,
    client_resets_mid_stream,
    server_resets_while_client_sends,
    copy_one_way_leaves_writer_open,
    plain_errors_are_raw_os_errors,
);
