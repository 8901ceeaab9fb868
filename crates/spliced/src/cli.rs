//! The command line: `spliced run` (its flags are [`RunArgs`], in
//! [`crate::config`]), `spliced demo`, `spliced bench`.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::units::{at_least_one, duration, size, DurationValue, SizeValue};
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

    /// A valid listener.
    const L: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\n";

    /// A flag case: (arguments after `spliced`, substrings of the message).
    type FlagCase = (&'static [&'static str], &'static [&'static str]);

    /// `run --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --check`, then these.
    #[rustfmt::skip]
    const RUN_FLAG_CASES: &[FlagCase] = &[
        (&["--connect-timeout", "0"], &["--connect-timeout", "longer than zero"]),
        (&["--connect-attempts", "0"], &["--connect-attempts", "at least 1"]),
        (&["--dns-ttl", "0"], &["--dns-ttl", "longer than zero"]),
        (&["--worker-threads", "0"], &["--worker-threads", "at least 1"]),
        (&["--max-pipes", "0"], &["--max-pipes", "at least 1"]),
        (&["--max-pipes", "99999999999999999999999"], &["--max-pipes", "too large"]),
        (&["--pipe-size", "0"], &["--pipe-size", "at least 1 byte"]),
        (&["--pipe-size", "2GiB"], &["--pipe-size", "largest pipe size"]),
        (&["--pipe-size", "1.5"], &["--pipe-size", "whole number"]),
        (&["--pipe-idle-timeout", "0"], &["--pipe-idle-timeout", "longer than zero"]),
        (&["--metrics", "nowhere"], &["--metrics", "nowhere"]),
        (&["--balance", "random"], &["--balance", "least-conn"]),
        (&["--copy", "zero"], &["--copy", "userspace"]),
        (&["--grace-period", "x"], &["--grace-period", "not a duration"]),
        (&["--log-level", "spliced=lots"], &["--log-level", "filter"]),
        (&["--user", ""], &["--user", "empty"]),
        (&["--user", "no-such-user-spliced"], &["--user", "no such user"]),
        (&["--upstream", "[::1:80"], &["--upstream", "[::1:80"]),
        (&["--listen", "127.0.0.1:0"], &["--listen", "multiple"]),
        (&["--nope"], &["--nope"]),
        (&["extra-arg"], &["extra-arg"]),
    ];

    /// Whole command lines.
    #[rustfmt::skip]
    const OTHER_FLAG_CASES: &[FlagCase] = &[
        (&["bench", "--serve", "127.0.0.1:0", "--echo", "--sink"], &["--echo", "--sink"]),
        (&["bench", "--target", "127.0.0.1:9", "--serve", "127.0.0.1:0"], &["--target", "--serve"]),
        (&["bench", "--target", "127.0.0.1:9", "--duration", "soon"], &["--duration"]),
        (&["demo", "--conns", "0"], &["--conns", "at least 1"]),
        (&["frobnicate"], &["frobnicate"]),
        (&["--log-level", "[", "run"], &["--log-level"]),
    ];

    /// `spliced ARGS` (with `text` as the `--config` file, if any) up to
    /// `--check`'s output; else the exit code and the message.
    fn outcome(text: &str, args: &[&str]) -> Result<String, (i32, String)> {
        let cli = Cli::try_parse_from(std::iter::once("spliced").chain(args.iter().copied()))
            .map_err(|e| (e.exit_code(), e.to_string()))?;
        match cli.command {
            Command::Run(run) => crate::run::check_text(text, &run).map_err(|e| (2, e.to_string())),
            _ => Ok(String::new()),
        }
    }

    /// What is wrong with the outcome of `args` if it is not exit code 2
    /// with each of `want` in the message.
    fn check(text: &str, args: &[&str], want: &[&str]) -> Option<String> {
        match outcome(text, args) {
            Ok(_) => Some(format!("{args:?}: passes")),
            Err((code, _)) if code != 2 => Some(format!("{args:?}: exit {code}, not 2")),
            Err((_, e)) => {
                let missing: Vec<&&str> = want.iter().filter(|w| !e.contains(**w)).collect();
                (!missing.is_empty()).then(|| format!("{args:?}: {missing:?} not in: {e}"))
            }
        }
    }

    #[test]
    fn every_bad_flag_exits_2_naming_the_flag() {
        let two = format!("{L}{L}");
        let several: &[&str] = &["run", "--config", "FILE", "--upstream", "b:2", "--check"];
        let mut failures = Vec::new();
        for &(extra, want) in RUN_FLAG_CASES {
            let mut args = vec![
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
                "--check",
            ];
            args.extend_from_slice(extra);
            failures.extend(check("", &args, want));
        }
        for &(args, want) in OTHER_FLAG_CASES {
            failures.extend(check("", args, want));
        }
        failures.extend(check(&two, several, &["--upstream", "several"]));
        for (args, flag) in [
            (
                &["run", "--listen", "nowhere", "--upstream", "a:1"][..],
                "--listen",
            ),
            (
                &[
                    "run",
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream",
                    "a:1",
                    "--idle-timeout",
                    "5 parsecs",
                ],
                "--idle-timeout",
            ),
            (
                &["run", "--listen", "127.0.0.1:0", "--upstream", "a"],
                "--upstream",
            ),
            (&["run", "--listen", "127.0.0.1:0"], "--upstream"),
            (
                &[
                    "run",
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream",
                    "a:1",
                    "--max-conns",
                    "0",
                ],
                "--max-conns",
            ),
            (
                &[
                    "run",
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream",
                    "a:1",
                    "--max-conns",
                    "-3",
                ],
                "invalid value '-3' for '--max-conns <N>': `-3`: must be a whole number of at least 1",
            ),
            (
                &["bench", "--target", "127.0.0.1:9", "--conns", "-1"],
                "invalid value '-1' for '--conns <N>'",
            ),
            (
                &[
                    "run",
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream",
                    "a:1",
                    "--idle-timeout",
                    "-5s",
                ],
                "invalid value '-5s' for '--idle-timeout <DURATION>'",
            ),
            (
                &["bench", "--target", "127.0.0.1:9", "--duration", "-1s"],
                "invalid value '-1s' for '--duration <SECS>'",
            ),
            (&["run"], "--listen"),
            (&["bench", "--mode", "stream"], "--target"),
    ] {
            failures.extend(check("", args, &[flag]));
        }
        assert!(
            failures.is_empty(),
            "{} flag case(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn the_flag_cases_are_not_vacuous() {
        let valid = [
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--check",
        ];
        assert!(outcome("", &valid).is_ok());
    }
}
