//! The proxy's configuration: a pure function, `load`, from the TOML
//! file's text (`file.rs`) and the `spliced run` flags ([`RunArgs`],
//! which override it) to the validated `Settings` the proxy runs from.
//! What depends on the machine (reading the file, looking up `user`,
//! sizing defaults to the fd limit: `Settings::fit_fds`) is left to the
//! code that runs the process (`run/settle.rs`).
//!
//! Errors name the file, line, column and field (or the flag) and make
//! `spliced` exit with code 2.

pub(crate) mod args;
mod checks;
mod error;
mod file;
pub(crate) mod keepalive;
mod load;
mod settings;
pub(crate) mod table;
pub(crate) mod units;
pub(crate) mod unix;

pub use args::RunArgs;
pub use error::ConfigError;
pub(crate) use error::Origin;
pub(crate) use load::load;
pub(crate) use settings::{
    Balance, CopyMode, Given, ListenerSettings, ProxyVersion, RouteSettings, Settings, WorkerModel,
    DEFAULT_CONNECT_ATTEMPTS, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DNS_TTL, DEFAULT_GRACE_PERIOD,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_PROXY_TIMEOUT, DEFAULT_SNI_TIMEOUT,
};

#[cfg(test)]
mod tests;
