//! spliced: an L4 TCP proxy that forwards with zero-copy `splice(2)`
//! through [`pipepool`]'s pooled pipes.
//!
//! - `spliced run`: the proxy ([`run`], [`proxy`], [`config`]).
//! - `spliced demo`: the proxy, an upstream and a load client on loopback,
//!   splice against userspace copy ([`demo`]).
//! - `spliced bench`: a load generator and its echo/sink server ([`mod@bench`]).
//!
//! Exit codes: 0 success, 1 failure at run time (an address in use, a
//! benchmark that saw errors), 2 a bad flag or config file.
//!
//! `unsafe` is denied but in `systemd` (taking ownership of a socket that
//! systemd passed as an fd); the libc calls that drop root go through `nix`.
#![deny(unsafe_code)]

mod acl;
mod balance;
mod bench;
mod cli;
mod config;
mod demo;
mod dns;
mod forward;
mod limits;
mod logging;
mod metrics;
mod net;
mod privileges;
mod proxy;
mod run;
mod shutdown;
mod systemd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// jemalloc, whose background thread returns freed memory to the kernel
/// (BENCHMARKS.md, "Slow-client burst"); settings in .cargo/config.toml.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code of a bad flag or config file (as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log_level.clone();
    let result = match &cli.command {
        Command::Run(args) => run::main(args, log),
        Command::Demo(args) => demo::main(args, log.as_deref()),
        Command::Bench(args) => bench::main(args, log.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<config::ConfigError>().is_some() => {
            eprintln!("spliced: config error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("spliced: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
