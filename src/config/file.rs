//! The serde mirror of the TOML file. Every table denies unknown keys so a typo is an error that
//! names the key and its line, not a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Users who may open the admin console (database `pgsplit`); a top-level key, so it comes
    /// before the first table in the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_users: Vec<String>,
    #[serde(default)]
    pub listen: ListenFile,
    #[serde(default)]
    pub pool: PoolFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub runtime: RuntimeFile,
    #[serde(default)]
    pub routing: RoutingFile,
    #[serde(default)]
    pub tls: TlsFile,
    #[serde(default, skip_serializing_if = "AuthFile::is_empty")]
    pub auth: AuthFile,
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
    pub metrics_addr: Option<String>,
}

/// `[runtime]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    pub workers: Option<usize>,
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
    pub pinning: Option<String>,
    pub reuse_unnamed: Option<bool>,
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
    /// `text` or `json`.
    pub format: Option<String>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_tls: Option<String>,
    pub server_tls: Option<String>,
    pub server_ca: Option<String>,
}

/// `[auth]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub user: Option<String>,
    pub password: Option<String>,
    pub query: Option<String>,
    pub database: Option<String>,
    pub cache_ttl: Option<String>,
}

impl AuthFile {
    /// No `[auth]` table in the file.
    pub fn is_empty(&self) -> bool {
        self.user.is_none()
            && self.password.is_none()
            && self.query.is_none()
            && self.database.is_none()
            && self.cache_ttl.is_none()
    }
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
    pub replicas: Vec<ReplicaFile>,
    pub server_dbname: Option<String>,
    pub pool_mode: Option<String>,
    pub pool_size: Option<usize>,
}

/// A replica: `"host:port"`, or `{ addr = "host:port", weight = 2 }`.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(untagged)]
pub enum ReplicaFile {
    Addr(String),
    Weighted {
        addr: String,
        #[serde(default)]
        weight: Option<u32>,
    },
}

/// `[routing]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    pub max_lag: Option<String>,
    pub max_lag_bytes: Option<String>,
    pub read_your_writes: Option<String>,
    pub report_write_lsn: Option<bool>,
    pub stale_fallback: Option<String>,
    pub wait_timeout: Option<String>,
    pub failover_timeout: Option<String>,
    pub balance: Option<String>,
    pub primary_reads: Option<bool>,
    pub check_interval: Option<String>,
    pub write_functions: Option<Vec<String>>,
    pub monitor_user: Option<String>,
    pub monitor_password: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleFile>,
}

/// One `[[routing.rules]]` entry; every matcher given must match.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub name: Option<String>,
    pub database: Option<Vec<String>>,
    pub user: Option<Vec<String>>,
    pub application_name: Option<Vec<String>>,
    pub kind: Option<Vec<String>>,
    pub tables: Option<Vec<String>>,
    pub functions: Option<Vec<String>>,
    pub regex: Option<String>,
    pub route: String,
    pub max_lag: Option<String>,
}
