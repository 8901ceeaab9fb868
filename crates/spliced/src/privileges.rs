//! `user = "NAME"` / `--user NAME`: start as root (to bind port 80, say),
//! then run as NAME once every listener and the metrics socket are bound.
//!
//! The drop is `setgroups([])`, `setgid(gid)`, `setuid(uid)` through the C
//! library (`nix`), which applies each one to every thread of the process
//! (glibc and musl signal the other threads to repeat the call; the raw
//! syscalls that `rustix::thread` offers change one thread only, which is
//! why this module goes through libc). Afterwards it reads
//! `/proc/self/task/*/status` to prove that every thread runs as NAME with
//! no capability left, and that root cannot be regained. It then checks
//! that the `--config` file is still readable, for reloads
//! ([`check_readable`]).

use std::io;
use std::path::Path;

use anyhow::{bail, Context as _};
use nix::errno::Errno;
use nix::unistd::{self, Gid, Uid, User};

/// A user to run as, looked up at configuration time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// The name as given.
    pub(crate) name: String,
    /// Its user id.
    pub(crate) uid: u32,
    /// Its primary group id.
    pub(crate) gid: u32,
}

/// Looks `name` up in the user database (`getpwnam_r(3)`: `/etc/passwd`,
/// or whatever NSS is configured with).
///
/// # Errors
/// A message for a config error: an empty name, a name with a NUL byte, a
/// user that does not exist, or a failing lookup.
pub(crate) fn lookup(name: &str) -> Result<Account, String> {
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    if name.contains('\0') {
        return Err(format!("`{}` is not a user name", name.escape_debug()));
    }
    match User::from_name(name) {
        Ok(Some(user)) => Ok(Account {
            name: name.to_owned(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }),
        // Some C libraries report "not found" as an errno.
        Ok(None) | Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => {
            Err(format!("no such user `{name}`"))
        }
        Err(errno) => Err(format!(
            "cannot look up user `{name}`: {}",
            io::Error::from(errno)
        )),
    }
}

/// Makes the whole process run as `account`: no supplementary groups, its
/// primary group, its user id (real, effective and saved), then checks
/// every thread.
///
/// Already running as exactly that user (and group, with no supplementary
/// group) is fine and changes nothing.
///
/// # Errors
/// A call refused (`EPERM`: not started as root), a thread left with other
/// ids or with capabilities, or root still reachable.
pub(crate) fn drop_to(account: &Account) -> anyhow::Result<()> {
    let Account { name, uid, gid } = account;
    if all_threads_run_as(*uid, *gid).is_ok() {
        tracing::debug!("already running as user `{name}` (uid {uid}, gid {gid})");
        return Ok(());
    }
    unistd::setgroups(&[])
        .map_err(io::Error::from)
        .context("cannot drop the supplementary groups (is spliced started as root?)")?;
    unistd::setgid(Gid::from_raw(*gid))
        .map_err(io::Error::from)
        .with_context(|| format!("cannot change the group to gid {gid}"))?;
    unistd::setuid(Uid::from_raw(*uid))
        .map_err(io::Error::from)
        .with_context(|| format!("cannot change the user to `{name}` (uid {uid})"))?;
    // This must fail; if it succeeds we are root again and stop here.
    if *uid != 0 && unistd::setuid(Uid::from_raw(0)).is_ok() {
        bail!("could regain root after changing to user `{name}`");
    }
    all_threads_run_as(*uid, *gid)
        .with_context(|| format!("the change to user `{name}` did not reach every thread"))?;
    tracing::info!("running as user `{name}` (uid {uid}, gid {gid})");
    Ok(())
}

/// Run after [`drop_to`]: whether the `--config` file at `path` can still
/// be read, as SIGHUP re-reads it as the user spliced now runs as. A
/// root-only file (mode 0600, say) cannot be: a warning at start says
/// so, rather than every reload failing later. (Not an error: a
/// deployment that never reloads works; the file is not kept open either,
/// since an editor that replaces it would leave spliced the old one.)
///
/// # Errors
/// The message of the warning, naming the file and the user.
pub(crate) fn check_readable(path: &Path, account: &Account) -> Result<(), String> {
    match std::fs::File::open(path) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "{} cannot be read as user `{}` ({e}): every reload (SIGHUP) will fail; make it \
             readable by that user (e.g. `chgrp {} FILE; chmod 0640 FILE`) or restart to apply \
             changes",
            path.display(),
            account.name,
            account.gid
        )),
    }
}

/// `Ok` when every thread of this process has `uid` and `gid` as its real,
/// effective, saved and filesystem ids, no supplementary group and (for a
/// user other than root) no effective or permitted capability.
fn all_threads_run_as(uid: u32, gid: u32) -> anyhow::Result<()> {
    let tasks = std::fs::read_dir("/proc/self/task").context("cannot list /proc/self/task")?;
    let mut seen = 0;
    for task in tasks {
        let path = task?.path().join("status");
        let status = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            // The thread exited since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        check_status(&status, uid, gid).with_context(|| path.display().to_string())?;
        seen += 1;
    }
    if seen == 0 {
        bail!("no thread found in /proc/self/task");
    }
    Ok(())
}

/// Checks one `/proc/*/status` text (see [`all_threads_run_as`]).
fn check_status(status: &str, uid: u32, gid: u32) -> anyhow::Result<()> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .with_context(|| format!("no {key} line"))
    };
    let ids = |key: &str, want: u32| -> anyhow::Result<()> {
        let line = field(key)?;
        if line.split_whitespace().all(|v| v == want.to_string()) {
            Ok(())
        } else {
            bail!("{key}: {line} (want {want} everywhere)")
        }
    };
    ids("Uid", uid)?;
    ids("Gid", gid)?;
    let groups = field("Groups")?;
    if !groups.is_empty() {
        bail!("supplementary groups left: {groups}");
    }
    if uid != 0 {
        for key in ["CapEff", "CapPrm"] {
            let caps = field(key)?;
            if u64::from_str_radix(caps, 16) != Ok(0) {
                bail!("{key}: {caps} (want none)");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_missing_users() {
        let root = lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let e = lookup("no-such-user-spliced").unwrap_err();
        assert!(e.contains("no such user `no-such-user-spliced`"), "{e}");
        assert!(lookup("").unwrap_err().contains("empty"));
        assert!(lookup("a\0b").unwrap_err().contains("not a user name"));
    }

    const STATUS: &str = "Name:\tspliced\nUid:\t65534\t65534\t65534\t65534\n\
        Gid:\t65534\t65534\t65534\t65534\nGroups:\t\nCapPrm:\t0000000000000000\n\
        CapEff:\t0000000000000000\n";

    #[test]
    fn status_checks() {
        check_status(STATUS, 65534, 65534).unwrap();
        let e = check_status(STATUS, 65534, 0).unwrap_err().to_string();
        assert!(e.contains("Gid"), "{e}");
        let saved_root = STATUS.replace(
            "Uid:\t65534\t65534\t65534\t65534",
            "Uid:\t65534\t65534\t0\t65534",
        );
        assert!(check_status(&saved_root, 65534, 65534).is_err());
        let grouped = STATUS.replace("Groups:\t\n", "Groups:\t0 \n");
        assert!(check_status(&grouped, 65534, 65534).is_err());
        let capable = STATUS.replace("CapEff:\t0000000000000000", "CapEff:\t000001ffffffffff");
        assert!(check_status(&capable, 65534, 65534).is_err());
    }
}
