//! Wiring: builds the pool manager, authenticator and cancel registry from the settings, runs the
//! listener, owns shutdown (a CancellationToken and the TaskTracker of client tasks) and swaps in
//! reloaded configurations (see [`reload`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::classify::{Classifier, ClassifierSettings};
use crate::client::cancel::CancelRegistry;
use crate::client::listener;
use crate::client::pause::Pause;
use crate::client::prepared::Registry;
use crate::client::registry::ClientRegistry;
use crate::config::Settings;
use crate::metrics::{Counters, Metrics};
use crate::monitor::Monitor;
use crate::pool::PoolManager;
use crate::route::stats::DecisionCounts;

mod reload;

pub use reload::{reload, Config};

/// What every session shares. The settings and what is derived from them live in a [`Config`]
/// snapshot that a reload replaces whole; sessions load it per request.
pub struct AppContext {
    config: ArcSwap<Config>,
    monitor: ArcSwap<Monitor>,
    /// Stops the current monitor's tasks when a reload starts a new one.
    monitor_token: Mutex<CancellationToken>,
    pub pools: Arc<PoolManager>,
    pub cancels: Arc<CancelRegistry>,
    /// Replaced once the monitor has read which user functions are volatile, and on reload.
    pub classifier: ArcSwap<Classifier>,
    /// User functions the primaries list as VOLATILE, kept for rebuilding the classifier.
    learned_functions: Mutex<HashSet<String>>,
    pub decisions: DecisionCounts,
    /// Server-side names of prepared statements.
    pub statements: Registry,
    /// Connected clients.
    pub clients: Arc<ClientRegistry>,
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

impl AppContext {
    /// Builds the shared state; derives each user's login secret once and starts the monitor.
    pub fn new(settings: Settings, shutdown: CancellationToken) -> Result<Self, AppError> {
        let config = Config::build(settings, 1)?;
        let settings = &config.settings;
        let classifier = ArcSwap::from_pointee(classifier(settings, &HashSet::new()));
        let monitor_token = shutdown.child_token();
        let monitor = Monitor::start(settings, monitor_token.clone());
        let metrics = Arc::new(Metrics::new());
        Ok(AppContext {
            classifier,
            learned_functions: Mutex::default(),
            monitor: ArcSwap::from_pointee(monitor),
            monitor_token: Mutex::new(monitor_token),
            decisions: DecisionCounts::default(),
            statements: Registry::default(),
            clients: Arc::default(),
            counters: Counters::default(),
            pools: Arc::new(PoolManager::new(settings.pool.clone(), settings.tls.server.clone(), metrics.clone())),
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

    /// Which configuration is current: bumped by every successful reload.
    pub fn generation(&self) -> u64 {
        // A guard, not a clone of the Arc: sessions ask this once per transaction.
        self.config.load().generation
    }

    /// The monitor of the current configuration.
    pub fn monitor(&self) -> Arc<Monitor> {
        self.monitor.load_full()
    }

    /// A process-unique client id.
    pub fn next_client_id(&self) -> u64 {
        self.client_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// The classifier for `settings`: configured write functions plus the learned volatile ones.
fn classifier(settings: &Settings, learned: &HashSet<String>) -> Classifier {
    let mut write_functions: HashSet<String> = settings.routing.write_functions.iter().cloned().collect();
    write_functions.extend(learned.iter().cloned());
    Classifier::new(ClassifierSettings { cache_size: 10_000, write_functions })
}

/// The sockets pgsplit serves, bound by the caller (so tests can bind port 0 and know the port).
pub struct Listeners {
    /// PostgreSQL clients.
    pub clients: TcpListener,
    /// `/metrics` and `/healthz`, when configured.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses the settings name.
    pub async fn bind(settings: &Settings) -> std::io::Result<Listeners> {
        let clients = TcpListener::bind(settings.listen).await?;
        let metrics = match settings.metrics_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Listeners { clients, metrics })
    }
}

/// Serves clients on an already-bound listener until `shutdown` is cancelled, then lets running
/// transactions finish for up to `limits.shutdown_timeout`.
pub async fn serve(listener: TcpListener, settings: Settings, shutdown: CancellationToken) -> Result<(), AppError> {
    serve_all(Listeners { clients: listener, metrics: None }, settings, shutdown).await
}

/// [`serve`], plus the metrics endpoint when its listener is given.
pub async fn serve_all(listeners: Listeners, settings: Settings, shutdown: CancellationToken) -> Result<(), AppError> {
    let Listeners { clients: listener, metrics } = listeners;
    let ctx = Arc::new(AppContext::new(settings, shutdown)?);
    if let Some(metrics) = metrics {
        tokio::spawn(crate::admin::http::serve(metrics, ctx.clone()));
    }
    let tracker = TaskTracker::new();
    let janitor = tokio::spawn(ctx.pools.clone().run_janitor(Duration::from_secs(1)));
    let hangups = tokio::spawn(reload::on_sighup(ctx.clone()));
    let upkeep = tokio::spawn(ctx.metrics.clone().run_upkeep(Duration::from_secs(5)));
    let functions = tokio::spawn(learn_write_functions(ctx.clone()));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "pgsplit listening");
    }
    listener::run(listener, ctx.clone(), tracker.clone()).await;
    tracker.close();
    let limit = ctx.config().settings.limits.shutdown_timeout;
    tracing::info!(clients = tracker.len(), "shutting down: waiting for transactions to finish");
    if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
        tracing::warn!(clients = tracker.len(), "shutdown timeout reached; closing remaining clients");
    }
    janitor.abort();
    functions.abort();
    hangups.abort();
    upkeep.abort();
    ctx.pools.close_all();
    Ok(())
}

/// Adds the user functions the primaries list as VOLATILE to the classifier's writes, so a call
/// to one goes to the primary the first time. Retries while a primary is unreachable.
async fn learn_write_functions(ctx: Arc<AppContext>) {
    let config = ctx.config();
    let settings = &config.settings;
    let mut names = HashSet::new();
    for db in settings.databases.values().filter(|db| !db.replicas.is_empty()) {
        let Some(login) = crate::monitor::probe_login(settings, db) else { continue };
        let mut warned = false;
        loop {
            match crate::monitor::functions::volatile_functions(&db.primary, &login, settings.pool.connect_timeout)
                .await
            {
                Ok(found) => {
                    tracing::info!(database = %db.name, functions = found.len() / 2, "volatile user functions count as writes");
                    names.extend(found);
                    break;
                }
                Err(e) => {
                    // Warned once; the monitor already says while the primary is unreachable.
                    if std::mem::replace(&mut warned, true) {
                        tracing::debug!(database = %db.name, error = %e, "still cannot read volatile functions");
                    } else {
                        tracing::warn!(database = %db.name, error = %e, "cannot read volatile functions yet; retrying");
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }
    let current = ctx.config();
    ctx.classifier.store(Arc::new(classifier(&current.settings, &names)));
    *ctx.learned_functions.lock() = names;
}
