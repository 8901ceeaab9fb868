//! The command line: `spliced run` (its flags are [`RunArgs`], in
//! [`crate::config`]), `spliced demo`, `spliced bench`.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::args::{at_least_one, duration, size};
use crate::config::units::{DurationValue, SizeValue};
pub use crate::config::RunArgs;

/// spliced: an L4 TCP proxy that forwards with zero-copy splice(2) through
/// pooled pipes.
#[derive(Debug, Parser)]
#[command(name = "spliced", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (e.g. `info`, `warn`, `spliced=debug`); overrides RUST_LOG
    /// and the config file's `log_level`.
    #[arg(long, global = true, value_name = "FILTER", value_parser = parse_filter)]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of `RunArgs` costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the proxy.
    Run(RunArgs),
    /// Show what spliced does on this machine, with nothing else needed:
    /// an embedded upstream, the proxy and a load client on loopback.
    Demo(DemoArgs),
    /// Load-generate against any TCP endpoint, or serve as its upstream.
    Bench(BenchArgs),
}

/// `spliced demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
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
pub enum Mode {
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
pub struct BenchArgs {
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
