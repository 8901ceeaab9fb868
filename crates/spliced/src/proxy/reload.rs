//! [`Proxy::reload`]: a new list of listeners applied to the running
//! proxy, paired by address with the running ones.

use std::sync::Arc;
use std::time::Duration;

use super::listener::Running;
use super::state::ListenerState;
use super::{bind_all, drained, Proxy};
use crate::address::ListenAddr;
use crate::config::ListenerSettings;

/// What a reload changed.
#[derive(Debug, Default)]
pub(crate) struct Reloaded {
    /// Listeners bound by the reload: name and address.
    pub(crate) added: Vec<(String, ListenAddr)>,
    /// Listeners that stopped accepting.
    pub(crate) removed: Vec<String>,
    /// Listeners kept, with their settings re-applied.
    pub(crate) kept: usize,
}

impl Proxy {
    /// Applies a new list of listeners: the new ones are bound (all or
    /// none: on an error nothing changes) and accept; those no longer
    /// listed stop accepting, and their open connections are closed if
    /// still open after `grace`; the others take their new settings for
    /// their next connections. Open connections are never touched
    /// otherwise.
    ///
    /// # Errors
    /// A new listener that cannot bind, named with its address.
    pub(crate) async fn reload(
        &mut self,
        listeners: Vec<ListenerSettings>,
        grace: Duration,
    ) -> anyhow::Result<Reloaded> {
        // Pair each new listener with the running one it replaces, if any.
        let mut taken = vec![false; self.listeners.len()];
        let mut pairs = Vec::with_capacity(listeners.len());
        let mut fresh = Vec::new();
        for settings in listeners {
            let found =
                (0..self.listeners.len()).find(|&i| !taken[i] && self.listeners[i].is(&settings));
            if let Some(i) = found {
                taken[i] = true;
            } else {
                fresh.push(settings.clone());
            }
            pairs.push((settings, found));
        }
        // Bind first: an error leaves everything as it was. Nothing
        // after this point fails, so the reload is all or nothing: every
        // old listener is either kept or stopped and drained, tracked.
        let mut bound = bind_all(fresh, &self.ctx).await?.into_iter();
        let mut old: Vec<Option<Running>> = self.listeners.drain(..).map(Some).collect();
        let mut done = Reloaded::default();
        for (settings, found) in pairs {
            match found.and_then(|i| old[i].take()) {
                Some(r) => {
                    let previous = Arc::clone(&r.current.borrow());
                    apply_file_settings(&previous.settings, &settings);
                    let shared =
                        ListenerState::new(settings, &self.ctx, Some(&previous), previous.local);
                    shared.resolve(&self.ctx).await;
                    shared.refresh_dns(&self.ctx);
                    r.current.send_replace(Arc::new(shared));
                    previous.retire();
                    done.kept += 1;
                    self.listeners.push(r);
                }
                None => {
                    let l = bound.next().expect("one bound listener per new one");
                    let r = l.start(&self.ctx);
                    done.added.push((r.name(), r.addr.clone()));
                    self.listeners.push(r);
                }
            }
        }
        for r in old.into_iter().flatten() {
            done.removed.push(r.name());
            r.current.borrow().retire();
            r.stop.cancel();
            tokio::spawn(async move {
                for accept_loop in r.accept_loops {
                    let _ = accept_loop.await;
                }
                // Closed: a Unix listener's socket file goes now, before
                // the grace period.
                drop(r.file);
                let left = drained(&r.tracker, grace).await;
                if left > 0 {
                    tracing::warn!(
                        "closing {left} connection(s) of a removed listener after the grace period"
                    );
                    r.kill.cancel();
                }
            });
        }
        let names: Vec<String> = self.listeners.iter().map(Running::name).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.ctx.metrics.retain_listeners(&names);
        self.update_addrs();
        Ok(done)
    }
}

/// A kept Unix listener whose `unix_mode`, `unix_owner` or `unix_group`
/// changed: its socket file gets them now (a warning if it cannot).
fn apply_file_settings(old: &ListenerSettings, new: &ListenerSettings) {
    let (Some(path), file) = (new.listen.unix(), new.unix_file()) else {
        return;
    };
    if old.unix_file() == file {
        return;
    }
    match crate::unix_socket::apply(path, &file) {
        Ok(()) => tracing::info!(
            listener = %new.name,
            "the socket file {} has its new unix_mode/unix_owner/unix_group",
            path.display()
        ),
        Err(e) => tracing::warn!(
            listener = %new.name,
            "cannot give the socket file {} its new unix_mode/unix_owner/unix_group: {e}",
            path.display()
        ),
    }
}
