//! What a load run is asked to do: [`StreamOptions`] and
//! [`ConnectOptions`] (read by the runs and shown in their reports).

use std::net::SocketAddr;
use std::time::Duration;

/// Timeout of each connect.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a stream run does.
#[derive(Debug, Clone)]
pub(crate) struct StreamOptions {
    /// Where to connect.
    pub(crate) target: SocketAddr,
    /// Parallel connections.
    pub(crate) conns: usize,
    /// Stop each connection after this many bytes.
    pub(crate) bytes_per_conn: Option<u64>,
    /// Stop writing after this long.
    pub(crate) duration: Duration,
    /// Only send; expect a sink's count, not an echo.
    pub(crate) oneway: bool,
}

/// What a connect run does.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    /// Where to connect.
    pub(crate) target: SocketAddr,
    /// Concurrent clients.
    pub(crate) conns: usize,
    /// Bytes sent (and read back) per connection.
    pub(crate) size: usize,
    /// How long to run.
    pub(crate) duration: Duration,
    /// Stop after this many connections in all (for the demo).
    pub(crate) total: Option<u64>,
}
