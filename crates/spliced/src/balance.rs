//! [`Balancer`]: which upstream a new client goes to, and in which order the
//! others are tried when a connect fails.
//!
//! Round-robin hands out upstreams in turn. Least-conn picks the upstream
//! with the fewest open connections, counting connects in progress too (so
//! a burst spreads out instead of piling onto the one that was idle), and
//! breaks ties in turn. Either way a client tries each upstream at most
//! once.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crate::config::Balance;

/// One upstream group and its policy.
#[derive(Debug)]
pub(crate) struct Balancer {
    policy: Balance,
    upstreams: Vec<Upstream>,
    /// Where the next plan starts (round-robin order and tie-breaks).
    next: AtomicUsize,
}

/// An upstream address and its open connections.
#[derive(Debug)]
struct Upstream {
    addr: String,
    /// Connections to it that are open or connecting; only [`Lease`]s
    /// change it.
    active: AtomicUsize,
}

/// One connection counted against an upstream; released on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    balancer: Arc<Balancer>,
    index: usize,
}

impl Balancer {
    /// A balancer over `addrs` (not empty).
    ///
    /// # Panics
    /// If `addrs` is empty (the config's validation rules that out).
    pub(crate) fn new(policy: Balance, addrs: Vec<String>) -> Arc<Balancer> {
        assert!(!addrs.is_empty(), "a balancer needs at least one upstream");
        Arc::new(Balancer {
            policy,
            upstreams: addrs
                .into_iter()
                .map(|addr| Upstream {
                    addr,
                    active: AtomicUsize::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// The upstreams to try for one client, best first: `attempts`
    /// distinct indexes at most.
    pub(crate) fn plan(&self, attempts: usize) -> Vec<usize> {
        let n = self.upstreams.len();
        let start = self.next.fetch_add(1, Relaxed) % n;
        let mut order: Vec<usize> = (0..n).map(|k| (start + k) % n).collect();
        if self.policy == Balance::LeastConn {
            // Stable: equal loads keep their round-robin order.
            order.sort_by_key(|&i| self.upstreams[i].active.load(Relaxed));
        }
        order.truncate(attempts.max(1));
        order
    }

    /// The address of upstream `index`.
    pub(crate) fn addr(&self, index: usize) -> &str {
        &self.upstreams[index].addr
    }

    /// Counts one connection against upstream `index` until the lease drops.
    pub(crate) fn lease(self: &Arc<Self>, index: usize) -> Lease {
        self.upstreams[index].active.fetch_add(1, Relaxed);
        Lease {
            balancer: Arc::clone(self),
            index,
        }
    }

    /// Open connections of upstream `index`.
    #[cfg(test)]
    fn active(&self, index: usize) -> usize {
        self.upstreams[index].active.load(Relaxed)
    }
}

impl Lease {
    /// The upstream's address.
    pub(crate) fn addr(&self) -> &str {
        self.balancer.addr(self.index)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.balancer.upstreams[self.index]
            .active
            .fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    #[test]
    fn round_robin_takes_turns_and_tries_the_next() {
        let b = Balancer::new(Balance::RoundRobin, addrs(3));
        assert_eq!(b.plan(3), vec![0, 1, 2]);
        assert_eq!(b.plan(3), vec![1, 2, 0]);
        assert_eq!(b.plan(2), vec![2, 0]);
        assert_eq!(b.plan(1), vec![0]);
    }

    #[test]
    fn least_conn_prefers_the_emptiest() {
        let b = Balancer::new(Balance::LeastConn, addrs(3));
        let l0 = b.lease(0);
        let _l0b = b.lease(0);
        let _l1 = b.lease(1);
        assert_eq!(b.plan(3), vec![2, 1, 0]);
        drop(l0);
        assert_eq!(b.active(0), 1);
        let _l2 = b.lease(2);
        let _l2b = b.lease(2);
        // 0 and 1 tie at one connection each: in turn from the rotating start.
        assert_eq!(b.plan(3), vec![1, 0, 2]);
        assert_eq!(b.plan(3), vec![0, 1, 2]);
    }

    #[test]
    #[should_panic(expected = "at least one upstream")]
    fn no_upstream_panics() {
        Balancer::new(Balance::RoundRobin, Vec::new());
    }
}
