//! From a file and flags to [`Settings`]: flags win over a listener's own
//! settings, which win over the file's top-level defaults, which win over
//! the built-in defaults. Every value keeps its [`Origin`] so that a
//! rejected one is reported where it was written.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use toml::Spanned;

use super::file::PoolSection;
use super::file::{FileConfig, ListenerSection, RouteSection};
use super::table::{ListenerFlags, PoolFlags, TopFlags};
use super::units::DurationValue;
use super::{
    Balance, ConfigError, ListenerSettings, Origin, RouteSettings, Settings, DEFAULT_GRACE_PERIOD,
};

/// Settings given as flags to `spliced run`; each overrides the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    /// `--listen`: replaces the file's listeners with this one.
    pub(crate) listen: Option<SocketAddr>,
    /// `--upstream`: the upstreams of the `--listen` listener, or of the
    /// file's only listener.
    pub(crate) upstreams: Vec<String>,
    /// The flags of the per-listener settings of the table.
    pub(crate) listener: ListenerFlags,
    /// The flags of the top-level process settings of the table.
    pub(crate) top: TopFlags,
    /// The flags of the `[pool]` settings of the table.
    pub(crate) pool: PoolFlags,
    /// `--metrics`.
    pub(crate) metrics: Option<SocketAddr>,
    /// `--route NAME=ADDR`, in order: replaces the routes of the
    /// `--listen` listener or of the file's only listener.
    pub(crate) routes: Vec<(String, String)>,
    /// `--allow`: replaces every listener's allow list when not empty.
    pub(crate) allow: Vec<ipnet::IpNet>,
    /// `--deny`: replaces every listener's deny list when not empty.
    pub(crate) deny: Vec<ipnet::IpNet>,
}

/// Reads `path` (if any), applies the flags and validates the result.
///
/// # Errors
/// A [`ConfigError`] naming where the first bad setting was given.
pub(crate) fn load(path: Option<&Path>, flags: &Overrides) -> Result<Settings, ConfigError> {
    load_with(path, flags, None)
}

/// [`load`] for a reload: `pipes_in_use` is the running pool's
/// `max_pipes`, which a default cannot change (the pool is built once):
/// the default `max_conns` are sized around it.
///
/// # Errors
/// As [`load`].
pub(crate) fn reload(
    path: &Path,
    flags: &Overrides,
    pipes_in_use: usize,
) -> Result<Settings, ConfigError> {
    load_with(Some(path), flags, Some(pipes_in_use))
}

fn load_with(
    path: Option<&Path>,
    flags: &Overrides,
    pipes_in_use: Option<usize>,
) -> Result<Settings, ConfigError> {
    let (file, text) = match path {
        Some(path) => {
            let text = fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    Origin::Flag("config"),
                    "config",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let file: FileConfig =
                toml::from_str(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))?;
            (file, text)
        }
        None => (FileConfig::default(), String::new()),
    };
    let r = Resolver {
        path: path.unwrap_or(Path::new("-")),
        has_file: path.is_some(),
        text: &text,
        file: &file,
        flags,
        pipes_in_use,
    };
    r.settings()
}

/// A chosen value, where it came from and the field it sets.
struct Picked<T> {
    value: T,
    origin: Origin,
    field: String,
}

impl<T> Picked<T> {
    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.origin.clone(), self.field.clone(), message)
    }
}

macro_rules! picks {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr;
            flag $flag:literal [$($arg:tt)*];
            check $check:path;
    )*) => {
        /// The per-listener settings of the table ([`super::table`]) of one
        /// listener, picked and checked; `None`: not given and no default.
        struct Picks {
            $($name: Option<$ty>,)*
        }

        impl Resolver<'_> {
            /// Picks and checks each setting of the table for listener `i`
            /// (`l`: its table, if from the file).
            fn picks(&self, l: Option<&ListenerSection>, i: usize) -> Result<Picks, ConfigError> {
                Ok(Picks {$(
                    $name: self.setting(
                        (self.flags.listener.$name.as_ref(), $flag),
                        l.and_then(|l| l.$name.as_ref()),
                        self.file.$name.as_ref(),
                        (stringify!($name), i),
                        $default,
                        $check,
                    )?,
                )*})
            }
        }
    };
}
super::table::listener_settings!(picks);

