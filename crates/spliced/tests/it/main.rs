//! spliced's integration tests, one module per area, in one binary (one
//! link, one process). Almost all run the real `spliced` binary as a child
//! process, so they share nothing but this process's threads and fds.
//! Tests that need a process of their own live in other binaries, each
//! saying why: `faults/` and `unprivileged.rs` (they raise
//! `RLIMIT_NOFILE` for the whole process).

mod util;

mod accept_backoff;
mod access;
mod admin;

mod access_log;
mod balance;
mod bench;
mod demo;
mod dns;
mod exit_codes;
mod faults_fdlimit;
mod fd_budget;
mod forwarding;
mod health;

mod keepalive;
mod limits;
mod local_resources;
mod metrics;
mod metrics_flood;
mod netfaults;
mod pipe_reclaim;
mod proxy_protocol;
mod reload;
mod reload_atomic;
mod reload_features;
mod reload_log_level;
mod shutdown;
mod sni;
mod syscalls;
mod systemd;
mod takeover;
mod unix;
mod upstreams;
mod urgent;
mod workers;

mod user_reload;
