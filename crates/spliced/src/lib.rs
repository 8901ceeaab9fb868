//! spliced: an L4 TCP proxy that forwards with zero-copy `splice(2)`
//! through [`pipepool`]'s pooled pipes, as a library that the `spliced`
//! binary (a thin `main.rs`) and the tests call.
//!
//! - `spliced run`: the daemon ([`run`]): its configuration ([`config`],
//!   a pure function from text and flags to settings), the proxy
//!   (`proxy`: listeners, admission, connections, reload), the upstream
//!   groups (`upstream`), metrics, logging, shutdown.
//! - `spliced demo` ([`demo`]) and `spliced bench` ([`mod@bench`]): tools
//!   built on the daemon's parts; nothing of the daemon uses them.
//!
//! Exit codes: 0 success, 1 failure at run time (an address in use, a
//! benchmark that saw errors), 2 a bad flag or config file, a Unix
//! listener's path that is not a socket, or a `--takeover` with no
//! spliced to take over from ([`exit_code`]).
//!
//! `unsafe` is denied but in `systemd` (taking ownership of a socket that
//! systemd passed as an fd); the libc calls that drop root go through `nix`.
#![deny(unsafe_code)]

mod access_log;
mod acl;
mod address;
pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
mod dns;
mod forward;
mod limits;
mod logging;
mod metrics;
mod net;
mod privileges;
mod proxy;
pub mod run;
mod shutdown;
mod stream;
mod systemd;
mod unix_socket;
mod upstream;

use std::process::ExitCode;

/// Exit code of a bad flag or config file (as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

/// The exit code of a subcommand's `result`, with its error on stderr: 2
/// for a [`config::ConfigError`], 1 for any other error.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<config::ConfigError>().is_some() => {
            eprintln!("spliced: config error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        // A Unix listener's path names a file that is not a socket: the
        // configuration's mistake, as a bad address would be.
        Err(e) if e.chain().any(unix_socket::NotASocket::is) => {
            eprintln!("spliced: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) if e.downcast_ref::<admin::TakeoverError>().is_some() => {
            eprintln!("spliced: error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("spliced: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
