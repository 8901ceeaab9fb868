//! The access log (`access_log`, `access_log_format`): one line per closed
//! connection, refused ones included, in HAProxy's `tcplog` spirit or as
//! JSON ([`format`]), with a two-letter termination state
//! ([`Termination`]).
//!
//! Cheap on the connection's path: [`AccessLog::record`] formats the line
//! into a per-thread buffer (no allocation once warm, no `tracing`), then
//! appends it under a short lock to a pending buffer. One writer thread
//! owns the file: it writes the pending bytes in one `write` at least
//! every second, at once when 64 KiB are waiting, and at exit
//! ([`AccessLog::close`]). A worker never touches the file, so a slow disk
//! never blocks one: when the writer falls behind by 8 MiB, lines are
//! dropped and counted (`spliced_access_log_dropped_total`, and a warning
//! in spliced's log). [`AccessLog::reopen`] (SIGUSR1, a reload) reopens
//! the path after the pending bytes went to the old file: log rotation
//! renames the file, then signals.

mod entry;
mod format;

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

pub(crate) use entry::{Entry, Methods, Termination};
pub(crate) use format::Format;

/// Pending bytes at which the writer is woken before its second is up.
const WAKE_AT: usize = 64 * 1024;
/// Pending bytes past which lines are dropped: the writer is behind.
const MAX_PENDING: usize = 8 * 1024 * 1024;
/// The longest [`AccessLog::close`] waits for the last write.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The longest a line waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where the lines go: a file (appended to, created 0640), or stdout
/// (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Standard output.
    Stdout,
    /// This file.
    File(PathBuf),
}

impl Target {
    /// `-` is stdout, anything else a path.
    pub(crate) fn parse(s: &str) -> Target {
        if s == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(s))
        }
    }

    fn open(&self) -> io::Result<Sink> {
        match self {
            Target::Stdout => Ok(Sink::Stdout),
            Target::File(path) => Ok(Sink::File(open(path)?)),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stdout => f.write_str("-"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// The open destination, owned by the writer thread.
#[derive(Debug)]
enum Sink {
    Stdout,
    File(File),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Sink::File(f) => f.write_all(bytes),
        }
    }
}

/// The access log: a cheap `Clone` handle; the default one is off
/// (records nothing).
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessLog {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    format: Format,
    pending: Mutex<Pending>,
    /// Wakes the writer: 64 KiB pending, a reopen, the close.
    wake: Condvar,
    /// Lines dropped because the writer was behind.
    dropped: Counter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Formatted lines not yet handed to the writer.
    buf: Vec<u8>,
    /// Reopen after the next write.
    reopen: bool,
    /// ... to this target instead of the current one.
    retarget: Option<Target>,
    /// Lines dropped since the writer last said so.
    dropped: u64,
    /// Write what is pending and stop; record nothing more.
    closing: bool,
}

thread_local! {
    /// The line being formatted, per thread, reused.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl AccessLog {
    /// Opens `target` and starts the writer thread; lines dropped are
    /// counted in `dropped`.
    ///
    /// # Errors
    /// The file cannot be opened (or created) for appending, or the
    /// thread cannot start.
    pub(crate) fn open(target: &Target, format: Format, dropped: Counter) -> io::Result<AccessLog> {
        let sink = target.open()?;
        let shared = Arc::new(Shared {
            format,
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(2 * WAKE_AT),
                ..Pending::default()
            }),
            wake: Condvar::new(),
            dropped,
            writer: Mutex::new(None),
        });
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("spliced-access-log".into())
            .spawn({
                let target = target.clone();
                move || write_loop(&s, target, sink)
            })?;
        *lock(&shared.writer) = Some(handle);
        Ok(AccessLog {
            shared: Some(shared),
        })
    }

    /// The counter of lines dropped, when on.
    pub(crate) fn dropped(&self) -> Option<Counter> {
        self.shared.as_ref().map(|s| s.dropped.clone())
    }

    /// Whether lines are recorded at all.
    pub(crate) fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// Records `entry`: formatted here, written by the writer thread
    /// within a second. Never blocks on the disk; dropped (and counted)
    /// when the writer is 8 MiB behind.
    pub(crate) fn record(&self, entry: &Entry<'_>) {
        let Some(shared) = &self.shared else { return };
        let append = |line: &mut Vec<u8>| {
            line.clear();
            shared.format.write(entry, line);
            shared.append(line);
        };
        // (A thread being torn down has no thread-local: a Vec of its own.)
        if LINE.try_with(|l| l.try_borrow_mut().map(|mut l| append(&mut l)).is_ok()) != Ok(true) {
            append(&mut Vec::new());
        }
    }

    /// Reopens the log after writing what is pending: to `target` if
    /// given (a reload that changed the path), else the same path (log
    /// rotation: SIGUSR1 after a rename). A target that cannot be opened
    /// is logged and the current file stays.
    pub(crate) fn reopen(&self, target: Option<Target>) {
        let Some(shared) = &self.shared else { return };
        let mut p = lock(&shared.pending);
        p.reopen = true;
        if target.is_some() {
            p.retarget = target;
        }
        drop(p);
        shared.wake.notify_one();
    }

    /// Writes everything pending and stops the writer; later records are
    /// lost. Waits for the write, up to [`CLOSE_WAIT`] (a stuck disk
    /// does not hold the exit).
    pub(crate) fn close(&self) {
        let Some(shared) = &self.shared else { return };
        lock(&shared.pending).closing = true;
        shared.wake.notify_one();
        let Some(handle) = lock(&shared.writer).take() else {
            return;
        };
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while !handle.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            tracing::warn!(
                "access log: the last lines are not written after {CLOSE_WAIT:?} (the file \
                 does not take them): exiting without them"
            );
        }
    }
}

