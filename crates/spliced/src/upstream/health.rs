//! Active health checks: per listener, every `health_interval`, each
//! upstream of each group is probed by a task of its own (one slow or
//! silent upstream never delays the checks of another), the first checks
//! spread over the interval (no burst across upstreams). A probe is a TCP
//! connect (a connect to the socket's path for a `unix:/path` upstream:
//! a missing or stale socket file fails it), then, with `health_send`/`health_expect`, a write and a read
//! that must contain the expected bytes, all within `health_timeout`; it
//! is closed with a reset (no `TIME_WAIT` left per check) and costs no
//! pipe.
//!
//! `health_fall` failures in a row hold an upstream down (no new client),
//! `health_rise` passes in a row bring it back; each transition is logged
//! once, with the reason. Passive health ([`super::state`]) stays either
//! way. A disabled upstream (`spliced ctl disable`) is not probed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::MissedTickBehavior;

use super::state::{Admin, State};
use super::Balancer;

/// The most bytes of an answer searched for `health_expect`.
const MAX_ANSWER: usize = 4096;

/// How a listener checks its upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthCheck {
    /// Between two checks of one upstream (not zero).
    pub(crate) interval: Duration,
    /// The longest one check may take.
    pub(crate) timeout: Duration,
    /// Passes in a row that bring a down upstream up (at least 1).
    pub(crate) rise: u32,
    /// Failures in a row that take an upstream down (at least 1).
    pub(crate) fall: u32,
    /// Written once connected.
    pub(crate) send: Option<Vec<u8>>,
    /// Required in the first bytes answered.
    pub(crate) expect: Option<Vec<u8>>,
}

/// Starts the checks of every upstream of `groups` (listener
/// `listener`'s groups), each until its group is retired (replaced by a
/// reload) or dropped. The first checks are spread over the interval
/// across all the groups.
pub(crate) fn spawn_checks(check: &Arc<HealthCheck>, groups: &[&Arc<Balancer>], listener: &str) {
    let total: usize = groups.iter().map(|b| b.states().len()).sum();
    let total = u32::try_from(total.max(1)).unwrap_or(u32::MAX);
    let mut k = 0u32;
    for balancer in groups {
        for index in 0..balancer.states().len() {
            let offset = check.interval / total * k;
            k = k.saturating_add(1);
            tokio::spawn(run(
                Arc::clone(check),
                Arc::downgrade(balancer),
                index,
                listener.to_owned(),
                offset,
            ));
        }
    }
}

/// The checks of upstream `index` of `balancer`.
async fn run(
    check: Arc<HealthCheck>,
    balancer: Weak<Balancer>,
    index: usize,
    listener: String,
    offset: Duration,
) {
    tokio::time::sleep(offset).await;
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Results in a row: passes (> 0) or failures (< 0).
    let mut streak: i64 = 0;
    loop {
        ticks.tick().await;
        let state = match balancer.upgrade() {
            Some(b) if !b.is_retired() => Arc::clone(&b.states()[index]),
            _ => return,
        };
        if state.admin() == Admin::Disabled {
            streak = 0;
            continue;
        }
        let result = probe(&state, &check).await;
        streak = match (&result, streak) {
            (Ok(()), s) => s.max(0) + 1,
            (Err(_), s) => s.min(0) - 1,
        };
        let was_down = state.checked_down();
        let down = if was_down {
            streak < i64::from(check.rise)
        } else {
            -streak >= i64::from(check.fall)
        };
        if state.checked(&result, down) {
            let upstream = state.addr().as_str();
            match &result {
                Err(why) => tracing::warn!(
                    listener,
                    upstream,
                    "upstream down: {} checks in a row failed, the last: {why}",
                    check.fall
                ),
                Ok(()) => tracing::info!(
                    listener,
                    upstream,
                    "upstream up: {} checks in a row passed",
                    check.rise
                ),
            }
        }
    }
}

