//! Choosing the node for a request that starts with no server held, and checking a connection out
//! of that node's pool. A replica that cannot be reached costs the client nothing: nothing ran
//! yet, so the request goes to the primary instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::routing::{Inspection, RoutingState};
use super::ClientError;
use crate::config::{DatabaseSettings, PoolMode, UserSettings};
use crate::monitor::{NodeId, Role, Topology, TopologyWatch};
use crate::pool::{Checkout, Pool, PoolError, PoolKey};
use crate::route::{self, Decision, Reason, RequestClass, Route};
use crate::state::{Config, Shared};

/// The pools a session may use under one configuration, resolved at login and again when a
/// reload brings a new one.
pub struct Nodes {
    pub primary: Pool,
    pub replicas: Vec<Pool>,
    /// The database's live topology; `None` without replicas.
    pub topology: Option<Arc<TopologyWatch>>,
}

impl Nodes {
    /// Looks up the primary's and each replica's pool.
    pub fn resolve(ctx: &Shared, db: &DatabaseSettings, user: &UserSettings) -> Nodes {
        let primary = ctx.pools.pool(NodeId::Primary, db, user);
        let replicas = (0..db.replicas.len()).map(|i| ctx.pools.pool(NodeId::Replica(i), db, user)).collect();
        let topology = if db.replicas.is_empty() { None } else { ctx.monitor().handle(db.topology_name()) };
        Nodes { primary, replicas, topology }
    }

    /// The pool serving a route.
    pub fn pool(&self, route: Route) -> &Pool {
        match route {
            Route::Primary => self.primary(),
            Route::Standby(id) => self.pool_of(id),
        }
    }

    /// The pool that takes writes: the elected primary's, from the nodes' own answers (a
    /// promoted replica after a failover); the configured primary's before the first election,
    /// and for databases without replicas.
    pub fn primary(&self) -> &Pool {
        let elected = self.topology.as_ref().and_then(|t| t.current().election.primary);
        elected.map_or(&self.primary, |id| self.pool_of(id))
    }

    /// Where a kept connection of `pool` stands now: the route it serves (the primary if its
    /// node is the elected one, else a standby), or `None` when its node lost the election while
    /// up (fenced) or is of another cluster: a transaction kept on it must not go on there.
    /// Asked before every statement of a transaction: the topology is read once, and pools are
    /// compared by identity before their keys.
    pub fn kept_route(&self, pool: &Pool) -> Option<Route> {
        let Some(watch) = &self.topology else { return Some(Route::Primary) };
        let t = watch.current();
        let node = &pool.key().node;
        let nodes = std::iter::once(&t.primary).chain(&t.replicas);
        // The role first: nodes are rarely fenced, and the address is a string to compare.
        if nodes.into_iter().any(|n| matches!(n.role, Role::Fenced | Role::Foreign) && n.addr == *node) {
            return None;
        }
        // Keys are compared only for a pool made before a reload, which no identity matches.
        let pools = || std::iter::once(&self.primary).chain(&self.replicas);
        let at = pools().position(|p| p.same(pool)).or_else(|| pools().position(|p| p.key() == pool.key()));
        let Some(at) = at else { return Some(Route::Primary) };
        let elected = t.election.primary.map_or(&self.primary, |id| self.pool_of(id));
        if pools().nth(at).is_some_and(|p| p.same(elected)) {
            return Some(Route::Primary);
        }
        Some(Route::Standby(NodeId::at(at)))
    }

    /// After the node believed primary (its pool `refused`) refused a write as read-only at
    /// `since`: asks the nodes for fresh samples until another node is elected, or the same one
    /// again on a sample taken since (it was not demoted after all), up to `limit`.
    pub async fn await_new_primary(&self, refused: &PoolKey, since: Instant, limit: Duration) {
        self.wait_for(limit, |t| {
            t.election.primary.is_some_and(|id| {
                let resampled = t.node(id).and_then(|n| n.sampled).is_some_and(|at| at > since);
                self.pool_of(id).key() != refused || resampled
            })
        })
        .await;
    }

    /// The pool of a configured node.
    fn pool_of(&self, id: NodeId) -> &Pool {
        match id {
            NodeId::Primary => &self.primary,
            NodeId::Replica(i) => self.replicas.get(i).unwrap_or(&self.primary),
        }
    }

    /// Waits until a primary is elected, asking the nodes for fresh samples meanwhile (a failover
    /// under way); `false` if none is after `limit`. At once for databases without replicas: they
    /// have no election, their configured primary takes the writes.
    pub async fn await_primary(&self, limit: Duration) -> bool {
        self.wait_for(limit, |t| t.election.primary.is_some()).await
    }

