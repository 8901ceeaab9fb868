//! The counts a failed copy reports are the bytes its destination accepted:
//! what the peer behind it receives, to the byte, including what the copy
//! writes out when it ends (bytes still in a pipe or buffer), and what its
//! [`Progress`] says.

#![cfg(feature = "tokio")]

use crate::util;

use std::os::fd::AsFd;
use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, copy_with, CopyOptions, Progress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::net::{small_buffers, tcp_pair, within};

/// Resets `s` (close with `SO_LINGER` 0: the peer gets an RST).
fn reset(s: TcpStream) {
    rustix::net::sockopt::set_socket_linger(s.as_fd(), Some(Duration::ZERO)).unwrap();
    drop(s);
}

/// Reads `s` until end of file or an error; returns the bytes read.
async fn drain(mut s: TcpStream) -> u64 {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += k as u64,
        }
    }
}

/// `client -> a | relay | b -> server`: the client sends 1 MiB that the
/// server starts reading late (so the relay holds bytes in flight), then
/// resets its connection. The relay fails; its a -> b count must equal what the
/// server then receives in all.
#[test]
fn a_failed_copy_counts_what_the_peer_received() {
    let rt = util::net::runtime(false);
    rt.block_on(async {
        for zero_copy in [true, false] {
            for bidi in [true, false] {
                let (mut client, mut a) = tcp_pair().await;
                let (mut b, server) = tcp_pair().await;
                small_buffers(&[&b, &server]);
                let progress = Box::leak(Box::new(Progress::new()));
                let opts = CopyOptions::new()
                    .zero_copy(zero_copy)
                    .progress(progress.clone());
                let sender = tokio::spawn(async move {
                    let data = vec![7u8; 1 << 20];
                    let _ = client.write_all(&data).await;
                    reset(client);
                });
                // The server starts reading late, then reads everything.
                let server = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    drain(server).await
                });
                let counted = within(30, "the relay", async {
                    if bidi {
                        match copy_bidirectional_with(&mut a, &mut b, &opts).await {
                            Ok(r) => (r.a_to_b.bytes, None),
                            Err(e) => (e.a_to_b().bytes, Some(e.into_error())),
                        }
                    } else {
                        match copy_with(&mut a, &mut b, &opts).await {
                            Ok(t) => (t.bytes, None),
                            Err(e) => (e.transfer().bytes, Some(e.into_error())),
                        }
                    }
                })
                .await;
                sender.await.unwrap();
                drop((a, b));
                let received = within(30, "the server", server).await.unwrap();
                let ctx = format!("zero_copy {zero_copy}, bidi {bidi}, error {:?}", counted.1);
                assert_eq!(counted.0, received, "{ctx}: count vs what the server got");
                assert_eq!(progress.a_to_b(), received, "{ctx}: Progress");
                assert!(counted.1.is_some(), "{ctx}: the reset is an error");
            }
        }
    });
}
