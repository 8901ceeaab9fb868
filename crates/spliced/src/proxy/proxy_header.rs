//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, v1 text and v2
//! binary): [`encode`] the header spliced writes to an upstream with
//! `send_proxy`, and [`read`] the one a load balancer in front sends with
//! `accept_proxy`.
//!
//! Parsing and encoding are the `ppp` crate's (spec-following, both
//! versions, no dependency but `thiserror`). What this module adds is the
//! framing on a socket: exactly the header's bytes are consumed, never a
//! byte of the client's data after it, so the rest of the connection is
//! spliced unchanged. Each read is preceded by a `MSG_PEEK` of what is
//! there; bytes known to be header are read, and once the header's end is
//! seen, exactly up to it. A header cut across segments costs one more
//! peek/read per segment; a whole one, one peek and one read.
//!
//! Unix clients: [`encode_unix`] sends one with the v2 UNIX family
//! (`AF_UNIX` stream, `0x31`, the 216-byte block of two 108-byte paths),
//! or `PROXY UNKNOWN` in v1, which has no such family; [`read`] takes a
//! v2 UNIX header as a Unix client ([`Received::Unix`]). (HAProxy 2.6
//! sends its Unix clients as `LOCAL` and resets a connection whose v2
//! header has the UNIX family: v1 is the choice in front of it.)

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::v2;
use tokio::io::AsyncReadExt;

use crate::config::ProxyVersion;
use crate::stream::Stream;

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 signature.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the spec's 107).
const V1_MAX: usize = 107;
/// The largest v2 header accepted: the fixed 16 bytes and addresses plus
/// TLVs. The format allows 64 KiB; like HAProxy, spliced refuses more
/// than a buffer's worth.
pub(crate) const V2_MAX: usize = 4096;

/// The header as written by `send_proxy`: the client's address as the
/// source, the address it connected to as the destination. Both are the
/// same family (a v4-mapped IPv6 pair is sent as IPv4); a mixed pair is
/// sent as `UNKNOWN` (v1) or `LOCAL` (v2), which receivers take to mean
/// "use the connection's own addresses".
pub(crate) fn encode(version: ProxyVersion, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = (unmap(src), unmap(dst));
    let same_family = src.is_ipv4() == dst.is_ipv4();
    match version {
        ProxyVersion::V1 => {
            let addrs = if same_family {
                ppp::v1::Addresses::from((src, dst))
            } else {
                ppp::v1::Addresses::Unknown
            };
            addrs.to_string().into_bytes()
        }
        ProxyVersion::V2 => {
            let (command, addrs) = if same_family {
                (v2::Command::Proxy, v2::Addresses::from((src, dst)))
            } else {
                (v2::Command::Local, v2::Addresses::Unspecified)
            };
            let protocol = if same_family {
                v2::Protocol::Stream
            } else {
                v2::Protocol::Unspecified
            };
            v2::Builder::with_addresses(v2::Version::Two | command, protocol, addrs)
                .build()
                // The builder only fails on a length above 64 KiB; an
                // address pair is 36 bytes at most.
                .expect("a v2 header of two addresses fits")
        }
    }
}

/// The header for a client on a Unix socket (spliced's own Unix listener,
/// or a balancer's, as its v2 UNIX header said): v2 with the UNIX family
/// (`AF_UNIX`, stream: `0x31`), the source path empty (a client's socket
/// is unnamed as a rule) and the destination the listener's path (`dst`,
/// empty when unknown: a UNIX header received carries the balancer's
/// paths, not spliced's); v1 has no UNIX family: `PROXY UNKNOWN`.
pub(crate) fn encode_unix(version: ProxyVersion, dst: Option<&std::path::Path>) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::Unknown.to_string().into_bytes(),
        ProxyVersion::V2 => {
            use std::os::unix::ffi::OsStrExt as _;
            let mut destination = [0u8; 108];
            if let Some(path) = dst {
                // At most 107 bytes (checked at load): NUL-terminated.
                let bytes = path.as_os_str().as_bytes();
                let n = bytes.len().min(107);
                destination[..n].copy_from_slice(&bytes[..n]);
            }
            let addrs = v2::Addresses::Unix(v2::Unix::new([0u8; 108], destination));
            v2::Builder::with_addresses(
                v2::Version::Two | v2::Command::Proxy,
                v2::Protocol::Stream,
                addrs,
            )
            .build()
            .expect("a v2 header of two Unix paths fits")
        }
    }
}

