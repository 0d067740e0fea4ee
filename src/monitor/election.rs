//! Which node is the primary, from the nodes' own answers rather than the config: the node out
//! of recovery on the highest timeline, of the database's own cluster (system identifier). A
//! node out of recovery on a lower timeline is a primary the HA manager already gave up: it is
//! fenced (no writes, no reads) until it answers in recovery again. Pure: unit-tested below.

/// A configured node: the one named `primary`, or replica `i` of `replicas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeId {
    Primary,
    Replica(usize),
}

impl NodeId {
    /// The node at position `i` of [primary, replicas…].
    pub fn at(i: usize) -> NodeId {
        match i {
            0 => NodeId::Primary,
            i => NodeId::Replica(i - 1),
        }
    }

    /// Its position in [primary, replicas…].
    pub fn index(self) -> usize {
        match self {
            NodeId::Primary => 0,
            NodeId::Replica(i) => i + 1,
        }
    }
}

/// A node's role as its own answers show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// No fresh answer.
    #[default]
    Unknown,
    /// Out of recovery and elected: takes the writes.
    Primary,
    /// In recovery.
    Standby,
    /// Out of recovery but not elected (a lower timeline, or a second primary): gets nothing until
    /// it answers in recovery again.
    Fenced,
    /// Another cluster's node (its system identifier differs): never used.
    Foreign,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Unknown => "unknown",
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Fenced => "fenced",
            Role::Foreign => "foreign",
        }
    }
}

/// What one node's fresh sample says, if it has one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vote {
    pub in_recovery: Option<bool>,
    pub timeline: Option<u32>,
    pub system_id: Option<u64>,
}

/// The outcome of one round, and what it remembers for the next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Election {
    pub primary: Option<NodeId>,
    /// By position in [primary, replicas…].
    pub roles: Vec<Role>,
    /// More than one node answered out of recovery.
    pub split_brain: bool,
    /// The system identifier the database's nodes share, once one was seen.
    pub cluster_id: Option<u64>,
    /// The highest timeline an elected primary had: a primary below it is a deposed one.
    pub max_timeline: u32,
    /// Times another node than the last elected one was elected (the first election included).
    pub elections: u64,
    /// The node elected last, kept while none is: a primary back after a blip is no election.
    last_elected: Option<NodeId>,
}

impl Election {
    /// The node elected last, even if none is now.
    pub fn last_elected(&self) -> Option<NodeId> {
        self.last_elected
    }

    /// The role of `node` (unknown before any round).
    pub fn role(&self, node: NodeId) -> Role {
        self.roles.get(node.index()).copied().unwrap_or_default()
    }

    /// The next round from `votes` (by position in [primary, replicas…]). Fenced and foreign
    /// nodes stay so while they do not answer; a fenced node is let back only in recovery.
    pub fn next(&self, votes: &[Vote]) -> Election {
        let cluster_id = self.cluster_id.or(votes.first().and_then(|v| v.system_id)).or_else(|| majority(votes));
        // Nodes say which cluster they are of, but which cluster is ours is not known yet (the
        // configured primary has not answered, no majority agrees): elect nobody rather than
        // risk a stranger.
        let undecided = cluster_id.is_none() && votes.iter().any(|v| v.system_id.is_some());
        let was = |i: usize| self.roles.get(i).copied().unwrap_or_default();
        let mut roles: Vec<Role> = votes
            .iter()
            .enumerate()
            .map(|(i, v)| match (v.in_recovery, v.system_id) {
                // Which cluster is ours is not known yet: trust no node that says its own.
                (Some(_), Some(_)) if undecided => Role::Unknown,
                (_, Some(id)) if cluster_id.is_some_and(|ours| ours != id) => Role::Foreign,
                (Some(true), _) => Role::Standby,
                (Some(false), _) if was(i) == Role::Fenced => Role::Fenced,
                (Some(false), _) => Role::Primary,
                (None, _) if matches!(was(i), Role::Fenced | Role::Foreign) => was(i),
                (None, _) => Role::Unknown,
            })
            .collect();
        // Out of recovery below the highest timeline an elected primary had: deposed.
        let timeline = |i: usize| votes[i].timeline.unwrap_or(self.max_timeline);
        for (i, role) in roles.iter_mut().enumerate() {
            if *role == Role::Primary && timeline(i) < self.max_timeline {
                *role = Role::Fenced;
            }
        }
        let candidates: Vec<usize> = (0..roles.len()).filter(|&i| roles[i] == Role::Primary).collect();
        // The highest timeline wins; on a tie the configured primary (position 0), then the first.
        let elected =
            candidates.iter().copied().filter(|_| !undecided).max_by_key(|&i| (timeline(i), std::cmp::Reverse(i)));
        for &i in &candidates {
            if Some(i) != elected && !undecided {
                roles[i] = Role::Fenced;
            }
        }
        let primary = elected.map(NodeId::at);
        let last = self.last_elected();
        Election {
            elections: self.elections + u64::from(primary.is_some() && primary != last),
            last_elected: primary.or(last),
            primary,
            split_brain: roles
                .iter()
                .zip(votes)
                .filter(|(r, v)| **r != Role::Foreign && v.in_recovery == Some(false))
                .count()
                > 1,
            max_timeline: elected.map_or(self.max_timeline, |i| self.max_timeline.max(timeline(i))),
            roles,
            cluster_id,
        }
    }
}

