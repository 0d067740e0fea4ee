//! What a scrape does before rendering: copies counters kept as atomics into the recorder and
//! sets gauges from the pools, the connected clients and the monitor's topology.

use std::collections::BTreeMap;

use crate::metrics::{Kind, Metrics, CATALOG};
use crate::monitor::{NodeStatus, Role, Topology};
use crate::pool::Pool;
use crate::state::clients::ClientState;
use crate::state::Shared;

/// Brings every metric up to date and renders the exposition text.
pub fn scrape(ctx: &Shared) -> String {
    let m = &ctx.metrics;
    pools(ctx, m);
    clients(ctx, m);
    topology(ctx, m);
    routing(ctx, m);
    sessions(ctx, m);
    let mut out = m.render();
    latencies(ctx, &mut out);
    out
}

/// The per-pool latency histograms, kept as atomics by the pools (`metrics::Latency`), each
/// family's series together as the text format wants.
fn latencies(ctx: &Shared, out: &mut String) {
    let pools = ctx.pools.pools();
    for &(name, _, help) in CATALOG.iter().filter(|(_, kind, _)| *kind == Kind::Histogram) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for pool in &pools {
            let labels = pool_labels(pool);
            let counters = pool.counters();
            let latency = if name == "pgsplit_checkout_wait_seconds" { &counters.wait } else { &counters.query };
            latency.render(out, name, &labels);
        }
    }
}

