//! [`OwnedPipe`]: a pipe on loan that holds its own handle to the pool.

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::{Pipe, PipePool};

/// A pipe on loan from a [`PipePool`] that owns a handle to the pool, so it
/// is `Send + 'static`: it can move into a spawned thread or task. Derefs
/// to [`Pipe`]; given back on drop if empty, closed otherwise (counted as
/// `closed_dirty`), like [`PooledPipe`](crate::PooledPipe).
///
/// From [`PipePool::get_owned`]. (sharded-slab's `Entry` / `OwnedEntry`
/// pair is the model.)
pub struct OwnedPipe {
    pool: PipePool,
    /// Always `Some`, taken out only in `drop`.
    pipe: Option<Box<Pipe>>,
}

impl OwnedPipe {
    pub(super) fn new(pool: PipePool, pipe: Box<Pipe>) -> OwnedPipe {
        OwnedPipe {
            pool,
            pipe: Some(pipe),
        }
    }

    /// The pool the pipe came from.
    pub fn pool(&self) -> &PipePool {
        &self.pool
    }
}

impl Deref for OwnedPipe {
    type Target = Pipe;
    fn deref(&self) -> &Pipe {
        self.pipe
            .as_ref()
            .expect("OwnedPipe holds its pipe until dropped")
    }
}

impl DerefMut for OwnedPipe {
    fn deref_mut(&mut self) -> &mut Pipe {
        self.pipe
            .as_mut()
            .expect("OwnedPipe holds its pipe until dropped")
    }
}

impl Drop for OwnedPipe {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            self.pool.put(pipe);
        }
    }
}

impl fmt::Debug for OwnedPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedPipe").field(&self.pipe).finish()
    }
}
