//! `spliced run`: settings, runtime, listeners, metrics, then wait for a
//! signal and shut down gracefully.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::RunArgs;
use crate::config::{self, Settings};
use crate::metrics::http::MetricsServer;
use crate::metrics::Metrics;
use crate::proxy::{Context, Proxy};
use crate::shutdown::{Signals, Tracker};

/// Runs the proxy until SIGINT/SIGTERM and the grace period.
///
/// # Errors
/// A [`config::ConfigError`] (exit code 2), or a runtime failure such as an
/// address in use (exit code 1).
pub(crate) fn main(args: &RunArgs, log_flag: Option<String>) -> anyhow::Result<ExitCode> {
    let settings = config::load(args.config.as_deref(), &args.overrides(log_flag.clone()))?;
    if args.check {
        print_settings(&settings);
        return Ok(ExitCode::SUCCESS);
    }
    crate::logging::init(log_flag.as_deref(), settings.log_level.as_deref(), "info");
    let nofile = crate::limits::raise_nofile();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = settings.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = runtime.block_on(serve(settings, nofile));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn serve(settings: Settings, nofile: Option<u64>) -> anyhow::Result<ExitCode> {
    let pool = settings
        .pool
        .clone()
        .build()
        .context("cannot build the pipe pool")?;
    let metrics = Arc::new(Metrics::new(&pool));
    let ctx = Context {
        pool: pool.clone(),
        metrics: Arc::clone(&metrics),
        tracker: Tracker::default(),
    };
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    if let Some(limit) = nofile {
        // 2 sockets per connection, 2 fds per pipe, a few spare.
        let conns: usize = settings.listeners.iter().map(|l| l.max_conns).sum();
        let need = 2 * conns as u64 + 2 * settings.pool.get_max_pipes() as u64 + 64;
        if need > limit {
            tracing::warn!(
                "max_conns ({conns} in all) and max_pipes ({}) may need {need} fds, above the \
                 fd limit ({limit}): accept backs off on EMFILE when it is reached",
                settings.pool.get_max_pipes()
            );
        }
    }
    let metrics_server = match settings.metrics {
        Some(addr) => Some(
            MetricsServer::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let bound = Proxy::bind(settings.listeners.clone(), &ctx).await?;
    if let Some(user) = &settings.user {
        // Every socket is bound: nothing needs root any more. Before the
        // first accept, so that no connection (and no pipe) is ever
        // served as root.
        crate::privileges::drop_to(user)?;
    }
    let proxy = bound.start()?;
    for ((name, addr), l) in proxy.addrs().iter().zip(&settings.listeners) {
        announce(&format!(
            "listening on {addr} (listener `{name}`, {} to {}, copy {})",
            l.balance.as_str(),
            l.upstreams.join(", "),
            l.copy.as_str()
        ));
    }
    if let Some(server) = metrics_server {
        announce(&format!(
            "metrics on http://{}/metrics",
            server.local_addr()?
        ));
        tokio::spawn(server.serve(Arc::clone(&metrics)));
    }
    let signal = signals.recv().await;
    let open = proxy.active();
    tracing::info!(
        "{signal}: stopped accepting; waiting up to {:?} for {open} open connection(s)",
        settings.grace_period
    );
    announce(&format!(
        "{signal}: shutting down ({open} connection(s) open)"
    ));
    let stop = proxy.stop(settings.grace_period);
    tokio::pin!(stop);
    let left = tokio::select! {
        left = &mut stop => left,
        again = signals.recv() => {
            tracing::warn!("{again} again: not waiting for the grace period");
            ctx.tracker.active()
        }
    };
    if left > 0 {
        tracing::warn!("closing {left} connection(s) still open after the grace period");
    }
    tracing::info!("pool at exit: {:?}", pool.stats());
    announce("stopped");
    Ok(ExitCode::SUCCESS)
}

/// A line on stdout for scripts and tests (logs go to stderr).
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "spliced: {line}");
    let _ = out.flush();
}

/// `--check`: the resolved settings.
fn print_settings(s: &Settings) {
    println!("configuration OK");
    for l in &s.listeners {
        println!(
            "listener `{}` on {}: {} to [{}], copy {}, connect_timeout {:?} x{} attempt(s), idle_timeout {}, max_conns {}",
            l.name,
            l.listen,
            l.balance.as_str(),
            l.upstreams.join(", "),
            l.copy.as_str(),
            l.connect_timeout,
            l.connect_attempts,
            l.idle_timeout.map_or("off".to_owned(), |d| format!("{d:?}")),
            l.max_conns
        );
    }
    println!(
        "pool: max_pipes {}, pipe_size {}, idle_timeout {:?}",
        s.pool.get_max_pipes(),
        s.pool.get_pipe_size(),
        s.pool.get_idle_timeout()
    );
    println!(
        "metrics: {}; grace_period {:?}; worker_threads {}; user {}",
        s.metrics.map_or("off".to_owned(), |a| a.to_string()),
        s.grace_period,
        s.worker_threads
            .map_or("one per core".to_owned(), |n| n.to_string()),
        s.user.as_ref().map_or("as started".to_owned(), |u| format!(
            "{} (uid {}, gid {})",
            u.name, u.uid, u.gid
        ))
    );
}
