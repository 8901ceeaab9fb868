//! Raising the soft fd limit to the hard one at startup, as Go does: a
//! proxy holds up to 6 fds per connection (2 sockets, 2 pipes), and the
//! usual soft limit of 1024 would cap it near 170 connections.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit in force afterwards (`None`: unlimited or unknown).
pub(crate) fn raise_nofile() -> Option<u64> {
    let soft = rlimit::increase_nofile_limit(rlimit::INFINITY).or_else(|e| {
        tracing::debug!("could not raise RLIMIT_NOFILE: {e}");
        rlimit::Resource::NOFILE.get_soft()
    });
    soft.ok().filter(|&n| n != rlimit::INFINITY)
}
