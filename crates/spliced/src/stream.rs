//! The two kinds of socket a side of a connection can be: TCP or a Unix
//! stream socket. [`Acceptor`] is a listener's socket
//! ([`crate::net::Listening`]) registered with a worker's runtime,
//! [`Stream`] one connection's side.
//!
//! An enum rather than a generic: the TCP path stays what it was (a
//! match on a tag; no allocation, no system call more), and everything
//! after the accept (admission, PROXY headers, connect, forwarding, the
//! close) is written once. The copy is [`crate::forward::Forwarder`]'s,
//! which hands each pair of concrete types to pipepool so that both
//! kinds are spliced. Below the proxy (which accepts and connects them)
//! and the forwarder (which copies between them).
//!
//! What is TCP only is skipped on a Unix side: `TCP_NODELAY`, keepalive,
//! `TCP_USER_TIMEOUT`, and the reset of a cut stream (`SIOCOUTQ` wait,
//! `SO_LINGER` 0: see `proxy/abort.rs`): a Unix socket has no RST, so a
//! cut Unix side is just closed, and its peer reads EOF (or `EPIPE` /
//! `ECONNRESET` on its next write if bytes it sent were left unread).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::address::Peer;
use crate::net::Listening;

/// A listening socket of a worker's runtime.
#[derive(Debug)]
pub(crate) enum Acceptor {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Acceptor {
    /// Registers `socket` with the current runtime (it must be
    /// non-blocking).
    ///
    /// # Errors
    /// As tokio's `from_std`.
    pub(crate) fn register(socket: Listening) -> io::Result<Acceptor> {
        Ok(match socket {
            Listening::Tcp(l) => Acceptor::Tcp(TcpListener::from_std(l)?),
            Listening::Unix(l) => Acceptor::Unix(UnixListener::from_std(l)?),
        })
    }

    /// The next client and who it is.
    ///
    /// # Errors
    /// As `accept4(2)`.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Acceptor::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Stream::Tcp(s), Peer::Ip(peer)))
            }
            Acceptor::Unix(l) => {
                let (s, _unnamed) = l.accept().await?;
                Ok((Stream::Unix(s), Peer::Unix))
            }
        }
    }
}

/// One side of a connection.
#[derive(Debug)]
pub(crate) enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
}

impl Stream {
    /// The TCP socket, if it is one.
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(_) => None,
        }
    }

    /// Reads what is there without consuming it (`MSG_PEEK`), waiting
    /// until something is.
    ///
    /// # Errors
    /// As `recv(2)`.
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.peek(buf).await,
            Stream::Unix(s) => {
                s.async_io(Interest::READABLE, || {
                    let flags = rustix::net::RecvFlags::PEEK;
                    let (n, _) = rustix::net::recv(s, &mut *buf, flags)?;
                    Ok(n)
                })
                .await
            }
        }
    }

    /// Whether the peer has closed or reset the connection, as far as
    /// can be told without consuming anything: TCP has no peer address
    /// any more; a Unix socket peeks EOF or a reset.
    pub(crate) fn peer_gone(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.peer_addr().is_err(),
            Stream::Unix(s) => {
                let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
                let mut byte = [0u8; 1];
                match rustix::net::recv(s, &mut byte[..], flags) {
                    Ok((0, _)) => true,
                    Ok(_) => false,
                    Err(e) => e != rustix::io::Errno::AGAIN,
                }
            }
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A Unix side peeks without consuming, reads and writes as a TCP
    /// side does, and tells when its peer has gone.
    #[tokio::test(flavor = "current_thread")]
    async fn a_unix_side_peeks_reads_and_sees_its_peer_go() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (Stream::Unix(a), Stream::Unix(b));
        b.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        let n = a.peek(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert!(!a.peer_gone());
        let mut got = [0u8; 5];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        assert!(!a.peer_gone(), "nothing queued, peer open");
        drop(b);
        assert!(a.peer_gone());
        assert!(a.tcp().is_none());
    }
}
