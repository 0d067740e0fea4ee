//! The routing decision. Writes, unknown statements and read-write transactions go to the primary,
//! always; a read goes to a replica that is healthy, within the lag limits and (when the session
//! needs its own writes) past the session's LSN; hints and rules steer reads only.

use std::sync::atomic::AtomicUsize;

use smallvec::SmallVec;

use super::balance::{self, Candidate};
use super::rules::{RuleContext, Rules};
use super::{Decision, Reason, Route};
use crate::classify::RouteTarget;
use crate::config::{RoutingSettings, StaleFallback};
use crate::monitor::Topology;

/// The routing policy of one pgsplit: settings, compiled rules, and the round-robin turn.
#[derive(Debug)]
pub struct Policy {
    pub settings: RoutingSettings,
    pub rules: Rules,
    turn: AtomicUsize,
}

impl Policy {
    /// Compiles the rules.
    pub fn new(settings: RoutingSettings) -> Result<Self, String> {
        let rules = Rules::compile(&settings.rules)?;
        Ok(Policy { settings, rules, turn: AtomicUsize::new(0) })
    }
}

/// What kind of request this is, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestClass {
    /// Writes, or might (unknown statements): the primary.
    Write,
    /// Starts a read-write transaction: the primary, for the whole transaction.
    Transaction,
    /// Starts a READ ONLY transaction (or any transaction of a read-only session): one node for all of it.
    ReadOnlyTransaction,
    /// A plain read outside a transaction.
    Read,
}

impl RequestClass {
    /// The class in words, for `pgsplit explain` and trace logs.
    pub fn name(self) -> &'static str {
        match self {
            RequestClass::Write => "write",
            RequestClass::Transaction => "read-write transaction",
            RequestClass::ReadOnlyTransaction => "read-only transaction",
            RequestClass::Read => "read",
        }
    }
}

/// One request to route.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub class: RequestClass,
    /// A route hint from the statement or the session; steers reads only.
    pub hint: Option<RouteTarget>,
    /// The replay LSN a replica must have reached to serve this read.
    pub min_lsn: Option<u64>,
    /// The timeline that LSN was written on, when known (the session's own write): an LSN means
    /// the same WAL only on the same timeline, so a replica on another one does not qualify.
    pub lsn_timeline: Option<u32>,
    /// The replica the session's last read went to: among equally busy nodes, least-busy keeps it.
    pub previous: Option<Route>,
    pub rule: RuleContext<'a>,
}

/// Decides where a request goes. `busy` tells how many server connections a node has in use;
/// `waited` is true once the session already waited for a replica, so the fallback is final.
pub fn decide(
    req: &Request,
    policy: &Policy,
    topo: &Topology,
    busy: &dyn Fn(Route) -> usize,
    waited: bool,
) -> Decision {
    match req.class {
        RequestClass::Write => return Decision::Go(Route::Primary, Reason::Write),
        RequestClass::Transaction => return Decision::Go(Route::Primary, Reason::Transaction),
        RequestClass::ReadOnlyTransaction | RequestClass::Read => {}
    }
    if topo.replicas.is_empty() {
        return Decision::Go(Route::Primary, Reason::PrimaryOnly);
    }
    let s = &policy.settings;
    let plain = if req.class == RequestClass::Read { Reason::Read } else { Reason::ReadOnlyTransaction };
    let (wanted, mut reason, max_lag) = match (req.hint, policy.rules.first_match(&req.rule)) {
        (Some(hint), _) => (hint, Reason::Hint, None),
        (None, Some((i, rule))) => (rule.route, Reason::Rule(i), rule.max_lag),
        (None, None) => (if s.primary_reads { RouteTarget::Any } else { RouteTarget::Replica }, plain, None),
    };
    if wanted == RouteTarget::Primary {
        return Decision::Go(Route::Primary, reason);
    }
    let max_lag = max_lag.unwrap_or(s.max_lag);
    // A write's LSN just past a page header is reached by replaying up to the page start.
    let min_lsn = req.min_lsn.map(|lsn| topo.record_end(lsn));
    // Any configured node in recovery may serve reads, the configured primary too once it
    // rejoined as a standby: eligibility already says it streams, within the lag limits.
    // Room for two replicas and the primary without a heap allocation, and little to move.
    let mut candidates: SmallVec<[Candidate<Route>; 4]> = topo
        .nodes()
        .filter(|(_, n)| n.eligible && n.lag_time.is_some_and(|t| t <= max_lag))
        .filter(|(_, n)| min_lsn.is_none_or(|min| n.replay_lsn.is_some_and(|r| r >= min)))
        .filter(|(_, n)| req.min_lsn.is_none() || req.lsn_timeline.is_none_or(|t| n.timeline == Some(t)))
        .map(|(id, n)| Candidate { node: Route::Standby(id), weight: n.weight, busy: busy(Route::Standby(id)) })
        .collect();
    if wanted == RouteTarget::Any {
        candidates.push(Candidate { node: Route::Primary, weight: 1, busy: busy(Route::Primary) });
    }
    if req.min_lsn.is_some() && reason == plain {
        reason = Reason::ReadYourWrites;
    }
    if let Some(route) = balance::pick(&candidates, s.balance, &policy.turn, req.previous) {
        return Decision::Go(route, reason);
    }
    let fallback = if reason == Reason::ReadYourWrites { reason } else { Reason::Fallback };
    match s.stale_fallback {
        StaleFallback::Wait if !waited => Decision::Wait { min_lsn: req.min_lsn, reason: fallback },
        StaleFallback::Error => Decision::Refuse(fallback),
        StaleFallback::Primary | StaleFallback::Wait => Decision::Go(Route::Primary, fallback),
    }
}

#[cfg(test)]
mod tests;
