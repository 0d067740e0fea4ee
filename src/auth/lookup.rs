//! Auth passthrough's lookup: a user's password verifier, read on the database's primary by the
//! `[auth]` user (PgBouncer's `auth_query`).
//!
//! Every login asks the primary, so a password changed with `ALTER ROLE` (or a dropped role)
//! counts at the next login: a SCRAM proof made with a new password cannot be checked against
//! an old verifier, whose salt the client already used. Logins of one user that arrive while a
//! lookup for it runs wait for that lookup and share its answer, so a storm costs about one
//! query per round trip, not one per client. The answers are cached for `cache_ttl`, and the
//! cache carries logins while the primary cannot answer (down, failing over).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use parking_lot::Mutex;

use crate::config::LookupSettings;
use crate::monitor::probe::{client_config, ProbeLogin};
use crate::tls::ServerTls;

/// Lookup connections per (node, database): lookups are short, a few serve a storm.
const CONNECTIONS: usize = 4;
/// Past this many cached users, expired answers are swept out at the next lookup.
const SWEEP_ABOVE: usize = 1024;

/// Why a verifier could not be looked up. Logged; never shown to the client.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("cannot reach {addr} to look up users: {reason}")]
    Connect { addr: String, reason: String },
    #[error("auth.query failed on {addr}: {reason}")]
    Query { addr: String, reason: String },
    /// The node took longer than `pool.connect_timeout` (a black hole, or a server stuck).
    #[error("looking up a user on {addr} took longer than {millis} ms")]
    Timeout { addr: String, millis: u64 },
}

/// Where a lookup runs: the database's primary now, and the server database.
pub struct Target<'a> {
    pub addr: &'a str,
    pub database: &'a str,
}

/// One user's last answer.
#[derive(Clone)]
struct Answer {
    /// The verifier (`SCRAM-SHA-256$…`, `md5…`), or `None`: no such role, or it may not log in.
    verifier: Option<String>,
    at: Instant,
}

/// A user's cache slot; its lock is held while a lookup for the user runs.
#[derive(Default)]
struct Slot {
    answer: tokio::sync::Mutex<Option<Answer>>,
}

/// How lookups were answered, for `pgsplit_auth_lookups_total`.
#[derive(Default)]
pub struct LookupStats {
    /// Asked the primary.
    pub queried: AtomicU64,
    /// Took the answer of a lookup another login of the same user had just made.
    pub shared: AtomicU64,
    /// The primary could not answer; a verifier younger than `cache_ttl` served.
    pub cached: AtomicU64,
    /// The primary could not answer and nothing recent was cached: the login was refused.
    pub failed: AtomicU64,
}

impl LookupStats {
    /// `(result label, count)` pairs.
    pub fn snapshot(&self) -> [(&'static str, u64); 4] {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("queried", get(&self.queried)),
            ("shared", get(&self.shared)),
            ("cached", get(&self.cached)),
            ("failed", get(&self.failed)),
        ]
    }
}

