//! Turns the parsed file into [`Settings`]: expands `${VAR}`, parses units, applies defaults and
//! checks that the result can run. Each module receives only its own part.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{self, LookupSettings};
use super::choices;
use super::env::{expand, invalid, invalid_at, EnvLookup};
use super::file::{ConfigFile, DatabaseFile, LimitsFile, ListenFile, PoolFile, ReplicaFile};
use super::log::{self, LogFormat};
use super::routing::{self, RoutingSettings};
use super::tls::{self, TlsSettings};
use super::units::{parse_duration, parse_size};
use super::users::validate_users;
pub use super::users::{AuthMethod, Secret, UserSettings};
use super::ConfigError;

/// Everything pgsplit runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Where `/metrics` and `/healthz` are served; off when not set.
    pub metrics_addr: Option<SocketAddr>,
    pub pool: PoolSettings,
    pub limits: Limits,
    pub log_level: String,
    pub log_format: LogFormat,
    /// Threads that serve clients: 1 runs everything on one thread (no hand-offs between
    /// threads), more share the work (tokio's multi-threaded scheduler).
    pub workers: usize,
    pub routing: RoutingSettings,
    pub tls: TlsSettings,
    /// Users by name. Shared: every session of a user holds this one copy, not its own.
    pub users: BTreeMap<String, Arc<UserSettings>>,
    /// Databases by the name clients connect to, shared by their sessions as users are.
    pub databases: BTreeMap<String, Arc<DatabaseSettings>>,
    /// Users who may open the admin console.
    pub admin_users: BTreeSet<String>,
    /// Auth passthrough: how users not listed are looked up; `None` refuses them.
    pub auth_lookup: Option<LookupSettings>,
    /// The file the settings came from, which RELOAD and SIGHUP read again.
    pub source: Option<std::path::PathBuf>,
}

/// How long a server connection stays with one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// Held from a transaction's first message to ReadyForQuery 'I'.
    Transaction,
    /// Held for the client's whole connection.
    Session,
}

impl PoolMode {
    /// Every mode, in the order messages list them.
    pub const ALL: [PoolMode; 2] = [PoolMode::Transaction, PoolMode::Session];

    /// The config spelling, also shown by `check-config`, SHOW POOLS and SHOW DATABASES.
    pub fn name(self) -> &'static str {
        match self {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// Pool limits and timeouts.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub mode: PoolMode,
    pub size: usize,
    pub checkout_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub connect_timeout: Duration,
    /// What transaction pooling does with statements that need their session kept.
    pub pinning: Pinning,
    /// Unnamed statements (most drivers' default) become pgsplit-named server statements, so a
    /// text the server connection has prepared before is not parsed and planned again.
    pub reuse_unnamed: bool,
}

/// Transaction pooling's answer to LISTEN, SQL PREPARE, session advisory locks, temporary tables,
/// WITH HOLD cursors and PREPARE TRANSACTION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// Keep the client on its server connection until DISCARD ALL or disconnect.
    Pin,
    /// Refuse the statement with SQLSTATE 0A000.
    Refuse,
}

impl Pinning {
    /// Every answer, in the order messages list them.
    pub const ALL: [Pinning; 2] = [Pinning::Pin, Pinning::Refuse];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Pinning::Pin => "pin",
            Pinning::Refuse => "refuse",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == text)
    }
}

/// Protection against clients that send too much, too slowly, or too many.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_clients: usize,
    pub max_message_size: usize,
    pub handshake_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// A replica and its share of reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSettings {
    pub addr: String,
    pub weight: u32,
}

/// One database clients may connect to.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub name: String,
    pub primary: String,
    pub replicas: Vec<ReplicaSettings>,
    pub server_dbname: String,
    pub pool_mode: Option<PoolMode>,
    pub pool_size: Option<usize>,
    /// Made from the `"*"` entry for a database it does not list: monitored as `"*"`.
    pub from_wildcard: bool,
}

impl DatabaseSettings {
    /// The name the monitor publishes this database's topology under.
    pub fn topology_name(&self) -> &str {
        if self.from_wildcard {
            super::WILDCARD_DATABASE
        } else {
            &self.name
        }
    }
}

impl Settings {
    /// The pool mode for a (database, user): the user's, else the database's, else the global one.
    pub fn pool_mode_for(&self, database: &str, user: &str) -> PoolMode {
        let user_mode = self.users.get(user).and_then(|u| u.pool_mode);
        let entry = self.databases.get(database).or_else(|| self.databases.get(super::WILDCARD_DATABASE));
        let db_mode = entry.and_then(|d| d.pool_mode);
        user_mode.or(db_mode).unwrap_or(self.pool.mode)
    }

