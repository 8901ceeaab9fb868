//! `spliced run`: settings, runtime, listeners, metrics, then wait for a
//! signal and shut down gracefully.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::{self, RunArgs, Settings, WorkerModel};
use crate::privileges::Account;

mod check;
mod settle;

use crate::metrics::http::MetricsServer;
use crate::metrics::Metrics;
use crate::proxy::{Context, Proxy, Workers};
use crate::shutdown::{Signals, SIGHUP};
use check::join;
#[cfg(test)]
pub(crate) use settle::check_text;
use settle::settle;

/// Runs the proxy until SIGINT/SIGTERM and the grace period; SIGHUP
/// reloads the `--config` file. `no_idle_pipes`: keep no idle pipe, so
/// that every burst creates its pipes and closes them after (a benchmark
/// knob, set by the binary from its environment).
///
/// # Errors
/// A [`crate::config::ConfigError`] (exit code 2), or a runtime failure such as an
/// address in use (exit code 1).
pub fn main(
    args: &RunArgs,
    log_flag: Option<String>,
    no_idle_pipes: bool,
) -> anyhow::Result<ExitCode> {
    // First: the default max_conns and max_pipes are sized to the raised
    // limit (and `--check` shows what a start would use).
    let nofile = crate::limits::raise_nofile();
    let (settings, user) = settle(args, nofile, None)?;
    if args.check {
        print!("{}", check::describe(&settings, user.as_ref()));
        return Ok(ExitCode::SUCCESS);
    }
    crate::logging::init(log_flag.as_deref(), settings.log_level.as_deref(), "info");
    // Before the runtime starts its threads (the environment changes).
    let inherited =
        crate::systemd::take_inherited().context("cannot take the sockets systemd passed")?;
    if !inherited.is_empty() {
        tracing::info!("socket activation: systemd passed listening sockets on {inherited:?}");
    }
    // Per-thread: the workers run the listeners; this thread's runtime
    // runs the rest (signals, reloads, metrics, DNS). Work-stealing: one
    // multi-thread runtime runs everything.
    let (mut builder, workers) = match settings.worker_model {
        WorkerModel::PerThread => {
            let n = settings.worker_threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let workers = Workers::threads(n).context("cannot start the worker threads")?;
            (tokio::runtime::Builder::new_current_thread(), workers)
        }
        WorkerModel::WorkStealing => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = settings.worker_threads {
                builder.worker_threads(n);
            }
            (builder, Workers::Current)
        }
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let reload = args.config.is_some().then_some(args);
    let result = runtime.block_on(serve(
        settings,
        user,
        nofile,
        reload,
        no_idle_pipes,
        workers.clone(),
    ));
    workers.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn serve(
    mut settings: Settings,
    user: Option<Account>,
    nofile: Option<u64>,
    reload_from: Option<&RunArgs>,
    no_idle_pipes: bool,
    workers: Workers,
) -> anyhow::Result<ExitCode> {
    let mut pool_config = settings.pool.to_builder();
    if no_idle_pipes {
        pool_config = pool_config.local_cap(0).max_idle(0);
    }
    let pool = pool_config.build().context("cannot build the pipe pool")?;
    let metrics = Arc::new(Metrics::new(&pool));
    let ctx = Context::new(pool.clone(), Arc::clone(&metrics)).with_workers(workers);
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    check_fd_budget(&settings, nofile, true);
    let metrics_server = match settings.metrics {
        Some(addr) => Some(
            MetricsServer::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let bound = Proxy::bind(settings.listeners.clone(), &ctx).await?;
    if let Some(user) = &user {
        // Every socket is bound: nothing needs root any more. Before the
        // first accept, so that no connection (and no pipe) is ever
        // served as root.
        crate::privileges::drop_to(user)?;
    }
    let mut proxy = bound.start()?;
    for ((_, addr), l) in proxy.addrs().iter().zip(&settings.listeners) {
        announce_listener(*addr, l);
    }
    if let Some(server) = metrics_server {
        announce(&format!(
            "metrics on http://{}/metrics",
            server.local_addr()?
        ));
        tokio::spawn(server.serve(Arc::clone(&metrics)));
    }
    warn_unused_sockets();
    crate::systemd::ready(&status(&proxy));
    let signal = loop {
        let signal = signals.recv().await;
        if signal != SIGHUP {
            break signal;
        }
        match &reload_from {
            Some(from) => {
                crate::systemd::reloading();
                reload(from, &mut settings, &mut proxy, &metrics, nofile).await;
                warn_unused_sockets();
                crate::systemd::ready(&status(&proxy));
            }
            None => tracing::warn!("SIGHUP: started without --config, nothing to re-read"),
        }
    };
    let open = proxy.active();
    crate::systemd::stopping(&format!("{signal}: {open} connection(s) open"));
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
        again = async {
            // A SIGHUP while shutting down reloads nothing and ends nothing.
            loop {
                match signals.recv().await {
                    SIGHUP => tracing::info!("SIGHUP while shutting down: ignored"),
                    again => break again,
                }
            }
        } => {
            tracing::warn!("{again} again: not waiting for the grace period");
            ctx.tracker.len()
        }
    };
    if left > 0 {
        tracing::warn!("closing {left} connection(s) still open after the grace period");
    }
    tracing::info!("pool at exit: {:?}", pool.stats());
    announce("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: re-reads the file, applies the flags again, validates, and
/// applies the listeners' settings and `log_level` to the running proxy. A file that fails
/// (or a new listener that cannot bind) changes nothing.
async fn reload(
    args: &RunArgs,
    running: &mut Settings,
    proxy: &mut Proxy,
    metrics: &Metrics,
    nofile: Option<u64>,
) {
    let path = args.config.as_deref().unwrap_or(std::path::Path::new("-"));
    let fail = |e: &dyn std::fmt::Display| {
        metrics.reloaded(false);
        tracing::error!(
            "reload of {} failed, the running config stays: {e}",
            path.display()
        );
        announce(&format!("reload failed: {e}"));
    };
    let pipes_in_use = Some(running.pool.max_pipes());
    let new = match settle(args, crate::limits::nofile(), pipes_in_use) {
        Ok((new, _)) => new,
        Err(e) => return fail(&e),
    };
    let log_level = if new.log_level == running.log_level {
        None
    } else {
        match crate::logging::reload(new.log_level.as_deref()) {
            Ok(pending) => Some(pending),
            Err(e) => return fail(&e),
        }
    };
    let done = match proxy.reload(new.listeners.clone(), new.grace_period).await {
        Ok(done) => done,
        Err(e) => return fail(&format!("{e:#}")),
    };
    metrics.reloaded(true);
    let stay = restart_only(running, &new);
    if !stay.is_empty() {
        tracing::warn!(
            "reload: {} changed but apply(ies) only at a restart; still running with the old value(s)",
            stay.join(", ")
        );
    }
    for (name, addr) in &done.added {
        if let Some(l) = new.listeners.iter().find(|l| &l.name == name) {
            announce_listener(*addr, l);
        }
    }
    let log_level = log_level.map(|pending| format!("; {}", pending.apply()));
    running.listeners = new.listeners;
    running.grace_period = new.grace_period;
    running.log_level = new.log_level;
    check_fd_budget(running, nofile, false);
    announce(&format!(
        "reloaded {}: {} listener(s) kept, {} added, {} removed{}{}",
        path.display(),
        done.kept,
        done.added.len(),
        done.removed.len(),
        if done.removed.is_empty() {
            String::new()
        } else {
            format!(" ({})", done.removed.join(", "))
        },
        log_level.unwrap_or_default()
    ));
}

/// The `STATUS=` line for systemd.
fn status(proxy: &Proxy) -> String {
    let addrs: Vec<String> = proxy
        .addrs()
        .iter()
        .map(|(name, addr)| format!("{name} on {addr}"))
        .collect();
    format!("listening: {}", addrs.join(", "))
}

/// Warns about sockets systemd passed that no listener uses.
fn warn_unused_sockets() {
    let unused = crate::systemd::unused();
    if !unused.is_empty() {
        tracing::warn!(
            "socket activation: no listener has the address of the socket(s) on {unused:?}: \
             unused (a listener with that `listen` address takes it, also at a reload)"
        );
    }
}

/// The process-wide settings that differ between `old` and `new`: they
/// apply at the next start only.
fn restart_only(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.pool != new.pool {
        changed.push("[pool]");
    }
    if old.metrics != new.metrics {
        changed.push("metrics");
    }
    if old.worker_threads != new.worker_threads {
        changed.push("worker_threads");
    }
    if old.worker_model != new.worker_model {
        changed.push("worker_model");
    }
    let user = |s: &Settings| s.user.as_ref().map(|u| u.value.clone());
    if user(old) != user(new) {
        changed.push("user");
    }
    changed
}

/// The stdout line of a listener that accepts.
fn announce_listener(addr: std::net::SocketAddr, l: &config::ListenerSettings) {
    announce(&format!(
        "listening on {addr} (listener `{}`, {} to {}, copy {})",
        l.name,
        l.balance.as_str(),
        join(&l.upstreams),
        l.copy.as_str()
    ));
}

/// Says how the defaults were sized to the fd limit (info, if `tell_fit`),
/// or warns when the settings given need more fds than the limit (the
/// defaults never do: [`crate::limits::fit`]).
fn check_fd_budget(settings: &Settings, nofile: Option<u64>, tell_fit: bool) {
    let Some(limit) = nofile else { return };
    let conns: usize = settings.listeners.iter().map(|l| l.max_conns).sum();
    let pipes = settings.pool.max_pipes();
    let need = crate::limits::fds_needed(limit, conns, pipes);
    if need > limit {
        tracing::warn!(
            "max_conns ({conns} in all) and max_pipes ({pipes}) may need {need} fds, above the \
             fd limit ({limit}): accept backs off on EMFILE when it is reached"
        );
    } else if tell_fit && settings.fds_fitted.is_some() {
        tracing::info!(
            "fd limit {limit}: defaults sized to fit, max_conns {} and max_pipes {pipes} \
             (up to {need} fds)",
            settings
                .listeners
                .iter()
                .map(|l| format!("{} for `{}`", l.max_conns, l.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// A line on stdout for scripts and tests (logs go to stderr).
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "spliced: {line}");
    let _ = out.flush();
}
