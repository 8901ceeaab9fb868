//! `pipepool_*`: every field of [`PoolStats`], read at each scrape.

use pipepool::{PipePool, PoolStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads the pool's statistics when scraped.
#[derive(Debug)]
pub(super) struct PoolCollector {
    pool: PipePool,
}

impl PoolCollector {
    pub(super) fn new(pool: PipePool) -> Self {
        PoolCollector { pool }
    }
}

/// A gauge or a counter.
enum Kind {
    Gauge,
    Counter,
}

/// Name (after `pipepool_`), kind and help of each [`PoolStats`] field.
fn fields(s: &PoolStats) -> [(&'static str, Kind, u64, &'static str); 16] {
    use Kind::{Counter as C, Gauge as G};
    [
        ("live", G, s.live, "Pipes alive (in use and idle)"),
        ("idle", G, s.idle, "Pipes idle in the pool"),
        ("in_use", G, s.in_use, "Pipes handed out now"),
        ("created", C, s.created, "Pipes created"),
        (
            "closed_idle",
            C,
            s.closed_idle,
            "Pipes closed after idle_timeout",
        ),
        (
            "closed_dirty",
            C,
            s.closed_dirty,
            "Pipes closed because given back with bytes inside",
        ),
        (
            "closed_overflow",
            C,
            s.closed_overflow,
            "Pipes closed because the pool held max_idle",
        ),
        (
            "closed_shutdown",
            C,
            s.closed_shutdown,
            "Pipes closed by trim, flush or drop",
        ),
        (
            "gets_local",
            C,
            s.gets_local,
            "Gets served by a thread's own cache",
        ),
        (
            "gets_shared",
            C,
            s.gets_shared,
            "Gets served by the shared pool",
        ),
        ("gets_new", C, s.gets_new, "Gets that created a pipe"),
        (
            "gets_refused",
            C,
            s.gets_refused,
            "Gets refused at max_pipes (the copy used userspace)",
        ),
        (
            "gets_failed",
            C,
            s.gets_failed,
            "Gets that failed to create a pipe",
        ),
        (
            "capacity_bytes",
            G,
            s.capacity_bytes,
            "Sum of the live pipes' real capacities",
        ),
        (
            "undersized",
            G,
            s.undersized,
            "Live pipes smaller than pipe_size",
        ),
        (
            "resize_failures",
            C,
            s.resize_failures,
            "Pipes whose F_SETPIPE_SZ was refused",
        ),
    ]
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let config = self.pool.config();
        let limits = [
            (
                "max_pipes",
                config.max_pipes() as u64,
                "Configured bound on pipes alive",
            ),
            (
                "pipe_size_bytes",
                config.pipe_size() as u64,
                "Configured pipe size",
            ),
        ];
        for (name, value, help) in limits {
            let g = ConstGauge::new(value as i64);
            g.encode(encoder.encode_descriptor(
                &format!("pipepool_{name}"),
                help,
                None,
                g.metric_type(),
            )?)?;
        }
        for (name, kind, value, help) in fields(&self.pool.stats()) {
            let name = format!("pipepool_{name}");
            match kind {
                Kind::Gauge => {
                    let g = ConstGauge::new(value as i64);
                    g.encode(encoder.encode_descriptor(&name, help, None, g.metric_type())?)?;
                }
                Kind::Counter => {
                    let c = ConstCounter::new(value);
                    c.encode(encoder.encode_descriptor(&name, help, None, c.metric_type())?)?;
                }
            }
        }
        Ok(())
    }
}