/// The labels every per-pool series carries.
fn pool_labels(pool: &Pool) -> [(&'static str, &str); 4] {
    let key = pool.key();
    [("database", key.database.as_str()), ("user", key.user.as_str()), ("node", &*key.node), ("role", pool.role())]
}

fn pools(ctx: &Shared, m: &Metrics) {
    let mut server_errors: BTreeMap<String, u64> = BTreeMap::new();
    for pool in ctx.pools.pools() {
        let labels = pool_labels(&pool);
        let stats = pool.stats();
        let active = stats.total.saturating_sub(stats.idle + stats.connecting);
        for (state, n) in [("idle", stats.idle), ("active", active), ("connecting", stats.connecting)] {
            let with_state = [labels[0], labels[1], labels[2], labels[3], ("state", state)];
            m.gauge("pgsplit_server_connections", &with_state).set(n as f64);
        }
        m.gauge("pgsplit_pool_waiting_clients", &labels).set(stats.waiting as f64);
        let c = pool.counters().snapshot();
        for (name, value) in [
            ("pgsplit_server_connects_total", c.connects),
            ("pgsplit_server_connect_failures_total", c.connect_failures),
            ("pgsplit_checkout_timeouts_total", c.checkout_timeouts),
            ("pgsplit_transactions_total", c.transactions),
            ("pgsplit_queries_total", c.queries),
            ("pgsplit_server_sent_bytes_total", c.sent_bytes),
            ("pgsplit_server_received_bytes_total", c.received_bytes),
        ] {
            m.counter(name, &labels).absolute(value);
        }
        for (class, n) in pool.counters().errors() {
            *server_errors.entry(class).or_default() += n;
        }
    }
    for (class, n) in server_errors {
        m.counter("pgsplit_errors_total", &[("class", &class), ("source", "server")]).absolute(n);
    }
}

fn clients(ctx: &Shared, m: &Metrics) {
    let mut counts: BTreeMap<(String, String), [usize; 3]> = BTreeMap::new();
    for db in ctx.config().settings.databases.values() {
        for user in ctx.config().settings.users.values() {
            counts.insert((db.name.clone(), user.name.clone()), [0; 3]);
        }
    }
    for client in ctx.clients.list() {
        let entry = counts.entry((client.database().to_string(), client.user().to_string())).or_default();
        entry[client.state() as usize] += 1;
    }
    for ((database, user), by_state) in &counts {
        for state in [ClientState::Idle, ClientState::Waiting, ClientState::Active] {
            let labels = [("database", database.as_str()), ("user", user.as_str()), ("state", state.label())];
            m.gauge("pgsplit_clients", &labels).set(by_state[state as usize] as f64);
        }
    }
    for (reason, n) in ctx.counters.refusals() {
        m.counter("pgsplit_clients_refused_total", &[("reason", reason)]).absolute(n);
    }
}

fn topology(ctx: &Shared, m: &Metrics) {
    for db in ctx.config().settings.databases.values() {
        let Some(topology) = ctx.monitor().topology(&db.name) else { continue };
        let primary = &topology.primary;
        // The configured primary, answering and elected: it takes the writes.
        let up = if primary.up && primary.role == Role::Primary { 1.0 } else { 0.0 };
        m.gauge("pgsplit_primary_up", &[("database", &db.name), ("node", &primary.addr)]).set(up);
        let db_label = [("database", db.name.as_str())];
        m.counter("pgsplit_primary_elections_total", &db_label).absolute(topology.election.elections);
        if let Some(watch) = ctx.monitor().handle(&db.name) {
            m.counter("pgsplit_topology_refreshes_total", &db_label).absolute(watch.refreshes());
        }
        let without = topology.without_primary_since.map_or(0.0, |since| since.elapsed().as_secs_f64());
        m.gauge("pgsplit_seconds_without_primary", &db_label).set(without);
        let elected = topology.elected();
        for node in std::iter::once(&topology.primary).chain(&topology.replicas) {
            let is = elected.is_some_and(|e| e.addr == node.addr);
            m.gauge("pgsplit_primary_node", &[("database", &db.name), ("node", &node.addr)])
                .set(f64::from(u8::from(is)));
        }
        if let Some(lsn) = topology.head_lsn() {
            m.gauge("pgsplit_primary_wal_lsn_bytes", &[("database", &db.name)]).set(lsn as f64);
        }
        for (_, node) in topology.nodes() {
            node_gauges(m, &db.name, node);
        }
    }
}

/// Lag and state of every configured node, the configured primary too: after a failover any
/// node may be the primary, a standby or fenced.
fn node_gauges(m: &Metrics, database: &str, replica: &NodeStatus) {
    let labels = [("database", database), ("node", &*replica.addr)];
    if let Some(bytes) = replica.lag_bytes {
        m.gauge("pgsplit_replica_lag_bytes", &labels).set(bytes as f64);
    }
    if let Some(time) = replica.lag_time {
        m.gauge("pgsplit_replica_lag_seconds", &labels).set(time.as_secs_f64());
    }
    let current = replica.state();
    for state in ["primary", "healthy", "lagging", "down", "fenced"] {
        let value = if state == current { 1.0 } else { 0.0 };
        m.gauge("pgsplit_replica_state", &[labels[0], labels[1], ("state", state)]).set(value);
    }
}

fn routing(ctx: &Shared, m: &Metrics) {
    for d in ctx.decisions.snapshot() {
        m.counter("pgsplit_routing_decisions_total", &[("target", d.target), ("reason", d.reason)]).absolute(d.count);
    }
    for (reason, retries) in
        [("misroute_retry", ctx.counters.misroute_retries()), ("failover_retry", ctx.counters.failover_retries())]
    {
        if retries > 0 {
            let labels = [("target", "primary"), ("reason", reason)];
            m.counter("pgsplit_routing_decisions_total", &labels).absolute(retries);
        }
    }
    for (at, n) in ctx.counters.lsn_probes() {
        m.counter("pgsplit_lsn_probes_total", &[("at", at)]).absolute(n);
    }
    let cache = ctx.config().classifier.stats();
    m.counter("pgsplit_classifier_cache_hits_total", &[]).absolute(cache.hits);
    m.counter("pgsplit_classifier_cache_misses_total", &[]).absolute(cache.misses);
}

fn sessions(ctx: &Shared, m: &Metrics) {
    let prepared = ctx.statements.stats();
    m.counter("pgsplit_prepared_statements_prepared_total", &[]).absolute(prepared.prepares);
    m.counter("pgsplit_prepared_statements_reused_total", &[]).absolute(prepared.reuses);
    m.counter("pgsplit_prepared_statements_evicted_total", &[]).absolute(prepared.evictions);
    m.counter("pgsplit_prepared_statements_replanned_total", &[]).absolute(prepared.replans);
    m.gauge("pgsplit_prepared_statements_distinct", &[]).set(prepared.distinct as f64);
    for (reason, n) in ctx.counters.pins() {
        m.counter("pgsplit_sessions_pinned_total", &[("reason", reason)]).absolute(n);
    }
    for (class, n) in ctx.counters.errors() {
        m.counter("pgsplit_errors_total", &[("class", &class), ("source", "pgsplit")]).absolute(n);
    }
    m.counter("pgsplit_log_write_errors_total", &[]).absolute(crate::log_output::dropped_lines());
    if let Some(lookup) = ctx.config().auth.lookup() {
        for (result, n) in lookup.stats().snapshot() {
            m.counter("pgsplit_auth_lookups_total", &[("result", result)]).absolute(n);
        }
    }
}

/// Whether the monitor reaches every database's primary, and it is not in recovery: `/healthz`.
pub fn primaries_known(ctx: &Shared) -> bool {
    ctx.config().settings.databases.values().all(|db| ctx.monitor().topology(&db.name).is_some_and(|t| primary_up(&t)))
}

/// A primary is elected: the configured one, or the node that took over from it.
fn primary_up(topology: &Topology) -> bool {
    topology.election.primary.is_some()
}
