//! Server connection pools: one per (node, database, user), all owned by the [`PoolManager`].
//! A checkout is an RAII guard that returns the connection, or discards it, when dropped.

pub mod checkout;
pub mod manager;
// One pool; the module shares the name of the folder that holds the manager and checkouts.
#[allow(clippy::module_inception)]
pub mod pool;

pub use crate::server::counters::PoolCounters;
pub use checkout::Checkout;
pub use manager::PoolManager;
pub use pool::{Pool, PoolKey};

use crate::server::ServerError;

/// Why no server connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every connection stayed busy for the whole checkout timeout.
    #[error("no server connection free in pool {pool} (size {size}) after waiting {waited_ms} ms")]
    Exhausted { pool: String, size: usize, waited_ms: u64 },
    /// A new connection could not be opened: the server is down or refuses pgsplit.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// pgsplit is shutting down.
    #[error("pool {0} is closed")]
    Closed(String),
}
