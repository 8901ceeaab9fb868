//! Unix-socket listeners: binding the socket file ([`bind`]) and removing
//! it at exit ([`SocketFile`]).
//!
//! At bind, what is at the path decides:
//!
//! - nothing: the socket is made there;
//! - a socket nobody accepts on (`connect(2)` gets `ECONNREFUSED`: a
//!   process that died without removing it): stale, replaced;
//! - a socket someone accepts on: an error naming the path (another
//!   spliced, or another server, owns it);
//! - anything else (a regular file, a directory, a symbolic link): an
//!   error; it is never removed.
//!
//! The socket is bound at a temporary name beside the path
//! (`PATH.PID.tmp`), listening, given its mode (`unix_mode`, default
//! 0600) and owner (`unix_owner`, `unix_group`), then renamed over the
//! path: no client ever sees the file with other permissions, and a
//! stale socket is replaced in one step (HAProxy does the same). When
//! that name would be longer than `sun_path` allows, the socket is bound
//! at the path itself and its mode set just after.
//!
//! The file is removed when the listener stops: at exit (after the
//! accept loops ended, before draining), and when a reload removes the
//! listener. It stays when a reload keeps the listener (which gives it a
//! changed mode or owner: [`apply`]), and when another
//! process took the listener over (`--takeover`): the new process owns
//! it then and removes it when it exits. A file is removed only if the
//! path still names the socket this process bound (same device and
//! inode): a file put there since by someone else stays.
//!
//! A socket systemd passed (socket activation) has a file that is
//! systemd's: it is never removed. (Known gap: a process that takes such
//! a listener over with `--takeover` cannot tell it from a bound one,
//! and removes the file at its exit.)
//!
//! Workers: `SO_REUSEPORT` does not apply to Unix sockets, so a Unix
//! listener has one socket and one accept queue, and every worker
//! accepts on a duplicate of it (as for a socket systemd passes): each
//! worker's runtime registers a descriptor of its own, all on the one
//! accept queue.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The default mode of a listener's socket file: its owner only.
pub(crate) const DEFAULT_MODE: u32 = 0o600;

/// What a Unix listener's socket file gets at bind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileSettings {
    /// Permission bits (`unix_mode`); `None`: [`DEFAULT_MODE`].
    pub(crate) mode: Option<u32>,
    /// Owner (`unix_owner`): a user name or a numeric id; `None`: the
    /// user spliced binds as.
    pub(crate) owner: Option<String>,
    /// Group (`unix_group`): a group name or a numeric id; `None`: that
    /// user's primary group.
    pub(crate) group: Option<String>,
}

/// A listener's socket file, removed when dropped unless [`keep`]
/// was called (another process took it over).
///
/// [`keep`]: SocketFile::keep
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file this process bound (or took over):
    /// only that file is removed.
    id: (u64, u64),
    /// Set once another process owns the file.
    kept: AtomicBool,
}

impl SocketFile {
    /// The socket file at `path`, as it is now (a listener taken over
    /// from another process: removed at this one's exit).
    ///
    /// # Errors
    /// As `stat(2)`; `InvalidInput` if `path` is not a socket.
    pub(crate) fn adopt(path: &Path) -> io::Result<SocketFile> {
        let meta = fs::symlink_metadata(path)?;
        if !meta.file_type().is_socket() {
            return Err(not_a_socket(path));
        }
        Ok(SocketFile {
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
            kept: AtomicBool::new(false),
        })
    }

    /// The file stays at exit: another process accepts on the socket now.
    pub(crate) fn keep(&self) {
        self.kept.store(true, Relaxed);
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.kept.load(Relaxed) {
            return;
        }
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == self.id);
        if !ours {
            tracing::debug!(path = %self.path.display(), "socket file replaced since: left alone");
            return;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => tracing::debug!(path = %self.path.display(), "socket file removed"),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "cannot remove the socket file: {e}");
            }
        }
    }
}

/// A listener's path names something that is not a socket: a mistake in
/// the configuration (exit code 2), never removed.
#[derive(Debug)]
pub(crate) struct NotASocket(PathBuf);

impl std::fmt::Display for NotASocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exists and is not a socket: not replaced (remove it, or listen elsewhere)",
            self.0.display()
        )
    }
}

impl std::error::Error for NotASocket {}

impl NotASocket {
    /// Whether `e` (an error in a chain) is one, as an `io::Error`.
    pub(crate) fn is(e: &(dyn std::error::Error + 'static)) -> bool {
        e.downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<NotASocket>())
    }
}

fn not_a_socket(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, NotASocket(path.to_owned()))
}