impl Shared {
    /// Appends one formatted line to the pending buffer.
    fn append(&self, line: &[u8]) {
        let mut p = lock(&self.pending);
        if p.closing {
            return;
        }
        if p.buf.len() + line.len() > MAX_PENDING {
            p.dropped += 1;
            drop(p);
            self.dropped.inc();
            return;
        }
        let before = p.buf.len();
        p.buf.extend_from_slice(line);
        let wake = before < WAKE_AT && p.buf.len() >= WAKE_AT;
        drop(p);
        if wake {
            self.wake.notify_one();
        }
    }
}

/// A lock that survives a panic elsewhere (the data stays consistent:
/// every update is one statement).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread: waits up to a second (less when woken), takes the
/// pending bytes, writes them in one call, reopens when asked.
fn write_loop(shared: &Shared, mut target: Target, mut sink: Sink) {
    let mut spare: Vec<u8> = Vec::with_capacity(2 * WAKE_AT);
    let mut write_failing = false;
    loop {
        let (reopen, closing, dropped) = {
            let mut p = lock(&shared.pending);
            if p.buf.len() < WAKE_AT && !p.reopen && !p.closing {
                p = shared
                    .wake
                    .wait_timeout(p, FLUSH_EVERY)
                    .map_or_else(|e| e.into_inner().0, |(g, _)| g);
            }
            std::mem::swap(&mut p.buf, &mut spare);
            let reopen = std::mem::take(&mut p.reopen).then(|| p.retarget.take());
            (reopen, p.closing, std::mem::take(&mut p.dropped))
        };
        if !spare.is_empty() {
            match sink.write_all(&spare) {
                Ok(()) => write_failing = false,
                Err(e) => {
                    if !write_failing {
                        tracing::error!(
                            "access log: cannot write ({e}); lines are lost until a write succeeds"
                        );
                    }
                    write_failing = true;
                }
            }
            spare.clear();
        }
        if dropped > 0 {
            tracing::warn!(
                "access log: {dropped} line(s) dropped: the writer fell behind (a slow disk?)"
            );
        }
        if let Some(retarget) = reopen {
            let next = retarget.unwrap_or_else(|| target.clone());
            match next.open() {
                Ok(s) => {
                    sink = s;
                    tracing::info!("access log: reopened {next}");
                    target = next;
                }
                Err(e) => tracing::error!(
                    "access log: cannot open {next}: {e}; still writing to {target}"
                ),
            }
        }
        if closing {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::time::{Instant, SystemTime};

    fn entry() -> Entry<'static> {
        let client = crate::address::Peer::Ip("192.0.2.1:5000".parse().unwrap());
        Entry::refused(SystemTime::now(), client, "l", Termination::MaxConns)
    }

    fn temp_path(what: &str) -> PathBuf {
        std::env::temp_dir().join(format!("spliced-unit-{}-{what}", std::process::id()))
    }

    /// A line is in the file within the second, without a close.
    #[test]
    fn lines_are_written_within_a_second() {
        let path = temp_path("second.log");
        let _ = std::fs::remove_file(&path);
        let target = Target::File(path.clone());
        let log = AccessLog::open(&target, Format::Tcplog, Counter::default()).unwrap();
        let start = Instant::now();
        log.record(&entry());
        while std::fs::read(&path).unwrap().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(3), "not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(start.elapsed() < Duration::from_millis(1500));
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(" LA "), "{text}");
    }

    /// The file is a FIFO that nobody reads (a disk that stopped): the
    /// writer blocks, the workers do not; what does not fit is dropped
    /// and counted, and every line is either read or counted as dropped.
    #[test]
    fn a_stuck_writer_never_blocks_a_worker() {
        let path = temp_path("fifo");
        let _ = std::fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success(), "mkfifo");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut f = File::open(&path).unwrap();
                rx.recv().unwrap(); // stuck until told
                let mut all = Vec::new();
                f.read_to_end(&mut all).unwrap();
                all
            }
        });
        let target = Target::File(path.clone());
        let dropped = Counter::default();
        let log = AccessLog::open(&target, Format::Tcplog, dropped.clone()).unwrap();
        let mut line = Vec::new();
        Format::Tcplog.write(&entry(), &mut line);
        let n = 2 * MAX_PENDING / line.len();
        let start = Instant::now();
        let e = entry();
        for _ in 0..n {
            log.record(&e);
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(dropped.get() > 0, "nothing dropped");
        tx.send(()).unwrap();
        log.close();
        let read = reader.join().unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(read.len() % line.len(), 0);
        let read_lines = (read.len() / line.len()) as u64;
        assert_eq!(read_lines + dropped.get(), n as u64);
    }

    /// Off: records nothing, reopens and closes nothing.
    #[test]
    fn the_default_log_is_off() {
        let log = AccessLog::default();
        assert!(!log.is_on() && log.dropped().is_none());
        log.record(&entry());
        log.reopen(None);
        log.close();
    }
}
