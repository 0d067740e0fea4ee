//! What changed between two topology snapshots, as the monitor logs it: the primary lost or back
//! (writes stop or resume), a node's role flipping (a failover under way), and replicas gaining or
//! losing reads. Finding the changes is pure; logging them is one line each.

use std::sync::Arc;
use std::time::Duration;

use super::election::{NodeId, Role};
use super::topology::{NodeStatus, Topology};

/// One change worth a log line.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The primary stopped answering (or its samples went stale): writes fail.
    PrimaryLost { node: Arc<str> },
    /// The configured primary answers in recovery: demoted, or the config names a standby.
    PrimaryInRecovery { node: Arc<str> },
    /// The primary answers as a primary again after being lost or in recovery.
    PrimaryBack { node: Arc<str> },
    /// A replica answers out of recovery: promoted, so it may be the new primary.
    ReplicaPromoted { node: Arc<str> },
    /// A node seen out of recovery is a replica again.
    ReplicaInRecovery { node: Arc<str> },
    /// A replica started or stopped taking reads.
    Eligibility { node: Arc<str>, eligible: bool, up: bool, lag_bytes: Option<u64>, lag: Option<Duration> },
    /// Another node than before is elected primary (not the first election at start-up);
    /// `old_seen` is how long ago the node elected before last answered.
    Elected { node: Arc<str>, timeline: Option<u32>, old_seen: Option<Duration> },
    /// A standby stopped taking reads because it is behind the primary's timeline: it may still
    /// follow the old primary and hold writes the new one never had.
    BehindTimeline { node: Arc<str>, timeline: Option<u32>, primary_timeline: u32 },
    /// A node is fenced (out of recovery but deposed) or found to be of another cluster.
    Fenced { node: Arc<str>, role: Role, timeline: Option<u32> },
    /// More than one node answers out of recovery.
    SplitBrain,
}

/// The changes from `old` to `new`, primary first. A replica whose role flips is reported as
/// that, not also as an eligibility change.
pub fn changes(old: &Topology, new: &Topology) -> Vec<Change> {
    let mut found = Vec::new();
    let (a, b) = (&old.primary, &new.primary);
    let node = || b.addr.clone();
    let elected = |t: &NodeStatus| t.up && t.role == Role::Primary;
    if b.in_recovery == Some(true) && a.in_recovery != Some(true) {
        found.push(Change::PrimaryInRecovery { node: node() });
    } else if a.up && !b.up {
        found.push(Change::PrimaryLost { node: node() });
    } else if !elected(a) && elected(b) && (a.sampled.is_some() || a.in_recovery.is_some()) {
        // Not on the first sample after start-up: the primary was never lost then.
        found.push(Change::PrimaryBack { node: node() });
    } else if a.in_recovery == Some(true) && b.in_recovery == Some(true) {
        // The configured primary serving as a standby: its reads come and go like a replica's.
        found.extend(replica_change(a, b));
    }
    for (a, b) in old.replicas.iter().zip(&new.replicas) {
        found.extend(replica_change(a, b));
    }
    found = found.into_iter().map(|c| for_timeline(c, new)).collect();
    found.extend(election_changes(old, new));
    found
}

/// A new primary elected, nodes fenced, split brain: each once, when it starts.
fn election_changes(old: &Topology, new: &Topology) -> Vec<Change> {
    let mut found = Vec::new();
    let (was, now) = (old.election.primary, new.election.primary);
    if let Some(id) = now.filter(|&id| was != Some(id) && (was.is_some() || id != NodeId::Primary)) {
        if let Some(node) = new.node(id) {
            let last = old.election.last_elected().and_then(|id| old.node(id)).and_then(|n| n.sampled);
            let old_seen = last.map(|at| new_time(new).saturating_duration_since(at));
            found.push(Change::Elected { node: node.addr.clone(), timeline: node.timeline, old_seen });
        }
    }
    let nodes = std::iter::once((&old.primary, &new.primary)).chain(old.replicas.iter().zip(&new.replicas));
    for (a, b) in nodes {
        if matches!(b.role, Role::Fenced | Role::Foreign) && a.role != b.role {
            found.push(Change::Fenced { node: b.addr.clone(), role: b.role, timeline: b.timeline });
        }
    }
    if new.election.split_brain && !old.election.split_brain {
        found.push(Change::SplitBrain);
    }
    found
}

