//! The monitor on the real cluster: it watches nodes, not databases, so two databases on the
//! same nodes cost one probe connection per node, and both still split reads and writes.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::harness::{self, cluster, primary_admin, unique, Proxy, REPLICAS};
use crate::routing::{port, wait_for_replicas};

/// A second database on the cluster, next to `app`, owned by `app`.
const TWIN: &str = "app_twin";

/// Creates [`TWIN`] on the primary unless it exists, and waits until both replicas have it.
async fn create_twin_database() {
    let admin = primary_admin().await;
    let exists = admin.query_opt("select 1 from pg_database where datname = $1", &[&TWIN]).await.unwrap();
    if exists.is_none() {
        // Two tests may race to create it: the loser's unique violation is no failure.
        if let Err(e) = admin.batch_execute(&format!("create database {TWIN} owner app")).await {
            let raced = ["23505", "42P04"].contains(&harness::sqlstate(&e).unwrap_or_default().as_str());
            assert!(raced, "create database {TWIN}: {e:?}");
        }
    }
    for replica in cluster().replica_ports {
        let conn = format!("host=127.0.0.1 port={replica} user=postgres dbname={TWIN}");
        let started = Instant::now();
        // Replayed within moments on a healthy cluster; a slow machine gets 30 s.
        while harness::connect(&conn).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "{TWIN} never reached replica {replica}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A login role of this test's own, so that only this pgsplit's monitor connections are counted
/// (other tests run their own monitors on the same cluster at the same time).
async fn create_monitor_role() -> String {
    let role = unique("monitor");
    let admin = primary_admin().await;
    admin.batch_execute(&format!("create role {role} login password 'mon'; grant pg_monitor to {role}")).await.unwrap();
    role
}

/// Databases `app` and `other` (a name, and the server database it stands for), both on the
/// primary and both replicas, monitored as `role`; `routing` adds to the `[routing]` section.
fn shared_nodes_config(role: &str, other: (&str, &str), routing: &str) -> String {
    let c = cluster();
    let nodes = format!(
        "primary = \"127.0.0.1:{}\"\nreplicas = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
        c.primary_port, c.replica_ports[0], c.replica_ports[1]
    );
    let (name, dbname) = other;
    format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[pool]\nsize = 4\n\
         [[users]]\nname = \"app\"\npassword = \"app\"\n\
         [databases.app]\n{nodes}\n[databases.{name}]\n{nodes}\nserver_dbname = \"{dbname}\"\n\
         [routing]\nmonitor_user = \"{role}\"\nmonitor_password = \"mon\"\n\
         stale_fallback = \"wait\"\nwait_timeout = \"30s\"\n{routing}\n"
    )
}

/// Waits up to 10 s until the monitor holds one connection on each node, logged into `app`.
async fn assert_one_monitor_connection_per_node(role: &str) {
    // The primary may still hold the short connection that reads each database's volatile
    // functions at startup.
    let one = vec![("app".to_string(), 1)];
    let started = Instant::now();
    let mut seen = monitor_connections(role).await;
    while seen.iter().any(|node| *node != one) && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = monitor_connections(role).await;
    }
    assert!(seen.iter().all(|node| *node == one), "monitor connections per node: {seen:?}");
}

/// The monitor's connections on each node (primary, replica 0, replica 1): (database, count).
async fn monitor_connections(role: &str) -> Vec<Vec<(String, i64)>> {
    let c = cluster();
    let sql = "select datname::text, count(*) from pg_stat_activity \
               where usename = $1 and backend_type = 'client backend' group by 1 order by 1";
    let mut per_node = Vec::new();
    for p in [c.primary_port, c.replica_ports[0], c.replica_ports[1]] {
        let direct = harness::connect(&format!("host=127.0.0.1 port={p} user=postgres dbname=postgres")).await.unwrap();
        let rows = direct.query(sql, &[&role]).await.unwrap();
        per_node.push(rows.iter().map(|r| (r.get(0), r.get(1))).collect());
    }
    per_node
}

/// Writes land on the primary and a read of the row just written on a replica.
async fn splits_reads_and_writes(client: &Client, db: &str) {
    let t = unique("twin");
    client.batch_execute(&format!("create table {t} (id int primary key)")).await.unwrap();
    for i in 0..5 {
        let sql = format!("insert into {t} values ({i}) returning inet_server_port()");
        assert_eq!(port(client, &sql).await, cluster().primary_port, "{db}: {sql}");
        let read = format!("select inet_server_port() from {t} where id = {i}");
        let node = port(client, &read).await;
        assert!(cluster().replica_ports.contains(&node), "{db}: read {i} after its write went to {node}");
    }
    client.batch_execute(&format!("drop table {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_databases_on_the_same_nodes_share_one_monitor_connection_per_node() {
    let _healthy = REPLICAS.read().await;
    create_twin_database().await;
    let role = create_monitor_role().await;
    let proxy = Proxy::with_config(&shared_nodes_config(&role, (TWIN, TWIN), "")).await;
    let app = proxy.client_as("app", "app", "app").await;
    let twin = proxy.client_as("app", "app", TWIN).await;
    wait_for_replicas(&proxy.app_conn()).await;
    wait_for_replicas(&proxy.conn_str("app", "app", TWIN)).await;
    // One probe per node, logged into the first database naming it.
    assert_one_monitor_connection_per_node(&role).await;
    splits_reads_and_writes(&app, "app").await;
    splits_reads_and_writes(&twin, TWIN).await;
    let one = vec![("app".to_string(), 1)];
    assert!(monitor_connections(&role).await.iter().all(|node| *node == one), "still one per node");
    drop((app, twin, proxy));
    primary_admin().await.batch_execute(&format!("drop role if exists {role}")).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_in_the_second_database_wakes_the_shared_probes() {
    let _healthy = REPLICAS.read().await;
    create_twin_database().await;
    let role = create_monitor_role().await;
    // No scheduled check after the one at startup: every later sample is one a waiting read
    // asked for. The probes were started for `app` (the first database naming the nodes); a
    // read in the twin that waited for the next check would wait out `wait_timeout` and go to
    // the primary instead of a replica.
    let config = shared_nodes_config(&role, (TWIN, TWIN), "check_interval = \"1h\"");
    let proxy = Proxy::with_config(&config).await;
    let twin = proxy.client_as("app", "app", TWIN).await;
    splits_reads_and_writes(&twin, TWIN).await;
    let asked = proxy.metric("pgsplit_topology_refreshes_total", &[("database", TWIN)]).await;
    assert!(asked.is_some_and(|n| n > 0.0), "the twin's reads asked for fresh samples: {asked:?}");
    drop((twin, proxy));
    primary_admin().await.batch_execute(&format!("drop role if exists {role}")).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refusing_the_first_database_is_probed_through_the_next() {
    let _healthy = REPLICAS.read().await;
    let role = create_monitor_role().await;
    // `a_gone` sorts before `app`, so its probes try it first; its server database does not exist.
    let proxy = Proxy::with_config(&shared_nodes_config(&role, ("a_gone", "no_such_database"), "")).await;
    let app = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    assert_one_monitor_connection_per_node(&role).await;
    splits_reads_and_writes(&app, "app").await;
    drop((app, proxy));
    primary_admin().await.batch_execute(&format!("drop role if exists {role}")).await.ok();
}
