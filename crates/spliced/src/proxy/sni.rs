//! SNI routing without terminating TLS: [`server_name`] peeks at the
//! client's first bytes (`MSG_PEEK`: they stay in the socket and are
//! spliced to the upstream unchanged), [`parse`] finds the server name of
//! a TLS ClientHello in them, and [`Routes`] picks the upstream group.
//!
//! The parser is this module's own, about a hundred lines over the
//! ClientHello layout of RFC 8446 §4.1.2 and RFC 6066 §3: it reassembles a
//! ClientHello cut across TCP segments or TLS records, never allocates in
//! the common case of one record, never panics (proptest over random and
//! over truncated or mutated real ClientHellos, below), and answers
//! "not TLS" at the first byte that is not a handshake record, so a
//! plain-text client goes to the default route without waiting.
//! (`tls-parser` would add nom and more, and still leave the record
//! reassembly to us.)

use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustix::net::RecvFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::upstream::Balancer;

/// The most bytes peeked for a ClientHello: HAProxy's default buffer.
/// A longer ClientHello goes to the default route.
pub(crate) const MAX_HELLO: usize = 16 * 1024;

/// The bytes peeked first.
const FIRST_PEEK: usize = 2048;

/// The largest TLS record body (2^14) and some room for a sender that
/// pads; anything larger is not TLS.
const MAX_RECORD: usize = (1 << 14) + 2048;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hello {
    /// A whole ClientHello with this server name (lower case, no
    /// trailing dot).
    Name(String),
    /// A whole ClientHello without a server name.
    NoName,
    /// Not a TLS ClientHello (plain text, another protocol, garbage).
    NotTls,
    /// So far a ClientHello; the answer cannot change before the buffer
    /// holds `need` bytes (more than it does; at most the end of the
    /// record being read, which a client sends whole).
    Incomplete {
        /// Bytes from the start of the connection.
        need: usize,
    },
}

/// Parses the ClientHello at the start of `buf` (TLS records as sent).
pub(crate) fn parse(buf: &[u8]) -> Hello {
    // The handshake message: borrowed when the first record holds it all.
    let mut joined: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut pos = 0;
    loop {
        let rec = &buf[pos..];
        // Content type 22 (handshake), legacy version 3.x.
        if rec.first().is_some_and(|&b| b != 22) || rec.get(1).is_some_and(|&b| b != 3) {
            return Hello::NotTls;
        }
        if rec.len() < 5 {
            return Hello::Incomplete { need: pos + 5 };
        }
        let len = usize::from(u16::from_be_bytes([rec[3], rec[4]]));
        if len == 0 || len > MAX_RECORD {
            return Hello::NotTls;
        }
        let body = &rec[5..rec.len().min(5 + len)];
        if pos == 0 {
            joined = Cow::Borrowed(body);
        } else {
            joined.to_mut().extend_from_slice(body);
        }
        if let Some(&t) = joined.first() {
            if t != 1 {
                return Hello::NotTls; // not a ClientHello
            }
        }
        if joined.len() >= 4 {
            let hlen =
                usize::from(joined[1]) << 16 | usize::from(joined[2]) << 8 | usize::from(joined[3]);
            if hlen > MAX_HELLO {
                return Hello::NotTls;
            }
            if joined.len() >= 4 + hlen {
                return client_hello(&joined[4..4 + hlen]).unwrap_or(Hello::NotTls);
            }
        }
        if body.len() < len {
            return Hello::Incomplete {
                need: pos + 5 + len,
            };
        }
        pos += 5 + len;
    }
}

/// A cursor over a ClientHello body; each read fails past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A vector with a one- or two-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The server name in a ClientHello body (after the handshake header);
/// `None` when malformed.
fn client_hello(body: &[u8]) -> Option<Hello> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.0.is_empty() {
        return Some(Hello::NoName); // no extensions at all (TLS 1.0 style)
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != 0 {
            continue; // not server_name
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                return Some(host_name(name).map_or(Hello::NoName, Hello::Name));
            }
        }
        return Some(Hello::NoName);
    }
    Some(Hello::NoName)
}

/// A DNS host name as routes are written: ASCII, lower case, no trailing
/// dot; `None` for anything else.
fn host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    let ok = !raw.is_empty()
        && raw
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ok.then(|| String::from_utf8_lossy(raw).to_ascii_lowercase())
}

/// Peeks at `stream` until its first bytes are a whole ClientHello, not
/// TLS, [`MAX_HELLO`] bytes long, at EOF or `timeout`; returns the server
/// name if there is one. Nothing is consumed.
///
/// A ClientHello that arrives in pieces makes the peek wait for more
/// bytes by clearing tokio's read readiness while bytes are in the
/// socket; the edge-triggered registration would then never report them.
/// `Peeked::rearm` says so: the caller must [`rearm`] the stream before
/// anything waits for it to be readable.
pub(crate) async fn server_name(stream: &TcpStream, timeout: Duration) -> Peeked {
    let mut rearm = false;
    let name = peek_name(stream, timeout, &mut rearm).await;
    Peeked { name, rearm }
}

