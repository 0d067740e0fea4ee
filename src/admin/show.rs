//! The SHOW commands: each builds a [`Table`] from what the pools, the client registry, the
//! monitor and the settings know. Column names follow PgBouncer's where the concept is the same.

use std::time::{SystemTime, UNIX_EPOCH};

use super::command::{Show, HELP};
use super::table::{opt, text, Table, Type};
use crate::classify::format_lsn;
use crate::monitor::NodeId;
use crate::state::clients::ClientState;
use crate::state::Shared;

/// Builds the table for one SHOW.
pub fn table(ctx: &Shared, what: Show) -> Table {
    match what {
        Show::Pools => pools(ctx),
        Show::Servers => servers(ctx),
        Show::Clients => clients(ctx),
        Show::Stats => stats(ctx),
        Show::Replicas => replicas(ctx),
        Show::Standbys => standbys(ctx),
        Show::Rules => rules(ctx),
        Show::Config => config(ctx),
        Show::Databases => databases(ctx),
        Show::Lists => super::lists::lists(ctx),
        Show::Version => super::lists::version(),
        Show::Help => help(),
    }
}

const T: Type = Type::Text;
const I: Type = Type::Int;

fn pools(ctx: &Shared) -> Table {
    let mut t = Table::new(&[
        ("database", T),
        ("user", T),
        ("node", T),
        ("role", T),
        ("cl_active", I),
        ("cl_waiting", I),
        ("sv_active", I),
        ("sv_idle", I),
        ("sv_login", I),
        ("pool_size", I),
        ("pool_mode", T),
    ]);
    let clients = ctx.clients.list();
    for pool in sorted_pools(ctx) {
        let key = pool.key();
        let s = pool.stats();
        let linked =
            clients.iter().filter(|c| c.state() == ClientState::Active && c.server().as_ref() == Some(&key.node));
        let active = s.total.saturating_sub(s.idle + s.connecting);
        let mode =
            ctx.config().settings.databases.values().find(|d| d.server_dbname == key.database).map(|d| d.pool_mode);
        let mode = mode.flatten().unwrap_or(ctx.config().settings.pool.mode);
        t.row(vec![
            text(&key.database),
            text(&key.user),
            text(&key.node),
            text(pool.role()),
            text(linked.count()),
            text(s.waiting),
            text(active),
            text(s.idle),
            text(s.connecting),
            text(s.size),
            text(mode.name()),
        ]);
    }
    t
}

fn servers(ctx: &Shared) -> Table {
    let mut t = Table::new(&[
        ("type", T),
        ("user", T),
        ("database", T),
        ("state", T),
        ("addr", T),
        ("port", I),
        ("connect_time", T),
        ("remote_pid", I),
        ("tls", T),
        ("channel_binding", T),
    ]);
    for pool in sorted_pools(ctx) {
        let key = pool.key();
        let (host, port) = key.node.rsplit_once(':').unwrap_or((&key.node, ""));
        for (info, idle) in pool.servers() {
            let state = if idle { "idle" } else { "active" };
            t.row(vec![
                text("S"),
                text(&key.user),
                text(&key.database),
                text(state),
                text(host),
                text(port),
                text(timestamp(info.connected_at)),
                text(info.pid),
                text(info.tls),
                text(info.channel_binding),
            ]);
        }
    }
    t
}

fn clients(ctx: &Shared) -> Table {
    let mut t = Table::new(&[
        ("type", T),
        ("user", T),
        ("database", T),
        ("state", T),
        ("addr", T),
        ("port", I),
        ("connect_time", T),
        ("link", T),
        ("tls", T),
        ("application_name", T),
        ("id", I),
    ]);
    for c in ctx.clients.list() {
        t.row(vec![
            text("C"),
            text(c.user()),
            text(c.database()),
            text(c.state().label()),
            opt(c.addr.map(|a| a.ip())),
            opt(c.addr.map(|a| a.port())),
            text(timestamp(c.connected_at)),
            opt(c.server()),
            text(c.tls),
            text(&c.application_name),
            text(c.id),
        ]);
    }
    t
}

fn stats(ctx: &Shared) -> Table {
    let mut t = Table::new(&[
        ("database", T),
        ("user", T),
        ("node", T),
        ("total_server_assignment_count", I),
        ("total_xact_count", I),
        ("total_query_count", I),
        ("total_received", I),
        ("total_sent", I),
        ("total_query_time", I),
        ("total_wait_time", I),
        ("avg_query_time", I),
        ("avg_wait_time", I),
        ("connect_failures", I),
        ("checkout_timeouts", I),
    ]);
    for pool in sorted_pools(ctx) {
        let key = pool.key();
        let c = pool.counters().snapshot();
        t.row(vec![
            text(&key.database),
            text(&key.user),
            text(&key.node),
            text(c.checkouts),
            text(c.transactions),
            text(c.queries),
            // From the client's point of view, as PgBouncer counts: received from clients, sent to them.
            text(c.sent_bytes),
            text(c.received_bytes),
            text(c.query_us),
            text(c.wait_us),
            text(c.query_us.checked_div(c.queries).unwrap_or(0)),
            text(c.wait_us.checked_div(c.checkouts).unwrap_or(0)),
            text(c.connect_failures),
            text(c.checkout_timeouts),
        ]);
    }
    t
}

