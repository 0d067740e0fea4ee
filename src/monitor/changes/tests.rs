use std::time::Instant;

use super::*;

/// A healthy cluster: the primary up, both replicas streaming and taking reads.
fn healthy() -> Topology {
    let mut t = Topology::new("p:1".into(), vec![("r1:1".into(), 1), ("r2:1".into(), 1)]);
    t.primary.up = true;
    t.primary.role = Role::Primary;
    t.primary.in_recovery = Some(false);
    t.primary.sampled = Some(Instant::now());
    for r in &mut t.replicas {
        r.up = true;
        r.in_recovery = Some(true);
        r.eligible = true;
    }
    t
}

#[test]
fn nothing_changed_nothing_logged() {
    assert_eq!(changes(&healthy(), &healthy()), vec![]);
}

#[test]
fn the_first_samples_after_start_are_not_news() {
    let start = Topology::new("p:1".into(), vec![("r1:1".into(), 1), ("r2:1".into(), 1)]);
    let mut first = healthy();
    for r in &mut first.replicas {
        r.eligible = false;
    }
    assert_eq!(changes(&start, &first), vec![]);
}

#[test]
fn losing_the_primary_and_getting_it_back() {
    let mut down = healthy();
    down.primary.up = false;
    down.primary.eligible = false;
    down.primary.in_recovery = None;
    assert_eq!(changes(&healthy(), &down), vec![Change::PrimaryLost { node: "p:1".into() }]);
    assert_eq!(changes(&down, &down), vec![]);
    assert_eq!(changes(&down, &healthy()), vec![Change::PrimaryBack { node: "p:1".into() }]);
}

#[test]
fn a_demoted_primary_is_one_change() {
    let mut demoted = healthy();
    demoted.primary.role = Role::Standby;
    demoted.primary.in_recovery = Some(true);
    assert_eq!(changes(&healthy(), &demoted), vec![Change::PrimaryInRecovery { node: "p:1".into() }]);
    assert_eq!(changes(&demoted, &demoted), vec![]);
    // Serving reads as a standby, it gains and loses them like any replica.
    let mut streaming = demoted.clone();
    streaming.primary.eligible = true;
    let gained = changes(&demoted, &streaming);
    assert!(matches!(&gained[..], [Change::Eligibility { eligible: true, .. }]), "{gained:?}");
    assert_eq!(changes(&demoted, &healthy()), vec![Change::PrimaryBack { node: "p:1".into() }]);
}

#[test]
fn a_configured_primary_back_but_fenced_is_not_back() {
    let mut down = healthy();
    down.primary.up = false;
    down.primary.in_recovery = None;
    let mut fenced = healthy();
    fenced.primary.role = Role::Fenced;
    let found = changes(&down, &fenced);
    assert!(!found.contains(&Change::PrimaryBack { node: "p:1".into() }), "{found:?}");
    assert!(found.iter().any(|c| matches!(c, Change::Fenced { .. })), "{found:?}");
}

#[test]
fn a_promotion_is_one_change_not_also_an_eligibility_one() {
    let mut promoted = healthy();
    promoted.replicas[0].in_recovery = Some(false);
    promoted.replicas[0].eligible = false;
    assert_eq!(changes(&healthy(), &promoted), vec![Change::ReplicaPromoted { node: "r1:1".into() }]);
    assert_eq!(changes(&promoted, &promoted), vec![]);
    let mut rejoined = healthy();
    rejoined.replicas[0].eligible = false;
    assert_eq!(changes(&promoted, &rejoined), vec![Change::ReplicaInRecovery { node: "r1:1".into() }]);
}

#[test]
fn failover_shows_the_primary_lost_and_the_replica_promoted() {
    let mut after = healthy();
    after.primary.up = false;
    after.primary.in_recovery = None;
    after.replicas[1].in_recovery = Some(false);
    after.replicas[1].eligible = false;
    assert_eq!(
        changes(&healthy(), &after),
        vec![Change::PrimaryLost { node: "p:1".into() }, Change::ReplicaPromoted { node: "r2:1".into() }]
    );
}

#[test]
fn a_lagging_replica_loses_reads() {
    let mut lagging = healthy();
    lagging.replicas[1].eligible = false;
    lagging.replicas[1].lag_bytes = Some(1 << 20);
    let found = changes(&healthy(), &lagging);
    assert_eq!(
        found,
        vec![Change::Eligibility {
            node: "r2:1".into(),
            eligible: false,
            up: true,
            lag_bytes: Some(1 << 20),
            lag: None
        }]
    );
}

#[test]
fn a_failover_names_the_new_primary_how_long_the_old_was_gone_and_the_standby_left_behind() {
    use crate::monitor::topology::{Freshness, Sample};
    use std::time::Duration;
    let limits = Freshness { max_lag: Duration::MAX, max_lag_bytes: u64::MAX, stale_after: Duration::from_secs(1) };
    let sample = |taken, in_recovery, timeline| Some(Sample::caught_up(taken, in_recovery, Some(timeline), Some(7)));
    let start = Instant::now();
    let mut t = Topology::new("p:1".into(), vec![("r1:1".into(), 1), ("r2:1".into(), 1)]);
    for i in 1..=4 {
        let at = start + Duration::from_millis(i);
        t = t.next(sample(at, false, 1), &[sample(at, true, 1), sample(at, true, 1)], at, limits);
    }
    assert!(t.replicas[1].eligible);
    let last_seen = start + Duration::from_millis(4);
    let at = last_seen + Duration::from_secs(3);
    let after = t.next(None, &[sample(at, false, 2), sample(at, true, 1)], at, limits);
    let found = changes(&t, &after);
    let elected = found.iter().find_map(|c| match c {
        Change::Elected { node, timeline, old_seen } => Some((node.clone(), *timeline, *old_seen)),
        _ => None,
    });
    assert_eq!(elected, Some(("r1:1".into(), Some(2), Some(Duration::from_secs(3)))), "{found:?}");
    let behind = Change::BehindTimeline { node: "r2:1".into(), timeline: Some(1), primary_timeline: 2 };
    assert!(found.contains(&behind), "{found:?}");
}
