//! Session features in transaction pooling: LISTEN/NOTIFY, SQL PREPARE/EXECUTE, temporary tables
//! and session advisory locks keep their client on one server connection until DISCARD ALL or
//! disconnect, or are refused with 0A000 when the config says so.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use crate::harness::{self, unique, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_gets_notifications_without_asking() {
    let proxy = Proxy::with_config(&harness::test_config("size = 2", "")).await;
    let (listener, mut connection) =
        tokio_postgres::connect(&proxy.conn_str("app", "app", "app"), tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            let _ = tx.send(m);
        }
    });
    let channel = unique("jobs");
    listener.batch_execute(&format!("listen {channel}")).await.unwrap();
    let sender = proxy.client().await;
    for i in 0..3 {
        sender.batch_execute(&format!("notify {channel}, 'n{i}'")).await.unwrap();
    }
    // The listener sends nothing: the notifications must arrive on their own.
    let mut got = Vec::new();
    while got.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("notification in time") {
            Some(AsyncMessage::Notification(n)) => got.push(n.payload().to_string()),
            Some(_) => {}
            None => panic!("connection closed"),
        }
    }
    assert_eq!(got, ["n0", "n1", "n2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepare_temp_tables_and_advisory_locks_survive_transactions() {
    let proxy = Proxy::with_config(&harness::test_config("size = 2", "")).await;
    let client = proxy.client().await;
    let others = proxy.client().await;
    client.batch_execute("prepare add_one(int) as select $1 + 1").await.unwrap();
    client.batch_execute("create temp table scratch (x int)").await.unwrap();
    client.batch_execute("select pg_advisory_lock(4242)").await.unwrap();
    for i in 0..20 {
        // Other clients keep the pool busy between this client's transactions.
        others.batch_execute("select 1").await.unwrap();
        let rows =
            client.simple_query(&format!("insert into scratch values ({i}); execute add_one({i})")).await.unwrap();
        assert!(rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some(&*(i + 1).to_string()))
        ));
    }
    let n: i64 = client.query_one("select count(*) from scratch", &[]).await.unwrap().get(0);
    assert_eq!(n, 20);
    let held: bool = others.query_one("select pg_try_advisory_lock(4242)", &[]).await.unwrap().get(0);
    assert!(!held, "the session lock is still held by the pinned client");
    // DISCARD ALL releases everything, and the connection goes back to the pool.
    client.batch_execute("discard all").await.unwrap();
    let free: bool = others.query_one("select pg_try_advisory_lock(4242)", &[]).await.unwrap().get(0);
    assert!(free);
    others.batch_execute("select pg_advisory_unlock(4242)").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_client_that_leaves_frees_its_connection_clean() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\ncheckout_timeout = \"3s\"", "")).await;
    {
        let pinned = proxy.client().await;
        pinned.batch_execute("create temp table gone_with_me (x int); select pg_advisory_lock(77)").await.unwrap();
    }
    let next = proxy.client().await;
    let free: bool = next.query_one("select pg_try_advisory_lock(77)", &[]).await.unwrap().get(0);
    assert!(free, "the lock died with the pinned session");
    let err = next.batch_execute("select * from gone_with_me").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("42P01"));
    next.batch_execute("select pg_advisory_unlock_all()").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_can_be_refused() {
    let proxy = Proxy::with_config(&harness::test_config("size = 2\npinning = \"refuse\"", "")).await;
    let client = proxy.client().await;
    let err = client.batch_execute("listen nope").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("0A000"));
    client.batch_execute("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisten_all_and_unlock_all_release_the_pin() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\ncheckout_timeout = \"1s\"", "")).await;
    let pinned = proxy.client().await;
    let other = proxy.client().await;
    let blocked = |other: tokio_postgres::Client, when: &'static str| async move {
        let e = other.batch_execute("select 1").await.expect_err(when);
        assert_eq!(harness::sqlstate(&e).as_deref(), Some("53300"));
        other
    };
    pinned.batch_execute(&format!("listen {}", unique("ch"))).await.unwrap();
    let other = blocked(other, "pinned by LISTEN").await;
    pinned.batch_execute("unlisten *").await.unwrap();
    other.batch_execute("select 1").await.expect("the pin is released after UNLISTEN *");
    pinned.batch_execute("select pg_advisory_lock(88)").await.unwrap();
    let other = blocked(other, "pinned by an advisory lock").await;
    pinned.batch_execute("select pg_advisory_unlock_all()").await.unwrap();
    other.batch_execute("select 1").await.expect("the pin is released after pg_advisory_unlock_all()");
    let free: bool = other.query_one("select pg_try_advisory_lock(88)", &[]).await.unwrap().get(0);
    assert!(free);
    other.batch_execute("select pg_advisory_unlock_all()").await.unwrap();
    // A rolled-back UNLISTEN * releases nothing.
    pinned.batch_execute(&format!("listen {}", unique("ch"))).await.unwrap();
    pinned.batch_execute("begin; unlisten *; rollback").await.unwrap();
    blocked(other, "still pinned after a rolled-back UNLISTEN *").await;
}
