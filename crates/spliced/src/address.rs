//! Where a listener listens ([`ListenAddr`]: `IP:PORT` or `unix:/path`)
//! and who a client is ([`Peer`]: an IP address and port, or a peer on a
//! Unix socket).
//!
//! A Unix client has no IP address: it is shown as `unix` (as HAProxy
//! logs one), matches no `allow`/`deny` network (a Unix listener refuses
//! those lists at load, see `config`), and all Unix clients of a listener
//! are one source for `max_conns_per_source` and for `balance = source`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The prefix of a Unix socket path in `listen` and `upstreams`.
pub(crate) const UNIX_PREFIX: &str = "unix:";

/// The longest Unix socket path: `sun_path` is 108 bytes, NUL included.
pub(crate) const UNIX_PATH_MAX: usize = 107;

/// A listener's address: TCP on an IP address and port, or a Unix stream
/// socket at a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ListenAddr {
    /// `IP:PORT` (port 0: any free port).
    Tcp(SocketAddr),
    /// `unix:/path`: an absolute path (see [`parse_unix_path`]).
    Unix(PathBuf),
}

impl ListenAddr {
    /// The TCP address, if it is one.
    pub(crate) fn tcp(&self) -> Option<SocketAddr> {
        match self {
            ListenAddr::Tcp(a) => Some(*a),
            ListenAddr::Unix(_) => None,
        }
    }

    /// The socket file's path, if it is a Unix socket.
    pub(crate) fn unix(&self) -> Option<&Path> {
        match self {
            ListenAddr::Tcp(_) => None,
            ListenAddr::Unix(p) => Some(p),
        }
    }

    /// Whether the address names no fixed place: TCP port 0 (a free port
    /// is picked at bind). A listener on one is matched by name as well.
    pub(crate) fn is_any_port(&self) -> bool {
        matches!(self, ListenAddr::Tcp(a) if a.port() == 0)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => a.fmt(f),
            // Checked at parse: no space or control character.
            ListenAddr::Unix(p) => write!(f, "{UNIX_PREFIX}{}", p.display()),
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(a: SocketAddr) -> ListenAddr {
        ListenAddr::Tcp(a)
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    /// `IP:PORT` or `unix:/path`.
    fn from_str(s: &str) -> Result<ListenAddr, String> {
        if let Some(path) = s.strip_prefix(UNIX_PREFIX) {
            return parse_unix_path(path).map(ListenAddr::Unix);
        }
        s.parse().map(ListenAddr::Tcp).map_err(|_| {
            format!("`{s}` is not an IP:PORT address or unix:/path (e.g. 0.0.0.0:8080, [::]:8080, unix:/run/spliced.sock)")
        })
    }
}

/// Checks the path of a `unix:/path` address: absolute (a relative one
/// would depend on the working directory, which changes nothing for the
/// daemon but surprises at a reload), at most [`UNIX_PATH_MAX`] bytes,
/// with no whitespace or control character (it is a metric label, a log
/// word and a word of the takeover protocol), and not a directory
/// (`/path/`).
///
/// # Errors
/// A message naming the path and the rule it breaks.
pub(crate) fn parse_unix_path(path: &str) -> Result<PathBuf, String> {
    let bad = |why: &str| format!("`{UNIX_PREFIX}{}`: {why}", path.escape_debug());
    if !path.starts_with('/') {
        return Err(bad(
            "a Unix socket path must be absolute (unix:/run/x.sock)",
        ));
    }
    if path.ends_with('/') {
        return Err(bad("a Unix socket path names a file, not a directory"));
    }
    if path.len() > UNIX_PATH_MAX {
        return Err(bad(&format!(
            "a Unix socket path is at most {UNIX_PATH_MAX} bytes"
        )));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "a Unix socket path may hold no space or control character",
        ));
    }
    Ok(PathBuf::from(path))
}

/// A client: its address and port, or a peer on a Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// A TCP client (or the address a PROXY header gave).
    Ip(SocketAddr),
    /// A client on a Unix socket (its own socket is unnamed as a rule):
    /// shown as `unix`.
    Unix,
}

impl Peer {
    /// Its IP address; `None` for a Unix peer.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Ip(a) => Some(a.ip()),
            Peer::Unix => None,
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        Peer::Ip(a)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(a) => a.fmt(f),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

impl serde::Serialize for Peer {
    /// As a string: `192.0.2.1:5000`, `[2001:db8::1]:443`, `unix`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let tcp: ListenAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(tcp.tcp(), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(tcp.to_string(), "127.0.0.1:80");
        assert!(!tcp.is_any_port());
        assert!("[::]:0".parse::<ListenAddr>().unwrap().is_any_port());
        let unix: ListenAddr = "unix:/run/x.sock".parse().unwrap();
        assert_eq!(unix.unix(), Some(Path::new("/run/x.sock")));
        assert_eq!(unix.to_string(), "unix:/run/x.sock");
        assert!(!unix.is_any_port());
        for (bad, why) in [
            ("unix:run/x.sock", "absolute"),
            ("unix:", "absolute"),
            ("unix:/run/", "directory"),
            ("unix:/run/a b", "space"),
            ("unix:/run/a\nb", "control"),
            ("nowhere", "unix:/path"),
            ("127.0.0.1", "IP:PORT"),
        ] {
            let e = bad.parse::<ListenAddr>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("unix:/{}", "x".repeat(UNIX_PATH_MAX));
        let e = long.parse::<ListenAddr>().unwrap_err();
        assert!(e.contains("at most 107 bytes"), "{e}");
        let longest = format!("unix:/{}", "x".repeat(UNIX_PATH_MAX - 1));
        assert!(longest.parse::<ListenAddr>().is_ok());
    }

    #[test]
    fn peers_show_and_serialize() {
        let ip = Peer::from("192.0.2.1:5000".parse::<SocketAddr>().unwrap());
        assert_eq!(ip.to_string(), "192.0.2.1:5000");
        assert_eq!(ip.ip(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(Peer::Unix.to_string(), "unix");
        assert_eq!(Peer::Unix.ip(), None);
        assert_eq!(serde_json::to_string(&Peer::Unix).unwrap(), "\"unix\"");
        assert_eq!(serde_json::to_string(&ip).unwrap(), "\"192.0.2.1:5000\"");
    }
}
