//! The signals of a process: [`Signals`] waits for SIGINT or SIGTERM (the
//! graceful shutdown) and SIGHUP (the reload). Stopping and draining are
//! tokio-util's `CancellationToken` and `TaskTracker`, in [`crate::proxy`].

use std::io;

use tokio::signal::unix::{signal as unix_signal, Signal, SignalKind};

/// SIGINT, SIGTERM and SIGHUP handlers. Install them before announcing
/// the listeners, so that a signal sent right after is never fatal.
#[derive(Debug)]
pub(crate) struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

/// The name [`Signals::recv`] returns for SIGHUP.
pub(crate) const SIGHUP: &str = "SIGHUP";

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// If the handlers cannot be installed.
    pub(crate) fn install() -> io::Result<Signals> {
        Ok(Signals {
            int: unix_signal(SignalKind::interrupt())?,
            term: unix_signal(SignalKind::terminate())?,
            hup: unix_signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next SIGINT, SIGTERM or SIGHUP and returns its name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => SIGHUP,
        }
    }
}
