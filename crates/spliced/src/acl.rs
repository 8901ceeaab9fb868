//! Access control per listener: [`Acl`] (`allow`/`deny` networks, deny
//! wins, no allow list means everyone; with `accept_proxy`, the peers
//! whose PROXY headers are believed, `accept_proxy_from`) and [`Sources`]
//! (`max_conns_per_source`), all checked before any upstream is dialled.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use crate::address::Peer;

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or
/// /128 network).
///
/// # Errors
/// A message naming the text, for a flag or config error.
pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            format!("`{s}` is not a network or address (e.g. 10.0.0.0/8, 2001:db8::/32, ::1)")
        })
}

/// An entry of `accept_proxy_from`: a network, or `unix` (any peer of a
/// Unix listener: the socket file's mode and owner say who can connect).
/// A CIDR never matches a Unix peer: a Unix listener with `accept_proxy`
/// needs the explicit `unix` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxySource {
    /// Peers in this network.
    Net(IpNet),
    /// Peers on a Unix socket.
    Unix,
}

impl std::fmt::Display for ProxySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxySource::Net(n) => n.fmt(f),
            ProxySource::Unix => f.write_str("unix"),
        }
    }
}

/// Parses an `accept_proxy_from` entry: `unix`, or as [`parse_net`].
///
/// # Errors
/// A message naming the text, for a flag or config error.
pub(crate) fn parse_proxy_source(s: &str) -> Result<ProxySource, String> {
    if s.trim() == "unix" {
        return Ok(ProxySource::Unix);
    }
    parse_net(s)
        .map(ProxySource::Net)
        .map_err(|e| format!("{e}, or `unix` for the peers of a unix: listener"))
}

/// Who may connect.
#[derive(Debug, Clone, Default)]
pub(crate) struct Acl {
    /// Empty: everyone not denied.
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    /// The peers (balancers) whose PROXY headers count, with
    /// `accept_proxy`. Empty: nobody (configuration refuses
    /// `accept_proxy` without it, so empty means `accept_proxy` is off).
    proxy_from: Vec<IpNet>,
    /// `accept_proxy_from` has `unix`: a Unix peer may send a header.
    proxy_from_unix: bool,
}

impl Acl {
    /// The lists of one listener.
    pub(crate) fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, proxy_from: &[ProxySource]) -> Acl {
        Acl {
            allow,
            deny,
            proxy_from: proxy_from
                .iter()
                .filter_map(|s| match s {
                    ProxySource::Net(n) => Some(*n),
                    ProxySource::Unix => None,
                })
                .collect(),
            proxy_from_unix: proxy_from.contains(&ProxySource::Unix),
        }
    }

    /// [`Acl::trusts_proxy`] for any peer: a Unix peer is trusted only
    /// with `unix` in `accept_proxy_from`.
    pub(crate) fn trusts_proxy_peer(&self, peer: Peer) -> bool {
        match peer.ip() {
            Some(ip) => self.trusts_proxy(ip),
            None => self.proxy_from_unix,
        }
    }

    /// [`Acl::permits`] for any client: a Unix client (no IP address)
    /// matches no network, so it is refused by any `allow` or `deny`
    /// list: a rule set meant to restrict clients never lets it through.
    /// (A Unix listener refuses these lists at load; this holds for the
    /// Unix clients a PROXY header names on any listener.)
    pub(crate) fn permits_peer(&self, peer: Peer) -> bool {
        match peer.ip() {
            Some(ip) => self.permits(ip),
            None => self.allow.is_empty() && self.deny.is_empty(),
        }
    }

    /// Whether the peer at `ip` (the socket's own peer, never an address
    /// from a header) may send a PROXY header: it is in one of the
    /// `accept_proxy_from` networks. An IPv4-mapped IPv6 address is
    /// checked as IPv4.
    pub(crate) fn trusts_proxy(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.proxy_from.iter().any(|n| n.contains(&ip))
    }

    /// Whether `ip` may connect: not in a denied network, and in an
    /// allowed one if any is listed. An IPv4-mapped IPv6 address (a
    /// dual-stack listener's IPv4 client) is checked as IPv4.
    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// Open connections per client address, checked against
/// `max_conns_per_source`. One per listener, kept across reloads (the
/// bound comes from the settings current at each accept), so connections
/// opened before a reload still count after it.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    /// Addresses with at least one connection open; an entry is removed
    /// when its count drops to zero, so the map holds only live clients.
    /// `None`: the Unix clients (one source together).
    open: Mutex<HashMap<Option<IpAddr>, usize>>,
}

/// One counted connection; uncounted on drop.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    sources: Arc<Sources>,
    ip: Option<IpAddr>,
}

