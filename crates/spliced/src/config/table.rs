//! The tables of settings: each is declared once here, with its file key
//! (the field name), type, default, check, flag and doc.
//! [`listener_settings!`] hands the per-listener table to the code
//! generated from it:
//!
//! - the fields of the file's `[[listener]]` tables and of its top level
//!   (defaults for every listener), in `file.rs`;
//! - the `spliced run` flags ([`ListenerFlags`], flattened into `RunArgs`;
//!   `--help` is the doc below);
//! - the pick (flag, then the listener's table, then the top level, then
//!   the default) and check of each, in `load.rs`;
//! - `--check`'s listing ([`super::ListenerSettings::table_values`]: a
//!   resolved setting is the field of the same name);
//! - `LISTENER_SETTINGS` (in tests), which hold the example config and the
//!   flags' help to the table.
//!
//! [`process_settings!`] does the same for the settings of the file's top
//! level and of its `[pool]` (one layer: the flag, else the file, else
//! the default): the fields of `FileConfig` and `PoolSection`, the flags
//! ([`TopFlags`], [`PoolFlags`]), and their pick and check.
//!
//! Not in the tables, each with a shape of its own: the lists
//! (`upstreams`, routes, `allow`, `deny`), `name` and `listen`, `metrics`
//! (an address, parsed with its own message) and `log_level` (its flag
//! is global, and `logging` lets it and `RUST_LOG` win over the file's,
//! at start and at a reload).
//!
//! Entry syntax: `/// doc` lines, then
//! `name: Type = default; flag "flag-name" [clap arg attributes]; check fn;`
//! where `default` is an `Option<Type>` and `fn` a
//! `fn(&Type) -> Result<(), String>` run on the value wherever it came
//! from (its error names that place).

