//! The environment applied to [`config::load`]: the `--config` file read,
//! the defaults sized to the fd limit, the `user` looked up (and each
//! Unix listener's `unix_owner` and `unix_group`).

use crate::config::{self, ConfigError, Origin, RunArgs, Settings};
use crate::privileges::Account;

/// The settings `args` give on this machine: reads the `--config` file,
/// [`config::load`]s it with the flags, sizes the defaults to the fd
/// limit `nofile` (`pipes_in_use`: the running pool's size, on a reload)
/// and looks up `user`.
///
/// # Errors
/// A [`ConfigError`]: a file that cannot be read, a bad setting, an
/// unknown user.
pub(crate) fn settle(
    args: &RunArgs,
    nofile: Option<u64>,
    pipes_in_use: Option<usize>,
) -> Result<(Settings, Option<Account>), ConfigError> {
    let text = match &args.config {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                Origin::Flag("config"),
                "config",
                format!("cannot read {}: {e}", path.display()),
            )
        })?,
        None => String::new(),
    };
    apply(config::load(&text, args)?, nofile, pipes_in_use)
}

/// What depends on the machine, applied to loaded `settings`: the
/// defaults sized to the fd limit `nofile` ([`Settings::fit_fds`]), the
/// `user` looked up.
///
/// # Errors
/// A [`ConfigError`] where `user` was given, if it cannot be looked up;
/// naming a Unix listener's `unix_owner` or `unix_group` that does not
/// exist.
pub(crate) fn apply(
    mut settings: Settings,
    nofile: Option<u64>,
    pipes_in_use: Option<usize>,
) -> Result<(Settings, Option<Account>), ConfigError> {
    settings.fit_fds(nofile, pipes_in_use);
    let user = settings
        .user
        .as_ref()
        .map(|u| crate::privileges::lookup(&u.value).map_err(|e| u.error(e)))
        .transpose()?;
    for (i, l) in settings.listeners.iter().enumerate() {
        if l.listen.unix().is_none() {
            continue;
        }
        let named = |key: &'static str| {
            move |e: std::io::Error| {
                ConfigError::new(
                    Origin::Default,
                    format!("listener[{i}].{key}"),
                    e.to_string(),
                )
            }
        };
        crate::unix_socket::uid_of(l.unix_owner.as_deref()).map_err(named("unix_owner"))?;
        crate::unix_socket::gid_of(l.unix_group.as_deref()).map_err(named("unix_group"))?;
    }
    Ok((settings, user))
}

/// `spliced run --check` on `text` as the `--config` file of `args`
/// (with no fd limit): its output, or the error it exits 2 with.
#[cfg(test)]
pub(crate) fn check_text(text: &str, args: &RunArgs) -> Result<String, ConfigError> {
    let (settings, user) = apply(config::load(text, args)?, None, None)?;
    Ok(super::check::describe(&settings, user.as_ref()))
}
