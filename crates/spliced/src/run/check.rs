//! `spliced run --check`: the settings as they would run, one line per
//! listener (and one per extra setting that is set), then the pool and the
//! process settings.

use std::fmt::Write as _;

use crate::config::{ListenerSettings, Settings};
use crate::privileges::Account;
use crate::upstream::Upstream;

/// `writeln!` to a `String` (which cannot fail).
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {
        let _ = writeln!($out, $($arg)*);
    };
}

/// `--check`: a listener's PROXY protocol, access and SNI settings, one
/// line each, only those that are set.
fn listener_extras(out: &mut String, l: &ListenerSettings) {
    fn list<T: ToString>(nets: &[T]) -> String {
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
    if let Some(v) = l.send_proxy {
        line!(out, "  send_proxy {}", v.as_str());
    }
    if l.accept_proxy {
        line!(
            out,
            "  accept_proxy from [{}], proxy_timeout {:?}",
            list(&l.accept_proxy_from),
            l.proxy_timeout
        );
    }
    if !l.allow.is_empty() {
        line!(out, "  allow [{}]", list(&l.allow));
    }
    if !l.deny.is_empty() {
        line!(out, "  deny [{}]", list(&l.deny));
    }
    if let Some(n) = l.max_conns_per_source {
        line!(out, "  max_conns_per_source {n}");
    }
    for r in &l.routes {
        line!(
            out,
            "  route sni `{}`: {} to [{}]",
            r.sni,
            r.balance.as_str(),
            join(&r.upstreams)
        );
    }
}

/// The settings of the table that [`listener_extras`] shows, on
/// lines of their own and only when set.
const OWN_LINE: [&str; 4] = [
    "send_proxy",
    "accept_proxy",
    "proxy_timeout",
    "max_conns_per_source",
];

/// Upstreams as a list: `a:1, b:2 weight=3`.
pub(super) fn join(upstreams: &[Upstream]) -> String {
    upstreams
        .iter()
        .map(Upstream::spec)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--check`: the resolved settings (`user`: the account looked up).
pub(crate) fn describe(s: &Settings, user: Option<&Account>) -> String {
    let mut text = String::new();
    let out = &mut text;
    line!(out, "configuration OK");
    for l in &s.listeners {
        // Every setting of the table, but those of their own lines.
        let values: Vec<String> = l
            .table_values()
            .into_iter()
            .filter(|(key, _)| !OWN_LINE.contains(key))
            .map(|(key, value)| format!("{key} {}", value.as_deref().unwrap_or("off")))
            .collect();
        line!(
            out,
            "listener `{}` on {} to [{}]: {}",
            l.name,
            l.listen,
            join(&l.upstreams),
            values.join(", ")
        );
        listener_extras(out, l);
    }
    line!(
        out,
        "pool: max_pipes {}, pipe_size {}, idle_timeout {:?}",
        s.pool.max_pipes(),
        s.pool.pipe_size(),
        s.pool.idle_timeout()
    );
    if let Some(limit) = s.fds_fitted {
        line!(
            out,
            "defaults of max_conns and max_pipes sized to the fd limit ({limit})"
        );
    }
    line!(
        out,
        "metrics: {}; grace_period {:?}; worker_threads {}; worker_model {}; user {}",
        s.metrics.map_or("off".to_owned(), |a| a.to_string()),
        s.grace_period,
        s.worker_threads
            .map_or("one per core".to_owned(), |n| n.to_string()),
        s.worker_model.as_str(),
        user.map_or("as started".to_owned(), |u| format!(
            "{} (uid {}, gid {})",
            u.name, u.uid, u.gid
        ))
    );
    if let Some(path) = &s.admin_socket {
        line!(out, "admin socket: {}", path.display());
    }

    line!(
        out,
        "access_log: {}",
        s.access_log.as_ref().map_or("off".to_owned(), |t| format!(
            "{t} ({})",
            s.access_log_format.as_str()
        ))
    );
    text
}