/// Calls `$callback! { prefix entries }` with every per-listener setting
/// (`prefix`: the tokens after `;`, if any).
macro_rules! listener_settings {
    ($callback:ident $(; $($prefix:tt)*)?) => {
        $callback! {
            $($($prefix)*)?
            /// How an upstream is chosen: round-robin, least-conn or source (the client's address) [default: round-robin].
            balance: $crate::config::Balance = Some($crate::config::Balance::RoundRobin);
                flag "balance" [value_enum];
                check $crate::config::checks::any;
            /// How bytes are copied: splice or userspace [default: splice].
            copy: $crate::config::CopyMode = Some($crate::config::CopyMode::Splice);
                flag "copy" [value_enum];
                check $crate::config::checks::any;
            /// Timeout of one upstream connect (e.g. 3s, 500ms) [default: 3s].
            connect_timeout: $crate::config::units::DurationValue =
                Some($crate::config::units::DurationValue($crate::config::DEFAULT_CONNECT_TIMEOUT));
                flag "connect-timeout" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::longer_than_zero;
            /// Upstreams tried per client before giving up [default: 3].
            connect_attempts: usize = Some($crate::config::DEFAULT_CONNECT_ATTEMPTS);
                flag "connect-attempts" [value_name = "N", value_parser = $crate::config::units::at_least_one];
                check $crate::config::checks::at_least_one;
            /// Close connections with no traffic either way for this long; 0: never [default: 5m].
            idle_timeout: $crate::config::units::DurationValue =
                Some($crate::config::units::DurationValue($crate::config::DEFAULT_IDLE_TIMEOUT));
                flag "idle-timeout" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::any;
            /// Most client connections open at once per listener [default: sized to the fd limit, at most 10000].
            max_conns: usize = None;
                flag "max-conns" [value_name = "N", value_parser = $crate::config::units::at_least_one];
                check $crate::config::checks::at_least_one;
            /// Resolve upstream host names again this often, in the background [default: 30s].
            dns_ttl: $crate::config::units::DurationValue =
                Some($crate::config::units::DurationValue($crate::config::DEFAULT_DNS_TTL));
                flag "dns-ttl" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::longer_than_zero;
            /// Write a PROXY protocol header (v1 text or v2 binary) with the client's address to each upstream before any client byte.
            send_proxy: $crate::config::ProxyVersion = None;
                flag "send-proxy" [value_enum, value_name = "VERSION"];
                check $crate::config::checks::any;
            /// Read a PROXY protocol header (v1 or v2) from each client first (a load balancer in front) and take the client's address from it.
            accept_proxy: bool = Some(false);
                flag "accept-proxy" [num_args = 0, default_missing_value = "true"];
                check $crate::config::checks::any;
            /// How long a client has to send its PROXY header [default: 3s].
            proxy_timeout: $crate::config::units::DurationValue =
                Some($crate::config::units::DurationValue($crate::config::DEFAULT_PROXY_TIMEOUT));
                flag "proxy-timeout" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::longer_than_zero;
            /// With SNI routes: how long a client has to send its whole TLS ClientHello before it takes the default route [default: 3s].
            sni_timeout: $crate::config::units::DurationValue =
                Some($crate::config::units::DurationValue($crate::config::DEFAULT_SNI_TIMEOUT));
                flag "sni-timeout" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::longer_than_zero;
            /// Most connections open at once from one client address per listener [default: no limit].
            max_conns_per_source: usize = None;
                flag "max-conns-per-source" [value_name = "N", value_parser = $crate::config::units::at_least_one];
                check $crate::config::checks::at_least_one;
            /// Check each upstream this often (active health checks); 0: off, passive health only [default: 0].
            health_interval: $crate::config::units::DurationValue =
                Some($crate::config::units::DurationValue(std::time::Duration::ZERO));
                flag "health-interval" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::any;
            /// The longest one health check may take [default: the interval].
            health_timeout: $crate::config::units::DurationValue = None;
                flag "health-timeout" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::longer_than_zero;
            /// Health checks passed in a row that bring a down upstream up [default: 2].
            health_rise: usize = Some(2);
                flag "health-rise" [value_name = "N", value_parser = $crate::config::units::at_least_one];
                check $crate::config::checks::at_least_one;
            /// Health checks failed in a row that take an upstream down [default: 3].
            health_fall: usize = Some(3);
                flag "health-fall" [value_name = "N", value_parser = $crate::config::units::at_least_one];
                check $crate::config::checks::at_least_one;
            /// Once connected, a health check writes this (escapes: \r \n \t \\ \xNN) [default: nothing; the check is a TCP connect].
            health_send: String = None;
                flag "health-send" [value_name = "TEXT", allow_hyphen_values = true];
                check $crate::config::checks::escapes;
            /// A health check passes only if the first bytes answered contain this (escapes as health-send).
            health_expect: String = None;
                flag "health-expect" [value_name = "TEXT", allow_hyphen_values = true];
                check $crate::config::checks::escapes;

            /// TCP keepalive on client connections, IDLE:INTERVAL:COUNT (e.g. 60s:10s:5): probes after IDLE quiet, every INTERVAL, drop after COUNT unanswered [default: off].
            client_keepalive: $crate::config::keepalive::Keepalive = None;
                flag "client-keepalive" [value_name = "IDLE:INTERVAL:COUNT", value_parser = $crate::config::keepalive::parse];
                check $crate::config::checks::any;
            /// TCP keepalive on upstream connections, IDLE:INTERVAL:COUNT as client_keepalive [default: off].
            upstream_keepalive: $crate::config::keepalive::Keepalive = None;
                flag "upstream-keepalive" [value_name = "IDLE:INTERVAL:COUNT", value_parser = $crate::config::keepalive::parse];
                check $crate::config::checks::any;
            /// TCP_USER_TIMEOUT on client connections: drop one whose sent data stays unacknowledged this long; 0: off [default: off].
            client_user_timeout: $crate::config::units::DurationValue = None;
                flag "client-user-timeout" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::user_timeout;
            /// TCP_USER_TIMEOUT on upstream connections, as client_user_timeout [default: off].
            upstream_user_timeout: $crate::config::units::DurationValue = None;
                flag "upstream-user-timeout" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                check $crate::config::checks::user_timeout;
            /// For a unix:/path listener: the socket file's mode, octal (e.g. 0660) [default: 0600, its owner only].
            unix_mode: $crate::config::unix::UnixMode = None;
                flag "unix-mode" [value_name = "MODE", value_parser = $crate::config::unix::parse];
                check $crate::config::checks::any;
            /// For a unix:/path listener: the socket file's owner, a user name or uid [default: the user spliced binds as].
            unix_owner: String = None;
                flag "unix-owner" [value_name = "USER"];
                check $crate::config::checks::not_blank;
            /// For a unix:/path listener: the socket file's group, a group name or gid [default: the owner's group].
            unix_group: String = None;
                flag "unix-group" [value_name = "GROUP"];
                check $crate::config::checks::not_blank;
        }
    };
}
pub(crate) use listener_settings;

