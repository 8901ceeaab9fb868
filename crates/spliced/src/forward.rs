//! [`Forwarder`]: moves bytes both ways between a client and its upstream
//! until both sides are done, an error, or the idle timeout.
//!
//! This is the one place that calls the copy, so that swapping the copy
//! engine touches nothing else.

use std::io;
use std::time::Duration;

use pipepool::{Method, PipePool};
use tokio::net::TcpStream;

use crate::config::CopyMode;

/// How a proxied connection is copied.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    /// The pool pipes come from.
    pub(crate) pool: PipePool,
    /// Splice or userspace.
    pub(crate) mode: CopyMode,
    /// No byte either way for this long ends the connection.
    pub(crate) idle_timeout: Option<Duration>,
}

/// What a finished connection did.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Bytes written to the upstream.
    pub(crate) to_upstream: u64,
    /// Bytes written to the client.
    pub(crate) to_client: u64,
    /// How the client -> upstream bytes moved.
    pub(crate) up_method: Method,
    /// How the upstream -> client bytes moved.
    pub(crate) down_method: Method,
    /// Why the copy ended early, if it did.
    pub(crate) error: Option<io::Error>,
}

impl Outcome {
    /// The copy method, as one word when both directions agree
    /// (`splice`), else as `up/down` (`splice/userspace`).
    pub(crate) fn method(&self) -> String {
        if self.up_method == self.down_method {
            self.up_method.as_str().to_owned()
        } else {
            format!("{}/{}", self.up_method, self.down_method)
        }
    }
}

impl Forwarder {
    /// Copies both ways until both directions reach EOF (each EOF is
    /// passed on as a write shutdown), an error, or the idle timeout
    /// (`ErrorKind::TimedOut`).
    ///
    /// Interim engine until `pipepool::tokio` lands: tokio's userspace
    /// `copy_bidirectional` with byte counters and an idle watchdog.
    pub(crate) async fn run(&self, client: &mut TcpStream, upstream: &mut TcpStream) -> Outcome {
        let _ = (&self.pool, self.mode);
        let activity = interim::Activity::new();
        let mut c = interim::Counted::new(client, &activity, interim::Side::Client);
        let mut u = interim::Counted::new(upstream, &activity, interim::Side::Upstream);
        let copy = tokio::io::copy_bidirectional(&mut c, &mut u);
        let error = match self.idle_timeout {
            None => copy.await.err(),
            Some(idle) => tokio::select! {
                r = copy => r.err(),
                () = activity.idle_for(idle) => Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no traffic either way for {idle:?}"),
                )),
            },
        };
        let (to_upstream, to_client) = activity.bytes();
        Outcome {
            to_upstream,
            to_client,
            up_method: Method::Userspace,
            down_method: Method::Userspace,
            error,
        }
    }
}

mod interim {
    //! Byte counting and an idle watchdog around any stream.

    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::time::Instant;

    /// Bytes written each way and the time of the last byte.
    #[derive(Debug)]
    pub(super) struct Activity {
        start: Instant,
        last_ms: AtomicU64,
        to_upstream: AtomicU64,
        to_client: AtomicU64,
    }

    impl Activity {
        pub(super) fn new() -> Activity {
            Activity {
                start: Instant::now(),
                last_ms: AtomicU64::new(0),
                to_upstream: AtomicU64::new(0),
                to_client: AtomicU64::new(0),
            }
        }

        fn touch(&self) {
            self.last_ms.store(self.start.elapsed().as_millis() as u64, Relaxed);
        }

        pub(super) fn bytes(&self) -> (u64, u64) {
            (self.to_upstream.load(Relaxed), self.to_client.load(Relaxed))
        }

        /// Resolves once no byte has moved for `idle`.
        pub(super) async fn idle_for(&self, idle: Duration) {
            loop {
                let last = self.start + Duration::from_millis(self.last_ms.load(Relaxed));
                if last.elapsed() >= idle {
                    return;
                }
                tokio::time::sleep_until(last + idle).await;
            }
        }
    }

    /// Which side a stream is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Side {
        Client,
        Upstream,
    }

    /// A stream that reports to an [`Activity`].
    #[derive(Debug)]
    pub(super) struct Counted<'a, S> {
        inner: &'a mut S,
        activity: &'a Activity,
        side: Side,
    }

    impl<'a, S> Counted<'a, S> {
        pub(super) fn new(inner: &'a mut S, activity: &'a Activity, side: Side) -> Self {
            Counted { inner, activity, side }
        }
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.activity.touch();
            }
            r
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let r = Pin::new(&mut *self.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = r {
                let counter = match self.side {
                    Side::Upstream => &self.activity.to_upstream,
                    Side::Client => &self.activity.to_client,
                };
                counter.fetch_add(n as u64, Relaxed);
                self.activity.touch();
            }
            r
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut *self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut *self.inner).poll_shutdown(cx)
        }
    }
}
