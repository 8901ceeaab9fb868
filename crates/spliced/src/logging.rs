//! Tracing setup: the filter comes from `--log-level`, else `RUST_LOG`,
//! else the config file, else a default; logs go to stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub(crate) fn init(flag: Option<&str>, from_config: Option<&str>, default: &str) {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let spec = flag
        .map(str::to_owned)
        .or(env)
        .or_else(|| from_config.map(str::to_owned))
        .unwrap_or_else(|| default.to_owned());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("spliced: ignoring bad log filter `{spec}`: {e}");
        EnvFilter::new(default)
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
