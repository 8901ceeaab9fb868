//! Tracing setup: the filter comes from `--log-level`, else `RUST_LOG`,
//! else the config file, else a default; logs go to stderr. The filter
//! sits in a reload layer, so a config reload can change the file's
//! `log_level` ([`reload`]) while the flag and `RUST_LOG` still win.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, reload as layer_reload, EnvFilter, Registry};

/// The installed filter's handle and what [`reload`] needs to know.
#[derive(Debug)]
struct Installed {
    /// Swaps the global filter.
    handle: layer_reload::Handle<EnvFilter, Registry>,
    /// `--log-level` or `RUST_LOG`, when one of them set the filter: then
    /// the file's `log_level` never applies.
    wins: Option<Override>,
    /// The filter when neither the flag, `RUST_LOG` nor the file set one.
    default: String,
}

/// A filter that wins over the config file's.
#[derive(Debug, Clone)]
struct Override {
    /// How the operator names it: `--log-level` or `RUST_LOG`.
    source: &'static str,
    /// Its filter.
    spec: String,
}

/// Set once by [`init`]; `None` until then (or if another subscriber was
/// installed first).
static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the global subscriber.
pub(crate) fn init(flag: Option<&str>, from_config: Option<&str>, default: &str) {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let wins = flag
        .map(|spec| Override {
            source: "--log-level",
            spec: spec.to_owned(),
        })
        .or_else(|| {
            env.map(|spec| Override {
                source: "RUST_LOG",
                spec,
            })
        });
    let spec = wins
        .as_ref()
        .map(|w| w.spec.clone())
        .or_else(|| from_config.map(str::to_owned))
        .unwrap_or_else(|| default.to_owned());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("spliced: ignoring bad log filter `{spec}`: {e}");
        EnvFilter::new(default)
    });
    let (filter, handle) = layer_reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .try_init()
        .is_ok();
    if installed {
        let _ = INSTALLED.set(Installed {
            handle,
            wins,
            default: default.to_owned(),
        });
    }
}

/// What a reload did with the file's new `log_level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reloaded {
    /// This filter is in effect now.
    Applied(String),
    /// Not applied: `source` (`--log-level` or `RUST_LOG`) sets `spec`.
    Overridden {
        /// `--log-level` or `RUST_LOG`.
        source: &'static str,
        /// The filter that stays.
        spec: String,
    },
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reloaded::Applied(spec) => write!(f, "log_level `{spec}` in effect"),
            Reloaded::Overridden { source, spec } => write!(
                f,
                "the config's log_level is overridden by {source} `{spec}`"
            ),
        }
    }
}

/// A new filter from a reloaded config, checked, not yet in effect.
#[derive(Debug)]
pub(crate) struct Pending {
    /// `None`: the flag or `RUST_LOG` wins, nothing to swap.
    filter: Option<EnvFilter>,
    /// What [`Pending::apply`] does.
    done: Reloaded,
}

/// A config reload changed the file's `log_level` to `from_config`
/// (`None`: removed, back to the default): builds the filter that
/// [`Pending::apply`] puts in effect, unless `--log-level` or `RUST_LOG`
/// set the filter.
///
/// # Errors
/// `from_config` is not a valid filter (config validation rejects it
/// first), or no subscriber of ours is installed. Nothing changes.
pub(crate) fn reload(from_config: Option<&str>) -> Result<Pending, String> {
    let installed = INSTALLED
        .get()
        .ok_or("the log filter cannot be changed (no reloadable subscriber)")?;
    if let Some(w) = &installed.wins {
        return Ok(Pending {
            filter: None,
            done: Reloaded::Overridden {
                source: w.source,
                spec: w.spec.clone(),
            },
        });
    }
    let spec = from_config.unwrap_or(&installed.default);
    let filter =
        EnvFilter::try_new(spec).map_err(|e| format!("bad log_level filter `{spec}`: {e}"))?;
    Ok(Pending {
        filter: Some(filter),
        done: Reloaded::Applied(spec.to_owned()),
    })
}

impl Pending {
    /// Puts the new filter in effect (if it is not overridden) and says
    /// so at info.
    pub(crate) fn apply(self) -> Reloaded {
        if let (Some(filter), Some(installed)) = (self.filter, INSTALLED.get()) {
            if let Err(e) = installed.handle.reload(filter) {
                // Only if the subscriber is gone: nothing would log.
                eprintln!("spliced: cannot change the log filter: {e}");
            }
        }
        tracing::info!("reload: {}", self.done);
        self.done
    }
}
