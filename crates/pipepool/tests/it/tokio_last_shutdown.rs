//! `CopyOptions::last_shutdown(false)`: the direction of a
//! `copy_bidirectional_with` that finishes second leaves its writer to the
//! caller's close, and the first one still half-closes. Real loopback TCP
//! (`client <-> a | relay | b <-> server`), both paths (splice and
//! userspace), either direction finishing second: the peers get every byte,
//! the first FIN while the other direction still runs, the last one only
//! when the relay closes its sockets, and a clean end of file (no reset).

#![cfg(feature = "tokio")]

use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, CopyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::net::{tcp_pair, within};

/// Whether `s` shows end of file within a short wait: `Some(true)` for a
/// clean end of file, `None` if nothing came. Data or an error fail.
async fn eof_within(s: &mut TcpStream, wait: Duration) -> Option<bool> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, s.read(&mut byte)).await {
        Err(_) => None,
        Ok(Ok(0)) => Some(true),
        Ok(other) => panic!("expected end of file or nothing, got {other:?}"),
    }
}

/// The peers' exchange: `first` sends a question and half-closes; `second`
/// reads it to end of file (which only the relay's first shutdown gives),
/// answers and half-closes; `first` reads the answer.
async fn question_then_answer(first: &mut TcpStream, second: &mut TcpStream, case: &str) {
    first.write_all(b"question").await.unwrap();
    first.shutdown().await.unwrap();
    let mut got = Vec::new();
    second.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"question", "{case}");
    second.write_all(b"the answer").await.unwrap();
    second.shutdown().await.unwrap();
    let mut answer = [0u8; 10];
    first.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"the answer", "{case}");
}

/// With `last_shutdown(false)` the peer that finished first sees its end
/// of file only once the relay closes its sockets, and then cleanly.
#[tokio::test(flavor = "current_thread")]
async fn last_writer_is_left_to_the_close() {
    for zero_copy in [true, false] {
        for client_first in [true, false] {
            let case = format!("zero_copy {zero_copy}, client first {client_first}");
            let opts = CopyOptions::new().zero_copy(zero_copy).last_shutdown(false);
            let (mut client, mut a) = tcp_pair().await;
            let (mut b, mut server) = tcp_pair().await;
            let (first, second) = if client_first {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            let relay = async {
                copy_bidirectional_with(&mut a, &mut b, &opts)
                    .await
                    .map(|r| (r.a_to_b.bytes, r.b_to_a.bytes))
                    .map_err(|e| e.into_error())
            };
            let peers = question_then_answer(first, second, &case);
            let (result, ()) = within(30, &case, async { tokio::join!(relay, peers) }).await;
            let (q, ans) = (8, 10);
            let expected = if client_first { (q, ans) } else { (ans, q) };
            assert_eq!(result.unwrap(), expected, "{case}");
            // The copy is over, the relay's sockets still open: no FIN yet.
            let first = if client_first {
                &mut client
            } else {
                &mut server
            };
            assert_eq!(
                eof_within(first, Duration::from_millis(200)).await,
                None,
                "{case}: the last writer was shut down"
            );
            drop((a, b));
            // The close sent it: a clean end of file, not a reset.
            assert_eq!(
                eof_within(first, Duration::from_secs(10)).await,
                Some(true),
                "{case}: no end of file after the close"
            );
        }
    }
}

/// By default (tokio's behaviour) both writers are shut down before the
/// copy returns: the end of file is there while the sockets are open.
#[tokio::test(flavor = "current_thread")]
async fn by_default_both_writers_are_shut_down() {
    for zero_copy in [true, false] {
        for client_first in [true, false] {
            let case = format!("zero_copy {zero_copy}, client first {client_first}");
            let opts = CopyOptions::new().zero_copy(zero_copy);
            let (mut client, mut a) = tcp_pair().await;
            let (mut b, mut server) = tcp_pair().await;
            let (first, second) = if client_first {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            let relay = copy_bidirectional_with(&mut a, &mut b, &opts);
            let peers = question_then_answer(first, second, &case);
            let (result, ()) = within(30, &case, async { tokio::join!(relay, peers) }).await;
            result.unwrap();
            let first = if client_first {
                &mut client
            } else {
                &mut server
            };
            assert_eq!(
                eof_within(first, Duration::from_secs(10)).await,
                Some(true),
                "{case}: the last writer was not shut down"
            );
            drop((a, b));
        }
    }
}
