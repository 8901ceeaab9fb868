//! Raising the soft fd limit to the hard one at startup, as Go does: a
//! proxy holds up to 6 fds per connection (2 sockets, 2 pipes), and the
//! usual soft limit of 1024 would cap it near 170 connections.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit in force afterwards (`None`: unlimited or unknown).
pub(crate) fn raise_nofile() -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("could not raise RLIMIT_NOFILE: {e}");
        }
    }
    getrlimit(Resource::Nofile).current
}
