//! Session parameters a client expects on every server connection it uses: what it asked for at
//! startup and what it later SET on reported parameters. Before a request runs on a connection
//! that differs, the difference is applied with SET; nothing is sent when they match.

use std::collections::BTreeMap;

use crate::classify::{DiscardKind, SessionChange};
use crate::protocol::startup::StartupMessage;
use crate::server::params::ParamSet;

/// Reported parameters a client cannot set; never compared or replayed.
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_encoding",
    "integer_datetimes",
    "is_superuser",
    "session_authorization",
    "in_hot_standby",
    "scram_iterations",
];

/// Startup keys that are not session parameters.
const NOT_PARAMS: &[&str] = &["user", "database", "options", "replication"];

/// A client's expected parameters.
#[derive(Debug, Default)]
pub struct ClientParams {
    set: ParamSet,
    /// Bumped on every change, to skip comparing when a connection last served this same state.
    pub version: u64,
}

impl ClientParams {
    /// The parameters requested in a startup packet, `options=-c name=value` included.
    pub fn requested(startup: &StartupMessage) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            startup.params.iter().filter(|(k, _)| !NOT_PARAMS.contains(&k.as_str())).cloned().collect();
        if let Some(options) = startup.get("options") {
            out.extend(parse_options(options));
        }
        out
    }

    /// The parameters a client expects after login: what a fresh server connection reports,
    /// overlaid with what the client asked for. Values are the client's own spelling until the
    /// first server connection normalises them (see [`ClientParams::adopt_changes`]).
    pub fn at_login(initial: &BTreeMap<String, String>, requested: &[(String, String)]) -> Self {
        let mut params = ClientParams::default();
        params.set.reported = initial.clone();
        for (name, value) in requested {
            match initial.keys().find(|k| k.eq_ignore_ascii_case(name)) {
                Some(key) => {
                    params.set.reported.insert(key.clone(), value.clone());
                }
                None => {
                    params.set.unreported.insert(name.to_ascii_lowercase(), value.clone());
                }
            }
        }
        params.version = 1;
        params
    }

    /// Takes the reported values from a connection the client just used (its own SETs show
    /// there); returns the parameters whose value changed, for ParameterStatus to the client.
    pub fn adopt_changes(&mut self, params: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let changed: Vec<(String, String)> = params
            .iter()
            .filter(|(k, v)| self.set.reported.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &changed {
            self.set.reported.insert(k.clone(), v.clone());
        }
        self.version += 1;
        changed
    }

    /// The reported parameters, for the ParameterStatus messages at login.
    pub fn reported(&self) -> &BTreeMap<String, String> {
        &self.set.reported
    }

    /// The parameters the client expects.
    pub fn expected(&self) -> &ParamSet {
        &self.set
    }

    /// Takes a session change that ran (outside a transaction, or in one that committed).
    /// Reported parameters are left to ParameterStatus, which already carried them.
    pub fn apply(&mut self, change: &SessionChange) {
        let reported = |name: &str| self.set.reported.keys().any(|k| k.eq_ignore_ascii_case(name));
        match change {
            SessionChange::Set { name, value, local: false } if !reported(name) => {
                self.set.unreported.insert(name.to_ascii_lowercase(), value.clone());
            }
            SessionChange::Reset { name } => {
                self.set.unreported.remove(&name.to_ascii_lowercase());
            }
            SessionChange::ResetAll | SessionChange::Discard(DiscardKind::All) => self.set.unreported.clear(),
            _ => return,
        }
        self.version += 1;
    }
}

/// The SETs and RESETs that bring a connection carrying `have` to `want`, or `None` if it
/// already carries them.
pub fn diff(want: &ParamSet, have: &ParamSet) -> Option<String> {
    let mut stmts = Vec::new();
    for (name, value) in &want.reported {
        if have.reported.get(name) != Some(value) && !READ_ONLY.contains(&name.as_str()) {
            stmts.extend(set_stmt(name, value));
        }
    }
    for (name, value) in &want.unreported {
        if have.unreported.get(name) != Some(value) {
            stmts.extend(config_stmt(name, value));
        }
    }
    for name in have.unreported.keys().filter(|k| !want.unreported.contains_key(*k)) {
        if is_plain_name(name) {
            stmts.push(format!("RESET \"{name}\""));
        }
    }
    join(stmts)
}

fn join(stmts: Vec<String>) -> Option<String> {
    (!stmts.is_empty()).then(|| stmts.join("; "))
}

/// `SET "name" = 'value'`, quoting so no value can break out of the literal.
fn set_stmt(name: &str, value: &str) -> Option<String> {
    if !is_plain_name(name) || READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return None;
    }
    Some(format!("SET \"{}\" = {}", name.to_ascii_lowercase(), literal(value)))
}

/// `SELECT set_config(…)`: the value is read as in postgresql.conf, so a list such as
/// `search_path` (`a, b`) comes out as a list, which `SET name = 'a, b'` would not do.
fn config_stmt(name: &str, value: &str) -> Option<String> {
    if !is_plain_name(name) || READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return None;
    }
    Some(format!("SELECT pg_catalog.set_config({}, {}, false)", literal(name), literal(value)))
}

/// A string literal no value can break out of.
fn literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if escaped.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Parses the `options` startup parameter: `-c name=value` and `--name=value`, backslash escapes.
pub fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut iter = words.into_iter();
    while let Some(w) = iter.next() {
        let setting = if w == "-c" {
            iter.next()
        } else {
            w.strip_prefix("--").or_else(|| w.strip_prefix("-c")).map(str::to_string)
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_forms() {
        let got = parse_options("-c search_path=a,b --statement-timeout=5s -cwork_mem=64MB -c x=with\\ space");
        assert_eq!(
            got,
            vec![
                ("search_path".into(), "a,b".into()),
                ("statement_timeout".into(), "5s".into()),
                ("work_mem".into(), "64MB".into()),
                ("x".into(), "with space".into()),
            ]
        );
    }

    #[test]
    fn diff_sets_only_what_differs_and_resets_what_the_client_no_longer_has() {
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let have = ParamSet {
            reported: map(&[("TimeZone", "UTC"), ("server_version", "15")]),
            unreported: map(&[("work_mem", "4MB"), ("search_path", "a")]),
        };
        assert_eq!(diff(&have, &have), None);
        let want = ParamSet {
            reported: map(&[("TimeZone", "Europe/Paris"), ("server_version", "16")]),
            unreported: map(&[("search_path", "a")]),
        };
        assert_eq!(diff(&want, &have).as_deref(), Some("SET \"timezone\" = 'Europe/Paris'; RESET \"work_mem\""));
    }

    #[test]
    fn quoting_cannot_escape() {
        assert_eq!(set_stmt("TimeZone", "UTC").unwrap(), "SET \"timezone\" = 'UTC'");
        assert_eq!(set_stmt("application_name", "a'b").unwrap(), "SET \"application_name\" = 'a''b'");
        assert_eq!(set_stmt("application_name", "a\\'b").unwrap(), "SET \"application_name\" = E'a\\\\''b'");
        assert_eq!(set_stmt("bad\"name", "x"), None);
        assert_eq!(
            config_stmt("search_path", "a, b").unwrap(),
            "SELECT pg_catalog.set_config('search_path', 'a, b', false)"
        );
        assert_eq!(set_stmt("server_version", "1"), None);
    }
}