/// Binds a listening Unix stream socket at `path` (non-blocking,
/// close-on-exec, backlog [`crate::net::BACKLOG`]) with `file`'s mode and
/// owner, replacing a stale socket (see the module's docs).
///
/// # Errors
/// `AddrInUse` when a process accepts at `path`; `AlreadyExists` when
/// `path` is not a socket; an owner or group that does not exist
/// (`NotFound`); as `bind(2)`, `chmod(2)`, `chown(2)` and `rename(2)`.
pub(crate) fn bind(path: &Path, file: &FileSettings) -> io::Result<(UnixListener, SocketFile)> {
    let owner = owner_ids(file)?;
    let mode = file.mode.unwrap_or(DEFAULT_MODE);
    check_place(path)?;
    let tmp = {
        let mut t = path.as_os_str().to_owned();
        t.push(format!(".{}.tmp", std::process::id()));
        PathBuf::from(t)
    };
    let direct = tmp.as_os_str().len() > crate::address::UNIX_PATH_MAX;
    let at = if direct {
        // No room for a temporary name: the stale socket goes first.
        remove_stale(path)?;
        path
    } else {
        remove_stale(&tmp)?;
        &tmp
    };
    let listener = listen_at(at)?;
    let placed = (|| {
        set_mode_and_owner(at, mode, owner)?;
        if !direct {
            fs::rename(&tmp, path)?;
        }
        SocketFile::adopt(path)
    })();
    match placed {
        Ok(file) => Ok((listener, file)),
        Err(e) => {
            let _ = fs::remove_file(at);
            Err(e)
        }
    }
}

/// Gives the socket file at `path` what `file` asks now: a reload that
/// keeps a Unix listener and changes `unix_mode`, `unix_owner` or
/// `unix_group` applies them to its file (`chown` needs the privilege
/// to, which a process that dropped root lacks: then an error).
///
/// # Errors
/// An owner or group that does not exist; as `chmod(2)` and `chown(2)`.
pub(crate) fn apply(path: &Path, file: &FileSettings) -> io::Result<()> {
    let owner = owner_ids(file)?;
    set_mode_and_owner(path, file.mode.unwrap_or(DEFAULT_MODE), owner)
}

/// `chmod` and `chown` of the socket file at `path`, never of anything
/// else: the path is opened `O_PATH | O_NOFOLLOW` and must be a socket,
/// and both calls go through that descriptor. A name in a directory
/// others may write to (a reload's `apply`, or the temporary name
/// between `bind` and `rename`) can be swapped for a symbolic link or a
/// hard link to, say, `/etc/shadow`; `chmod(2)` and `chown(2)` by name
/// would follow it, as root.
fn set_mode_and_owner(path: &Path, mode: u32, owner: (Option<u32>, Option<u32>)) -> io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(not_a_socket(path));
    }
    // An `O_PATH` descriptor takes no `fchmod`; its /proc link names the
    // inode it holds, whatever the name points to now.
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(mode)).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!(
                "{}: setting mode {mode:o} (through {link}): {e}",
                path.display()
            ),
        )
    })?;
    if owner != (None, None) {
        let uid = owner.0.map(Uid::from_raw);
        let gid = owner.1.map(Gid::from_raw);
        rustix::fs::chownat(&fd, "", uid, gid, AtFlags::EMPTY_PATH)?;
    }
    Ok(())
}

/// `socket(AF_UNIX, SOCK_STREAM)` + `bind(path)` + `listen`.
fn listen_at(path: &Path) -> io::Result<UnixListener> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&fd, crate::net::BACKLOG as i32)?;
    Ok(UnixListener::from(fd))
}

/// What is at `path` may be replaced: nothing, or a stale socket.
///
/// # Errors
/// `AddrInUse` when a process accepts there; `AlreadyExists` when it is
/// not a socket.
fn check_place(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(not_a_socket(path));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{}: a process accepts on this socket already",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale socket file (nobody accepts on it)");
            Ok(())
        }
        // Removed meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "{}: cannot tell whether the socket is in use: {e}",
                path.display()
            ),
        )),
    }
}

