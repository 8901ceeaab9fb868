//! Upstreams: the address of one ([`Upstream`], parsed once from the
//! config), and a group of them with its balance policy and the state of
//! each member ([`Balancer`]: open connections, failures and backoff,
//! resolved addresses), which a reload carries over.
//!
//! The home of what is per upstream: balancing ([`mod@balance`]), its
//! run-time state ([`state`]: resolved addresses, open connections,
//! passive health), and later health checks and weights.

mod balance;
mod state;

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::str::FromStr;

pub(crate) use balance::{Balance, Balancer, Lease};

/// One upstream as configured: `host:port` or `[v6]:port` (port not 0),
/// an IP address parsed once, or a host name that [`crate::dns`] resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    /// As written: a metric label and a log field (DNS characters only).
    text: String,
    /// The address, when `text` is an IP address and a port.
    literal: Option<SocketAddr>,
}

impl Upstream {
    /// `host:port` as configured.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The socket address, when the host is an IP address (no lookup
    /// needed); `None` for a host name.
    pub(crate) fn literal(&self) -> Option<SocketAddr> {
        self.literal
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Upstream {
        Upstream {
            text: addr.to_string(),
            literal: Some(addr),
        }
    }
}

impl FromStr for Upstream {
    type Err = String;

    /// Parses `host:port` or `[v6]:port`, port not 0; a host name of DNS
    /// characters only (no quote, backslash, space or control character
    /// can reach a metric label or a log line).
    fn from_str(s: &str) -> Result<Upstream, String> {
        let bad = || format!("`{s}` is not a host:port address (e.g. 10.0.0.1:80 or backend:80)");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host_ok = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok()),
            None => !host.is_empty() && !host.contains([':', ']']),
        };
        if !host_ok || port == 0 {
            return Err(bad());
        }
        if !host.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(format!(
                "`{}`: a host name may hold only letters, digits, `.`, `-` and `_`",
                s.escape_debug()
            ));
        }
        Ok(Upstream {
            text: s.to_owned(),
            literal: s.parse().ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_syntax() {
        let ok = |s: &str| s.parse::<Upstream>().is_ok();
        assert!(ok("10.0.0.1:80"));
        assert!(ok("backend:80"));
        assert!(ok("[::1]:80"));
        assert!(!ok("::1:80"));
        assert!(!ok("backend"));
        assert!(!ok("backend:0"));
        assert!(!ok(":80"));
        assert!(!ok("[::1:80"));
        assert!(!ok("[backend]:80"));
        assert!(!ok("::1]:80"));
        assert!(!ok("back\"end:80"));
        assert!(!ok("back\\end:80"));
        assert!(!ok("back\nend:80"));
        assert!(!ok("back end:80"));
        assert!(ok("db_1.internal-x:80"));
    }

    #[test]
    fn ip_addresses_are_parsed_once() {
        let u: Upstream = "[::1]:81".parse().unwrap();
        assert_eq!(u.literal(), Some("[::1]:81".parse().unwrap()));
        assert_eq!(u.to_string(), "[::1]:81");
        let n: Upstream = "backend:80".parse().unwrap();
        assert_eq!((n.literal(), n.as_str()), (None, "backend:80"));
    }
}
