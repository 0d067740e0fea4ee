//! The pool manager: the one owner of every server pool. Sessions ask it for the pool of a route;
//! nothing else creates or closes pools.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Pool, PoolCounters, PoolKey};
use crate::config::{DatabaseSettings, PoolSettings, Settings, UserSettings};
use crate::monitor::NodeId;
use crate::server::ServerLogin;
use crate::tls::ServerTls;

/// All server pools, created on first use.
pub struct PoolManager {
    /// Settings for pools created from now on.
    settings: Mutex<PoolSettings>,
    /// How every server connection is secured.
    tls: ServerTls,
    pools: Mutex<HashMap<PoolKey, Pool>>,
}

impl PoolManager {
    /// A manager with no pools yet.
    pub fn new(settings: PoolSettings, tls: ServerTls) -> Self {
        PoolManager { settings: Mutex::new(settings), tls, pools: Mutex::new(HashMap::new()) }
    }

    /// The pool of configured node `id` of `db` for `user`. A pool is a node's, whatever role the
    /// node plays now: its `role` label is the configured one.
    pub fn pool(&self, id: NodeId, db: &DatabaseSettings, user: &UserSettings) -> Pool {
        let node = match id {
            NodeId::Primary => db.primary.as_str(),
            NodeId::Replica(i) => db.replicas.get(i).map_or(db.primary.as_str(), |r| r.addr.as_str()),
        };
        let key = PoolKey { node: Arc::from(node), database: db.server_dbname.clone(), user: user.server_user.clone() };
        let mut pools = self.pools.lock();
        if let Some(pool) = pools.get(&key) {
            return pool.clone();
        }
        let login = ServerLogin {
            user: user.server_user.clone(),
            password: user.server_password.clone(),
            database: db.server_dbname.clone(),
            tls: self.tls.clone(),
        };
        let settings = self.settings.lock().clone();
        let size = db.pool_size.unwrap_or(settings.size);
        let role = if id == NodeId::Primary { "primary" } else { "replica" };
        let counters = Arc::new(PoolCounters::default());
        let pool = Pool::with_counters(key.clone(), role, counters, login, size, settings);
        pools.insert(key, pool.clone());
        pool
    }

    /// Applies reloaded settings: resizes the pools still configured, and closes (drains) those
    /// whose node, database or login is gone; sessions move to new pools at their next transaction.
    pub fn apply(&self, settings: &Settings) {
        *self.settings.lock() = settings.pool.clone();
        let mut pools = self.pools.lock();
        pools.retain(|key, pool| match wanted_size(settings, key, pool) {
            Some(size) => {
                pool.set_size(size);
                pool.set_settings(settings.pool.clone());
                true
            }
            None => {
                tracing::info!(pool = %key, "pool no longer configured: draining it");
                pool.close();
                false
            }
        });
    }

    /// Every pool, for observation.
    pub fn pools(&self) -> Vec<Pool> {
        self.pools.lock().values().cloned().collect()
    }

    /// Closes idle connections past their timeouts, every `period`, until the task is dropped.
    pub async fn run_janitor(self: Arc<Self>, period: Duration) {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            for pool in self.pools() {
                let closed = pool.close_expired();
                if closed > 0 {
                    tracing::debug!(pool = %pool.key(), closed, "closed expired idle server connections");
                }
            }
        }
    }

    /// Retires the connections of every pool on `node` ([`Pool::retire`]), for whichever database
    /// and user; returns how many idle ones closed.
    pub fn retire_node(&self, node: &str) -> usize {
        self.pools().iter().filter(|p| *p.key().node == *node).map(Pool::retire).sum()
    }

    /// Closes every pool: no more checkouts, idle connections closed.
    pub fn close_all(&self) {
        for pool in self.pools() {
            pool.close();
        }
    }
}

/// The size a pool should have under `settings`, or `None` when no database and user map to it
/// with the same login any more.
fn wanted_size(settings: &Settings, key: &PoolKey, pool: &Pool) -> Option<usize> {
    settings.databases.values().find_map(|db| {
        let on_node = db.primary == *key.node || db.replicas.iter().any(|r| r.addr == *key.node);
        let user = settings.users.values().find(|u| {
            u.server_user == key.user
                && pool.logs_in_as(&u.server_user, u.server_password.as_deref(), &db.server_dbname)
        });
        (on_node && db.server_dbname == key.database && user.is_some())
            .then(|| db.pool_size.unwrap_or(settings.pool.size))
    })
}
