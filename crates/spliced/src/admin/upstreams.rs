//! The upstream commands of the admin socket (`show`, `drain`, `disable`,
//! `enable`, `weight`), answered by [`crate::upstream::command`] on the
//! listeners' upstream groups as they are now (after any reload).
//!
//! ```text
//! show                      one line per upstream, tab-separated: listener,
//!                           address, state (up, down, drain, disabled),
//!                           weight, open connections, last check, notes
//!                           (`runtime: ...` where the run time overrides
//!                           the file)
//! drain LISTENER ADDR       no new connections; open ones run to their end
//! disable LISTENER ADDR     as drain, and its health checks pause
//! enable LISTENER ADDR      undoes drain or disable
//! weight LISTENER ADDR N    its weight (0 to 1000) until changed again
//! ```
//!
//! What these set survives a reload for an upstream still in the file.

use std::sync::Arc;

use super::{Commands, Reply};
use crate::metrics::Metrics;

/// The upstream commands and their help lines.
const COMMANDS: [(&str, &str); 5] = [
    (
        "show",
        "show: each upstream: listener, address, state, weight, connections, last check, notes",
    ),
    (
        "drain",
        "drain LISTENER ADDR: no new connections to ADDR; open ones run to their end",
    ),
    (
        "disable",
        "disable LISTENER ADDR: as drain, and its health checks pause",
    ),
    ("enable", "enable LISTENER ADDR: undoes drain or disable"),
    (
        "weight",
        "weight LISTENER ADDR N: sets its weight (0-1000) at run time",
    ),
];

/// Adds the upstream commands to `commands`, over the listeners that
/// `metrics` reports.
pub(crate) fn add(commands: &mut Commands, metrics: &Arc<Metrics>) {
    for (name, help) in COMMANDS {
        let metrics = Arc::clone(metrics);
        commands.add(name, help, move |args| {
            let metrics = Arc::clone(&metrics);
            async move {
                let listeners = metrics.upstream_groups();
                let words: Vec<&str> = std::iter::once(name)
                    .chain(args.iter().map(String::as_str))
                    .collect();
                match crate::upstream::command(&words, &listeners) {
                    Some(Ok(text)) if text.is_empty() => Ok(Reply::ok()),
                    Some(Ok(text)) => Ok(Reply::lines(text.lines().map(str::to_owned))),
                    Some(Err(e)) => Err(e),
                    None => Err(format!("unknown command `{name}`")),
                }
            }
        });
    }
}
