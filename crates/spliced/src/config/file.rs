//! The TOML file as written: every field optional and spanned, so that
//! validation can point at the line it rejects. See
//! `crates/spliced/spliced.example.toml` for a commented example.
//!
//! (No `#[serde(flatten)]` for the settings shared by the top level and the
//! listeners: flatten defeats both `deny_unknown_fields` and the spans.)

use serde::Deserialize;
use toml::Spanned;

use super::units::{DurationValue, SizeValue};
use super::{Balance, CopyMode, ProxyVersion};

/// The whole file. Top-level listener settings are defaults for every
/// `[[listener]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Tokio worker threads (default: one per core).
    pub(crate) worker_threads: Option<Spanned<usize>>,
    /// How long open connections may run after SIGINT/SIGTERM.
    pub(crate) grace_period: Option<Spanned<DurationValue>>,
    /// Where to serve Prometheus metrics (`/metrics`).
    pub(crate) metrics: Option<Spanned<String>>,
    /// A tracing filter such as `info` or `spliced=debug`.
    pub(crate) log_level: Option<Spanned<String>>,
    /// The user to run as once the sockets are bound.
    pub(crate) user: Option<Spanned<String>>,
    /// Default `balance` of the listeners.
    pub(crate) balance: Option<Spanned<Balance>>,
    /// Default `copy` of the listeners.
    pub(crate) copy: Option<Spanned<CopyMode>>,
    /// Default `connect_timeout` of the listeners.
    pub(crate) connect_timeout: Option<Spanned<DurationValue>>,
    /// Default `connect_attempts` of the listeners.
    pub(crate) connect_attempts: Option<Spanned<usize>>,
    /// Default `idle_timeout` of the listeners.
    pub(crate) idle_timeout: Option<Spanned<DurationValue>>,
    /// Default `max_conns` of the listeners.
    pub(crate) max_conns: Option<Spanned<usize>>,
    /// Default `dns_ttl` of the listeners.
    pub(crate) dns_ttl: Option<Spanned<DurationValue>>,
    /// The pipe pool.
    pub(crate) pool: Option<PoolSection>,
    /// `[[listener]]` tables.
    #[serde(default)]
    pub(crate) listener: Vec<Spanned<ListenerSection>>,
}

/// `[pool]`: the pipe pool shared by every listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolSection {
    /// Most pipes alive at once.
    pub(crate) max_pipes: Option<Spanned<usize>>,
    /// Size asked of the kernel for each pipe.
    pub(crate) pipe_size: Option<Spanned<SizeValue>>,
    /// Close pipes idle this long.
    pub(crate) idle_timeout: Option<Spanned<DurationValue>>,
}

/// One `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerSection {
    /// A name for logs and metric labels (default: the listen address).
    pub(crate) name: Option<Spanned<String>>,
    /// The address to accept clients on.
    pub(crate) listen: Spanned<String>,
    /// The upstream group: `host:port` strings.
    pub(crate) upstreams: Spanned<Vec<Spanned<String>>>,
    /// `round-robin` or `least-conn`.
    pub(crate) balance: Option<Spanned<Balance>>,
    /// `splice` or `userspace`.
    pub(crate) copy: Option<Spanned<CopyMode>>,
    /// Timeout of one connect to an upstream.
    pub(crate) connect_timeout: Option<Spanned<DurationValue>>,
    /// Upstreams tried per client before giving up.
    pub(crate) connect_attempts: Option<Spanned<usize>>,
    /// Close connections without traffic either way for this long (0: never).
    pub(crate) idle_timeout: Option<Spanned<DurationValue>>,
    /// Most client connections open at once.
    pub(crate) max_conns: Option<Spanned<usize>>,
    /// Re-resolve upstream host names this often.
    pub(crate) dns_ttl: Option<Spanned<DurationValue>>,
    /// Write a PROXY header (`"v1"` or `"v2"`) to each upstream.
    pub(crate) send_proxy: Option<Spanned<ProxyVersion>>,
    /// Read a PROXY header from each client first.
    pub(crate) accept_proxy: Option<Spanned<bool>>,
    /// How long a client has to send its PROXY header.
    pub(crate) proxy_timeout: Option<Spanned<DurationValue>>,
    /// `[[listener.route]]` tables: SNI routes.
    #[serde(default)]
    pub(crate) route: Vec<Spanned<RouteSection>>,
    /// Networks (CIDR or address) allowed to connect.
    pub(crate) allow: Option<Spanned<Vec<Spanned<String>>>>,
    /// Networks (CIDR or address) refused.
    pub(crate) deny: Option<Spanned<Vec<Spanned<String>>>>,
    /// Most connections open at once from one client IP address.
    pub(crate) max_conns_per_source: Option<Spanned<usize>>,
}

/// One `[[listener.route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    /// A server name, or `*.suffix`.
    pub(crate) sni: Spanned<String>,
    /// The upstream group of this name.
    pub(crate) upstreams: Spanned<Vec<Spanned<String>>>,
    /// Its balance (default: the listener's).
    pub(crate) balance: Option<Spanned<Balance>>,
}
