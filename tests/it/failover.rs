//! Failover on a cluster of the test's own (the shared one must keep its roles): the primary is
//! killed and a replica promoted, as an HA manager would; then the old primary comes back, still
//! a primary on the old timeline (split brain). pgsplit follows the promotion with no config
//! change and never writes to the deposed node.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, unique, Proxy};
use crate::own_cluster::{OwnCluster, ONE_AT_A_TIME};
use crate::routing::port;

/// Inserts row `id` through pgsplit; `true` if the write was acknowledged.
async fn insert(client: &Client, table: &str, id: i32) -> bool {
    client.execute(&format!("insert into {table} values ($1, inet_server_port())"), &[&id]).await.is_ok()
}

/// The console's SHOW REPLICAS: (node, observed_role) per row.
async fn observed_roles(proxy: &Proxy) -> Vec<(String, String)> {
    let console = proxy.client_as("postgres", "", "pgsplit").await;
    let rows = console.simple_query("SHOW REPLICAS").await.expect("SHOW REPLICAS");
    rows.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((r.get("node")?.to_string(), r.get("observed_role").unwrap_or_default().to_string()))
            }
            _ => None,
        })
        .collect()
}

/// pgsplit's server connections to a node: backends of user `app` other than the monitor's.
async fn pgsplit_backends(direct: &Client) -> i64 {
    let sql = "select count(*) from pg_stat_activity where usename = 'app' \
               and backend_type = 'client backend' and application_name <> 'pgsplit monitor'";
    direct.query_one(sql, &[]).await.unwrap().get(0)
}

