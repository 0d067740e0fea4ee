//! A plain BEGIN is answered by pgsplit and sent to the primary with the transaction's first
//! statement: the transaction holds no connection until it has work, and costs the server one
//! round trip less, yet behaves as if the BEGIN had run at once.

use std::time::Duration;

use tokio_postgres::Client;

use crate::harness::{self, cluster, unique, Proxy, REPLICAS};
use crate::raw::{self, query, sync, Raw};
use crate::routing::{port, wait_for_replicas};

async fn count(client: &Client, table: &str) -> i64 {
    client.query_one(&format!("select count(*) from {table}"), &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_begin_holds_no_connection_until_the_transaction_has_work() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\ncheckout_timeout = \"300ms\"", "")).await;
    let table = unique("begun");
    let admin = harness::primary_admin().await;
    let holder = proxy.client().await;
    let other = proxy.client().await;
    other.batch_execute(&format!("create table {table} (id int)")).await.unwrap();
    for end in ["rollback", "commit"] {
        holder.batch_execute("begin").await.unwrap();
        // The pool's only connection is free: the BEGIN took none.
        tokio::time::timeout(Duration::from_secs(10), other.batch_execute("select 2"))
            .await
            .expect("a BEGIN alone must not hold the connection")
            .expect("the other client is served");
        holder.batch_execute(&format!("insert into {table} values (1)")).await.unwrap();
        assert_eq!(count(&admin, &table).await, 0, "the insert runs inside the client's transaction");
        holder.batch_execute(end).await.unwrap();
    }
    assert_eq!(count(&admin, &table).await, 1, "the rolled back insert is gone, the committed one stays");
    admin.batch_execute(&format!("drop table {table}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begun_transaction_runs_on_the_primary_and_fails_as_one() {
    let _healthy = REPLICAS.read().await;
    // A replica the monitor has not seen fresh for a moment (a busy machine) is waited for, not
    // replaced by the primary: the last read must land on a replica whatever the timing.
    let config = harness::split_config_waiting("");
    let proxy = Proxy::with_config(&config).await;
    wait_for_replicas(&proxy.app_conn()).await;
    let client = proxy.client().await;
    client.batch_execute("begin").await.unwrap();
    assert_eq!(port(&client, "select inet_server_port()").await, cluster().primary_port, "a read-write transaction");
    let e = client.batch_execute("select 1/0").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("22012"));
    let e = client.batch_execute("select 1").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("25P02"), "the server's transaction is aborted: {e}");
    client.batch_execute("rollback").await.unwrap();
    // A driver's transaction (tokio-postgres sends BEGIN as a simple Query, then extended ones).
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    let row = tx.query_one("select inet_server_port(), $1::int", &[&7i32]).await.unwrap();
    assert_eq!((row.get::<_, i32>(0) as u16, row.get::<_, i32>(1)), (cluster().primary_port, 7));
    tx.commit().await.unwrap();
    assert!(cluster().replica_ports.contains(&port(&client, "select inet_server_port()").await), "reads leave it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sees_the_transaction_status_a_server_would_report() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let mut conn = Raw::login(proxy.addr).await;
    let ready = |replies: &[(u8, Vec<u8>)]| replies.last().map(|(_, body)| body[0]);
    conn.send(&query("begin")).await;
    let replies = conn.until_ready(1).await;
    assert_eq!((raw::tags(&replies).as_str(), ready(&replies)), ("CZ", Some(b'T')));
    assert_eq!(replies[0].1, b"BEGIN\0");
    // A Sync with nothing before it: answered without a server, in the transaction.
    conn.send(&sync()).await;
    assert_eq!(ready(&conn.until_ready(1).await), Some(b'T'));
    conn.send(&query("commit")).await;
    let replies = conn.until_ready(1).await;
    assert_eq!((raw::tags(&replies).as_str(), ready(&replies)), ("CZ", Some(b'I')));
    // Forms with options go to the server as they are; so does a BEGIN with work behind it.
    for sql in ["begin isolation level repeatable read", "begin; select 1"] {
        conn.send(&query(sql)).await;
        let replies = conn.until_ready(1).await;
        assert_eq!(ready(&replies), Some(b'T'), "{sql}: {replies:?}");
        conn.send(&query("show transaction_isolation")).await;
        let replies = conn.until_ready(1).await;
        assert!(!raw::tags(&replies).contains('E'), "{sql}: {replies:?}");
        conn.send(&query("rollback")).await;
        assert_eq!(ready(&conn.until_ready(1).await), Some(b'I'));
    }
}
