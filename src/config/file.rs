//! The serde mirror of the TOML file. Every table denies unknown keys so a typo is an error that
//! names the key and its line, not a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub listen: ListenFile,
    #[serde(default)]
    pub pool: PoolFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub users: Vec<UserFile>,
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseFile>,
}

/// `[listen]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub addr: Option<String>,
}

/// `[pool]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    pub mode: Option<String>,
    pub size: Option<usize>,
    pub checkout_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_lifetime: Option<String>,
    pub connect_timeout: Option<String>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_clients: Option<usize>,
    pub max_message_size: Option<String>,
    pub handshake_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub level: Option<String>,
}

/// One `[[users]]` entry.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserFile {
    pub name: String,
    pub password: Option<String>,
    pub auth: Option<String>,
    pub server_user: Option<String>,
    pub server_password: Option<String>,
    pub pool_mode: Option<String>,
}

/// One `[databases.NAME]` table.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    pub primary: String,
    #[serde(default)]
    pub replicas: Vec<String>,
    pub server_dbname: Option<String>,
    pub pool_mode: Option<String>,
    pub pool_size: Option<usize>,
}