fn replicas(ctx: &Shared) -> Table {
    let mut t = Table::new(&[
        ("database", T),
        ("node", T),
        ("role", T),
        ("state", T),
        ("weight", I),
        ("lag_bytes", I),
        ("lag_seconds", Type::Float),
        ("replay_lsn", T),
        ("receive_lsn", T),
        ("primary_lsn", T),
        ("observed_role", T),
        ("timeline", I),
    ]);
    for db in ctx.config().settings.databases.values() {
        let Some(topology) = ctx.monitor().topology(&db.name) else { continue };
        let head = opt(topology.head_lsn().map(format_lsn));
        for (id, n) in topology.nodes() {
            // `role` is the configured one; `state` and `observed_role` what the node's answers
            // show now (after a failover the configured primary may be a standby, or fenced).
            let configured = if id == NodeId::Primary { "primary" } else { "replica" };
            t.row(vec![
                text(&db.name),
                text(&n.addr),
                text(configured),
                text(n.state()),
                (id != NodeId::Primary).then(|| n.weight.to_string()),
                opt(n.lag_bytes),
                opt(n.lag_time.map(|d| d.as_secs_f64())),
                opt(n.replay_lsn.map(format_lsn)),
                opt(n.receive_lsn.map(format_lsn)),
                head.clone(),
                text(n.role.name()),
                opt(n.timeline),
            ]);
        }
    }
    t
}

fn standbys(ctx: &Shared) -> Table {
    let mut t = Table::new(&[
        ("database", T),
        ("application_name", T),
        ("client_addr", T),
        ("state", T),
        ("sent_lsn", T),
        ("replay_lsn", T),
        ("replay_lag_seconds", Type::Float),
    ]);
    for db in ctx.config().settings.databases.values() {
        let Some(topology) = ctx.monitor().topology(&db.name) else { continue };
        for s in topology.standbys.iter() {
            t.row(vec![
                text(&db.name),
                text(&s.application_name),
                s.client_addr.clone(),
                s.state.clone(),
                opt(s.sent_lsn.map(format_lsn)),
                opt(s.replay_lsn.map(format_lsn)),
                opt(s.replay_lag.map(|d| d.as_secs_f64())),
            ]);
        }
    }
    t
}

fn rules(ctx: &Shared) -> Table {
    let mut t = Table::new(&[("position", I), ("name", T), ("matches", T), ("route", T), ("max_lag", T)]);
    for (i, rule) in ctx.config().policy.settings.rules.iter().enumerate() {
        let mut matches = Vec::new();
        for (key, list) in [
            ("databases", &rule.databases),
            ("users", &rule.users),
            ("application_names", &rule.application_names),
            ("kinds", &rule.kinds),
            ("tables", &rule.tables),
            ("functions", &rule.functions),
        ] {
            if !list.is_empty() {
                matches.push(format!("{key} = {list:?}"));
            }
        }
        if let Some(regex) = &rule.regex {
            matches.push(format!("regex = {regex:?}"));
        }
        t.row(vec![
            text(i + 1),
            text(&rule.name),
            text(matches.join(", ")),
            text(rule.route.name()),
            opt(rule.max_lag.map(crate::config::units::format_duration)),
        ]);
    }
    t
}

fn config(ctx: &Shared) -> Table {
    let mut t = Table::new(&[("key", T), ("value", T)]);
    let rendered = crate::config::render(&ctx.config().settings);
    if let Ok(value) = rendered.parse::<toml::Table>() {
        flatten(&mut t, "", &toml::Value::Table(value));
    }
    t
}

/// One row per leaf value, keys joined with dots (arrays of tables get their index).
fn flatten(t: &mut Table, prefix: &str, value: &toml::Value) {
    let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match value {
        toml::Value::Table(table) => table.iter().for_each(|(k, v)| flatten(t, &join(k), v)),
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
            items.iter().enumerate().for_each(|(i, v)| flatten(t, &format!("{prefix}[{i}]"), v))
        }
        toml::Value::String(s) => t.row(vec![text(prefix), text(s)]),
        other => t.row(vec![text(prefix), text(other)]),
    }
}

fn databases(ctx: &Shared) -> Table {
    let mut t = Table::new(&[
        ("name", T),
        ("host", T),
        ("database", T),
        ("replicas", T),
        ("pool_size", I),
        ("pool_mode", T),
        ("paused", T),
    ]);
    for db in ctx.config().settings.databases.values() {
        let replicas: Vec<&str> = db.replicas.iter().map(|r| r.addr.as_str()).collect();
        t.row(vec![
            text(&db.name),
            text(&db.primary),
            text(&db.server_dbname),
            text(replicas.join(", ")),
            text(db.pool_size.unwrap_or(ctx.config().settings.pool.size)),
            text(db.pool_mode.unwrap_or(ctx.config().settings.pool.mode).name()),
            text(ctx.pause.is_paused(&db.name)),
        ]);
    }
    t
}

fn help() -> Table {
    let mut t = Table::new(&[("command", T), ("description", T)]);
    for (command, what) in HELP {
        t.row(vec![text(command), text(what)]);
    }
    t
}

fn sorted_pools(ctx: &Shared) -> Vec<crate::pool::Pool> {
    let mut pools = ctx.pools.pools();
    pools.sort_by(|a, b| {
        (&a.key().database, &a.key().user, &a.key().node).cmp(&(&b.key().database, &b.key().user, &b.key().node))
    });
    pools
}

/// Seconds since the epoch, as PgBouncer prints times: `2026-11-23 20:40:01 UTC` is nicer but
/// needs a calendar; the epoch number sorts and converts everywhere.
fn timestamp(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs().to_string()).unwrap_or_default()
}