    /// The database clients name `name`: its own entry, else one made from the `"*"` entry that
    /// keeps the client's name on the servers (PgBouncer's `* =`).
    pub fn database(&self, name: &str) -> Option<Arc<DatabaseSettings>> {
        if let Some(db) = self.databases.get(name) {
            return Some(db.clone());
        }
        let wildcard = self.databases.get(super::WILDCARD_DATABASE)?;
        let db = DatabaseSettings {
            name: name.to_string(),
            server_dbname: name.to_string(),
            from_wildcard: true,
            ..DatabaseSettings::clone(wildcard)
        };
        Some(Arc::new(db))
    }
}

/// Validates a parsed file, section by section; the first problem found is the error.
pub fn validate(file: ConfigFile, env: EnvLookup) -> Result<Settings, ConfigError> {
    let (listen, metrics_addr) = validate_listen(&file.listen, env)?;
    let pool = validate_pool(&file.pool)?;
    let limits = validate_limits(&file.limits)?;
    let users = validate_users(file.users, env)?;
    let databases = validate_databases(file.databases, env)?;
    let log_level = log::parse_level(file.log.level.as_deref())?;
    let log_format = log::parse_format(file.log.format.as_deref())?;
    let workers = validate_workers(file.runtime.workers)?;
    let routing = routing::validate(file.routing)?;
    let tls = tls::validate(file.tls, env)?;
    let admin_users = validate_admin(file.admin_users, &users, &databases, env)?;
    let auth_lookup = auth::validate(file.auth, env)?;
    Ok(Settings {
        listen,
        metrics_addr,
        pool,
        limits,
        log_level,
        log_format,
        workers,
        routing,
        tls,
        users,
        databases,
        admin_users,
        auth_lookup,
        source: None,
    })
}

/// `[runtime] workers`: [`default_workers`] for this machine unless set.
fn validate_workers(workers: Option<usize>) -> Result<usize, ConfigError> {
    match workers {
        Some(0) => Err(invalid("runtime.workers must be at least 1".into())),
        Some(n) if n > 1024 => Err(invalid(format!("runtime.workers = {n} is more than 1024 threads"))),
        Some(n) => Ok(n),
        None => Ok(default_workers(std::thread::available_parallelism().map_or(1, |n| n.get()))),
    }
}

/// One worker per CPU, but one on two CPUs or fewer. There the second worker costs more than it
/// brings: tokio's work stealing wakes the idle worker for tasks the busy one would run next
/// (futex calls, context switches), and the database and clients usually share those CPUs.
/// Measured on 2 CPUs against one worker: 15–30 % more CPU per transaction at 1, 16 and 64
/// clients and in TPC-B, and more TPS only at 64 clients (up to 6 %).
pub(crate) fn default_workers(cpus: usize) -> usize {
    if cpus <= 2 {
        1
    } else {
        cpus
    }
}

/// `[listen]`: the clients' address and the optional metrics address.
fn validate_listen(listen: &ListenFile, env: EnvLookup) -> Result<(SocketAddr, Option<SocketAddr>), ConfigError> {
    let addr = expand(listen.addr.as_deref().unwrap_or("127.0.0.1:6432"), env)?;
    let parsed = addr.parse().map_err(|e| invalid(format!("listen.addr {addr:?} is not an ip:port address: {e}")))?;
    let metrics_addr = match listen.metrics_addr.as_deref() {
        Some(a) => {
            let a = expand(a, env)?;
            let parsed = a.parse();
            Some(parsed.map_err(|e| invalid(format!("listen.metrics_addr {a:?} is not an ip:port address: {e}")))?)
        }
        None => None,
    };
    Ok((parsed, metrics_addr))
}

/// `[pool]`: the global mode, size, timeouts and pinning answer.
fn validate_pool(pool: &PoolFile) -> Result<PoolSettings, ConfigError> {
    let settings = PoolSettings {
        mode: pool.mode.as_deref().map_or(Ok(PoolMode::Transaction), |m| parse_mode(m, "pool.mode", "pool.mode"))?,
        size: pool.size.unwrap_or(20),
        checkout_timeout: duration(&pool.checkout_timeout, "5s", "pool.checkout_timeout")?,
        idle_timeout: duration(&pool.idle_timeout, "10m", "pool.idle_timeout")?,
        max_lifetime: duration(&pool.max_lifetime, "1h", "pool.max_lifetime")?,
        connect_timeout: duration(&pool.connect_timeout, "3s", "pool.connect_timeout")?,
        pinning: match pool.pinning.as_deref() {
            None => Pinning::Pin,
            Some(text) => Pinning::parse(text).ok_or_else(|| {
                let names = choices::quoted(&Pinning::ALL.map(Pinning::name));
                invalid_at("pool.pinning", format!("pool.pinning = {text:?}: use {names}"))
            })?,
        },
        reuse_unnamed: pool.reuse_unnamed.unwrap_or(true),
    };
    if settings.size == 0 {
        return Err(invalid_at("pool.size", "pool.size must be at least 1".into()));
    }
    Ok(settings)
}

