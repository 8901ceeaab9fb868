//! [`Settings`]: what the proxy runs from, validated, and the named
//! values they are made of.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, Origin};
pub(crate) use crate::upstream::Balance;
use crate::upstream::Upstream;

/// Default timeout of one upstream connect.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default number of upstreams tried per client.
pub(crate) const DEFAULT_CONNECT_ATTEMPTS: usize = 3;
/// Default idle timeout of a proxied connection.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default interval between background re-resolutions of upstream names.
pub(crate) const DEFAULT_DNS_TTL: Duration = Duration::from_secs(30);
/// Default grace period after SIGINT/SIGTERM.
pub(crate) const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// How bytes are copied between client and upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CopyMode {
    /// Zero-copy `splice(2)` through pooled pipes (falls back to userspace
    /// per connection when the kernel refuses or the pool is exhausted).
    #[default]
    Splice,
    /// `read`/`write` through a userspace buffer.
    Userspace,
}

impl CopyMode {
    /// The name used in the config file and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CopyMode::Splice => "splice",
            CopyMode::Userspace => "userspace",
        }
    }
}

/// How connections are spread over threads (`worker_model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum WorkerModel {
    /// One single-threaded runtime per worker thread, each with its own
    /// listening socket per listener (`SO_REUSEPORT`): a connection lives
    /// on the thread that accepted it, from accept to close.
    #[default]
    PerThread,
    /// One tokio multi-thread runtime: its workers steal each other's
    /// tasks, and each listener has one socket.
    WorkStealing,
}

impl WorkerModel {
    /// The name used in the config file and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WorkerModel::PerThread => "per-thread",
            WorkerModel::WorkStealing => "work-stealing",
        }
    }
}

/// The PROXY protocol version written to upstreams (`send_proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ProxyVersion {
    /// The text line (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header (`PROXY` command, TCP over IPv4/IPv6).
    V2,
}

impl ProxyVersion {
    /// The name used in the config file and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        }
    }
}

/// Default time a client has to send its PROXY header (`accept_proxy`).
pub(crate) const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(3);

/// Default time a client of a listener with SNI routes has to send its
/// whole ClientHello (`sni_timeout`).
pub(crate) const DEFAULT_SNI_TIMEOUT: Duration = Duration::from_secs(3);

/// One SNI route of a listener: TLS clients asking for `sni` go to
/// `upstreams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteSettings {
    /// A server name (lower case), or `*.suffix` for any name ending in
    /// `.suffix`.
    pub(crate) sni: String,
    /// Each upstream, parsed; never empty.
    pub(crate) upstreams: Vec<Upstream>,
    /// The balance policy of this group.
    pub(crate) balance: Balance,
}

/// Everything the proxy needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// At least one listener.
    pub(crate) listeners: Vec<ListenerSettings>,
    /// The pipe pool's configuration (validated).
    pub(crate) pool: pipepool::PoolConfig,
    /// Where to serve `/metrics`, if anywhere.
    pub(crate) metrics: Option<SocketAddr>,
    /// How long open connections may run after SIGINT/SIGTERM.
    pub(crate) grace_period: Duration,
    /// Tokio worker threads; `None`: one per core.
    pub(crate) worker_threads: Option<usize>,
    /// How connections are spread over the worker threads.
    pub(crate) worker_model: WorkerModel,
    /// The tracing filter from the file, if any (flags and `RUST_LOG` win).
    pub(crate) log_level: Option<String>,
    /// Run as this user once every socket is bound; `None`: as started.
    /// A name: `run/settle.rs` looks it up (an unknown one is an error at this
    /// place).
    pub(crate) user: Option<Given<String>>,
    /// The admin socket's path (`spliced ctl`, `--takeover`), if any.
    pub(crate) admin_socket: Option<std::path::PathBuf>,

    /// Where the access log goes; `None`: off.
    pub(crate) access_log: Option<crate::access_log::Target>,
    /// The access log's line format.
    pub(crate) access_log_format: crate::access_log::Format,
    /// The fd limit that made a default `max_conns` or `max_pipes` smaller
    /// than its built-in cap ([`crate::limits::fit`]); `None`: none was.
    pub(crate) fds_fitted: Option<u64>,
    /// The sizes given (each listener's `max_conns`, `max_pipes`), from
    /// which [`Settings::fit_fds`] sizes the others.
    pub(crate) given: GivenSizes,
}

/// The `max_conns` of each listener and the `max_pipes` that were given
/// (`None`: left to the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GivenSizes {
    /// Per listener, in order.
    pub(crate) max_conns: Vec<Option<usize>>,
    /// `[pool] max_pipes`.
    pub(crate) max_pipes: Option<usize>,
}

impl Settings {
    /// Sizes the defaults of `max_conns` and `max_pipes` to the fd limit
    /// `nofile` ([`crate::limits::fit`]; `None`: unlimited); given values
    /// stay. `pipes_in_use`: on a reload, the running pool's `max_pipes`,
    /// which a default cannot change (the pool is built once).
    pub(crate) fn fit_fds(&mut self, nofile: Option<u64>, pipes_in_use: Option<usize>) {
        let fit = crate::limits::fit(
            nofile,
            &self.given.max_conns,
            self.given.max_pipes.or(pipes_in_use),
        );
        for (l, n) in self.listeners.iter_mut().zip(&fit.max_conns) {
            l.max_conns = *n;
        }
        // Sizing sets max_pipes, max_idle and local_cap together, so a
        // checked config stays valid (else the checked one is kept).
        if let Ok(sized) = sized_pool(self.pool.to_builder(), fit.max_pipes).config() {
            self.pool = sized;
        }
        self.fds_fitted = if fit.shrunk { nofile } else { None };
    }
}

