//! Leaf: [`GetError`], why a get gave no pipe.

use std::error::Error;
use std::fmt;
use std::io;

/// Why [`PipePool::get`](crate::PipePool::get) gave no pipe.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// `max_pipes` pipes are alive (pipes being closed at that moment by
    /// another thread or the reaper still count). Copy through memory
    /// instead.
    Exhausted {
        /// The pool's bound.
        max_pipes: usize,
    },
    /// Creating a pipe failed: the error of `pipe2` (or of sizing the
    /// pipe), also this error's `source()`.
    Create(io::Error),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Exhausted { max_pipes } => {
                write!(
                    f,
                    "pipe pool exhausted: all {max_pipes} pipes (max_pipes) are in use"
                )
            }
            GetError::Create(_) => f.write_str("could not create a pipe"),
        }
    }
}

impl Error for GetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GetError::Create(e) => Some(e),
            GetError::Exhausted { .. } => None,
        }
    }
}

impl From<GetError> for io::Error {
    fn from(e: GetError) -> io::Error {
        match e {
            GetError::Create(e) => e,
            e @ GetError::Exhausted { .. } => io::Error::other(e),
        }
    }
}
