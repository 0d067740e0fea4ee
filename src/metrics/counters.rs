//! Counters kept by sessions and the listener: plain atomics (a mutex only on error paths), read
//! by a scrape and by the admin console's SHOW STATS.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::classify::Pin;

/// Why a client connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong password or unknown user.
    Auth,
    /// The database is not configured.
    UnknownDatabase,
    /// `limits.max_clients` reached.
    MaxClients,
    /// Plaintext while TLS is required, or a TLS handshake that failed.
    Tls,
    /// The startup never completed (timeout, garbage, protocol error).
    Handshake,
    /// pgsplit is shutting down or paused.
    Unavailable,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::Auth,
        Refusal::UnknownDatabase,
        Refusal::MaxClients,
        Refusal::Tls,
        Refusal::Handshake,
        Refusal::Unavailable,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Auth => "auth",
            Refusal::UnknownDatabase => "unknown_database",
            Refusal::MaxClients => "max_clients",
            Refusal::Tls => "tls",
            Refusal::Handshake => "handshake",
            Refusal::Unavailable => "unavailable",
        }
    }
}

const PINS: [Pin; 6] =
    [Pin::Listen, Pin::SqlPrepare, Pin::AdvisoryLock, Pin::TempTable, Pin::HoldCursor, Pin::PreparedTransaction];

/// The `reason` label of a pin.
pub fn pin_label(pin: Pin) -> &'static str {
    match pin {
        Pin::Listen => "listen",
        Pin::SqlPrepare => "sql_prepare",
        Pin::AdvisoryLock => "advisory_lock",
        Pin::TempTable => "temp_table",
        Pin::HoldCursor => "hold_cursor",
        Pin::PreparedTransaction => "prepared_transaction",
    }
}

/// Process-wide counters of one pgsplit instance.
#[derive(Debug, Default)]
pub struct Counters {
    refused: [AtomicU64; Refusal::ALL.len()],
    pinned: [AtomicU64; PINS.len()],
    /// ErrorResponses pgsplit itself sent, by SQLSTATE class (forwarded ones are counted per pool).
    errors: Mutex<BTreeMap<String, u64>>,
    misroute_retries: AtomicU64,
    failover_retries: AtomicU64,
    /// LSN probes sent behind a write or commit, and behind a read.
    lsn_probes: [AtomicU64; 2],
}

impl Counters {
    /// Counts a refused client connection.
    pub fn refused(&self, why: Refusal) {
        self.refused[Refusal::ALL.iter().position(|r| *r == why).unwrap_or(0)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a client pinned to its server connection.
    pub fn pinned(&self, pin: Pin) {
        self.pinned[PINS.iter().position(|p| *p == pin).unwrap_or(0)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error pgsplit sent to a client.
    pub fn error(&self, sqlstate: &str) {
        let class = sqlstate.get(..2).unwrap_or("XX").to_string();
        *self.errors.lock().entry(class).or_default() += 1;
    }

    /// Counts an LSN probe sent: behind a read (`at_read`), else behind a write or commit.
    pub fn lsn_probe(&self, at_read: bool) {
        self.lsn_probes[usize::from(at_read)].fetch_add(1, Ordering::Relaxed);
    }

    /// LSN probes sent, by the `at` label.
    pub fn lsn_probes(&self) -> [(&'static str, u64); 2] {
        let n = |i: usize| self.lsn_probes[i].load(Ordering::Relaxed);
        [("commit", n(0)), ("read", n(1))]
    }

    /// Counts a request retried on the primary after a replica refused it as a write.
    pub fn misroute_retry(&self) {
        self.misroute_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a write retried on a newly elected primary after the old one refused it (demoted).
    pub fn failover_retry(&self) {
        self.failover_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes retried after a failover.
    pub fn failover_retries(&self) -> u64 {
        self.failover_retries.load(Ordering::Relaxed)
    }

    /// Refusals by reason label.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL.iter().zip(&self.refused).map(|(r, n)| (r.label(), n.load(Ordering::Relaxed))).collect()
    }

    /// Pins by reason label.
    pub fn pins(&self) -> Vec<(&'static str, u64)> {
        PINS.iter().zip(&self.pinned).map(|(p, n)| (pin_label(*p), n.load(Ordering::Relaxed))).collect()
    }

    /// Errors pgsplit sent, by SQLSTATE class.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }

    /// Requests retried on the primary.
    pub fn misroute_retries(&self) -> u64 {
        self.misroute_retries.load(Ordering::Relaxed)
    }
}
