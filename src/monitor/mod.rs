//! The monitor: the one owner of topology. It samples every node of every database each check
//! interval (role, WAL positions, replay delay) and publishes a [`Topology`] snapshot that routing
//! reads without locks.

pub mod changes;
pub mod election;
pub mod functions;
pub mod probe;
pub mod tls;
pub mod topology;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use election::{NodeId, Role};
pub use topology::{Freshness, NodeStatus, Topology};

use crate::config::{DatabaseSettings, Settings};
use probe::{Pacing, ProbeLogin, SampleSlot};

/// One database's topology as the monitor publishes it, and a way to ask for a fresher one.
pub struct TopologyWatch {
    snapshot: ArcSwap<Topology>,
    /// Makes every probe of the database sample at once.
    wake: Arc<Notify>,
    /// Fires after each new snapshot.
    published: Notify,
    /// Times requests asked for fresh samples ([`TopologyWatch::refresh`]).
    refreshes: AtomicU64,
}

impl TopologyWatch {
    fn new(topology: Topology) -> Self {
        TopologyWatch {
            snapshot: ArcSwap::from_pointee(topology),
            wake: Arc::default(),
            published: Notify::new(),
            refreshes: AtomicU64::new(0),
        }
    }

    /// Times requests asked for fresh samples instead of waiting for the next check.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The latest snapshot.
    pub fn load(&self) -> Arc<Topology> {
        self.snapshot.load_full()
    }

    /// Asks every node for a new sample now and waits up to `timeout` for the next snapshot: how
    /// a read that no replica can take yet asks the replicas directly instead of waiting out the
    /// check interval. Returns whether a snapshot was published.
    pub async fn refresh(&self, timeout: Duration) -> bool {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let published = self.published.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        self.wake.notify_waiters();
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
}

impl Monitor {
    /// Starts probing every node of every database; stops when `shutdown` fires.
    pub fn start(settings: &Settings, shutdown: CancellationToken) -> Monitor {
        let mut topologies = BTreeMap::new();
        for db in settings.databases.values() {
            // Every primary is watched (for health and metrics); replicas only matter to routing
            // where a database has them.
            let topology = Arc::new(TopologyWatch::new(initial(db)));
            let Some(login) = probe_login(settings, db) else {
                tracing::error!(database = %db.name, "no user to monitor with: replicas get no reads");
                continue;
            };
            // Every monitor line names its database; error-level so it is never filtered out alone.
            let span = tracing::error_span!("monitor", database = %db.name);
            let run =
                run_database(DatabaseSettings::clone(db), login, settings.clone(), topology.clone(), shutdown.clone());
            tokio::spawn(run.instrument(span));
            topologies.insert(db.name.clone(), topology);
        }
        Monitor { topologies }
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

fn initial(db: &DatabaseSettings) -> Topology {
    Topology::new(db.primary.as_str().into(), db.replicas.iter().map(|r| (r.addr.as_str().into(), r.weight)).collect())
}

/// Who the monitor logs in as for a database.
pub fn probe_login(settings: &Settings, db: &DatabaseSettings) -> Option<ProbeLogin> {
    let routing = &settings.routing;
    // Console-only users (admin_users) are no server logins; any other user will do.
    let mut users = settings.users.values().filter(|u| !settings.admin_users.contains(&u.name));
    let first = users.clone().find(|u| u.server_password.is_some()).or(users.next());
    let user = routing.monitor_user.clone().or_else(|| first.map(|u| u.server_user.clone()))?;
    let password = routing.monitor_password.clone().or_else(|| first.and_then(|u| u.server_password.clone()));
    Some(ProbeLogin { user, password, dbname: db.server_dbname.clone(), tls: settings.tls.server.clone() })
}

/// Probes a database's nodes and publishes a new snapshot every check interval.
async fn run_database(
    db: DatabaseSettings,
    login: ProbeLogin,
    settings: Settings,
    topology: Arc<TopologyWatch>,
    shutdown: CancellationToken,
) {
    let interval = settings.routing.check_interval;
    let pacing = Pacing {
        interval,
        connect_timeout: settings.pool.connect_timeout,
        wake: topology.wake.clone(),
        landed: Arc::default(),
    };
    let addrs: Vec<Arc<str>> = std::iter::once(db.primary.as_str())
        .chain(db.replicas.iter().map(|r| r.addr.as_str()))
        .map(Arc::from)
        .collect();
    let slots: Vec<SampleSlot> = addrs.iter().map(|_| SampleSlot::default()).collect();
    let probes: Vec<_> = addrs
        .iter()
        .zip(&slots)
        .map(|(addr, slot)| {
            let probe = probe::run_probe(addr.clone(), login.clone(), pacing.clone(), slot.clone());
            tokio::spawn(probe.instrument(tracing::Span::current()))
        })
        .collect();
    let limits = Freshness {
        max_lag: settings.routing.max_lag,
        max_lag_bytes: settings.routing.max_lag_bytes,
        // Three missed rounds, but never less than the time a slow sample may legitimately take.
        stale_after: (interval * 3).max(Duration::from_millis(500)),
    };
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = pacing.landed.notified() => {}
            _ = shutdown.cancelled() => break,
        }
        let latest: Vec<_> = slots.iter().map(|s| s.lock().clone()).collect();
        let samples: Vec<_> = latest.iter().map(|s| s.as_ref().map(|(sample, _)| *sample)).collect();
        let mut next = topology.load().next(samples[0], &samples[1..], Instant::now(), limits);
        if let Some((_, standbys)) = &latest[0] {
            next.standbys = standbys.clone();
        }
        changes::log(&changes::changes(&topology.load(), &next));
        topology.publish(next);
    }
    for probe in probes {
        probe.abort();
    }
}
