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
/// Its `Display` says what failed and after how many bytes; the cause (the
/// [`io::Error`]) is its [`source()`](Error::source), as the Rust
/// convention has it: print the chain (`{:#}` with `anyhow`, or walk
/// `source()`) to see both, each once.
///
/// Converts into [`io::Error`] (keeping the kind), so `?` works in functions
/// returning `io::Result`; the count can be read back with
/// [`CopyError::from_io`].
#[derive(Debug)]
pub struct CopyError {
    /// What was written before the error.
    transfer: Transfer,
    /// The cause: this error's `source()`.
    error: io::Error,
}

impl CopyError {
    pub(crate) fn new(bytes: u64, method: Method, error: io::Error) -> CopyError {
        CopyError {
            transfer: Transfer { bytes, method },
            error,
        }
    }

    /// What was written to the destination before the error, and how: the
    /// [`Transfer`] a successful copy returns (the method is the one in use
    /// when the error happened).
    pub fn transfer(&self) -> Transfer {
        self.transfer
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
            "{} copy failed after {} bytes",
            self.transfer.method, self.transfer.bytes
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GetError;

    /// How many times `needle` appears in `err` printed with its chain as
    /// `anyhow` prints it (`{:#}`: each level's `Display`, joined by ": ").
    fn times_in_chain<E>(err: E, needle: &str) -> (usize, String)
    where
        E: Error + Send + Sync + 'static,
    {
        let chain = format!("{:#}", anyhow::Error::new(err));
        (chain.matches(needle).count(), chain)
    }

    fn reset() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionReset)
    }

    #[test]
    fn copy_error_prints_its_cause_once() {
        let cause = reset().to_string();
        let err = CopyError::new(5, Method::Splice, reset());
        assert_eq!(err.to_string(), "splice copy failed after 5 bytes");
        assert_eq!(err.source().unwrap().to_string(), cause);
        let (n, chain) = times_in_chain(CopyError::new(5, Method::Splice, reset()), &cause);
        assert_eq!(n, 1, "{chain}");
        assert_eq!(chain, format!("splice copy failed after 5 bytes: {cause}"));
        // The same through the `io::Error` that `?` makes of it.
        let (n, chain) = times_in_chain(io::Error::from(err), &cause);
        assert_eq!(n, 1, "{chain}");
        assert!(
            chain.starts_with("splice copy failed after 5 bytes: "),
            "{chain}"
        );
    }

    #[test]
    fn get_error_prints_its_cause_once() {
        let cause = io::Error::from(rustix::io::Errno::MFILE);
        let text = cause.to_string();
        let (n, chain) = times_in_chain(GetError::Create(cause), &text);
        assert_eq!(n, 1, "{chain}");
        assert_eq!(chain, format!("could not create a pipe: {text}"));
        let exhausted = GetError::Exhausted { max_pipes: 3 };
        assert!(exhausted.source().is_none());
        let (n, chain) = times_in_chain(exhausted, "all 3 pipes");
        assert_eq!(n, 1, "{chain}");
    }

    #[test]
    fn copy_error_gives_a_transfer() {
        let err = CopyError::new(7, Method::Userspace, reset());
        assert_eq!(
            err.transfer(),
            Transfer {
                bytes: 7,
                method: Method::Userspace
            }
        );
        let io = io::Error::from(err);
        assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(CopyError::from_io(&io).unwrap().transfer().bytes, 7);
    }
}