    /// Asks the nodes for fresh samples until a snapshot satisfies `done` (`true`), or `limit`
    /// passes (`false`). `true` at once without a topology.
    async fn wait_for(&self, limit: Duration, done: impl Fn(&Topology) -> bool) -> bool {
        let Some(topology) = &self.topology else { return true };
        // Most calls find it so at once: no clock read for them.
        if done(&topology.current()) {
            return true;
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Boxed here and below: waiting is rare, and its future would size every request's.
            Box::pin(topology.refresh(left)).await;
            if done(&topology.current()) {
                return true;
            }
        }
    }
}

/// The client asking, as rules see it: database, user, application, pool mode.
pub struct Requester<'a> {
    pub db: &'a DatabaseSettings,
    pub user: &'a UserSettings,
    pub application_name: &'a str,
    pub mode: PoolMode,
}

/// Decides where a request goes, waiting for a replica when the policy says so.
pub async fn choose(
    ctx: &Shared,
    config: &Config,
    nodes: &Nodes,
    state: &RoutingState,
    inspection: &Inspection,
    who: &Requester<'_>,
) -> Result<Route, ClientError> {
    let Some(topology) = nodes.topology.as_ref().filter(|_| who.mode == PoolMode::Transaction) else {
        ctx.decisions.count(Route::Primary, Reason::PrimaryOnly);
        return Ok(Route::Primary);
    };
    let policy = &config.policy;
    let settings = &policy.settings;
    let request = state.request(inspection, who, settings.read_your_writes);
    let class = request.class;
    let reads = matches!(class, RequestClass::Read | RequestClass::ReadOnlyTransaction);
    if reads && state.dirty && settings.read_your_writes {
        // A write's LSN is not known yet: only the primary is sure to have it.
        ctx.decisions.count(Route::Primary, Reason::ReadYourWrites);
        return Ok(Route::Primary);
    }
    let busy = |route: Route| nodes.pool(route).in_use();
    // Taken when the first wait begins: most requests never wait, and need no clock read.
    let mut deadline: Option<Instant> = None;
    let mut waited = false;
    loop {
        let decision = route::decide(&request, policy, &topology.current(), &busy, waited);
        match decision {
            Decision::Go(route, reason) => {
                // The fields are only evaluated when the line is enabled: no formatting otherwise.
                tracing::trace!(
                    %route,
                    reason = reason.label(),
                    min_lsn = request.min_lsn.map(crate::classify::format_lsn),
                    class = class.name(),
                    "routed"
                );
                ctx.decisions.count(route, reason);
                return Ok(route);
            }
            Decision::Refuse(_) => return Err(ClientError::NoFreshReplica),
            Decision::Wait { .. } => {
                let now = Instant::now();
                let left = deadline.get_or_insert(now + settings.wait_timeout).saturating_duration_since(now);
                if left.is_zero() {
                    waited = true;
                } else {
                    // Ask the replicas for their replay position now rather than wait for the
                    // next check; a snapshot comes within a round trip.
                    Box::pin(topology.refresh(left)).await;
                }
            }
        }
    }
}

/// Checks out a connection for `route`; an unreachable replica falls back to the primary. The
/// primary is the elected one: while none is, the request waits up to `failover_timeout`.
pub async fn checkout(
    ctx: &Shared,
    nodes: &Nodes,
    route: Route,
    failover_timeout: Duration,
) -> Result<(Checkout, Route), ClientError> {
    if route == Route::Primary && !nodes.await_primary(failover_timeout).await {
        return Err(ClientError::NoPrimary(nodes.primary.key().database.clone()));
    }
    Ok(checkout_pool(ctx, nodes, route).await?)
}

async fn checkout_pool(ctx: &Shared, nodes: &Nodes, route: Route) -> Result<(Checkout, Route), PoolError> {
    match nodes.pool(route).checkout().await {
        Ok(server) => Ok((server, route)),
        Err(PoolError::Server(e)) if route != Route::Primary => {
            tracing::warn!(replica = %nodes.pool(route).key(), error = %e, "replica unreachable; sending the request to the primary");
            ctx.decisions.count(Route::Primary, Reason::Fallback);
            // Boxed: rare, and a second checkout would size every request's future.
            Box::pin(nodes.primary().checkout()).await.map(|s| (s, Route::Primary))
        }
        Err(e) => Err(e),
    }
}
