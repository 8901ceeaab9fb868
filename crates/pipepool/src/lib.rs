//! Pooled Linux pipes for zero-copy `splice(2)`.
//!
//! Moving bytes between two sockets through user space costs two copies.
//! `splice(2)` moves pages through a kernel pipe instead, but every transfer
//! needs a pipe, and creating one costs microseconds, two fds and up to
//! 1 MiB of kernel memory. This crate keeps pipes in a pool:
//!
//! - [`PipePool`]: a lock-free per-thread cache in front of a shared pool,
//!   a bound ([`max_pipes`](PoolBuilder::max_pipes)), idle reclamation by a
//!   background thread (no garbage collector needed), and [`PoolStats`].
//!   A pipe given back with bytes inside is closed, never reused.
//! - [`Pipe`]: safe splice primitives on a pipe that knows its real size and
//!   exactly how many bytes it holds.
//! - [`copy()`] / [`copy_n`] / [`Copier`]: a synchronous zero-copy
//!   `std::io::copy` for any two fds (splice through a pooled pipe,
//!   `sendfile`, `copy_file_range`), falling back to a buffered copy when the
//!   kernel refuses before any byte moved.
//! - [`ToFile`]: a socket (or pipe) into a file at an offset through a
//!   pooled pipe, optionally `tee(2)`-ing the same bytes to a second
//!   destination.
#![cfg_attr(
    feature = "tokio",
    doc = "- [`tokio`](crate::tokio): async `copy` and a drop-in `copy_bidirectional`, \
           also after bytes already read ([`copy_bidirectional_with_prefix`](crate::tokio::copy_bidirectional_with_prefix)) \
           and for any pollable fd ([`ReadyFd`](crate::tokio::ReadyFd), [`FdIo`](crate::tokio::FdIo)); \
           [`sendfile`](crate::tokio::sendfile) of a file range to a socket on its \
           writability, and [`copy_to_file`](crate::tokio::copy_to_file) from a socket \
           into a file."
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
//! Syscalls go through [`rustix`]. `unsafe` is confined to `tokio::cast`
//! (type detection for the tokio glue), the pool's thread caches (an
//! `UnsafeCell` the reaper shares with the owning thread through an
//! asymmetric fence, `membarrier(2)`), the fork handlers and their
//! `pthread_atfork` registration. The pool's concurrency (concurrent
//! get/put, a thread exiting with a full cache, the reaper reclaiming from
//! thread caches while their threads get, put and exit) is model-checked
//! with loom against a mock pipe (`ci/loom.sh`, `--cfg pipepool_loom`);
//! the integration tests use real pipes, sockets, files and child
//! processes (`fork()` included), and count `/proc/self/fd` to prove that
//! nothing leaks and idle pipes are closed.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The loom build leaves out the reaper thread and the fork handlers (and,
// without its models, uses none of the mock's counters): what only they
// call is dead there.
#![cfg_attr(pipepool_loom, allow(dead_code))]
#![warn(missing_docs)]

/// The examples of README.md, compiled as doctests.
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(not(pipepool_loom))]
mod copy;
pub mod design;
#[cfg(pipepool_loom)]
mod mock;
#[cfg(not(pipepool_loom))]
mod pipe;
mod pool;
mod sync;
mod sys;
#[cfg(all(feature = "tokio", not(pipepool_loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

#[cfg(not(pipepool_loom))]
pub use copy::{copy, copy_n, Copier, CopyError, Method, ToFile, Transfer, DEFAULT_BUFFER_SIZE};
// Under `--cfg pipepool_loom` (this crate's own loom run, `ci/loom.sh`) the
// pool holds a mock pipe; the models live inside the crate.
#[cfg(pipepool_loom)]
pub use mock::Pipe;
#[cfg(not(pipepool_loom))]
pub use pipe::{Pipe, DEFAULT_PIPE_SIZE};
pub use pool::{
    ConfigError, GetError, OwnedPipe, PipePool, PoolBuilder, PoolConfig, PoolStats, PooledPipe,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_LOCAL_CAP, MAX_PIPE_SIZE,
};