/// Removes a socket at `path` that [`check_place`] found stale (or our
/// own temporary name left by a crash); anything else stays.
fn remove_stale(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(path),
        Ok(_) => Err(not_a_socket(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The uid and gid `file` asks for (`None`: unchanged).
///
/// # Errors
/// `NotFound` for a name with no such user or group.
pub(crate) fn owner_ids(file: &FileSettings) -> io::Result<(Option<u32>, Option<u32>)> {
    Ok((
        uid_of(file.owner.as_deref())?,
        gid_of(file.group.as_deref())?,
    ))
}

/// The uid of `unix_owner` (a name or a number).
///
/// # Errors
/// `NotFound`: no such user, or the lookup failed.
pub(crate) fn uid_of(owner: Option<&str>) -> io::Result<Option<u32>> {
    let Some(n) = owner else { return Ok(None) };
    if let Ok(id) = n.parse::<u32>() {
        return Ok(Some(id));
    }
    match nix::unistd::User::from_name(n) {
        Ok(Some(u)) => Ok(Some(u.uid.as_raw())),
        Ok(None) => Err(not_found(format!("no user `{n}` (unix_owner)"))),
        Err(e) => Err(not_found(format!("cannot look up user `{n}`: {e}"))),
    }
}

/// The gid of `unix_group` (a name or a number).
///
/// # Errors
/// `NotFound`: no such group, or the lookup failed.
pub(crate) fn gid_of(group: Option<&str>) -> io::Result<Option<u32>> {
    let Some(n) = group else { return Ok(None) };
    if let Ok(id) = n.parse::<u32>() {
        return Ok(Some(id));
    }
    match nix::unistd::Group::from_name(n) {
        Ok(Some(g)) => Ok(Some(g.gid.as_raw())),
        Ok(None) => Err(not_found(format!("no group `{n}` (unix_group)"))),
        Err(e) => Err(not_found(format!("cannot look up group `{n}`: {e}"))),
    }
}

fn not_found(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "spliced-unix-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn binds_with_mode_replaces_stale_and_removes_at_drop() {
        let d = dir();
        let path = d.join("a.sock");
        // A stale socket: bound, then its listener closed.
        drop(UnixListener::bind(&path).unwrap());
        let (l, file) = bind(&path, &FileSettings::default()).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, DEFAULT_MODE);
        // Accepts.
        let _c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        l.set_nonblocking(false).unwrap();
        l.accept().unwrap();
        // Live now: a second bind is refused, and nothing is removed.
        let e = bind(&path, &FileSettings::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains("a.sock"), "{e}");
        assert!(path.exists());
        drop(file);
        assert!(!path.exists(), "removed at drop");
        // No temporary file left.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_regular_file_is_never_replaced_and_a_kept_file_stays() {
        let d = dir();
        let path = d.join("plain");
        fs::write(&path, b"data").unwrap();
        let e = bind(&path, &FileSettings::default()).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"data");

        let path = d.join("b.sock");
        let file = FileSettings {
            mode: Some(0o660),
            ..FileSettings::default()
        };
        let (_l, f) = bind(&path, &file).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o660
        );
        f.keep();
        drop(f);
        assert!(path.exists(), "kept");
        // A file that replaced ours is left alone.
        let (_l2, f2) = {
            fs::remove_file(&path).unwrap();
            bind(&path, &FileSettings::default()).unwrap()
        };
        let stale = SocketFile::adopt(&path).unwrap();
        fs::remove_file(&path).unwrap();
        drop(UnixListener::bind(&path).unwrap());
        drop(stale);
        assert!(path.exists(), "another file at the path stays");
        drop(f2);
        fs::remove_dir_all(&d).unwrap();
    }

    /// A name swapped for a link (someone who can write to the directory,
    /// between bind and chmod, or before a reload's `apply`) never makes
    /// spliced change the mode or owner of what it points to.
    #[test]
    fn mode_and_owner_never_follow_a_link() {
        let d = dir();
        let target = d.join("secret");
        fs::write(&target, b"x").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let nobody = Some(65534);
        let mode_of = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        // A symbolic link to it.
        let link = d.join("x.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // (O_PATH | O_NOFOLLOW opens the link itself: not a socket.)
        let e = set_mode_and_owner(&link, 0o666, (nobody, nobody)).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        let e = apply(
            &link,
            &FileSettings {
                mode: Some(0o666),
                ..FileSettings::default()
            },
        );
        assert!(e.is_err());
        // A hard link to it.
        let hard = d.join("y.sock");
        fs::hard_link(&target, &hard).unwrap();
        let e = set_mode_and_owner(&hard, 0o666, (nobody, nobody)).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        let meta = fs::metadata(&target).unwrap();
        assert_eq!(
            (mode_of(&target), meta.uid()),
            (0o600, rustix::process::getuid().as_raw())
        );
        // A socket file: changed.
        let sock = d.join("z.sock");
        let _l = UnixListener::bind(&sock).unwrap();
        set_mode_and_owner(&sock, 0o640, (None, nobody)).unwrap();
        assert_eq!(mode_of(&sock), 0o640);
        assert_eq!(fs::metadata(&sock).unwrap().gid(), 65534);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unknown_owner_is_an_error_naming_it() {
        let file = FileSettings {
            owner: Some("no-such-user-spliced".into()),
            ..FileSettings::default()
        };
        let e = owner_ids(&file).unwrap_err();
        assert!(e.to_string().contains("no-such-user-spliced"), "{e}");
        let ids = FileSettings {
            owner: Some("65534".into()),
            group: Some("0".into()),
            ..FileSettings::default()
        };
        assert_eq!(owner_ids(&ids).unwrap(), (Some(65534), Some(0)));
    }
}
