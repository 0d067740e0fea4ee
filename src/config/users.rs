//! `[[users]]`: who may log in, how each proves it, and how pgsplit logs into servers for them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::auth::PassthroughSecret;
use super::env::{expand, invalid, invalid_at, EnvLookup};
use super::file::UserFile;
use super::validate::{parse_mode, PoolMode};
use super::ConfigError;

/// How a user proves who it is to pgsplit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    ScramSha256,
    Md5,
    Trust,
}

impl AuthMethod {
    /// Every method, in the order messages list them.
    pub const ALL: [AuthMethod; 3] = [AuthMethod::ScramSha256, AuthMethod::Md5, AuthMethod::Trust];

    /// The config spelling, as in `pg_hba.conf`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == text)
    }
}

/// A user's configured secret, as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    /// No password (trust only).
    None,
    /// A plaintext password.
    Plain(String),
    /// A stored SCRAM-SHA-256 verifier (`SCRAM-SHA-256$…`).
    ScramVerifier(String),
    /// A stored md5 hash (`md5…`).
    Md5Hash(String),
}

/// One user: how clients authenticate as it, and how pgsplit logs into servers for it.
#[derive(Clone, Debug)]
pub struct UserSettings {
    pub name: String,
    pub auth: AuthMethod,
    pub secret: Secret,
    pub server_user: String,
    /// The password pgsplit gives servers; `None` when only trust will work.
    pub server_password: Option<String>,
    pub pool_mode: Option<PoolMode>,
    /// Set for a user looked up through `[auth]`: how pgsplit logs into servers as it.
    pub passthrough: Option<PassthroughSecret>,
}

impl UserSettings {
    /// A user looked up on the primary: servers see the same name, and pgsplit logs in with
    /// what the client's own login gave it.
    pub fn looked_up(name: &str, auth: AuthMethod, passthrough: PassthroughSecret) -> Self {
        UserSettings {
            name: name.to_string(),
            auth,
            secret: Secret::None,
            server_user: name.to_string(),
            server_password: None,
            pool_mode: None,
            passthrough: Some(passthrough),
        }
    }
}

/// `[[users]]`, by name; a name listed twice is an error.
pub(super) fn validate_users(
    files: Vec<UserFile>,
    env: EnvLookup,
) -> Result<BTreeMap<String, Arc<UserSettings>>, ConfigError> {
    let mut users = BTreeMap::new();
    for (i, user) in files.into_iter().enumerate() {
        let user = validate_user(user, env).map_err(|e| e.within(&["users", &i.to_string()]))?;
        if users.insert(user.name.clone(), Arc::new(user)).is_some() {
            return Err(invalid("a user is listed twice in [[users]]".into()));
        }
    }
    Ok(users)
}

fn validate_user(user: UserFile, env: EnvLookup) -> Result<UserSettings, ConfigError> {
    let name = expand(&user.name, env)?;
    let password = user.password.as_deref().map(|p| expand(p, env)).transpose()?;
    let secret = match password {
        None => Secret::None,
        Some(p) if p.starts_with("SCRAM-SHA-256$") => Secret::ScramVerifier(p),
        Some(p) if p.len() == 35 && p.starts_with("md5") => Secret::Md5Hash(p),
        Some(p) => Secret::Plain(p),
    };
    let auth = match user.auth.as_deref() {
        None => AuthMethod::ScramSha256,
        Some(text) => AuthMethod::parse(text).ok_or_else(|| {
            let names = AuthMethod::ALL.map(AuthMethod::name).join(", ");
            invalid_at("auth", format!("user {name:?}: auth {text:?} is not one of {names}"))
        })?,
    };
    match (&auth, &secret) {
        (AuthMethod::Trust, _) => {}
        (_, Secret::None) => return Err(invalid(format!("user {name:?} needs a password for {} auth", auth.name()))),
        (AuthMethod::ScramSha256, Secret::Md5Hash(_)) => {
            return Err(invalid(format!(
                "user {name:?}: an md5 hash cannot check SCRAM logins; give the password or a SCRAM verifier"
            )))
        }
        (AuthMethod::Md5, Secret::ScramVerifier(_)) => {
            return Err(invalid(format!(
                "user {name:?}: a SCRAM verifier cannot check md5 logins; give the password or an md5 hash"
            )))
        }
        _ => {}
    }
    let server_user = user.server_user.as_deref().map(|u| expand(u, env)).transpose()?;
    let server_password = match user.server_password.as_deref() {
        Some(p) => Some(expand(p, env)?),
        None => match &secret {
            Secret::Plain(p) => Some(p.clone()),
            _ => None,
        },
    };
    let pool_mode = user.pool_mode.as_deref().map(|m| parse_mode(m, "users.pool_mode", "pool_mode")).transpose()?;
    Ok(UserSettings {
        server_user: server_user.unwrap_or_else(|| name.clone()),
        name,
        auth,
        secret,
        server_password,
        pool_mode,
        passthrough: None,
    })
}
