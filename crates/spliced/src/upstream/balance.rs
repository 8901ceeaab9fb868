//! [`Balancer`]: which upstream a new client goes to, and in which order the
//! others are tried when a connect fails.
//!
//! Round-robin hands out upstreams in turn, each as many turns as its
//! weight. Least-conn picks the upstream with the fewest open connections
//! per weight, counting connects in progress too (so a burst spreads out
//! instead of piling onto the one that was idle), and breaks ties by
//! weighted turns. Source hashes the client's address with each
//! upstream's (rendezvous hashing, weighted): a client keeps its upstream
//! while that one is usable, and an upstream taken away moves only its
//! own clients. Either way a client tries each upstream at most once.
//!
//! Usable: enabled (not drained or disabled at run time), not held down by
//! the active health checks, a weight above 0, and below its `max_conns`.
//! Backups go first only while no usable primary is healthy (not held
//! down, not backing off); else they come after the healthy primaries, a
//! fallback for the client whose primaries all fail to connect.
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

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::state::{Admin, State};
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
    /// By the client's address (rendezvous hashing): a client keeps its
    /// upstream while that one is usable.
    Source,
}

impl Balance {
    /// The name used in the config file and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastConn => "least-conn",
            Balance::Source => "source",
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
    /// Each upstream as this config gives it (weight, backup, max_conns),
    /// by the same index.
    specs: Vec<Upstream>,
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
                .find(|u| u.addr().same_addr(addr))
                .map(Arc::clone)
        };
        Arc::new(Balancer {
            policy,
            upstreams: addrs
                .iter()
                .map(|addr| kept(addr).unwrap_or_else(|| Arc::new(State::new(addr.clone()))))
                .collect(),
            specs: addrs,
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
            .filter(|(_, u)| u.addr().needs_lookup())
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

    /// The upstreams to try for one client (from `client`), best first:
    /// `attempts` distinct indexes at most, usable ones only. Upstreams
    /// backing off after failures come last.
    pub(crate) fn plan(&self, attempts: usize, client: IpAddr) -> Vec<usize> {
        self.plan_at(attempts, client, self.now_ms())
    }

    /// Upstream `index`'s weight now: the run-time one, else the file's.
    pub(super) fn weight(&self, index: usize) -> u32 {
        let u = &self.upstreams[index];
        u.weight_override().unwrap_or(self.specs[index].weight())
    }

    /// Whether upstream `index` may take a new client now (backing off or
    /// not).
    fn usable(&self, index: usize) -> bool {
        let u = &self.upstreams[index];
        u.admin() == Admin::Enabled
            && !u.checked_down()
            && self.weight(index) > 0
            && self.specs[index]
                .max_conns()
                .is_none_or(|max| u.active() < max)
    }

    fn plan_at(&self, attempts: usize, client: IpAddr, now_ms: u64) -> Vec<usize> {
        let n = self.upstreams.len();
        let turn = self.next.fetch_add(1, Relaxed);
        let fresh = |i: &usize| !self.upstreams[*i].down_at(now_ms);
        let mut order: Vec<usize> = (0..n).filter(|&i| self.usable(i)).collect();
        let primary_up = order
            .iter()
            .any(|i| fresh(i) && !self.specs[*i].is_backup());
        // Healthy first; among them, the backups after the primaries (a
        // fallback for this client when the primaries fail now), or first
        // when no primary is healthy. The policy orders each tier.
        let tier = |i: &usize| (!fresh(i), self.specs[*i].is_backup() == primary_up);
        order.sort_by_key(tier);
        for group in order.chunk_by_mut(|a, b| tier(a) == tier(b)) {
            self.policy_order(group, turn, client);
        }
        order.truncate(attempts.max(1));
        order
    }

    /// Orders `group` (upstreams of one tier) by the policy for a client
    /// from `client` at round `turn`.
    fn policy_order(&self, group: &mut [usize], turn: usize, client: IpAddr) {
        let weight = |i: usize| u64::from(self.weight(i));
        match self.policy {
            Balance::RoundRobin => weighted_turn(group, weight, turn),
            Balance::LeastConn => {
                weighted_turn(group, weight, turn);
                let active = |i: usize| self.upstreams[i].active() as u64;
                // Fewest connections per weight: a/wa < b/wb (stable: ties
                // keep the weighted turn).
                group.sort_by(|&a, &b| (active(a) * weight(b)).cmp(&(active(b) * weight(a))));
            }
            Balance::Source => {
                let mut scored: Vec<(f64, usize)> = group
                    .iter()
                    .map(|&i| (rendezvous(client, self.specs[i].as_str(), weight(i)), i))
                    .collect();
                // Highest first.
                scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal));
                for (slot, (_, i)) in group.iter_mut().zip(scored) {
                    *slot = i;
                }
            }
        }
    }

    /// Forgets what the active checks found (they are off in a config
    /// that replaced theirs): no upstream stays held down.
    pub(crate) fn clear_checks(&self) {
        for u in &self.upstreams {
            u.clear_checked();
        }
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

    /// Whether upstream `index` is healthy now: not held down by the
    /// active checks, not backing off after failed connects.
    pub(crate) fn healthy(&self, index: usize) -> bool {
        let u = &self.upstreams[index];
        !u.checked_down() && !u.down_at(self.now_ms())
    }

    /// Each upstream's address and whether it is healthy now, for the
    /// metrics.
    pub(crate) fn health(&self) -> Vec<(&str, bool)> {
        (0..self.upstreams.len())
            .map(|i| (self.specs[i].as_str(), self.healthy(i)))
            .collect()
    }

    /// Each upstream's address and its checks passed and failed.
    pub(crate) fn check_counts(&self) -> Vec<(&str, (u64, u64))> {
        self.members()
            .map(|(u, spec)| (spec.as_str(), u.check_counts()))
            .collect()
    }

    /// The address of upstream `index`.
    pub(crate) fn addr(&self, index: usize) -> &str {
        self.upstreams[index].addr().as_str()
    }

    /// Counts one connection against upstream `index` until the lease
    /// drops; `None` when it is full (`max_conns` open already).
    pub(crate) fn try_lease(self: &Arc<Self>, index: usize) -> Option<Lease> {
        if !self.upstreams[index].try_enter(self.specs[index].max_conns()) {
            return None;
        }
        Some(Lease {
            balancer: Arc::clone(self),
            index,
        })
    }

    /// The upstreams' states and their specs from the file, by index.
    pub(super) fn members(&self) -> impl Iterator<Item = (&Arc<State>, &Upstream)> {
        self.upstreams.iter().zip(&self.specs)
    }

    /// The upstreams' states, for the checks ([`super::health`]).
    pub(super) fn states(&self) -> &[Arc<State>] {
        &self.upstreams
    }

    /// Counts one connection against upstream `index` (no cap).
    #[cfg(test)]
    fn lease(self: &Arc<Self>, index: usize) -> Lease {
        self.upstreams[index].try_enter(None);
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

/// Turns `order` so that it starts at the upstream whose turn `turn` is,
/// each upstream having as many turns in a row as its weight (every
/// weight in `order` above 0).
fn weighted_turn(order: &mut [usize], weight: impl Fn(usize) -> u64, turn: usize) {
    let total: u64 = order.iter().map(|&i| weight(i)).sum();
    if total == 0 {
        return;
    }
    let mut pos = turn as u64 % total;
    let mut first = 0;
    for (k, &i) in order.iter().enumerate() {
        let w = weight(i);
        if pos < w {
            first = k;
            break;
        }
        pos -= w;
    }
    order.rotate_left(first);
}

/// The weighted rendezvous score of upstream `addr` for `client`: the
/// highest score wins. `weight / -ln(u)`, with `u` in (0, 1) from a hash
/// of both, gives each upstream a share of clients in proportion to its
/// weight, and removing one moves only the clients it had.
fn rendezvous(client: IpAddr, addr: &str, weight: u64) -> f64 {
    // SipHash with fixed keys: the same for every process and restart.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    client.hash(&mut h);
    addr.hash(&mut h);
    let bits = h.finish() >> 11; // 53 bits
    let u = (bits as f64 + 0.5) / (1u64 << 53) as f64;
    weight as f64 / -u.ln()
}

impl Lease {
    /// The upstream's address, as configured.
    pub(crate) fn addr(&self) -> &str {
        self.balancer.addr(self.index)
    }

    /// The socket's path, for a `unix:/path` upstream.
    pub(crate) fn unix_path(&self) -> Option<&std::path::Path> {
        self.balancer.specs[self.index].unix_path()
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

    /// A client address for the plans of round-robin and least-conn.
    const C: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

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
        assert_eq!(b.plan(3, C), vec![0, 1, 2]);
        assert_eq!(b.plan(3, C), vec![1, 2, 0]);
        assert_eq!(b.plan(2, C), vec![2, 0]);
        assert_eq!(b.plan(1, C), vec![0]);
    }

    #[test]
    fn least_conn_prefers_the_emptiest() {
        let b = Balancer::new(Balance::LeastConn, addrs(3));
        let l0 = b.lease(0);
        let _l0b = b.lease(0);
        let _l1 = b.lease(1);
        assert_eq!(b.plan(3, C), vec![2, 1, 0]);
        drop(l0);
        assert_eq!(b.active(0), 1);
        let _l2 = b.lease(2);
        let _l2b = b.lease(2);
        // 0 and 1 tie at one connection each: in turn from the rotating start.
        assert_eq!(b.plan(3, C), vec![1, 0, 2]);
        assert_eq!(b.plan(3, C), vec![0, 1, 2]);
    }

    #[test]
    fn a_failing_upstream_goes_last_for_a_growing_while() {
        let b = Balancer::new(Balance::RoundRobin, addrs(3));
        assert_eq!(b.failed_at(0, 1000), Duration::from_secs(1));
        // Last in every plan until 2000 ms, but still in it; the others
        // take turns.
        assert_eq!(b.plan_at(3, C, 1500), vec![1, 2, 0]);
        assert_eq!(b.plan_at(3, C, 1500), vec![2, 1, 0]);
        assert_eq!(b.plan_at(3, C, 1500), vec![1, 2, 0]);
        // With fewer attempts than upstreams, it drops out of the plan.
        assert_eq!(b.plan_at(2, C, 1999), vec![2, 1]);
        // Backoff over: back in turn.
        assert_eq!(b.plan_at(3, C, 2000), vec![1, 2, 0]);
        assert_eq!(b.plan_at(3, C, 2000), vec![2, 0, 1]);
        // Failures in a row double the time, up to the cap.
        assert_eq!(b.failed_at(0, 2000), Duration::from_secs(2));
        assert_eq!(b.failed_at(0, 2000), Duration::from_secs(4));
        for _ in 0..10 {
            b.failed_at(0, 2000);
        }
        assert_eq!(b.failed_at(0, 2000), MAX_BACKOFF);
        assert_eq!(b.plan_at(3, C, 2000 + 29_999), vec![1, 2, 0]);
        // A success makes it healthy at once; a second one changes nothing.
        assert!(b.succeeded(0));
        assert!(!b.succeeded(0));
        assert_eq!(b.plan_at(3, C, 2001), vec![1, 2, 0]);
        assert_eq!(b.plan_at(3, C, 2001), vec![2, 0, 1], "0 is in turn again");
        assert_eq!(b.failed_at(0, 3000), FIRST_BACKOFF);
        assert_eq!(b.health()[1], ("10.0.0.1:80", true));
    }

    #[test]
    fn all_down_keeps_the_usual_order() {
        let b = Balancer::new(Balance::LeastConn, addrs(2));
        b.failed_at(0, 0);
        b.failed_at(1, 0);
        let _l = b.lease(0);
        assert_eq!(b.plan_at(2, C, 10), vec![1, 0]);
        assert_eq!(b.plan_at(2, C, 10), vec![1, 0]);
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
        assert_eq!(new.plan(2, C), vec![0, 1]);
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

    /// How many of `rounds` plans start with each upstream.
    fn shares(b: &Balancer, rounds: usize) -> Vec<usize> {
        let mut got = vec![0; b.upstreams.len()];
        for _ in 0..rounds {
            got[b.plan(1, C)[0]] += 1;
        }
        got
    }

    #[test]
    fn weights_set_the_shares_of_every_method() {
        let b = Balancer::new(Balance::RoundRobin, ups(&["a:1 weight=1", "b:1 weight=3"]));
        assert_eq!(shares(&b, 400), vec![100, 300]);
        let b = Balancer::new(Balance::LeastConn, ups(&["a:1 weight=1", "b:1 weight=3"]));
        assert_eq!(shares(&b, 400), vec![100, 300]);
        // Least-conn counts connections per weight: 2 on b (weight 3)
        // beats 1 on a (weight 1).
        let _a = b.lease(0);
        let (_b1, _b2) = (b.lease(1), b.lease(1));
        assert_eq!(b.plan(2, C), vec![1, 0]);
        let b = Balancer::new(Balance::RoundRobin, ups(&["a:1 weight=0", "b:1"]));
        assert_eq!(b.plan(2, C), vec![1], "weight 0 gets no client");
        // Source: 4000 clients spread by weight (within a few percent).
        let b = Balancer::new(Balance::Source, ups(&["a:1 weight=1", "b:1 weight=3"]));
        let on_b = (0..4000u32)
            .filter(|k| b.plan(1, IpAddr::from(k.to_be_bytes()))[0] == 1)
            .count();
        assert!(
            (2850..3150).contains(&on_b),
            "{on_b} of 4000 on the weight 3"
        );
    }

    #[test]
    fn backups_only_while_no_primary_is_healthy() {
        let b = Balancer::new(Balance::RoundRobin, ups(&["a:1", "k:1 backup", "b:1"]));
        for _ in 0..4 {
            let p = b.plan_at(3, C, 0);
            assert_eq!(p[2], 1, "the backup only after both primaries: {p:?}");
        }
        b.failed_at(0, 0);
        assert_eq!(b.plan_at(3, C, 10)[0], 2, "one primary is still healthy");
        b.failed_at(2, 0);
        let p = b.plan_at(3, C, 10);
        assert_eq!(p[0], 1, "no healthy primary: the backup first, {p:?}");
        b.upstreams[0].checked(&Err("x".into()), true);
        b.upstreams[2].set_admin(Admin::Drain);
        assert_eq!(b.plan_at(3, C, 10), vec![1]);
    }

    #[test]
    fn a_full_upstream_is_skipped() {
        let b = Balancer::new(Balance::RoundRobin, ups(&["a:1 max_conns=1", "b:1"]));
        let held = b.try_lease(0).unwrap();
        assert!(b.try_lease(0).is_none());
        for _ in 0..3 {
            assert_eq!(b.plan(2, C), vec![1]);
        }
        drop(held);
        assert_eq!(b.plan(2, C).len(), 2);
    }

    #[test]
    fn drain_disable_and_weight_at_run_time() {
        let b = Balancer::new(Balance::RoundRobin, addrs(3));
        b.upstreams[1].set_admin(Admin::Drain);
        b.upstreams[2].set_admin(Admin::Disabled);
        assert_eq!(b.plan(3, C), vec![0]);
        b.upstreams[1].set_admin(Admin::Enabled);
        b.upstreams[2].set_admin(Admin::Enabled);
        b.upstreams[0].set_weight(0);
        assert!(!b.plan(3, C).contains(&0));
        // Kept by a reload, whatever the file now says.
        let r = Balancer::renew(Balance::RoundRobin, addrs(3), Some(&b));
        assert_eq!(r.weight(0), 0);
        assert_eq!(r.weight(1), 1);
    }

    #[test]
    fn source_keeps_a_client_and_moves_only_the_clients_of_a_removed_one() {
        let b = Balancer::new(Balance::Source, addrs(4));
        let clients: Vec<IpAddr> = (1..=200u8).map(|k| IpAddr::from([127, 0, 1, k])).collect();
        let before: Vec<usize> = clients.iter().map(|&c| b.plan(1, c)[0]).collect();
        for (c, &u) in clients.iter().zip(&before) {
            assert_eq!(b.plan(4, *c)[0], u, "the same upstream again");
        }
        for u in 0..4 {
            let n = before.iter().filter(|&&x| x == u).count();
            assert!(n > 20, "upstream {u} has {n} of 200 clients");
        }
        b.upstreams[2].set_admin(Admin::Drain);
        for (c, &u) in clients.iter().zip(&before) {
            let now = b.plan(1, *c)[0];
            if u == 2 {
                assert_ne!(now, 2);
            } else {
                assert_eq!(now, u, "a client of another upstream moved");
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least one upstream")]
    fn no_upstream_panics() {
        Balancer::new(Balance::RoundRobin, Vec::new());
    }
}
