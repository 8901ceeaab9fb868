//! `spliced demo`: the proxy on this machine, with nothing else needed.
//!
//! On loopback it starts two embedded upstreams (a sink and an echo
//! server), then, once with `copy = splice` and once with
//! `copy = userspace`, the proxy in front of them and a load client: bulk
//! streams through the proxy to the sink, then a burst of short echo
//! connections. Every byte is checked. It prints Gbit/s and connections/s
//! for both copy methods, the proxy's CPU time per GB and per connection,
//! and the pipe pool's statistics. The proxy runs on a runtime of its own
//! with one worker thread, whose CPU time is read on that thread
//! (`CLOCK_THREAD_CPUTIME_ID`); the load and the upstreams share the
//! machine's other threads. Each phase is capped in time, so the whole demo
//! ends within about 25 s.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use pipepool::{PoolConfig, PoolStats};

use crate::bench::connect::{self, ConnectOptions};
use crate::bench::report::{ConnectReport, StreamReport};
use crate::bench::serve::{serve, ServeMode};
use crate::bench::stream::{self, StreamOptions};
use crate::cli::DemoArgs;
use crate::config::units::format_size;
use crate::config::{Balance, CopyMode, ListenerSettings};
use crate::metrics::Metrics;
use crate::proxy::{Context, Proxy};

/// Longest a bulk phase may run, per copy method.
const BULK_CAP: Duration = Duration::from_secs(8);
/// Longest a connection burst may run, per copy method.
const BURST_CAP: Duration = Duration::from_secs(4);
/// Bytes each way per short connection.
const BURST_SIZE: usize = 1024;

/// The sizes of one demo.
#[derive(Debug, Clone, Copy)]
struct Plan {
    bytes: u64,
    conns: u64,
    streams: usize,
    concurrency: usize,
}

impl Plan {
    fn from_args(a: &DemoArgs) -> Plan {
        let (bytes, conns) = if a.small {
            (32 << 20, 200)
        } else {
            (2 << 30, 5000)
        };
        Plan {
            bytes: a.bytes.map_or(bytes, |b| b.0.max(1)),
            conns: a.conns.map_or(conns, |n| n as u64),
            streams: a.streams.unwrap_or(2),
            concurrency: a.concurrency.unwrap_or(16),
        }
    }
}

/// The results of one copy method.
#[derive(Debug)]
struct Row {
    mode: CopyMode,
    bulk: StreamReport,
    burst: ConnectReport,
    /// The proxy thread's CPU time during the bulk phase.
    bulk_cpu: Duration,
    /// The proxy thread's CPU time during the burst.
    burst_cpu: Duration,
    pool: PoolStats,
}

impl Row {
    /// Proxy CPU seconds per GB moved in the bulk phase.
    fn cpu_per_gb(&self) -> f64 {
        self.bulk_cpu.as_secs_f64() / (self.bulk.bytes_sent.max(1) as f64 / 1e9)
    }

    /// Proxy CPU microseconds per short connection.
    fn cpu_per_conn_us(&self) -> f64 {
        self.burst_cpu.as_secs_f64() * 1e6 / self.burst.connections.max(1) as f64
    }
}

/// The CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The CPU time of `rt`'s one worker thread, read on that thread.
async fn worker_cpu(rt: &tokio::runtime::Runtime) -> anyhow::Result<Duration> {
    rt.spawn(async { thread_cpu() })
        .await
        .context("the proxy runtime is gone")
}

/// Runs the demo; exit code 1 if any byte was lost or wrong.
///
/// # Errors
/// If loopback sockets or the runtime cannot be set up.
pub fn main(args: &DemoArgs, log_flag: Option<&str>) -> anyhow::Result<ExitCode> {
    crate::logging::init(log_flag, None, "warn");
    crate::limits::raise_nofile();
    let plan = Plan::from_args(args);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(demo(plan))
}