/// `$Picks`: the settings `entries` of one section of the file (`$section`
/// finds it), picked (flag `self.flags.$flags`, else the section, else
/// the default) and checked, each with where it came from.
macro_rules! section_picks {
    ($Picks:ident, $method:ident, $flags:ident, $section:path, $prefix:literal;
    $(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr;
            flag $flag:literal [$($arg:tt)*];
            check $check:path;
    )*) => {
        /// Settings of one section of the table, picked and checked.
        struct $Picks {
            $($name: Option<Picked<$ty>>,)*
        }

        impl Resolver<'_> {
            fn $method(&self) -> Result<$Picks, ConfigError> {
                let section = $section(self.file);
                Ok($Picks {$(
                    $name: self.checked(
                        self.pick(
                            (self.flags.$flags.$name.as_ref(), $flag),
                            &[(
                                section.and_then(|s| s.$name.as_ref()),
                                concat!($prefix, stringify!($name)).to_owned(),
                            )],
                            $default,
                            concat!($prefix, stringify!($name)),
                        ),
                        $check,
                    )?,
                )*})
            }
        }
    };
}

macro_rules! process_picks {
    (top [$($top:tt)*] pool [$($pool:tt)*]) => {
        section_picks!(TopPicks, top_picks, top, top_section, ""; $($top)*);
        section_picks!(PoolPicks, pool_picks, pool, pool_section, "pool."; $($pool)*);
    };
}
super::table::process_settings!(process_picks);

/// The file's top level, as a section.
#[allow(clippy::unnecessary_wraps)]
fn top_section(file: &FileConfig) -> Option<&FileConfig> {
    Some(file)
}

/// The file's `[pool]`, if any.
fn pool_section(file: &FileConfig) -> Option<&PoolSection> {
    file.pool.as_ref()
}

/// Resolution state: the file (raw text for locations) and the flags.
struct Resolver<'a> {
    /// The file, if one was given (`-` if not).
    path: &'a Path,
    /// Whether a file was given (it may be empty).
    has_file: bool,
    text: &'a str,
    file: &'a FileConfig,
    flags: &'a Overrides,
    /// On a reload, the running pool's `max_pipes`: the default.
    pipes_in_use: Option<usize>,
}

