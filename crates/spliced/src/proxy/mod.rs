//! The proxy: one listener per configured listener ([`listener`]), each
//! with its upstream groups (and SNI routes, [`sni`]), its admission
//! checks ([`admit`]: access lists, `max_conns`) and its accept loop
//! ([`accept`]); one task per client connection ([`conn`]), which reads a
//! PROXY header first with `accept_proxy` and writes one with
//! `send_proxy` ([`proxy_header`]), connects an upstream ([`connect`]) and
//! forwards.
//!
//! Hot reload ([`Proxy::reload`], [`reload`]): everything a listener's
//! connections use is built from its settings alone
//! ([`listener::ListenerState::new`]) and published in a watch channel;
//! each accept takes the current one, so a reload swaps in a new one for
//! new connections while open connections keep theirs. Settings added to
//! [`ListenerSettings`] (and built in `ListenerState::new`) reload with no
//! further work.
//!
//! Workers ([`workers`]): by default each listener is a list of sockets,
//! one per worker thread (`SO_REUSEPORT`), each with its own accept loop on
//! that worker's single-threaded runtime, where its connections stay;
//! `worker_model = "work-stealing"` runs everything on tokio's
//! multi-thread runtime instead.
//!
//! Shutdown: the proxy's `CancellationToken` ([`Context`]) stops every accept loop
//! (each listener's is a child token, cancelled alone when a reload
//! removes it); [`TaskTracker`]s count open connections for the grace
//! periods.

mod abort;
mod accept;
mod admit;
mod conn;
mod connect;
mod listener;
mod pressure;
mod proxy_header;
mod refusal;
mod reload;
mod sni;
mod state;
mod workers;

use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::address::ListenAddr;
use crate::config::ListenerSettings;
use listener::{Listener, Running};

pub(crate) use proxy_header::read as read_proxy_header;
pub(crate) use state::Context;
pub(crate) use workers::Workers;

/// Every listener of one process, bound but not accepting yet.
#[derive(Debug)]
pub(crate) struct Bound {
    listeners: Vec<Listener>,
    ctx: Context,
}

impl Bound {
    /// Starts accepting on every listener.
    pub(crate) fn start(self) -> Proxy {
        let running = self
            .listeners
            .into_iter()
            .map(|l| l.start(&self.ctx))
            .collect();
        let mut proxy = Proxy {
            addrs: Vec::new(),
            listeners: running,
            ctx: self.ctx,
        };
        proxy.update_addrs();
        proxy
    }
}

/// Every listener of one process, accepting.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Name and bound address of each listener.
    addrs: Vec<(String, ListenAddr)>,
    /// In the order of the config.
    listeners: Vec<Running>,
    ctx: Context,
}

impl Proxy {
    /// Binds every listener (all or none), then starts accepting.
    ///
    /// # Errors
    /// The first listener that cannot bind, named with its address.
    pub(crate) async fn start(
        listeners: Vec<ListenerSettings>,
        ctx: &Context,
    ) -> anyhow::Result<Proxy> {
        Ok(Proxy::bind(listeners, ctx).await?.start())
    }

    /// Binds every listener (all or none); [`Bound::start`] then accepts.
    ///
    /// # Errors
    /// The first listener that cannot bind, named with its address.
    pub(crate) async fn bind(
        listeners: Vec<ListenerSettings>,
        ctx: &Context,
    ) -> anyhow::Result<Bound> {
        Ok(Bound {
            listeners: bind_all(listeners, ctx).await?,
            ctx: ctx.clone(),
        })
    }

    /// Name and bound address of each listener.
    pub(crate) fn addrs(&self) -> &[(String, ListenAddr)] {
        &self.addrs
    }

    pub(super) fn update_addrs(&mut self) {
        self.addrs = self
            .listeners
            .iter()
            .map(|r| (r.name(), r.addr.clone()))
            .collect();
    }

    /// Every listening socket, duplicated, for a process taking over
    /// (`--takeover`): the listener's name, its configured address, its
    /// sockets.
    ///
    /// # Errors
    /// As `fcntl(F_DUPFD_CLOEXEC)` (out of fds).
    pub(crate) fn sockets(&self) -> std::io::Result<Vec<crate::admin::takeover::Sockets>> {
        use std::os::fd::AsFd as _;
        let mut all = Vec::with_capacity(self.listeners.len());
        for r in &self.listeners {
            let (name, listen) = {
                let now = r.current.borrow();
                (now.settings.name.clone(), now.settings.listen.clone())
            };
            // Those whose accept loops still run.
            let mut fds = Vec::with_capacity(r.sockets.len());
            for socket in r.sockets.iter().filter_map(std::sync::Weak::upgrade) {
                fds.push(socket.as_fd().try_clone_to_owned()?);
            }
            if fds.is_empty() {
                continue;
            }
            all.push(crate::admin::takeover::Sockets {
                listener: Some(name),
                listen,
                fds,
            });
        }
        Ok(all)
    }

    /// Another process accepts on every listening socket now
    /// (`--takeover`): the Unix listeners' socket files are its to
    /// remove; this process leaves them at exit.
    pub(crate) fn handed_over(&self) {
        for file in self.listeners.iter().filter_map(|r| r.file.as_ref()) {
            file.keep();
        }
    }

    /// Connections open now.
    pub(crate) fn active(&self) -> usize {
        self.ctx.tracker.len()
    }

    /// Stops accepting (the listening sockets close), then waits up to
    /// `grace` for open connections to finish. Returns how many were still
    /// open (they end when the runtime does).
    pub(crate) async fn stop(self, grace: Duration) -> usize {
        // Every listener's token is a child of this one.
        self.ctx.stop.cancel();
        for r in self.listeners {
            for accept_loop in r.accept_loops {
                let _ = accept_loop.await;
            }
            // Not accepting any more: a Unix listener's file goes now.
            drop(r.file);
        }
        drained(&self.ctx.tracker, grace).await
    }
}

/// Binds every listener (all or none).
///
/// # Errors
/// The first listener that cannot bind, named with its address.
async fn bind_all(
    listeners: Vec<ListenerSettings>,
    ctx: &Context,
) -> anyhow::Result<Vec<Listener>> {
    use anyhow::Context as _;
    let mut bound = Vec::with_capacity(listeners.len());
    for settings in listeners {
        let (name, addr) = (settings.name.clone(), settings.listen.clone());
        let l = Listener::bind(settings, ctx)
            .await
            .with_context(|| format!("cannot listen on {addr} (listener `{name}`)"))?;
        bound.push(l);
    }
    Ok(bound)
}

/// Waits until `tracker` has no task left or `grace` has passed; returns
/// how many are still open. `tracker` is closed: it waits for those it
/// has.
pub(crate) async fn drained(tracker: &TaskTracker, grace: Duration) -> usize {
    tracker.close();
    let _ = tokio::time::timeout(grace, tracker.wait()).await;
    tracker.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_the_last_connection_or_the_grace_period() {
        let tracker = TaskTracker::new();
        let (a, b) = (tracker.token(), tracker.token());
        assert_eq!(drained(&tracker, Duration::from_millis(10)).await, 2);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(a);
            drop(b);
        });
        assert_eq!(drained(&tracker, Duration::from_secs(5)).await, 0);
    }
}