/// `config` with `max_pipes` `n`: `max_idle` follows it (the library's
/// default is sized from the fd limit when `default()` runs, not from
/// `n`), and the thread caches are no larger.
pub(crate) fn sized_pool(config: pipepool::PoolBuilder, n: usize) -> pipepool::PoolBuilder {
    config
        .max_pipes(n)
        .max_idle(n)
        .local_cap(pipepool::DEFAULT_LOCAL_CAP.min(n))
}

/// A value as given, with where ([`Origin`]) and the field it sets: a
/// check that needs the machine (a user lookup) reports its error there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Given<T> {
    /// The value.
    pub(crate) value: T,
    /// Where it was given.
    pub(crate) origin: Origin,
    /// Its path in the file (`user`, `pool.max_pipes`...).
    pub(crate) field: String,
}

impl<T> Given<T> {
    /// An error about this value, naming where it was given.
    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.origin.clone(), self.field.clone(), message)
    }
}

/// One listener and its upstream group.
#[derive(Debug, Clone)]
pub(crate) struct ListenerSettings {
    /// For logs and metric labels.
    pub(crate) name: String,
    /// Where clients connect: `IP:PORT` or `unix:/path`.
    pub(crate) listen: crate::address::ListenAddr,
    /// Each upstream, parsed; never empty.
    pub(crate) upstreams: Vec<Upstream>,
    /// The balance policy.
    pub(crate) balance: Balance,
    /// The copy method.
    pub(crate) copy: CopyMode,
    /// Timeout of one connect attempt.
    pub(crate) connect_timeout: Duration,
    /// Upstreams tried per client, at least 1.
    pub(crate) connect_attempts: usize,
    /// Close after this long without a byte either way; `None`: never.
    pub(crate) idle_timeout: Option<Duration>,
    /// How often upstream host names are resolved again in the
    /// background (not zero).
    pub(crate) dns_ttl: Duration,
    /// Most client connections open at once, at least 1 (by default
    /// sized to the fd limit, see [`crate::limits::fit`]).
    pub(crate) max_conns: usize,
    /// Write a PROXY header of this version to each upstream.
    pub(crate) send_proxy: Option<ProxyVersion>,
    /// Read a PROXY header from each client first.
    pub(crate) accept_proxy: bool,
    /// With `accept_proxy`, the peers whose headers are believed (not
    /// empty then); any other peer is refused before a byte is read.
    pub(crate) accept_proxy_from: Vec<crate::acl::ProxySource>,
    /// How long a client has to send its PROXY header.
    pub(crate) proxy_timeout: Duration,
    /// SNI routes; `upstreams` is the default route.
    pub(crate) routes: Vec<RouteSettings>,
    /// How long a client has to send its whole ClientHello when there are
    /// routes; then it takes the default route.
    pub(crate) sni_timeout: Duration,
    /// Clients allowed (empty: all), by network.
    pub(crate) allow: Vec<ipnet::IpNet>,
    /// Clients refused, by network (wins over `allow`).
    pub(crate) deny: Vec<ipnet::IpNet>,
    /// Most connections open at once from one client IP address.
    pub(crate) max_conns_per_source: Option<usize>,
    /// TCP keepalive on client connections.
    pub(crate) client_keepalive: Option<super::keepalive::Keepalive>,
    /// TCP keepalive on upstream connections.
    pub(crate) upstream_keepalive: Option<super::keepalive::Keepalive>,
    /// `TCP_USER_TIMEOUT` on client connections (not zero).
    pub(crate) client_user_timeout: Option<Duration>,
    /// `TCP_USER_TIMEOUT` on upstream connections (not zero).
    pub(crate) upstream_user_timeout: Option<Duration>,
    /// Active health checks every this long; `None`: off.
    pub(crate) health_interval: Option<Duration>,
    /// The longest one check may take (the interval unless given);
    /// `None` while checks are off.
    pub(crate) health_timeout: Option<Duration>,
    /// Passes in a row that bring a down upstream up.
    pub(crate) health_rise: usize,
    /// Failures in a row that take an upstream down.
    pub(crate) health_fall: usize,
    /// Written by a check once connected (escapes not decoded yet).
    pub(crate) health_send: Option<String>,
    /// Required in a check's answer (escapes not decoded yet).
    pub(crate) health_expect: Option<String>,
    /// A Unix listener's socket file mode (`None`: 0600).
    pub(crate) unix_mode: Option<super::unix::UnixMode>,
    /// A Unix listener's socket file owner (a name or an id).
    pub(crate) unix_owner: Option<String>,
    /// A Unix listener's socket file group (a name or an id).
    pub(crate) unix_group: Option<String>,
}

impl ListenerSettings {
    /// What a Unix listener's socket file gets at bind.
    pub(crate) fn unix_file(&self) -> crate::unix_socket::FileSettings {
        crate::unix_socket::FileSettings {
            mode: self.unix_mode.map(|m| m.0),
            owner: self.unix_owner.clone(),
            group: self.unix_group.clone(),
        }
    }

    /// The active health checks, if on.
    pub(crate) fn health_check(&self) -> Option<crate::upstream::HealthCheck> {
        let interval = self.health_interval?;
        let decode = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| crate::upstream::decode_escapes(t).ok())
        };
        Some(crate::upstream::HealthCheck {
            interval,
            timeout: self.health_timeout.unwrap_or(interval),
            rise: u32::try_from(self.health_rise).unwrap_or(u32::MAX),
            fall: u32::try_from(self.health_fall).unwrap_or(u32::MAX),
            send: decode(&self.health_send),
            expect: decode(&self.health_expect),
        })
    }
}
