//! Synchronous zero-copy copy between any two fds: [`copy()`], [`copy_n`],
//! [`Copier`].

mod method;

pub use method::{CopyError, Method, Transfer};