/// Calls `$callback! { top [entries] pool [entries] }` with the process
/// settings: those of the file's top level and those of its `[pool]`
/// (one layer each: the flag, else the file, else the default).
macro_rules! process_settings {
    ($callback:ident) => {
        $callback! {
            top [
                /// Tokio worker threads [default: one per core].
                worker_threads: usize = None;
                    flag "worker-threads" [value_name = "N", value_parser = $crate::config::units::at_least_one];
                    check $crate::config::checks::at_least_one;
                /// per-thread: a single-threaded runtime per worker, each with its own listening socket (SO_REUSEPORT); work-stealing: one tokio multi-thread runtime [default: per-thread].
                worker_model: $crate::config::WorkerModel = Some($crate::config::WorkerModel::PerThread);
                    flag "worker-model" [value_enum];
                    check $crate::config::checks::any;
                /// After SIGINT/SIGTERM, let open connections run this long [default: 30s].
                grace_period: $crate::config::units::DurationValue =
                    Some($crate::config::units::DurationValue($crate::config::DEFAULT_GRACE_PERIOD));
                    flag "grace-period" [value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                    check $crate::config::checks::any;
                /// Once every listener and the metrics socket are bound, run as this user (no supplementary groups, the user's group): start as root to bind ports below 1024, then serve unprivileged.
                user: String = None;
                    flag "user" [value_name = "NAME"];
                    check $crate::config::checks::any;
                /// Answer `spliced ctl` (and a new process's `--takeover`) on this Unix socket: mode 0600, owned by the user spliced runs as, removed at exit.
                admin_socket: String = None;
                    flag "admin-socket" [value_name = "PATH"];
                    check $crate::config::checks::any;
                /// Write one line per closed connection (refused ones too) to this file, appended, or to stdout with `-`; SIGUSR1 reopens it (log rotation) [default: off].
                access_log: String = None;
                    flag "access-log" [value_name = "PATH|-"];
                    check $crate::config::checks::not_empty;
                /// The access log's lines: tcplog (HAProxy-like fields) or json [default: tcplog].
                access_log_format: $crate::access_log::Format = Some($crate::access_log::Format::Tcplog);
                    flag "access-log-format" [value_enum, value_name = "FORMAT"];
                    check $crate::config::checks::any;
            ]
            pool [
                /// Most pipes alive in the pool [default: what the fd limit leaves after max_conns, at most 4096].
                max_pipes: usize = None;
                    flag "max-pipes" [value_name = "N", value_parser = $crate::config::units::at_least_one];
                    check $crate::config::checks::at_least_one_pipe;
                /// Size asked for each pipe (e.g. 1MiB, 256KiB) [default: 1MiB].
                pipe_size: $crate::config::units::SizeValue = None;
                    flag "pipe-size" [value_name = "SIZE", value_parser = $crate::config::units::size, allow_hyphen_values = true];
                    check $crate::config::checks::any;
                /// Close pooled pipes idle this long [default: 10s].
                idle_timeout: $crate::config::units::DurationValue = None;
                    flag "pipe-idle-timeout" [id = "pipe_idle_timeout", value_name = "DURATION", value_parser = $crate::config::units::duration, allow_hyphen_values = true];
                    check $crate::config::checks::any;
            ]
        }
    };
}
pub(crate) use process_settings;

/// One row of the table, for the tests that hold the example config and
/// the flags to it.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct SettingInfo {
    /// The key in the file (in a `[[listener]]` table or at the top level).
    pub(crate) key: &'static str,
    /// The `spliced run` flag, without `--`.
    pub(crate) flag: &'static str,
    /// What it does (the flag's help).
    pub(crate) doc: &'static str,
}