impl Resolver<'_> {
    fn origin<T>(&self, s: &Spanned<T>) -> Origin {
        Origin::in_file(self.path, self.text, s.span())
    }

    /// The flag if given, else the first layer of the file that has it,
    /// else `default` (`None`: no value at all).
    fn pick<T: Clone>(
        &self,
        flag: (Option<&T>, &'static str),
        layers: &[(Option<&Spanned<T>>, String)],
        default: Option<T>,
        field: &str,
    ) -> Option<Picked<T>> {
        if let Some(v) = flag.0 {
            return Some(Picked {
                value: v.clone(),
                origin: Origin::Flag(flag.1),
                field: field.to_owned(),
            });
        }
        for (layer, path) in layers {
            if let Some(s) = layer {
                return Some(Picked {
                    value: s.get_ref().clone(),
                    origin: self.origin(s),
                    field: path.clone(),
                });
            }
        }
        default.map(|value| Picked {
            value,
            origin: Origin::Default,
            field: field.to_owned(),
        })
    }

    /// `picked`, unless `check` rejects it (then an error naming where it
    /// was given).
    fn checked<T>(
        &self,
        picked: Option<Picked<T>>,
        check: fn(&T) -> Result<(), String>,
    ) -> Result<Option<Picked<T>>, ConfigError> {
        if let Some(p) = &picked {
            check(&p.value).map_err(|m| p.error(m))?;
        }
        Ok(picked)
    }

    /// One per-listener setting of listener `i`: the flag if given, else
    /// the listener's own key, else the top level's, else `default`;
    /// rejected by `check` where it was given.
    fn setting<T: Clone>(
        &self,
        flag: (Option<&T>, &'static str),
        listener: Option<&Spanned<T>>,
        top: Option<&Spanned<T>>,
        (key, i): (&str, usize),
        default: Option<T>,
        check: fn(&T) -> Result<(), String>,
    ) -> Result<Option<T>, ConfigError> {
        let picked = self.pick(
            flag,
            &[
                (listener, format!("listener[{i}].{key}")),
                (top, key.to_owned()),
            ],
            default,
            key,
        );
        Ok(self.checked(picked, check)?.map(|p| p.value))
    }

    fn settings(&self) -> Result<Settings, ConfigError> {
        let (f, o) = (self.file, self.flags);
        let top = self.top_picks()?;
        let pool = self.pool_picks()?;
        let metrics = match (&o.metrics, &f.metrics) {
            (Some(addr), _) => Some(*addr),
            (None, Some(s)) => Some(s.get_ref().parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    self.origin(s),
                    "metrics",
                    format!(
                        "`{}` is not an IP:PORT address (e.g. 127.0.0.1:9100)",
                        s.get_ref()
                    ),
                )
            })?),
            (None, None) => None,
        };
        // The file's, even under the flag (checked by clap, applied by
        // `logging`, which lets the flag win): a reload says what it
        // overrides.
        let log_level = match &f.log_level {
            Some(s) => {
                tracing_subscriber::EnvFilter::try_new(s.get_ref()).map_err(|e| {
                    ConfigError::new(self.origin(s), "log_level", format!("bad filter: {e}"))
                })?;
                Some(s.get_ref().clone())
            }
            None => None,
        };
        let user = top
            .user
            .map(|u| crate::privileges::lookup(&u.value).map_err(|e| u.error(e)))
            .transpose()?;
        let mut listeners = self.listeners()?;
        let given_pipes = pool.max_pipes.as_ref().map(|p| p.value);
        let fit = crate::limits::fit(
            crate::limits::nofile(),
            &listeners
                .iter()
                .map(|(_, given)| *given)
                .collect::<Vec<_>>(),
            given_pipes.or(self.pipes_in_use),
        );
        for ((l, _), n) in listeners.iter_mut().zip(&fit.max_conns) {
            l.max_conns = *n;
        }
        Ok(Settings {
            listeners: listeners.into_iter().map(|(l, _)| l).collect(),
            pool: pool_config(pool, fit.max_pipes)?,
            fds_fitted: fit.shrunk.then(crate::limits::nofile).flatten(),
            metrics,
            grace_period: top.grace_period.map_or(DEFAULT_GRACE_PERIOD, |p| p.value.0),
            worker_threads: top.worker_threads.map(|w| w.value),
            log_level,
            user,
        })
    }

    /// Each listener, with its `max_conns` if one was given (else 0 until
    /// [`crate::limits::fit`] picks the default).
    fn listeners(&self) -> Result<Vec<(ListenerSettings, Option<usize>)>, ConfigError> {
        let (f, o) = (self.file, self.flags);
        if let Some(listen) = o.listen {
            if o.upstreams.is_empty() {
                return Err(ConfigError::new(
                    Origin::Flag("upstream"),
                    "upstream",
                    "--listen needs at least one --upstream ADDR",
                ));
            }
            let ups = self.upstreams_from_flags()?;
            return Ok(vec![self.listener(
                None,
                listen.to_string(),
                listen,
                ups,
                0,
            )?]);
        }
        if f.listener.is_empty() {
            let message = if self.has_file {
                "the file has no [[listener]] table (and no --listen flag was given)"
            } else {
                "nothing to do: give --listen ADDR --upstream ADDR, or --config FILE"
            };
            let origin = if self.has_file {
                Origin::in_file(self.path, self.text, 0..0)
            } else {
                Origin::Default
            };
            return Err(ConfigError::new(origin, "listener", message));
        }
        if !o.routes.is_empty() && f.listener.len() > 1 {
            return Err(ConfigError::new(
                Origin::Flag("route"),
                "route",
                "--route without --listen applies to a single listener, but the file has several",
            ));
        }
        if !o.upstreams.is_empty() && f.listener.len() > 1 {
            return Err(ConfigError::new(
                Origin::Flag("upstream"),
                "upstream",
                "--upstream without --listen applies to a single listener, but the file has several",
            ));
        }
        let mut out: Vec<(ListenerSettings, Option<usize>)> = Vec::new();
        for (i, section) in f.listener.iter().enumerate() {
            let l = section.get_ref();
            let listen = self.listen_addr(l, i)?;
            if listen.port() != 0 {
                if let Some((prev, _)) = out.iter().find(|(p, _)| p.listen == listen) {
                    return Err(ConfigError::new(
                        self.origin(&l.listen),
                        format!("listener[{i}].listen"),
                        format!(
                            "{listen} is already the address of listener `{}`",
                            prev.name
                        ),
                    ));
                }
            }
            let ups = if o.upstreams.is_empty() {
                self.upstreams_from_file(l, i)?
            } else {
                self.upstreams_from_flags()?
            };
            let name = match &l.name {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return Err(ConfigError::new(
                        self.origin(n),
                        format!("listener[{i}].name"),
                        "must not be empty",
                    ))
                }
                Some(n) => {
                    check_label(n.get_ref()).map_err(|m| {
                        ConfigError::new(self.origin(n), format!("listener[{i}].name"), m)
                    })?;
                    n.get_ref().clone()
                }
                None => l.listen.get_ref().clone(),
            };
            out.push(self.listener(Some(l), name, listen, ups, i)?);
        }
        Ok(out)
    }

    fn listen_addr(&self, l: &ListenerSection, i: usize) -> Result<SocketAddr, ConfigError> {
        l.listen.get_ref().parse().map_err(|_| {
            ConfigError::new(
                self.origin(&l.listen),
                format!("listener[{i}].listen"),
                format!(
                    "`{}` is not an IP:PORT address (e.g. 0.0.0.0:8080 or [::]:8080)",
                    l.listen.get_ref()
                ),
            )
        })
    }

    fn upstreams_from_flags(&self) -> Result<Vec<String>, ConfigError> {
        for u in &self.flags.upstreams {
            check_upstream(u)
                .map_err(|m| ConfigError::new(Origin::Flag("upstream"), "upstream", m))?;
        }
        Ok(self.flags.upstreams.clone())
    }

    fn upstreams_from_file(
        &self,
        l: &ListenerSection,
        i: usize,
    ) -> Result<Vec<String>, ConfigError> {
        if l.upstreams.get_ref().is_empty() {
            return Err(ConfigError::new(
                self.origin(&l.upstreams),
                format!("listener[{i}].upstreams"),
                "needs at least one upstream \"host:port\"",
            ));
        }
        let mut out = Vec::new();
        for (j, u) in l.upstreams.get_ref().iter().enumerate() {
            check_upstream(u.get_ref()).map_err(|m| {
                ConfigError::new(self.origin(u), format!("listener[{i}].upstreams[{j}]"), m)
            })?;
            out.push(u.get_ref().clone());
        }
        Ok(out)
    }

    /// One listener's settings: flags, then the listener's own table (if
    /// from the file), then the top level, then the defaults.
    fn listener(
        &self,
        l: Option<&ListenerSection>,
        name: String,
        listen: SocketAddr,
        upstreams: Vec<String>,
        i: usize,
    ) -> Result<(ListenerSettings, Option<usize>), ConfigError> {
        let o = self.flags;
        let p = self.picks(l, i)?;
        let balance = p.balance.unwrap_or_default();
        let allow = self.networks(&o.allow, "allow", l.and_then(|l| l.allow.as_ref()), i)?;
        let deny = self.networks(&o.deny, "deny", l.and_then(|l| l.deny.as_ref()), i)?;
        let routes = self.routes(l, i, balance)?;
        let largest_group = routes
            .iter()
            .map(|r| r.upstreams.len())
            .fold(upstreams.len(), usize::max);
        let connect_attempts = p.connect_attempts.map_or(1, |n| n.min(largest_group));
        let given_conns = p.max_conns;
        let duration = |d: Option<DurationValue>| d.map(|d| d.0).unwrap_or_default();
        let l = ListenerSettings {
            name,
            listen,
            upstreams,
            balance,
            copy: p.copy.unwrap_or_default(),
            connect_timeout: duration(p.connect_timeout),
            connect_attempts,
            idle_timeout: Some(duration(p.idle_timeout)).filter(|d| !d.is_zero()),
            dns_ttl: duration(p.dns_ttl),
            max_conns: given_conns.unwrap_or(0),
            send_proxy: p.send_proxy,
            accept_proxy: p.accept_proxy.unwrap_or(false),
            proxy_timeout: duration(p.proxy_timeout),
            sni_timeout: duration(p.sni_timeout),
            routes,
            allow,
            deny,
            max_conns_per_source: p.max_conns_per_source,
        };
        Ok((l, given_conns))
    }

    /// An `allow` or `deny` list: the flags' if given, else the
    /// listener's, else empty.
    fn networks(
        &self,
        flags: &[ipnet::IpNet],
        key: &str,
        file: Option<&Spanned<Vec<Spanned<String>>>>,
        i: usize,
    ) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        if !flags.is_empty() {
            return Ok(flags.to_vec());
        }
        let Some(list) = file else {
            return Ok(Vec::new());
        };
        list.get_ref()
            .iter()
            .enumerate()
            .map(|(j, s)| {
                crate::acl::parse_net(s.get_ref()).map_err(|m| {
                    ConfigError::new(self.origin(s), format!("listener[{i}].{key}[{j}]"), m)
                })
            })
            .collect()
    }

    /// SNI routes: from `--route` flags (grouped by name, in order, with
    /// the listener's balance) if any, else the listener's
    /// `[[listener.route]]` tables.
    fn routes(
        &self,
        l: Option<&ListenerSection>,
        i: usize,
        balance: Balance,
    ) -> Result<Vec<RouteSettings>, ConfigError> {
        let mut out: Vec<RouteSettings> = Vec::new();
        if !self.flags.routes.is_empty() {
            let flag = |m: String| ConfigError::new(Origin::Flag("route"), "route", m);
            for (name, addr) in &self.flags.routes {
                let sni = check_sni(name).map_err(flag)?;
                check_upstream(addr).map_err(flag)?;
                match out.iter_mut().find(|r| r.sni == sni) {
                    Some(r) => r.upstreams.push(addr.clone()),
                    None => out.push(RouteSettings {
                        sni,
                        upstreams: vec![addr.clone()],
                        balance,
                    }),
                }
            }
            return Ok(out);
        }
        let Some(l) = l else {
            return Ok(out);
        };
        for (j, section) in l.route.iter().enumerate() {
            let r: &RouteSection = section.get_ref();
            let at = |field: &str| format!("listener[{i}].route[{j}].{field}");
            let sni = check_sni(r.sni.get_ref())
                .map_err(|m| ConfigError::new(self.origin(&r.sni), at("sni"), m))?;
            if out.iter().any(|p| p.sni == sni) {
                return Err(ConfigError::new(
                    self.origin(&r.sni),
                    at("sni"),
                    format!("`{sni}` has a route already"),
                ));
            }
            if r.upstreams.get_ref().is_empty() {
                return Err(ConfigError::new(
                    self.origin(&r.upstreams),
                    at("upstreams"),
                    "needs at least one upstream \"host:port\"",
                ));
            }
            let mut upstreams = Vec::new();
            for (k, u) in r.upstreams.get_ref().iter().enumerate() {
                check_upstream(u.get_ref()).map_err(|m| {
                    ConfigError::new(self.origin(u), format!("{}[{k}]", at("upstreams")), m)
                })?;
                upstreams.push(u.get_ref().clone());
            }
            out.push(RouteSettings {
                sni,
                upstreams,
                balance: r.balance.as_ref().map_or(balance, |b| *b.get_ref()),
            });
        }
        Ok(out)
    }
}

