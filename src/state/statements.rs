//! Server-side names of prepared statements: one id per distinct (text, parameter types), shared
//! by every session, and the work they cause on servers.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;

/// Distinct statements the registry remembers. Unnamed statements make this grow with every
/// distinct text a client sends (texts with their literals inlined are all distinct), so the
/// least recently used are forgotten: a forgotten text seen again gets a new id and is prepared
/// again; connections close the old one as their own LRU turns over.
const DISTINCT_REMEMBERED: usize = 16 * 1024;

/// Server-side statement ids by (text, parameter types), shared by all sessions, with counts of
/// the work it causes on servers.
#[derive(Debug)]
pub struct StatementIds {
    ids: Mutex<LruCache<Bytes, u64>>,
    next: AtomicU64,
    prepares: AtomicU64,
    reuses: AtomicU64,
    evictions: AtomicU64,
    replans: AtomicU64,
}

impl Default for StatementIds {
    fn default() -> Self {
        let cap = NonZeroUsize::new(DISTINCT_REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        StatementIds {
            ids: Mutex::new(LruCache::new(cap)),
            next: AtomicU64::new(0),
            prepares: AtomicU64::new(0),
            reuses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            replans: AtomicU64::new(0),
        }
    }
}

/// What the registry has counted, for metrics and SHOW STATS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreparedStats {
    /// Distinct (text, types) statements remembered.
    pub distinct: usize,
    /// Parse messages sent to servers under pgsplit's names: a client's Parse the connection
    /// lacked, or a statement prepared on a connection that lacked it.
    pub prepares: u64,
    /// Client Parse messages pgsplit answered itself: the connection had the statement already.
    pub reuses: u64,
    /// Statements closed on a connection because its LRU was full.
    pub evictions: u64,
    /// Requests run again after PostgreSQL refused a reused statement whose result type changed
    /// (DDL since it was prepared): the statement was prepared again first.
    pub replans: u64,
}

impl StatementIds {
    /// The counts so far.
    pub fn stats(&self) -> PreparedStats {
        PreparedStats {
            distinct: self.ids.lock().len(),
            prepares: self.prepares.load(Ordering::Relaxed),
            reuses: self.reuses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            replans: self.replans.load(Ordering::Relaxed),
        }
    }

    /// The server-side id of a (text, parameter types) key, assigned on first sight.
    pub fn id_for(&self, key: &[u8]) -> u64 {
        let mut ids = self.ids.lock();
        if let Some(id) = ids.get(key) {
            return *id;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        ids.push(Bytes::copy_from_slice(key), id);
        id
    }

    /// A statement was prepared on a server connection under pgsplit's name.
    pub fn count_prepare(&self) {
        self.prepares.fetch_add(1, Ordering::Relaxed);
    }

    /// A client's Parse was answered without the server: the connection had the statement.
    pub fn count_reuse(&self) {
        self.reuses.fetch_add(1, Ordering::Relaxed);
    }

    /// A statement was closed on a connection whose LRU was full.
    pub fn count_eviction(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ran again after a reused statement's result type changed.
    pub fn count_replan(&self) {
        self.replans.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_text_and_new_ids_after_forgetting() {
        let ids = StatementIds::default();
        let first = ids.id_for(b"select 1\0\0\0");
        assert_eq!(ids.id_for(b"select 1\0\0\0"), first);
        assert_ne!(ids.id_for(b"select 2\0\0\0"), first);
        for n in 0..DISTINCT_REMEMBERED {
            ids.id_for(format!("select {n} + 1\0\0\0").as_bytes());
        }
        assert_eq!(ids.stats().distinct, DISTINCT_REMEMBERED, "the registry is bounded");
        let again = ids.id_for(b"select 1\0\0\0");
        assert!(again > first, "a forgotten text gets a fresh id, never one in use");
    }
}
