use std::collections::VecDeque;

use super::*;

const LIMITS: Freshness =
    Freshness { max_lag: Duration::from_secs(1), max_lag_bytes: 1000, stale_after: Duration::from_millis(500) };

fn primary(now: Instant, lsn: u64) -> Option<Sample> {
    Some(Sample {
        asked: now,
        taken: now,
        in_recovery: false,
        current_lsn: Some(lsn),
        insert_lsn: Some(lsn),
        replay_lsn: None,
        receive_lsn: None,
        replay_age: None,
        timeline: None,
        system_id: None,
        wal_pages: None,
    })
}

fn replica(now: Instant, replay: u64, age: f64) -> Option<Sample> {
    Some(Sample {
        asked: now,
        taken: now,
        in_recovery: true,
        current_lsn: None,
        insert_lsn: None,
        replay_lsn: Some(replay),
        receive_lsn: Some(replay),
        replay_age: Some(age),
        timeline: None,
        system_id: None,
        wal_pages: None,
    })
}

fn topo() -> Topology {
    Topology::new("p:1".into(), vec![("r1:1".into(), 1), ("r2:1".into(), 1)])
}

/// Runs `n` rounds with the same samples.
fn rounds(mut t: Topology, n: usize, p: u64, r1: (u64, f64), r2: (u64, f64)) -> Topology {
    for _ in 0..n {
        let now = Instant::now();
        t = t.next(primary(now, p), &[replica(now, r1.0, r1.1), replica(now, r2.0, r2.1)], now, LIMITS);
    }
    t
}

#[test]
fn lag_sign_and_idle_primary() {
    let now = Instant::now();
    let none = VecDeque::new();
    let head = |lsn| Head { lsn, history: &none, now, timeline: 0 };
    let s = replica(now, 900, 30.0).unwrap();
    // No history covers its position: the replay timestamp stands in.
    assert_eq!(lag(s, &head(Some(1000))), (Some(100), Some(Duration::from_secs(30))));
    // Caught up: an old replay timestamp is not lag.
    assert_eq!(lag(s, &head(Some(900))), (Some(0), Some(Duration::ZERO)));
    // A replica ahead of a stale head never shows negative lag.
    assert_eq!(lag(s, &head(Some(800))).0, Some(0));
    assert_eq!(lag(s, &head(None)), (None, None));
}

#[test]
fn lag_in_time_is_how_long_ago_the_head_passed_the_replica() {
    let now = Instant::now();
    let history: VecDeque<(Instant, u64)> =
        [(now - Duration::from_secs(60), 500), (now - Duration::from_millis(300), 900), (now, 1000)].into();
    let head = Head { lsn: Some(1000), history: &history, now, timeline: 0 };
    // Replayed up to 900 after an idle minute: 30 s since its last replayed commit, but the head
    // only moved past 900 a moment ago.
    let s = replica(now, 900, 30.0).unwrap();
    assert_eq!(lag(s, &head), (Some(100), Some(Duration::ZERO)));
    let s = replica(now, 899, 30.0).unwrap();
    assert_eq!(lag(s, &head), (Some(101), Some(Duration::from_millis(300))));
    let s = replica(now, 600, 90.0).unwrap();
    assert_eq!(lag(s, &head), (Some(400), Some(Duration::from_millis(300))));
    // Older than the history: the replay timestamp, never an underestimate from the history.
    let s = replica(now, 400, 90.0).unwrap();
    assert_eq!(lag(s, &head), (Some(600), Some(Duration::from_secs(90))));
}

#[test]
fn a_replica_catching_up_after_an_idle_primary_stays_eligible() {
    let t = rounds(topo(), 5, 1000, (1000, 0.0), (1000, 0.0));
    assert!(t.replicas[0].eligible);
    // The primary commits after a long idle spell; the replica has not replayed it yet and its
    // last replayed commit is 600 s old. It is a few bytes and milliseconds behind, not 600 s.
    let t = rounds(t, 1, 1200, (1000, 600.0), (1200, 0.0));
    assert!(t.replicas[0].eligible, "{:?}", t.replicas[0]);
}