/// When the round behind `t` ran: its newest sample.
fn new_time(t: &Topology) -> std::time::Instant {
    t.nodes().filter_map(|(_, n)| n.sampled).max().unwrap_or_else(std::time::Instant::now)
}

/// A standby losing reads for being behind the primary's timeline says so, not only "lagging".
fn for_timeline(change: Change, new: &Topology) -> Change {
    let primary_timeline = new.election.max_timeline;
    match change {
        Change::Eligibility { node, eligible: false, .. }
            if new.nodes().any(|(_, n)| n.addr == node && n.timeline.is_some_and(|t| t < primary_timeline)) =>
        {
            let timeline = new.nodes().find(|(_, n)| n.addr == node).and_then(|(_, n)| n.timeline);
            Change::BehindTimeline { node, timeline, primary_timeline }
        }
        other => other,
    }
}

fn replica_change(a: &NodeStatus, b: &NodeStatus) -> Option<Change> {
    let node = b.addr.clone();
    match (a.in_recovery, b.in_recovery) {
        (old, Some(false)) if old != Some(false) => Some(Change::ReplicaPromoted { node }),
        (Some(false), Some(true)) => Some(Change::ReplicaInRecovery { node }),
        _ if a.eligible != b.eligible => {
            Some(Change::Eligibility { node, eligible: b.eligible, up: b.up, lag_bytes: b.lag_bytes, lag: b.lag_time })
        }
        _ => None,
    }
}

/// Logs each change once (the monitor's span names the database): losing the primary is an
/// error, a promotion a warning, the rest info.
pub fn log(changes: &[Change]) {
    for change in changes {
        match change {
            Change::PrimaryLost { node } => tracing::error!(
                %node,
                "configured primary lost: writes wait (up to failover_timeout) for it or for another node elected primary"
            ),
            Change::PrimaryInRecovery { node } => tracing::warn!(
                %node,
                "the configured primary is in recovery (a standby): writes go to the node elected primary, and it takes reads once it catches up"
            ),
            Change::PrimaryBack { node } => tracing::info!(%node, "primary is back: writes go through again"),
            Change::ReplicaPromoted { node } => {
                tracing::warn!(%node, "replica is out of recovery (promoted): it gets no reads")
            }
            Change::ReplicaInRecovery { node } => {
                tracing::info!(%node, "node is in recovery again: a replica once it catches up")
            }
            Change::Eligibility { node, eligible, up, lag_bytes, lag } => {
                let lag_seconds = lag.map(|d| d.as_secs_f64());
                tracing::info!(replica = %node, eligible, up, lag_bytes, lag_seconds, "replica eligibility changed")
            }
            Change::Elected { node, timeline, old_seen } => {
                let old_primary_last_seen_s = old_seen.map(|d| d.as_secs_f64());
                tracing::warn!(%node, timeline, old_primary_last_seen_s, "new primary elected: writes go to it")
            }
            Change::BehindTimeline { node, timeline, primary_timeline } => tracing::warn!(
                %node,
                timeline,
                primary_timeline,
                "standby behind the primary's timeline (it may still follow the old primary): no reads until it follows the new one"
            ),
            Change::Fenced { node, role: Role::Foreign, .. } => tracing::error!(
                %node,
                "node belongs to another cluster (its system identifier differs): it is never used"
            ),
            Change::Fenced { node, timeline, .. } => tracing::error!(
                %node,
                timeline,
                "node is out of recovery but not the elected primary: fenced (no writes, no reads) until it rejoins as a standby"
            ),
            Change::SplitBrain => {
                tracing::error!("more than one node answers as a primary; only the elected one gets writes")
            }
        }
    }
}

#[cfg(test)]
mod tests;
