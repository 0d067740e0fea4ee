//! The state every session shares, below the sessions that use it: the configuration snapshot
//! (replaced whole by a reload, see [`config`]), the pool manager, the monitor, the registries of
//! connected clients, cancel keys, paused databases and prepared statements, and the counters.
//! `app` builds it; nothing here imports the layers above.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::classify::{Classifier, ClassifierSettings};
use crate::config::Settings;
use crate::metrics::{Counters, Metrics};
use crate::monitor::Monitor;
use crate::pool::PoolManager;
use crate::route::stats::DecisionCounts;

pub mod cancel;
pub mod clients;
pub mod config;
pub mod pause;
pub mod statements;

pub use config::Config;

use crate::server::params::ParamInterner;
use cancel::CancelRegistry;
use clients::ClientRegistry;
use pause::Pause;
use statements::StatementIds;

/// What every session shares. The settings and what is derived from them live in a [`Config`]
/// snapshot that a reload replaces whole; a session keeps the snapshot it started a transaction
/// under and follows a reload at its next transaction.
pub struct Shared {
    config: ArcSwap<Config>,
    monitor: ArcSwap<Monitor>,
    /// Stops the current monitor's tasks when a reload starts a new one.
    monitor_token: Mutex<CancellationToken>,
    pub pools: Arc<PoolManager>,
    pub cancels: Arc<CancelRegistry>,
    /// The current snapshot's generation: what a session compares its own with, between
    /// transactions, with one load.
    generation: AtomicU64,
    /// User functions the primaries list as VOLATILE, kept for rebuilding the classifier; held
    /// while a new snapshot is made, so one is made at a time.
    learned_functions: Mutex<HashSet<String>>,
    pub decisions: DecisionCounts,
    /// Server-side names of prepared statements.
    pub statements: StatementIds,
    /// Connected clients.
    pub clients: Arc<ClientRegistry>,
    /// One shared copy of each distinct set of reported parameters clients hold.
    pub param_sets: ParamInterner,
    /// Counts kept by sessions: refusals, pins, errors.
    pub counters: Counters,
    /// This instance's Prometheus recorder.
    pub metrics: Arc<Metrics>,
    /// Databases paused from the admin console.
    pub pause: Pause,
    /// Cancelled when pgsplit starts shutting down.
    pub shutdown: CancellationToken,
    client_ids: AtomicU64,
}

/// Why pgsplit could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid user configuration: {0}")]
    Users(String),
    #[error("invalid routing configuration: {0}")]
    Routing(String),
}

impl Shared {
    /// Builds the shared state; derives each user's login secret once and starts the monitor.
    pub fn new(settings: Settings, shutdown: CancellationToken) -> Result<Self, AppError> {
        let config = Config::build(settings, 1, &HashSet::new())?;
        let settings = &config.settings;
        let monitor_token = shutdown.child_token();
        let monitor = Monitor::start(settings, monitor_token.clone());
        let metrics = Arc::new(Metrics::new());
        Ok(Shared {
            generation: AtomicU64::new(config.generation),
            learned_functions: Mutex::default(),
            monitor: ArcSwap::from_pointee(monitor),
            monitor_token: Mutex::new(monitor_token),
            decisions: DecisionCounts::default(),
            statements: StatementIds::default(),
            clients: Arc::default(),
            param_sets: ParamInterner::default(),
            counters: Counters::default(),
            pools: Arc::new(PoolManager::new(settings.pool.clone(), settings.tls.server.clone())),
            cancels: Arc::new(CancelRegistry::new(settings.tls.server.clone())),
            metrics,
            pause: Pause::default(),
            config: ArcSwap::from_pointee(config),
            shutdown,
            client_ids: AtomicU64::new(1),
        })
    }

    /// The current configuration snapshot.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Which configuration snapshot is current: bumped by every reload and by write functions
    /// learned. Sessions ask once per transaction.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes `config` the current snapshot; its generation is published after it, so a session
    /// that sees the new number loads the new snapshot.
    fn publish(&self, config: Config) {
        let generation = config.generation;
        self.config.store(Arc::new(config));
        self.generation.store(generation, Ordering::Release);
    }

    /// The monitor of the current configuration.
    pub fn monitor(&self) -> Arc<Monitor> {
        self.monitor.load_full()
    }

    /// Makes calls of these functions writes, now and after every reload.
    pub fn learn_write_functions(&self, names: HashSet<String>) {
        let mut learned = self.learned_functions.lock();
        self.publish(self.config().learned(&names));
        *learned = names;
    }

    /// A process-unique client id.
    pub fn next_client_id(&self) -> u64 {
        self.client_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// The classifier for `settings`: configured write functions plus the learned volatile ones.
pub(crate) fn classifier(settings: &Settings, learned: &HashSet<String>) -> Classifier {
    let mut write_functions: HashSet<String> = settings.routing.write_functions.iter().cloned().collect();
    write_functions.extend(learned.iter().cloned());
    Classifier::new(ClassifierSettings { cache_size: 10_000, write_functions })
}
