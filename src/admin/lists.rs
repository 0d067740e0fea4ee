//! SHOW LISTS and SHOW VERSION, as PgBouncer answers them, so its tools and habits carry over.
//! PgBouncer's lists are its memory caches and DNS cache; pgsplit has no free lists and resolves
//! names with the system resolver at each connect, so those rows are honestly 0.

use super::table::{text, Table, Type};
use crate::state::Shared;

/// One row per count, under PgBouncer's column names `list` and `items`.
pub fn lists(ctx: &Shared) -> Table {
    let config = ctx.config();
    let pools = ctx.pools.pools();
    let servers: usize = pools.iter().map(|p| p.stats().total).sum();
    let clients = ctx.clients.connections();
    let mut t = Table::new(&[("list", Type::Text), ("items", Type::Int)]);
    for (list, items) in [
        ("databases", config.settings.databases.len()),
        ("users", config.settings.users.len()),
        ("pools", pools.len()),
        // PgBouncer's free lists are connection slots kept for reuse; pgsplit keeps none.
        ("free_clients", 0),
        ("used_clients", clients.open),
        ("login_clients", clients.logging_in),
        ("free_servers", 0),
        ("used_servers", servers),
        // No DNS cache: names are resolved at each connect.
        ("dns_names", 0),
        ("dns_zones", 0),
        ("dns_queries", 0),
        ("dns_pending", 0),
    ] {
        t.row(vec![text(list), text(items)]);
    }
    t
}

/// One row, one column `version`: `pgsplit 0.1.0`.
pub fn version() -> Table {
    let mut t = Table::new(&[("version", Type::Text)]);
    t.row(vec![text(concat!("pgsplit ", env!("CARGO_PKG_VERSION")))]);
    t
}
