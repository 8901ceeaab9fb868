//! Upstreams: the address of one ([`Upstream`], parsed once from the
//! config), and a group of them with its balance policy and the state of
//! each member ([`Balancer`]: open connections, failures and backoff,
//! resolved addresses), which a reload carries over.
//!
//! The home of what is per upstream: the spec (`ADDR [weight=N] [backup]
//! [max_conns=N]`), balancing ([`mod@balance`]: weights, backups,
//! `source` hashing), its run-time state ([`state`]: resolved addresses,
//! open connections, passive and active health, what the operator set),
//! the active checks ([`health`]) and the admin socket's commands on
//! them ([`control`]).

mod balance;
mod control;
mod health;
mod state;

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub(crate) use balance::{Balance, Balancer, Lease};
pub(crate) use control::command;
pub(crate) use health::{decode_escapes, spawn_checks, HealthCheck};

/// Most `weight=N` an upstream may have.
pub(crate) const MAX_WEIGHT: u32 = 1000;

/// One upstream as configured: `ADDR [weight=N] [backup] [max_conns=N]`
/// (nginx style, space separated). `ADDR` is `host:port` or `[v6]:port`
/// (port not 0), an IP address parsed once, or a host name that
/// [`crate::dns`] resolves; or `unix:/path`, a Unix stream socket
/// (checked as a listener's path: absolute, no space), never resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    /// The address as written: a metric label and a log field (DNS
    /// characters only).
    text: String,
    /// The address, when `text` is an IP address and a port.
    literal: Option<SocketAddr>,
    /// The socket's path, when `text` is `unix:/path`.
    unix: Option<PathBuf>,
    /// Its share of new clients against the others of its group
    /// (0: none), at most [`MAX_WEIGHT`].
    weight: u32,
    /// Gets clients only while no primary of its group is up.
    backup: bool,
    /// Most connections open to it at once; a full upstream is skipped.
    max_conns: Option<usize>,
}

impl Upstream {
    /// Its weight as configured (default 1).
    pub(crate) fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether it is a backup.
    pub(crate) fn is_backup(&self) -> bool {
        self.backup
    }

    /// Its connection cap, if any.
    pub(crate) fn max_conns(&self) -> Option<usize> {
        self.max_conns
    }

    /// The upstream as it could be written: the address, then each option
    /// that is not its default (`10.0.0.1:80 weight=3 backup`).
    pub(crate) fn spec(&self) -> String {
        let mut s = self.text.clone();
        if self.weight != 1 {
            s.push_str(&format!(" weight={}", self.weight));
        }
        if self.backup {
            s.push_str(" backup");
        }
        if let Some(n) = self.max_conns {
            s.push_str(&format!(" max_conns={n}"));
        }
        s
    }

    /// Whether `self` and `other` are the same address (whatever their
    /// options): a reload keeps the upstream's state then.
    pub(crate) fn same_addr(&self, other: &Upstream) -> bool {
        self.text == other.text
    }

    /// `host:port` as configured.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The socket address, when the host is an IP address (no lookup
    /// needed); `None` for a host name.
    pub(crate) fn literal(&self) -> Option<SocketAddr> {
        self.literal
    }

    /// The socket's path, for a `unix:/path` upstream.
    pub(crate) fn unix_path(&self) -> Option<&Path> {
        self.unix.as_deref()
    }

    /// Whether its address is a host name to resolve (not an IP address,
    /// not a Unix socket).
    pub(crate) fn needs_lookup(&self) -> bool {
        self.literal.is_none() && self.unix.is_none()
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
            unix: None,
            weight: 1,
            backup: false,
            max_conns: None,
        }
    }
}

impl FromStr for Upstream {
    type Err = String;