/// `$infos`: the rows of `entries`, with `$prefix` before each key;
/// `$Flags`: their flags.
macro_rules! infos_and_flags {
    ($infos:ident, $prefix:literal, $(#[doc = $flags_doc:literal])* $Flags:ident;
    $(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr;
            flag $flag:literal [$($arg:tt)*];
            check $check:path;
    )*) => {
        /// The rows of the table, in order.
        #[cfg(test)]
        pub(crate) const $infos: &[SettingInfo] = &[$(SettingInfo {
            key: concat!($prefix, stringify!($name)),
            flag: $flag,
            doc: concat!($($doc),*),
        }),*];

        $(#[doc = $flags_doc])*
        #[derive(Debug, Clone, Default, clap::Args)]
        pub(crate) struct $Flags {
            $(
                $(#[doc = $doc])*
                #[arg(long = $flag, $($arg)*)]
                pub(crate) $name: Option<$ty>,
            )*
        }
    };
}
listener_settings!(infos_and_flags; LISTENER_SETTINGS, "",
    /// The per-listener settings given as `spliced run` flags; each
    /// overrides the file for every listener.
    ListenerFlags;
);

macro_rules! process_infos {
    (top [$($top:tt)*] pool [$($pool:tt)*]) => {
        infos_and_flags!(TOP_SETTINGS, "",
            /// The process settings given as `spliced run` flags; each
            /// overrides the file's top level.
            TopFlags; $($top)*);
        infos_and_flags!(POOL_SETTINGS, "pool.",
            /// The `[pool]` settings given as `spliced run` flags.
            PoolFlags; $($pool)*);
    };
}
process_settings!(process_infos);

/// A resolved value as `--check` prints it; `None`: not set (off).
pub(crate) trait Shown {
    /// The value's text.
    fn shown(&self) -> Option<String>;
}

impl Shown for super::Balance {
    fn shown(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl Shown for super::CopyMode {
    fn shown(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl Shown for super::WorkerModel {
    fn shown(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl Shown for super::ProxyVersion {
    fn shown(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl Shown for std::time::Duration {
    fn shown(&self) -> Option<String> {
        Some(format!("{self:?}"))
    }
}

impl Shown for String {
    fn shown(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl Shown for usize {
    fn shown(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Shown for bool {
    fn shown(&self) -> Option<String> {
        self.then(|| "on".to_owned())
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> Option<String> {
        self.as_ref().and_then(Shown::shown)
    }
}

macro_rules! shown {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr;
            flag $flag:literal [$($arg:tt)*];
            check $check:path;
    )*) => {
        impl super::ListenerSettings {
            /// Each setting of the table as this listener resolved it (a
            /// field of the same name), in table order: its key and its
            /// value as `--check` prints it (`None`: off).
            pub(crate) fn table_values(&self) -> Vec<(&'static str, Option<String>)> {
                vec![$((stringify!($name), Shown::shown(&self.$name))),*]
            }
        }
    };
}
listener_settings!(shown);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_shows_every_setting() {
        let example = include_str!("../../spliced.example.toml");
        let all = LISTENER_SETTINGS
            .iter()
            .chain(TOP_SETTINGS)
            .chain(POOL_SETTINGS);
        for s in all {
            // (A `[pool]` key is written under `[pool]`.)
            let key = s.key.strip_prefix("pool.").unwrap_or(s.key);
            let written = example.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            assert!(written, "spliced.example.toml has no `{} = ...`", s.key);
        }
    }

    #[test]
    fn keys_and_flags_are_unique_and_match() {
        for s in TOP_SETTINGS {
            assert_eq!(s.flag, s.key.replace('_', "-"), "{s:?}");
        }
        for s in POOL_SETTINGS {
            let key = s.key.strip_prefix("pool.").expect("pool. key");
            let flag = key.replace('_', "-");
            assert!(s.flag == flag || s.flag == format!("pipe-{flag}"), "{s:?}");
        }
        for (i, s) in LISTENER_SETTINGS.iter().enumerate() {
            assert_eq!(s.flag, s.key.replace('_', "-"), "{s:?}");
            assert!(!s.doc.trim().is_empty(), "{s:?}");
            assert!(
                LISTENER_SETTINGS[..i].iter().all(|p| p.key != s.key),
                "{s:?}"
            );
        }
    }
}