impl Sources {
    /// Counts one more connection from `ip`, or `None` when `ip` has
    /// `max` open already (`None`: no bound, always counted). An
    /// IPv4-mapped IPv6 address counts as its IPv4 address (a PROXY header
    /// may carry either form for the same client).
    /// A Unix client (`ip` is `None`) counts with every other Unix client
    /// of the listener, as one source.
    pub(crate) fn enter(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        max: Option<usize>,
    ) -> Option<SourceSlot> {
        let ip = ip.map(|ip| ip.to_canonical());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if max.is_some_and(|max| *n >= max) {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            sources: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_mapped_address_counts_as_its_ipv4_address() {
        let sources = Arc::new(Sources::default());
        let a = sources.enter(Some(ip("192.0.2.7")), Some(2)).unwrap();
        let b = sources
            .enter(Some(ip("::ffff:192.0.2.7")), Some(2))
            .unwrap();
        assert!(sources.enter(Some(ip("192.0.2.7")), Some(2)).is_none());
        assert!(sources
            .enter(Some(ip("::ffff:192.0.2.7")), Some(2))
            .is_none());
        assert!(sources.enter(Some(ip("192.0.2.8")), Some(2)).is_some());
        drop((a, b));
        assert!(sources.open.lock().unwrap().is_empty(), "uncounted on drop");
    }

    #[test]
    fn deny_wins_and_no_allow_list_allows_all() {
        let net = |s| parse_net(s).unwrap();
        assert!(Acl::default().permits(ip("192.0.2.1")));
        let acl = Acl::new(
            vec![net("127.0.0.0/8"), net("::1")],
            vec![net("127.0.0.3"), net("10.0.0.0/8")],
            &[],
        );
        assert!(acl.permits(ip("127.0.0.2")));
        assert!(!acl.permits(ip("127.0.0.3")));
        assert!(acl.permits(ip("::1")));
        assert!(!acl.permits(ip("::2")));
        assert!(!acl.permits(ip("192.0.2.1")));
        assert!(
            !acl.permits(ip("::ffff:127.0.0.3")),
            "mapped is checked as v4"
        );
        assert!(acl.permits(ip("::ffff:127.0.0.2")));
        let deny_only = Acl::new(vec![], vec![net("10.1.0.0/16")], &[]);
        assert!(deny_only.permits(ip("10.2.0.1")));
        assert!(!deny_only.permits(ip("10.1.2.3")));
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("localhost").is_err());
    }

    #[test]
    fn only_listed_peers_may_send_a_proxy_header() {
        let net = |s| parse_net(s).unwrap();
        assert!(
            !Acl::default().trusts_proxy(ip("127.0.0.1")),
            "none listed: nobody"
        );
        // The header's address may be allowed, and the peer denied: trust
        // is about the peer alone.
        let acl = Acl::new(
            vec![net("10.0.0.0/8")],
            vec![net("127.0.0.0/8")],
            &[
                ProxySource::Net(net("192.0.2.0/24")),
                ProxySource::Net(net("2001:db8::/32")),
                ProxySource::Net(net("127.0.0.1")),
            ],
        );
        assert!(acl.trusts_proxy(ip("192.0.2.9")));
        assert!(
            acl.trusts_proxy(ip("::ffff:192.0.2.9")),
            "mapped is checked as v4"
        );
        assert!(acl.trusts_proxy(ip("2001:db8::7")));
        assert!(acl.trusts_proxy(ip("127.0.0.1")));
        assert!(!acl.trusts_proxy(ip("127.0.0.2")));
        assert!(!acl.trusts_proxy(ip("198.51.100.1")));
        assert!(
            !acl.trusts_proxy(ip("10.1.1.1")),
            "allow does not make a proxy"
        );
    }

    #[test]
    fn sources_count_and_forget() {
        let s = Arc::new(Sources::default());
        let two = Some(2);
        let a = s.enter(Some(ip("::1")), two).unwrap();
        let b = s.enter(Some(ip("::1")), two).unwrap();
        assert!(s.enter(Some(ip("::1")), two).is_none());
        let other = s.enter(Some(ip("127.0.0.1")), two).unwrap();
        drop(a);
        let c = s.enter(Some(ip("::1")), two).unwrap();
        // Unbounded, still counted: a bound set later sees it.
        let d = s.enter(Some(ip("::1")), None).unwrap();
        assert!(s.enter(Some(ip("::1")), Some(3)).is_none());
        drop((b, c, d, other));
        assert!(s.open.lock().unwrap().is_empty());
    }

    /// A Unix peer has no address: no network matches it, so any
    /// allow/deny list refuses it, and only an explicit `unix` entry
    /// trusts its PROXY headers. All Unix clients are one source.
    #[test]
    fn unix_peers_match_no_network() {
        let net = |s| parse_net(s).unwrap();
        assert!(Acl::default().permits_peer(Peer::Unix), "no rule: served");
        let allow = Acl::new(vec![net("0.0.0.0/0"), net("::/0")], vec![], &[]);
        assert!(!allow.permits_peer(Peer::Unix));
        let deny = Acl::new(vec![], vec![net("10.0.0.0/8")], &[]);
        assert!(!deny.permits_peer(Peer::Unix));
        assert!(deny.permits_peer(Peer::Ip("192.0.2.1:1".parse().unwrap())));
        let any_net = Acl::new(vec![], vec![], &[ProxySource::Net(net("0.0.0.0/0"))]);
        assert!(!any_net.trusts_proxy_peer(Peer::Unix));
        let unix = Acl::new(vec![], vec![], &[parse_proxy_source("unix").unwrap()]);
        assert!(unix.trusts_proxy_peer(Peer::Unix));
        assert!(!unix.trusts_proxy_peer(Peer::Ip("127.0.0.1:1".parse().unwrap())));
        let e = parse_proxy_source("local").unwrap_err();
        assert!(e.contains("`unix`"), "{e}");
        let sources = Arc::new(Sources::default());
        let a = sources.enter(None, Some(1)).unwrap();
        assert!(sources.enter(None, Some(1)).is_none(), "one source");
        assert!(sources.enter(Some(ip("127.0.0.1")), Some(1)).is_some());
        drop(a);
        assert!(sources.enter(None, Some(1)).is_some());
    }
}
