//! `spliced_upstream_healthy`: per listener and upstream, 1 while the
//! upstream is in turn, 0 while it backs off after failed connects (see
//! [`crate::balance`]), read from the balancers at each scrape.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::listeners::PerListener;
use crate::balance::Balancer;

/// The listeners' balancers.
#[derive(Debug, Clone, Default)]
pub(super) struct UpstreamCollector {
    balancers: PerListener<Balancer>,
}

impl UpstreamCollector {
    /// Reports the upstreams of `balancer` as listener `name`'s (instead
    /// of its previous balancer's, after a reload).
    pub(super) fn set(&self, name: &str, balancer: &Arc<Balancer>) {
        self.balancers.set(name, balancer);
    }

    /// Stops reporting the listeners not in `names`.
    pub(super) fn retain(&self, names: &[&str]) {
        self.balancers.retain(names);
    }
}

impl Collector for UpstreamCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let balancers = self.balancers.snapshot();
        let mut family = encoder.encode_descriptor(
            "spliced_upstream_healthy",
            "1 while the upstream is tried in turn, 0 while it goes last after failed connects",
            None,
            MetricType::Gauge,
        )?;
        for (name, balancer) in &balancers {
            for (addr, healthy) in balancer.health() {
                let labels = [("listener", name.as_str()), ("upstream", addr)];
                let g = ConstGauge::new(i64::from(healthy));
                g.encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
