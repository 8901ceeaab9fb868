//! `spliced run`: settings, runtime, listeners, metrics, then wait for a
//! signal and shut down gracefully.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::access_log::AccessLog;
use crate::admin::takeover::{Request, Sockets};
use crate::admin::{AdminSocket, Commands};
use crate::config::{self, RunArgs, Settings, WorkerModel};
use crate::privileges::Account;
use prometheus_client::metrics::counter::Counter;

mod check;
mod settle;

use crate::metrics::http::MetricsServer;
use crate::metrics::Metrics;
use crate::proxy::{Context, Proxy, Workers};
use crate::shutdown::{Signals, SIGHUP, SIGUSR1};
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
    // Before anything is bound: a failure binds nothing (exit code 2).
    if let Some(path) = &args.takeover {
        let got = crate::admin::takeover::receive(path)?;
        tracing::info!(
            "takeover: received the listening sockets of {}: {got:?}",
            path.display()
        );
    }
    // Opened as the user who starts spliced (before `user` applies).
    let access_log = match &settings.access_log {
        Some(target) => AccessLog::open(target, settings.access_log_format, Counter::default())
            .with_context(|| format!("cannot open the access log {target}"))?,
        None => AccessLog::default(),
    };
    // Before the runtime starts its threads (the environment changes).
    let inherited =
        crate::systemd::take_inherited().context("cannot take the sockets systemd passed")?;
    if !inherited.is_empty() {
        let on: Vec<String> = inherited.iter().map(ToString::to_string).collect();
        tracing::info!(
            "socket activation: systemd passed listening sockets on [{}]",
            on.join(", ")
        );
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
    let result = runtime.block_on(serve(
        settings,
        user,
        nofile,
        args,
        no_idle_pipes,
        workers.clone(),
        access_log.clone(),
    ));
    workers.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // Every connection's line is in: write them out.
    access_log.close();
    result
}

async fn serve(
    mut settings: Settings,
    user: Option<Account>,
    nofile: Option<u64>,
    args: &RunArgs,
    no_idle_pipes: bool,
    workers: Workers,
    access_log: AccessLog,
) -> anyhow::Result<ExitCode> {
    // SIGHUP re-reads the file, if there is one.
    let reload_from = args.config.is_some().then_some(args);
    let takeover = args.takeover.as_deref();
    let mut pool_config = settings.pool.to_builder();
    if no_idle_pipes {
        pool_config = pool_config.local_cap(0).max_idle(0);
    }
    let pool = pool_config.build().context("cannot build the pipe pool")?;
    let mut metrics = Metrics::new(&pool);
    if let Some(dropped) = access_log.dropped() {
        metrics.count_access_log_drops(dropped);
    }
    let metrics = Arc::new(metrics);
    let ctx = Context::new(pool.clone(), Arc::clone(&metrics))
        .with_workers(workers)
        .with_access_log(access_log.clone());
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    check_fd_budget(&settings, nofile, true);
    let metrics_server = match settings.metrics {
        Some(addr) => Some(match crate::admin::takeover::taken_metrics(addr)? {
            Some(mut taken) => MetricsServer::from_listener(tokio::net::TcpListener::from_std(
                taken.swap_remove(0),
            )?),
            None => MetricsServer::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        }),
        None => None,
    };
    let admin = match &settings.admin_socket {
        Some(path) => {
            let mut admin = AdminSocket::bind(path, user.as_ref(), takeover.is_some())?;
            if takeover.is_none() {
                // While root, if started so: the directory may be root's.
                // Taking over, the old process keeps the path until it
                // stops accepting: the directory must be the user's.
                admin.place().with_context(|| {
                    format!("cannot put the admin socket at {}", path.display())
                })?;
            }
            Some(admin)
        }
        None => None,
    };
    let bound = Proxy::bind(settings.listeners.clone(), &ctx).await?;
    if let Some(user) = &user {
        // Every socket is bound: nothing needs root any more. Before the
        // first accept, so that no connection (and no pipe) is ever
        // served as root.
        crate::privileges::drop_to(user)?;
        if let Some(path) = reload_from.and_then(|a| a.config.as_deref()) {
            if let Err(warning) = crate::privileges::check_readable(path, user) {
                tracing::warn!("{warning}");
            }
        }
    }
    let mut proxy = bound.start();
    // With its configured address (port 0 stays 0), as the listeners'.
    let metrics_socket = match (&metrics_server, settings.metrics) {
        (Some(server), Some(addr)) => Some((addr, server.socket()?)),
        _ => None,
    };
    let mut metrics_task = None;
    if let Some(server) = metrics_server {
        announce(&format!(
            "metrics on http://{}/metrics",
            server.local_addr()?
        ));
        metrics_task = Some(tokio::spawn(server.serve(Arc::clone(&metrics))));
    }
    let mut commands = Commands::new();
    let mut requests = crate::admin::takeover::commands(&mut commands);
    crate::admin::add_upstream_commands(&mut commands, &metrics);
    if let Some(path) = takeover {
        finish_takeover(path).await?;
    }
    // Removes the socket file when `serve` returns.
    let mut admin = match admin {
        Some(admin) => Some(
            admin
                .serve(commands)
                .context("cannot put the admin socket in place")?,
        ),
        None => None,
    };
    // Last: a script that sees these lines finds the admin socket too.
    for ((_, addr), l) in proxy.addrs().iter().zip(&settings.listeners) {
        announce_listener(addr, l);
    }
    warn_unused_sockets();
    crate::systemd::ready(&status(&proxy));
    let signal = loop {
        let signal = tokio::select! {
            signal = signals.recv() => signal,
            Some(request) = requests.recv() => match request {
                Request::Sockets(reply) => {
                    let _ = reply.send(handover(&proxy, metrics_socket.as_ref()));
                    continue;
                }
                Request::HandedOver(reply) => {
                    // Its socket files too: the new process removes them.
                    proxy.handed_over();
                    // The new process puts its own socket at the path.
                    if let Some(admin) = &mut admin {
                        admin.leave();
                    }
                    let _ = reply.send(());
                    break TAKEN_OVER;
                }
            },
        };
        if signal == SIGUSR1 {
            // Log rotation: the file was renamed; write on at its path.
            access_log.reopen(None);
            continue;
        }
        if signal != SIGHUP {
            break signal;
        }
        match &reload_from {
            Some(from) => {
                crate::systemd::reloading();
                reload(from, &mut settings, &mut proxy, &metrics, nofile).await;
                // Rotation at a reload too, to the path the file names now.
                access_log.reopen(settings.access_log.clone());
                warn_unused_sockets();
                crate::systemd::ready(&status(&proxy));
            }
            None => tracing::warn!("SIGHUP: started without --config, nothing to re-read"),
        }
    };
    // Requests from now on fail at once (no sockets to hand over).
    drop(requests);
    if signal == TAKEN_OVER {
        // Scrapes go to the new process alone (it has the socket).
        if let Some(task) = &metrics_task {
            task.abort();
        }
        // The new process waits for `handed-over`'s answer: with no
        // connection left to drain, this process could end before it is
        // written.
        if let Some(admin) = &admin {
            admin.answered(std::time::Duration::from_secs(1)).await;
        }
    }
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
                    SIGUSR1 => access_log.reopen(None),
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
            announce_listener(addr, l);
        }
    }
    let log_level = log_level.map(|pending| format!("; {}", pending.apply()));
    running.listeners = new.listeners;
    running.grace_period = new.grace_period;
    running.log_level = new.log_level;
    if running.access_log.is_some() && new.access_log.is_some() {
        running.access_log = new.access_log;
    }
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

