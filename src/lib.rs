//! pgsplit: a PostgreSQL proxy that pools server connections and splits reads from writes.
//!
//! A request flows `client` → `route` → `pool` → `server` and the replies flow back; `protocol`
//! frames bytes for all of them, `classify` tells what a query's SQL means for routing, `config`
//! turns the TOML file into each module's settings, `stream` and `tls` carry the bytes of client
//! and server connections (plain or TLS), and `app` wires it together. See
//! ARCHITECTURE.md for a glossary and one request's sequence.

pub mod admin;
pub mod app;
pub mod auth;
pub mod classify;
pub mod cli;
pub mod client;
pub mod config;
pub mod explain;
pub mod metrics;
pub mod monitor;
pub mod pool;
pub mod protocol;
pub mod route;
pub mod server;
pub mod session;
pub mod socket;
pub mod state;
pub mod stream;
pub mod tls;