#[test]
fn replicas_need_several_good_samples_then_stay() {
    let t = rounds(topo(), RECOVER_SAMPLES as usize - 1, 1000, (1000, 0.0), (1000, 0.0));
    assert!(!t.replicas[0].eligible, "not before {RECOVER_SAMPLES} good samples");
    let t = rounds(t, 1, 1000, (1000, 0.0), (1000, 0.0));
    assert!(t.replicas[0].eligible && t.replicas[1].eligible);
    assert_eq!(t.primary.state(), "primary");
    assert!(!t.primary.eligible, "the elected primary takes no reads as a standby");
}

#[test]
fn lagging_replica_drops_at_once_and_returns_with_hysteresis() {
    let t = rounds(topo(), 5, 1000, (1000, 0.0), (1000, 0.0));
    let t = rounds(t, 1, 5000, (1000, 0.2), (5000, 0.0));
    assert!(!t.replicas[0].eligible, "4000 bytes behind is past 1000");
    assert!(t.replicas[1].eligible);
    let t = rounds(t, 1, 5000, (4500, 2.0), (5000, 0.0));
    assert!(!t.replicas[0].eligible, "within bytes but two seconds behind");
    let t = rounds(t, 1, 5000, (5000, 2.0), (5000, 0.0));
    assert!(!t.replicas[0].eligible, "first good sample is not enough");
    let t = rounds(t, RECOVER_SAMPLES as usize, 5000, (5000, 2.0), (5000, 0.0));
    assert!(t.replicas[0].eligible);
}

#[test]
fn failed_or_stale_samples_fail_closed() {
    let t = rounds(topo(), 5, 1000, (1000, 0.0), (1000, 0.0));
    let now = Instant::now();
    let t2 = t.next(primary(now, 1000), &[None, replica(now, 1000, 0.0)], now, LIMITS);
    assert!(!t2.replicas[0].eligible && !t2.replicas[0].up);
    let old = now.checked_sub(Duration::from_secs(2)).unwrap_or(now);
    let t3 = t.next(primary(now, 1000), &[replica(old, 1000, 0.0), replica(now, 1000, 0.0)], now, LIMITS);
    assert!(now == old || !t3.replicas[0].eligible, "a two-second-old sample is stale");
}

#[test]
fn promoted_replica_takes_no_reads_and_primary_down_keeps_head() {
    let t = rounds(topo(), 5, 1000, (1000, 0.0), (1000, 0.0));
    let now = Instant::now();
    let mut promoted = replica(now, 1000, 0.0).unwrap();
    promoted.in_recovery = false;
    let t2 = t.next(None, &[Some(promoted), replica(now, 1000, 0.0)], now, LIMITS);
    assert!(!t2.replicas[0].eligible);
    assert!(!t2.primary.up);
    assert_eq!(t2.head_lsn(), Some(1000));
    assert!(t2.replicas[1].eligible, "a caught-up replica keeps serving reads while the primary is away");
}

#[test]
fn the_same_sample_twice_counts_once_toward_recovery() {
    let now = Instant::now();
    let mut t = topo();
    for _ in 0..RECOVER_SAMPLES + 2 {
        t = t.next(primary(now, 1000), &[replica(now, 1000, 0.0), replica(now, 1000, 0.0)], now, LIMITS);
    }
    assert!(!t.replicas[0].eligible, "one sample seen {} times", RECOVER_SAMPLES + 2);
    assert_eq!(t.replicas[0].sampled, Some(now));
    let t = rounds(t, RECOVER_SAMPLES as usize - 1, 1000, (1000, 0.0), (1000, 0.0));
    assert!(t.replicas[0].eligible, "then {RECOVER_SAMPLES} distinct samples in all");
}