async fn demo(plan: Plan) -> anyhow::Result<ExitCode> {
    let sink =
        crate::net::listen(([127, 0, 0, 1], 0).into()).context("cannot bind a loopback port")?;
    let echo =
        crate::net::listen(([127, 0, 0, 1], 0).into()).context("cannot bind a loopback port")?;
    let (sink_addr, echo_addr) = (sink.local_addr()?, echo.local_addr()?);
    tokio::spawn(serve(sink, ServeMode::Sink));
    tokio::spawn(serve(echo, ServeMode::Echo));
    println!(
        "spliced demo: client -> spliced -> upstream on loopback ({} CPU(s)): {} in {} stream(s), \
         then {} connections of {} each way ({} at a time), per copy method",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        format_size(plan.bytes),
        plan.streams,
        plan.conns,
        format_size(BURST_SIZE as u64),
        plan.concurrency
    );
    let mut rows = Vec::new();
    for mode in [CopyMode::Splice, CopyMode::Userspace] {
        rows.push(run_mode(plan, mode, sink_addr, echo_addr).await?);
    }
    print!("{}", table(&rows));
    let failed = rows
        .iter()
        .any(|r| r.bulk.failures.errors > 0 || r.burst.failures.errors > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One copy method: a fresh pool and proxy, the bulk phase, the burst.
async fn run_mode(
    plan: Plan,
    mode: CopyMode,
    sink: SocketAddr,
    echo: SocketAddr,
) -> anyhow::Result<Row> {
    let pool = PoolConfig::builder()
        .build()
        .context("cannot build the pipe pool")?;
    let ctx = Context::new(pool.clone(), Arc::new(Metrics::new(&pool)));
    let listener = |name: &str, upstream: SocketAddr| ListenerSettings {
        name: name.to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)).into(),
        upstreams: vec![upstream.into()],
        balance: Balance::RoundRobin,
        copy: mode,
        connect_timeout: Duration::from_secs(3),
        connect_attempts: 1,
        idle_timeout: Some(Duration::from_secs(30)),
        max_conns: 10_000,
        dns_ttl: crate::config::DEFAULT_DNS_TTL,
        send_proxy: None,
        accept_proxy: false,
        accept_proxy_from: Vec::new(),
        proxy_timeout: Duration::from_secs(3),
        routes: Vec::new(),
        sni_timeout: crate::config::DEFAULT_SNI_TIMEOUT,
        allow: Vec::new(),
        deny: Vec::new(),
        max_conns_per_source: None,
        health_interval: None,
        health_timeout: None,
        health_rise: 2,
        health_fall: 3,
        health_send: None,
        health_expect: None,
        unix_mode: None,
        unix_owner: None,
        unix_group: None,

        client_keepalive: None,
        upstream_keepalive: None,
        client_user_timeout: None,
        upstream_user_timeout: None,
    };
    // The proxy on a runtime of its own, one worker thread: its CPU time is
    // that thread's.
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("spliced-proxy")
        .enable_all()
        .build()
        .context("cannot start the proxy's runtime")?;
    let listeners = vec![listener("bulk", sink), listener("burst", echo)];
    let proxy = proxy_rt
        .spawn(async move { Proxy::start(listeners, &ctx).await })
        .await
        .context("the proxy runtime is gone")??;
    let tcp = |i: usize| {
        proxy.addrs()[i]
            .1
            .tcp()
            .context("the demo's listeners are TCP")
    };
    let (bulk_addr, burst_addr) = (tcp(0)?, tcp(1)?);

    let progress = Arc::new(stream::StreamTally::default());
    let bar = new_bar(
        plan.bytes,
        &format!("{:<9} bulk", mode.as_str()),
        "{bytes}/{total_bytes} {bytes_per_sec}",
    );
    let ticker = tick(Arc::clone(&bar), {
        let p = Arc::clone(&progress);
        move || p.sent.load(Relaxed)
    });
    let cpu_start = worker_cpu(&proxy_rt).await?;
    let bulk = stream::run(
        &StreamOptions {
            target: bulk_addr,
            conns: plan.streams,
            bytes_per_conn: Some(plan.bytes.div_ceil(plan.streams as u64)),
            duration: BULK_CAP,
            oneway: true,
        },
        progress,
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    let cpu_bulk = worker_cpu(&proxy_rt).await?;

    let progress = Arc::new(connect::ConnectTally::default());
    let bar = new_bar(
        plan.conns,
        &format!("{:<9} burst", mode.as_str()),
        "{pos}/{len} conns {per_sec}",
    );
    let ticker = tick(Arc::clone(&bar), {
        let p = Arc::clone(&progress);
        move || p.done.load(Relaxed)
    });
    let burst = connect::run(
        &ConnectOptions {
            target: burst_addr,
            conns: plan.concurrency,
            size: BURST_SIZE,
            duration: BURST_CAP,
            total: Some(plan.conns),
        },
        progress,
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    let cpu_burst = worker_cpu(&proxy_rt).await?;

    proxy_rt
        .spawn(proxy.stop(Duration::from_secs(2)))
        .await
        .context("the proxy runtime is gone")?;
    proxy_rt.shutdown_background();
    Ok(Row {
        mode,
        bulk,
        burst,
        bulk_cpu: cpu_bulk.saturating_sub(cpu_start),
        burst_cpu: cpu_burst.saturating_sub(cpu_bulk),
        pool: pool.stats(),
    })
}

/// A progress bar on stderr (drawn only on a terminal).
fn new_bar(len: u64, prefix: &str, counts: &str) -> Arc<ProgressBar> {
    let style = ProgressStyle::with_template(&format!("{{prefix}} [{{bar:30}}] {counts}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    Arc::new(
        ProgressBar::new(len)
            .with_style(style)
            .with_prefix(prefix.to_owned()),
    )
}

/// Copies a counter into a bar ten times a second until aborted.
fn tick(
    bar: Arc<ProgressBar>,
    read: impl Fn() -> u64 + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            bar.set_position(read());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The summary table.
fn table(rows: &[Row]) -> String {
    let mut t = String::from("\n");
    t += &format!(
        "{:<10} {:>9} {:>9} {:>11} {:>10} {:>11} {:>9} {:>9} {:>7}\n",
        "copy",
        "Gbit/s",
        "CPU s/GB",
        "bulk bytes",
        "conn/s",
        "CPU us/conn",
        "p50 ms",
        "p99 ms",
        "errors"
    );
    for r in rows {
        t += &format!(
            "{:<10} {:>9.2} {:>9.3} {:>11} {:>10.0} {:>11.1} {:>9.3} {:>9.3} {:>7}\n",
            r.mode.as_str(),
            r.bulk.send_gbps,
            r.cpu_per_gb(),
            format_size(r.bulk.bytes_sent),
            r.burst.conns_per_sec,
            r.cpu_per_conn_us(),
            f64::from(r.burst.latency_us.p50) / 1000.0,
            f64::from(r.burst.latency_us.p99) / 1000.0,
            r.bulk.failures.errors + r.burst.failures.errors
        );
    }
    if let [s, u] = rows {
        if u.bulk.send_gbps > 0.0 && u.burst.conns_per_sec > 0.0 && u.cpu_per_gb() > 0.0 {
            t += &format!(
                "splice vs userspace: {:.2}x the proxy's CPU per GB, {:.2}x Gbit/s, {:.2}x conn/s\n",
                s.cpu_per_gb() / u.cpu_per_gb(),
                s.bulk.send_gbps / u.bulk.send_gbps,
                s.burst.conns_per_sec / u.burst.conns_per_sec
            );
        }
    }
    t += "(CPU: the proxy's one worker thread. Client, proxy and upstreams share this\n\
          machine's CPUs, so Gbit/s also measures the load; CPU per GB is the proxy's own.)\n";
    t += "\npipe pool after each run (a fresh pool per run):\n";
    t += &format!(
        "{:<10} {:>8} {:>8} {:>12} {:>12} {:>8} {:>6}\n",
        "copy", "created", "reused", "closed idle", "closed dirty", "refused", "live"
    );
    for r in rows {
        let p = &r.pool;
        t += &format!(
            "{:<10} {:>8} {:>8} {:>12} {:>12} {:>8} {:>6}\n",
            r.mode.as_str(),
            p.created,
            p.gets_local + p.gets_shared,
            p.closed_idle,
            p.closed_dirty,
            p.gets_refused,
            p.live
        );
    }
    for r in rows {
        let f = r
            .bulk
            .failures
            .samples
            .iter()
            .chain(&r.burst.failures.samples);
        for s in f {
            t += &format!("error ({}): {s}\n", r.mode.as_str());
        }
    }
    t
}
