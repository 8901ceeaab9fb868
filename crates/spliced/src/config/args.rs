//! The flags of `spliced run` ([`RunArgs`]): with the file's text, the
//! input of [`super::load`]. The per-listener, process and `[pool]` flags
//! come from the tables ([`super::table`]); the value parsers of durations,
//! sizes and counts are in [`super::units`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::table::{ListenerFlags, PoolFlags, TopFlags};

/// `spliced run`.
#[derive(Debug, Args)]
// `allow_negative_numbers`: `--max-conns -3` is a bad value (and says so),
// not an unknown flag `-3`.
#[command(
    allow_negative_numbers = true,
    after_help = "Flags override the config file. With --listen, the file's listeners are \
replaced by one; --upstream without --listen sets the upstreams of the file's only listener."
)]
pub struct RunArgs {
    /// TOML config file (see spliced.example.toml).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Accept clients on this address: IP:PORT, or unix:/path for a Unix
    /// stream socket (see --unix-mode, --unix-owner, --unix-group).
    #[arg(short, long, value_name = "ADDR", value_parser = listen_addr)]
    pub(crate) listen: Option<crate::address::ListenAddr>,
    /// An upstream: "host:PORT [weight=N] [backup] [max_conns=N]" (or unix:/path for a Unix socket); repeat for a group.
    #[arg(short, long = "upstream", value_name = "ADDR")]
    pub(crate) upstreams: Vec<String>,
    /// The per-listener settings (the table in `config/table.rs`).
    #[command(flatten)]
    pub(crate) listener: ListenerFlags,
    /// The process settings (the table in `config/table.rs`).
    #[command(flatten)]
    pub(crate) top: TopFlags,
    /// The `[pool]` settings (the table in `config/table.rs`).
    #[command(flatten)]
    pub(crate) pool: PoolFlags,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,
    /// Send TLS clients asking for server NAME (exact, or `*.suffix`) to
    /// ADDR; repeat (a NAME several times makes a group). The longest
    /// match wins; --upstream is the route for the rest.
    #[arg(long = "route", value_name = "NAME=ADDR", value_parser = route)]
    pub(crate) routes: Vec<(String, String)>,
    /// Allow clients from this network (CIDR or address); repeat. Without
    /// any, all are allowed.
    #[arg(long, value_name = "CIDR", value_parser = crate::acl::parse_net)]
    pub(crate) allow: Vec<ipnet::IpNet>,
    /// Refuse clients from this network (CIDR or address); repeat. Wins
    /// over --allow.
    #[arg(long, value_name = "CIDR", value_parser = crate::acl::parse_net)]
    pub(crate) deny: Vec<ipnet::IpNet>,
    /// With --accept-proxy: the network (CIDR or address) of a balancer
    /// whose PROXY headers are believed, or `unix` for the peers of a
    /// unix:/path listener; repeat. Required by --accept-proxy; any other
    /// peer is refused before a byte is read.
    #[arg(long = "accept-proxy-from", value_name = "CIDR", value_parser = crate::acl::parse_proxy_source)]
    pub(crate) accept_proxy_from: Vec<crate::acl::ProxySource>,
    /// Upgrade in place: take every listening socket from the spliced
    /// whose admin socket is PATH (binding nothing of its own for those),
    /// accept on them, then let that process drain and exit.
    #[arg(long, value_name = "PATH", conflicts_with = "check")]
    pub(crate) takeover: Option<PathBuf>,
    /// Check the configuration, print it and exit.
    #[arg(long)]
    pub(crate) check: bool,
}

/// Parses a `--listen ADDR` flag.
fn listen_addr(s: &str) -> Result<crate::address::ListenAddr, String> {
    s.parse()
}

/// Parses a `--route NAME=ADDR` flag.
fn route(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, addr)) if !name.is_empty() && !addr.is_empty() => {
            Ok((name.to_owned(), addr.to_owned()))
        }
        _ => Err(format!(
            "`{s}` is not NAME=ADDR (e.g. api.example.com=10.0.0.5:443)"
        )),
    }
}
