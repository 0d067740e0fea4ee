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
            if let Some(secret) = &user.passthrough {
                pool.renew_passthrough(secret);
            }
            return pool.clone();
        }
        let login = ServerLogin {
            user: user.server_user.clone(),
            password: user.server_password.clone(),
            passthrough: user.passthrough.clone(),
            database: db.server_dbname.clone(),
            tls: self.tls.clone(),
        };
        let on_demand = user.passthrough.is_some() || db.from_wildcard;
        let settings = self.settings.lock().clone();
        let size = db.pool_size.unwrap_or(settings.size);
        let role = if id == NodeId::Primary { "primary" } else { "replica" };
        let counters = Arc::new(PoolCounters::default());
        let pool = Pool::with_counters(key.clone(), role, counters, login, size, settings, on_demand);
        pools.insert(key, pool.clone());
        pool
    }

    /// Applies reloaded settings: resizes the pools still configured, and closes (drains) those
    /// whose node, database or login is gone; sessions move to new pools at their next transaction.
    pub fn apply(&self, settings: &Settings) {
        *self.settings.lock() = settings.pool.clone();
        let mut pools = self.pools.lock();
        pools.retain(|key, pool| {
            // Made for a looked-up user or a "*" database: kept while `[auth]` or "*" still
            // allow it, as sized now; closed as idle, like any pool, once nobody uses it.
            let on_demand = || pool.on_demand().then(|| on_demand_entry(settings, key)).flatten();
            let size = wanted_size(settings, key, pool)
                .or_else(|| on_demand().map(|db| db.pool_size.unwrap_or(settings.pool.size)));
            match size {
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
            }
        });
    }

    /// Every pool, for observation.
    pub fn pools(&self) -> Vec<Pool> {
        self.pools.lock().values().cloned().collect()
    }

    /// Closes idle connections past their timeouts, every `period`, until the task is dropped;
    /// then drops the pools made on demand that nobody uses any more.
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
            self.drop_unused();
        }
    }

    /// Drops the pools made for looked-up users and `"*"` databases that have no connection
    /// and no session holding them (under the lock, so no session can take one meanwhile).
    pub fn drop_unused(&self) -> usize {
        let mut pools = self.pools.lock();
        let before = pools.len();
        pools.retain(|key, pool| {
            let unused = pool.on_demand() && pool.unused();
            if unused {
                tracing::debug!(pool = %key, "pool unused: dropped");
            }
            !unused
        });
        before - pools.len()
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

/// The entry a pool made on demand now answers to: its database's own on its node, else `"*"`
/// when it names the node. `None` when neither serves it any more, or its user is no longer
/// listed and `[auth]` looks nobody up.
fn on_demand_entry<'a>(settings: &'a Settings, key: &PoolKey) -> Option<&'a DatabaseSettings> {
    let user_ok = settings.auth_lookup.is_some() || settings.users.values().any(|u| u.server_user == key.user);
    let listed = settings.databases.values().find(|db| db.server_dbname == key.database && on_node(db, key));
    let wildcard = || settings.databases.get(crate::config::WILDCARD_DATABASE).filter(|db| on_node(db, key));
    listed.map(|db| &**db).or_else(|| wildcard().map(|db| &**db)).filter(|_| user_ok)
}

fn on_node(db: &DatabaseSettings, key: &PoolKey) -> bool {
    db.primary == *key.node || db.replicas.iter().any(|r| r.addr == *key.node)
}

/// The size a pool should have under `settings`, or `None` when no database and user map to it
/// with the same login any more.
fn wanted_size(settings: &Settings, key: &PoolKey, pool: &Pool) -> Option<usize> {
    settings.databases.values().find_map(|db| {
        let on_node = on_node(db, key);
        let user = settings.users.values().find(|u| {
            u.server_user == key.user
                && pool.logs_in_as(&u.server_user, u.server_password.as_deref(), &db.server_dbname)
        });
        (on_node && db.server_dbname == key.database && user.is_some())
            .then(|| db.pool_size.unwrap_or(settings.pool.size))
    })
}
