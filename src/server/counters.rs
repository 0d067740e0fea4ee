//! What one pool's connections did: plain atomics bumped on the request path, plus the two
//! latency histograms. Shared by the pool and every connection it opened.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::metrics::Latency;

/// Counters of one pool. Times are in microseconds.
#[derive(Debug, Default)]
pub struct PoolCounters {
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub checkouts: AtomicU64,
    pub checkout_timeouts: AtomicU64,
    pub wait_us: AtomicU64,
    pub queries: AtomicU64,
    pub transactions: AtomicU64,
    pub query_us: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Server ErrorResponses forwarded to clients, by SQLSTATE class.
    errors: Mutex<BTreeMap<[u8; 2], u64>>,
    /// How long checkouts waited, for `pgsplit_checkout_wait_seconds`.
    pub wait: Latency,
    /// How long requests took on the server, for `pgsplit_query_duration_seconds`.
    pub query: Latency,
}

/// A consistent-enough copy of the counters, for SHOW STATS and scrapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub connects: u64,
    pub connect_failures: u64,
    pub checkouts: u64,
    pub checkout_timeouts: u64,
    pub wait_us: u64,
    pub queries: u64,
    pub transactions: u64,
    pub query_us: u64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

impl PoolCounters {
    /// A checkout that got a connection after `waited`.
    pub fn checked_out(&self, waited: Duration) {
        self.checkouts.fetch_add(1, Ordering::Relaxed);
        self.wait_us.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        self.wait.record(waited);
    }

    /// A ReadyForQuery forwarded to a client; `took` is the request's time on the server, if
    /// known; `idle` says a transaction ended with it.
    pub fn ready(&self, took: Option<Duration>, idle: bool) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        if idle {
            self.transactions.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(took) = took {
            self.query_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
            self.query.record(took);
        }
    }

    /// A server ErrorResponse forwarded to a client, by its SQLSTATE (`body` of the message).
    pub fn error(&self, sqlstate: Option<&[u8]>) {
        let class = match sqlstate {
            Some([a, b, ..]) => [*a, *b],
            _ => *b"XX",
        };
        *self.errors.lock().entry(class).or_default() += 1;
    }

    /// Forwarded errors by SQLSTATE class.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors.lock().iter().map(|(c, n)| (String::from_utf8_lossy(c).into_owned(), *n)).collect()
    }

    /// A copy of the plain counters.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            checkouts: get(&self.checkouts),
            checkout_timeouts: get(&self.checkout_timeouts),
            wait_us: get(&self.wait_us),
            queries: get(&self.queries),
            transactions: get(&self.transactions),
            query_us: get(&self.query_us),
            sent_bytes: get(&self.sent_bytes),
            received_bytes: get(&self.received_bytes),
        }
    }
}
