//! Session state in transaction pooling: SET of any parameter follows its client across server
//! connections and nodes, and nothing leaks to other clients; failed or rolled-back SETs do not stick.

use crate::harness::{self, unique, Proxy, REPLICAS};
use crate::routing::wait_for_replicas;

async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    client.query_one(&format!("show {name}"), &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_follows_its_client_and_does_not_leak() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let schema = unique("s");
    let a = proxy.client().await;
    let b = proxy.client().await;
    let default_path = show(&b, "search_path").await;
    a.batch_execute(&format!("create schema {schema}; create table {schema}.only_here (x int)")).await.unwrap();
    a.batch_execute(&format!("set search_path = {schema}, public")).await.unwrap();
    a.batch_execute("set statement_timeout = '4321ms'").await.unwrap();
    // B shares the one server connection and must see none of it.
    assert_eq!(show(&b, "search_path").await, default_path);
    assert_ne!(show(&b, "statement_timeout").await, "4321ms");
    // A keeps its settings on every transaction, and the list stays a list.
    assert_eq!(show(&a, "search_path").await, format!("{schema}, public"));
    a.batch_execute("select * from only_here").await.unwrap();
    assert_eq!(show(&a, "statement_timeout").await, "4321ms");
    a.batch_execute("reset statement_timeout").await.unwrap();
    b.batch_execute("select 1").await.unwrap();
    assert_ne!(show(&a, "statement_timeout").await, "4321ms");
    a.batch_execute(&format!("drop schema {schema} cascade")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_rolled_back_sets_do_not_stick() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let a = proxy.client().await;
    let b = proxy.client().await;
    assert!(a.batch_execute("set work_mem = '3MB'; select 1/0").await.is_err());
    b.batch_execute("select 1").await.unwrap();
    assert_ne!(show(&a, "work_mem").await, "3MB");
    a.batch_execute("begin; set work_mem = '5MB'").await.unwrap();
    a.batch_execute("rollback").await.unwrap();
    b.batch_execute("select 1").await.unwrap();
    assert_ne!(show(&a, "work_mem").await, "5MB");
    a.batch_execute("begin; set work_mem = '6MB'; commit").await.unwrap();
    b.batch_execute("select 1").await.unwrap();
    assert_eq!(show(&a, "work_mem").await, "6MB");
    assert_ne!(show(&b, "work_mem").await, "6MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_reach_the_replicas_that_serve_reads() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::split().await;
    let client = proxy.client().await;
    client.batch_execute("set statement_timeout = '2345ms'").await.unwrap();
    wait_for_replicas(&proxy.app_conn()).await;
    for _ in 0..6 {
        let row =
            client.query_one("select current_setting('statement_timeout'), inet_server_port()", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "2345ms", "served by {}", row.get::<_, i32>(1));
    }
}

/// Clients that logged in with the same parameters share one set of them, and a connection
/// brought to that set is reused without comparing: a later SET by one of them, or a client
/// with other startup parameters, must still be seen to differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_with_the_same_startup_parameters_keep_apart_what_they_set_later() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let named = |name: &str| {
        format!("{} application_name={name} options='-c TimeZone=UTC'", proxy.conn_str("app", "app", "app"))
    };
    let a = harness::connect(&named("twin")).await.unwrap();
    let b = harness::connect(&named("twin")).await.unwrap();
    let c = harness::connect(&named("other")).await.unwrap();
    for _ in 0..2 {
        assert_eq!(show(&a, "application_name").await, "twin");
        assert_eq!(show(&b, "application_name").await, "twin");
        assert_eq!(show(&c, "application_name").await, "other");
    }
    a.batch_execute("set application_name = 'changed'; set timezone = 'Europe/Paris'").await.unwrap();
    assert_eq!(show(&b, "application_name").await, "twin", "b shares a's startup set, not its SET");
    assert_eq!(show(&b, "timezone").await, "UTC");
    assert_eq!(show(&a, "application_name").await, "changed");
    assert_eq!(show(&a, "timezone").await, "Europe/Paris");
    assert_eq!(show(&c, "application_name").await, "other");
    assert_eq!(show(&b, "timezone").await, "UTC");
}