/// One check of `state`'s upstream.
///
/// # Errors
/// Why it failed, for the log and `spliced ctl show`.
async fn probe(state: &State, check: &HealthCheck) -> Result<(), String> {
    let attempt = async {
        let connect = |e: std::io::Error| format!("connect: {e}");
        if let Some(path) = state.addr().unix_path() {
            // A Unix socket: a connect to a path nobody listens on is
            // refused (`ECONNREFUSED`), one that is gone is `ENOENT`.
            let stream = UnixStream::connect(path).await.map_err(connect)?;
            return converse(stream, check).await;
        }
        let addrs = state.socket_addrs().map_err(|e| e.to_string())?;
        let stream = TcpStream::connect(&*addrs).await.map_err(connect)?;
        // Closed with a reset: no TIME_WAIT per check.
        let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
        converse(stream, check).await
    };
    match tokio::time::timeout(check.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

/// A probe once connected: `health_send`, then `health_expect` in the
/// answer, if set.
async fn converse<S>(mut stream: S, check: &HealthCheck) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    {
        if let Some(send) = &check.send {
            stream
                .write_all(send)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        let Some(expect) = &check.expect else {
            return Ok(());
        };
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "closed without sending \"{}\"",
                    expect.escape_ascii()
                ));
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(expect.len()).any(|w| w == expect.as_slice()) {
                return Ok(());
            }
            if answer.len() >= MAX_ANSWER {
                return Err(format!(
                    "no \"{}\" in the first {MAX_ANSWER} bytes",
                    expect.escape_ascii()
                ));
            }
        }
    }
}

/// Decodes `\r`, `\n`, `\t`, `\\` and `\xNN` in `text`
/// (`health_send`, `health_expect`).
///
/// # Errors
/// An unknown escape or a bad `\x`, named.
pub(crate) fn decode_escapes(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = (hex.len() == 2)
                    .then(|| u8::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("`\\x{hex}`: \\x needs two hex digits"))?;
                out.push(byte);
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}` (use \\r \\n \\t \\\\ or \\xNN)"
                ))
            }
            None => return Err("a lone `\\` at the end".to_owned()),
        }
    }
    if out.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Balance;
    use std::net::SocketAddr;

    /// A listener whose accept queue is full: the kernel drops new SYNs,
    /// so a connect to it hangs. Returned with what keeps it so.
    fn silent() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        s.listen(0).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(c) => fillers.push(c),
                Err(_) => break,
            }
        }
        (s, fillers, addr)
    }

    /// A silent upstream whose checks hang until their timeout does not
    /// delay the checks of a live one: each has a task of its own.
    #[tokio::test(flavor = "current_thread")]
    async fn a_silent_upstream_never_delays_another() {
        let (_s, _fillers, quiet) = silent();
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((c, _)) = live.accept().await {
                drop(c);
            }
        });
        let b = Balancer::renew(
            Balance::RoundRobin,
            vec![quiet.into(), live_addr.into()],
            None,
        );
        let check = Arc::new(HealthCheck {
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            rise: 1,
            fall: 1,
            send: None,
            expect: None,
        });
        spawn_checks(&check, &[&b], "test");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let states = b.states();
        assert_eq!(
            states[0].check_counts(),
            (0, 0),
            "the silent one still hangs"
        );
        let (passed, failed) = states[1].check_counts();
        assert!(
            passed >= 5 && failed == 0,
            "{passed} passed, {failed} failed"
        );
        assert_eq!(states[1].last_check(), "pass");
        b.retire();
    }

    #[test]
    fn escapes() {
        assert_eq!(decode_escapes("PING\\r\\n").unwrap(), b"PING\r\n");
        assert_eq!(
            decode_escapes("a\\tb\\\\c\\x00\\xfF").unwrap(),
            b"a\tb\\c\x00\xff"
        );
        assert_eq!(decode_escapes("é").unwrap(), "é".as_bytes());
        for bad in ["\\q", "\\x1", "\\xzz", "x\\", ""] {
            assert!(decode_escapes(bad).is_err(), "{bad}");
        }
    }
}
