//! The upstream side of a benchmark: an echo server (sends back every byte)
//! or a sink (discards, then answers the byte count as 8 big-endian bytes
//! when the client half-closes, so that one-way runs are verified too).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::stream::Stream;

/// Read buffer per connection.
const BUF: usize = 256 * 1024;

/// What the server does with the bytes it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServeMode {
    /// Send them back.
    Echo,
    /// Count and drop them; answer the count at EOF.
    Sink,
}

/// Serves every connection of `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, mode: ServeMode) {
    serve_with(listener, mode, false).await;
}

/// [`serve`], first reading a PROXY header from each connection when
/// `accept_proxy` (the upstream of a `spliced run --send-proxy`).
pub(crate) async fn serve_with(listener: TcpListener, mode: ServeMode, accept_proxy: bool) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let mut stream = Stream::Tcp(stream);
                    if accept_proxy {
                        let wait = crate::config::DEFAULT_PROXY_TIMEOUT;
                        if let Err(e) = crate::proxy::read_proxy_header(&mut stream, wait).await {
                            tracing::warn!("bench server: {e}");
                            return;
                        }
                    }
                    let r = match mode {
                        ServeMode::Echo => echo(stream).await,
                        ServeMode::Sink => sink(stream).await,
                    };
                    if let Err(e) = r {
                        tracing::debug!("bench server connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("bench server accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn echo(mut stream: Stream) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn sink(mut stream: Stream) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    let mut total: u64 = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.write_all(&total.to_be_bytes()).await?;
            return stream.shutdown().await;
        }
        total += n as u64;
    }
}
