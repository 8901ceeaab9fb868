//! `spliced_bytes_total`: bytes forwarded by listener, direction and copy
//! method, read at each scrape from the live counters the copies update
//! (one [`Progress`] per listener), so a long connection shows up while it
//! runs, not only when it closes.

use std::sync::Arc;

use pipepool::tokio::Progress;
use pipepool::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use super::listeners::PerListener;

/// The listeners' live byte counts.
#[derive(Debug, Clone, Default)]
pub(super) struct BytesCollector {
    listeners: PerListener<Progress>,
}

impl BytesCollector {
    /// The counters of listener `name`, made on first use.
    pub(super) fn progress(&self, name: &str) -> Arc<Progress> {
        self.listeners.get_or_add(name, Progress::new)
    }
}

impl Collector for BytesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let listeners = self.listeners.snapshot();
        let mut family = encoder.encode_descriptor(
            "spliced_bytes",
            "Bytes forwarded, by direction and copy method (counted as they are written)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (name, p) in &listeners {
            for method in [Method::Splice, Method::Userspace] {
                for (direction, bytes) in [
                    ("client_to_upstream", p.a_to_b_by(method)),
                    ("upstream_to_client", p.b_to_a_by(method)),
                ] {
                    // Like a labelled counter made on first use: a series
                    // appears once it has counted something.
                    if bytes == 0 {
                        continue;
                    }
                    let labels = [
                        ("listener", name.as_str()),
                        ("direction", direction),
                        ("method", method.as_str()),
                    ];
                    let c = ConstCounter::new(bytes);
                    c.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