#[test]
fn a_configured_primary_in_recovery_is_a_standby_and_takes_reads_once_it_streams() {
    let now = Instant::now();
    let t = topo().next(replica(now, 1000, 0.0), &[None, None], now, LIMITS);
    assert!(t.primary.up && !t.primary.eligible, "answers, but not caught up for long enough");
    assert_eq!((t.primary.in_recovery, t.primary.role), (Some(true), Role::Standby));
    let t = t.next(None, &[None, None], now, LIMITS);
    assert_eq!(t.primary.in_recovery, None, "unreachable: role unknown");
    // A switchover: replica 1 is the primary now, the configured primary streams from it.
    let mut t = t;
    for i in 0..RECOVER_SAMPLES {
        let at = now + Duration::from_millis(10 * u64::from(i + 1));
        t = t.next(replica(at, 1000, 0.0), &[primary(at, 1000), replica(at, 1000, 0.0)], at, LIMITS);
        assert_eq!(t.election.primary, Some(NodeId::Replica(0)));
    }
    assert_eq!((t.primary.state(), t.primary.lag_bytes), ("healthy", Some(0)), "{:?}", t.primary);
    assert!(!t.replicas[0].eligible, "the new primary takes no reads as a standby");
    // Far behind the new primary: no reads until it catches up again.
    let at = now + Duration::from_millis(100);
    let t = t.next(replica(at, 100, 0.0), &[primary(at, 5000), replica(at, 5000, 0.0)], at, LIMITS);
    assert_eq!(t.primary.state(), "lagging");
}

#[test]
fn a_standby_of_another_cluster_never_takes_reads_and_one_behind_the_timeline_waits() {
    let now = Instant::now();
    let of = |s: Option<Sample>, timeline: u32, system_id: u64| {
        s.map(|s| Sample { timeline: Some(timeline), system_id: Some(system_id), ..s })
    };
    let mut t = topo();
    for i in 0..5 {
        let at = now + Duration::from_millis(10 * i);
        let replicas = [of(replica(at, 1000, 0.0), 2, 7), of(replica(at, 1000, 0.0), 2, 99)];
        t = t.next(of(primary(at, 1000), 2, 7), &replicas, at, LIMITS);
    }
    assert!(t.replicas[0].eligible, "the cluster's own standby takes reads");
    assert_eq!((t.replicas[1].role, t.replicas[1].eligible), (Role::Foreign, false));
    assert_eq!(t.replicas[1].state(), "fenced");
    // The primary moves to timeline 3; a standby still on 2 gets no reads until it follows.
    let at = now + Duration::from_millis(100);
    let replicas = [of(replica(at, 1000, 0.0), 2, 7), None];
    let t = t.next(of(primary(at, 1000), 3, 7), &replicas, at, LIMITS);
    assert!(!t.replicas[0].eligible, "behind the primary's timeline");
}

#[test]
fn the_page_sizes_come_from_the_elected_primary_and_stay_while_it_is_silent() {
    let pages = crate::monitor::wal::WalPages::new(8192, 16 << 20);
    let now = Instant::now();
    let told = |s: Option<Sample>| s.map(|s| Sample { wal_pages: pages, ..s });
    let t = topo().next(told(primary(now, 1000)), &[replica(now, 1000, 0.0), replica(now, 1000, 0.0)], now, LIMITS);
    assert_eq!(t.wal_pages, pages);
    assert_eq!(t.record_end(0x3C8B_A018), 0x3C8B_A000);
    let later = now + Duration::from_secs(1);
    let t = t.next(None, &[replica(later, 1000, 0.0), replica(later, 1000, 0.0)], later, LIMITS);
    assert_eq!(t.wal_pages, pages, "kept while the primary does not answer");
    assert_eq!(topo().record_end(0x3C8B_A018), 0x3C8B_A018, "unknown sizes lower nothing");
}

#[test]
fn the_insert_bound_is_the_elected_primarys_with_when_it_was_asked_for() {
    let now = Instant::now();
    let asked = now - Duration::from_millis(5);
    let sampled = |lsn| primary(now, 1000).map(|s| Sample { asked, insert_lsn: Some(lsn), ..s });
    let replicas = |at| [replica(at, 1000, 0.0), replica(at, 1000, 0.0)];
    let t = topo().next(sampled(1010), &replicas(now), now, LIMITS);
    assert_eq!(t.insert_bound, Some(InsertBound { asked, lsn: 1010, timeline: 0 }));
    let later = now + Duration::from_secs(1);
    let kept = t.next(None, &replicas(later), later, LIMITS);
    assert_eq!(kept.insert_bound, t.insert_bound, "an older bound stays true while the primary is silent");
    let standby = primary(later, 1000).map(|s| Sample { in_recovery: true, insert_lsn: None, ..s });
    let demoted = topo().next(standby, &replicas(later), later, LIMITS);
    assert_eq!(demoted.insert_bound, None, "no elected primary, no bound");
}
