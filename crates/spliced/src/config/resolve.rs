//! From a file and flags to [`Settings`]: flags win over a listener's own
//! settings, which win over the file's top-level defaults, which win over
//! the built-in defaults. Every value keeps its [`Origin`] so that a
//! rejected one is reported where it was written.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use toml::Spanned;

use super::file::{FileConfig, ListenerSection};
use super::units::{DurationValue, SizeValue};
use super::{
    Balance, ConfigError, CopyMode, ListenerSettings, Origin, Settings, DEFAULT_CONNECT_ATTEMPTS,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_GRACE_PERIOD, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNS,
};

/// Settings given as flags to `spliced run`; each overrides the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    /// `--listen`: replaces the file's listeners with this one.
    pub(crate) listen: Option<SocketAddr>,
    /// `--upstream`: the upstreams of the `--listen` listener, or of the
    /// file's only listener.
    pub(crate) upstreams: Vec<String>,
    /// `--balance`.
    pub(crate) balance: Option<Balance>,
    /// `--copy`.
    pub(crate) copy: Option<CopyMode>,
    /// `--connect-timeout`.
    pub(crate) connect_timeout: Option<DurationValue>,
    /// `--connect-attempts`.
    pub(crate) connect_attempts: Option<usize>,
    /// `--idle-timeout`.
    pub(crate) idle_timeout: Option<DurationValue>,
    /// `--max-conns`.
    pub(crate) max_conns: Option<usize>,
    /// `--worker-threads`.
    pub(crate) worker_threads: Option<usize>,
    /// `--max-pipes`.
    pub(crate) max_pipes: Option<usize>,
    /// `--pipe-size`.
    pub(crate) pipe_size: Option<SizeValue>,
    /// `--pipe-idle-timeout`.
    pub(crate) pipe_idle_timeout: Option<DurationValue>,
    /// `--metrics`.
    pub(crate) metrics: Option<SocketAddr>,
    /// `--grace-period`.
    pub(crate) grace_period: Option<DurationValue>,
    /// `--log-level`.
    pub(crate) log_level: Option<String>,
    /// `--user`.
    pub(crate) user: Option<String>,
}