/// `--takeover`, once this process accepts: tells the old one to stop
/// (it drains and exits) and closes the sockets no listener took.
async fn finish_takeover(path: &std::path::Path) -> anyhow::Result<()> {
    // systemd follows this process from here on.
    crate::systemd::main_pid();
    let path = path.to_owned();
    let told = tokio::task::spawn_blocking(move || {
        crate::admin::takeover::finish(&path).map(|closed| (path, closed))
    })
    .await?;
    match told {
        Ok((path, closed)) => {
            for c in closed {
                tracing::info!("takeover: {c} is not in this configuration: closed");
            }
            announce(&format!(
                "took over from the process at {}: it drains and exits",
                path.display()
            ));
        }
        Err(e) => tracing::warn!("takeover: cannot tell the old process to stop: {e}"),
    }
    Ok(())
}

/// The name of the shutdown after a new process took over.
const TAKEN_OVER: &str = "taken over";

/// Every listening socket, duplicated, for a process taking over.
fn handover(
    proxy: &Proxy,
    metrics: Option<&(std::net::SocketAddr, std::os::fd::OwnedFd)>,
) -> Result<Vec<Sockets>, String> {
    let cannot = |e: std::io::Error| format!("cannot duplicate a listening socket: {e}");
    let mut all = proxy.sockets().map_err(cannot)?;
    if let Some((addr, fd)) = metrics {
        all.push(Sockets {
            listener: None,
            listen: crate::address::ListenAddr::Tcp(*addr),
            fds: vec![fd.try_clone().map_err(cannot)?],
        });
    }
    tracing::info!("takeover: handing over {} socket(s)", all.len());
    Ok(all)
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
        let unused: Vec<String> = unused.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "socket activation: no listener has the address of the socket(s) on [{}]: \
             unused (a listener with that `listen` address takes it, also at a reload)",
            unused.join(", ")
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
    // A new path applies at the reload; on/off and the format do not.
    if old.access_log.is_some() != new.access_log.is_some() {
        changed.push("access_log (on/off)");
    }
    if old.access_log_format != new.access_log_format {
        changed.push("access_log_format");
    }
    let user = |s: &Settings| s.user.as_ref().map(|u| u.value.clone());
    if user(old) != user(new) {
        changed.push("user");
    }
    if old.admin_socket != new.admin_socket {
        changed.push("admin_socket");
    }
    changed
}

/// The stdout line of a listener that accepts.
fn announce_listener(addr: &crate::address::ListenAddr, l: &config::ListenerSettings) {
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
