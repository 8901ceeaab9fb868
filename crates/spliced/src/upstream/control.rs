//! The upstream commands of the admin socket (`spliced ctl`): `show`,
//! `drain`, `disable`, `enable` and `weight`. Each takes the words of one
//! command line and the listeners' upstream groups, and answers the text
//! to print or the error to report. What they set lives in each
//! upstream's state ([`super::state`]), so it survives a reload that keeps
//! the upstream.
//!
//! `show` prints one line per upstream, tab-separated: listener, address,
//! state (`up`, `down`, `drain`, `disabled`), weight, open connections,
//! the last check's result (`-`: none), then notes: the group when it is
//! an SNI route's, and `runtime: ...` where a run-time setting overrides
//! the file.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

use super::state::{Admin, State};
use super::{Balancer, MAX_WEIGHT};

/// A listener's upstream groups: (group, balancer), `default` first.
pub(crate) type Groups = Vec<(String, Arc<Balancer>)>;

/// Every listener's upstream groups: (listener, groups).
pub(crate) type Listing = [(String, Arc<Groups>)];

/// Runs the upstream command `words` (`show`, `drain L A`, ...) on
/// `listeners`: `show`'s lines, or nothing for a change that was made;
/// `None` when `words` is no upstream command.
///
/// # Errors
/// A message for the operator: an unknown listener or address, a bad
/// weight, missing or extra words.
pub(crate) fn command(words: &[&str], listeners: &Listing) -> Option<Result<String, String>> {
    let (verb, args) = words.split_first()?;
    let usage = |u: &str| Err(format!("usage: {u}"));
    Some(match (*verb, args) {
        ("show", []) => Ok(show(listeners)),
        ("show", _) => usage("show"),
        ("drain" | "disable" | "enable", [l, a]) => {
            let admin = match *verb {
                "drain" => Admin::Drain,
                "disable" => Admin::Disabled,
                _ => Admin::Enabled,
            };
            find(listeners, l, a).map(|states| {
                for s in &states {
                    s.set_admin(admin);
                }
                String::new()
            })
        }
        ("drain" | "disable" | "enable", _) => usage(&format!("{verb} LISTENER ADDR")),
        ("weight", [l, a, n]) => match n.parse::<u32>() {
            Ok(w) if w <= MAX_WEIGHT => find(listeners, l, a).map(|states| {
                for s in &states {
                    s.set_weight(w);
                }
                String::new()
            }),
            _ => Err(format!(
                "`{}` is not a weight (a whole number from 0 to {MAX_WEIGHT})",
                n.escape_debug()
            )),
        },
        ("weight", _) => usage("weight LISTENER ADDR N"),
        _ => return None,
    })
}

/// The states of upstream `addr` in every group of listener `listener`.
fn find(listeners: &Listing, listener: &str, addr: &str) -> Result<Vec<Arc<State>>, String> {
    let Some((_, groups)) = listeners.iter().find(|(n, _)| n == listener) else {
        let names: Vec<&str> = listeners.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!(
            "unknown listener `{}` (listeners: {})",
            listener.escape_debug(),
            names.join(", ")
        ));
    };
    let mut found: Vec<Arc<State>> = Vec::new();
    let mut all = Vec::new();
    for (_, b) in groups.iter() {
        for (state, spec) in b.members() {
            all.push(spec.as_str().to_owned());
            if spec.as_str() == addr && !found.iter().any(|f| Arc::ptr_eq(f, state)) {
                found.push(Arc::clone(state));
            }
        }
    }
    if found.is_empty() {
        all.dedup();
        return Err(format!(
            "listener `{listener}` has no upstream `{}` (upstreams: {})",
            addr.escape_debug(),
            all.join(", ")
        ));
    }
    Ok(found)
}

/// `show`'s lines.
fn show(listeners: &Listing) -> String {
    let mut out = String::new();
    for (listener, groups) in listeners {
        let mut seen = HashSet::new();
        for (group, b) in groups.iter() {
            for (index, (state, spec)) in b.members().enumerate() {
                if !seen.insert(Arc::as_ptr(state)) {
                    continue;
                }
                let admin = state.admin();
                let shown = match admin {
                    Admin::Disabled => "disabled",
                    Admin::Drain => "drain",
                    Admin::Enabled if !b.healthy(index) => "down",
                    Admin::Enabled => "up",
                };
                let mut notes = Vec::new();
                if group != "default" {
                    notes.push(format!("group {group}"));
                }
                if spec.is_backup() {
                    notes.push("backup".to_owned());
                }
                if let Some(max) = spec.max_conns() {
                    notes.push(format!("max_conns {max}"));
                }
                if admin != Admin::Enabled {
                    notes.push(format!("runtime: state {shown}"));
                }
                if let Some(w) = state.weight_override() {
                    notes.push(format!("runtime: weight {w} (file: {})", spec.weight()));
                }
                let _ = writeln!(
                    out,
                    "{listener}\t{}\t{shown}\t{}\t{}\t{}\t{}",
                    spec.as_str(),
                    b.weight(index),
                    state.active(),
                    state.last_check(),
                    notes.join(", ")
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Balance;

    fn listing() -> Vec<(String, Arc<Groups>)> {
        let ups = ["10.0.0.1:80 weight=2", "10.0.0.2:80 backup"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let b = Balancer::renew(Balance::RoundRobin, ups, None);
        vec![("web".to_owned(), Arc::new(vec![("default".to_owned(), b)]))]
    }

    fn run(l: &Listing, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        command(&words, l).expect("an upstream command")
    }

    #[test]
    fn show_drain_weight_and_errors() {
        let l = listing();
        let shown = run(&l, "show").unwrap();
        assert_eq!(
            shown,
            "web\t10.0.0.1:80\tup\t2\t0\t-\t\nweb\t10.0.0.2:80\tup\t1\t0\t-\tbackup\n"
        );
        assert_eq!(run(&l, "drain web 10.0.0.1:80").unwrap(), "");
        run(&l, "weight web 10.0.0.2:80 7").unwrap();
        let shown = run(&l, "show").unwrap();
        assert!(
            shown.contains("web\t10.0.0.1:80\tdrain\t2\t0\t-\truntime: state drain\n"),
            "{shown}"
        );
        assert!(
            shown.contains("\t7\t0\t-\tbackup, runtime: weight 7 (file: 1)\n"),
            "{shown}"
        );
        run(&l, "enable web 10.0.0.1:80").unwrap();
        assert!(run(&l, "show")
            .unwrap()
            .starts_with("web\t10.0.0.1:80\tup\t"));
        let e = run(&l, "drain api 10.0.0.1:80").unwrap_err();
        assert_eq!(e, "unknown listener `api` (listeners: web)");
        let e = run(&l, "drain web 10.0.0.9:80").unwrap_err();
        assert!(e.contains("has no upstream `10.0.0.9:80`"), "{e}");
        assert!(run(&l, "weight web 10.0.0.1:80 x").is_err());
        assert!(run(&l, "weight web 10.0.0.1:80 1001").is_err());
        assert!(run(&l, "drain web")
            .unwrap_err()
            .starts_with("usage: drain"));
        assert!(command(&["quit"], &l).is_none());
    }
}
