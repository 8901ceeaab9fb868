//! The TOML file as written: every field optional and spanned, so that
//! validation can point at the line it rejects. See
//! `crates/spliced/spliced.example.toml` for a commented example.
//!
//! The settings of the tables ([`super::table`]) are generated: each
//! per-listener one is a field of both [`ListenerSection`] and
//! [`FileConfig`] (the top level holds the defaults of every listener),
//! each process one a field of [`FileConfig`] or [`PoolSection`].
//!
//! (No `#[serde(flatten)]` for the settings shared by the top level and the
//! listeners: flatten defeats both `deny_unknown_fields` and the spans.)

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Balance, ConfigError};

macro_rules! file_structs {
    (
    top [$(
        $(#[doc = $tdoc:literal])*
        $tname:ident: $tty:ty = $tdefault:expr;
            flag $tflag:literal [$($targ:tt)*];
            check $tcheck:path;
    )*]
    pool [$(
        $(#[doc = $pdoc:literal])*
        $pname:ident: $pty:ty = $pdefault:expr;
            flag $pflag:literal [$($parg:tt)*];
            check $pcheck:path;
    )*]
    $(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr;
            flag $flag:literal [$($arg:tt)*];
            check $check:path;
    )*) => {
        /// The whole file. Top-level listener settings are defaults for
        /// every `[[listener]]`.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct FileConfig {
            /// Where to serve Prometheus metrics (`/metrics`).
            pub(crate) metrics: Option<Spanned<String>>,
            /// A tracing filter such as `info` or `spliced=debug`.
            pub(crate) log_level: Option<Spanned<String>>,
            /// The pipe pool.
            pub(crate) pool: Option<PoolSection>,
            /// `[[listener]]` tables.
            #[serde(default)]
            pub(crate) listener: Vec<Spanned<ListenerSection>>,
            /// Networks (CIDR or address) of the peers whose PROXY headers
            /// are believed, for every listener without its own list.
            pub(crate) accept_proxy_from: Option<Spanned<Vec<Spanned<String>>>>,
            $(
                $(#[doc = $tdoc])*
                pub(crate) $tname: Option<Spanned<$tty>>,
            )*
            $(
                $(#[doc = $doc])*
                pub(crate) $name: Option<Spanned<$ty>>,
            )*
        }

        /// `[pool]`: the pipe pool shared by every listener.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct PoolSection {
            $(
                $(#[doc = $pdoc])*
                pub(crate) $pname: Option<Spanned<$pty>>,
            )*
        }

        /// One `[[listener]]`.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct ListenerSection {
            /// A name for logs and metric labels (default: the listen address).
            pub(crate) name: Option<Spanned<String>>,
            /// The address to accept clients on.
            pub(crate) listen: Spanned<String>,
            /// The upstream group: `host:port` strings.
            pub(crate) upstreams: Spanned<Vec<Spanned<String>>>,
            /// `[[listener.route]]` tables: SNI routes.
            #[serde(default)]
            pub(crate) route: Vec<Spanned<RouteSection>>,
            /// Networks (CIDR or address) allowed to connect.
            pub(crate) allow: Option<Spanned<Vec<Spanned<String>>>>,
            /// Networks (CIDR or address) refused.
            pub(crate) deny: Option<Spanned<Vec<Spanned<String>>>>,
            /// Networks (CIDR or address) of the peers whose PROXY headers
            /// are believed (`accept_proxy`).
            pub(crate) accept_proxy_from: Option<Spanned<Vec<Spanned<String>>>>,
            $(
                $(#[doc = $doc])*
                pub(crate) $name: Option<Spanned<$ty>>,
            )*
        }
    };
}
macro_rules! with_listener_settings {
    ($($process:tt)*) => {
        super::table::listener_settings!(file_structs; $($process)*);
    };
}
super::table::process_settings!(with_listener_settings);

/// One `[[listener.route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    /// A server name, or `*.suffix`.
    pub(crate) sni: Spanned<String>,
    /// The upstream group of this name.
    pub(crate) upstreams: Spanned<Vec<Spanned<String>>>,
    /// Its balance (default: the listener's).
    pub(crate) balance: Option<Spanned<Balance>>,
}

/// Parses the file's text (`path` names it in errors).
///
/// # Errors
/// A [`ConfigError`] at the place toml's span points to, naming the
/// field by its path in the document (`listener[1].balance`).
pub(crate) fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| ConfigError::from_toml(path, text, &e))
}
