//! The dispatcher of the admin socket: [`Commands`] maps a command name to
//! its handler; [`Reply`] is what a handler answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;

/// What a handler answers: body lines, and file descriptors to pass
/// along (`SCM_RIGHTS`), if any.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// The lines after `ok`, without their `\n`.
    pub(crate) lines: Vec<String>,
    /// Sent with the reply's first bytes, in this order.
    pub(crate) fds: Vec<OwnedFd>,
}

impl Reply {
    /// `ok` and nothing else.
    pub(crate) fn ok() -> Reply {
        Reply::default()
    }

    /// `ok` and `lines`.
    pub(crate) fn lines(lines: impl IntoIterator<Item = String>) -> Reply {
        Reply {
            lines: lines.into_iter().collect(),
            fds: Vec::new(),
        }
    }
}

/// The future a handler returns.
type Answer = Pin<Box<dyn Future<Output = Result<Reply, String>> + Send>>;
/// A handler: the request's arguments (after the command) to its answer.
type Handler = Arc<dyn Fn(Vec<String>) -> Answer + Send + Sync>;

/// The commands of the admin socket, by name.
#[derive(Clone, Default)]
pub(crate) struct Commands {
    map: BTreeMap<&'static str, (&'static str, Handler)>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

impl Commands {
    /// The built-in commands: `help` (added by the server, which knows
    /// the whole list) and `version`.
    pub(crate) fn new() -> Commands {
        let mut commands = Commands::default();
        commands.add("version", "version: `spliced VERSION pid PID`", |_| async {
            Ok(Reply::lines([format!(
                "spliced {} pid {}",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            )]))
        });
        commands
    }

    /// Adds (or replaces) the command `name`; `help` is its line in `help`
    /// (usage, a colon, what it does).
    pub(crate) fn add<F, Fut>(&mut self, name: &'static str, help: &'static str, handler: F)
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply, String>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |args| Box::pin(handler(args)) as Answer);
        self.map.insert(name, (help, handler));
    }

    /// Runs the request `line`.
    pub(crate) async fn dispatch(&self, line: &str) -> Result<Reply, String> {
        let mut words = line.split_whitespace().map(str::to_owned);
        let Some(name) = words.next() else {
            return Err("empty request: send a command (try `help`)".into());
        };
        if name == "help" {
            return Ok(Reply::lines(
                std::iter::once("help: this list".to_owned())
                    .chain(self.map.values().map(|(help, _)| (*help).to_owned())),
            ));
        }
        match self.map.get(name.as_str()) {
            Some((_, handler)) => handler(words.collect()).await,
            None => Err(format!("unknown command `{name}` (try `help`)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dispatches_by_name_with_the_arguments() {
        let mut commands = Commands::new();
        commands.add("echo", "echo WORDS: the words", |args| async move {
            Ok(Reply::lines(args))
        });
        let reply = commands.dispatch("echo a  b\n").await.unwrap();
        assert_eq!(reply.lines, ["a", "b"]);
        let help = commands.dispatch("help").await.unwrap().lines;
        assert!(help.iter().any(|l| l.starts_with("echo WORDS")), "{help:?}");
        assert!(help.iter().any(|l| l.starts_with("version")), "{help:?}");
        let err = commands.dispatch("nope 1").await.unwrap_err();
        assert!(err.contains("unknown command `nope`"), "{err}");
        assert!(commands.dispatch("  ").await.unwrap_err().contains("empty"));
    }
}