/// The system identifier more than half of the configured nodes report, if one is.
fn majority(votes: &[Vote]) -> Option<u64> {
    let ids: Vec<u64> = votes.iter().filter_map(|v| v.system_id).collect();
    ids.iter().copied().find(|id| ids.iter().filter(|x| *x == id).count() * 2 > votes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Option<u64> = Some(7);

    fn primary(timeline: u32) -> Vote {
        Vote { in_recovery: Some(false), timeline: Some(timeline), system_id: ID }
    }

    fn standby(timeline: u32) -> Vote {
        Vote { in_recovery: Some(true), timeline: Some(timeline), system_id: ID }
    }

    const DOWN: Vote = Vote { in_recovery: None, timeline: None, system_id: None };

    fn roles(e: &Election) -> Vec<&'static str> {
        e.roles.iter().map(|r| r.name()).collect()
    }

    #[test]
    fn the_configured_primary_is_elected_while_it_is_the_one_out_of_recovery() {
        let e = Election::default().next(&[primary(1), standby(1), standby(1)]);
        assert_eq!(e.primary, Some(NodeId::Primary));
        assert_eq!(roles(&e), ["primary", "standby", "standby"]);
        assert!(!e.split_brain);
    }

    #[test]
    fn a_promoted_replica_takes_over_and_the_returning_old_primary_is_fenced() {
        let start = Election::default().next(&[primary(1), standby(1), standby(1)]);
        let promoted = start.next(&[DOWN, primary(2), standby(1)]);
        assert_eq!(promoted.primary, Some(NodeId::Replica(0)));
        assert_eq!(promoted.max_timeline, 2);
        // The old primary comes back up, still a primary on timeline 1: split brain, fenced.
        let back = promoted.next(&[primary(1), primary(2), standby(2)]);
        assert_eq!(back.primary, Some(NodeId::Replica(0)));
        assert_eq!(roles(&back), ["fenced", "primary", "standby"]);
        assert!(back.split_brain);
        // Even while the new primary is briefly unreachable, the deposed one gets nothing.
        let blip = back.next(&[primary(1), DOWN, standby(2)]);
        assert_eq!(blip.primary, None);
        assert_eq!(blip.role(NodeId::Primary), Role::Fenced);
        // Rejoined as a standby of the new primary: no longer fenced.
        let rejoined = blip.next(&[standby(2), primary(2), standby(2)]);
        assert_eq!(roles(&rejoined), ["standby", "primary", "standby"]);
    }

    #[test]
    fn a_fenced_node_stays_fenced_while_it_does_not_answer() {
        let e = Election { max_timeline: 2, ..Default::default() }.next(&[primary(1), primary(2)]);
        assert_eq!(e.role(NodeId::Primary), Role::Fenced);
        let gone = e.next(&[DOWN, primary(2)]);
        assert_eq!(gone.role(NodeId::Primary), Role::Fenced);
        // Back up on the highest timeline but still out of recovery: still fenced (a rejoin
        // always passes through recovery).
        let again = gone.next(&[primary(2), DOWN]);
        assert_eq!((again.primary, again.role(NodeId::Primary)), (None, Role::Fenced));
    }

    #[test]
    fn two_primaries_on_one_timeline_the_configured_one_wins() {
        let e = Election::default().next(&[primary(3), primary(3), standby(3)]);
        assert_eq!(e.primary, Some(NodeId::Primary));
        assert_eq!(roles(&e), ["primary", "fenced", "standby"]);
        assert!(e.split_brain);
        let e = Election::default().next(&[standby(3), primary(4), primary(3)]);
        assert_eq!(e.primary, Some(NodeId::Replica(0)), "the higher timeline wins");
    }

    #[test]
    fn a_node_of_another_cluster_is_never_used() {
        let stranger = Vote { system_id: Some(99), ..primary(9) };
        let e = Election::default().next(&[primary(1), standby(1), stranger]);
        assert_eq!(e.primary, Some(NodeId::Primary));
        assert_eq!(e.role(NodeId::Replica(1)), Role::Foreign);
        assert!(!e.split_brain);
        assert_eq!(e.next(&[primary(1), standby(1), DOWN]).role(NodeId::Replica(1)), Role::Foreign);
    }

    #[test]
    fn a_stranger_answering_first_never_becomes_the_reference() {
        let stranger = Vote { system_id: Some(99), ..standby(1) };
        // Only the stranger has answered: nothing is decided.
        let first = Election::default().next(&[DOWN, DOWN, stranger]);
        assert_eq!((first.cluster_id, first.primary), (None, None));
        let e = first.next(&[primary(1), standby(1), stranger]);
        assert_eq!(e.cluster_id, ID);
        assert_eq!(e.primary, Some(NodeId::Primary));
        assert_eq!(e.role(NodeId::Replica(1)), Role::Foreign);
        // The configured primary silent since start, a promoted replica and a stranger primary
        // disagree one against one: no node is trusted with writes.
        let promoted_stranger = Vote { system_id: Some(99), ..primary(5) };
        let e = Election::default().next(&[DOWN, primary(2), promoted_stranger]);
        assert_eq!(e.primary, None);
        // Two of three agree: that is the cluster.
        let e = Election::default().next(&[DOWN, primary(2), standby(2)]);
        assert_eq!((e.cluster_id, e.primary), (ID, Some(NodeId::Replica(0))));
    }

    #[test]
    fn without_readable_identities_the_election_still_runs() {
        let blind = |v: Vote| Vote { system_id: None, ..v };
        let e = Election::default().next(&[blind(primary(1)), blind(standby(1))]);
        assert_eq!((e.cluster_id, e.primary), (None, Some(NodeId::Primary)));
    }

    #[test]
    fn no_answer_no_primary_and_unknown_timelines_tie() {
        let e = Election::default().next(&[DOWN, standby(1)]);
        assert_eq!(e.primary, None);
        assert_eq!(roles(&e), ["unknown", "unknown"], "one of two is no majority: not trusted yet");
        let e = Election::default().next(&[DOWN, standby(1), standby(1)]);
        assert_eq!(roles(&e), ["unknown", "standby", "standby"]);
        let blind = Vote { timeline: None, ..primary(1) };
        let e = Election::default().next(&[blind, standby(1)]);
        assert_eq!(e.primary, Some(NodeId::Primary), "a primary whose timeline cannot be read still leads");
    }

    #[test]
    fn elections_count_changes_of_primary_not_blips() {
        let mut e = Election::default().next(&[primary(1), standby(1)]);
        assert_eq!(e.elections, 1);
        e = e.next(&[DOWN, standby(1)]);
        e = e.next(&[primary(1), standby(1)]);
        assert_eq!(e.elections, 1, "the same primary back after a blip");
        e = e.next(&[DOWN, primary(2)]);
        assert_eq!((e.elections, e.last_elected()), (2, Some(NodeId::Replica(0))));
    }

    #[test]
    fn flapping_samples_do_not_move_the_primary_back() {
        let mut e = Election::default().next(&[primary(1), standby(1)]);
        e = e.next(&[DOWN, primary(2)]);
        for _ in 0..5 {
            e = e.next(&[primary(1), primary(2)]);
            assert_eq!(e.primary, Some(NodeId::Replica(0)));
            e = e.next(&[primary(1), DOWN]);
            assert_eq!(e.primary, None);
        }
    }
}
