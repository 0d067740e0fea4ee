//! The metrics endpoint during real workloads: routing decisions, read-your-writes, lag gauges,
//! pool and client gauges, refusals, pins, and prepared statements that stay prepared.

use std::time::Duration;

use crate::harness::{self, cluster, unique, Proxy, REPLICAS};
use crate::routing::wait_for_replicas;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_split_workload() {
    let _healthy = REPLICAS.read().await;
    // A read no replica can take yet waits for one rather than going to the primary, so that how
    // reads are counted does not depend on how fast the monitor sees the replicas.
    let config = harness::split_config_waiting("");
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let labels = [("target", "replica"), ("reason", "read")];
    let before = proxy.metric("pgsplit_routing_decisions_total", &labels).await.unwrap_or(0.0);
    for _ in 0..20 {
        client.query_one("select 1", &[]).await.unwrap();
    }
    let after = proxy.metric("pgsplit_routing_decisions_total", &labels).await.expect("replica reads are counted");
    // Each query is one request or more (a prepare, then the execution).
    assert!(after >= before + 20.0, "replica reads went from {before} to {after}");
    let fallback = proxy.metric("pgsplit_routing_decisions_total", &[("target", "primary"), ("reason", "fallback")]);
    assert_eq!(fallback.await, None, "no read fell back to the primary");
    let t = unique("metrics");
    client.batch_execute(&format!("create table {t} (id int)")).await.unwrap();
    client.execute(&format!("insert into {t} values (1)"), &[]).await.unwrap();
    client.query_one(&format!("select count(*) from {t}"), &[]).await.unwrap();
    client.batch_execute(&format!("drop table {t}")).await.unwrap();
    let ryw = proxy.metric("pgsplit_routing_decisions_total", &[("reason", "read_your_writes")]).await;
    assert!(ryw.is_some_and(|n| n >= 1.0), "a read-your-writes decision is counted: {ryw:?}");
    let writes = proxy.metric("pgsplit_routing_decisions_total", &[("target", "primary"), ("reason", "write")]).await;
    assert!(writes.is_some_and(|n| n >= 2.0), "writes are counted: {writes:?}");
    for port in cluster().replica_ports {
        let node = format!("127.0.0.1:{port}");
        let lag = proxy.metric("pgsplit_replica_lag_bytes", &[("node", &node)]).await;
        assert!(lag.is_some(), "lag gauge for {node}");
        assert!(proxy.metric("pgsplit_replica_lag_seconds", &[("node", &node)]).await.is_some());
        // Right after the write a replica may show as lagging for a moment; it must be healthy soon.
        let healthy = [("node", node.as_str()), ("state", "healthy")];
        let started = std::time::Instant::now();
        while proxy.metric("pgsplit_replica_state", &healthy).await != Some(1.0) {
            assert!(started.elapsed() < Duration::from_secs(10), "{node} never showed as healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let queries = proxy.metric("pgsplit_queries_total", &[("node", &node), ("role", "replica")]).await;
        assert!(queries.is_some_and(|n| n >= 1.0), "queries on {node}: {queries:?}");
    }
    let primary = format!("127.0.0.1:{}", cluster().primary_port);
    assert_eq!(proxy.metric("pgsplit_primary_up", &[("database", "app"), ("node", &primary)]).await, Some(1.0));
    assert!(proxy.metric("pgsplit_primary_wal_lsn_bytes", &[("database", "app")]).await.is_some_and(|v| v > 0.0));
    let xacts = proxy.metric("pgsplit_transactions_total", &[("node", &primary)]).await;
    assert!(xacts.is_some_and(|n| n >= 3.0), "transactions on the primary: {xacts:?}");
    let idle = proxy.metric("pgsplit_clients", &[("database", "app"), ("user", "app"), ("state", "idle")]).await;
    let lines = proxy.http_get("/metrics").await.1;
    let clients: Vec<&str> = lines.lines().filter(|l| l.starts_with("pgsplit_clients{")).collect();
    assert_eq!(idle, Some(1.0), "one idle client: {clients:#?}");
    let idle_servers = proxy.metric("pgsplit_server_connections", &[("node", &primary), ("state", "idle")]).await;
    assert!(idle_servers.is_some_and(|n| n >= 1.0));
    let waits = proxy.metric("pgsplit_checkout_wait_seconds_count", &[("node", &primary)]).await;
    assert!(waits.is_some_and(|n| n >= 3.0), "checkout waits observed: {waits:?}");
    let latency = proxy.metric("pgsplit_query_duration_seconds_count", &[("node", &primary)]).await;
    assert!(latency.is_some_and(|n| n >= 3.0), "query latencies observed: {latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_refusals_errors_and_pins_are_reported() {
    let proxy = Proxy::start().await;
    // Healthy once the monitor has reached the primary: within a few check intervals.
    let started = std::time::Instant::now();
    while proxy.http_get("/healthz").await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "/healthz never turned 200");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.http_get("/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(proxy.http_get("/nope").await.0, 404);
    let (status, body) = proxy.http_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("# HELP pgsplit_clients "), "metrics are described: {body}");
    assert!(proxy.try_client("app", "wrong", "app").await.is_err());
    assert!(proxy.try_client("app", "app", "no_such_db").await.is_err());
    assert_eq!(proxy.metric("pgsplit_clients_refused_total", &[("reason", "auth")]).await, Some(1.0));
    assert_eq!(proxy.metric("pgsplit_clients_refused_total", &[("reason", "unknown_database")]).await, Some(1.0));
    let client = proxy.client().await;
    assert!(client.batch_execute("select 1/0").await.is_err());
    let server_errors = proxy.metric("pgsplit_errors_total", &[("class", "22"), ("source", "server")]).await;
    assert_eq!(server_errors, Some(1.0), "division by zero is class 22");
    let own = proxy.metric("pgsplit_errors_total", &[("class", "28"), ("source", "pgsplit")]).await;
    assert_eq!(own, Some(1.0), "the failed password is class 28");
    client.batch_execute(&format!("listen {}", unique("ch"))).await.unwrap();
    client.batch_execute("unlisten *").await.unwrap();
    client.batch_execute(&format!("listen {}", unique("ch"))).await.unwrap();
    assert_eq!(proxy.metric("pgsplit_sessions_pinned_total", &[("reason", "listen")]).await, Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_are_prepared_once_per_connection() {
    const CLIENTS: usize = 8;
    const POOL: f64 = 2.0;
    let proxy = Proxy::with_config(&harness::test_config("size = 2\ncheckout_timeout = \"10s\"", "")).await;
    let t = unique("prep");
    proxy.client().await.batch_execute(&format!("create table {t} (id int primary key, v text)")).await.unwrap();
    let texts = [
        format!("select v from {t} where id = $1"),
        format!("insert into {t} values ($1, $2) on conflict (id) do update set v = excluded.v"),
        format!("select count(*) from {t} where id < $1"),
    ];
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = proxy.client().await;
        let mut statements = Vec::new();
        for text in &texts {
            statements.push(client.prepare(text).await.unwrap());
        }
        clients.push((client, statements));
    }
    round(&clients, 0).await;
    let warm = proxy.metric("pgsplit_prepared_statements_prepared_total", &[]).await.expect("prepares counted");
    round(&clients, 100).await;
    round(&clients, 200).await;
    let later = proxy.metric("pgsplit_prepared_statements_prepared_total", &[]).await.expect("prepares counted");
    let distinct = proxy.metric("pgsplit_prepared_statements_distinct", &[]).await;
    eprintln!("server prepares after warm-up {warm}, after 1200 more executions {later}; distinct {distinct:?}");
    assert_eq!(distinct, Some(texts.len() as f64));
    assert!(warm <= POOL * texts.len() as f64, "{warm} prepares for {POOL} connections × {} statements", texts.len());
    assert_eq!(later, warm, "no statement is prepared again once every connection has it");
    assert_eq!(proxy.metric("pgsplit_prepared_statements_evicted_total", &[]).await, Some(0.0));
    tokio::time::sleep(Duration::from_millis(10)).await;
    proxy.client().await.batch_execute(&format!("drop table {t}")).await.unwrap();
}

/// Every client runs 25 transactions of its three prepared statements, all clients at once.
async fn round(clients: &[(tokio_postgres::Client, Vec<tokio_postgres::Statement>)], base: i32) {
    let work = clients.iter().enumerate().map(|(n, (client, s))| async move {
        for i in 0..25 {
            let id = base + (n as i32) * 1000 + i;
            client.execute(&s[1], &[&id, &format!("v{id}")]).await.unwrap();
            client.query_opt(&s[0], &[&id]).await.unwrap();
            client.query_one(&s[2], &[&id]).await.unwrap();
        }
    });
    futures_util::future::join_all(work).await;
}
