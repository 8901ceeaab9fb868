//! The heavy side of the asymmetric fence the reaper uses to reclaim
//! pipes from thread caches (see `local.rs`).
//!
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` makes every running
//! thread of the process execute a full memory barrier before it returns;
//! a thread that is not running passes through the scheduler, which is a
//! barrier too. The process registers once (`..._REGISTER_...`); a forked
//! child inherits no registration, so an `EPERM` registers again.
//! Without kernel support (before Linux 4.14, or behind a seccomp filter)
//! [`heavy`] fails and the reaper leaves the caches alone.

use crate::sync::{fence, Ordering::SeqCst};

/// Whether the heavy fence works in this process: the reaper then reclaims
/// stale pipes from every thread's cache.
#[cfg(not(pipepool_loom))]
pub(super) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| crate::sys::membarrier_register().is_ok())
}

/// Under loom the heavy fence is a `SeqCst` fence, always available.
#[cfg(pipepool_loom)]
pub(super) fn available() -> bool {
    true
}

/// A full barrier on every thread of the process. Returns `false` if the
/// kernel cannot do it (nothing may then rely on it).
#[cfg(not(pipepool_loom))]
pub(super) fn heavy() -> bool {
    use rustix::io::Errno;

    if !available() {
        return false;
    }
    fence(SeqCst);
    let done = match crate::sys::membarrier_private_expedited() {
        Ok(()) => true,
        // Not registered: a child forked after the parent registered.
        Err(Errno::PERM) => {
            crate::sys::membarrier_register().is_ok()
                && crate::sys::membarrier_private_expedited().is_ok()
        }
        Err(_) => false,
    };
    fence(SeqCst);
    done
}

/// Under loom: the `SeqCst` fence that pairs with the owners' (also
/// `SeqCst` under loom) light fences.
#[cfg(pipepool_loom)]
pub(super) fn heavy() -> bool {
    fence(SeqCst);
    true
}
