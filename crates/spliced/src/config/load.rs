//! [`load`]: from the file's text and the flags to [`Settings`], with no
//! I/O. Flags win over a listener's own settings, which win over the
//! file's top-level defaults, which win over the built-in defaults. Every
//! value keeps its [`Origin`] so that a rejected one is reported where it
//! was written.

use std::net::SocketAddr;
use std::path::Path;
use toml::Spanned;

use super::args::RunArgs;
use super::checks::{check_label, check_sni, check_user_name};
use super::file::{self, FileConfig, ListenerSection, PoolSection, RouteSection};
use super::settings::{sized_pool, GivenSizes};
use super::units::DurationValue;
use super::{
    Balance, ConfigError, Given, ListenerSettings, Origin, RouteSettings, Settings,
    DEFAULT_GRACE_PERIOD,
};
use crate::upstream::Upstream;

/// The settings of `text`, the contents of the `--config` file of `args`
/// (ignored without one), with `args`' flags applied, validated. The
/// defaults of `max_conns` and `max_pipes` are their built-in caps until
/// [`Settings::fit_fds`] sizes them to the fd limit; `user` is a name
/// until the caller looks it up.
///
/// # Errors
/// A [`ConfigError`] naming where the first bad setting was given
/// (`FILE:LINE:COL` and the field, or the flag).
pub(crate) fn load(text: &str, args: &RunArgs) -> Result<Settings, ConfigError> {
    let path = args.config.as_deref();
    let (file, text) = match path {
        Some(path) => (file::parse(path, text)?, text),
        None => (FileConfig::default(), ""),
    };
    let r = Resolver {
        path: path.unwrap_or(Path::new("-")),
        has_file: path.is_some(),
        text,
        file: &file,
        flags: args,
    };
    r.settings()
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
            $($name: Option<Given<$ty>>,)*
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
    flags: &'a RunArgs,
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
    ) -> Option<Given<T>> {
        if let Some(v) = flag.0 {
            return Some(Given {
                value: v.clone(),
                origin: Origin::Flag(flag.1),
                field: field.to_owned(),
            });
        }
        for (layer, path) in layers {
            if let Some(s) = layer {
                return Some(Given {
                    value: s.get_ref().clone(),
                    origin: self.origin(s),
                    field: path.clone(),
                });
            }
        }
        default.map(|value| Given {
            value,
            origin: Origin::Default,
            field: field.to_owned(),
        })
    }

    /// `picked`, unless `check` rejects it (then an error naming where it
    /// was given).
    fn checked<T>(
        &self,
        picked: Option<Given<T>>,
        check: fn(&T) -> Result<(), String>,
    ) -> Result<Option<Given<T>>, ConfigError> {
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
        if let Some(u) = &top.user {
            check_user_name(&u.value).map_err(|e| u.error(e))?;
        }
        let listeners = self.listeners()?;
        let given = GivenSizes {
            max_conns: listeners.iter().map(|(_, given)| *given).collect(),
            max_pipes: pool.max_pipes.as_ref().map(|p| p.value),
        };
        let mut settings = Settings {
            listeners: listeners.into_iter().map(|(l, _)| l).collect(),
            pool: pool_config(pool)?,
            fds_fitted: None,
            metrics,
            grace_period: top.grace_period.map_or(DEFAULT_GRACE_PERIOD, |p| p.value.0),
            worker_threads: top.worker_threads.map(|w| w.value),
            worker_model: top.worker_model.map(|w| w.value).unwrap_or_default(),
            log_level,
            user: top.user,
            admin_socket: top.admin_socket.map(|p| p.value.into()),

            access_log: top
                .access_log
                .map(|a| crate::access_log::Target::parse(&a.value)),
            access_log_format: top.access_log_format.map(|f| f.value).unwrap_or_default(),
            given,
        };
        // No limit known here: the built-in caps, until `fit_fds`.
        settings.fit_fds(None, None);
        Ok(settings)
    }

    /// Each listener, with its `max_conns` if one was given (else 0 until
    /// [`crate::limits::fit`] picks the default).
    fn listeners(&self) -> Result<Vec<(ListenerSettings, Option<usize>)>, ConfigError> {
        let (f, o) = (self.file, self.flags);
        if let Some(listen) = o.listen.clone() {
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
            if !listen.is_any_port() {
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

    fn listen_addr(
        &self,
        l: &ListenerSection,
        i: usize,
    ) -> Result<crate::address::ListenAddr, ConfigError> {
        l.listen.get_ref().parse().map_err(|m| {
            ConfigError::new(self.origin(&l.listen), format!("listener[{i}].listen"), m)
        })
    }

    fn upstreams_from_flags(&self) -> Result<Vec<Upstream>, ConfigError> {
        self.flags
            .upstreams
            .iter()
            .map(|u| {
                u.parse()
                    .map_err(|m| ConfigError::new(Origin::Flag("upstream"), "upstream", m))
            })
            .collect()
    }

    fn upstreams_from_file(
        &self,
        l: &ListenerSection,
        i: usize,
    ) -> Result<Vec<Upstream>, ConfigError> {
        if l.upstreams.get_ref().is_empty() {
            return Err(ConfigError::new(
                self.origin(&l.upstreams),
                format!("listener[{i}].upstreams"),
                "needs at least one upstream \"host:port\"",
            ));
        }
        let mut out = Vec::new();
        for (j, u) in l.upstreams.get_ref().iter().enumerate() {
            out.push(u.get_ref().parse().map_err(|m| {
                ConfigError::new(self.origin(u), format!("listener[{i}].upstreams[{j}]"), m)
            })?);
        }
        Ok(out)
    }

    /// One listener's settings: flags, then the listener's own table (if
    /// from the file), then the top level, then the defaults.
    fn listener(
        &self,
        l: Option<&ListenerSection>,
        name: String,
        listen: crate::address::ListenAddr,
        upstreams: Vec<Upstream>,
        i: usize,
    ) -> Result<(ListenerSettings, Option<usize>), ConfigError> {
        let o = self.flags;
        let l_section = l;
        let p = self.picks(l, i)?;
        let balance = p.balance.unwrap_or_default();
        let allow = self.networks(
            &o.allow,
            &format!("listener[{i}].allow"),
            l.and_then(|l| l.allow.as_ref()),
        )?;
        let deny = self.networks(
            &o.deny,
            &format!("listener[{i}].deny"),
            l.and_then(|l| l.deny.as_ref()),
        )?;
        let accept_proxy = p.accept_proxy.unwrap_or(false);
        let accept_proxy_from = self.trusted_proxies(l, accept_proxy, i)?;
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
            accept_proxy,
            accept_proxy_from,
            proxy_timeout: duration(p.proxy_timeout),
            sni_timeout: duration(p.sni_timeout),
            routes,
            allow,
            deny,
            max_conns_per_source: p.max_conns_per_source,
            client_keepalive: p.client_keepalive,
            upstream_keepalive: p.upstream_keepalive,
            client_user_timeout: p.client_user_timeout.map(|d| d.0).filter(|d| !d.is_zero()),
            upstream_user_timeout: p
                .upstream_user_timeout
                .map(|d| d.0)
                .filter(|d| !d.is_zero()),
            health_interval: Some(duration(p.health_interval)).filter(|d| !d.is_zero()),
            health_timeout: None,
            health_rise: p.health_rise.unwrap_or(2),
            health_fall: p.health_fall.unwrap_or(3),
            health_send: p.health_send,
            health_expect: p.health_expect,
            unix_mode: p.unix_mode,
            unix_owner: p.unix_owner,
            unix_group: p.unix_group,
        };
        let l = ListenerSettings {
            health_timeout: l
                .health_interval
                .map(|i| p.health_timeout.map_or(i, |t| t.0)),
            ..l
        };
        self.check_unix_listener(l_section, &l, i)?;
        Ok((l, given_conns))
    }

    /// `accept_proxy_from`: the flags' if given, else the listener's,
    /// else the top level's. Required with `accept_proxy` (without it any
    /// client could claim any address, and allow/deny would judge the
    /// claim); refused without it when the file sets it for this
    /// listener (an operator would think it restricts something).
    fn trusted_proxies(
        &self,
        l: Option<&ListenerSection>,
        accept_proxy: bool,
        i: usize,
    ) -> Result<Vec<crate::acl::ProxySource>, ConfigError> {
        let own = l.and_then(|l| l.accept_proxy_from.as_ref());
        let file = own.or(self.file.accept_proxy_from.as_ref());
        let field = if own.is_some() {
            format!("listener[{i}].accept_proxy_from")
        } else {
            "accept_proxy_from".to_owned()
        };
        let nets = self.proxy_sources(&field, file)?;
        if accept_proxy && nets.is_empty() {
            let origin = if self.flags.listener.accept_proxy.is_some() {
                Origin::Flag("accept-proxy")
            } else {
                l.and_then(|l| l.accept_proxy.as_ref())
                    .or(self.file.accept_proxy.as_ref())
                    .map_or(Origin::Default, |s| self.origin(s))
            };
            return Err(ConfigError::new(
                origin,
                format!("listener[{i}].accept_proxy_from"),
                "accept_proxy needs accept_proxy_from (--accept-proxy-from CIDR, repeatable): \
                 the networks of the balancers whose PROXY headers are believed; without it \
                 any client could claim any address",
            ));
        }
        if let (false, Some(list)) = (accept_proxy, own) {
            return Err(ConfigError::new(
                self.origin(list),
                format!("listener[{i}].accept_proxy_from"),
                "accept_proxy_from is set but accept_proxy is not: set accept_proxy = true \
                 to read PROXY headers from these peers, or use allow/deny to restrict clients",
            ));
        }
        Ok(nets)
    }

    /// The `accept_proxy_from` list (`field` in errors): the flags' if
    /// given, else the file's, else empty.
    fn proxy_sources(
        &self,
        field: &str,
        file: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Vec<crate::acl::ProxySource>, ConfigError> {
        let flags = &self.flags.accept_proxy_from;
        self.list(flags, field, file, crate::acl::parse_proxy_source)
    }

    /// What a `unix:/path` listener cannot have: `allow`, `deny` and
    /// `max_conns_per_source` judge IP addresses, which its clients do
    /// not have (with `accept_proxy`, they judge the header's address,
    /// and `accept_proxy_from` needs its `unix` entry); SNI routes peek
    /// at TCP sockets only.
    fn check_unix_listener(
        &self,
        l: Option<&ListenerSection>,
        s: &ListenerSettings,
        i: usize,
    ) -> Result<(), ConfigError> {
        let Some(path) = s.listen.unix() else {
            return Ok(());
        };
        let origin = match l {
            Some(l) => self.origin(&l.listen),
            None => Origin::Flag("listen"),
        };
        let fail = |key: &str, why: &str| {
            Err(ConfigError::new(
                origin.clone(),
                format!("listener[{i}].{key}"),
                format!("the listener on unix:{} {why}", path.display()),
            ))
        };
        if !s.accept_proxy {
            let ip_only = "judges clients by IP address, which a Unix socket's clients do not \
                           have: remove it (the socket file's unix_mode, unix_owner and \
                           unix_group say who may connect)";
            if !s.allow.is_empty() {
                return fail("allow", &format!("has `allow`: it {ip_only}"));
            }
            if !s.deny.is_empty() {
                return fail("deny", &format!("has `deny`: it {ip_only}"));
            }
            if s.max_conns_per_source.is_some() {
                return fail(
                    "max_conns_per_source",
                    &format!("has `max_conns_per_source`: it {ip_only}; use max_conns"),
                );
            }
        } else if !s.accept_proxy_from.contains(&crate::acl::ProxySource::Unix) {
            return fail(
                "accept_proxy_from",
                "reads PROXY headers (accept_proxy), but no network can match a Unix \
                 peer: add `unix` to accept_proxy_from to believe the headers of \
                 whoever may connect to the socket file",
            );
        }
        if !s.routes.is_empty() {
            return fail("route", "has SNI routes: SNI routing needs a TCP listener");
        }
        Ok(())
    }

    /// A list of networks (`field` in errors): the flags' if given, else
    /// the file's, else empty.
    fn networks(
        &self,
        flags: &[ipnet::IpNet],
        field: &str,
        file: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.list(flags, field, file, crate::acl::parse_net)
    }

    /// A list setting (`field` in errors): the flags' if given, else the
    /// file's entries through `parse`, else empty.
    fn list<T: Clone>(
        &self,
        flags: &[T],
        field: &str,
        file: Option<&Spanned<Vec<Spanned<String>>>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
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
                parse(s.get_ref())
                    .map_err(|m| ConfigError::new(self.origin(s), format!("{field}[{j}]"), m))
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
                let addr: Upstream = addr.parse().map_err(flag)?;
                match out.iter_mut().find(|r| r.sni == sni) {
                    Some(r) => r.upstreams.push(addr),
                    None => out.push(RouteSettings {
                        sni,
                        upstreams: vec![addr],
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
                upstreams.push(u.get_ref().parse().map_err(|m| {
                    ConfigError::new(self.origin(u), format!("{}[{k}]", at("upstreams")), m)
                })?);
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

/// The pool's settings, validated; `max_pipes` is its built-in cap unless
/// given.
fn pool_config(picks: PoolPicks) -> Result<pipepool::PoolConfig, ConfigError> {
    let PoolPicks {
        max_pipes,
        pipe_size,
        idle_timeout: idle,
    } = picks;
    let n = max_pipes
        .as_ref()
        .map_or(crate::limits::MAX_DEFAULT_PIPES, |p| p.value);
    let mut config = sized_pool(pipepool::PoolConfig::builder(), n);
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