/// What [`server_name`] found.
#[derive(Debug)]
pub(crate) struct Peeked {
    /// The server name, if a whole ClientHello with one came.
    pub(crate) name: Option<String>,
    /// Whether the stream's readiness was cleared with bytes unread.
    pub(crate) rearm: bool,
}

/// Registers `stream` afresh with the runtime: `epoll_ctl(ADD)` reports
/// the bytes already there, which a cleared edge-triggered readiness
/// would not (two `epoll_ctl` calls, only after a ClientHello in pieces).
///
/// # Errors
/// As `epoll_ctl(2)`.
pub(crate) fn rearm(stream: TcpStream) -> io::Result<TcpStream> {
    TcpStream::from_std(stream.into_std()?)
}

async fn peek_name(stream: &TcpStream, timeout: Duration, rearm: &mut bool) -> Option<String> {
    // Most ClientHellos fit in 2 KiB (one with a post-quantum key share
    // is about 1.8 KiB): start there, grow to MAX_HELLO if needed.
    let mut buf = vec![0u8; FIRST_PEEK];
    let mut seen = 0;
    // Bytes the parser needs before its answer can change: a hello in
    // pieces is peeked and parsed again only once they are all there
    // (`FIONREAD` counts them without a copy), so a client trickling its
    // hello a byte per segment costs one ioctl per segment, not a peek
    // and a parse of everything so far (quadratic in the hello's size).
    let mut need = 0;
    let peek = async {
        loop {
            let ready = stream.ready(Interest::READABLE).await.ok()?;
            // A peek that sees nothing new reports WouldBlock so that tokio
            // clears the readiness and the next wait is for more bytes (a
            // plain peek would return the same bytes at once, forever).
            let n = stream.try_io(Interest::READABLE, || {
                if need > seen {
                    let queued = rustix::io::ioctl_fionread(stream)?;
                    if usize::try_from(queued).unwrap_or(usize::MAX) < need {
                        *rearm = true;
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                }
                let (n, _) = rustix::net::recv(stream, &mut buf[..], RecvFlags::PEEK)?;
                if n == seen && n != 0 {
                    *rearm = true;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            let n = match n {
                // The peer has closed its side: no more bytes will come
                // (and "read closed" never clears: waiting would spin).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && ready.is_read_closed() => {
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return None,
                Ok(n) => n,
            };
            if n == 0 {
                return None; // EOF before any byte
            }
            seen = n;
            match parse(&buf[..n]) {
                Hello::Name(name) => return Some(name),
                Hello::NoName | Hello::NotTls => return None,
                Hello::Incomplete { .. } if n == MAX_HELLO => return None,
                Hello::Incomplete { need: more } => {
                    // Never more than a peek can hold: at MAX_HELLO the
                    // answer is "too long" (the default route).
                    need = more.min(MAX_HELLO);
                    if need > buf.len() {
                        buf.resize(MAX_HELLO, 0);
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, peek).await.ok().flatten()
}

/// The SNI routes of one listener, most specific first.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// (pattern, its group): an exact name, or `*.suffix` stored as
    /// `.suffix`; sorted by pattern length, longest first, exact before a
    /// wildcard of the same length.
    routes: Vec<(String, Arc<Balancer>)>,
}

impl Routes {
    /// Routes from `(sni, group)` pairs as configured (lower case).
    pub(crate) fn new(routes: impl IntoIterator<Item = (String, Arc<Balancer>)>) -> Routes {
        let mut routes: Vec<_> = routes
            .into_iter()
            .map(|(sni, b)| (sni.strip_prefix('*').map_or(sni.clone(), str::to_owned), b))
            .collect();
        routes.sort_by_key(|(p, _)| (std::cmp::Reverse(p.len()), p.starts_with('.')));
        Routes { routes }
    }

    /// Every route's group.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Arc<Balancer>> {
        self.routes.iter().map(|(_, b)| b)
    }

    /// The group of pattern `sni` as configured (`*.suffix` or a name),
    /// if there is a route for it.
    pub(crate) fn group(&self, sni: &str) -> Option<&Arc<Balancer>> {
        let key = sni.strip_prefix('*').unwrap_or(sni);
        self.routes.iter().find(|(p, _)| p == key).map(|(_, b)| b)
    }

    /// Whether there is any route (else no peek is needed).
    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The group of the longest pattern matching `name`, with the pattern
    /// as configured.
    pub(crate) fn find(&self, name: &str) -> Option<&Arc<Balancer>> {
        self.routes
            .iter()
            .find(|(p, _)| match p.strip_prefix('.') {
                Some(_) => name.len() > p.len() && name.ends_with(p.as_str()),
                None => name == p,
            })
            .map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Balance;
    use proptest::prelude::*;

    /// A ClientHello record as a TLS 1.3 client sends it: a random, a
    /// session id, suites, compression, then extensions with SNI.
    fn hello(name: Option<&str>) -> Vec<u8> {
        let mut exts = Vec::new();
        exts.extend_from_slice(&[0x00, 0x0a, 0, 4, 0, 2, 0, 0x1d]); // groups
        if let Some(n) = name {
            let n = n.as_bytes();
            let entry_len = 3 + n.len();
            exts.extend_from_slice(&[0, 0]);
            exts.extend_from_slice(&((entry_len + 2) as u16).to_be_bytes());
            exts.extend_from_slice(&(entry_len as u16).to_be_bytes());
            exts.push(0);
            exts.extend_from_slice(&(n.len() as u16).to_be_bytes());
            exts.extend_from_slice(n);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(32);
        body.extend_from_slice(&[9; 32]);
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02, 1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        records(&hs, usize::MAX)
    }

    /// `hs` in handshake records of at most `max` bytes each.
    fn records(hs: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in hs.chunks(max.min(1 << 14)) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn names_and_no_names() {
        let h = hello(Some("Api.Example.COM."));
        assert_eq!(parse(&h), Hello::Name("api.example.com".into()));
        assert_eq!(parse(&hello(None)), Hello::NoName);
        for cut in 0..h.len() {
            assert!(
                matches!(parse(&h[..cut]), Hello::Incomplete { need } if need > cut && need <= h.len()),
                "cut at {cut}: {:?}",
                parse(&h[..cut])
            );
        }
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(parse(b"\x16\x01"), Hello::NotTls);
        assert_eq!(parse(b"SSH-2.0-OpenSSH"), Hello::NotTls);
    }

    #[test]
    fn a_hello_across_records() {
        let one = hello(Some("split.example"));
        let hs = &one[5..];
        for max in [1, 2, 3, 4, 5, 50] {
            let many = records(hs, max);
            assert_eq!(
                parse(&many),
                Hello::Name("split.example".into()),
                "records of {max}"
            );
            assert_eq!(
                parse(&many[..many.len() - 1]),
                Hello::Incomplete { need: many.len() }
            );
            // Never asks for more than the client will send, and grows
            // with each record: a trickled hello is parsed once a record.
            let mut parses = 0;
            let mut have = 0;
            while have < many.len() {
                parses += 1;
                match parse(&many[..have]) {
                    Hello::Incomplete { need } => {
                        assert!(need > have && need <= many.len(), "{have} -> {need}");
                        have = need;
                    }
                    other => panic!("{other:?} at {have} of {}", many.len()),
                }
            }
            assert!(
                parses <= 2 * many.len().div_ceil(5 + max) + 1,
                "{parses} parses"
            );
        }
    }

    #[test]
    fn longest_match_wins() {
        let g =
            |s: &str| Balancer::new(Balance::RoundRobin, vec![format!("{s}:1").parse().unwrap()]);
        let routes = Routes::new([
            ("*.example.com".to_owned(), g("wild")),
            ("api.example.com".to_owned(), g("exact")),
            ("*.eu.example.com".to_owned(), g("eu")),
        ]);
        let to = |n: &str| routes.find(n).map(|b| b.addr(0).to_owned());
        // By pattern as configured (what a reload hands over).
        let by = |p: &str| routes.group(p).map(|b| b.addr(0).to_owned());
        assert_eq!(by("*.example.com").as_deref(), Some("wild:1"));
        assert_eq!(by("api.example.com").as_deref(), Some("exact:1"));
        assert_eq!(by(".example.com").as_deref(), Some("wild:1"));
        assert_eq!(by("example.com"), None);
        assert_eq!(by("www.example.com"), None, "a name, not a pattern");
        assert_eq!(to("api.example.com").as_deref(), Some("exact:1"));
        assert_eq!(to("www.example.com").as_deref(), Some("wild:1"));
        assert_eq!(to("a.eu.example.com").as_deref(), Some("eu:1"));
        assert_eq!(to("eu.example.com").as_deref(), Some("wild:1"));
        assert_eq!(to("example.com"), None);
        assert_eq!(to("xexample.com"), None);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
            // The same behind a valid record and handshake header.
            let mut framed = vec![22, 3, 1, 0, 0, 1, 0, 0, 0];
            framed[3..5].copy_from_slice(&((bytes.len() + 4) as u16).to_be_bytes());
            framed[7..9].copy_from_slice(&(bytes.len() as u16).to_be_bytes());
            framed.extend_from_slice(&bytes);
            let _ = parse(&framed);
        }

        #[test]
        fn mutated_hellos_never_panic(at in 0usize..200, byte in any::<u8>(), cut in 0usize..200) {
            let mut h = hello(Some("fuzz.example.org"));
            let at = at % h.len();
            h[at] = byte;
            let _ = parse(&h);
            let _ = parse(&h[..cut.min(h.len())]);
        }
    }
}