/// The pool's settings; `max_pipes` is `default_pipes` unless given.
fn pool_config(
    picks: PoolPicks,
    default_pipes: usize,
) -> Result<pipepool::PoolConfig, ConfigError> {
    let PoolPicks {
        max_pipes,
        pipe_size,
        idle_timeout: idle,
    } = picks;
    let n = max_pipes.as_ref().map_or(default_pipes, |p| p.value);
    // `max_idle` follows `max_pipes` (the library's default is sized
    // from the fd limit when `default()` runs, not from `n`).
    let mut config = pipepool::PoolConfig::builder()
        .max_pipes(n)
        .max_idle(n)
        .local_cap(pipepool::DEFAULT_LOCAL_CAP.min(n));
    if let Some(p) = &pipe_size {
        let bytes = usize::try_from(p.value.0).unwrap_or(usize::MAX);
        config = config.pipe_size(bytes);
    }
    if let Some(p) = &idle {
        config = config.idle_timeout(p.value.0);
    }
    config.config().map_err(|e| {
        let (origin, field) = match e.field() {
            "max_pipes" => max_pipes
                .as_ref()
                .map(|p| (p.origin.clone(), p.field.clone())),
            "pipe_size" => pipe_size
                .as_ref()
                .map(|p| (p.origin.clone(), p.field.clone())),
            "idle_timeout" => idle.as_ref().map(|p| (p.origin.clone(), p.field.clone())),
            _ => None,
        }
        .unwrap_or((Origin::Default, format!("pool.{}", e.field())));
        ConfigError::new(origin, field, e.to_string())
    })
}