/// Reads `path` (if any), applies the flags and validates the result.
///
/// # Errors
/// A [`ConfigError`] naming where the first bad setting was given.
pub(crate) fn load(path: Option<&Path>, flags: &Overrides) -> Result<Settings, ConfigError> {
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

/// Resolution state: the file (raw text for locations) and the flags.
struct Resolver<'a> {
    /// The file, if one was given (`-` if not).
    path: &'a Path,
    /// Whether a file was given (it may be empty).
    has_file: bool,
    text: &'a str,
    file: &'a FileConfig,
    flags: &'a Overrides,
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

    fn settings(&self) -> Result<Settings, ConfigError> {
        let (f, o) = (self.file, self.flags);
        let workers = self.pick(
            (o.worker_threads.as_ref(), "worker-threads"),
            &[(f.worker_threads.as_ref(), "worker_threads".into())],
            None,
            "worker_threads",
        );
        if let Some(w) = &workers {
            if w.value == 0 {
                return Err(w.error("must be at least 1"));
            }
        }
        let grace = self
            .pick(
                (o.grace_period.as_ref(), "grace-period"),
                &[(f.grace_period.as_ref(), "grace_period".into())],
                Some(DurationValue(DEFAULT_GRACE_PERIOD)),
                "grace_period",
            )
            .map_or(DEFAULT_GRACE_PERIOD, |p| p.value.0);
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
        let log_level = match (&o.log_level, &f.log_level) {
            (Some(_), _) => None, // the flag is applied by main; already checked by clap
            (None, Some(s)) => {
                tracing_subscriber::EnvFilter::try_new(s.get_ref()).map_err(|e| {
                    ConfigError::new(self.origin(s), "log_level", format!("bad filter: {e}"))
                })?;
                Some(s.get_ref().clone())
            }
            (None, None) => None,
        };
        let user = self
            .pick(
                (o.user.as_ref(), "user"),
                &[(f.user.as_ref(), "user".into())],
                None,
                "user",
            )
            .map(|u| crate::privileges::lookup(&u.value).map_err(|e| u.error(e)))
            .transpose()?;
        let listeners = self.listeners()?;
        Ok(Settings {
            listeners,
            pool: self.pool()?,
            metrics,
            grace_period: grace,
            worker_threads: workers.map(|w| w.value),
            log_level,
            user,
        })
    }

    fn listeners(&self) -> Result<Vec<ListenerSettings>, ConfigError> {
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
        if !o.upstreams.is_empty() && f.listener.len() > 1 {
            return Err(ConfigError::new(
                Origin::Flag("upstream"),
                "upstream",
                "--upstream without --listen applies to a single listener, but the file has several",
            ));
        }
        let mut out: Vec<ListenerSettings> = Vec::new();
        for (i, section) in f.listener.iter().enumerate() {
            let l = section.get_ref();
            let listen = self.listen_addr(l, i)?;
            if listen.port() != 0 {
                if let Some(prev) = out.iter().find(|p| p.listen == listen) {
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
                Some(n) => n.get_ref().clone(),
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
    ) -> Result<ListenerSettings, ConfigError> {
        let (f, o) = (self.file, self.flags);
        let at = |field: &str| format!("listener[{i}].{field}");
        let balance = self
            .pick(
                (o.balance.as_ref(), "balance"),
                &[
                    (l.and_then(|l| l.balance.as_ref()), at("balance")),
                    (f.balance.as_ref(), "balance".into()),
                ],
                Some(Balance::default()),
                "balance",
            )
            .map_or(Balance::default(), |p| p.value);
        let copy = self
            .pick(
                (o.copy.as_ref(), "copy"),
                &[
                    (l.and_then(|l| l.copy.as_ref()), at("copy")),
                    (f.copy.as_ref(), "copy".into()),
                ],
                Some(CopyMode::default()),
                "copy",
            )
            .map_or(CopyMode::default(), |p| p.value);
        let connect_timeout = self
            .pick(
                (o.connect_timeout.as_ref(), "connect-timeout"),
                &[
                    (
                        l.and_then(|l| l.connect_timeout.as_ref()),
                        at("connect_timeout"),
                    ),
                    (f.connect_timeout.as_ref(), "connect_timeout".into()),
                ],
                Some(DurationValue(DEFAULT_CONNECT_TIMEOUT)),
                "connect_timeout",
            )
            .expect("has a default");
        if connect_timeout.value.0.is_zero() {
            return Err(connect_timeout.error("must be longer than zero"));
        }
        let attempts = self
            .pick(
                (o.connect_attempts.as_ref(), "connect-attempts"),
                &[
                    (
                        l.and_then(|l| l.connect_attempts.as_ref()),
                        at("connect_attempts"),
                    ),
                    (f.connect_attempts.as_ref(), "connect_attempts".into()),
                ],
                Some(DEFAULT_CONNECT_ATTEMPTS),
                "connect_attempts",
            )
            .expect("has a default");
        if attempts.value == 0 {
            return Err(attempts.error("must be at least 1"));
        }
        let idle = self
            .pick(
                (o.idle_timeout.as_ref(), "idle-timeout"),
                &[
                    (l.and_then(|l| l.idle_timeout.as_ref()), at("idle_timeout")),
                    (f.idle_timeout.as_ref(), "idle_timeout".into()),
                ],
                Some(DurationValue(DEFAULT_IDLE_TIMEOUT)),
                "idle_timeout",
            )
            .expect("has a default");
        let max_conns = self
            .pick(
                (o.max_conns.as_ref(), "max-conns"),
                &[
                    (l.and_then(|l| l.max_conns.as_ref()), at("max_conns")),
                    (f.max_conns.as_ref(), "max_conns".into()),
                ],
                Some(DEFAULT_MAX_CONNS),
                "max_conns",
            )
            .expect("has a default");
        if max_conns.value == 0 {
            return Err(max_conns.error("must be at least 1"));
        }
        let connect_attempts = attempts.value.min(upstreams.len());
        Ok(ListenerSettings {
            name,
            listen,
            upstreams,
            balance,
            copy,
            connect_timeout: connect_timeout.value.0,
            connect_attempts,
            idle_timeout: Some(idle.value.0).filter(|d| !d.is_zero()),
            max_conns: max_conns.value,
        })
    }

    fn pool(&self) -> Result<pipepool::PoolConfig, ConfigError> {
        let (o, pool) = (self.flags, self.file.pool.as_ref());
        let max_pipes = self.pick(
            (o.max_pipes.as_ref(), "max-pipes"),
            &[(
                pool.and_then(|p| p.max_pipes.as_ref()),
                "pool.max_pipes".into(),
            )],
            None,
            "pool.max_pipes",
        );
        let pipe_size = self.pick(
            (o.pipe_size.as_ref(), "pipe-size"),
            &[(
                pool.and_then(|p| p.pipe_size.as_ref()),
                "pool.pipe_size".into(),
            )],
            None,
            "pool.pipe_size",
        );
        let idle = self.pick(
            (o.pipe_idle_timeout.as_ref(), "pipe-idle-timeout"),
            &[(
                pool.and_then(|p| p.idle_timeout.as_ref()),
                "pool.idle_timeout".into(),
            )],
            None,
            "pool.idle_timeout",
        );
        let mut config = pipepool::PoolConfig::default();
        if let Some(p) = &max_pipes {
            if p.value == 0 {
                return Err(
                    p.error("must be at least 1 (use copy = \"userspace\" to turn splicing off)")
                );
            }
            // local_cap and max_idle follow max_pipes.
            config = config.max_pipes(p.value);
        }
        if let Some(p) = &pipe_size {
            let bytes = usize::try_from(p.value.0).unwrap_or(usize::MAX);
            config = config.pipe_size(bytes);
        }
        if let Some(p) = &idle {
            config = config.idle_timeout(p.value.0);
        }
        config.validate().map_err(|e| {
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
        })?;
        Ok(config)
    }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!((s.pool.get_max_pipes(), s.pool.get_pipe_size()), (4, 65536));
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
    }
}
