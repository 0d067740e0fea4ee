//! The integration tests: one binary, one local cluster, pgsplit in-process per test.

mod admin;
mod auth;
mod bad_input;
mod cli;
mod clients;
mod config_files;
mod consistency;
mod drivers;
mod failover;
mod forwarding;
mod fuzz_live;
mod harness;
mod hostile_login;
mod logs;
mod metrics;
mod monitor;
mod pinning;
mod pipeline;
mod pooling;
mod quickstart;
mod raw;
mod routing;
mod session_state;
mod shutdown;
mod tls;
mod unnamed;
