//! The fd budget: raising the soft fd limit to the hard one at startup (as
//! Go does), and sizing the default `max_conns` and `max_pipes` to fit
//! under the raised limit.
//!
//! A proxied connection holds 2 sockets; a pipe 2 fds. With every bound
//! reached at once the proxy needs `2 * sum(max_conns) + 2 * max_pipes`
//! fds, plus a reserve for listeners, the runtime, the metrics endpoint
//! and the log. Defaults that exceed the limit only turn into EMFILE
//! (accept backs off, pipes fall back to userspace) and a warning at every
//! start; so the defaults are chosen to fit, and only settings the
//! operator wrote can exceed it (which is then warned about once).

/// The built-in cap on a listener's default `max_conns` (a larger fd
/// limit does not raise it).
pub(crate) const MAX_DEFAULT_CONNS: usize = 10_000;
/// The built-in cap on the default `max_pipes`.
pub(crate) const MAX_DEFAULT_PIPES: usize = 4096;
/// Fds kept out of the budget, at most: listeners, the runtime (epoll,
/// eventfd, signal pipe), the log, stdio, the metrics endpoint's
/// connections ([`crate::metrics::http::MAX_CONNS`]) and upstream
/// connects in flight past `max_conns`.
pub(crate) const RESERVE: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit in force afterwards (`None`: unlimited or unknown).
pub(crate) fn raise_nofile() -> Option<u64> {
    if let Err(e) = rlimit::increase_nofile_limit(rlimit::INFINITY) {
        tracing::debug!("could not raise RLIMIT_NOFILE: {e}");
    }
    nofile()
}

/// The soft `RLIMIT_NOFILE` now (`None`: unlimited or unknown).
pub(crate) fn nofile() -> Option<u64> {
    rlimit::Resource::NOFILE
        .get_soft()
        .ok()
        .filter(|&n| n != rlimit::INFINITY)
}

/// The fds kept out of the budget under `limit`: [`RESERVE`], or an
/// eighth of a small limit (at least 16).
fn reserve(limit: u64) -> u64 {
    RESERVE.min((limit / 8).max(16))
}

/// What [`fit`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fit {
    /// Each listener's `max_conns` (the given ones unchanged).
    pub(crate) max_conns: Vec<usize>,
    /// `max_pipes` (the given one unchanged).
    pub(crate) max_pipes: usize,
    /// Whether a default was made smaller than its built-in cap to fit.
    pub(crate) shrunk: bool,
}

/// Chooses the defaults: `conns[i]` is listener i's `max_conns` if the
/// operator set it, `pipes` the `max_pipes` if set; `limit` the fd limit
/// (`None`: unlimited).
///
/// Given values are kept. Of the budget (`limit` less the reserve),
/// connections take 4/5 (2 fds each: as many connections as 2/5 of the
/// budget), which leaves room for a quarter as many pipes as connections
/// (HAProxy's `maxpipes = maxconn / 4`); the listeners left to default
/// share what the given ones leave of it, each up to
/// [`MAX_DEFAULT_CONNS`]. The default `max_pipes` then takes what is left
/// of the budget, up to [`MAX_DEFAULT_PIPES`]. Never less than 1
/// connection per listener and 2 pipes.
pub(crate) fn fit(limit: Option<u64>, conns: &[Option<usize>], pipes: Option<usize>) -> Fit {
    let Some(limit) = limit else {
        return Fit {
            max_conns: conns
                .iter()
                .map(|c| c.unwrap_or(MAX_DEFAULT_CONNS))
                .collect(),
            max_pipes: pipes.unwrap_or(MAX_DEFAULT_PIPES),
            shrunk: false,
        };
    };
    let budget = usize::try_from(limit.saturating_sub(reserve(limit))).unwrap_or(usize::MAX);
    let given: usize = conns.iter().flatten().sum();
    let defaulted = conns.iter().filter(|c| c.is_none()).count();
    let mut shrunk = false;
    let conn_budget = match pipes {
        Some(p) => budget.saturating_sub(p.saturating_mul(2)) / 2,
        None => budget / 5 * 2,
    };
    // (No listener left to default: no share to compute.)
    let each = match conn_budget.saturating_sub(given).checked_div(defaulted) {
        Some(share) => {
            shrunk |= share < MAX_DEFAULT_CONNS;
            share.clamp(1, MAX_DEFAULT_CONNS)
        }
        None => 0,
    };
    let max_conns: Vec<usize> = conns.iter().map(|c| c.unwrap_or(each)).collect();
    let total: usize = max_conns.iter().sum();
    let max_pipes = match pipes {
        Some(p) => p,
        None => {
            let left = budget.saturating_sub(total.saturating_mul(2)) / 2;
            shrunk |= left < MAX_DEFAULT_PIPES;
            left.clamp(2, MAX_DEFAULT_PIPES)
        }
    };
    Fit {
        max_conns,
        max_pipes,
        shrunk,
    }
}

/// The fds `max_conns` (all listeners) and `max_pipes` may need at once,
/// reserve included.
pub(crate) fn fds_needed(limit: u64, total_conns: usize, max_pipes: usize) -> u64 {
    2 * total_conns as u64 + 2 * max_pipes as u64 + reserve(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults always fit, whatever the limit and listener count.
    #[test]
    fn defaults_fit_under_the_limit() {
        for limit in [32, 48, 64, 256, 1024, 4096, 20_000, 65_536, 1 << 20] {
            for n in 1..=4 {
                let f = fit(Some(limit), &vec![None; n], None);
                let total: usize = f.max_conns.iter().sum();
                assert!(
                    fds_needed(limit, total, f.max_pipes) <= limit,
                    "limit {limit}, {n} listener(s): {f:?}"
                );
                assert!(f.max_conns.iter().all(|&c| c >= 1), "{f:?}");
                assert!(f.max_pipes >= 2, "{f:?}");
            }
        }
    }

    #[test]
    fn a_20000_limit() {
        // The usual container limit: 20,000 with the old defaults (10,000
        // connections and 4,096 pipes) needed 28,000+ fds.
        let f = fit(Some(20_000), &[None], None);
        assert_eq!(f.max_conns, [7_948]);
        assert_eq!(f.max_pipes, 1_988);
        assert!(f.shrunk);
        assert_eq!(fds_needed(20_000, 7_948, 1_988), 20_000);
    }

    #[test]
    fn a_large_limit_keeps_the_built_in_caps() {
        let f = fit(Some(1 << 20), &[None, None], None);
        assert_eq!(f.max_conns, [MAX_DEFAULT_CONNS, MAX_DEFAULT_CONNS]);
        assert_eq!(f.max_pipes, MAX_DEFAULT_PIPES);
        assert!(!f.shrunk);
        let f = fit(None, &[None], None);
        assert_eq!((f.max_conns[0], f.max_pipes), (MAX_DEFAULT_CONNS, 4096));
    }

    #[test]
    fn given_values_are_kept_and_the_defaults_share_the_rest() {
        let f = fit(Some(10_128), &[Some(3_000), None], Some(1_000));
        // budget 10,000; pipes 2,000 fds; 4,000 connections, 3,000 given.
        assert_eq!(f.max_conns, [3_000, 1_000]);
        assert_eq!(f.max_pipes, 1_000);
        // Given values past the limit are the operator's: kept.
        let f = fit(Some(64), &[Some(500)], Some(100));
        assert_eq!((f.max_conns[0], f.max_pipes), (500, 100));
        let f = fit(Some(64), &[Some(500)], None);
        assert_eq!(f.max_pipes, 2);
    }
}
