//! Session parameters a client expects on every server connection it uses: what it asked for at
//! startup and what it later SET on reported parameters. Before a request runs on a connection
//! that differs, the difference is applied with SET; nothing is sent when they match.

use std::collections::BTreeMap;

use crate::classify::{DiscardKind, SessionChange};
use crate::protocol::sqlstate;
use crate::protocol::startup::StartupMessage;
use crate::server::params::{ParamInterner, ParamSet, Reported};

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

/// Why the parameters of a startup packet are refused, as PostgreSQL refuses them at login.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    /// Empty (`options=-c =x`, `-c=`) or with characters no setting name has. pgsplit could
    /// never SET it on a server connection, so it refuses it rather than drop it silently.
    #[error("invalid configuration parameter name \"{0}\"")]
    InvalidName(String),
    /// `-c name` or `--name` without `=value`.
    #[error("-c {0} requires a value")]
    NoValue(String),
}

impl ParamError {
    /// The SQLSTATE PostgreSQL reports for it.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ParamError::InvalidName(_) => sqlstate::INVALID_NAME,
            ParamError::NoValue(_) => sqlstate::SYNTAX_ERROR,
        }
    }
}

/// A client's expected parameters.
#[derive(Debug, Default)]
pub struct ClientParams {
    set: ParamSet,
    /// Bumped on every change, to skip comparing when a connection last served this same state.
    pub version: u64,
}

impl ClientParams {
    /// The parameters requested in a startup packet, `options=-c name=value` included; an error
    /// for a name no setting can have or an option without a value.
    pub fn requested(startup: &StartupMessage) -> Result<Vec<(String, String)>, ParamError> {
        let mut out: Vec<(String, String)> =
            startup.params.iter().filter(|(k, _)| !NOT_PARAMS.contains(&k.as_str())).cloned().collect();
        if let Some(options) = startup.get("options") {
            out.extend(parse_options(options)?);
        }
        match out.iter().find(|(name, _)| !is_plain_name(name)) {
            Some((name, _)) => Err(ParamError::InvalidName(name.clone())),
            None => Ok(out),
        }
    }

