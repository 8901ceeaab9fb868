//! Any pollable fd through `ReadyFd` and `FdIo`: tokio's unix pipes and an
//! `AsyncFd` of a socket pair are spliced by `copy` and
//! `copy_bidirectional`, with exact counts, a prefix, and the pool clean
//! afterwards; `sendfile` and `copy_to_file` take them too.

#![cfg(feature = "tokio")]

use std::io::Write;
use std::os::unix::net::UnixStream as StdUnixStream;

use pipepool::tokio::{
    copy_bidirectional_with, copy_with, copy_with_prefix, sendfile, CopyOptions, FdIo,
};
use pipepool::{Method, PoolConfig};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::util::net::within;
use crate::util::pattern;

/// A registered, non-blocking `AsyncFd` of one end of a std socket pair,
/// and the other end as a tokio `UnixStream`.
fn async_fd_pair() -> (AsyncFd<StdUnixStream>, tokio::net::UnixStream) {
    let (a, b) = StdUnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    // `new` is deprecated for types whose fd could be closed under the
    // registration; an owned `UnixStream` cannot be (and `register`, its
    // replacement, is `unsafe` for that reason).
    #[allow(deprecated)]
    let a = AsyncFd::new(a).unwrap();
    (a, tokio::net::UnixStream::from_std(b).unwrap())
}

/// pipe -> pipe, 3 MiB (many pipefuls), a prefix first: every byte, in
/// order, spliced.
#[tokio::test]
async fn tokio_pipe_to_pipe_is_spliced() {
    let pool = PoolConfig::builder().build().unwrap();
    let opts = CopyOptions::new().pool(pool.clone());
    let (mut in_tx, in_rx) = pipe::pipe().unwrap();
    let (out_tx, mut out_rx) = pipe::pipe().unwrap();
    let data = pattern(3 << 20);
    let prefix = b"prefix:".to_vec();
    let send = async {
        in_tx.write_all(&data).await.unwrap();
        drop(in_tx);
    };
    let copy = async {
        let mut r = FdIo::new(&in_rx);
        let mut w = FdIo::new(&out_tx);
        let done = copy_with_prefix(&mut r, &mut w, &prefix, &opts).await;
        drop(out_tx); // end of file for out_rx
        done
    };
    let receive = async {
        let mut got = Vec::new();
        out_rx.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), done, got) = within(60, "pipe to pipe", async {
        tokio::join!(send, copy, receive)
    })
    .await;
    let done = done.unwrap();
    assert_eq!(done.bytes, (prefix.len() + data.len()) as u64);
    assert_eq!(done.method, Method::Splice);
    assert!(got[..prefix.len()] == prefix[..] && got[prefix.len()..] == data[..]);
    let stats = pool.stats();
    assert!(stats.created >= 1, "{stats:?}");
    assert_eq!((stats.in_use, stats.closed_dirty), (0, 0), "{stats:?}");
}

/// `AsyncFd` of a socket pair <-> a tokio socket, both ways at once,
/// spliced, and the `AsyncFd` end's shutdown reaches its peer.
#[tokio::test]
async fn async_fd_of_a_socketpair_both_ways() {
    let pool = PoolConfig::builder().build().unwrap();
    let opts = CopyOptions::new().pool(pool.clone());
    let (fd, mut fd_peer) = async_fd_pair();
    let (mut b, mut b_peer) = tokio::net::UnixStream::pair().unwrap();
    let (to_b, to_a) = (pattern(1 << 20), pattern(300_001));
    let relay = async {
        let mut a = FdIo::new(&fd);
        copy_bidirectional_with(&mut a, &mut b, &opts).await
    };
    let a_side = async {
        let (mut r, mut w) = fd_peer.split();
        let send = async {
            w.write_all(&to_b).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let (_, n) = tokio::join!(send, r.read_to_end(&mut got));
        n.unwrap();
        got
    };
    let b_side = async {
        let (mut r, mut w) = b_peer.split();
        let send = async {
            w.write_all(&to_a).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let (_, n) = tokio::join!(send, r.read_to_end(&mut got));
        n.unwrap();
        got
    };
    let (report, at_a, at_b) = within(60, "AsyncFd relay", async {
        tokio::join!(relay, a_side, b_side)
    })
    .await;
    let report = report.unwrap();
    assert_eq!(
        (report.a_to_b.bytes, report.b_to_a.bytes),
        (to_b.len() as u64, to_a.len() as u64)
    );
    assert_eq!(
        (report.a_to_b.method, report.b_to_a.method),
        (Method::Splice, Method::Splice)
    );
    assert!(at_b == to_b && at_a == to_a);
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.closed_dirty), (0, 0), "{stats:?}");
}