/// Waits until a node has `n` of [`pgsplit_backends`]: a connection pgsplit closed is counted
/// until its backend has noticed and exited, a moment later.
async fn wait_for_backends(direct: &Client, n: i64, what: &str) {
    let started = Instant::now();
    loop {
        let now = pgsplit_backends(direct).await;
        if now == n {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{what}: {now} server connections, not {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_on(client: &Client, table: &str, since: i32) -> i64 {
    client.query_one(&format!("select count(*) from {table} where id >= $1"), &[&since]).await.unwrap().get(0)
}

/// One failover test's start: its turn (held while `_turn` lives), its own cluster, pgsplit in
/// front of it with the cluster's config as `edit` leaves it, a client, and a table `(id, port)`
/// named after `name`.
async fn start(name: &str, edit: impl FnOnce(String) -> String) -> Setup {
    let turn = ONE_AT_A_TIME.lock().await;
    let own = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let proxy = Proxy::with_config(&edit(own.config())).await;
    let client = proxy.client().await;
    let t = unique(name);
    client.batch_execute(&format!("create table {t} (id int primary key, port int)")).await.unwrap();
    Setup { _turn: turn, own, proxy, client, t }
}

struct Setup {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    own: OwnCluster,
    proxy: Proxy,
    client: Client,
    t: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_follow_a_promotion_and_never_reach_the_returning_old_primary() {
    let Setup { _turn, own, proxy, client, t } = start("failover", |c| c).await;
    let mut next = 0;
    for _ in 0..20 {
        assert!(insert(&client, &t, next).await, "a write before the failover failed");
        next += 1;
    }
    // Replication is asynchronous: a primary stopped hard the moment after these were
    // acknowledged could take some of them with it. The failover under test starts once the
    // replica to be promoted has every one.
    {
        let replica1 = own.direct(own.port + 1).await;
        harness::wait_for_row(&replica1, &harness::table_exists(&t), "replica 1 never replayed the table").await;
        let all = format!("select 1 from {t} having count(*) = {next}");
        harness::wait_for_row(&replica1, &all, "replica 1 never replayed the rows written before the failover").await;
    }

    // A reader runs through all of it, on one client connection.
    let reads = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, Result<(), String>)>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = {
        let (reads, stop, reader, sql) =
            (reads.clone(), stop.clone(), proxy.client().await, format!("select count(*) from {t}"));
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let started = Instant::now();
                let result = reader.simple_query(&sql).await.map(drop).map_err(|e| format!("{e:?}"));
                reads.lock().unwrap().push((started, result));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The HA manager's failover: the primary dies hard...
    own.cmd(&["stop-node", "primary", "immediate"]);
    // ...and while no node answers out of recovery, a write waits failover_timeout, then says why.
    let died = Instant::now();
    loop {
        assert!(died.elapsed() < Duration::from_secs(30), "writes never reported the missing primary");
        let Ok(c) = harness::connect(&proxy.conn_str("app", "app", "app")).await else { continue };
        let sql = format!("insert into {t} values ({next}, 0)");
        match c.execute(&sql, &[]).await {
            Ok(_) => panic!("a write was acknowledged with no primary up"),
            Err(e) if harness::sqlstate(&e).as_deref() == Some("57P03") => {
                let text = e.as_db_error().map(|d| format!("{} {:?}", d.message(), d.hint())).unwrap_or_default();
                assert!(text.contains("\"app\" has no primary") && text.contains("failover"), "{text}");
                break;
            }
            // Until the monitor sees the primary gone, the write still tries it: 08006.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // ...then replica 1 is promoted.
    own.cmd(&["promote-node", "replica1"]);
    let promoted = Instant::now();
    let mut acknowledged: Vec<i32> = (0..next).collect();
    let resumed = loop {
        assert!(promoted.elapsed() < Duration::from_secs(60), "writes did not resume on the promoted replica");
        // A new connection each try: the old one may have been on the dead primary.
        if let Ok(c) = harness::connect(&proxy.conn_str("app", "app", "app")).await {
            if insert(&c, &t, next).await {
                acknowledged.push(next);
                next += 1;
                break promoted.elapsed();
            }
        }
        next += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let resumed_at = Instant::now();
    println!("first write acknowledged {} ms after the promotion", resumed.as_millis());
    let node = format!("127.0.0.1:{}", own.port + 1);
    assert_eq!(proxy.metric("pgsplit_primary_node", &[("node", &node)]).await, Some(1.0), "the promoted node");
    assert_eq!(proxy.metric("pgsplit_primary_elections_total", &[]).await, Some(2.0), "at start, then the promotion");
    assert_eq!(proxy.metric("pgsplit_seconds_without_primary", &[]).await, Some(0.0));
    let client = proxy.client().await;
    for _ in 0..20 {
        assert!(insert(&client, &t, next).await, "a write after the failover failed");
        acknowledged.push(next);
        next += 1;
    }
    let new_primary = own.direct(own.port + 1).await;
    let rows: Vec<i32> = new_primary
        .query(&format!("select id from {t} order by id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, acknowledged, "every acknowledged write is on the new primary, once");

    // Split brain: the old primary comes back, still a primary on the old timeline.
    own.cmd(&["start-node", "primary"]);
    let back = Instant::now();
    loop {
        let roles = observed_roles(&proxy).await;
        if roles.iter().any(|(node, role)| node.ends_with(&format!(":{}", own.port)) && role == "fenced") {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "the returning old primary is not shown fenced: {roles:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let marker = next;
    let until = Instant::now() + Duration::from_secs(15);
    let mut written = 0;
    while Instant::now() < until {
        assert!(insert(&client, &t, next).await, "a write during the split brain failed");
        next += 1;
        written += 1;
    }
    let old_primary = own.direct(own.port).await;
    assert_eq!(count_on(&old_primary, &t, marker).await, 0, "writes landed on the fenced old primary");
    assert_eq!(count_on(&new_primary, &t, marker).await, written, "the promoted node took every write");
    println!("{written} writes during the split brain, 0 on the fenced node");
    stop.cancel();
    reader.await.unwrap();
    let reads = reads.lock().unwrap();
    // By when each read started: one started once writes had resumed must not fail.
    let failed_after: Vec<_> = reads.iter().filter(|(at, r)| *at > resumed_at && r.is_err()).collect();
    let after = reads.iter().filter(|(at, _)| *at > resumed_at).count();
    assert!(after > 0, "the reader ran after writes resumed");
    assert!(failed_after.is_empty(), "reads failed once a primary was elected: {failed_after:?}");
    let failed = reads.iter().filter(|(_, r)| r.is_err()).count();
    println!("{} reads, {failed} failed in all, 0 once writes resumed", reads.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_a_demoted_primary_refuses_runs_on_the_new_one_and_a_switchover_swaps_the_roles() {
    // Samples only on demand: pgsplit still believes the old primary is primary when the write
    // comes, so the write reaches the demoted node and is refused there (25006).
    let on_demand = |config: String| {
        config
            .replace("check_interval = \"100ms\"", "check_interval = \"1h\"")
            .replace("failover_timeout = \"1s\"", "failover_timeout = \"10s\"")
    };
    let Setup { _turn, own, proxy, client, t } = start("switchover", on_demand).await;
    assert!(insert(&client, &t, 0).await);

    // A planned switchover: the old primary stops cleanly, replica 1 is promoted, and the old
    // primary comes back as a standby of it.
    own.cmd(&["stop-node", "primary", "fast"]);
    own.cmd(&["promote-node", "replica1"]);
    own.cmd(&["rejoin-node", "primary", "replica1"]);

    let client = proxy.client().await;
    let sql = format!("insert into {t} values (1, inet_server_port())");
    let written = client.execute(&sql, &[]).await;
    assert!(written.is_ok(), "the write refused by the demoted node runs on the new primary: {written:?}");
    let retries = proxy.metric("pgsplit_routing_decisions_total", &[("reason", "failover_retry")]).await;
    assert_eq!(retries, Some(1.0), "counted as a failover retry");
    let new_primary = own.direct(own.port + 1).await;
    let port: i32 = new_primary.query_one(&format!("select port from {t} where id = 1"), &[]).await.unwrap().get(0);
    assert_eq!(port as u16, own.port + 1);

    // Both roles swapped and nothing fenced, once every node's fresh sample is in (the retry
    // asked all of them; one may land a moment after the new primary's).
    let asked = Instant::now();
    loop {
        let roles = observed_roles(&proxy).await;
        let role_of = |port: u16| roles.iter().find(|(n, _)| n.ends_with(&format!(":{port}"))).map(|(_, r)| r.clone());
        let swapped =
            role_of(own.port).as_deref() == Some("standby") && role_of(own.port + 1).as_deref() == Some("primary");
        if swapped && !roles.iter().any(|(_, r)| r == "fenced") {
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(10), "roles did not swap: {roles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Inside an explicit transaction nothing is retried: the transaction's own error stands.
    let tx = proxy.client().await;
    tx.batch_execute("begin").await.unwrap();
    let read_only = tx.batch_execute("set transaction read only").await;
    assert!(read_only.is_ok());
    let e = tx.batch_execute(&format!("insert into {t} values (2, 0)")).await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("25006"));
    tx.batch_execute("rollback").await.unwrap();
    let again = proxy.metric("pgsplit_routing_decisions_total", &[("reason", "failover_retry")]).await;
    assert_eq!(again, Some(1.0), "no retry inside a transaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_switchover_the_old_primary_serves_reads_once_it_streams_and_nothing_is_fenced() {
    let Setup { _turn, own, proxy, client, t } = start("rejoined", |c| c).await;
    // A prepared statement and a session setting made before: they follow the client.
    let write = client.prepare(&format!("insert into {t} values ($1, inet_server_port())")).await.unwrap();
    client.batch_execute("set statement_timeout = '12345ms'").await.unwrap();

    own.cmd(&["stop-node", "primary", "fast"]);
    own.cmd(&["promote-node", "replica1"]);
    own.cmd(&["rejoin-node", "primary", "replica1"]);

    // Writes go to the promoted node; the old primary, a standby of it now, takes reads again.
    let started = Instant::now();
    let mut id = 0;
    while client.execute(&write, &[&id]).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "writes never resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let timeout = client.query_one("show statement_timeout", &[]).await.unwrap();
    assert_eq!(timeout.get::<_, String>(0), "12345ms", "the session setting followed the client");
    let mut seen = std::collections::BTreeMap::new();
    while !seen.contains_key(&own.port) {
        assert!(started.elapsed() < Duration::from_secs(60), "no read reached the rejoined old primary: {seen:?}");
        *seen.entry(port(&client, "select inet_server_port()").await).or_insert(0) += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    id += 1;
    client.execute(&write, &[&id]).await.expect("the prepared write runs on the new primary");
    let new_primary = own.direct(own.port + 1).await;
    let ports: Vec<i32> = new_primary
        .query(&format!("select port from {t} order by id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ports.iter().all(|p| *p as u16 == own.port + 1), "every write ran on the new primary: {ports:?}");
    let roles = observed_roles(&proxy).await;
    assert!(!roles.iter().any(|(_, r)| r == "fenced"), "nothing is fenced: {roles:?}");
    let old = format!(":{}", own.port);
    assert!(roles.iter().any(|(n, r)| n.ends_with(&old) && r == "standby"), "{roles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_on_a_primary_deposed_while_up_is_cut_off_and_never_commits_there() {
    let Setup { _turn, own, proxy, client: _, t } = start("deposed", |c| c).await;
    let replica1 = own.direct(own.port + 1).await;
    let started = Instant::now();
    harness::wait_for_row(&replica1, &harness::table_exists(&t), "replica 1 never replayed the table").await;
    let tx = proxy.client().await;
    tx.batch_execute(&format!("begin; insert into {t} values (1, inet_server_port())")).await.unwrap();
    // A second connection, idle in the pool once its transaction commits.
    let other = proxy.client().await;
    other.batch_execute(&format!("begin; insert into {t} values (10, 0); commit")).await.unwrap();
    let old_primary = own.direct(own.port).await;
    assert_eq!(pgsplit_backends(&old_primary).await, 2, "one connection in a transaction, one idle");
    let replicated = format!("select 1 from {t} where id = 10");
    harness::wait_for_row(&replica1, &replicated, "replica 1 never replayed row 10").await;

    // Replica 1 is promoted while the old primary is still up: split brain from the start, and
    // the old primary, on the lower timeline, is deposed.
    own.cmd(&["promote-node", "replica1"]);
    loop {
        let roles = observed_roles(&proxy).await;
        if roles.iter().any(|(node, role)| node.ends_with(&format!(":{}", own.port)) && role == "fenced") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the old primary is not shown fenced: {roles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The idle connection to the fenced node is closed; the one in the transaction stays until
    // its client's next statement.
    wait_for_backends(&old_primary, 1, "the idle connection to the fenced node stays open").await;
    let e = tx.batch_execute(&format!("insert into {t} values (2, inet_server_port())")).await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("08006"), "{e:?}");
    let message = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(message.contains("is no longer the primary"), "{message}");
    // The session goes on outside a transaction: its COMMIT commits nothing anywhere.
    tx.batch_execute("commit").await.unwrap();
    tx.batch_execute(&format!("insert into {t} values (3, inet_server_port())")).await.unwrap();
    let on_old: i64 =
        old_primary.query_one(&format!("select count(*) from {t} where id < 10"), &[]).await.unwrap().get(0);
    assert_eq!(on_old, 0, "nothing of the cut-off transaction committed on the deposed node");
    wait_for_backends(&old_primary, 0, "a server connection to the fenced node is left").await;
    let ids: Vec<i32> = replica1
        .query(&format!("select id from {t} order by id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![3, 10], "the write after the cut reached the new primary (10 was replicated before)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_listed_as_a_replica_is_never_used() {
    let _one = ONE_AT_A_TIME.lock().await;
    let own = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let stranger = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    // Replica 2 of the database is really a standby of another cluster.
    let config =
        own.config().replace(&format!("127.0.0.1:{}\"]", own.port + 2), &format!("127.0.0.1:{}\"]", stranger.port + 1));
    assert!(config.contains(&format!(":{}\"]", stranger.port + 1)), "{config}");
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client().await;
    let started = Instant::now();
    let mut seen = std::collections::BTreeMap::new();
    while seen.get(&(own.port + 1)).copied().unwrap_or(0) < 20 {
        assert!(started.elapsed() < Duration::from_secs(30), "reads never reached the cluster's own replica: {seen:?}");
        *seen.entry(port(&client, "select inet_server_port()").await).or_insert(0) += 1;
    }
    assert_eq!(seen.get(&(stranger.port + 1)), None, "a read reached the other cluster's node: {seen:?}");
    let roles = observed_roles(&proxy).await;
    let foreign = format!(":{}", stranger.port + 1);
    assert!(roles.iter().any(|(n, r)| n.ends_with(&foreign) && r == "foreign"), "{roles:?}");
    // Writes are untouched: the cluster's own primary takes them.
    client.batch_execute(&format!("create table {} (id int)", unique("foreign"))).await.unwrap();
}
