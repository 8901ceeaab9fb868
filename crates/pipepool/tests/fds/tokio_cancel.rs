//! Cancel safety: a copy future dropped mid-transfer, while a pipe holds
//! bytes it could not write yet, closes that pipe (`closed_dirty`) and never
//! returns it to the pool; every pipe left idle in the pool is empty; the
//! bytes that did arrive are an exact prefix of what was sent; and the fds
//! go back to where they were. Both runtimes.
//!
//! The pools have `local_cap(0)`, so every idle pipe sits in the shared
//! pool where the test can take each one out and look inside. The tests
//! count fds, so they run one at a time (`util::fd_lock`). They count
//! pipes and sockets (what a copy could leak), from inside the runtime; with
//! `local_cap(0)` no worker thread keeps pipes in a cache.

#![cfg(feature = "tokio")]

use crate::util;

use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, copy_with, CopyOptions};
use pipepool::{PipePool, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::net::{recv_stream, send_stream, small_buffers, tcp_pair, within};

fn pool() -> PipePool {
    PoolConfig::builder().local_cap(0).build().unwrap()
}

/// Waits until `pool` has `n` pipes on loan (polling its statistics).
async fn pipes_in_use(pool: &PipePool, n: u64) {
    within(30, "waiting for pipes in use", async {
        while pool.stats().in_use != n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

/// Every idle pipe of `pool` (local_cap 0: all in the shared pool) is
/// empty, by the kernel's count; all of them are given back afterwards.
fn assert_idle_pipes_empty(pool: &PipePool) {
    let before = pool.stats();
    let pipes: Vec<_> = (0..before.idle)
        .map(|_| pool.get().expect("an idle pipe"))
        .collect();
    for pipe in &pipes {
        assert_eq!(
            pipe.kernel_len().unwrap(),
            0,
            "a pipe with bytes was pooled"
        );
    }
    assert_eq!(pool.stats().created, before.created, "took only idle pipes");
}

/// Drops `copy_bidirectional_with` while `a -> b` holds a pipe full of
/// bytes the server is not reading.
async fn drop_bidi_mid_transfer() {
    let baseline = util::pipe_and_socket_fd_count();
    let pool = pool();
    {
        let (mut client, mut a) = tcp_pair().await;
        let (mut b, mut server) = tcp_pair().await;
        // Only the destination side: the relay soon cannot write.
        small_buffers(&[&b, &server]);
        let sender = tokio::spawn(async move {
            // Runs until the relay is gone and the connection closes.
            let _ = send_stream(&mut client, 0, 1 << 30).await;
            client
        });
        let opts = CopyOptions::new().pool(pool.clone());
        tokio::select! {
            res = copy_bidirectional_with(&mut a, &mut b, &opts) => panic!("relay ended: {res:?}"),
            () = pipes_in_use(&pool, 1) => {}
        }
        // The future is dropped: the pipe with bytes went with it.
        let stats = pool.stats();
        assert_eq!(stats.in_use, 0, "{stats:?}");
        assert_eq!(stats.closed_dirty, 1, "{stats:?}");
        assert_idle_pipes_empty(&pool);

        // What the server gets is an exact prefix of the stream.
        drop((a, b));
        let got = within(30, "server", recv_stream(&mut server, 0))
            .await
            .unwrap();
        assert!(got > 0);
        let mut client = within(30, "sender", sender).await.unwrap();
        client.shutdown().await.ok();
    }
    pool.trim();
    drop(pool);
    assert_eq!(util::pipe_and_socket_fd_count(), baseline);
}

/// `copy_with` under `tokio::time::timeout`: the timeout fires while the
/// pipe holds bytes; same guarantees.
async fn drop_copy_by_timeout() {
    let baseline = util::pipe_and_socket_fd_count();
    let pool = pool();
    {
        let (mut client, mut a) = tcp_pair().await;
        let (mut b, server) = tcp_pair().await;
        // Only the destination side: the relay soon cannot write.
        small_buffers(&[&b, &server]);
        let sender = tokio::spawn(async move {
            let _ = send_stream(&mut client, 0, 1 << 30).await;
        });
        let opts = CopyOptions::new().pool(pool.clone());
        let copy =
            tokio::time::timeout(Duration::from_millis(300), copy_with(&mut a, &mut b, &opts));
        assert!(
            copy.await.is_err(),
            "the copy cannot finish: the server never reads"
        );
        let stats = pool.stats();
        assert_eq!((stats.in_use, stats.closed_dirty), (0, 1), "{stats:?}");
        assert_idle_pipes_empty(&pool);
        drop((a, b, server));
        within(30, "sender", sender).await.unwrap();
    }
    pool.trim();
    drop(pool);
    assert_eq!(util::pipe_and_socket_fd_count(), baseline);
}

/// Dropped while idle (waiting to read): no pipe was held, none is dirty.
async fn drop_while_idle() {
    let baseline = util::pipe_and_socket_fd_count();
    let pool = pool();
    {
        let (_client, mut a) = tcp_pair().await;
        let (mut b, _server) = tcp_pair().await;
        let opts = CopyOptions::new().pool(pool.clone());
        let copy = tokio::time::timeout(
            Duration::from_millis(50),
            copy_bidirectional_with(&mut a, &mut b, &opts),
        );
        assert!(copy.await.is_err());
        let stats = pool.stats();
        assert_eq!(
            (stats.created, stats.in_use, stats.closed_dirty),
            (0, 0, 0),
            "{stats:?}"
        );
    }
    drop(pool);
    assert_eq!(util::pipe_and_socket_fd_count(), baseline);
}

/// Each scenario as a test per runtime flavor, one test at a time (the
/// lock is taken outside the runtime: it is not held across `.await`).
macro_rules! on_both_runtimes_counted {
    ($($scenario:ident),* $(,)?) => {
        mod multi_thread {
            $(
                #[test]
                fn $scenario() {
                    let _serial = super::util::fd_lock();
                    super::util::net::run_counted(true, super::$scenario())
                }
            )*
        }
        mod current_thread {
            $(
                #[test]
                fn $scenario() {
                    let _serial = super::util::fd_lock();
                    super::util::net::run_counted(false, super::$scenario())
                }
            )*
        }
    };
}

on_both_runtimes_counted!(
    drop_bidi_mid_transfer,
    drop_copy_by_timeout,
    drop_while_idle
);

/// Reads what has reached `server` without waiting (raw non-blocking
/// `recv`, so the runtime is not entered), until nothing more arrives for
/// a few rounds: afterwards the relay's destination socket has room.
fn drain_now(server: &tokio::net::TcpStream, into: &mut Vec<u8>) {
    let mut buf = vec![0u8; 1 << 20];
    let mut quiet_rounds = 0;
    while quiet_rounds < 5 {
        let mut got = 0;
        loop {
            match rustix::net::recv(server, &mut buf[..], rustix::net::RecvFlags::DONTWAIT) {
                Ok((0, _)) => break,
                Ok((n, _)) => {
                    into.extend_from_slice(&buf[..n]);
                    got += n;
                }
                Err(_) => break, // EAGAIN: nothing more for now
            }
        }
        quiet_rounds = if got == 0 { quiet_rounds + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A relay cancelled while its pipe holds bytes, at a moment when the
/// destination has room again, writes those bytes out as it is dropped:
/// a caller that then goes on relaying by itself delivers the whole
/// stream, every byte once and in order, and the pipe goes back to the
/// pool clean. (Without the flush on drop, the pipe's bytes, up to 64 KiB
/// here, would be missing from the server's count.)
#[test]
fn a_cancelled_relay_writes_out_its_pipe_when_the_destination_has_room() {
    const TOTAL: u64 = 48 << 20;
    // Opens sockets: not while the other tests count fds.
    let _fds = util::fd_lock();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = PoolConfig::builder()
            .pipe_size(64 << 10)
            .local_cap(0)
            .build()
            .unwrap();
        let (mut client, mut a) = tcp_pair().await;
        let (mut b, mut server) = tcp_pair().await;
        let sender = tokio::spawn(async move {
            let chunk = util::pattern(TOTAL as usize);
            client.write_all(&chunk).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut received = Vec::with_capacity(TOTAL as usize);
        {
            let opts = CopyOptions::new().pool(pool.clone());
            let relay = copy_with(&mut a, &mut b, &opts);
            tokio::pin!(relay);
            // Run the relay (and the sender) until it holds a pipe with
            // bytes: the server reads nothing, so the destination fills.
            within(60, "a pipe with bytes", async {
                while pool.stats().in_use == 0 {
                    tokio::select! {
                        biased;
                        r = &mut relay => panic!("relay ended: {r:?}"),
                        () = tokio::time::sleep(Duration::from_millis(1)) => {}
                    }
                }
            })
            .await;
            // The relay is not polled again: make room at the destination,
            // then drop the relay future (end of this block).
            drain_now(&server, &mut received);
        }
        let st = pool.stats();
        assert_eq!(st.in_use, 0, "{st:?}");
        assert_eq!(
            st.closed_dirty, 0,
            "the pipe's bytes were written out on drop: {st:?}"
        );
        // Go on relaying by hand, and read the rest at the server.
        let rest = within(60, "the rest of the stream", async {
            let relay = async {
                tokio::io::copy(&mut a, &mut b).await.unwrap();
                b.shutdown().await.unwrap();
            };
            let read = async {
                let mut rest = Vec::new();
                server.read_to_end(&mut rest).await.unwrap();
                rest
            };
            tokio::join!(relay, read).1
        })
        .await;
        received.extend_from_slice(&rest);
        drop(sender.await.unwrap());
        assert_eq!(received.len() as u64, TOTAL, "bytes lost or repeated");
        let first_bad = received
            .iter()
            .zip(&util::pattern(TOTAL as usize))
            .position(|(got, want)| got != want);
        assert_eq!(first_bad, None, "the stream differs at a byte");
    });
}
