//! [`Balancer`]: which upstream a new client goes to, and in which order the
//! others are tried when a connect fails.
//!
//! Round-robin hands out upstreams in turn. Least-conn picks the upstream
//! with the fewest open connections, counting connects in progress too (so
//! a burst spreads out instead of piling onto the one that was idle), and
//! breaks ties in turn. Either way a client tries each upstream at most
//! once.
//!
//! Addresses: an upstream given as an IP address is parsed once; one given
//! by host name is resolved by [`crate::dns`] (at load, then again in the
//! background every `dns_ttl`), so no connect waits for `getaddrinfo`.
//!
//! Passive health ([`super::state`]): an upstream whose connect fails is
//! put last in every plan for a while, so clients stop paying a refused
//! or silent connect before reaching a live upstream. It is never skipped: it is still tried
//! when the upstreams before it fail too (so when every upstream is down,
//! they are all tried, and a recovered one is found), and the first
//! connect that succeeds makes it healthy again.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::state::State;
use super::Upstream;

/// How an upstream is chosen for a new client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Balance {
    /// Each upstream in turn.
    #[default]
    RoundRobin,
    /// The upstream with the fewest open connections (ties in turn).
    LeastConn,
}

impl Balance {
    /// The name used in the config file and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastConn => "least-conn",
        }
    }
}

/// One upstream group and its policy.
#[derive(Debug)]
pub(crate) struct Balancer {
    policy: Balance,
    /// Shared with the balancer a reload replaced, for the addresses both
    /// have: open connections, health and backoff carry over.
    upstreams: Vec<Arc<State>>,
    /// Where the next plan starts (round-robin order and tie-breaks).
    next: AtomicUsize,
    /// The clock of `down_until`: milliseconds are counted from here.
    start: Instant,
    /// Set when a reload replaced this balancer (or removed its
    /// listener): its background resolver stops.
    retired: AtomicBool,
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
    #[cfg(test)]
    pub(crate) fn new(policy: Balance, addrs: Vec<Upstream>) -> Arc<Balancer> {
        Balancer::renew(policy, addrs, None)
    }

    /// A balancer over `addrs` (not empty) that takes over the state of
    /// `previous` (the one a reload replaces) for the addresses both have:
    /// their open connections (least-conn), failures and backoff.
    ///
    /// # Panics
    /// If `addrs` is empty (the config's validation rules that out).
    pub(crate) fn renew(
        policy: Balance,
        addrs: Vec<Upstream>,
        previous: Option<&Balancer>,
    ) -> Arc<Balancer> {
        assert!(!addrs.is_empty(), "a balancer needs at least one upstream");
        let kept = |addr: &Upstream| {
            previous?
                .upstreams
                .iter()
                .find(|u| u.addr() == addr)
                .map(Arc::clone)
        };
        Arc::new(Balancer {
            policy,
            upstreams: addrs
                .into_iter()
                .map(|addr| kept(&addr).unwrap_or_else(|| Arc::new(State::new(addr))))
                .collect(),
            next: AtomicUsize::new(0),
            // One clock with `previous`: `down_until` values carry over.
            start: previous.map_or_else(Instant::now, |p| p.start),
            retired: AtomicBool::new(false),
        })
    }

