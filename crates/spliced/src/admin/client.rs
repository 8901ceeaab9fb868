//! The client side of the admin socket: [`request`] (blocking: `spliced
//! ctl` and `--takeover` use it before any runtime exists) and the `spliced
//! ctl` subcommand ([`ctl`]).

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{fds, ERROR, MAX_REQUEST, OK};

/// How long a request may take, each read and write.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest reply read.
const MAX_REPLY: u64 = 16 << 20;

/// `spliced ctl`.
#[derive(Debug, Args)]
#[command(
    after_help = "Sends one command to a running `spliced run --admin-socket PATH` and \
prints its answer; `help` lists the commands. Exit code 0 on success, 1 if the command failed \
or no spliced answers at PATH."
)]
pub struct CtlArgs {
    /// The admin socket of the running spliced (its --admin-socket).
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: PathBuf,
    /// The command and its arguments (e.g. `help`, `version`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// A successful answer: its body lines and the fds passed with it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) lines: Vec<String>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// No process answers at the path (missing, stale, not a socket...).
    Connect(PathBuf, std::io::Error),
    /// The connection failed midway, or the answer is not this protocol.
    NotSpliced(PathBuf, String),
    /// The server ran the command and it failed.
    Failed(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Connect(path, e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such socket".to_owned(),
                    std::io::ErrorKind::ConnectionRefused => {
                        "nothing listens there (a stale socket of a process that is gone?)"
                            .to_owned()
                    }
                    _ => e.to_string(),
                };
                write!(
                    f,
                    "cannot reach a spliced admin socket at {}: {why}",
                    path.display()
                )
            }
            RequestError::NotSpliced(path, why) => {
                write!(f, "{} is not a spliced admin socket: {why}", path.display())
            }
            RequestError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for RequestError {}

/// Sends `words` (a command and its arguments) to the admin socket at
/// `path` and reads the answer.
///
/// # Errors
/// [`RequestError`]: nothing answers at `path`, the answer is not
/// spliced's protocol, or the command failed (its message).
pub(crate) fn request(path: &Path, words: &[&str]) -> Result<Answer, RequestError> {
    let not_spliced = |why: String| RequestError::NotSpliced(path.to_owned(), why);
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if !meta.file_type().is_socket() {
            return Err(not_spliced("it is not a socket".into()));
        }
    }
    let mut stream =
        UnixStream::connect(path).map_err(|e| RequestError::Connect(path.to_owned(), e))?;
    let line = format!("{}\n", words.join(" "));
    if line.len() > MAX_REQUEST {
        return Err(RequestError::Failed(format!(
            "the request is longer than {MAX_REQUEST} bytes"
        )));
    }
    let io = |e: std::io::Error| not_spliced(format!("the connection failed: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.write_all(line.as_bytes()).map_err(io)?;
    // The fds come with the first bytes of the answer.
    let mut first = vec![0; 64 << 10];
    let (n, passed) = fds::recv_with_fds(&stream, &mut first).map_err(io)?;
    let mut bytes = first[..n].to_vec();
    if n > 0 {
        (&mut stream)
            .take(MAX_REPLY)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    let text =
        String::from_utf8(bytes).map_err(|_| not_spliced("the answer is not UTF-8".into()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(OK) => Ok(Answer {
            lines: lines.map(str::to_owned).collect(),
            fds: passed,
        }),
        Some(l) if l.starts_with(ERROR) => Err(RequestError::Failed(l[ERROR.len()..].to_owned())),
        Some(l) => Err(not_spliced(format!("it answered `{}`", l.escape_debug()))),
        None => Err(not_spliced("it closed without an answer".into())),
    }
}

/// `spliced ctl --socket PATH COMMAND...`: prints the answer's lines.
///
/// # Errors
/// Nothing answers at PATH, or the command failed (exit code 1).
pub fn ctl(args: &CtlArgs) -> anyhow::Result<ExitCode> {
    let words: Vec<&str> = args.command.iter().map(String::as_str).collect();
    let answer = request(&args.socket, &words)?;
    if !answer.fds.is_empty() {
        eprintln!(
            "spliced: the answer passed {} file descriptor(s): closed",
            answer.fds.len()
        );
    }
    let mut out = std::io::stdout().lock();
    for l in &answer.lines {
        writeln!(out, "{l}")?;
    }
    Ok(ExitCode::SUCCESS)
}
