//! The admin socket: a Unix stream socket (`--admin-socket PATH`, config
//! `admin_socket`) on which `spliced ctl` (and a new `spliced run
//! --takeover`) talk to a running process.
//!
//! The socket file is mode 0600, owned by the user spliced serves as
//! (created before `--user` drops root, chowned to that user), and removed
//! at exit if it is still this process's (`server.rs`).
//!
//! # Protocol
//! One request per connection. The client writes one line (UTF-8, at
//! most 4096 bytes, `\n`-terminated): a command and its
//! arguments, separated by spaces. The server answers and closes:
//!
//! ```text
//! ok
//! BODY LINE...
//! ```
//!
//! or one line `error: MESSAGE`. A reply may carry file descriptors
//! (`SCM_RIGHTS`, attached to its first bytes): `takeover` sends the
//! listening sockets that way. `help` lists the commands.
//!
//! # Adding a command
//! A module builds its handlers and adds them to the `Commands` that
//! `run` hands to the server, with `Commands::add`: a name, a one-line
//! help, and an async function from the arguments to a `Reply` (or an
//! error message):
//!
//! ```ignore
//! commands.add("show", "show: each upstream and its state", move |args| {
//!     let state = Arc::clone(&state);
//!     async move { Ok(Reply::lines(state.describe())) }
//! });
//! ```

mod client;
mod commands;
mod fds;
mod server;
pub(crate) mod takeover;
mod upstreams;

pub use client::{ctl, CtlArgs};
pub(crate) use commands::{Commands, Reply};
pub(crate) use server::AdminSocket;
pub use takeover::TakeoverError;
pub(crate) use upstreams::add as add_upstream_commands;

/// The longest request line the server reads.
pub(crate) const MAX_REQUEST: usize = 4096;

/// The first line of a successful reply.
const OK: &str = "ok";
/// The prefix of a failed reply's line.
const ERROR: &str = "error: ";
