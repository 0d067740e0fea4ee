//! Pool behaviour: exhaustion errors, clients vanishing mid-transaction, servers dying, session
//! mode resets, prepared statements in session mode.

use std::time::{Duration, Instant};

use crate::harness::{self, unique, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_answers_53300_naming_the_pool() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\ncheckout_timeout = \"300ms\"", "")).await;
    let holder = proxy.client().await;
    holder.batch_execute("begin; select 1").await.unwrap();
    let waiter = proxy.client_as("app", "app", "app").await;
    let err = waiter.batch_execute("select 2").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("53300"));
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(message.contains("app@127.0.0.1") && message.contains("size 1"), "{message}");
    // The refused client keeps its connection and is served once the holder commits.
    holder.batch_execute("commit").await.unwrap();
    waiter.batch_execute("select 3").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_client_gets_the_connection_at_commit() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\ncheckout_timeout = \"10s\"", "")).await;
    let holder = proxy.client().await;
    // A transaction with work: a BEGIN alone holds no connection (see `begin.rs`).
    holder.batch_execute("begin; select 1").await.unwrap();
    let waiter = proxy.client().await;
    let pending = tokio::spawn(async move { waiter.query_one("select 5", &[]).await.map(|r| r.get::<_, i32>(0)) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "the waiter must wait while the only connection is in a transaction");
    holder.batch_execute("commit").await.unwrap();
    assert_eq!(pending.await.unwrap().unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_transaction_is_rolled_back() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let table = unique("gone");
    let setup = proxy.client().await;
    setup.batch_execute(&format!("create table {table} (id int primary key)")).await.unwrap();
    {
        let doomed = proxy.client().await;
        doomed.batch_execute(&format!("begin; insert into {table} values (1)")).await.unwrap();
    }
    // The same (only) server connection serves the next client, clean: the insert is gone and
    // the row lock released (an insert of the same key does not block or fail).
    let next = proxy.client().await;
    let status =
        tokio::time::timeout(Duration::from_secs(10), next.batch_execute(&format!("insert into {table} values (1)")))
            .await;
    status.expect("not blocked by a leftover transaction").unwrap();
    let n: i64 = next.query_one(&format!("select count(*) from {table}"), &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    next.batch_execute(&format!("drop table {table}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_query_gives_an_error_and_the_pool_recovers() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let victim = proxy.client().await;
    let pid: i32 = victim.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let running = harness::sleep_on_primary(victim, 5).await;
    let admin = harness::primary_admin().await;
    admin.execute("select pg_terminate_backend($1)", &[&pid]).await.unwrap();
    let err = running.await.unwrap().unwrap_err();
    let code = harness::sqlstate(&err);
    assert!(matches!(code.as_deref(), Some("57P01") | Some("08006")), "{err:?}");
    let fresh = proxy.client().await;
    let new_pid: i32 = fresh.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(new_pid, pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_connection_killed_is_replaced_unnoticed() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let client = proxy.client().await;
    let pid: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let admin = harness::primary_admin().await;
    // With a timeout, it returns once the backend has exited (PostgreSQL 14+): its FATAL is on
    // pgsplit's socket by then, for the checkout to notice.
    let ended: bool = admin.query_one("select pg_terminate_backend($1, 10000)", &[&pid]).await.unwrap().get(0);
    assert!(ended, "the backend exited within 10 s");
    let new_pid: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(new_pid, pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_resets_with_discard_all() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let first = proxy.client_as("app", "app", "appsession").await;
    let pid: i32 = first.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    first.batch_execute("set work_mem = '7MB'; create temp table scratch (x int)").await.unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = proxy.client_as("app", "app", "appsession").await;
    let pid2: i32 = second.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(pid, pid2, "the one server connection was reused");
    let work_mem: String = second.query_one("show work_mem", &[]).await.unwrap().get(0);
    assert_ne!(work_mem, "7MB");
    let err = second.batch_execute("select * from scratch").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("42P01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_prepared_statements_in_session_mode() {
    let proxy = Proxy::start().await;
    let client = proxy.client_as("app", "app", "appsession").await;
    let stmt = client.prepare("select $1::int4 + 100").await.unwrap();
    for i in 0..20 {
        client.batch_execute("begin").await.unwrap();
        let v: i32 = client.query_one(&stmt, &[&i]).await.unwrap().get(0);
        assert_eq!(v, i + 100);
        client.batch_execute("commit").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_down_gives_a_clear_error_in_bounded_time() {
    // Nothing listens on port 1.
    let config = harness::test_config("size = 2\nconnect_timeout = \"1s\"", "").replacen(
        &format!("primary = \"127.0.0.1:{}\"", harness::cluster().primary_port),
        "primary = \"127.0.0.1:1\"",
        1,
    );
    let proxy = Proxy::with_config(&config).await;
    // Bounded: the login fails once the connect attempt does (refused at once here, else after
    // connect_timeout), never hangs; the guard is far above either on a busy machine.
    let login = tokio::time::timeout(Duration::from_secs(30), proxy.try_client("app", "app", "app"));
    let err = login.await.expect("the login failed in bounded time").unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("08006"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_max_clients_are_refused_with_53300() {
    let proxy = Proxy::with_config(&harness::test_config("size = 2", "max_clients = 2")).await;
    let a = proxy.client().await;
    let b = proxy.client().await;
    let err = proxy.try_client("app", "app", "app").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("53300"));
    a.query_one("select 1", &[]).await.unwrap();
    drop(b);
    // The slot frees once pgsplit has seen `b` go, a moment after the drop; until then a login
    // is refused as over the limit, and in no other way.
    let started = Instant::now();
    let c = loop {
        match proxy.try_client("app", "app", "app").await {
            Ok(c) => break c,
            Err(e) => {
                assert_eq!(harness::sqlstate(&e).as_deref(), Some("53300"), "{e:?}");
                assert!(started.elapsed() < Duration::from_secs(10), "the dropped client's slot never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    c.query_one("select 1", &[]).await.unwrap();
}

/// A connection older than `max_lifetime` serves no further request: the one that outlived it
/// while busy is closed when it comes back, and the next request gets a new server process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_its_max_lifetime_is_replaced() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\nmax_lifetime = \"1s\"", "")).await;
    let client = proxy.client().await;
    let pid = |row: tokio_postgres::Row| row.get::<_, i32>(0);
    let first = pid(client.query_one("select pg_backend_pid()", &[]).await.unwrap());
    // Whichever connection serves this, the first one is past its lifetime once it ends.
    client.query_one("select pg_backend_pid(), pg_sleep(1.2)", &[]).await.unwrap();
    let last = pid(client.query_one("select pg_backend_pid()", &[]).await.unwrap());
    assert_ne!(first, last, "a connection past max_lifetime served a request");
    let admin = harness::primary_admin().await;
    // Closed, not only set aside: its server process ends.
    let started = Instant::now();
    while !admin.query("select 1 from pg_stat_activity where pid = $1", &[&first]).await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the expired connection was never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
