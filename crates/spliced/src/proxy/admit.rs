//! Admission: whether a client just accepted may be served
//! ([`Gate::admit`]: `Result<Admitted, Refusal>`), and what an admitted
//! one holds against its listener's bounds until its connection ends
//! ([`Admitted`]).
//!
//! At accept, before a byte is read: `allow`/`deny` on the peer (or,
//! with `accept_proxy`, whether the peer may send a PROXY header at all),
//! then `max_conns`. The checks that need the client's real address (the
//! header's) or its first bytes are in [`super::conn`].

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use super::refusal::Refusal;
use super::state::ListenerState;
use crate::address::Peer;

/// The admission state of one listener that outlives its reloads: its
/// open connections, checked against the current `max_conns` (a reload
/// that lowers it refuses new clients until enough have closed).
#[derive(Debug, Default)]
pub(super) struct Gate {
    open: Arc<AtomicUsize>,
}

/// A client admitted: counted against its listener's `max_conns`, in the
/// `active` gauge and in both trackers (the process's and the
/// listener's, for the grace periods) until dropped, also when the
/// connection's task panics or is dropped by the runtime.
#[derive(Debug)]
pub(super) struct Admitted {
    _slot: Slot,
    _active: ActiveGuard,
    _tracked: [TaskTrackerToken; 2],
}

impl Gate {
    /// Admits the client at `peer` to the listener whose current state is
    /// `shared`, counted in `trackers`; or says why not (counting a
    /// `max_conns` refusal in the `refused` metric).
    ///
    /// # Errors
    /// The [`Refusal`]: the client is to be closed at once.
    pub(super) fn admit(
        &self,
        shared: &ListenerState,
        peer: Peer,
        trackers: &[TaskTracker; 2],
    ) -> Result<Admitted, Refusal> {
        let settings = &shared.settings;
        let m = &shared.metrics;
        // With accept_proxy the client's address is the header's
        // (checked once it is read), and only a trusted peer may send
        // one: anyone else is closed before a byte is read.
        if settings.accept_proxy {
            if !shared.acl.trusts_proxy_peer(peer) {
                return Err(Refusal::UntrustedProxy);
            }
        } else if !shared.acl.permits_peer(peer) {
            return Err(Refusal::Denied);
        }
        if self.open.fetch_add(1, Relaxed) >= settings.max_conns {
            self.open.fetch_sub(1, Relaxed);
            m.refused.inc();
            return Err(Refusal::MaxConns);
        }
        let slot = Slot(Arc::clone(&self.open));
        m.accepted.inc();
        Ok(Admitted {
            _slot: slot,
            _active: ActiveGuard::new(m.active.clone()),
            _tracked: trackers.each_ref().map(TaskTracker::token),
        })
    }
}

/// One connection counted against its listener's `max_conns` until dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// One count in the `active` connections gauge, taken back when dropped.
#[derive(Debug)]
struct ActiveGuard(Gauge);

impl ActiveGuard {
    fn new(gauge: Gauge) -> ActiveGuard {
        gauge.inc();
        ActiveGuard(gauge)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunArgs;
    use crate::proxy::Context;
    use clap::Parser;

    /// The state of a listener with the flags `flags` (after
    /// `--listen 127.0.0.1:0 --upstream 127.0.0.1:9`).
    fn listener(flags: &[&str]) -> ListenerState {
        #[derive(Parser)]
        struct Run {
            #[command(flatten)]
            run: RunArgs,
        }
        let base = [
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
        ];
        let args = Run::try_parse_from(base.iter().chain(flags)).unwrap().run;
        let settings = crate::config::load("", &args).unwrap();
        let pool = pipepool::PoolConfig::builder().build().unwrap();
        let ctx = Context::new(pool.clone(), Arc::new(crate::metrics::Metrics::new(&pool)));
        let l = settings.listeners.into_iter().next().unwrap();
        ListenerState::new(l, &ctx, None, None)
    }

    fn peer(s: &str) -> Peer {
        Peer::Ip(s.parse().unwrap())
    }

    #[test]
    fn max_conns_admits_up_to_the_bound_and_again_after_a_close() {
        let state = listener(&["--max-conns", "2"]);
        let (gate, trackers) = (Gate::default(), [TaskTracker::new(), TaskTracker::new()]);
        let a = gate
            .admit(&state, peer("127.0.0.1:1000"), &trackers)
            .unwrap();
        let _b = gate
            .admit(&state, peer("127.0.0.1:1001"), &trackers)
            .unwrap();
        let refused = gate.admit(&state, peer("127.0.0.1:1002"), &trackers);
        assert_eq!(refused.unwrap_err(), Refusal::MaxConns);
        assert_eq!((trackers[0].len(), trackers[1].len()), (2, 2));
        assert_eq!(state.metrics.active.get(), 2);
        drop(a);
        assert_eq!((trackers[0].len(), state.metrics.active.get()), (1, 1));
        assert!(gate
            .admit(&state, peer("127.0.0.1:1003"), &trackers)
            .is_ok());
    }

    #[test]
    fn access_lists_and_trusted_proxies_refuse_at_accept() {
        let trackers = [TaskTracker::new(), TaskTracker::new()];
        let state = listener(&["--deny", "10.0.0.0/8"]);
        let gate = Gate::default();
        let denied = gate.admit(&state, peer("10.1.2.3:5"), &trackers);
        assert_eq!(denied.unwrap_err(), Refusal::Denied);
        assert!(gate.admit(&state, peer("192.0.2.1:5"), &trackers).is_ok());
        // With accept_proxy only the balancers may connect; the header's
        // address is judged later, so allow/deny do not apply here.
        let state = listener(&[
            "--accept-proxy",
            "--accept-proxy-from",
            "10.0.0.1",
            "--deny",
            "10.0.0.0/8",
        ]);
        let untrusted = gate.admit(&state, peer("192.0.2.1:5"), &trackers);
        assert_eq!(untrusted.unwrap_err(), Refusal::UntrustedProxy);
        assert!(gate.admit(&state, peer("10.0.0.1:5"), &trackers).is_ok());
    }
}
