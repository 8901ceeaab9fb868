//! Pooled Linux pipes for zero-copy `splice(2)`.
//!
//! Moving bytes between two sockets through user space costs two copies.
//! `splice(2)` moves pages through a kernel pipe instead, but every transfer
//! needs a pipe, and creating one costs microseconds, two fds and up to
//! 1 MiB of kernel memory. This crate keeps pipes in a pool:
//!
//! - [`PipePool`]: a lock-free per-thread cache in front of a shared pool,
//!   a bound ([`max_pipes`](PoolConfig::max_pipes)), idle reclamation by a
//!   background thread (no garbage collector needed), and [`PoolStats`].
//!   A pipe given back with bytes inside is closed, never reused.
//! - [`Pipe`]: safe splice primitives on a pipe that knows its real size and
//!   exactly how many bytes it holds.
//! - [`copy()`] / [`copy_n`] / [`Copier`]: a synchronous zero-copy
//!   `std::io::copy` for any two fds (splice through a pooled pipe,
//!   `sendfile`, `copy_file_range`), falling back to a buffered copy when the
//!   kernel refuses before any byte moved.
#![cfg_attr(
    feature = "tokio",
    doc = "- [`tokio`](crate::tokio): async `copy` and a drop-in `copy_bidirectional`."
)]
//!
//! # Example
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//!
//! # fn main() -> std::io::Result<()> {
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let mut client = TcpStream::connect(listener.local_addr()?)?;
//! let (server, _) = listener.accept()?;
//!
//! client.write_all(b"zero-copy")?;
//! client.shutdown(std::net::Shutdown::Write)?;
//!
//! let mut file = tempfile::tempfile()?;
//! let moved = pipepool::copy(&server, &file)?; // socket -> pipe -> file
//! assert_eq!(moved, 9);
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! - `tokio` (off by default): async zero-copy `copy` and
//!   `copy_bidirectional` for tokio sockets. Without it the crate pulls in
//!   no async runtime.
//!
//! # Safety and correctness
//! The crate has no `unsafe` outside `tokio::cast` (type detection for the
//! tokio glue, which opts in with its own `#![allow(unsafe_code)]`);
//! syscalls go through [`rustix`]. The pool's concurrency
//! (concurrent get/put, a thread exiting with a full cache, reclamation
//! racing with checkout) is model-checked with loom against a mock pipe
//! (`ci/loom.sh`); the integration tests use real pipes, sockets, files and
//! child processes, and count `/proc/self/fd` to prove that nothing leaks.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(loom))]
mod copy;
pub mod design;
#[cfg(loom)]
pub mod mock;
#[cfg(not(loom))]
mod pipe;
mod pool;
mod sync;
mod sys;
#[cfg(all(feature = "tokio", not(loom)))]
pub mod tokio;

#[cfg(not(loom))]
pub use copy::{copy, copy_n, Copier, CopyError, Method, Transfer, DEFAULT_BUFFER_SIZE};
#[cfg(loom)]
pub use mock as loom_mock;
#[cfg(loom)]
pub use mock::Pipe;
#[cfg(not(loom))]
pub use pipe::{Pipe, DEFAULT_PIPE_SIZE};
pub use pool::{
    ConfigError, GetError, PipePool, PoolConfig, PoolStats, PooledPipe, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOCAL_CAP, MAX_PIPE_SIZE,
};
