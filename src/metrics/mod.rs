//! Prometheus metrics. Each running pgsplit owns its own recorder (not the process-global one),
//! so several instances in one process — the integration tests — never mix their numbers.
//!
//! The request path keeps plain atomics (pool counters, routing decisions, prepared statements,
//! pins) and records only histograms directly; a scrape copies the atomics in and reads gauges
//! from the pools, the client registry and the topology (see `admin::scrape`).

pub mod counters;
mod latency;

use ::metrics::{Counter, Gauge, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub use counters::{Counters, Refusal};
pub use latency::Latency;

static METADATA: Metadata<'static> = Metadata::new("pgsplit", Level::INFO, Some("pgsplit"));

/// Every metric pgsplit exports: name, kind, unit and help text.
pub const CATALOG: &[(&str, Kind, &str)] = &[
    ("pgsplit_clients", Kind::Gauge, "Client connections by database, user and state (active, waiting, idle)."),
    ("pgsplit_clients_refused_total", Kind::Counter, "Client connections refused, by reason."),
    ("pgsplit_server_connections", Kind::Gauge, "Server connections per pool by state (idle, active, connecting)."),
    ("pgsplit_pool_waiting_clients", Kind::Gauge, "Clients queued for a server connection, per pool."),
    ("pgsplit_server_connects_total", Kind::Counter, "Server connections opened, per pool."),
    ("pgsplit_server_connect_failures_total", Kind::Counter, "Server connections that failed to open, per pool."),
    ("pgsplit_checkout_wait_seconds", Kind::Histogram, "Time a request waited for a server connection."),
    ("pgsplit_checkout_timeouts_total", Kind::Counter, "Checkouts that gave up after checkout_timeout, per pool."),
    ("pgsplit_transactions_total", Kind::Counter, "Transactions (explicit or implicit) completed, per pool."),
    ("pgsplit_queries_total", Kind::Counter, "Requests (simple queries or Syncs) completed, per pool."),
    ("pgsplit_query_duration_seconds", Kind::Histogram, "Time from a request's first byte to its ReadyForQuery."),
    ("pgsplit_server_sent_bytes_total", Kind::Counter, "Bytes pgsplit sent to servers, per pool."),
    ("pgsplit_server_received_bytes_total", Kind::Counter, "Bytes pgsplit received from servers, per pool."),
    ("pgsplit_routing_decisions_total", Kind::Counter, "Routing decisions by target (primary, replica) and reason."),
    ("pgsplit_replica_lag_bytes", Kind::Gauge, "WAL bytes a replica has not replayed yet."),
    ("pgsplit_replica_lag_seconds", Kind::Gauge, "How far a replica's replay is behind in time (0 when caught up)."),
    ("pgsplit_replica_state", Kind::Gauge, "1 for a replica's current state (healthy, lagging, down, fenced), else 0."),
    ("pgsplit_primary_up", Kind::Gauge, "1 while the configured primary is the elected primary."),
    ("pgsplit_primary_node", Kind::Gauge, "1 for the node elected primary (from the nodes' own answers), else 0."),
    ("pgsplit_primary_elections_total", Kind::Counter, "Times a node other than the last elected one became primary."),
    ("pgsplit_seconds_without_primary", Kind::Gauge, "How long no node has been elected primary (0 while one is)."),
    ("pgsplit_primary_wal_lsn_bytes", Kind::Gauge, "The primary's current WAL position, as a byte offset."),
    ("pgsplit_lsn_probes_total", Kind::Counter, "Write LSN probes sent, behind a commit or behind a read."),
    (
        "pgsplit_topology_refreshes_total",
        Kind::Counter,
        "Fresh samples of every node asked for by requests that could not wait for the next check.",
    ),
    ("pgsplit_prepared_statements_prepared_total", Kind::Counter, "Statements prepared on server connections."),
    ("pgsplit_prepared_statements_evicted_total", Kind::Counter, "Statements closed by a connection's LRU."),
    ("pgsplit_prepared_statements_distinct", Kind::Gauge, "Distinct prepared statement texts seen."),
    ("pgsplit_sessions_pinned_total", Kind::Counter, "Clients pinned to a server connection, by reason."),
    ("pgsplit_errors_total", Kind::Counter, "ErrorResponses sent to clients, by SQLSTATE class."),
    ("pgsplit_classifier_cache_hits_total", Kind::Counter, "Statement classifications answered from the cache."),
    ("pgsplit_classifier_cache_misses_total", Kind::Counter, "Statement classifications that needed analysis."),
    ("pgsplit_log_write_errors_total", Kind::Counter, "Log lines dropped because the log output refused them."),
    (
        "pgsplit_auth_lookups_total",
        Kind::Counter,
        "Auth passthrough lookups by result (queried, shared with a concurrent login, cached, failed).",
    ),
];

/// The kind of a catalogued metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One instance's recorder and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A recorder with second-based histogram buckets and every metric described.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        for &(name, kind, help) in CATALOG {
            let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
            match kind {
                Kind::Counter => recorder.describe_counter(name.into(), unit, help.into()),
                Kind::Gauge => recorder.describe_gauge(name.into(), unit, help.into()),
                // Rendered from the pools' own atomics (`Latency`), not through the recorder.
                Kind::Histogram => {}
            }
        }
        let handle = recorder.handle();
        Metrics { recorder, handle }
    }

    /// The counter `name` with `labels`, created on first use.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &METADATA)
    }

    /// The gauge `name` with `labels`, created on first use.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    /// The text exposition of the counters and gauges (the latency histograms are rendered
    /// from the pools' atomics, see `admin::scrape`).
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect();
    Key::from_parts(name, labels)
}
