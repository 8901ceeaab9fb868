//! `spliced_upstream_healthy`: per listener, upstream group (`default`,
//! or an SNI route's pattern) and upstream, 1 while the upstream is in
//! turn, 0 while it backs off after failed connects (see
//! [`crate::upstream`]), read from the balancers at each scrape. An
//! upstream in several groups has one series per group (each group keeps
//! its own health); one listed twice in a group is reported once.

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::listeners::PerListener;
use crate::upstream::Balancer;

/// One listener's groups: (name, balancer).
pub(super) type Groups = Vec<(String, Arc<Balancer>)>;

/// The listeners' balancers.
#[derive(Debug, Clone, Default)]
pub(super) struct UpstreamCollector {
    groups: PerListener<Groups>,
}

impl UpstreamCollector {
    /// Reports the upstreams of `groups` as listener `name`'s (instead
    /// of its previous ones, after a reload).
    pub(super) fn set(&self, name: &str, groups: &Arc<Groups>) {
        self.groups.set(name, groups);
    }

    /// Stops reporting the listeners not in `names`.
    pub(super) fn retain(&self, names: &[&str]) {
        self.groups.retain(names);
    }
}

impl Collector for UpstreamCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let listeners = self.groups.snapshot();
        let mut family = encoder.encode_descriptor(
            "spliced_upstream_healthy",
            "1 while the upstream is tried in turn, 0 while it goes last after failed connects",
            None,
            MetricType::Gauge,
        )?;
        for (name, groups) in &listeners {
            let mut seen = HashSet::new();
            for (group, balancer) in groups.iter() {
                for (addr, healthy) in balancer.health() {
                    if !seen.insert((group.as_str(), addr)) {
                        continue;
                    }
                    let labels = [
                        ("listener", name.as_str()),
                        ("group", group.as_str()),
                        ("upstream", addr),
                    ];
                    let g = ConstGauge::new(i64::from(healthy));
                    g.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
