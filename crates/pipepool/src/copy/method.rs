//! What a copy reports: the [`Method`] it used, the bytes it moved
//! ([`Transfer`]), and the bytes it moved before failing ([`CopyError`]).

use std::error::Error;
use std::fmt;
use std::io;

/// How bytes were moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `splice(2)` through a pipe (a pooled one, or the source or
    /// destination itself when it is a pipe): no copy through user space.
    Splice,
    /// `sendfile(2)` from a file.
    Sendfile,
    /// `copy_file_range(2)` between files.
    CopyFileRange,
    /// `read(2)` and `write(2)` through a buffer in user space: the fallback.
    Userspace,
}

impl Method {
    /// A short lowercase name (`"splice"`, `"sendfile"`, `"copy_file_range"`,
    /// `"userspace"`), for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Splice => "splice",
            Method::Sendfile => "sendfile",
            Method::CopyFileRange => "copy_file_range",
            Method::Userspace => "userspace",
        }
    }

    /// Whether the bytes did not pass through user space.
    pub fn is_zero_copy(self) -> bool {
        !matches!(self, Method::Userspace)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finished copy: how many bytes, and how they moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transfer {
    /// Bytes written to the destination.
    pub bytes: u64,
    /// The method that moved the bytes (the last one tried, when a
    /// fallback happened before the first byte).
    pub method: Method,
}

/// A copy that failed, with the bytes it had already written to the
/// destination, so that nothing moved goes unaccounted.
///
/// Converts into [`io::Error`] (keeping the kind), so `?` works in functions
/// returning `io::Result`; the count can be read back with
/// [`CopyError::from_io`].
#[derive(Debug)]
pub struct CopyError {
    bytes: u64,
    method: Method,
    error: io::Error,
}

impl CopyError {
    pub(crate) fn new(bytes: u64, method: Method, error: io::Error) -> CopyError {
        CopyError {
            bytes,
            method,
            error,
        }
    }

    /// Bytes written to the destination before the error.
    pub fn bytes_copied(&self) -> u64 {
        self.bytes
    }

    /// The method in use when the error happened.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The underlying error.
    pub fn error(&self) -> &io::Error {
        &self.error
    }

    /// The error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }

    /// The underlying error, dropping the count.
    pub fn into_error(self) -> io::Error {
        self.error
    }

    /// The `CopyError` inside an `io::Error` made by `From<CopyError>`.
    pub fn from_io(err: &io::Error) -> Option<&CopyError> {
        err.get_ref()?.downcast_ref::<CopyError>()
    }
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} copy failed after {} bytes: {}",
            self.method, self.bytes, self.error
        )
    }
}

impl Error for CopyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

impl From<CopyError> for io::Error {
    fn from(e: CopyError) -> io::Error {
        io::Error::new(e.error.kind(), e)
    }
}

/// The error a copy ends with when the destination accepts no byte
/// (`write` or `splice` returned 0): tokio's kind and message, for the
/// sync and the async copies alike.
pub(crate) fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "write zero byte into writer")
}
