//! Async zero-copy [`copy`] and a drop-in [`copy_bidirectional`] for tokio
//! (feature `tokio`).
//!
//! Swap `tokio::io::copy_bidirectional` for
//! `pipepool::tokio::copy_bidirectional` and nothing else changes: same
//! arguments, same results, same half-close and error behaviour. Between
//! tokio sockets the bytes no longer pass through user space: they are
//! spliced (`splice(2)`) through pipes from a [`PipePool`](crate::PipePool).
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! // client <-> [front | relay | back] <-> server
//! let front = TcpListener::bind("127.0.0.1:0").await?;
//! let back = TcpListener::bind("127.0.0.1:0").await?;
//! let (front_addr, back_addr) = (front.local_addr()?, back.local_addr()?);
//! let relay = tokio::spawn(async move {
//!     let (mut client_side, _) = front.accept().await?;
//!     let mut server_side = TcpStream::connect(back_addr).await?;
//!     pipepool::tokio::copy_bidirectional(&mut client_side, &mut server_side).await
//! });
//!
//! let mut client = TcpStream::connect(front_addr).await?;
//! let (mut server, _) = back.accept().await?;
//! client.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
//! client.shutdown().await?; // half-close: the response still comes back
//! let mut request = Vec::new();
//! server.read_to_end(&mut request).await?;
//! server.write_all(b"HTTP/1.0 204 No Content\r\n\r\n").await?;
//! drop(server);
//! let mut response = String::new();
//! client.read_to_string(&mut response).await?;
//!
//! assert_eq!(relay.await??, (request.len() as u64, response.len() as u64));
//! assert!(response.starts_with("HTTP/1.0 204"));
//! # Ok(()) }
//! ```
//!
//! # Files
//! [`sendfile`] sends a byte range of a file to a [`ReadyFd`] (a
//! `TcpStream`, a `UnixStream`, a pipe, ...) with `sendfile(2)` on its
//! write readiness, the async counterpart of a static file server's
//! `spawn_blocking(std::io::copy)`; [`copy_to_file`] and
//! [`copy_to_file_tee`] write what a socket gives into a file at an offset
//! through a pooled pipe (and `tee(2)` it to a second socket). The
//! `static_files` example serves files with `Range` requests this way.
//!
//! # Bytes already read: prefixes
//! [`copy_with_prefix`] and [`copy_bidirectional_with_prefix`] take bytes
//! already read from a side (a hyper `Upgraded`'s read-ahead after a
//! downcast to its `TcpStream`, a `BufReader`'s leftovers) and write them
//! before the rest, which is spliced as ever. A prefix starts its
//! direction as bytes in flight in its buffer: it goes out on the writer's
//! readiness like any other bytes, is counted in the totals, the errors and
//! [`Progress`] (as [`Userspace`](crate::Method::Userspace)), and is
//! written out by a dropped future as far as the socket takes it. The
//! `connect_proxy` example is a CONNECT proxy on hyper built this way.
//!
//! # Any pollable fd
//! [`ReadyFd`] is how pipepool drives an fd from tokio: the fd, its
//! readiness, and a `try_io` that tells the reactor when a call found
//! nothing. tokio's sockets and pipes and [`AsyncFd`](::tokio::io::unix::AsyncFd)
//! implement it, and so can any type of yours (forward to the tokio type
//! inside). [`FdIo`] makes a `ReadyFd` a reader and writer that the copies
//! splice: `copy(&mut FdIo::new(&pipe_rx), &mut FdIo::new(&tun))`.