/// `[limits]`.
fn validate_limits(limits: &LimitsFile) -> Result<Limits, ConfigError> {
    let settings = Limits {
        max_clients: limits.max_clients.unwrap_or(10_000),
        max_message_size: size(&limits.max_message_size, "64MiB", "limits.max_message_size")?,
        handshake_timeout: duration(&limits.handshake_timeout, "10s", "limits.handshake_timeout")?,
        shutdown_timeout: duration(&limits.shutdown_timeout, "30s", "limits.shutdown_timeout")?,
    };
    if settings.max_message_size < 1024 {
        return Err(invalid("limits.max_message_size must be at least 1KiB".into()));
    }
    Ok(settings)
}

/// `[databases.NAME]`; there must be at least one.
fn validate_databases(
    files: BTreeMap<String, DatabaseFile>,
    env: EnvLookup,
) -> Result<BTreeMap<String, Arc<DatabaseSettings>>, ConfigError> {
    let mut databases = BTreeMap::new();
    for (name, db) in files {
        let db = validate_database(name.clone(), db, env).map_err(|e| e.within(&["databases", &name]))?;
        databases.insert(name, Arc::new(db));
    }
    if databases.is_empty() {
        return Err(invalid("no [databases.NAME] table: clients would have nowhere to go".into()));
    }
    Ok(databases)
}

/// The admin console: no database may take its name, and `admin_users` must be listed users.
fn validate_admin(
    names: Vec<String>,
    users: &BTreeMap<String, Arc<UserSettings>>,
    databases: &BTreeMap<String, Arc<DatabaseSettings>>,
    env: EnvLookup,
) -> Result<BTreeSet<String>, ConfigError> {
    if databases.contains_key(super::ADMIN_DATABASE) {
        return Err(invalid(format!(
            "databases.{}: the name is reserved for the admin console",
            super::ADMIN_DATABASE
        )));
    }
    let mut admin_users = BTreeSet::new();
    for name in names {
        let name = expand(&name, env)?;
        if !users.contains_key(&name) {
            return Err(invalid(format!("admin_users: {name:?} is not a user listed in [[users]]")));
        }
        admin_users.insert(name);
    }
    Ok(admin_users)
}

fn validate_database(name: String, db: DatabaseFile, env: EnvLookup) -> Result<DatabaseSettings, ConfigError> {
    let primary = check_host_port(&expand(&db.primary, env)?, &name)?;
    let replicas = db
        .replicas
        .iter()
        .map(|r| {
            let (addr, weight) = match r {
                ReplicaFile::Addr(a) => (a, None),
                ReplicaFile::Weighted { addr, weight } => (addr, *weight),
            };
            let addr = check_host_port(&expand(addr, env)?, &name)?;
            Ok(ReplicaSettings { addr, weight: weight.unwrap_or(1) })
        })
        .collect::<Result<_, ConfigError>>()?;
    let server_dbname = match db.server_dbname {
        Some(d) => expand(&d, env)?,
        // The wildcard's clients keep their own names; this one is where the monitor logs in.
        None if name == super::WILDCARD_DATABASE => "postgres".to_string(),
        None => name.clone(),
    };
    let pool_mode = db.pool_mode.as_deref().map(|m| parse_mode(m, "databases.pool_mode", "pool_mode")).transpose()?;
    if db.pool_size == Some(0) {
        return Err(invalid_at("pool_size", format!("databases.{name}.pool_size must be at least 1")));
    }
    let pool_size = db.pool_size;
    Ok(DatabaseSettings { name, primary, replicas, server_dbname, pool_mode, pool_size, from_wildcard: false })
}

/// Server addresses are `host:port`; a missing port is PostgreSQL's 5432.
fn check_host_port(addr: &str, db: &str) -> Result<String, ConfigError> {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => match port.parse::<u16>() {
            Ok(_) => Ok(addr.to_string()),
            Err(_) => Err(invalid(format!("databases.{db}: {addr:?} has a bad port"))),
        },
        _ if !addr.is_empty() => Ok(format!("{addr}:5432")),
        _ => Err(invalid(format!("databases.{db}: empty server address"))),
    }
}

/// A pool mode; `key` names the setting in the message, `at` is its path in its table.
pub(super) fn parse_mode(text: &str, key: &str, at: &str) -> Result<PoolMode, ConfigError> {
    PoolMode::parse(text).ok_or_else(|| {
        invalid_at(at, format!("{key} = {text:?}: use {}", choices::quoted(&PoolMode::ALL.map(PoolMode::name))))
    })
}

fn duration(value: &Option<String>, default: &str, key: &str) -> Result<Duration, ConfigError> {
    parse_duration(value.as_deref().unwrap_or(default)).map_err(|e| invalid_at(key, format!("{key}: {e}")))
}

fn size(value: &Option<String>, default: &str, key: &str) -> Result<usize, ConfigError> {
    let bytes = parse_size(value.as_deref().unwrap_or(default)).map_err(|e| invalid_at(key, format!("{key}: {e}")))?;
    Ok(bytes.min(1 << 30) as usize)
}

#[cfg(test)]
mod tests;
