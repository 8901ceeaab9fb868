//! The command line: `spliced run`, `spliced demo`, `spliced bench`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::units::{parse_duration, parse_size, DurationValue, SizeValue};
use crate::config::{ListenerFlags, Overrides, PoolFlags, TopFlags};

/// spliced: an L4 TCP proxy that forwards with zero-copy splice(2) through
/// pooled pipes.
#[derive(Debug, Parser)]
#[command(name = "spliced", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Log filter (e.g. `info`, `warn`, `spliced=debug`); overrides RUST_LOG
    /// and the config file's `log_level`.
    #[arg(long, global = true, value_name = "FILTER", value_parser = parse_filter)]
    pub(crate) log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of `RunArgs` costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Run the proxy.
    Run(RunArgs),
    /// Show what spliced does on this machine, with nothing else needed:
    /// an embedded upstream, the proxy and a load client on loopback.
    Demo(DemoArgs),
    /// Load-generate against any TCP endpoint, or serve as its upstream.
    Bench(BenchArgs),
}

/// `spliced run`.
#[derive(Debug, Args)]
// `allow_negative_numbers`: `--max-conns -3` is a bad value (and says so),
// not an unknown flag `-3`.
#[command(
    allow_negative_numbers = true,
    after_help = "Flags override the config file. With --listen, the file's listeners are \
replaced by one; --upstream without --listen sets the upstreams of the file's only listener."
)]
pub(crate) struct RunArgs {
    /// TOML config file (see spliced.example.toml).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Accept clients on this address (IP:PORT).
    #[arg(short, long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// An upstream (host:PORT); repeat for a group.
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
    /// whose PROXY headers are believed; repeat. Required by
    /// --accept-proxy; any other peer is refused before a byte is read.
    #[arg(long = "accept-proxy-from", value_name = "CIDR", value_parser = crate::acl::parse_net)]
    pub(crate) accept_proxy_from: Vec<ipnet::IpNet>,
    /// Check the configuration, print it and exit.
    #[arg(long)]
    pub(crate) check: bool,
}

impl RunArgs {
    /// The flags that override the file (not `--log-level`: `logging`
    /// lets it win over the file's `log_level`).
    pub(crate) fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            upstreams: self.upstreams.clone(),
            listener: self.listener.clone(),
            top: self.top.clone(),
            pool: self.pool.clone(),
            metrics: self.metrics,
            routes: self.routes.clone(),
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            accept_proxy_from: self.accept_proxy_from.clone(),
        }
    }
}

/// `spliced demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// A tiny run for tests: 32 MiB and 200 connections per copy method.
    #[arg(long)]
    pub(crate) small: bool,
    /// Bulk bytes pushed through the proxy per copy method [default: 2GiB].
    #[arg(long, value_name = "SIZE", value_parser = size, allow_hyphen_values = true)]
    pub(crate) bytes: Option<SizeValue>,
    /// Short connections per copy method [default: 5000].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) conns: Option<usize>,
    /// Parallel bulk streams [default: 2].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) streams: Option<usize>,
    /// Concurrent clients of the connection burst [default: 16].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) concurrency: Option<usize>,
}

/// The two load patterns of `spliced bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Long connections pushing data; reports Gbit/s.
    Stream,
    /// A new connection per request; reports connections/s and latency.
    Connect,
}

/// `spliced bench`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Client: spliced bench --target ADDR [--mode stream|connect] ...\n\
Server: spliced bench --serve ADDR [--echo|--sink] [--accept-proxy]\n\n\
stream: --conns connections write for --duration (or until --size bytes each); by default \
they expect an echo and verify every byte that comes back; with --oneway they only send \
(pair with a --sink server, which answers the byte count it received for verification).\n\
connect: --conns clients each loop: connect, send --size bytes, read them back, verify, close."
)]
pub(crate) struct BenchArgs {
    /// The endpoint to load (host:PORT): spliced, another proxy, or a server directly.
    #[arg(
        long,
        value_name = "ADDR",
        required_unless_present = "serve",
        conflicts_with = "serve"
    )]
    pub(crate) target: Option<String>,
    /// The load pattern.
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    pub(crate) mode: Mode,
    /// Connections (stream) or concurrent clients (connect) [default: 1 / 16].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) conns: Option<usize>,
    /// Bytes per request (connect) [default: 1KiB], or per connection (stream) [default: no limit].
    #[arg(long, value_name = "BYTES", value_parser = size, allow_hyphen_values = true)]
    pub(crate) size: Option<SizeValue>,
    /// How long to run (e.g. 10, 10s, 500ms).
    #[arg(long, value_name = "SECS", value_parser = duration, default_value = "5s", allow_hyphen_values = true)]
    pub(crate) duration: DurationValue,
    /// stream: only send (for a --sink server); do not expect an echo.
    #[arg(long)]
    pub(crate) oneway: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Serve as the upstream on ADDR instead of generating load.
    #[arg(long, value_name = "ADDR")]
    pub(crate) serve: Option<SocketAddr>,
    /// Server: send back every byte received (the default).
    #[arg(long, requires = "serve", conflicts_with = "sink")]
    pub(crate) echo: bool,
    /// Server: discard what is received; answer the byte count at EOF.
    #[arg(long, requires = "serve")]
    pub(crate) sink: bool,
    /// Server: read a PROXY protocol header (v1 or v2) from each
    /// connection first (behind `spliced run --send-proxy`).
    #[arg(long, requires = "serve")]
    pub(crate) accept_proxy: bool,
}