    /// Parses `ADDR [weight=N] [backup] [max_conns=N]`: see
    /// [`parse_addr`] for `ADDR`.
    fn from_str(spec: &str) -> Result<Upstream, String> {
        let mut words = spec.split([' ', '\t']).filter(|w| !w.is_empty());
        let mut up = parse_addr(words.next().unwrap_or(""))?;
        let number = |word: &str, value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("`{}`: `{word}` needs a whole number", spec.escape_debug()))
        };
        for word in words {
            match word.split_once('=') {
                None if word == "backup" => up.backup = true,
                Some(("weight", v)) => {
                    let w = number(word, v)?;
                    if w > u64::from(MAX_WEIGHT) {
                        return Err(format!(
                            "`{}`: weight is at most {MAX_WEIGHT}",
                            spec.escape_debug()
                        ));
                    }
                    up.weight = w as u32;
                }
                Some(("max_conns", v)) => {
                    let n = number(word, v)?;
                    if n == 0 {
                        return Err(format!(
                            "`{}`: max_conns must be at least 1",
                            spec.escape_debug()
                        ));
                    }
                    up.max_conns = Some(usize::try_from(n).unwrap_or(usize::MAX));
                }
                _ => {
                    return Err(format!(
                        "`{}`: unknown option `{}` (expected weight=N, backup or max_conns=N)",
                        spec.escape_debug(),
                        word.escape_debug()
                    ))
                }
            }
        }
        Ok(up)
    }
}

/// Parses `host:port` or `[v6]:port`, port not 0; a host name of DNS
/// characters only (no quote, backslash, space or control character can
/// reach a metric label or a log line).
fn parse_addr(s: &str) -> Result<Upstream, String> {
    if let Some(path) = s.strip_prefix(crate::address::UNIX_PREFIX) {
        return Ok(Upstream {
            text: s.to_owned(),
            literal: None,
            unix: Some(crate::address::parse_unix_path(path)?),
            weight: 1,
            backup: false,
            max_conns: None,
        });
    }
    let bad = || {
        format!("`{s}` is not a host:port address or unix:/path (e.g. 10.0.0.1:80, backend:80, unix:/run/app.sock)")
    };
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
        unix: None,
        weight: 1,
        backup: false,
        max_conns: None,
    })
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
        assert!(!ok("back\tend:80"));
        assert!(ok("db_1.internal-x:80"));
    }

    #[test]
    fn options_follow_the_address() {
        let u: Upstream = "10.0.0.1:80 weight=3 backup max_conns=7".parse().unwrap();
        assert_eq!(u.as_str(), "10.0.0.1:80");
        assert_eq!(
            (u.weight(), u.is_backup(), u.max_conns()),
            (3, true, Some(7))
        );
        let plain: Upstream = "10.0.0.1:80".parse().unwrap();
        assert_eq!(
            (plain.weight(), plain.is_backup(), plain.max_conns()),
            (1, false, None)
        );
        assert!(plain.same_addr(&u) && plain != u);
        assert_eq!(u.spec(), "10.0.0.1:80 weight=3 backup max_conns=7");
        assert_eq!(plain.spec(), "10.0.0.1:80");
        let zero: Upstream = "b:1 weight=0".parse().unwrap();
        assert_eq!(zero.weight(), 0);
        for bad in [
            "b:1 weight=x",
            "b:1 weight=-1",
            "b:1 weight=1001",
            "b:1 max_conns=0",
            "b:1 down",
            "b:1 weight",
            "",
        ] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
        let e = "b:1 drain".parse::<Upstream>().unwrap_err();
        assert!(e.contains("unknown option `drain`"), "{e}");
    }

    #[test]
    fn ip_addresses_are_parsed_once() {
        let u: Upstream = "[::1]:81".parse().unwrap();
        assert_eq!(u.literal(), Some("[::1]:81".parse().unwrap()));
        assert_eq!(u.to_string(), "[::1]:81");
        let n: Upstream = "backend:80".parse().unwrap();
        assert_eq!((n.literal(), n.as_str()), (None, "backend:80"));
    }

    #[test]
    fn unix_sockets() {
        let u: Upstream = "unix:/run/app.sock weight=2 backup".parse().unwrap();
        assert_eq!(u.as_str(), "unix:/run/app.sock");
        assert_eq!(u.unix_path(), Some(Path::new("/run/app.sock")));
        assert_eq!((u.weight(), u.is_backup(), u.literal()), (2, true, None));
        assert!(!u.needs_lookup());
        assert_eq!(u.spec(), "unix:/run/app.sock weight=2 backup");
        assert!("backend:80".parse::<Upstream>().unwrap().needs_lookup());
        assert!(!"10.0.0.1:80".parse::<Upstream>().unwrap().needs_lookup());
        for bad in ["unix:run/app.sock", "unix:", "unix:/run/"] {
            let e = bad.parse::<Upstream>().unwrap_err();
            assert!(e.contains("unix:"), "{bad}: {e}");
        }
    }
}
