//! pgsplit: a PostgreSQL proxy that pools server connections and splits reads from writes.
//!
//! A request flows `client` (the front door) → `session` → `route` → `pool` → `server` and the
//! replies flow back. Below the session, `state` holds what every session shares and `monitor`
//! the topology; `protocol` frames bytes for all of them, `classify` tells what a query's SQL
//! means for routing, `config` turns the TOML file into each module's settings, `stream` and
//! `tls` carry the bytes of connections (plain or TLS), `log_output` takes the log lines, and
//! `app` wires it together. Modules
//! import downwards only (`scripts/check-layers`). See ARCHITECTURE.md for the floors, a
//! glossary and one request's sequence.

pub(crate) mod admin;
pub mod app;
pub(crate) mod auth;
pub mod classify;
pub mod cli;
pub(crate) mod client;
pub mod config;
pub mod explain;
#[cfg(test)]
mod fuzz;
pub mod log_output;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod pool;
pub mod protocol;
pub(crate) mod route;
pub(crate) mod server;
pub mod session;
pub(crate) mod socket;
pub(crate) mod state;
pub(crate) mod stream;
pub(crate) mod tls;

/// The crate-internal items the criterion benches of the per-request path (`benches/request.rs`)
/// drive directly, so each stage can be timed without sockets, and the bench's own clients use
/// (`examples/storm`: SCRAM's PBKDF2). Not an API: hidden, unstable.
#[doc(hidden)]
pub mod bench_support {
    pub use crate::auth::scram::hi as scram_salted_password;
    pub use crate::monitor::topology::{Freshness, Sample};
    pub use crate::monitor::{NodeId, Topology};
    pub use crate::route::stats::DecisionCounts;
    pub use crate::route::{decide, Decision, Policy, Route};
    pub use crate::server::conn::BatchEnd;
    pub use crate::server::{BackendKey, Outgoing, ServerConn};
    pub use crate::session::dispatch::Requester;
    pub use crate::session::misroute::{judge, Verdict};
    pub use crate::session::outbox::{Outbox, Withheld};
    pub use crate::session::prepared::Prepared;
    pub use crate::session::routing::{Inspection, RoutingState};
    pub use crate::state::statements::StatementIds;
    pub use crate::stream::Stream;
}
