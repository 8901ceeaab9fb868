//! The admin socket's server: [`AdminSocket::bind`] creates the socket
//! file (mode 0600, owned by the run user), [`AdminSocket::serve`] puts it
//! at its path and answers requests with the [`Commands`], and dropping
//! the returned [`SocketFile`] removes the file if it is still this process's.
//!
//! The socket is bound under a temporary name beside PATH, given its mode
//! and owner, then renamed to PATH: no client ever sees it with other
//! permissions, and a new process taking over (`--takeover`) replaces the
//! old one's file atomically, so that PATH always answers.

use std::io;
use std::os::fd::AsFd as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::commands::{Commands, Reply};
use super::{fds, ERROR, MAX_REQUEST, OK};
use crate::privileges::Account;

/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound admin socket, not answering yet: under its temporary name
/// (removed if dropped so).
#[derive(Debug)]
pub(crate) struct AdminSocket {
    listener: UnixListener,
    file: SocketFile,
}

/// The admin socket's file: at its temporary name until placed at PATH.
/// Dropped, it removes what it made: the temporary file, or PATH if PATH
/// is still that file and this process did not hand it over.
#[derive(Debug)]
pub(crate) struct SocketFile {
    tmp: PathBuf,
    path: PathBuf,
    /// `(st_dev, st_ino)` of the socket file created.
    id: (u64, u64),
    state: FileState,
    /// The answers being written: a process that stops waits for them
    /// ([`SocketFile::answered`]), so that a request that made it stop
    /// (`handed-over`) still gets its answer.
    answers: tokio_util::task::TaskTracker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    /// At `tmp`.
    Bound,
    /// Renamed to `path`.
    Placed,
    /// A process that took over owns `path` (or will): leave it.
    Left,
}

impl AdminSocket {
    /// Binds the socket beside `path`, mode 0600, owned by `owner` (the
    /// `--user` to be, else the current user); [`AdminSocket::serve`]
    /// moves it to `path`. Unless `replacing` (a process taking over
    /// replaces the live socket of the one it replaces), a live socket at
    /// `path` (another process answering) is an error; a stale one is
    /// replaced.
    ///
    /// # Errors
    /// Another process answers at `path` (and not `replacing`); `path`
    /// exists and is not a socket; as `bind(2)`, `chmod(2)`, `chown(2)`.
    pub(crate) fn bind(
        path: &Path,
        owner: Option<&Account>,
        replacing: bool,
    ) -> anyhow::Result<AdminSocket> {
        use std::os::unix::fs::FileTypeExt as _;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                anyhow::bail!(
                    "admin socket {}: the path exists and is not a socket",
                    path.display()
                );
            }
            if !replacing && std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!(
                    "admin socket {}: another process answers there (a spliced running? \
                     upgrade it with --takeover {0}, or stop it)",
                    path.display()
                );
            }
        }
        let name = path
            .file_name()
            .with_context(|| format!("admin socket {}: not a file path", path.display()))?;
        let mut tmp_name = name.to_owned();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)
            .with_context(|| format!("cannot bind the admin socket {}", tmp.display()))?;
        let mut file = SocketFile {
            tmp,
            path: path.to_owned(),
            id: (0, 0),
            state: FileState::Bound,
            answers: tokio_util::task::TaskTracker::new(),
        };
        (|| -> io::Result<()> {
            std::fs::set_permissions(&file.tmp, std::fs::Permissions::from_mode(0o600))?;
            if let Some(user) = owner {
                std::os::unix::fs::chown(&file.tmp, Some(user.uid), Some(user.gid))?;
            }
            let meta = std::fs::symlink_metadata(&file.tmp)?;
            file.id = (meta.dev(), meta.ino());
            Ok(())
        })()
        .with_context(|| format!("cannot set up the admin socket {}", path.display()))?;
        Ok(AdminSocket { listener, file })
    }

    /// Moves the socket to its path, atomically replacing any file there
    /// (clients may connect from now on; they are answered once
    /// [`AdminSocket::serve`] runs). Call it while the directory is
    /// writable: before `--user` drops root, unless taking over (the old
    /// process answers at the path until it stops accepting).
    ///
    /// # Errors
    /// As `rename(2)`.
    pub(crate) fn place(&mut self) -> io::Result<()> {
        if self.file.state == FileState::Bound {
            std::fs::rename(&self.file.tmp, &self.file.path)?;
            self.file.state = FileState::Placed;
        }
        Ok(())
    }

    /// Moves the socket to its path if [`AdminSocket::place`] did not,
    /// and answers requests with `commands` in a task of its own, until
    /// the runtime ends; returns the guard that removes the file.
    ///
    /// # Errors
    /// As `rename(2)`.
    pub(crate) fn serve(mut self, commands: Commands) -> io::Result<SocketFile> {
        self.place()?;
        let AdminSocket { listener, file } = self;
        let commands = Arc::new(commands);
        let answers = file.answers.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        answers.spawn(answer(stream, Arc::clone(&commands)));
                    }
                    Err(e) => {
                        tracing::warn!("admin socket: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(file)
    }
}

impl SocketFile {
    /// A new process took over: it puts its own socket at the path; this
    /// one must not remove it at exit.
    pub(crate) fn leave(&mut self) {
        self.state = FileState::Left;
    }

    /// Waits, at most `within`, until the answers being written now are
    /// written (the runtime's end would drop them half done).
    pub(crate) async fn answered(&self, within: Duration) {
        self.answers.close();
        let _ = tokio::time::timeout(within, self.answers.wait()).await;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let path = match self.state {
            FileState::Bound => &self.tmp,
            FileState::Placed => &self.path,
            FileState::Left => return,
        };
        let ours = std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(
                    "cannot remove the admin socket {}: {e} (its directory must be writable \
                     by the user spliced runs as)",
                    path.display()
                );
            }
        }
    }
}

/// Reads one request from `stream`, answers it, closes.
async fn answer(stream: UnixStream, commands: Arc<Commands>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        (&mut reader).take(MAX_REQUEST as u64).read_line(&mut line),
    )
    .await;
    let reply = match read {
        Err(_) => Err(format!("no request within {REQUEST_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) if !line.ends_with('\n') => Err(format!(
            "a request is one line of at most {MAX_REQUEST} bytes, ended by a newline"
        )),
        Ok(Ok(_)) => {
            tracing::debug!("admin socket: {}", line.trim_end());
            commands.dispatch(&line).await
        }
    };
    if let Err(e) = send(reader.into_inner(), reply).await {
        tracing::debug!("admin socket: cannot send the reply: {e}");
    }
}

/// Writes `reply` (its fds with its first bytes) and closes.
async fn send(mut stream: UnixStream, reply: Result<Reply, String>) -> io::Result<()> {
    let (text, passed) = match reply {
        Ok(Reply { lines, fds }) => {
            let mut text = format!("{OK}\n");
            for l in lines {
                text.push_str(&l);
                text.push('\n');
            }
            (text, fds)
        }
        Err(e) => (format!("{ERROR}{}\n", e.replace('\n', " ")), Vec::new()),
    };
    let bytes = text.as_bytes();
    let borrowed: Vec<_> = passed.iter().map(|f| f.as_fd()).collect();
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            fds::send_with_fds(&stream, bytes, &borrowed)
        }) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    stream.write_all(&bytes[sent..]).await?;
    stream.shutdown().await
}
