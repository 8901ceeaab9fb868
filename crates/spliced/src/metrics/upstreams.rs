//! `spliced_upstream_healthy`: per listener, upstream group (`default`,
//! or an SNI route's pattern) and upstream, 1 while the upstream is in
//! turn, 0 while it backs off after failed connects (see
//! [`crate::upstream`]), read from the balancers at each scrape. An
//! upstream in several groups has one series per group (each group keeps
//! its own health); one listed twice in a group is reported once.
//!
//! `spliced_upstream_up{listener,upstream}`: the same per listener and
//! address (an address in several groups: up while it is up in one), and
//! `spliced_upstream_checks_total{listener,upstream,result}` the active
//! health checks passed (`pass`) and failed (`fail`).

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
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

    /// Every listener's groups now.
    pub(super) fn snapshot(&self) -> Vec<(String, Arc<Groups>)> {
        self.groups.snapshot()
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
        Self::encode_up(&listeners, &mut encoder)?;
        Self::encode_checks(&listeners, &mut encoder)
    }
}

impl UpstreamCollector {
    /// `spliced_upstream_up`.
    fn encode_up(
        listeners: &[(String, Arc<Groups>)],
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "spliced_upstream_up",
            "1 while the upstream may get new clients by its health (active checks and failed connects), else 0",
            None,
            MetricType::Gauge,
        )?;
        for (name, groups) in listeners {
            let mut up: Vec<(&str, bool)> = Vec::new();
            for (_, balancer) in groups.iter() {
                for (addr, healthy) in balancer.health() {
                    match up.iter_mut().find(|(a, _)| *a == addr) {
                        Some((_, h)) => *h |= healthy,
                        None => up.push((addr, healthy)),
                    }
                }
            }
            for (addr, healthy) in up {
                let labels = [("listener", name.as_str()), ("upstream", addr)];
                ConstGauge::new(i64::from(healthy)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    /// `spliced_upstream_checks_total`.
    fn encode_checks(
        listeners: &[(String, Arc<Groups>)],
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "spliced_upstream_checks",
            "Active health checks of the upstream, by result",
            None,
            MetricType::Counter,
        )?;
        for (name, groups) in listeners {
            let mut counts: Vec<(&str, (u64, u64))> = Vec::new();
            for (_, balancer) in groups.iter() {
                for (addr, (pass, fail)) in balancer.check_counts() {
                    match counts.iter_mut().find(|(a, _)| *a == addr) {
                        Some((_, c)) => *c = (c.0 + pass, c.1 + fail),
                        None => counts.push((addr, (pass, fail))),
                    }
                }
            }
            for (addr, (pass, fail)) in counts {
                for (result, n) in [("pass", pass), ("fail", fail)] {
                    let labels = [
                        ("listener", name.as_str()),
                        ("upstream", addr),
                        ("result", result),
                    ];
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
