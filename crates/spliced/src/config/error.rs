//! [`ConfigError`]: a configuration that cannot work, saying where it came
//! from (file, line, column and field, or the flag) and why.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where a setting was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// In a config file, at a 1-based line and column.
    File {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
    },
    /// On the command line, by this flag (without the dashes).
    Flag(&'static str),
    /// Nowhere: a default, or a combination of settings.
    Default,
}

impl Origin {
    /// The origin of the byte `span` of `text`, the contents of `path`.
    pub(crate) fn in_file(path: &Path, text: &str, span: Range<usize>) -> Origin {
        let (line, col) = line_col(text, span.start);
        Origin::File {
            path: path.to_owned(),
            line,
            col,
        }
    }
}

/// A configuration that cannot work. Displayed as
/// `FILE:LINE:COL: field `F`: MESSAGE`, or `flag --F: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the bad setting was given.
    pub(crate) origin: Origin,
    /// The setting's path in the file, e.g. `listener[0].balance`.
    pub(crate) field: String,
    /// What is wrong with it.
    pub(crate) message: String,
}

impl ConfigError {
    /// A new error.
    pub(crate) fn new(
        origin: Origin,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            origin,
            field: field.into(),
            message: message.into(),
        }
    }

    /// An error in the TOML syntax or types of `text`, the contents of
    /// `path`: at the place of toml's span, naming the field by its path
    /// in the document (serde's, for a value or a table of the wrong
    /// shape, an unknown or a missing field). A syntax error has no path
    /// (the document did not parse): it names the key on its line, or
    /// the table of its header.
    pub(crate) fn from_toml(
        path: &Path,
        text: &str,
        err: &serde_path_to_error::Error<toml::de::Error>,
    ) -> ConfigError {
        let inner = err.inner();
        let span = inner.span().unwrap_or(0..0);
        let origin = Origin::in_file(path, text, span.clone());
        let message = inner.message().trim().to_owned();
        let at = document_path(err.path());
        let field = match (at, named_field(&message)) {
            (Some(at), Some(name)) if !at.ends_with(&format!(".{name}")) && at != name => {
                format!("{at}.{name}")
            }
            (Some(at), _) => at,
            (None, Some(name)) => name,
            (None, None) => syntax::field_at(text, span.start)
                .or_else(|| syntax::header_at(text, span.start))
                .unwrap_or_else(|| "(syntax)".to_owned()),
        };
        ConfigError {
            origin,
            field,
            message,
        }
    }
}

/// serde's path of a value in the document, as a config error names it
/// (`listener[1].upstreams[0]`): without the segments that toml's
/// `Spanned` adds; `None` at the root.
fn document_path(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned_private") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { path, line, col } => write!(
                f,
                "{}:{line}:{col}: field `{}`: {}",
                path.display(),
                self.field,
                self.message
            ),
            Origin::Flag(flag) => write!(f, "flag --{flag}: {}", self.message),
            Origin::Default => write!(f, "`{}`: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The field a message names: serde's "missing field `listen`",
/// "unknown field `balanse`, expected ...", toml's "duplicate key `pool`".
fn named_field(message: &str) -> Option<String> {
    let last = message.lines().last()?;
    let rest = last
        .strip_prefix("missing field `")
        .or_else(|| last.strip_prefix("unknown field `"))
        .or_else(|| last.strip_prefix("duplicate key `"))?;
    Some(rest.split('`').next()?.to_owned())
}

/// Where a syntax error is: the document did not parse, so there is no
/// path, only the span's line.
mod syntax {

    /// The dotted path of the `key = value` line holding byte `offset`, under
    /// the table header above it: `pool.pipe_size`, `listener[1].balance`.
    pub(super) fn field_at(text: &str, offset: usize) -> Option<String> {
        let offset = offset.min(text.len());
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line = text[line_start..].lines().next().unwrap_or("");
        let (key, _) = line.split_once('=')?;
        let key = key.trim().trim_matches('"');
        if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
            return None;
        }
        Some(match table_at(text, line_start) {
            Some(table) => format!("{table}.{key}"),
            None => key.to_owned(),
        })
    }

    /// The name in the table header (`[pool]`, `[[listener]]`) on the line
    /// holding byte `offset`, if that line is a well-formed header: a type
    /// error about a whole table (`[listener]` for `[[listener]]`, a table
    /// given twice) is reported under the table's name.
    pub(super) fn header_at(text: &str, offset: usize) -> Option<String> {
        let offset = offset.min(text.len());
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line = text[line_start..].lines().next().unwrap_or("").trim();
        let name = line
            .strip_prefix("[[")
            .and_then(|r| r.strip_suffix("]]"))
            .or_else(|| line.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?
            .trim();
        let plain = !name.is_empty() && !name.contains(['[', ']', '#', '=']);
        plain.then(|| name.to_owned())
    }

    /// The table that byte `offset` of `text` is in, from the closest header
    /// above it: `pool`, or `listener[N]` for the N-th `[[listener]]`.
    fn table_at(text: &str, offset: usize) -> Option<String> {
        let offset = offset.min(text.len());
        let mut current = None;
        let mut counts: Vec<(String, usize)> = Vec::new();
        let mut pos = 0;
        for line in text.split_inclusive('\n') {
            if pos > offset {
                break;
            }
            pos += line.len();
            let t = line.trim();
            if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
                let name = name.trim().to_owned();
                let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        counts.push((name.clone(), 0));
                        0
                    }
                };
                current = Some(format!("{name}[{n}]"));
            } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
                current = Some(name.trim().to_owned());
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::syntax::{field_at, header_at};
    use super::*;

    const TEXT: &str = "max_conns = 10\n[pool]\npipe_size = 1\n[[listener]]\nlisten = \"x\"\n[[listener]]\nbalance = \"y\"\n";

    #[test]
    fn lines_and_columns() {
        assert_eq!(line_col(TEXT, 0), (1, 1));
        assert_eq!(line_col(TEXT, 12), (1, 13));
        assert_eq!(line_col(TEXT, 15), (2, 1));
    }

    #[test]
    fn table_headers_name_their_table() {
        let text = "a = 1\n[listener]\nlisten = 1\n[[listener]\n[ pool ]\n";
        let at = |needle: &str| text.find(needle).unwrap();
        assert_eq!(
            header_at(text, at("[listener]")).as_deref(),
            Some("listener")
        );
        assert_eq!(header_at(text, at("[[listener]\n")), None);
        assert_eq!(header_at(text, at("[ pool")).as_deref(), Some("pool"));
        assert_eq!(header_at(text, at("a = 1")), None);
    }

    #[test]
    fn fields_under_tables() {
        let at = |needle: &str| TEXT.find(needle).unwrap();
        assert_eq!(field_at(TEXT, at("10")).as_deref(), Some("max_conns"));
        assert_eq!(
            field_at(TEXT, at("1\n[[")).as_deref(),
            Some("pool.pipe_size")
        );
        assert_eq!(
            field_at(TEXT, at("\"x\"")).as_deref(),
            Some("listener[0].listen")
        );
        assert_eq!(
            field_at(TEXT, at("\"y\"")).as_deref(),
            Some("listener[1].balance")
        );
    }
}
