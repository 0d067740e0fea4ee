//! The topology snapshot and how each round of samples updates it. Pure: the lag arithmetic and
//! the eligibility hysteresis are unit-tested without a database.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::election::{Election, NodeId, Role, Vote};
use super::wal::WalPages;

/// Good samples in a row a replica needs before it gets reads again, so it does not flap.
pub const RECOVER_SAMPLES: u32 = 3;

/// Head positions remembered for measuring lag in time: at the default 100ms check interval,
/// over a minute and a half of a busy primary.
const HISTORY: usize = 1024;

/// What one node answered in one round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When its query was sent.
    pub asked: Instant,
    pub taken: Instant,
    pub in_recovery: bool,
    /// `pg_current_wal_lsn()` on a primary.
    pub current_lsn: Option<u64>,
    /// `pg_current_wal_insert_lsn()` on a primary: at or past the end of every commit that
    /// ended before the sample was asked for, whatever `synchronous_commit` said.
    pub insert_lsn: Option<u64>,
    /// `pg_last_wal_replay_lsn()` on a replica.
    pub replay_lsn: Option<u64>,
    /// `pg_last_wal_receive_lsn()` on a replica.
    pub receive_lsn: Option<u64>,
    /// Seconds since the last replayed transaction committed on the primary.
    pub replay_age: Option<f64>,
    /// The timeline it writes (out of recovery) or follows (in recovery), if it can be read.
    pub timeline: Option<u32>,
    /// `pg_control_system()`: which cluster the node belongs to, if it can be read.
    pub system_id: Option<u64>,
    /// Its WAL page and segment sizes.
    pub wal_pages: Option<WalPages>,
}

impl Sample {
    /// For unit tests and benches: a node at LSN 1000, caught up, on `timeline` of cluster `system_id`.
    #[doc(hidden)]
    pub fn caught_up(taken: Instant, in_recovery: bool, timeline: Option<u32>, system_id: Option<u64>) -> Sample {
        Sample {
            asked: taken,
            taken,
            in_recovery,
            current_lsn: Some(1000),
            insert_lsn: Some(1000).filter(|_| !in_recovery),
            replay_lsn: Some(1000),
            receive_lsn: Some(1000),
            replay_age: Some(0.0),
            timeline,
            system_id,
            wal_pages: None,
        }
    }
}

/// An upper bound on the LSN of every commit that ended on the elected primary before `asked`:
/// its insert position then. A session whose writes ended earlier, and whose LSN pgsplit did
/// not ask for, may take it as theirs (reads then wait for a little more WAL than they need).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InsertBound {
    pub asked: Instant,
    pub lsn: u64,
    /// The timeline the primary was on (0: unknown).
    pub timeline: u32,
}

/// A standby as the primary's `pg_stat_replication` shows it: what the primary knows of its
/// replication connections, for operators (SHOW REPLICAS, metrics), not for routing.
#[derive(Clone, Debug, PartialEq)]
pub struct Standby {
    pub application_name: String,
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, `backup` …
    pub state: Option<String>,
    pub sent_lsn: Option<u64>,
    pub replay_lsn: Option<u64>,
    /// The primary's measure of replay delay (NULL once caught up and idle).
    pub replay_lag: Option<Duration>,
}

/// One node as routing sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStatus {
    pub addr: Arc<str>,
    pub weight: u32,
    /// The last sample is fresh and the node answered.
    pub up: bool,
    pub in_recovery: Option<bool>,
    pub replay_lsn: Option<u64>,
    /// `pg_last_wal_receive_lsn()`: streamed but maybe not replayed yet.
    pub receive_lsn: Option<u64>,
    /// When the sample behind this status was taken.
    pub sampled: Option<Instant>,
    /// Bytes of WAL the node has not replayed yet.
    pub lag_bytes: Option<u64>,
    /// How far behind in time; zero once replay has caught up.
    pub lag_time: Option<Duration>,
    /// May take reads.
    pub eligible: bool,
    /// The timeline its last sample showed, if it could be read.
    pub timeline: Option<u32>,
    /// Its role as its own answers show it.
    pub role: Role,
    good_streak: u32,
}

impl NodeStatus {
    /// `primary` (elected: takes the writes), `healthy` (a standby taking reads), `lagging` (up
    /// but not eligible), `down`, or `fenced` (deposed, or of another cluster: gets nothing): as
    /// SHOW REPLICAS and `pgsplit_replica_state` say it.
    pub fn state(&self) -> &'static str {
        match self.role {
            Role::Fenced | Role::Foreign => return "fenced",
            Role::Primary if self.up => return "primary",
            _ => {}
        }
        match (self.up && self.in_recovery == Some(true), self.eligible) {
            (true, true) => "healthy",
            (true, false) => "lagging",
            (false, _) => "down",
        }
    }

    /// A node not sampled yet: down and ineligible until proven otherwise.
    pub fn unknown(addr: Arc<str>, weight: u32) -> Self {
        NodeStatus {
            addr,
            weight,
            up: false,
            in_recovery: None,
            replay_lsn: None,
            receive_lsn: None,
            sampled: None,
            lag_bytes: None,
            lag_time: None,
            eligible: false,
            timeline: None,
            role: Role::Unknown,
            good_streak: 0,
        }
    }
}

