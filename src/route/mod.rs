//! Where a request goes. The router is pure: it takes what the classifier found, the session's
//! consistency needs, the policy and a topology snapshot, and returns a [`Decision`]; later stages
//! never look at the SQL again.

pub mod balance;
pub mod policy;
pub mod rules;
pub mod stats;

pub use policy::{decide, Policy, Request, RequestClass};
pub use rules::RuleContext;

use crate::monitor::NodeId;

/// The node a request is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// The database's primary: the node elected from the nodes' own answers.
    Primary,
    /// A configured node serving reads as a standby: one of the `replicas`, or the configured
    /// primary once it rejoined as a standby.
    Standby(NodeId),
}

/// As logs write it: `primary`, `replica 2` (by its position in `replicas`, from 1) or
/// `configured primary as a standby`.
impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Primary => f.write_str("primary"),
            Route::Standby(NodeId::Replica(i)) => write!(f, "replica {}", i + 1),
            Route::Standby(NodeId::Primary) => f.write_str("configured primary as a standby"),
        }
    }
}

/// Why a request took its route; every decision is counted by target and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The request writes, or could not be classified and might.
    Write,
    /// Part of, or the start of, a read-write transaction.
    Transaction,
    /// A READ ONLY transaction or a read-only session, served as a whole by one node.
    ReadOnlyTransaction,
    /// A plain read, balanced.
    Read,
    /// A read that had to see the session's own writes (or a demanded LSN).
    ReadYourWrites,
    /// No replica was fresh enough; `stale_fallback` sent it to the primary.
    Fallback,
    /// A routing rule decided.
    Rule(usize),
    /// A hint in the statement or the session decided.
    Hint,
    /// Session pooling, or a database without replicas.
    PrimaryOnly,
}

impl Reason {
    /// A short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Write => "write",
            Reason::Transaction => "transaction",
            Reason::ReadOnlyTransaction => "read_only_transaction",
            Reason::Read => "read",
            Reason::ReadYourWrites => "read_your_writes",
            Reason::Fallback => "fallback",
            Reason::Rule(_) => "rule",
            Reason::Hint => "hint",
            Reason::PrimaryOnly => "primary_only",
        }
    }
}

/// A routing decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it there.
    Go(Route, Reason),
    /// No replica qualifies yet for a read needing this LSN: wait (up to `wait_timeout`), then decide again.
    Wait { min_lsn: Option<u64>, reason: Reason },
    /// Refuse the read: no replica qualifies and `stale_fallback = "error"`.
    Refuse(Reason),
}
