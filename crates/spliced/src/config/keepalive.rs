//! `client_keepalive` / `upstream_keepalive`: TCP keepalive on one side
//! of each connection, written `"IDLE:INTERVAL:COUNT"` (e.g.
//! `"60s:10s:5"`): after IDLE without traffic the kernel probes every
//! INTERVAL and drops the connection after COUNT unanswered probes (as
//! HAProxy's `clitcpka-*`/`srvtcpka-*` and nginx's `so_keepalive`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

use super::units::parse_duration;

/// The kernel's bound on `TCP_KEEPIDLE` and `TCP_KEEPINTVL`, in seconds.
const MAX_SECS: u64 = 32767;
/// The kernel's bound on `TCP_KEEPCNT`.
const MAX_COUNT: u32 = 127;

/// Keepalive probes of one side: `SO_KEEPALIVE` with `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL` and `TCP_KEEPCNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keepalive {
    /// Quiet time before the first probe (whole seconds, at least 1).
    pub(crate) idle: Duration,
    /// Time between probes (whole seconds, at least 1).
    pub(crate) interval: Duration,
    /// Unanswered probes before the connection is dropped (1 to 127).
    pub(crate) count: u32,
}

impl fmt::Display for Keepalive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}s:{}s:{}",
            self.idle.as_secs(),
            self.interval.as_secs(),
            self.count
        )
    }
}

/// Parses `IDLE:INTERVAL:COUNT` (a flag's value, or the file's).
///
/// # Errors
/// A message naming the part that is wrong.
pub(crate) fn parse(text: &str) -> Result<Keepalive, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [idle, interval, count] = parts[..] else {
        return Err(format!(
            "`{}` is not IDLE:INTERVAL:COUNT (e.g. \"60s:10s:5\")",
            text.escape_debug()
        ));
    };
    let secs = |what: &str, part: &str| -> Result<Duration, String> {
        let d = parse_duration(part).map_err(|e| format!("{what}: {e}"))?;
        if d.subsec_nanos() != 0 || !(1..=MAX_SECS).contains(&d.as_secs()) {
            return Err(format!(
                "{what} `{part}`: whole seconds from 1s to {MAX_SECS}s (the kernel's unit and bound)"
            ));
        }
        Ok(d)
    };
    let count = match count.parse::<u32>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => n,
        _ => {
            return Err(format!(
                "COUNT `{}`: a number of probes from 1 to {MAX_COUNT}",
                count.escape_debug()
            ))
        }
    };
    Ok(Keepalive {
        idle: secs("IDLE", idle)?,
        interval: secs("INTERVAL", interval)?,
        count,
    })
}

impl<'de> Deserialize<'de> for Keepalive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(de::Error::custom)
    }
}

impl super::table::Shown for Keepalive {
    fn shown(&self) -> Option<String> {
        Some(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        let k = parse("60s:10s:5").unwrap();
        assert_eq!(
            (k.idle, k.interval, k.count),
            (Duration::from_secs(60), Duration::from_secs(10), 5)
        );
        assert_eq!(k.to_string(), "60s:10s:5");
        assert_eq!(parse("2m:1s:1").unwrap().idle, Duration::from_secs(120));
        for bad in [
            "60s:10s",
            "60s:10s:5:1",
            "",
            "0s:10s:5",
            "500ms:10s:5",
            "60s:10s:0",
            "60s:10s:128",
            "60s:x:5",
            "10h:10s:5",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("60s:10s:0").unwrap_err().contains("COUNT"));
        assert!(parse("60s:x:5").unwrap_err().contains("INTERVAL"));
    }
}
