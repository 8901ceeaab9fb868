//! [`Forwarder`]: moves bytes both ways between a client and its upstream
//! until both sides are done, an error, or the idle timeout.
//!
//! This is the one place that calls the copy:
//! [`pipepool::tokio::copy_bidirectional_with`], zero-copy for
//! `copy = "splice"`, through a userspace buffer for `copy = "userspace"`.

use std::io;
use std::time::Duration;

use pipepool::tokio::Progress;
use pipepool::{Method, PipePool};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::CopyMode;
use crate::stream::Stream;

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
    /// With no error: whether the client ended its stream first.
    pub(crate) client_closed_first: bool,
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
    /// Copies both ways until both directions reach EOF (the first EOF is
    /// passed on as a write shutdown; the second one is left to the
    /// caller, which must close both sockets at once), an error, or the idle timeout
    /// (`ErrorKind::TimedOut`). Bytes are added to `progress` (client ->
    /// upstream as `a_to_b`) as they are written.
    ///
    /// Each pair of socket kinds is passed to pipepool as its concrete
    /// types (TCP or Unix, either side), which it splices alike.
    pub(crate) async fn run(
        &self,
        client: &mut Stream,
        upstream: &mut Stream,
        progress: &Progress,
    ) -> Outcome {
        match (client, upstream) {
            (Stream::Tcp(c), Stream::Tcp(u)) => self.copy(c, u, progress).await,
            (Stream::Tcp(c), Stream::Unix(u)) => self.copy(c, u, progress).await,
            (Stream::Unix(c), Stream::Tcp(u)) => self.copy(c, u, progress).await,
            (Stream::Unix(c), Stream::Unix(u)) => self.copy(c, u, progress).await,
        }
    }

    async fn copy<A, B>(&self, client: &mut A, upstream: &mut B, progress: &Progress) -> Outcome
    where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        let opts = pipepool::tokio::CopyOptions::new()
            .pool(self.pool.clone())
            .zero_copy(self.mode == CopyMode::Splice)
            .idle_timeout(self.idle_timeout)
            .progress(progress.clone())
            // `conn::handle` closes both sockets as soon as this returns:
            // that close sends the last FIN, one `shutdown` less.
            .last_shutdown(false);
        match pipepool::tokio::copy_bidirectional_with(client, upstream, &opts).await {
            Ok(r) => Outcome {
                to_upstream: r.a_to_b.bytes,
                to_client: r.b_to_a.bytes,
                up_method: r.a_to_b.method,
                down_method: r.b_to_a.method,
                error: None,
                client_closed_first: r.a_to_b_first,
            },
            Err(e) => Outcome {
                to_upstream: e.a_to_b().bytes,
                to_client: e.b_to_a().bytes,
                up_method: e.a_to_b().method,
                down_method: e.b_to_a().method,
                error: Some(e.into_error()),
                client_closed_first: false,
            },
        }
    }
}
