//! Counts of routing decisions by target and reason, kept as plain atomics so counting costs the
//! request path one relaxed add; the metrics endpoint reads them.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Reason, Route};

const REASONS: [Reason; 9] = [
    Reason::Write,
    Reason::Transaction,
    Reason::ReadOnlyTransaction,
    Reason::Read,
    Reason::ReadYourWrites,
    Reason::Fallback,
    Reason::Rule(0),
    Reason::Hint,
    Reason::PrimaryOnly,
];

/// Decisions counted by target (primary, replica) and reason.
#[derive(Debug, Default)]
pub struct DecisionCounts {
    counts: [[AtomicU64; REASONS.len()]; 2],
}

/// One row of [`DecisionCounts::snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionCount {
    pub target: &'static str,
    pub reason: &'static str,
    pub count: u64,
}

impl DecisionCounts {
    /// Counts one decision.
    pub fn count(&self, route: Route, reason: Reason) {
        self.counts[target_index(route)][reason_index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for a target and reason.
    pub fn get(&self, route: Route, reason: Reason) -> u64 {
        self.counts[target_index(route)][reason_index(reason)].load(Ordering::Relaxed)
    }

    /// Every non-zero count.
    pub fn snapshot(&self) -> Vec<DecisionCount> {
        let mut out = Vec::new();
        for (t, target) in ["primary", "replica"].into_iter().enumerate() {
            for (r, reason) in REASONS.iter().enumerate() {
                let count = self.counts[t][r].load(Ordering::Relaxed);
                if count > 0 {
                    out.push(DecisionCount { target, reason: reason.label(), count });
                }
            }
        }
        out
    }
}

fn target_index(route: Route) -> usize {
    match route {
        Route::Primary => 0,
        Route::Standby(_) => 1,
    }
}

fn reason_index(reason: Reason) -> usize {
    REASONS
        .iter()
        .position(|r| std::mem::discriminant(r) == std::mem::discriminant(&reason))
        .expect("every reason is listed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::NodeId;

    #[test]
    fn counts_by_target_and_reason() {
        let c = DecisionCounts::default();
        c.count(Route::Standby(NodeId::Replica(1)), Reason::Read);
        c.count(Route::Standby(NodeId::Replica(0)), Reason::Read);
        c.count(Route::Primary, Reason::Rule(3));
        assert_eq!(c.get(Route::Standby(NodeId::Replica(0)), Reason::Read), 2);
        assert_eq!(c.get(Route::Primary, Reason::Rule(0)), 1);
        assert_eq!(c.snapshot().len(), 2);
    }
}
