//! Wiring: builds the shared state from the settings, runs the listener and the background tasks
//! (janitor, SIGHUP reloads, learning volatile functions, closing connections to
//! nodes that lost their role, returning memory), and owns shutdown (a CancellationToken and the
//! TaskTracker of client tasks).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::listener;
use crate::config::Settings;
use crate::state::{AppError, Shared};

mod fencing;
mod memory;
mod reload;

/// The sockets pgsplit serves, bound by the caller (so tests can bind port 0 and know the port),
/// and its SIGHUP stream, taken before them.
pub struct Listeners {
    /// PostgreSQL clients.
    pub clients: TcpListener,
    /// `/metrics` and `/healthz`, when configured.
    pub metrics: Option<TcpListener>,
    /// SIGHUP, for reloads; `None` if it could not be listened for.
    hangups: Option<reload::Hangups>,
}

/// An address pgsplit could not listen on; it names the address and the key that set it, so an
/// operator knows which of the two is taken.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({key}): {error}{}", hint(error))]
pub struct BindError {
    pub addr: SocketAddr,
    /// The config key: `listen.addr` or `listen.metrics_addr`.
    pub key: &'static str,
    /// Said in the message itself rather than as its source, so it is said once.
    pub error: std::io::Error,
}

/// What to do about the common cause.
fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "; another process holds it (another pgsplit, or PgBouncer?)",
        _ => "",
    }
}

impl Listeners {
    /// Sockets the caller bound; SIGHUP is listened for from here on. A daemon uses `bind`,
    /// which listens for it before binding: once a client can connect, a SIGHUP must reload,
    /// not end the process (its default action).
    pub fn from_sockets(clients: TcpListener, metrics: Option<TcpListener>) -> Listeners {
        Listeners { clients, metrics, hangups: reload::listen() }
    }

    /// Binds the addresses the settings name, after listening for SIGHUP.
    pub async fn bind(settings: &Settings) -> Result<Listeners, BindError> {
        let hangups = reload::listen();
        let bind = |addr: SocketAddr, key| async move {
            TcpListener::bind(addr).await.map_err(|error| BindError { addr, key, error })
        };
        let clients = bind(settings.listen, "listen.addr").await?;
        let metrics = match settings.metrics_addr {
            Some(addr) => Some(bind(addr, "listen.metrics_addr").await?),
            None => None,
        };
        Ok(Listeners { clients, metrics, hangups })
    }
}

/// Serves clients on the bound listeners until `shutdown` is cancelled, then lets running
/// transactions finish for up to `limits.shutdown_timeout`.
pub async fn serve_all(listeners: Listeners, settings: Settings, shutdown: CancellationToken) -> Result<(), AppError> {
    let Listeners { clients: listener, metrics, hangups } = listeners;
    let ctx = Arc::new(Shared::new(settings, shutdown)?);
    if let Some(metrics) = metrics {
        tokio::spawn(crate::admin::http::serve(metrics, ctx.clone()));
    }
    let tracker = TaskTracker::new();
    let janitor = tokio::spawn(ctx.pools.clone().run_janitor(Duration::from_secs(1)));
    let hangups = tokio::spawn(reload::on_sighup(ctx.clone(), hangups));
    let functions = tokio::spawn(learn_write_functions(ctx.clone()));
    let fencing = tokio::spawn(fencing::follow_roles(ctx.clone()));
    let memory = tokio::spawn(memory::return_memory(ctx.clone(), Duration::from_secs(2)));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "pgsplit listening");
    }
    listener::run(listener, ctx.clone(), tracker.clone()).await;
    // Sessions between transactions end now; the others at their transaction's end.
    ctx.clients.close();
    tracker.close();
    let limit = ctx.config().settings.limits.shutdown_timeout;
    tracing::info!(clients = tracker.len(), "shutting down: waiting for transactions to finish");
    if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
        tracing::warn!(clients = tracker.len(), "shutdown timeout reached; closing remaining clients");
    }
    janitor.abort();
    fencing.abort();
    memory.abort();
    functions.abort();
    hangups.abort();
    ctx.pools.close_all();
    Ok(())
}

/// Adds the user functions the primaries list as VOLATILE to the classifier's writes, so a call
/// to one goes to the primary the first time. Retries while a primary is unreachable.
async fn learn_write_functions(ctx: Arc<Shared>) {
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
    ctx.learn_write_functions(names);
}
