//! `spliced bench`: a load generator for any TCP endpoint (`stream` and
//! `connect` modes, bytes checked against a `pattern`) and its upstream
//! side (`serve`: echo or sink).

pub(crate) mod connect;
mod options;
pub(crate) mod pattern;
pub(crate) mod report;
pub(crate) mod serve;
pub(crate) mod stream;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::cli::{BenchArgs, Mode};
use crate::shutdown::Signals;
use report::Failures;
use serve::ServeMode;

/// Default request size in connect mode.
const DEFAULT_CONNECT_SIZE: u64 = 1024;

/// Runs `spliced bench`. Exit code 1 when any connection failed or any byte
/// came back wrong.
///
/// # Errors
/// Bad arguments, an unresolvable target, or an address in use.
pub fn main(args: &BenchArgs, log_flag: Option<&str>) -> anyhow::Result<ExitCode> {
    crate::logging::init(log_flag, None, "warn");
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        match args.serve {
            Some(addr) => {
                serve_main(
                    addr,
                    if args.sink {
                        ServeMode::Sink
                    } else {
                        ServeMode::Echo
                    },
                    args.accept_proxy,
                )
                .await
            }
            None => client_main(args).await,
        }
    })
}

async fn serve_main(
    addr: SocketAddr,
    mode: ServeMode,
    accept_proxy: bool,
) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::install()?;
    let listener = crate::net::listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let what = match mode {
        ServeMode::Echo => "echo",
        ServeMode::Sink => "sink",
    };
    println!(
        "spliced: listening on {} (bench {what} server)",
        listener.local_addr()?
    );
    tokio::select! {
        () = serve::serve_with(listener, mode, accept_proxy) => {}
        _ = signals.recv() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// A report of either mode, for `--json`.
#[derive(Debug, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
enum Report {
    Stream(report::StreamReport),
    Connect(report::ConnectReport),
}

async fn client_main(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let target_text = args.target.as_deref().unwrap_or_default();
    let Some(target) = tokio::net::lookup_host(target_text)
        .await
        .with_context(|| format!("cannot resolve --target {target_text}"))?
        .next()
    else {
        bail!("--target {target_text} resolves to no address");
    };
    let (report, failures): (Report, Failures) = match args.mode {
        Mode::Stream => {
            let opts = stream::StreamOptions {
                target,
                conns: args.conns.unwrap_or(1),
                bytes_per_conn: args.size.map(|s| s.0),
                duration: args.duration.0,
                oneway: args.oneway,
            };
            let r = stream::run(&opts, Arc::default()).await;
            let f = r.failures.clone();
            (Report::Stream(r), f)
        }
        Mode::Connect => {
            let size = args.size.map_or(DEFAULT_CONNECT_SIZE, |s| s.0);
            let opts = connect::ConnectOptions {
                target,
                conns: args.conns.unwrap_or(16),
                size: usize::try_from(size).context("--size is too large")?,
                duration: args.duration.0,
                total: None,
            };
            let r = connect::run(&opts, Arc::default()).await;
            let f = r.failures.clone();
            (Report::Connect(r), f)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report {
            Report::Stream(r) => print!("{}", r.table()),
            Report::Connect(r) => print!("{}", r.table()),
        }
    }
    let nothing_done = match &report {
        Report::Stream(r) => r.bytes_sent == 0,
        Report::Connect(r) => r.connections == 0,
    };
    Ok(if failures.errors > 0 || nothing_done {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
