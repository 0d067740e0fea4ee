//! The monitor: the one owner of topology. One probe per distinct node samples it each check
//! interval (role, WAL positions, replay delay), shared by every database naming the node; each
//! database's round turns its nodes' samples into the [`Topology`] snapshot that routing reads
//! without locks.

pub mod beat;
pub mod changes;
pub mod election;
pub mod functions;
pub mod nodes;
pub mod probe;
pub mod round;
pub mod tls;
pub mod topology;
pub mod wal;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use election::{NodeId, Role};
pub use topology::{NodeStatus, Topology};

use crate::config::{DatabaseSettings, Settings};
use beat::Beat;
use nodes::Nodes;
use probe::ProbeLogin;
use round::Round;

/// One database's topology as the monitor publishes it, and a way to ask for a fresher one.
pub struct TopologyWatch {
    snapshot: ArcSwap<Topology>,
    /// Make the probes of the database's nodes sample at once (other databases on the same
    /// nodes get the new samples too).
    wakes: Vec<Arc<Notify>>,
    /// Fires after each new snapshot.
    published: Notify,
    /// Times requests asked for fresh samples ([`TopologyWatch::refresh`]).
    refreshes: AtomicU64,
}

impl TopologyWatch {
    fn new(topology: Topology, wakes: Vec<Arc<Notify>>) -> Self {
        TopologyWatch {
            snapshot: ArcSwap::from_pointee(topology),
            wakes,
            published: Notify::new(),
            refreshes: AtomicU64::new(0),
        }
    }

    /// Times requests asked for fresh samples instead of waiting for the next check.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The latest snapshot, to keep.
    pub fn load(&self) -> Arc<Topology> {
        self.snapshot.load_full()
    }

    /// The latest snapshot, to read at once: no reference count taken, the one atomic that every
    /// session reading it would otherwise touch on each request. Not for holding across awaits.
    pub fn current(&self) -> arc_swap::Guard<Arc<Topology>> {
        self.snapshot.load()
    }

    /// Asks every node for a new sample now and waits up to `timeout` for the next snapshot: how
    /// a read that no replica can take yet asks the replicas directly instead of waiting out the
    /// check interval. Returns whether a snapshot was published.
    pub async fn refresh(&self, timeout: Duration) -> bool {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let published = self.published.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        self.wakes.iter().for_each(|wake| wake.notify_waiters());
        tokio::time::timeout(timeout, published).await.is_ok()
    }

    fn publish(&self, topology: Topology) {
        self.snapshot.store(Arc::new(topology));
        self.published.notify_waiters();
    }
}

/// Topology snapshots by database name.
pub struct Monitor {
    topologies: BTreeMap<String, Arc<TopologyWatch>>,
    beat: Beat,
}

impl Monitor {
    /// Starts one probe per distinct node and one round per database; stops when `shutdown`
    /// fires.
    pub fn start(settings: &Settings, shutdown: CancellationToken) -> Monitor {
        let mut topologies = BTreeMap::new();
        let mut nodes = Nodes::default();
        let beat = Beat::new(settings.routing.check_interval);
        for db in settings.databases.values() {
            // Every primary is watched (for health and metrics); replicas only matter to routing
            // where a database has them.
            let Some(login) = probe_login(settings, db) else {
                tracing::error!(database = %db.name, "no user to monitor with: replicas get no reads");
                continue;
            };
            let landed = Arc::new(Notify::new());
            let probes: Vec<_> = addrs(db).map(|addr| nodes.join(addr, &db.name, &login, &landed)).collect();
            let wakes = probes.iter().map(|p| p.wake.clone()).collect();
            let watch = Arc::new(TopologyWatch::new(initial(db), wakes));
            let slots = probes.into_iter().map(|p| p.slot).collect();
            let limits = round::limits(&settings.routing);
            let round = Round { watch: watch.clone(), slots, landed, beat, limits };
            // Every round's line names its database; error-level so it is never filtered out alone.
            let span = tracing::error_span!("monitor", database = %db.name);
            tokio::spawn(round.run(shutdown.clone()).instrument(span));
            topologies.insert(db.name.clone(), watch);
        }
        tracing::debug!(databases = topologies.len(), nodes = nodes.len(), "monitor started");
        nodes.spawn(beat, settings.pool.connect_timeout, &shutdown);
        Monitor { topologies, beat }
    }

    /// The instants the monitor samples and publishes on: a task that looks at every snapshot
    /// wakes on them too, so the thread wakes once for all of them.
    pub fn beat(&self) -> Beat {
        self.beat
    }

    /// The latest snapshot for a database.
    pub fn topology(&self, database: &str) -> Option<Arc<Topology>> {
        self.topologies.get(database).map(|t| t.load())
    }

    /// The live snapshot handle for a database, for sessions to keep.
    pub fn handle(&self, database: &str) -> Option<Arc<TopologyWatch>> {
        self.topologies.get(database).cloned()
    }
}

/// A database's nodes: its primary, then its replicas.
fn addrs(db: &DatabaseSettings) -> impl Iterator<Item = &str> {
    std::iter::once(db.primary.as_str()).chain(db.replicas.iter().map(|r| r.addr.as_str()))
}

fn initial(db: &DatabaseSettings) -> Topology {
    Topology::new(db.primary.as_str().into(), db.replicas.iter().map(|r| (r.addr.as_str().into(), r.weight)).collect())
}

/// Who the monitor logs in as for a database (and for a node, the first database naming it).
pub fn probe_login(settings: &Settings, db: &DatabaseSettings) -> Option<ProbeLogin> {
    let routing = &settings.routing;
    // Console-only users (admin_users) are no server logins; any other user will do.
    let mut users = settings.users.values().filter(|u| !settings.admin_users.contains(&u.name));
    let first = users.clone().find(|u| u.server_password.is_some()).or(users.next());
    let user = routing.monitor_user.clone().or_else(|| first.map(|u| u.server_user.clone()))?;
    let password = routing.monitor_password.clone().or_else(|| first.and_then(|u| u.server_password.clone()));
    Some(ProbeLogin { user, password, dbname: db.server_dbname.clone(), tls: settings.tls.server.clone() })
}