    /// The parameters a client expects after login: what a fresh server connection reports,
    /// overlaid with what the client asked for. Values are the client's own spelling until the
    /// first server connection normalises them (see [`ClientParams::adopt_changes`]).
    pub fn at_login(initial: &Reported, requested: &[(String, String)], interner: &ParamInterner) -> Self {
        let mut params = ClientParams::default();
        let mut reported: Option<BTreeMap<String, String>> = None;
        for (name, value) in requested {
            match initial.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                Some((_, v)) if v == value => {}
                Some((key, _)) => {
                    reported.get_or_insert_with(|| (**initial).clone()).insert(key.clone(), value.clone());
                }
                None => {
                    params.set.unreported.insert(name.to_ascii_lowercase(), value.clone());
                }
            }
        }
        // Clients that ask for nothing the pool's connections do not already report share the
        // pool's map; the others share one copy per distinct set.
        params.set.reported = reported.map_or_else(|| initial.clone(), |set| interner.intern(set));
        params.version = 1;
        params
    }

    /// Takes the reported values from a connection the client just used (its own SETs show
    /// there); returns the parameters whose value changed, for ParameterStatus to the client.
    pub fn adopt_changes(
        &mut self,
        params: &BTreeMap<String, String>,
        interner: &ParamInterner,
    ) -> Vec<(String, String)> {
        let changed: Vec<(String, String)> = params
            .iter()
            .filter(|(k, v)| self.set.reported.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !changed.is_empty() {
            let mut reported = (*self.set.reported).clone();
            for (k, v) in &changed {
                reported.insert(k.clone(), v.clone());
            }
            self.set.reported = interner.intern(reported);
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
    for (name, value) in want.reported.iter() {
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
/// Other words (command-line switches PostgreSQL would take) are ignored.
pub fn parse_options(options: &str) -> Result<Vec<(String, String)>, ParamError> {
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
            Some(iter.next().unwrap_or_default())
        } else {
            w.strip_prefix("--").or_else(|| w.strip_prefix("-c")).map(str::to_string)
        };
        let Some(setting) = setting else { continue };
        let (name, value) = setting.split_once('=').ok_or_else(|| ParamError::NoValue(setting.clone()))?;
        let name = name.replace('-', "_");
        if !is_plain_name(&name) {
            return Err(ParamError::InvalidName(name));
        }
        out.push((name, value.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn options_forms() {
        let got = parse_options("-c search_path=a,b --statement-timeout=5s -cwork_mem=64MB -c x=with\\ space").unwrap();
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
    fn an_empty_or_unusable_name_and_a_missing_value_are_refused() {
        let invalid = |name: &str| Err(ParamError::InvalidName(name.into()));
        assert_eq!(parse_options("-c =x"), invalid(""));
        assert_eq!(parse_options("-c="), invalid(""));
        assert_eq!(parse_options("--=x"), invalid(""));
        assert_eq!(parse_options("-c a;b=x"), invalid("a;b"));
        assert_eq!(parse_options("-c search_path"), Err(ParamError::NoValue("search_path".into())));
        assert_eq!(parse_options("-c"), Err(ParamError::NoValue(String::new())));
        assert_eq!(parse_options("-d 3 -c a.b=").unwrap(), vec![("a.b".into(), String::new())]);
        assert_eq!(ParamError::InvalidName(String::new()).sqlstate(), "42602");

        let startup = |pairs: &[(&str, &str)]| StartupMessage {
            params: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        let ok = startup(&[("user", "u"), ("application_name", "psql"), ("options", "-c work_mem=1MB")]);
        assert_eq!(ClientParams::requested(&ok).unwrap().len(), 2);
        assert_eq!(ClientParams::requested(&startup(&[("options", "-c =x")])), invalid(""));
        assert_eq!(ClientParams::requested(&startup(&[("bad name", "x")])), invalid("bad name"));
    }

    #[test]
    fn diff_sets_only_what_differs_and_resets_what_the_client_no_longer_has() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let have = ParamSet {
            reported: map(&[("TimeZone", "UTC"), ("server_version", "15")]).into(),
            unreported: map(&[("work_mem", "4MB"), ("search_path", "a")]),
        };
        assert_eq!(diff(&have, &have), None);
        let want = ParamSet {
            reported: map(&[("TimeZone", "Europe/Paris"), ("server_version", "16")]).into(),
            unreported: map(&[("search_path", "a")]),
        };
        assert_eq!(diff(&want, &have).as_deref(), Some("SET \"timezone\" = 'Europe/Paris'; RESET \"work_mem\""));
    }

    #[test]
    fn clients_asking_for_the_same_share_one_map_and_a_change_is_their_own() {
        let interner = ParamInterner::default();
        let initial: Reported = Arc::new(BTreeMap::from([
            ("application_name".to_string(), String::new()),
            ("TimeZone".to_string(), "UTC".to_string()),
        ]));
        let asked = |app: &str| vec![("application_name".to_string(), app.to_string())];
        let plain = ClientParams::at_login(&initial, &[("timezone".into(), "UTC".into())], &interner);
        assert!(Arc::ptr_eq(&plain.set.reported, &initial), "nothing new: the pool's map");
        let a = ClientParams::at_login(&initial, &asked("psql"), &interner);
        let mut b = ClientParams::at_login(&initial, &asked("psql"), &interner);
        assert!(Arc::ptr_eq(&a.set.reported, &b.set.reported));
        assert_eq!(a.reported().get("application_name").map(String::as_str), Some("psql"));
        let server = BTreeMap::from([
            ("application_name".to_string(), "psql".to_string()),
            ("TimeZone".to_string(), "Europe/Paris".to_string()),
        ]);
        assert_eq!(b.adopt_changes(&server, &interner), vec![("TimeZone".into(), "Europe/Paris".into())]);
        assert_eq!(a.reported().get("TimeZone").map(String::as_str), Some("UTC"), "the other client's stays");
        assert_eq!(b.reported().get("TimeZone").map(String::as_str), Some("Europe/Paris"));
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