/// Parses a duration flag.
pub(crate) fn duration(s: &str) -> Result<DurationValue, String> {
    parse_duration(s).map(DurationValue)
}

/// Parses a size flag.
pub(crate) fn size(s: &str) -> Result<SizeValue, String> {
    parse_size(s).map(SizeValue)
}

/// Parses a count flag of at least 1.
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) if s.trim_start().starts_with('-') => {
            Err(format!("`{s}`: must be a whole number of at least 1"))
        }
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

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

fn parse_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The `run` flags that are not in the table of per-listener settings.
    const NOT_IN_TABLE: &[&str] = &[
        "config",
        "listen",
        "upstream",
        "metrics",
        "route",
        "allow",
        "deny",
        "accept-proxy-from",
        "check",
        "log-level",
        "help",
        "version",
    ];

    #[test]
    fn the_run_flags_are_the_table() {
        use crate::config::table::{LISTENER_SETTINGS, POOL_SETTINGS, TOP_SETTINGS};
        let mut cli = Cli::command();
        cli.build();
        let run = cli.find_subcommand("run").expect("run");
        let table = || {
            LISTENER_SETTINGS
                .iter()
                .chain(TOP_SETTINGS)
                .chain(POOL_SETTINGS)
        };
        for s in table() {
            let arg = run
                .get_arguments()
                .find(|a| a.get_long() == Some(s.flag))
                .unwrap_or_else(|| panic!("no --{} for `{}`", s.flag, s.key));
            // clap drops the final period of a one-line help.
            let help = arg.get_help().map(ToString::to_string);
            let doc = s.doc.trim().trim_end_matches('.');
            assert_eq!(help.as_deref(), Some(doc), "--{}", s.flag);
        }
        for arg in run.get_arguments() {
            let long = arg.get_long().expect("every run flag has a long name");
            assert!(
                NOT_IN_TABLE.contains(&long) || table().any(|s| s.flag == long),
                "--{long} is neither in the table nor a known special case"
            );
        }
    }

    #[test]
    fn table_flags_parse() {
        let parse = |args: &[&str]| {
            let mut all = vec!["spliced", "run"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).expect("parses").command {
                Command::Run(run) => run.listener,
                _ => unreachable!(),
            }
        };
        let none = parse(&[]);
        assert_eq!((none.accept_proxy, none.max_conns), (None, None));
        let set = parse(&["--accept-proxy", "--max-conns", "7", "--idle-timeout", "0"]);
        assert_eq!((set.accept_proxy, set.max_conns), (Some(true), Some(7)));
        assert_eq!(
            set.idle_timeout.map(|d| d.0),
            Some(std::time::Duration::ZERO)
        );
        assert!(Cli::try_parse_from(["spliced", "run", "--accept-proxy", "false"]).is_err());
        let Command::Run(run) = Cli::try_parse_from([
            "spliced",
            "run",
            "--pipe-idle-timeout",
            "2s",
            "--idle-timeout",
            "3s",
            "--user",
            "nobody",
        ])
        .expect("parses")
        .command
        else {
            unreachable!()
        };
        assert_eq!(run.pool.idle_timeout.map(|d| d.0.as_secs()), Some(2));
        assert_eq!(run.listener.idle_timeout.map(|d| d.0.as_secs()), Some(3));
        assert_eq!(run.top.user.as_deref(), Some("nobody"));
    }
}
