//! A bounded LRU of classified query texts, so a repeated query is not classified again.
//!
//! Keyed by the text with its literals replaced (`key.rs`), stored whole, so two keys with the
//! same hash never share an answer, and hashed with a per-process random key, so clients cannot
//! aim collisions at it.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use super::{CacheStats, Classification};

/// Most text the cache holds in all, whatever its capacity in entries: long texts evict old ones.
const MAX_CACHED_BYTES: usize = 32 << 20;

/// The LRU and the bytes of text it holds.
struct Entries {
    lru: LruCache<Box<str>, Arc<Classification>, ahash::RandomState>,
    bytes: usize,
}

/// The cache and its counters; a capacity of 0 keeps nothing but still counts.
pub(crate) struct Cache {
    entries: Option<Mutex<Entries>>,
    hits: AtomicU64,
    misses: AtomicU64,
    lexed: AtomicU64,
}

impl Cache {
    /// An empty cache holding at most `capacity` texts.
    pub fn new(capacity: usize) -> Self {
        let entries = NonZeroUsize::new(capacity)
            .map(|c| Mutex::new(Entries { lru: LruCache::with_hasher(c, ahash::RandomState::new()), bytes: 0 }));
        Cache { entries, hits: AtomicU64::new(0), misses: AtomicU64::new(0), lexed: AtomicU64::new(0) }
    }

    /// Whether it keeps anything: a capacity of 0 only counts.
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The answer kept for exactly this key, counted as a hit.
    pub fn get(&self, sql: &str) -> Option<Arc<Classification>> {
        let hit = self.entries.as_ref()?.lock().lru.get(sql).cloned();
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Counts a hit answered outside the cache, from a classification it gave before.
    pub fn count_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps the answer for a key the cache could not answer, counted as a miss; `None` for a
    /// text that may not be kept (see `key::cacheable`) is only counted.
    pub fn put(&self, key: Option<&str>, classification: &Arc<Classification>) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let (Some(entries), Some(sql)) = (self.entries.as_ref(), key) else { return };
        let mut entries = entries.lock();
        entries.bytes += sql.len();
        // `push` hands back what it displaced: the least recent entry, or this text's old entry.
        if let Some((old, _)) = entries.lru.push(sql.into(), Arc::clone(classification)) {
            entries.bytes -= old.len();
        }
        while entries.bytes > MAX_CACHED_BYTES {
            let Some((old, _)) = entries.lru.pop_lru() else { break };
            entries.bytes -= old.len();
        }
    }

    /// Counts a text the lexer decided alone; such texts are not kept.
    pub fn count_lexed(&self) {
        self.lexed.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters and the number of texts kept.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            lexed: self.lexed.load(Ordering::Relaxed),
            entries: self.entries.as_ref().map_or(0, |e| e.lock().lru.len()),
        }
    }
}