/// The cluster of one database: its primary and replicas, as of the last round of samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub primary: NodeStatus,
    pub replicas: Vec<NodeStatus>,
    /// The primary's `pg_stat_replication`, as of its last sample.
    pub standbys: Arc<[Standby]>,
    /// When the head (the newest WAL position known: the primary's, or the furthest a replica
    /// received) reached each position, oldest first, bounded: a replica's lag in time is how
    /// long ago the head first passed its replay position.
    pub history: VecDeque<(Instant, u64)>,
    /// Which node is the primary, from the nodes' own answers.
    pub election: Election,
    /// Since when no node is elected (after one was): how long writes have had nowhere to go.
    pub without_primary_since: Option<Instant>,
    /// The cluster's WAL page sizes, once the elected primary told them.
    pub wal_pages: Option<WalPages>,
    /// The elected primary's latest insert position, and when it was asked for.
    pub insert_bound: Option<InsertBound>,
}

/// Limits a replica must meet to take reads.
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    pub max_lag: Duration,
    pub max_lag_bytes: u64,
    /// A sample older than this counts as no sample.
    pub stale_after: Duration,
}

impl Topology {
    /// Every node unknown.
    pub fn new(primary: Arc<str>, replicas: Vec<(Arc<str>, u32)>) -> Self {
        Topology {
            primary: NodeStatus::unknown(primary, 1),
            replicas: replicas.into_iter().map(|(a, w)| NodeStatus::unknown(a, w)).collect(),
            standbys: Arc::from([]),
            history: VecDeque::new(),
            election: Election::default(),
            without_primary_since: None,
            wal_pages: None,
            insert_bound: None,
        }
    }

    /// A node by its configured position.
    pub fn node(&self, id: NodeId) -> Option<&NodeStatus> {
        match id {
            NodeId::Primary => Some(&self.primary),
            NodeId::Replica(i) => self.replicas.get(i),
        }
    }

    /// The node elected primary, if any.
    pub fn elected(&self) -> Option<&NodeStatus> {
        self.election.primary.and_then(|id| self.node(id))
    }

    /// Every configured node with its position: the configured primary first, then the replicas.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &NodeStatus)> {
        std::iter::once(&self.primary).chain(&self.replicas).enumerate().map(|(i, n)| (NodeId::at(i), n))
    }

    /// The position a standby's replay reaches once it has every record before `lsn`.
    pub fn record_end(&self, lsn: u64) -> u64 {
        self.wal_pages.map_or(lsn, |pages| pages.record_end(lsn))
    }

    /// The newest WAL position known: the last entry of the history.
    pub fn head_lsn(&self) -> Option<u64> {
        self.history.back().map(|(_, lsn)| *lsn)
    }

    /// The next snapshot from the latest sample of each node (`None`: it failed).
    pub fn next(
        &self,
        primary: Option<Sample>,
        replicas: &[Option<Sample>],
        now: Instant,
        limits: Freshness,
    ) -> Topology {
        let fresh = |s: &Option<Sample>| s.filter(|s| now.saturating_duration_since(s.taken) <= limits.stale_after);
        let sampled = fresh(&primary);
        let replicas: Vec<Option<Sample>> = replicas.iter().map(fresh).collect();
        let all: Vec<Option<Sample>> = std::iter::once(sampled).chain(replicas.iter().copied()).collect();
        let votes: Vec<Vote> = all
            .iter()
            .map(|s| Vote {
                in_recovery: s.map(|s| s.in_recovery),
                timeline: s.and_then(|s| s.timeline),
                system_id: s.and_then(|s| s.system_id),
            })
            .collect();
        let election = self.election.next(&votes);
        let elected = election.primary.and_then(|id| all[id.index()]);
        let received = replicas.iter().flatten().filter_map(|s| s.receive_lsn.or(s.replay_lsn)).max();
        let head_lsn = elected.and_then(|s| s.current_lsn).or(received).max(self.head_lsn());
        let mut next = self.clone();
        if let Some(head) = head_lsn.filter(|h| next.history.back().is_none_or(|(_, last)| h > last)) {
            next.history.push_back((now, head));
            while next.history.len() > HISTORY {
                next.history.pop_front();
            }
        }
        let head = Head { lsn: head_lsn, history: &next.history, now, timeline: election.max_timeline };
        if election.primary == Some(NodeId::Primary) {
            update_elected(&mut next.primary, sampled);
        } else {
            // The configured primary rejoined as a standby (a switchover, or a failover it came
            // back from): it serves reads like any replica once it streams and catches up.
            update_replica(&mut next.primary, sampled, &head, limits);
        }
        for (node, sample) in next.replicas.iter_mut().zip(&replicas) {
            update_replica(node, *sample, &head, limits);
        }
        for (i, sample) in all.iter().enumerate() {
            let Some(node) = next.node_mut(NodeId::at(i)) else { continue };
            node.role = election.roles.get(i).copied().unwrap_or_default();
            node.timeline = sample.and_then(|s| s.timeline).or(node.timeline);
            node.sampled = sample.map(|s| s.taken).or(node.sampled);
            if matches!(node.role, Role::Fenced | Role::Foreign) {
                // Another cluster's standby replays WAL that is not ours: never a read target.
                node.eligible = false;
                node.good_streak = 0;
            }
        }
        next.without_primary_since = match election.primary {
            Some(_) => None,
            None if election.last_elected().is_some() => self.without_primary_since.or(Some(now)),
            None => None,
        };
        next.election = election;
        next.wal_pages = elected.and_then(|s| s.wal_pages).or(self.wal_pages);
        let timeline = next.election.max_timeline;
        let bound = elected.and_then(|s| Some(InsertBound { asked: s.asked, lsn: s.insert_lsn?, timeline }));
        next.insert_bound = bound.or(self.insert_bound);
        next
    }

    fn node_mut(&mut self, id: NodeId) -> Option<&mut NodeStatus> {
        match id {
            NodeId::Primary => Some(&mut self.primary),
            NodeId::Replica(i) => self.replicas.get_mut(i),
        }
    }
}