//! # What is spliced
//! The copy functions take tokio's exact bounds (`AsyncRead`/`AsyncWrite +
//! Unpin + ?Sized`, no `'static`) and look at the concrete types at run
//! time:
//!
//! | reader | writer | path |
//! |---|---|---|
//! | `TcpStream`, `UnixStream`, a `&mut` to one, a `Box` of one | the same | splice |
//! | an [`FdIo`] of any [`ReadyFd`] (tokio's pipes, an `AsyncFd`, your type) | any of these | splice |
//! | their read halves: `OwnedReadHalf`, `ReadHalf<'_>` (tcp and unix) | their write halves (tcp and unix) | splice ([`copy`] only) |
//! | anything else (TLS streams, `DuplexStream`, `tokio::io::split` halves, a `&mut` to a half, `Box<dyn ..>`, ...) | | userspace |
//!
//! The userspace path is a copy through a buffer (64 KiB by default,
//! [`CopyOptions::buffer_size`]), with tokio's semantics. Unlike tokio's,
//! the buffer is held only while it has bytes or its reader has some: an
//! empty one goes back to a small per-thread spare list (1 MiB of buffers
//! at most, zeroed as far as they were used, so that no reader ever sees
//! another connection's bytes) whenever the reader has nothing, and the
//! next burst takes one from there, so an idle connection holds no buffer
//! either.
//!
//! # How a direction splices
//! A direction waits until its source socket is readable, takes an empty
//! pipe from the pool, splices the socket into it, splices the pipe into
//! the destination until it is empty, and gives the pipe back. Readiness
//! comes from the sockets (`poll_read_ready`/`poll_write_ready`, then
//! `try_io`); the pipe is never registered with the reactor. Because the
//! pipe is empty before every splice in, `EAGAIN` there can only mean "the
//! socket has nothing to read". Splice lengths are capped at the pipe's
//! capacity, and `SPLICE_F_MORE` is never used.
//!
//! - **An idle connection holds no pipe.** A direction holds a pipe only
//!   while bytes are in it: 10,000 idle proxied connections hold 0 pipes
//!   and 0 pipe fds (other splice proxies hold 2 pipes, 4 fds, each). tokio
//!   reports a freshly accepted socket readable before anything arrived, so
//!   a direction's first readiness is confirmed with a one-byte
//!   `recv(MSG_PEEK)` before a pipe is taken (once per direction).
//! - **The pool at its bound is not an error.** When
//!   [`PipePool::get`](crate::PipePool::get) refuses (`max_pipes` pipes
//!   alive, or `pipe2` failed for lack of fds), that burst goes through the
//!   userspace buffer and the next one tries the pool again.
//! - **A kernel that refuses to splice** (`EINVAL`, `ENOSYS`, ... on the
//!   first splice, before any byte of that direction moved) switches that
//!   direction to the userspace copy for good. When the *destination*
//!   refuses, the bytes already in the pipe are moved to the buffer first,
//!   so none is lost. A refusal after bytes moved ends the copy with that
//!   error, as in Go. A `TcpStream` with kernel TLS receive (`TCP_ULP`
//!   `tls`) refuses mid-stream, at its first non-data record: give such
//!   sockets `zero_copy(false)`.
//! - **No byte crosses connections.** A pipe is given back only empty; a
//!   pipe dropped with bytes inside is closed by the pool, never reused
//!   (`closed_dirty` in [`PoolStats`](crate::PoolStats)).
//!
//! # TCP urgent data
//! A TCP splice stops at the urgent mark (a byte sent with `MSG_OOB`) and
//! never moves past it: it answers `EAGAIN`, or 0 once the FIN is in, as
//! at the end of file. A direction delivers what `read(2)` would: every
//! in-band byte in order, the urgent byte not inline (as without
//! `SO_OOBINLINE`), and end of file only at the real one. The checks cost
//! no system call where no urgent byte is: the last read of a burst that
//! did not fill the pipe is a one-byte `recv(MSG_PEEK)` (which skips an
//! urgent byte) where a splice would have answered `EAGAIN`, a splice that
//! answers nothing where data was announced is followed by a `recv`
//! through the buffer, and a direction whose peer shut down ends with a
//! `recv` (its 0 is the end of file; it also consumes an urgent byte left
//! just before the FIN, which closing the socket with it unread would turn
//! into a reset). Bytes that arrive together with the peer's FIN after the
//! direction had drained go through that buffer too (and count as
//! [`Userspace`](crate::Method::Userspace) in a [`Progress`]). Unlike
//! tokio's copy, which clears a socket's read readiness after any short
//! read and so can stall at a mark with data behind it, reads from a TCP
//! socket this direction splices clear it only on `EAGAIN`.
//!
//! # Half-close and errors
//! As tokio's: when a direction reads end of file, every byte it read is
//! written and flushed, then the writer is shut down
//! (`poll_shutdown`); the other direction continues until its own end of
//! file. The first error of either direction (read, write, flush, shutdown)
//! ends the copy. [`copy_with`] and [`copy_bidirectional_with`] report the
//! bytes written up to the error, and can end an idle copy with
//! [`CopyOptions::idle_timeout`]. For counts while a copy runs (a proxy's
//! metrics), give the copies a [`Progress`] ([`CopyOptions::progress`]).
//!
//! # Cancellation
//! Dropping a copy future at any `.await` point (a `select!`, a `timeout`)
//! is safe in the same sense as dropping tokio's:
//! - every byte counted as written was written to the destination;
//! - bytes read from the source and not yet written (in a pipe, or in the
//!   buffer) are written to the destination when the future is dropped, as
//!   far as the destination socket takes them at that moment: a
//!   non-blocking splice (or `write`) loop until the pipe is empty or the
//!   socket answers `EAGAIN`. Only what the destination cannot take right
//!   then is lost with the future, as bytes in tokio's buffer always are:
//!   at most one pipeful (the pipe's capacity, 1 MiB by default, a little
//!   more under GRO) or one buffer per direction. Destinations that are not
//!   tokio sockets (TLS streams, ...) cannot be written without a task
//!   context: their buffered bytes are lost, as in tokio. The sockets are
//!   otherwise untouched, so the caller may go on using them: a relay that
//!   cancels its copy and goes on copying itself loses no byte when the
//!   destination had room;
//! - a pipe dropped with bytes inside is closed, never returned to the pool
//!   (so its bytes can never reach another connection); an empty one goes
//!   back to the pool. Nothing leaks: no pipe, no fd, no task.
//!
//! # Fairness
//! Each poll draws on tokio's coop budget (as tokio's copy does, and every
//! readiness check does too), and a direction yields after writing 1 MiB in
//! one poll, so a fast connection does not starve the others on its worker
//! thread.
//!
//! # `SIGPIPE`
//! `splice(2)` into a socket whose peer is gone raises `SIGPIPE` (checked:
//! with the default action, the process dies): unlike `send(2)`, a splice
//! takes no `MSG_NOSIGNAL`. Rust binaries ignore `SIGPIPE` from the start,
//! and the error then comes back as `BrokenPipe`, as tokio's does. A
//! program that restores the default action, or a host that never ignored
//! it (a C program or an interpreter loading Rust code), must ignore
//! `SIGPIPE` itself (HAProxy does), or turn zero-copy off
//! ([`CopyOptions::zero_copy`]).

mod bidirectional;
mod cast;
mod detect;
mod direction;
mod fd_io;
mod idle;
mod options;
mod progress;
mod sendfile;
mod socket;
mod to_file;
mod unidirectional;
mod userspace;

pub use bidirectional::{
    copy_bidirectional, copy_bidirectional_with, copy_bidirectional_with_prefix, BidiError,
    BidiReport,
};
pub use fd_io::FdIo;
pub use options::CopyOptions;
pub use progress::Progress;
pub use sendfile::{sendfile, sendfile_with};
pub use socket::ReadyFd;
pub use to_file::{copy_to_file, copy_to_file_tee};
pub use unidirectional::{copy, copy_with, copy_with_prefix};
