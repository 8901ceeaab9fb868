//! An HTTP CONNECT proxy (what `curl -x`, browsers and `HTTPS_PROXY` use
//! for tunnels) on hyper, that splices each tunnel with pipepool.
//!
//! hyper answers the `CONNECT` and hands the connection over as an
//! `Upgraded`; downcast, that is the client's `TcpStream` plus `read_buf`,
//! the bytes hyper had read past the request (a client that sends its TLS
//! hello right behind the `CONNECT` line, without waiting for the `200`).
//! [`copy_bidirectional_with_prefix`] writes those bytes to the target
//! first and splices the rest both ways.
//!
//! ```sh
//! cargo run --release -p pipepool --example connect_proxy --features tokio -- 127.0.0.1:3128
//! curl -x http://127.0.0.1:3128 https://example.com/
//! # the same proxy with tokio::io::copy_bidirectional on the Upgraded, to compare:
//! cargo run --release -p pipepool --example connect_proxy --features tokio -- 127.0.0.1:3128 --tokio
//! ```
//!
//! `bench/connect_proxy.sh` measures CPU per GB through it, both ways.
//! Any `host:port` is allowed: this is an example, not an access-controlled
//! proxy.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pipepool::tokio::{copy_bidirectional_with_prefix, CopyOptions};
use tokio::net::{TcpListener, TcpStream};

/// Bytes hyper had read ahead and the tunnels wrote as their prefix (the
/// test checks that its early bytes took that way).
static READ_AHEAD: AtomicU64 = AtomicU64::new(0);

/// How tunnels are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// pipepool: the upgraded connection downcast to its `TcpStream`, the
    /// read-ahead as the prefix, spliced.
    Splice,
    /// `tokio::io::copy_bidirectional` on the `Upgraded` itself (the
    /// baseline).
    Tokio,
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let mut listen = "127.0.0.1:3128".to_string();
    let mut relay = Relay::Splice;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--tokio" => relay = Relay::Tokio,
            _ => listen = arg,
        }
    }
    let listener = TcpListener::bind(&listen).await?;
    println!("CONNECT proxy on {} ({relay:?})", listener.local_addr()?);
    serve(listener, relay).await
}

/// Accepts connections forever, one task each; hyper serves each one.
async fn serve(listener: TcpListener, relay: Relay) -> io::Result<()> {
    let opts = Arc::new(CopyOptions::new());
    loop {
        let (stream, peer) = listener.accept().await?;
        let opts = Arc::clone(&opts);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, relay, Arc::clone(&opts)));
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// Answers one request: `CONNECT host:port` connects to the target, says
/// `200`, and tunnels once hyper hands the connection over; anything else
/// is refused.
async fn answer(
    req: Request<Incoming>,
    relay: Relay,
    opts: Arc<CopyOptions>,
) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    let status = |code| {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = code;
        Ok(response)
    };
    if req.method() != Method::CONNECT {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some(target) = req.uri().authority().map(|a| a.to_string()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let Ok(upstream) = TcpStream::connect(&target).await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    tokio::spawn(async move {
        let done = match hyper::upgrade::on(req).await {
            Ok(upgraded) => tunnel(upgraded, upstream, relay, &opts).await,
            Err(e) => Err(io::Error::other(e)),
        };
        if let Err(e) = done {
            eprintln!("tunnel to {target}: {e}");
        }
    });
    status(StatusCode::OK)
}

/// Copies both ways between the client (upgraded) and the target until
/// both are done; returns (client -> target, target -> client) bytes.
async fn tunnel(
    upgraded: Upgraded,
    mut upstream: TcpStream,
    relay: Relay,
    opts: &CopyOptions,
) -> io::Result<(u64, u64)> {
    if relay == Relay::Tokio {
        return tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
    }
    // The server was given a `TokioIo<TcpStream>`: take the stream back,
    // and what hyper read of the client's bytes past the request.
    let parts = upgraded
        .downcast::<TokioIo<TcpStream>>()
        .map_err(|_| io::Error::other("the upgraded connection is not a TcpStream"))?;
    let mut client = parts.io.into_inner();
    READ_AHEAD.fetch_add(parts.read_buf.len() as u64, Ordering::Relaxed);
    let report =
        copy_bidirectional_with_prefix(&mut client, &mut upstream, &parts.read_buf, b"", opts)
            .await?;
    Ok((report.a_to_b.bytes, report.b_to_a.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server on a port of its own.
    async fn echo_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    tokio::io::copy(&mut r, &mut w).await.unwrap();
                    w.shutdown().await.unwrap();
                });
            }
        });
        addr
    }

    /// A client that sends its first bytes right behind the CONNECT
    /// request (so hyper reads them ahead: the prefix), then 2 MiB more,
    /// and gets every byte echoed back in order, through both relays.
    #[tokio::test]
    async fn tunnels_with_the_read_ahead_first() {
        let echo = echo_server().await;
        for relay in [Relay::Splice, Relay::Tokio] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy = listener.local_addr().unwrap();
            let server = tokio::spawn(serve(listener, relay));

            let mut client = TcpStream::connect(proxy).await.unwrap();
            let early = b"early bytes, sent before the 200";
            let mut first = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n").into_bytes();
            first.extend_from_slice(early);
            client.write_all(&first).await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(client.read_u8().await.unwrap());
            }
            let head = String::from_utf8(head).unwrap();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");

            let body: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
            let (mut r, mut w) = client.into_split();
            let send = async {
                w.write_all(&body).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let (_, n) = tokio::join!(send, r.read_to_end(&mut got));
            n.unwrap();
            assert_eq!(got.len(), early.len() + body.len(), "{relay:?}");
            assert!(got[..early.len()] == early[..], "{relay:?}");
            assert!(got[early.len()..] == body[..], "{relay:?}");
            if relay == Relay::Splice {
                // hyper read the early bytes with the request: they went
                // out as the prefix.
                assert_eq!(READ_AHEAD.load(Ordering::Relaxed), early.len() as u64);
            }
            server.abort();
        }
    }

    /// Not a CONNECT: 405.
    #[tokio::test]
    async fn refuses_other_methods() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Relay::Splice));
        let mut client = TcpStream::connect(proxy).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    }
}
