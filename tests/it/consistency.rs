//! Consistency under lag and failure: read-your-writes by LSN with a paused replica (after
//! autocommit writes, and after transactions whose COMMIT carries the probe), a failed commit,
//! LSN tokens across connections, and a replica that dies and comes back.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::harness::{self, cluster, unique, Proxy, REPLICAS};
use crate::raw::{self, message, Raw};
use crate::routing::{port, wait_for_a_replica, wait_for_replicas};

/// Counts row `id` of table `t` through `client`: how many it sees, and the port of the node
/// that served the read.
async fn count_and_port(client: &Client, t: &str, id: i32) -> (i64, u16) {
    let row =
        client.query_one(&format!("select count(*), inet_server_port() from {t} where id = $1"), &[&id]).await.unwrap();
    (row.get(0), row.get::<_, i32>(1) as u16)
}

/// Runs `body` as its own task, then `cleanup`, then re-raises a panic from `body`.
async fn with_cleanup<F, C>(body: F, cleanup: C)
where
    F: std::future::Future<Output = ()> + Send + 'static,
    C: std::future::Future<Output = ()>,
{
    let result = tokio::spawn(body).await;
    cleanup.await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `body` as its own task with replay paused on the first replica, then resumes replay,
/// whatever `body` did.
async fn with_replay_paused<F>(body: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let paused = harness::replica_admin(0).await;
    paused.batch_execute("select pg_wal_replay_pause()").await.unwrap();
    with_cleanup(body, async {
        paused.batch_execute("select pg_wal_replay_resume()").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_with_replay_paused_on_one_replica() {
    let _exclusive = REPLICAS.write().await;
    // Reads wait for a replica that has their session's writes (asking the replicas for fresh
    // samples meanwhile) instead of falling back to the primary: every read after a write is then
    // a read on the caught-up replica, however fast the monitor happens to notice it.
    let config = harness::split_config_waiting("");
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique("ryw");
    client.batch_execute(&format!("create table {t} (id int primary key)")).await.unwrap();
    let body = async move {
        let mut stale = 0;
        let mut replica_reads = 0;
        for i in 0..1000 {
            client.execute(&format!("insert into {t} values ($1)"), &[&i]).await.unwrap();
            let (count, served_by) = count_and_port(&client, &t, i).await;
            if count != 1 {
                eprintln!("stale read of row {i} served by port {served_by}");
                stale += 1;
            }
            assert_ne!(served_by, cluster().replica_ports[0], "the paused replica served a read");
            if served_by == cluster().replica_ports[1] {
                replica_reads += 1;
            }
        }
        assert_eq!(stale, 0, "stale reads");
        assert_eq!(replica_reads, 1000, "every read waits for the caught-up replica");
        client.batch_execute(&format!("drop table {t}")).await.unwrap();
    };
    with_replay_paused(body).await;
}

/// Transactions that end with a COMMIT sent alone, the form the LSN probe rides in (one Query,
/// `COMMIT;SELECT pg_current_wal_insert_lsn()`): each read after one goes to the replica that
/// replayed it, never to the paused one, and never to the primary for want of an LSN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_sent_alone_learns_its_lsn() {
    let _exclusive = REPLICAS.write().await;
    let proxy = Proxy::with_config(&harness::split_config_waiting("")).await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique("commit");
    client.batch_execute(&format!("create table {t} (id int primary key)")).await.unwrap();
    let body = async move {
        for i in 0..50 {
            client.batch_execute("begin").await.unwrap();
            client.execute(&format!("insert into {t} values ($1)"), &[&i]).await.unwrap();
            client.batch_execute("commit").await.unwrap();
            let (count, served_by) = count_and_port(&client, &t, i).await;
            assert_eq!(count, 1, "read {i} missed its own commit");
            assert_eq!(served_by, cluster().replica_ports[1], "read {i}: the caught-up replica");
        }
        client.batch_execute(&format!("drop table {t}")).await.unwrap();
    };
    with_replay_paused(body).await;
}

/// A COMMIT that fails (a deferred foreign key) rolls its transaction back: the client gets the
/// error, and the session is as clean as before it, so its reads still go to a replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_leaves_the_session_as_clean_as_before() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::with_config(&harness::split_config_waiting("")).await;
    let setup = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let (p, c) = (unique("parent"), unique("child"));
    setup
        .batch_execute(&format!(
            "create table {p} (id int primary key);
             create table {c} (id int references {p} (id) deferrable initially deferred)"
        ))
        .await
        .unwrap();
    let client = proxy.client().await;
    read_as_a_clean_session(&proxy, &client, "a new session").await;
    client.batch_execute("begin").await.unwrap();
    client.execute(&format!("insert into {c} values (1)"), &[]).await.unwrap();
    let e = client.batch_execute("commit").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("23503"), "{e}");
    // tokio-postgres returns the error as soon as it arrives, and PostgreSQL sends it before the
    // ReadyForQuery, in a send of its own: a query sent at once may be pipelined behind the COMMIT,
    // and run on its connection. One round trip settles the COMMIT; the next read is a request
    // of its own.
    client.batch_execute("select 1").await.unwrap();
    read_as_a_clean_session(&proxy, &client, "after the rolled-back commit, the session").await;
    // Counted on the primary: the clean session reads on a replica, which need not have
    // replayed the setup session's CREATE TABLE yet.
    let primary = harness::primary_admin().await;
    let rows = primary.query_one(&format!("select count(*) from {c}"), &[]).await.unwrap();
    assert_eq!(rows.get::<_, i64>(0), 0, "nothing of it was committed");
    setup.batch_execute(&format!("drop table {c}; drop table {p}")).await.unwrap();
}

/// Reads once through `client`, the only session of `proxy` that reads, and checks it was routed
/// as a clean session's read: to a replica, or to the primary only because no replica was fresh
/// enough (on a busy machine a replica's replay can wait behind another test's query), never
/// for read-your-writes.
async fn read_as_a_clean_session(proxy: &Proxy, client: &Client, who: &str) {
    let own_writes = primary_decisions(proxy, "read_your_writes").await;
    let fallbacks = primary_decisions(proxy, "fallback").await;
    let served_by = port(client, "select inet_server_port()").await;
    let now = primary_decisions(proxy, "read_your_writes").await;
    assert_eq!(now, own_writes, "{who} read on the primary for its own writes");
    if !cluster().replica_ports.contains(&served_by) {
        let now = primary_decisions(proxy, "fallback").await;
        assert_ne!(now, fallbacks, "{who} read on {served_by} with a replica fresh enough");
    }
}

/// Requests routed to the primary for `reason`, as `/metrics` counts them.
async fn primary_decisions(proxy: &Proxy, reason: &str) -> Option<f64> {
    proxy.metric("pgsplit_routing_decisions_total", &[("target", "primary"), ("reason", reason)]).await
}

/// Runs one simple query on a new raw trust login and returns the `pgsplit.write_lsn` it
/// reported. The session asks for it at startup (`-c pgsplit.report_write_lsn=on`), as a client
/// handing tokens to other connections does, when `asks`.
async fn raw_write(proxy: &Proxy, sql: &str, asks: bool) -> Option<String> {
    let mut params = vec![("user", "app_trust"), ("database", "app")];
    if asks {
        params.push(("options", "-c pgsplit.report_write_lsn=on"));
    }
    let mut s = Raw::start(proxy.addr, &params).await;
    let login = s.until_ready(1).await;
    assert!(!login.iter().any(|(t, _)| *t == b'E'), "login failed: {login:?}");
    crate::write_lsn::run(&mut s, sql).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsn_token_gives_read_your_writes_across_connections() {
    let _exclusive = REPLICAS.write().await;
    let proxy = Proxy::split().await;
    let reader = proxy.client_as("app_trust", "", "app").await;
    wait_for_replicas(&proxy.conn_str("app_trust", "", "app")).await;
    let t = unique("token");
    reader.batch_execute(&format!("create table {t} (id int)")).await.unwrap();
    let body = async move {
        for i in 0..50 {
            let insert = format!("insert into {t} values ({i})");
            if i == 0 {
                assert_eq!(raw_write(&proxy, &insert, false).await, None, "reported only when asked");
                continue;
            }
            let lsn = raw_write(&proxy, &insert, true).await.expect("write reports its LSN");
            assert!(pgsplit::classify::parse_lsn(&lsn).is_some(), "{lsn}");
            reader.batch_execute(&format!("set pgsplit.min_lsn = '{lsn}'")).await.unwrap();
            let (count, served_by) = count_and_port(&reader, &t, i).await;
            assert_eq!(count, 1, "the reader saw the other connection's write");
            assert_ne!(served_by, cluster().replica_ports[0]);
        }
        assert_eq!(raw_write(&proxy, "select 1", true).await, None, "a read reports no write LSN");
        reader.batch_execute(&format!("drop table {t}")).await.unwrap();
    };
    with_replay_paused(body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replica_costs_reads_nothing_and_is_used_again_after_restart() {
    let _exclusive = REPLICAS.write().await;
    let proxy = Proxy::with_config(&harness::split_config("size = 4\nconnect_timeout = \"1s\"", "")).await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let body = async move {
        harness::cluster_cmd(&["stop-node", "replica2", "immediate"]);
        // One check interval plus the connect timeout.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for _ in 0..50 {
            let p = port(&client, "select inet_server_port()").await;
            assert_ne!(p, cluster().replica_ports[1], "the stopped replica cannot have served this");
        }
        harness::cluster_cmd(&["start-node", "replica2"]);
        // The client stays on the replica it moved to while both are idle: new sessions take
        // the replicas in turn, so the restarted one gets theirs.
        let started = Instant::now();
        loop {
            let session = proxy.client().await;
            if port(&session, "select inet_server_port()").await == cluster().replica_ports[1] {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the restarted replica never got reads again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    with_cleanup(body, async {
        harness::cluster_cmd(&["start-node", "replica2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_stops_getting_reads_and_gets_them_back() {
    let _exclusive = REPLICAS.write().await;
    let config = format!(
        "{}\n[routing]\nread_your_writes = \"off\"\nmax_lag = \"500ms\"\n",
        harness::split_config("size = 4", "")
    );
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique("lag");
    let admin = harness::primary_admin().await;
    admin.batch_execute(&format!("create table {t} (x int)")).await.unwrap();
    let body = async move {
        // Keep the primary committing so the paused replica falls behind in time.
        for i in 0..15 {
            admin.execute(&format!("insert into {t} values ($1)"), &[&i]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..30 {
            assert_ne!(
                port(&client, "select inet_server_port()").await,
                cluster().replica_ports[0],
                "a lagging replica served a read"
            );
        }
        harness::replica_admin(0).await.batch_execute("select pg_wal_replay_resume()").await.unwrap();
        // New sessions, as the client keeps the replica it read from while both are idle.
        let started = Instant::now();
        while port(&proxy.client().await, "select inet_server_port()").await != cluster().replica_ports[0] {
            assert!(started.elapsed() < Duration::from_secs(20), "the replica never got reads back after catching up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        admin.batch_execute(&format!("drop table {t}")).await.unwrap();
    };
    with_replay_paused(body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_asks_the_replicas_instead_of_waiting_for_the_next_check() {
    let _healthy = REPLICAS.read().await;
    // No scheduled check after the one at startup: every sample the monitor takes during the test
    // is one a waiting request asked for. A read that waited for the next check instead would
    // wait out `wait_timeout` and go to the primary, each time (and `wait_for_a_replica` would
    // not even see a replica eligible). However slow the machine, a replica that replays within
    // `wait_timeout` takes every read after a write.
    let config = harness::split_config_waiting("check_interval = \"1h\"");
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client().await;
    // One replica is enough: the other may need more samples than anything here asks for.
    wait_for_a_replica(&client).await;
    let t = unique("asks");
    client.batch_execute(&format!("create table {t} (id int primary key)")).await.unwrap();
    let asked = || proxy.metric("pgsplit_topology_refreshes_total", &[("database", "app")]);
    let asked_before = asked().await.expect("refreshes are counted");
    for i in 0..20 {
        client.execute(&format!("insert into {t} values ($1)"), &[&i]).await.unwrap();
        let (count, served_by) = count_and_port(&client, &t, i).await;
        assert_eq!(count, 1, "read {i} missed its own write");
        assert!(
            cluster().replica_ports.contains(&served_by),
            "read {i} after a write went to {served_by}, not to a replica"
        );
    }
    let asked_after = asked().await.unwrap();
    assert!(asked_after > asked_before, "the reads asked for fresh samples: {asked_before} then {asked_after}");
    client.batch_execute(&format!("drop table {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_query_after_a_flushed_read_on_a_replica_runs_on_the_primary() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::split().await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique("flushed");
    client.batch_execute(&format!("create table {t} (id int); grant all on {t} to public")).await.unwrap();
    wait_for_replicas(&proxy.app_conn()).await;
    // The raw session has written nothing, so its lookup may go to a replica that has not yet
    // replayed `client`'s CREATE TABLE: wait until both have.
    harness::wait_replayed_on_replicas(&harness::table_exists(&t)).await;
    let mut s = Raw::login(proxy.addr).await;
    // asyncpg's COPY: look the columns up with Parse/Describe/Flush (a read, on a replica), then
    // send the write as a simple Query without ever sending Sync.
    let mut lookup = message(b'P', format!("cols\0select id, inet_server_port() from {t} limit 1\0\0\0").as_bytes());
    lookup.extend(message(b'D', b"Scols\0"));
    lookup.extend(message(b'H', b""));
    s.send(&lookup).await;
    let got = s.until_tag(b'T').await;
    assert_eq!(got[0].0, b'1', "ParseComplete first: {got:?}");
    s.send(&raw::query(&format!("insert into {t} select inet_server_port()"))).await;
    let replies = s.until_ready(1).await;
    let error = replies.iter().find(|(tag, _)| *tag == b'E').map(|(_, b)| String::from_utf8_lossy(b).into_owned());
    assert_eq!(error, None, "the write ran");
    assert_eq!(replies.last().map(|(tag, body)| (*tag, body.clone())), Some((b'Z', b"I".to_vec())));
    // Another session: read on the primary, which surely has the row.
    let sql = format!("/* pgsplit: route=primary */ select id from {t}");
    let port: i32 = client.query_one(&sql, &[]).await.unwrap().get(0);
    assert_eq!(port as u16, cluster().primary_port, "the insert ran on the primary");
    client.batch_execute(&format!("drop table {t}")).await.unwrap();
}
