//! Role changes carried into the pools. When a node stops being the elected primary (another was
//! elected), or is fenced or found to be of another cluster, the server connections pgsplit holds
//! to it are retired: idle ones closed at once, lent ones when they come back, so none takes
//! another request there. The monitor decides the roles and the pool manager owns the pools;
//! this task only carries one to the other.

use std::collections::HashMap;
use std::sync::Arc;

use crate::monitor::{Role, Topology};
use crate::state::Shared;

/// What was seen of one database at the last look.
#[derive(Default)]
struct Seen {
    /// The node elected last.
    primary: Option<Arc<str>>,
    /// Each node's role, by address.
    roles: HashMap<Arc<str>, Role>,
}

/// Watches every database's topology on the monitor's beat (each check interval, as its rounds
/// publish), until the task is dropped.
pub async fn follow_roles(ctx: Arc<Shared>) {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        let config = ctx.config();
        let monitor = ctx.monitor();
        for db in config.settings.databases.values() {
            let Some(topology) = monitor.topology(&db.name) else { continue };
            for (node, why) in to_retire(seen.entry(db.name.clone()).or_default(), &topology) {
                let closed = ctx.pools.retire_node(&node);
                tracing::warn!(database = %db.name, %node, why, closed, "closing server connections to the node");
            }
        }
        let next = monitor.beat().next_after(tokio::time::Instant::now());
        drop((config, monitor));
        tokio::time::sleep_until(next).await;
    }
}

/// The nodes whose connections must go since the last look, and why; updates `seen`.
fn to_retire(seen: &mut Seen, topology: &Topology) -> Vec<(Arc<str>, &'static str)> {
    let mut retire = Vec::new();
    for (_, node) in topology.nodes() {
        let before = seen.roles.insert(node.addr.clone(), node.role);
        if matches!(node.role, Role::Fenced | Role::Foreign) && before != Some(node.role) {
            retire.push((node.addr.clone(), node.role.name()));
        }
    }
    let elected = topology.elected().map(|n| n.addr.clone());
    if let Some(now) = elected {
        if let Some(old) = seen.primary.replace(now.clone()).filter(|old| *old != now) {
            if !retire.iter().any(|(n, _)| *n == old) {
                retire.push((old, "no longer the primary"));
            }
        }
    }
    retire
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::monitor::topology::{Freshness, Sample};

    fn sample(taken: Instant, in_recovery: bool, timeline: u32) -> Option<Sample> {
        Some(Sample::caught_up(taken, in_recovery, Some(timeline), Some(7)))
    }

    #[test]
    fn a_deposed_primary_is_retired_once_and_a_returning_fenced_one_again() {
        let limits = Freshness { max_lag: Duration::MAX, max_lag_bytes: u64::MAX, stale_after: Duration::MAX };
        let mut t = Topology::new("p".into(), vec![("r0".into(), 1), ("r1".into(), 1)]);
        let mut seen = Seen::default();
        let now = Instant::now();
        t = t.next(sample(now, false, 1), &[sample(now, true, 1), sample(now, true, 1)], now, limits);
        assert_eq!(to_retire(&mut seen, &t), vec![], "the first election retires nothing");
        assert_eq!(to_retire(&mut seen, &t), vec![]);
        // The primary dies and replica 0 is promoted: the old primary's connections go.
        t = t.next(None, &[sample(now, false, 2), sample(now, true, 1)], now, limits);
        assert_eq!(to_retire(&mut seen, &t), vec![("p".into(), "no longer the primary")]);
        assert_eq!(to_retire(&mut seen, &t), vec![], "once");
        // It comes back still a primary, on the old timeline: fenced, and retired again (a
        // connection may have been opened to it since).
        t = t.next(sample(now, false, 1), &[sample(now, false, 2), sample(now, true, 2)], now, limits);
        assert_eq!(t.primary.role, Role::Fenced);
        assert_eq!(to_retire(&mut seen, &t), vec![("p".into(), "fenced")]);
        assert_eq!(to_retire(&mut seen, &t), vec![]);
        // It rejoins as a standby: nothing to retire.
        t = t.next(sample(now, true, 2), &[sample(now, false, 2), sample(now, true, 2)], now, limits);
        assert_eq!(to_retire(&mut seen, &t), vec![]);
    }
}