/// Checks an SNI route's name: a DNS name, or `*.` and one; returned in
/// lower case.
fn check_sni(s: &str) -> Result<String, String> {
    let name = s.trim().to_ascii_lowercase();
    let host = name.strip_prefix("*.").unwrap_or(&name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "`{s}` is not a server name or `*.suffix` (e.g. api.example.com or *.example.com)"
        ));
    }
    Ok(name)
}

/// Checks an upstream address: `host:port` or `[v6]:port`, port not 0.
fn check_upstream(s: &str) -> Result<(), String> {
    let bad = || format!("`{s}` is not a host:port address (e.g. 10.0.0.1:80 or backend:80)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => !host.is_empty() && !host.contains([':', ']']),
    };
    if !host_ok || port == 0 {
        return Err(bad());
    }
    // A host name is a metric label and a log field: DNS characters only
    // (no quote, backslash, space or control character can reach them).
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "`{}`: a host name may hold only letters, digits, `.`, `-` and `_`",
            s.escape_debug()
        ));
    }
    Ok(())
}

/// Checks a listener name: a metric label value and a log field, so no
/// control character (newline...), quote or backslash, and at most 128
/// characters.
fn check_label(name: &str) -> Result<(), String> {
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\\'))
    {
        return Err(format!(
            "`{}` holds {:?}: no quote, backslash or control character (it is a metric label)",
            name.escape_debug(),
            c
        ));
    }
    if name.chars().count() > 128 {
        return Err("longer than 128 characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CopyMode;
    use std::io::Write;
    use std::time::Duration;

    fn load_text(text: &str) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("spliced-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.toml",
            text.len() * 7919 + text.as_bytes()[0] as usize
        ));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let r = load(Some(&path), &Overrides::default());
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn a_full_file() {
        let s = load_text(
            "max_conns = 7\nidle_timeout = \"1m\"\n[pool]\nmax_pipes = 4\npipe_size = \"64KiB\"\n\
             [[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"a:1\", \"b:2\"]\n\
             balance = \"least-conn\"\nmax_conns = 3\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
             upstreams = [\"[::1]:80\"]\ncopy = \"userspace\"\nidle_timeout = 0\n",
        )
        .unwrap();
        assert_eq!(s.listeners.len(), 2);
        let (a, b) = (&s.listeners[0], &s.listeners[1]);
        assert_eq!(
            (a.name.as_str(), a.balance, a.max_conns),
            ("web", Balance::LeastConn, 3)
        );
        assert_eq!(a.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(
            (b.copy, b.max_conns, b.idle_timeout),
            (CopyMode::Userspace, 7, None)
        );
        assert_eq!(b.connect_attempts, 1);
        assert_eq!((s.pool.max_pipes(), s.pool.pipe_size()), (4, 65536));
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = load_text(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\nbalance = \"random\"\n",
        )
        .unwrap_err();
        assert_eq!(e.field, "listener[0].balance");
        assert!(matches!(e.origin, Origin::File { line: 4, .. }), "{e}");

        let e = load_text("[pool]\nmax_pipes = 0\n[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\n")
            .unwrap_err();
        assert_eq!(e.field, "pool.max_pipes");
        assert!(
            matches!(
                e.origin,
                Origin::File {
                    line: 2,
                    col: 13,
                    ..
                }
            ),
            "{e}"
        );

        let e =
            load_text("[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\", \"nope\"]\n")
                .unwrap_err();
        assert_eq!(e.field, "listener[0].upstreams[1]");

        let e = load_text(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\nmax_con = 1\n",
        )
        .unwrap_err();
        assert_eq!(e.field, "listener[0].max_con");
        assert!(matches!(e.origin, Origin::File { line: 4, .. }), "{e}");

        let e = load_text("[[listener]]\nupstreams = [\"a:1\"]\n").unwrap_err();
        assert_eq!(e.field, "listener[0].listen", "{e}");
    }

    #[test]
    fn every_table_setting_is_a_top_level_default_too() {
        let l = "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"a:1\"]\n";
        let s = load_text(&format!(
            "send_proxy = \"v1\"\naccept_proxy = true\nproxy_timeout = \"2s\"\n\
             max_conns_per_source = 5\n{l}{l}max_conns_per_source = 6\nsend_proxy = \"v2\"\n"
        ))
        .unwrap();
        let (a, b) = (&s.listeners[0], &s.listeners[1]);
        assert_eq!(
            (a.send_proxy, a.accept_proxy, a.max_conns_per_source),
            (Some(super::super::ProxyVersion::V1), true, Some(5))
        );
        assert_eq!(a.proxy_timeout, Duration::from_secs(2));
        assert_eq!(
            (b.send_proxy, b.accept_proxy, b.max_conns_per_source),
            (Some(super::super::ProxyVersion::V2), true, Some(6))
        );
        let e = load_text(&format!("\nproxy_timeout = 0\n{l}")).unwrap_err();
        assert_eq!(e.field, "proxy_timeout");
        assert!(matches!(e.origin, Origin::File { line: 2, .. }), "{e}");
        let e = load_text(&format!("{l}max_conns_per_source = 0\n")).unwrap_err();
        assert_eq!(e.field, "listener[0].max_conns_per_source");
    }

    #[test]
    fn flags_win_over_both_layers() {
        let dir = std::env::temp_dir().join(format!("spliced-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.toml");
        std::fs::write(
            &path,
            "copy = \"userspace\"\n[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\n\
             connect_timeout = \"9s\"\n",
        )
        .unwrap();
        let mut flags = Overrides::default();
        flags.listener.copy = Some(CopyMode::Splice);
        flags.listener.connect_timeout = Some(DurationValue(Duration::ZERO));
        let e = load(Some(&path), &flags).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.origin.clone()),
            ("connect_timeout", Origin::Flag("connect-timeout"))
        );
        flags.listener.connect_timeout = Some(DurationValue(Duration::from_secs(1)));
        let s = load(Some(&path), &flags).unwrap();
        let l = &s.listeners[0];
        assert_eq!(
            (l.copy, l.connect_timeout),
            (CopyMode::Splice, Duration::from_secs(1))
        );
        let s = load(Some(&path), &Overrides::default()).unwrap();
        let l = &s.listeners[0];
        assert_eq!(
            (l.copy, l.connect_timeout),
            (CopyMode::Userspace, Duration::from_secs(9))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reload_keeps_the_running_pools_size_unless_the_file_sets_it() {
        let dir = std::env::temp_dir().join(format!("spliced-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.toml");
        let l = "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"a:1\"]\n";
        std::fs::write(&path, l).unwrap();
        let s = reload(&path, &Overrides::default(), 100).unwrap();
        assert_eq!((s.pool.max_pipes(), s.pool.max_idle()), (100, 100));
        let fit = crate::limits::fit(crate::limits::nofile(), &[None], Some(100));
        assert_eq!(s.listeners[0].max_conns, fit.max_conns[0]);
        std::fs::write(&path, format!("[pool]\nmax_pipes = 7\n{l}")).unwrap();
        let s = reload(&path, &Overrides::default(), 100).unwrap();
        assert_eq!(s.pool.max_pipes(), 7);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn upstream_syntax() {
        assert!(check_upstream("10.0.0.1:80").is_ok());
        assert!(check_upstream("backend:80").is_ok());
        assert!(check_upstream("[::1]:80").is_ok());
        assert!(check_upstream("::1:80").is_err());
        assert!(check_upstream("backend").is_err());
        assert!(check_upstream("backend:0").is_err());
        assert!(check_upstream(":80").is_err());
        assert!(check_upstream("[::1:80").is_err());
        assert!(check_upstream("[backend]:80").is_err());
        assert!(check_upstream("::1]:80").is_err());
        assert!(check_upstream("back\"end:80").is_err());
        assert!(check_upstream("back\\end:80").is_err());
        assert!(check_upstream("back\nend:80").is_err());
        assert!(check_upstream("back end:80").is_err());
        assert!(check_upstream("db_1.internal-x:80").is_ok());
    }

    #[test]
    fn label_syntax() {
        assert!(check_label("web (eu-1) é").is_ok());
        assert!(check_label("a\"b").is_err());
        assert!(check_label("a\\b").is_err());
        assert!(check_label("a\nb").is_err());
        assert!(check_label("a\tb").is_err());
        assert!(check_label(&"x".repeat(129)).is_err());
    }
}
