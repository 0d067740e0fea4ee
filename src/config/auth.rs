//! `[auth]`: auth passthrough. Users not listed in `[[users]]` are looked up on the database's
//! primary (PgBouncer's `auth_user` / `auth_query`), so roles PostgreSQL manages log in without
//! anyone editing this file.

use std::fmt;
use std::time::Duration;

use super::env::{expand, invalid, invalid_at, EnvLookup};
use super::file::AuthFile;
use super::units::parse_duration;
use super::ConfigError;

/// PgBouncer's default lookup: the role's verifier, none once it expired or when it may not log in.
/// Reading `pg_authid` takes a superuser; the README shows a SECURITY DEFINER function for a
/// lookup user with no other rights.
pub const DEFAULT_QUERY: &str = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END \
                                 FROM pg_authid WHERE rolname = $1 AND rolcanlogin";

/// How unlisted users are looked up; present only when `[auth] user` is set.
#[derive(Clone, PartialEq, Eq)]
pub struct LookupSettings {
    /// Who runs the query on the primary.
    pub user: String,
    pub password: Option<String>,
    /// Takes the user name as `$1`; its last column is the verifier (`SCRAM-SHA-256$…` or `md5…`).
    pub query: String,
    /// The server database the query runs in; `None`: the one the client asked for.
    pub database: Option<String>,
    /// How long a verifier looked up before carries logins while the primary cannot be asked
    /// (down, failing over, or the lookup failing).
    pub cache_ttl: Duration,
}

/// The lookup password stays out of logs and `check-config` output.
impl fmt::Debug for LookupSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LookupSettings")
            .field("user", &self.user)
            .field("query", &self.query)
            .field("database", &self.database)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// How pgsplit proves itself to servers for a looked-up user, whose password it never sees.
#[derive(Clone, PartialEq, Eq)]
pub enum PassthroughSecret {
    /// The SCRAM ClientKey recovered from the client's proof, and the verifier's ServerKey: a
    /// server holding the same verifier accepts a proof made from them.
    Scram { client_key: [u8; 32], server_key: [u8; 32] },
    /// The stored `md5…` hash: an md5 login needs nothing more.
    Md5(String),
}

/// Keys never reach a log line.
impl fmt::Debug for PassthroughSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassthroughSecret::Scram { .. } => f.write_str("Scram(..)"),
            PassthroughSecret::Md5(_) => f.write_str("Md5(..)"),
        }
    }
}

/// `[auth]`: `None` when no lookup user is set.
pub fn validate(file: AuthFile, env: EnvLookup) -> Result<Option<LookupSettings>, ConfigError> {
    let Some(user) = file.user else {
        if file.query.is_some() || file.password.is_some() || file.database.is_some() || file.cache_ttl.is_some() {
            return Err(invalid("[auth] needs `user`: the role that looks up unlisted users' passwords".into()));
        }
        return Ok(None);
    };
    let user = expand(&user, env)?;
    if user.is_empty() {
        return Err(invalid("auth.user is empty".into()));
    }
    let query = file.query.map(|q| expand(&q, env)).transpose()?.unwrap_or_else(|| DEFAULT_QUERY.to_string());
    if !query.contains("$1") {
        let message = format!("auth.query {query:?} does not use $1, the user name being looked up");
        return Err(invalid_at("auth.query", message));
    }
    let ttl = file.cache_ttl.as_deref().unwrap_or("1m");
    Ok(Some(LookupSettings {
        user,
        password: file.password.map(|p| expand(&p, env)).transpose()?,
        query,
        database: file.database.map(|d| expand(&d, env)).transpose()?,
        cache_ttl: parse_duration(ttl).map_err(|e| invalid_at("auth.cache_ttl", format!("auth.cache_ttl: {e}")))?,
    }))
}