/// The lookups of one configuration.
pub struct Lookup {
    settings: LookupSettings,
    stats: LookupStats,
    tls: ServerTls,
    connect_timeout: Duration,
    pools: Mutex<HashMap<(String, String), Pool>>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Lookup {
    pub fn new(settings: LookupSettings, tls: ServerTls, connect_timeout: Duration) -> Self {
        let (pools, slots) = (Mutex::default(), Mutex::default());
        Lookup { settings, stats: LookupStats::default(), tls, connect_timeout, pools, slots }
    }

    /// How lookups were answered so far.
    pub fn stats(&self) -> &LookupStats {
        &self.stats
    }

    /// The server database lookups run in: `[auth] database`, else the client's.
    pub fn database<'a>(&'a self, client_database: &'a str) -> &'a str {
        self.settings.database.as_deref().unwrap_or(client_database)
    }

    /// `user`'s verifier as the primary has it now (or as another login of the user just read
    /// it); when the primary cannot answer within `pool.connect_timeout`, the cached one while
    /// younger than `cache_ttl`.
    pub async fn verifier(&self, user: &str, target: &Target<'_>) -> Result<Option<String>, LookupError> {
        let asked = Instant::now();
        let slot = self.slot(user);
        let mut answer = slot.answer.lock().await;
        let count = |n: &AtomicU64| n.fetch_add(1, Ordering::Relaxed);
        if let Some(shared) = answer.as_ref().filter(|a| a.at >= asked) {
            count(&self.stats.shared);
            return Ok(shared.verifier.clone());
        }
        let limit = self.connect_timeout;
        let asked_primary = tokio::time::timeout(limit, self.query(user, target)).await;
        let timed_out = || LookupError::Timeout { addr: target.addr.to_string(), millis: limit.as_millis() as u64 };
        match asked_primary.unwrap_or_else(|_| Err(timed_out())) {
            Ok(verifier) => {
                count(&self.stats.queried);
                *answer = Some(Answer { verifier: verifier.clone(), at: Instant::now() });
                Ok(verifier)
            }
            Err(e) => match answer.as_ref().filter(|a| a.at.elapsed() < self.settings.cache_ttl) {
                Some(cached) => {
                    count(&self.stats.cached);
                    tracing::warn!(error = %e, user, "using the verifier looked up before");
                    Ok(cached.verifier.clone())
                }
                None => {
                    count(&self.stats.failed);
                    Err(e)
                }
            },
        }
    }

    /// The user's slot, made on first use; expired slots are swept once there are many.
    fn slot(&self, user: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock();
        if slots.len() > SWEEP_ABOVE {
            let ttl = self.settings.cache_ttl;
            // A slot whose lock is taken has a lookup under way: it stays.
            slots.retain(|_, s| s.answer.try_lock().map_or(true, |a| a.as_ref().is_some_and(|a| a.at.elapsed() < ttl)));
        }
        slots.entry(user.to_string()).or_default().clone()
    }

    async fn query(&self, user: &str, target: &Target<'_>) -> Result<Option<String>, LookupError> {
        let pool = self.pool(target)?;
        let addr = target.addr;
        let connect =
            |e: &dyn std::fmt::Display| LookupError::Connect { addr: addr.to_string(), reason: e.to_string() };
        let client = pool.get().await.map_err(|e| connect(&e))?;
        let failed = |e: tokio_postgres::Error| LookupError::Query { addr: addr.to_string(), reason: query_error(&e) };
        let statement = client.prepare_cached(&self.settings.query).await.map_err(failed)?;
        let row = client.query_opt(&statement, &[&user]).await.map_err(failed)?;
        let Some(row) = row else { return Ok(None) };
        // The verifier is the last column: PgBouncer's queries return (name, verifier).
        let last = row.len().checked_sub(1).ok_or_else(|| LookupError::Query {
            addr: addr.to_string(),
            reason: "auth.query returns no column".into(),
        })?;
        row.try_get::<_, Option<String>>(last).map_err(failed)
    }

    fn pool(&self, target: &Target<'_>) -> Result<Pool, LookupError> {
        let key = (target.addr.to_string(), target.database.to_string());
        let mut pools = self.pools.lock();
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let login = ProbeLogin {
            user: self.settings.user.clone(),
            password: self.settings.password.clone(),
            dbname: target.database.to_string(),
            tls: self.tls.clone(),
        };
        let unusable =
            || LookupError::Connect { addr: target.addr.to_string(), reason: "not a host:port address".into() };
        let (mut config, tls) = client_config(target.addr, &login, self.connect_timeout).ok_or_else(unusable)?;
        config.application_name("pgsplit auth lookup");
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let wait = Some(self.connect_timeout);
        let timeouts = Timeouts { wait, create: wait, recycle: wait };
        let pool = Pool::builder(manager).max_size(CONNECTIONS).timeouts(timeouts).runtime(Runtime::Tokio1).build();
        let pool = pool.map_err(|e| LookupError::Connect { addr: target.addr.to_string(), reason: e.to_string() })?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

/// The server's own message when there is one ("permission denied for table pg_authid").
fn query_error(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |db| format!("{} ({})", db.message(), db.code().code()))
}