    /// The `(index, host:port)` of each upstream given by host name.
    pub(crate) fn names(&self) -> Vec<(usize, String)> {
        self.upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| u.addr().literal().is_none())
            .map(|(i, u)| (i, u.addr().to_string()))
            .collect()
    }

    /// Stores what upstream `index`'s name resolved to. A failure keeps
    /// the addresses of the last success (if any): a DNS outage does not
    /// take a known upstream away. Returns whether the addresses changed.
    pub(crate) fn set_resolved(&self, index: usize, r: Result<Vec<SocketAddr>, String>) -> bool {
        self.upstreams[index].set_resolved(r)
    }

    /// Stops the background resolver of this balancer.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Relaxed);
    }

    /// Whether [`retire`](Balancer::retire) was called.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Relaxed)
    }

    /// Milliseconds on the balancer's clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The upstreams to try for one client, best first: `attempts`
    /// distinct indexes at most. Upstreams backing off after failures come
    /// last.
    pub(crate) fn plan(&self, attempts: usize) -> Vec<usize> {
        self.plan_at(attempts, self.now_ms())
    }

    fn plan_at(&self, attempts: usize, now_ms: u64) -> Vec<usize> {
        let n = self.upstreams.len();
        let start = self.next.fetch_add(1, Relaxed) % n;
        let mut order: Vec<usize> = (0..n).map(|k| (start + k) % n).collect();
        // Stable sorts: equal keys keep their round-robin order.
        if self.policy == Balance::LeastConn {
            order.sort_by_key(|&i| self.upstreams[i].active());
        }
        order.sort_by_key(|&i| self.upstreams[i].down_at(now_ms));
        order.truncate(attempts.max(1));
        order
    }

    /// Records a failed connect to upstream `index`: it goes last in the
    /// plans for the returned time (doubling with each failure in a row).
    pub(crate) fn failed(&self, index: usize) -> Duration {
        self.failed_at(index, self.now_ms())
    }

    fn failed_at(&self, index: usize, now_ms: u64) -> Duration {
        self.upstreams[index].failed_at(now_ms)
    }

    /// Records a successful connect to upstream `index`: healthy again.
    /// Returns whether it was backing off.
    pub(crate) fn succeeded(&self, index: usize) -> bool {
        self.upstreams[index].succeeded()
    }

    /// Each upstream's address and whether it is healthy now (not backing
    /// off after failed connects), for the metrics.
    pub(crate) fn health(&self) -> Vec<(&str, bool)> {
        let now = self.now_ms();
        self.upstreams
            .iter()
            .map(|u| (u.addr().as_str(), !u.down_at(now)))
            .collect()
    }

    /// The address of upstream `index`.
    pub(crate) fn addr(&self, index: usize) -> &str {
        self.upstreams[index].addr().as_str()
    }

    /// Counts one connection against upstream `index` until the lease drops.
    pub(crate) fn lease(self: &Arc<Self>, index: usize) -> Lease {
        self.upstreams[index].enter();
        Lease {
            balancer: Arc::clone(self),
            index,
        }
    }

    /// Open connections of upstream `index`.
    #[cfg(test)]
    fn active(&self, index: usize) -> usize {
        self.upstreams[index].active()
    }
}

impl Lease {
    /// The upstream's address, as configured.
    pub(crate) fn addr(&self) -> &str {
        self.balancer.addr(self.index)
    }

    /// The socket addresses to connect to (resolved in the background).
    ///
    /// # Errors
    /// `NotFound` when the upstream's name has not resolved (yet), with
    /// the resolver's error.
    pub(crate) fn socket_addrs(&self) -> io::Result<Arc<[SocketAddr]>> {
        self.balancer.upstreams[self.index].socket_addrs()
    }

    /// Records a failed connect to this upstream (see
    /// [`Balancer::failed`]).
    pub(crate) fn failed(&self) -> Duration {
        self.balancer.failed(self.index)
    }