/// With zero-copy off, `FdIo` is an ordinary reader and writer (`read(2)`,
/// `write(2)` on readiness): same bytes, userspace.
#[tokio::test]
async fn fd_io_as_plain_reader_and_writer() {
    let opts = CopyOptions::new().zero_copy(false).buffer_size(4096);
    let (mut tx, rx) = pipe::pipe().unwrap();
    let (fd, mut peer) = async_fd_pair();
    let data = pattern(200_000);
    let send = async {
        tx.write_all(&data).await.unwrap();
        drop(tx);
    };
    let copy = async {
        let done = copy_with(&mut FdIo::new(&rx), &mut FdIo::new(&fd), &opts).await;
        drop(fd);
        done
    };
    let receive = async {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), done, got) = within(60, "userspace FdIo", async {
        tokio::join!(send, copy, receive)
    })
    .await;
    let done = done.unwrap();
    assert_eq!(
        (done.bytes, done.method),
        (data.len() as u64, Method::Userspace)
    );
    assert!(got == data);
}

/// `sendfile` into a tokio pipe and into an `AsyncFd` (any `ReadyFd`).
#[tokio::test]
async fn sendfile_into_a_pipe_and_an_async_fd() {
    let data = pattern(1 << 20);
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data).unwrap();
    let (tx, mut rx) = pipe::pipe().unwrap();
    let send = async {
        let sent = sendfile(&file, &tx, 10, data.len() as u64 - 10).await;
        drop(tx);
        sent
    };
    let mut got = Vec::new();
    let (sent, n) = within(60, "sendfile to a pipe", async {
        tokio::join!(send, rx.read_to_end(&mut got))
    })
    .await;
    n.unwrap();
    assert_eq!(sent.unwrap().bytes, data.len() as u64 - 10);
    assert!(got[..] == data[10..]);

    let (fd, mut peer) = async_fd_pair();
    let send = async {
        let sent = sendfile(&file, &fd, 0, 5000).await;
        drop(fd);
        sent
    };
    let mut got = Vec::new();
    let (sent, n) = within(60, "sendfile to an AsyncFd", async {
        tokio::join!(send, peer.read_to_end(&mut got))
    })
    .await;
    n.unwrap();
    let sent = sent.unwrap();
    assert_eq!((sent.bytes, sent.method), (5000, Method::Sendfile));
    assert!(got[..] == data[..5000]);
}

/// An `FdIo` of a TCP socket is known as TCP: a splice that stops at the
/// urgent mark (with the FIN behind it, where it answers 0) is not taken
/// for end of file, and every in-band byte arrives (the urgent byte not
/// inline, as `read(2)` gives it).
#[tokio::test]
async fn fd_io_of_tcp_moves_past_the_urgent_mark() {
    use rustix::net::SendFlags;
    let pairs = crate::util::net::Pairs::new();
    let (client, server) = pairs.pair().await;
    let (out, mut peer) = tokio::net::UnixStream::pair().unwrap();
    let client = client.into_std().unwrap();
    client.set_nonblocking(false).unwrap();
    let sender = std::thread::spawn(move || {
        let mut client = client;
        client.write_all(b"before").unwrap();
        rustix::net::send(&client, b"!", SendFlags::OOB).unwrap();
        client.write_all(b"after").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
    });
    std::thread::sleep(std::time::Duration::from_millis(100)); // all of it, FIN included, is in
    let opts = CopyOptions::new();
    let done = within(30, "copy past the mark", async {
        let done = copy_with(&mut FdIo::new(&server), &mut FdIo::new(&out), &opts).await;
        drop(out);
        done
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"beforeafter");
    assert_eq!(done.bytes, 11);
    sender.join().unwrap();
}

/// A pipe end used the wrong way round is a clear error, not a hang.
#[tokio::test]
async fn pipe_end_the_wrong_way_round_is_an_error() {
    let (tx, _rx) = pipe::pipe().unwrap();
    let (mut a, _b) = tokio::net::UnixStream::pair().unwrap();
    let opts = CopyOptions::new();
    let err = within(
        10,
        "read from a write end",
        copy_with(&mut FdIo::new(&tx), &mut a, &opts),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error().kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.error().to_string().contains("write end"), "{err}");
}
