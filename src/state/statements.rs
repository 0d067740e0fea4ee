//! Server-side names of prepared statements: one id per distinct (text, parameter types), shared
//! by every session, and the work they cause on servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// Server-side statement ids by (text, parameter types), shared by all sessions, with counts of
/// the work it causes on servers.
#[derive(Debug, Default)]
pub struct StatementIds {
    ids: Mutex<HashMap<Bytes, u64>>,
    next: AtomicU64,
    prepares: AtomicU64,
    evictions: AtomicU64,
}

/// What the registry has counted, for metrics and SHOW STATS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreparedStats {
    /// Distinct (text, types) statements seen.
    pub distinct: usize,
    /// Parse messages sent to servers under pgsplit's names: a client's Parse the connection
    /// lacked, or a statement prepared on a connection that lacked it.
    pub prepares: u64,
    /// Statements closed on a connection because its LRU was full.
    pub evictions: u64,
}

impl StatementIds {
    /// The counts so far.
    pub fn stats(&self) -> PreparedStats {
        PreparedStats {
            distinct: self.ids.lock().len(),
            prepares: self.prepares.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// The server-side id of a (text, parameter types) key, assigned on first sight.
    pub fn id_for(&self, key: &[u8]) -> u64 {
        let mut ids = self.ids.lock();
        if let Some(id) = ids.get(key) {
            return *id;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        ids.insert(Bytes::copy_from_slice(key), id);
        id
    }

    /// A statement was prepared on a server connection under pgsplit's name.
    pub fn count_prepare(&self) {
        self.prepares.fetch_add(1, Ordering::Relaxed);
    }

    /// A statement was closed on a connection whose LRU was full.
    pub fn count_eviction(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
    }
}