/// The header when the client's address is known but not where it
/// connected (an IP client from a PROXY header on a Unix listener that
/// gave no destination): `UNKNOWN` (v1) or `LOCAL` (v2).
pub(crate) fn encode_unknown(version: ProxyVersion) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::Unknown.to_string().into_bytes(),
        ProxyVersion::V2 => v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .expect("an empty v2 header fits"),
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d` (a dual-stack listener sees IPv4 clients
/// so); other addresses unchanged.
pub(crate) fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// What a received header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// `PROXY`/`TCP4`/`TCP6`: the client's address and the address it
    /// connected to.
    Proxied {
        /// The client.
        src: SocketAddr,
        /// Where the client connected.
        dst: SocketAddr,
    },
    /// v2 `PROXY` over `AF_UNIX` stream: the client is on a Unix socket
    /// of the balancer (its paths are the balancer's, not used).
    Unix,
    /// v2 `LOCAL`, v1 `UNKNOWN`, or an address family spliced has no use
    /// for (UDP, UNIX datagrams): the connection's own addresses stand.
    Local,
}

/// Why a header was refused.
#[derive(Debug)]
pub(crate) enum HeaderError {
    /// The client closed or failed before a whole header.
    Io(io::Error),
    /// No whole header within the timeout.
    Timeout(Duration),
    /// Not a PROXY header, or a malformed one.
    Malformed(String),
    /// Longer than the v1 line or [`V2_MAX`].
    TooLong(usize),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Io(e) => write!(f, "before a whole PROXY header: {e}"),
            HeaderError::Timeout(d) => write!(f, "no whole PROXY header within {d:?}"),
            HeaderError::Malformed(why) => write!(f, "bad PROXY header: {why}"),
            HeaderError::TooLong(n) => write!(f, "PROXY header longer than {n} bytes"),
        }
    }
}

/// Where the header ends in what has arrived so far.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// A whole header of this many bytes is there.
    Complete(usize),
    /// Everything there is header so far; more is needed.
    NeedMore,
}

/// Finds the end of the header at the start of `buf`.
fn frame(buf: &[u8]) -> Result<Frame, HeaderError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        if buf.len() < 16 {
            return Ok(Frame::NeedMore);
        }
        let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if total > V2_MAX {
            return Err(HeaderError::TooLong(V2_MAX));
        }
        return Ok(if buf.len() >= total {
            Frame::Complete(total)
        } else {
            Frame::NeedMore
        });
    }
    let n = buf.len().min(V1_SIGNATURE.len());
    if buf[..n] == V1_SIGNATURE[..n] {
        let seen = &buf[..buf.len().min(V1_MAX)];
        if let Some(i) = seen.windows(2).position(|w| w == b"\r\n") {
            return Ok(Frame::Complete(i + 2));
        }
        if buf.len() >= V1_MAX {
            return Err(HeaderError::TooLong(V1_MAX));
        }
        return Ok(Frame::NeedMore);
    }
    Err(HeaderError::Malformed(format!(
        "starts with {:?}, neither a v1 nor a v2 signature",
        String::from_utf8_lossy(&buf[..buf.len().min(16)])
    )))
}

/// Parses a whole header (as framed by [`frame`]).
fn parse(header: &[u8]) -> Result<Received, HeaderError> {
    let bad = |e: &dyn fmt::Display| HeaderError::Malformed(e.to_string());
    if header.starts_with(V2_SIGNATURE) {
        let h = v2::Header::try_from(header).map_err(|e| bad(&e))?;
        // TLVs are optional and spliced uses none, but a header whose
        // TLV area does not parse is malformed.
        for tlv in h.tlvs() {
            tlv.map_err(|e| bad(&e))?;
        }
        return Ok(match (h.command, h.protocol, h.addresses) {
            (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv4(a)) => {
                Received::Proxied {
                    src: (a.source_address, a.source_port).into(),
                    dst: (a.destination_address, a.destination_port).into(),
                }
            }
            (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv6(a)) => {
                Received::Proxied {
                    src: (a.source_address, a.source_port).into(),
                    dst: (a.destination_address, a.destination_port).into(),
                }
            }
            (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::Unix(_)) => Received::Unix,
            // LOCAL (health checks of the balancer itself), or a family
            // that is not a stream over IP or Unix: the spec says to use
            // the real connection's addresses.
            _ => Received::Local,
        });
    }
    let h = ppp::v1::Header::try_from(header).map_err(|e| bad(&e))?;
    Ok(match h.addresses {
        ppp::v1::Addresses::Tcp4(a) => Received::Proxied {
            src: (a.source_address, a.source_port).into(),
            dst: (a.destination_address, a.destination_port).into(),
        },
        ppp::v1::Addresses::Tcp6(a) => Received::Proxied {
            src: (a.source_address, a.source_port).into(),
            dst: (a.destination_address, a.destination_port).into(),
        },
        ppp::v1::Addresses::Unknown => Received::Local,
    })
}

/// Reads one PROXY header (v1 or v2) from `stream` within `timeout`,
/// consuming exactly its bytes.
///
/// # Errors
/// [`HeaderError`]: EOF or an I/O error, the timeout, a malformed or an
/// oversized header.
pub(crate) async fn read(stream: &mut Stream, timeout: Duration) -> Result<Received, HeaderError> {
    match tokio::time::timeout(timeout, read_header(stream)).await {
        Ok(r) => r,
        Err(_) => Err(HeaderError::Timeout(timeout)),
    }
}

async fn read_header(stream: &mut Stream) -> Result<Received, HeaderError> {
    let mut have: Vec<u8> = Vec::with_capacity(128);
    let mut peeked = [0u8; 512];
    loop {
        let room = (V2_MAX - have.len()).min(peeked.len());
        let n = stream
            .peek(&mut peeked[..room])
            .await
            .map_err(HeaderError::Io)?;
        if n == 0 {
            return Err(HeaderError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        let old = have.len();
        have.extend_from_slice(&peeked[..n]);
        // Peeked bytes are not consumed yet: read only the header's.
        let take = match frame(&have)? {
            Frame::Complete(total) => total - old,
            Frame::NeedMore => n,
        };
        have.truncate(old);
        have.resize(old + take, 0);
        stream
            .read_exact(&mut have[old..])
            .await
            .map_err(HeaderError::Io)?;
        if take < n || matches!(frame(&have)?, Frame::Complete(_)) {
            return parse(&have);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Garbage is an error, never a panic; a frame never claims more
        /// bytes than there are or than the caps allow.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            check_any(&bytes);
            check_any(&[b"PROXY ".as_slice(), &bytes].concat());
            check_any(&[V2_SIGNATURE, &bytes].concat());
        }

        #[test]
        fn mutated_headers_never_panic(at in 0usize..64, byte in any::<u8>(), v2 in any::<bool>()) {
            let version = if v2 { ProxyVersion::V2 } else { ProxyVersion::V1 };
            let mut h = encode(version, "[2001:db8::1]:1".parse().unwrap(), "[::1]:2".parse().unwrap());
            let at = at % h.len();
            h[at] = byte;
            check_any(&h);
        }
    }

    fn check_any(buf: &[u8]) {
        if let Ok(Frame::Complete(n)) = frame(buf) {
            assert!(n <= buf.len() && n <= V2_MAX);
            let _ = parse(&buf[..n]);
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_is_the_spec_text_line() {
        let h = encode(
            ProxyVersion::V1,
            addr("192.0.2.1:5555"),
            addr("198.51.100.2:443"),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.2 5555 443\r\n");
        let h = encode(ProxyVersion::V1, addr("[::1]:1"), addr("[2001:db8::2]:80"));
        assert_eq!(h, b"PROXY TCP6 ::1 2001:db8::2 1 80\r\n");
        let mapped = encode(
            ProxyVersion::V1,
            addr("[::ffff:10.0.0.1]:7"),
            addr("[::ffff:10.0.0.2]:8"),
        );
        assert_eq!(mapped, b"PROXY TCP4 10.0.0.1 10.0.0.2 7 8\r\n");
        let mixed = encode(ProxyVersion::V1, addr("10.0.0.1:7"), addr("[::1]:8"));
        assert_eq!(mixed, b"PROXY UNKNOWN\r\n");
    }

    #[test]
    fn v2_round_trips_and_has_the_spec_layout() {
        let (src, dst) = (addr("192.0.2.1:5555"), addr("198.51.100.2:443"));
        let h = encode(ProxyVersion::V2, src, dst);
        assert_eq!(&h[..12], V2_SIGNATURE);
        assert_eq!(h[12], 0x21, "version 2, PROXY");
        assert_eq!(h[13], 0x11, "TCP over IPv4");
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(h.len(), 28);
        assert_eq!(frame(&h).unwrap(), Frame::Complete(28));
        assert_eq!(parse(&h).unwrap(), Received::Proxied { src, dst });
        let (src, dst) = (addr("[2001:db8::1]:1"), addr("[::1]:2"));
        let h = encode(ProxyVersion::V2, src, dst);
        assert_eq!((h[13], h.len()), (0x21, 52));
        assert_eq!(parse(&h).unwrap(), Received::Proxied { src, dst });
    }

    #[test]
    fn framing() {
        assert_eq!(frame(b"PRO").unwrap(), Frame::NeedMore);
        assert_eq!(frame(b"PROXY TCP4 1.2.3.4").unwrap(), Frame::NeedMore);
        assert_eq!(
            frame(b"PROXY UNKNOWN\r\nGET / HTTP/1.1\r\n").unwrap(),
            Frame::Complete(15)
        );
        assert_eq!(frame(&V2_SIGNATURE[..5]).unwrap(), Frame::NeedMore);
        assert!(matches!(
            frame(b"GET / HTTP/1.1\r\n"),
            Err(HeaderError::Malformed(_))
        ));
        assert!(matches!(
            frame(&[b'P'; 8][..]),
            Err(HeaderError::Malformed(_))
        ));
        let mut long = b"PROXY ".to_vec();
        long.resize(200, b'1');
        assert!(matches!(frame(&long), Err(HeaderError::TooLong(V1_MAX))));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(frame(&big), Err(HeaderError::TooLong(V2_MAX))));
    }

    #[test]
    fn local_unknown_and_tlvs() {
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap(), Received::Local);
        let local = [V2_SIGNATURE, &[0x20, 0x00, 0, 0]].concat();
        assert_eq!(parse(&local).unwrap(), Received::Local);
        // PROXY over IPv4 with a NOOP TLV (type 4) of 3 bytes.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 18, 10, 0, 0, 1, 10, 0, 0, 2, 0, 7, 0, 8]);
        h.extend_from_slice(&[4, 0, 3, 1, 2, 3]);
        assert_eq!(
            parse(&h).unwrap(),
            Received::Proxied {
                src: addr("10.0.0.1:7"),
                dst: addr("10.0.0.2:8")
            }
        );
        // The same with a TLV claiming more bytes than there are.
        let n = h.len();
        h[n - 5] = 9;
        assert!(matches!(parse(&h), Err(HeaderError::Malformed(_))));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n"),
            Err(HeaderError::Malformed(_))
        ));
    }

    /// The UNIX family: 0x31 (AF_UNIX, stream), a 216-byte address block
    /// (source path, then destination path, 108 bytes each,
    /// NUL-padded), and it parses back as a Unix client. v1 has no UNIX
    /// family: `PROXY UNKNOWN`.
    #[test]
    fn unix_family() {
        let path = std::path::Path::new("/run/spliced/front.sock");
        let h = encode_unix(ProxyVersion::V2, Some(path));
        assert_eq!(&h[..12], V2_SIGNATURE);
        assert_eq!(h[12], 0x21, "version 2, PROXY");
        assert_eq!(h[13], 0x31, "AF_UNIX, stream");
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 216);
        assert_eq!(h.len(), 16 + 216);
        assert!(h[16..16 + 108].iter().all(|&b| b == 0), "source empty");
        let dst = &h[16 + 108..];
        assert_eq!(&dst[..path.as_os_str().len()], b"/run/spliced/front.sock");
        assert!(dst[path.as_os_str().len()..].iter().all(|&b| b == 0));
        assert_eq!(frame(&h).unwrap(), Frame::Complete(h.len()));
        assert_eq!(parse(&h).unwrap(), Received::Unix);
        assert_eq!(
            encode_unix(ProxyVersion::V1, Some(path)),
            b"PROXY UNKNOWN\r\n"
        );
        assert_eq!(encode_unknown(ProxyVersion::V1), b"PROXY UNKNOWN\r\n");
        let local = encode_unknown(ProxyVersion::V2);
        assert_eq!(parse(&local).unwrap(), Received::Local);
        assert_eq!(local[12], 0x20, "LOCAL");
    }
}
