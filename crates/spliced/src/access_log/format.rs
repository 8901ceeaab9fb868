//! The two line formats of the access log, written into a caller's
//! buffer (no allocation once it has grown to a line's size):
//!
//! - `tcplog`, positional as HAProxy's, one space between fields, `-`
//!   for a value that is absent:
//!   `CLIENT [TIME] LISTENER UPSTREAM TC/TT TO_UPSTREAM TO_CLIENT STATE METHOD SNI VIA REASON SUPPRESSED`
//!   (`TC` is -1 when no upstream was connected; times in milliseconds);
//! - `json`, one object per line with the same fields by name
//!   (`connect_ms`, `total_ms`, `state`, ...; `null` when absent).
//!
//! TIME is the accept time in UTC, RFC 3339 with milliseconds.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::entry::{Entry, Json};

/// The access log's line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Format {
    /// HAProxy-like positional fields.
    #[default]
    Tcplog,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// The name in the config file and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::Tcplog => "tcplog",
            Format::Json => "json",
        }
    }

    /// Appends `entry`'s line (with its newline) to `out`.
    pub(crate) fn write(self, entry: &Entry<'_>, out: &mut Vec<u8>) {
        let mut time = [0u8; TIME_LEN];
        let time = rfc3339(entry.start, &mut time);
        match self {
            Format::Tcplog => tcplog(entry, time, out),
            Format::Json => {
                let json = Json {
                    time,
                    client: entry.client,
                    via: entry.via,
                    listener: entry.listener,
                    upstream: entry.upstream,
                    sni: entry.sni,
                    connect_ms: entry.connect_ms,
                    total_ms: entry.total_ms,
                    to_upstream: entry.to_upstream,
                    to_client: entry.to_client,
                    method: entry.method,
                    state: entry.termination.code(),
                    reason: entry.reason,
                    suppressed: entry.suppressed,
                };
                // Writing to a Vec fails only for a type that refuses to
                // serialize: none here.
                let _ = serde_json::to_writer(&mut *out, &json);
                out.push(b'\n');
            }
        }
    }
}

fn tcplog(e: &Entry<'_>, time: &str, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}", e.client);
    out.extend_from_slice(b" [");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"] ");
    word(out, Some(e.listener));
    out.push(b' ');
    word(out, e.upstream);
    out.push(b' ');
    match e.connect_ms {
        Some(ms) => out.extend_from_slice(n.format(ms).as_bytes()),
        None => out.extend_from_slice(b"-1"),
    }
    out.push(b'/');
    out.extend_from_slice(n.format(e.total_ms).as_bytes());
    out.push(b' ');
    out.extend_from_slice(n.format(e.to_upstream).as_bytes());
    out.push(b' ');
    out.extend_from_slice(n.format(e.to_client).as_bytes());
    out.push(b' ');
    out.extend_from_slice(e.termination.code().as_bytes());
    out.push(b' ');
    match e.method {
        Some(m) => {
            out.extend_from_slice(m.0.as_str().as_bytes());
            if m.1 != m.0 {
                out.push(b'/');
                out.extend_from_slice(m.1.as_str().as_bytes());
            }
        }
        None => out.push(b'-'),
    }
    out.push(b' ');
    word(out, e.sni);
    out.push(b' ');
    match e.via {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push(b'-'),
    }
    out.push(b' ');
    word(out, e.reason);
    out.push(b' ');
    out.extend_from_slice(n.format(e.suppressed).as_bytes());
    out.push(b'\n');
}

/// Writes `s` as one field: `-` when absent or empty; a byte that would
/// split the field or the line (space, control, non-ASCII: a server name
/// comes from the network) as `?`.
fn word(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) if !s.is_empty() => {
            out.extend(
                s.bytes()
                    .map(|b| if b.is_ascii_graphic() { b } else { b'?' }),
            )
        }
        _ => out.push(b'-'),
    }
}

/// `2026-12-07T17:30:00.123Z`.
const TIME_LEN: usize = 24;

/// `t` in UTC as RFC 3339 with milliseconds, in `buf`.
fn rfc3339(t: SystemTime, buf: &mut [u8; TIME_LEN]) -> &str {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days);
    let fields = [
        (0, 4, y),
        (5, 2, m),
        (8, 2, d),
        (11, 2, rem / 3600),
        (14, 2, rem / 60 % 60),
        (17, 2, rem % 60),
        (20, 3, u64::from(since.subsec_millis())),
    ];
    buf.copy_from_slice(b"0000-00-00T00:00:00.000Z");
    for (at, width, mut v) in fields {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    // Only ASCII digits and separators were written.
    std::str::from_utf8(buf).unwrap_or("")
}

/// Year, month, day of `days` since 1970-01-01 (the proleptic Gregorian
/// calendar, counted in 400-year eras of 146,097 days from 0000-03-01).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of the era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::{Methods, Termination};
    use pipepool::Method;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> String {
        let mut buf = [0u8; TIME_LEN];
        let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        rfc3339(t, &mut buf).to_owned()
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_796_663_399, 999), "2026-12-07T17:09:59.999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    fn entry() -> Entry<'static> {
        Entry {
            start: UNIX_EPOCH,
            client: crate::address::Peer::Ip("192.0.2.1:5000".parse().unwrap()),
            via: Some(crate::address::Peer::Ip("10.0.0.2:40000".parse().unwrap())),
            listener: "web",
            upstream: Some("10.0.0.11:80"),
            sni: Some("a b\n.example"),
            connect_ms: Some(3),
            total_ms: 120,
            to_upstream: 5,
            to_client: 11,
            method: Some(Methods(Method::Splice, Method::Userspace)),
            termination: Termination::ClientClosedFirst,
            reason: None,
            suppressed: 0,
        }
    }

    #[test]
    fn tcplog_is_one_line_of_fields() {
        let mut out = Vec::new();
        Format::Tcplog.write(&entry(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "192.0.2.1:5000 [1970-01-01T00:00:00.000Z] web 10.0.0.11:80 3/120 5 11 C- \
             splice/userspace a?b?.example 10.0.0.2:40000 - 0\n"
        );
        let mut out = Vec::new();
        let mut e = Entry::refused(
            UNIX_EPOCH,
            crate::address::Peer::Ip("[::1]:7".parse().unwrap()),
            "l",
            Termination::MaxConns,
        );
        e.reason = Some("max_conns");
        e.suppressed = 4;
        Format::Tcplog.write(&e, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[::1]:7 [1970-01-01T00:00:00.000Z] l - -1/0 0 0 LA - - - max_conns 4\n"
        );
    }

    #[test]
    fn json_escapes_and_parses() {
        let mut out = Vec::new();
        Format::Json.write(&entry(), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["sni"], "a b\n.example");
        assert_eq!(v["state"], "C-");
        assert_eq!(v["connect_ms"], 3);
        assert_eq!(v["via"], "10.0.0.2:40000");
        assert_eq!(v["method"], "splice/userspace");
        assert_eq!(v["reason"], serde_json::Value::Null);
    }
}
