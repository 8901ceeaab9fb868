//! Prefixes: bytes already read from either side (a `BufReader`'s
//! leftovers, a hyper `Upgraded`'s read-ahead) go out before the rest, on
//! the splice path and the userspace path, with exact counts in the
//! report and in `Progress`, including a prefix larger than the socket
//! buffers (its write waits on writability: nothing blocks, nothing drops).

#![cfg(feature = "tokio")]

use pipepool::tokio::{copy_bidirectional_with_prefix, copy_with_prefix, CopyOptions, Progress};
use pipepool::{Method, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::net::{small_buffers, within, Pairs};
use crate::util::pattern;

/// Sends `body` from `from` and shuts it down; reads everything `to`
/// gets until end of file.
async fn send_and_receive(
    mut from: TcpStream,
    mut to: TcpStream,
    body: Vec<u8>,
) -> (TcpStream, Vec<u8>) {
    let send = async {
        from.write_all(&body).await.unwrap();
        from.shutdown().await.unwrap();
    };
    let receive = async {
        let mut got = Vec::new();
        to.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(send, receive);
    drop(from);
    (to, got)
}

/// A prefix on each side of a bidirectional copy, each direction's count
/// exact, on both paths; prefixes from 1 byte to 1 MiB (far beyond the
/// 16 KiB socket buffers).
#[tokio::test]
async fn each_side_with_exact_counts_on_both_paths() {
    let pairs = Pairs::new();
    for zero_copy in [true, false] {
        for (pa, pb) in [(1usize, 0usize), (0, 7), (5000, 3), (1 << 20, 200_000)] {
            let pool = PoolConfig::builder().build().unwrap();
            let progress = Progress::new();
            let opts = CopyOptions::new()
                .pool(pool.clone())
                .zero_copy(zero_copy)
                .progress(progress.clone());
            let (client, mut a) = pairs.pair().await;
            let (mut b, server) = pairs.pair().await;
            small_buffers(&[&client, &a, &b, &server]);
            let prefix_a = pattern(pa);
            let prefix_b: Vec<u8> = pattern(pb).iter().map(|x| x ^ 0x55).collect();
            let (body_a, body_b) = (pattern(300_000), pattern(123_457));

            let relay = copy_bidirectional_with_prefix(&mut a, &mut b, &prefix_a, &prefix_b, &opts);
            let (client_r, client_w) = client.into_split();
            let (server_r, server_w) = server.into_split();
            let peers = async {
                let ab = async {
                    let mut client_w = client_w;
                    let mut server_r = server_r;
                    let send = async {
                        client_w.write_all(&body_a).await.unwrap();
                        client_w.shutdown().await.unwrap();
                    };
                    let mut got = Vec::new();
                    let (_, n) = tokio::join!(send, server_r.read_to_end(&mut got));
                    n.unwrap();
                    got
                };
                let ba = async {
                    let mut server_w = server_w;
                    let mut client_r = client_r;
                    let send = async {
                        server_w.write_all(&body_b).await.unwrap();
                        server_w.shutdown().await.unwrap();
                    };
                    let mut got = Vec::new();
                    let (_, n) = tokio::join!(send, client_r.read_to_end(&mut got));
                    n.unwrap();
                    got
                };
                tokio::join!(ab, ba)
            };
            let (report, (at_server, at_client)) =
                within(60, "prefixed relay", async { tokio::join!(relay, peers) }).await;
            let report = report.unwrap();
            let what = format!("zero_copy {zero_copy}, prefixes ({pa}, {pb})");
            assert_eq!(at_server.len(), pa + body_a.len(), "{what}");
            assert!(at_server[..pa] == prefix_a[..], "{what}");
            assert!(at_server[pa..] == body_a[..], "{what}");
            assert!(at_client[..pb] == prefix_b[..], "{what}");
            assert!(at_client[pb..] == body_b[..], "{what}");
            assert_eq!(
                (report.a_to_b.bytes, report.b_to_a.bytes),
                ((pa + body_a.len()) as u64, (pb + body_b.len()) as u64),
                "{what}"
            );
            assert_eq!(
                (progress.a_to_b(), progress.b_to_a()),
                (report.a_to_b.bytes, report.b_to_a.bytes),
                "{what}"
            );
            // The prefix goes from memory; the rest is spliced when it can be.
            assert!(progress.a_to_b_by(Method::Userspace) >= pa as u64, "{what}");
            let method = if zero_copy {
                Method::Splice
            } else {
                Method::Userspace
            };
            assert_eq!(
                (report.a_to_b.method, report.b_to_a.method),
                (method, method),
                "{what}"
            );
            if zero_copy {
                assert!(progress.a_to_b_by(Method::Splice) > 0, "{what}");
            }
            let stats = pool.stats();
            assert_eq!(
                (stats.in_use, stats.closed_dirty),
                (0, 0),
                "{what}: {stats:?}"
            );
        }
    }
}

/// One direction: the prefix alone (the source at end of file at once) and
/// a prefix with a body, spliced; the count is exact.
#[tokio::test]
async fn one_way_prefix_then_splice() {
    let pairs = Pairs::new();
    for (prefix_len, body_len) in [(0usize, 0usize), (10, 0), (2 << 20, 0), (10, 1 << 20)] {
        let opts = CopyOptions::new();
        let (client, mut a) = pairs.pair().await;
        let (mut b, server) = pairs.pair().await;
        small_buffers(&[&a, &b, &server]);
        let prefix = pattern(prefix_len);
        let body = pattern(body_len);
        let copy = async {
            let done = copy_with_prefix(&mut a, &mut b, &prefix, &opts).await;
            b.shutdown().await.unwrap();
            done
        };
        let (done, (_, got)) = within(60, "prefixed copy", async {
            tokio::join!(copy, send_and_receive(client, server, body.clone()))
        })
        .await;
        let done = done.unwrap();
        assert_eq!(done.bytes, (prefix_len + body_len) as u64);
        assert_eq!(done.method, Method::Splice, "{prefix_len} + {body_len}");
        assert_eq!(got.len(), prefix_len + body_len);
        assert!(got[..prefix_len] == prefix[..] && got[prefix_len..] == body[..]);
    }
}

/// The peer of the destination closes while a large prefix is still going
/// out: an error, whose count is what the destination took (never more
/// than the prefix), and the copy never hangs.
#[tokio::test]
async fn peer_gone_during_the_prefix() {
    let pairs = Pairs::new();
    let (_client, mut a) = pairs.pair().await;
    let (mut b, server) = pairs.pair().await;
    small_buffers(&[&b, &server]);
    let prefix = pattern(8 << 20);
    let opts = CopyOptions::new();
    let copy = copy_with_prefix(&mut a, &mut b, &prefix, &opts);
    let close = async {
        let mut server = server;
        let mut first = vec![0u8; 1000];
        server.read_exact(&mut first).await.unwrap();
        assert!(first[..] == prefix[..1000]);
        drop(server); // unread bytes: a reset
    };
    let (err, ()) = within(60, "copy to a closed peer", async {
        tokio::join!(copy, close)
    })
    .await;
    let err = err.unwrap_err();
    let sent = err.transfer().bytes;
    assert!((1000..prefix.len() as u64).contains(&sent), "{sent}");
}

/// Cancellation in the middle of a prefix larger than the socket buffers
/// (the peer reads nothing meanwhile): every byte counted in `Progress`
/// reached the peer, in order, and the count is short of the prefix.
#[tokio::test]
async fn dropped_mid_prefix_loses_no_counted_byte() {
    let pairs = Pairs::new();
    for zero_copy in [true, false] {
        let progress = Progress::new();
        let opts = CopyOptions::new()
            .zero_copy(zero_copy)
            .progress(progress.clone());
        let (_client, mut a) = pairs.pair().await;
        let (mut b, mut server) = pairs.pair().await;
        small_buffers(&[&b, &server]);
        let prefix = pattern(4 << 20);
        let copy = copy_with_prefix(&mut a, &mut b, &prefix, &opts);
        // The destination fills up and the copy waits: cancel it there.
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(300), copy).await;
        assert!(cancelled.is_err(), "the copy finished with nobody reading");
        drop(b); // the FIN after whatever was written
        let mut got = Vec::new();
        within(30, "read what was sent", server.read_to_end(&mut got))
            .await
            .unwrap();
        let counted = progress.a_to_b();
        assert!(counted > 0 && counted < prefix.len() as u64, "{counted}");
        assert_eq!(got.len() as u64, counted, "zero_copy {zero_copy}");
        assert!(got[..] == prefix[..got.len()]);
    }
}
