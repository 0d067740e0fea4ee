//! Configuration: the TOML file's shape (`file`), its units (`units`), and validation into the
//! settings each module takes (`validate`). Only this module knows the file format.

pub mod auth;
mod choices;
pub mod env;
pub mod file;
mod locate;
pub mod log;
pub mod render;
pub mod routing;
pub mod tls;
pub mod units;
pub mod users;
pub mod validate;

pub use auth::{LookupSettings, PassthroughSecret};
pub use log::LogFormat;
pub use render::render;
pub use routing::{Balance, RoutingSettings, RuleSettings, StaleFallback};
pub use tls::TlsSettings;
pub use validate::{
    AuthMethod, DatabaseSettings, Limits, Pinning, PoolMode, PoolSettings, ReplicaSettings, Secret, Settings,
    UserSettings,
};

use std::path::Path;

/// The virtual database clients connect to for the admin console; no configured database may
/// take its name.
pub const ADMIN_DATABASE: &str = "pgsplit";

/// The `[databases."*"]` entry: where a client naming an unlisted database goes, under that name.
pub const WILDCARD_DATABASE: &str = "*";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The TOML did not parse or had keys pgsplit does not know; the message names key and line.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// The values parsed but do not make a working configuration.
    #[error("{0}")]
    Invalid(String),
    /// A value that parsed but is not allowed; `key` is its path in the file (an array entry by
    /// its index), from which [`from_str`] finds its line.
    #[error("{message}")]
    Value { key: Vec<String>, message: String },
    /// A refused value with where it is: file, line and column, the line itself, what is wrong.
    #[error("{path}: {detail}\n{message}")]
    At { path: String, detail: String, message: String },
}

impl ConfigError {
    /// Puts a value error's key under `prefix`, the table or array entry it was found in.
    pub(crate) fn within(self, prefix: &[&str]) -> Self {
        match self {
            ConfigError::Value { key, message } => {
                let key = prefix.iter().map(|p| p.to_string()).chain(key).collect();
                ConfigError::Value { key, message }
            }
            other => other,
        }
    }

    /// Names the file and line of a value error, when the value is found in `text`.
    fn locate(self, text: &str, origin: &str) -> Self {
        let ConfigError::Value { key, message } = self else { return self };
        match locate::describe(text, &key) {
            Some(detail) => ConfigError::At { path: origin.to_string(), detail, message },
            None => ConfigError::Value { key, message },
        }
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// As [`load`], with `${VAR}` looked up through `env`: `pgsplit explain` reads a config without
/// the secrets it holds.
pub fn load_with_env(path: &Path, env: env::EnvLookup) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    let mut settings = from_str_with_env(&text, &path.display().to_string(), env)?;
    settings.source = Some(path.to_path_buf());
    Ok(settings)
}

/// Parses and validates config text; `origin` names it in errors.
pub fn from_str(text: &str, origin: &str) -> Result<Settings, ConfigError> {
    from_str_with_env(text, origin, &|name| std::env::var(name).ok())
}

/// As [`from_str`], with `${VAR}` looked up through `env`.
pub fn from_str_with_env(text: &str, origin: &str, env: env::EnvLookup) -> Result<Settings, ConfigError> {
    let file: file::ConfigFile =
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: origin.to_string(), message: e.to_string() })?;
    validate::validate(file, env).map_err(|e| e.locate(text, origin))
}