    /// Records a successful connect to this upstream (see
    /// [`Balancer::succeeded`]).
    pub(crate) fn succeeded(&self) -> bool {
        self.balancer.succeeded(self.index)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.balancer.upstreams[self.index].leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::state::{FIRST_BACKOFF, MAX_BACKOFF};

    fn addrs(n: usize) -> Vec<Upstream> {
        (0..n)
            .map(|i| format!("10.0.0.{i}:80").parse().unwrap())
            .collect()
    }

    fn ups(list: &[&str]) -> Vec<Upstream> {
        list.iter().map(|s| s.parse().unwrap()).collect()
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
    fn a_failing_upstream_goes_last_for_a_growing_while() {
        let b = Balancer::new(Balance::RoundRobin, addrs(3));
        assert_eq!(b.failed_at(0, 1000), Duration::from_secs(1));
        // Last in every plan until 2000 ms, but still in it.
        assert_eq!(b.plan_at(3, 1500), vec![1, 2, 0]);
        assert_eq!(b.plan_at(3, 1500), vec![1, 2, 0]);
        assert_eq!(b.plan_at(3, 1500), vec![2, 1, 0]);
        // With fewer attempts than upstreams, it drops out of the plan.
        assert_eq!(b.plan_at(2, 1999), vec![1, 2]);
        // Backoff over: back in turn.
        assert_eq!(b.plan_at(3, 2000), vec![1, 2, 0]);
        assert_eq!(b.plan_at(3, 2000), vec![2, 0, 1]);
        // Failures in a row double the time, up to the cap.
        assert_eq!(b.failed_at(0, 2000), Duration::from_secs(2));
        assert_eq!(b.failed_at(0, 2000), Duration::from_secs(4));
        for _ in 0..10 {
            b.failed_at(0, 2000);
        }
        assert_eq!(b.failed_at(0, 2000), MAX_BACKOFF);
        assert_eq!(b.plan_at(3, 2000 + 29_999), vec![1, 2, 0]);
        // A success makes it healthy at once; a second one changes nothing.
        assert!(b.succeeded(0));
        assert!(!b.succeeded(0));
        assert_eq!(b.plan_at(3, 2001), vec![1, 2, 0]);
        assert_eq!(b.plan_at(3, 2001), vec![2, 0, 1], "0 is in turn again");
        assert_eq!(b.failed_at(0, 3000), FIRST_BACKOFF);
        assert_eq!(b.health()[1], ("10.0.0.1:80", true));
    }

    #[test]
    fn all_down_keeps_the_usual_order() {
        let b = Balancer::new(Balance::LeastConn, addrs(2));
        b.failed_at(0, 0);
        b.failed_at(1, 0);
        let _l = b.lease(0);
        assert_eq!(b.plan_at(2, 10), vec![1, 0]);
        assert_eq!(b.plan_at(2, 10), vec![1, 0]);
    }

    #[test]
    fn a_renewed_balancer_keeps_the_state_of_the_upstreams_it_keeps() {
        let old = Balancer::new(Balance::LeastConn, addrs(2));
        let _open = old.lease(1);
        old.failed(0);
        let new = Balancer::renew(
            Balance::LeastConn,
            vec![addrs(3)[2].clone(), addrs(2)[1].clone()],
            Some(&old),
        );
        // 10.0.0.1 keeps its open connection; 10.0.0.2 is new and empty.
        assert_eq!((new.active(0), new.active(1)), (0, 1));
        assert_eq!(new.plan(2), vec![0, 1]);
        // 10.0.0.0 is gone; a lease of the old balancer still releases.
        drop(_open);
        assert_eq!(new.active(1), 0);
        let again = Balancer::renew(Balance::RoundRobin, addrs(1), Some(&old));
        assert_eq!(again.health(), vec![("10.0.0.0:80", false)]);
    }

    #[test]
    fn addresses_are_parsed_once_or_resolved() {
        let b = Balancer::new(
            Balance::RoundRobin,
            ups(&["10.0.0.1:80", "backend:80", "[::1]:81"]),
        );
        assert_eq!(b.names(), vec![(1, "backend:80".to_owned())]);
        let ip = b.lease(0).socket_addrs().unwrap();
        assert_eq!(&*ip, &["10.0.0.1:80".parse().unwrap()]);
        assert_eq!(
            &*b.lease(2).socket_addrs().unwrap(),
            &["[::1]:81".parse().unwrap()]
        );
        let e = b.lease(1).socket_addrs().unwrap_err();
        assert!(e.to_string().contains("not resolved yet"), "{e}");
        let a: SocketAddr = "10.9.9.9:80".parse().unwrap();
        assert!(b.set_resolved(1, Ok(vec![a])));
        assert!(!b.set_resolved(1, Ok(vec![a])));
        // A failure keeps the last good addresses.
        assert!(!b.set_resolved(1, Err("SERVFAIL".into())));
        assert_eq!(&*b.lease(1).socket_addrs().unwrap(), &[a]);
        // Kept across a renewal.
        let c = Balancer::renew(Balance::RoundRobin, ups(&["backend:80"]), Some(&b));
        assert_eq!(&*c.lease(0).socket_addrs().unwrap(), &[a]);
    }

    #[test]
    #[should_panic(expected = "at least one upstream")]
    fn no_upstream_panics() {
        Balancer::new(Balance::RoundRobin, Vec::new());
    }
}