/// The head position and its history, as of one round.
pub struct Head<'a> {
    pub lsn: Option<u64>,
    pub history: &'a VecDeque<(Instant, u64)>,
    pub now: Instant,
    /// The elected primary's timeline: a standby behind it may hold writes the primary never had.
    pub timeline: u32,
}

/// The elected primary: up, taking writes; no standby lag, and no reads as a standby (reads
/// reach it as the primary, where the policy allows).
fn update_elected(node: &mut NodeStatus, sample: Option<Sample>) {
    node.up = sample.is_some();
    node.in_recovery = sample.map(|s| s.in_recovery);
    node.eligible = false;
    node.good_streak = 0;
    node.lag_bytes = None;
    node.lag_time = None;
}

fn update_replica(node: &mut NodeStatus, sample: Option<Sample>, head: &Head<'_>, limits: Freshness) {
    let Some(sample) = sample.filter(|s| s.in_recovery) else {
        // Unreachable, stale, or promoted: no reads until it proves itself again (fail closed).
        node.up = sample.is_some();
        node.in_recovery = sample.map(|s| s.in_recovery);
        node.eligible = false;
        node.good_streak = 0;
        return;
    };
    // Rounds also run when a sample lands early (a read waiting for a replica asked for it), so
    // the hysteresis counts distinct samples, not rounds.
    let new_sample = node.sampled != Some(sample.taken);
    node.sampled = Some(sample.taken);
    node.up = true;
    node.in_recovery = Some(true);
    node.replay_lsn = sample.replay_lsn;
    node.receive_lsn = sample.receive_lsn;
    let (lag_bytes, lag_time) = lag(sample, head);
    node.lag_bytes = lag_bytes;
    node.lag_time = lag_time;
    let behind = sample.timeline.is_some_and(|t| t < head.timeline);
    let within = !behind
        && matches!((lag_bytes, lag_time), (Some(b), Some(t)) if b <= limits.max_lag_bytes && t <= limits.max_lag);
    if within && !new_sample {
        return;
    }
    if within {
        node.good_streak = node.good_streak.saturating_add(1);
        node.eligible = node.eligible || node.good_streak >= RECOVER_SAMPLES;
    } else {
        node.good_streak = 0;
        node.eligible = false;
    }
}

/// Lag in bytes behind the head, and in time: zero once replay reached the head; else how long
/// ago the head first passed the replica's replay position, from the head's history. Only when
/// that position predates the history does the replay timestamp stand in: it only moves when the
/// primary commits, so after an idle spell it overstates lag (which fails closed).
pub fn lag(sample: Sample, head: &Head<'_>) -> (Option<u64>, Option<Duration>) {
    let (Some(replay), Some(head_lsn)) = (sample.replay_lsn, head.lsn) else { return (None, None) };
    let bytes = head_lsn.saturating_sub(replay);
    if bytes == 0 {
        return (Some(0), Some(Duration::ZERO));
    }
    let covered = head.history.front().is_some_and(|(_, oldest)| *oldest <= replay);
    let passed = head.history.iter().find(|(_, lsn)| *lsn > replay).filter(|_| covered);
    let time = match passed {
        Some((at, _)) => head.now.saturating_duration_since(*at),
        None => Duration::from_secs_f64(sample.replay_age.unwrap_or(f64::INFINITY).clamp(0.0, 1e9)),
    };
    (Some(bytes), Some(time))
}

#[cfg(test)]
mod tests;
