//! Faithful forwarding: simple and extended protocol, binary formats, pipelining, COPY, notices,
//! notifications, errors in transactions, cancel.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, SimpleQueryMessage};

use crate::harness::{self, unique, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_and_multi_statement() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    let rows = client.simple_query("select 1 as a; select 'x' as b, null as c; select 3").await.unwrap();
    let values: Vec<Vec<Option<String>>> = rows
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(values, vec![vec![Some("1".into())], vec![Some("x".into()), None], vec![Some("3".into())]]);
    let completes = rows.iter().filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))).count();
    assert_eq!(completes, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_binary_params_and_results() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    let stmt = client
        .prepare_typed(
            "select $1::int8 + 1, $2::text || '!', $3::bytea, $4::float8, $5::bool",
            &[Type::INT8, Type::TEXT, Type::BYTEA, Type::FLOAT8, Type::BOOL],
        )
        .await
        .unwrap();
    let blob: Vec<u8> = (0..=255u8).collect();
    let row = client.query_one(&stmt, &[&41i64, &"hi", &blob, &1.5f64, &true]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, String>(1), "hi!");
    assert_eq!(row.get::<_, Vec<u8>>(2), blob);
    assert_eq!(row.get::<_, f64>(3), 1.5);
    assert!(row.get::<_, bool>(4));
    // Unnamed statement path, and a NULL parameter.
    let row = client.query_one("select $1::int4 is null", &[&None::<i32>]).await.unwrap();
    assert!(row.get::<_, bool>(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_executes_pipelined_before_sync() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    let stmt = client.prepare("select $1::int4 * 2").await.unwrap();
    // tokio-postgres pipelines concurrent queries on one connection.
    let futures = (0..200i32).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move { client.query_one(stmt, &[&i]).await.map(|r| r.get::<_, i32>(0)) }
    });
    let results = futures_util::future::join_all(futures).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as i32 * 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_result_crosses_many_reads() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    let rows = client.query("select g, repeat('x', 1000) from generate_series(1, 20000) g", &[]).await.unwrap();
    assert_eq!(rows.len(), 20000);
    assert_eq!(rows[19999].get::<_, i32>(0), 20000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    let table = unique("copy");
    client.batch_execute(&format!("create table {table} (id int, name text)")).await.unwrap();
    let sink = client.copy_in(&format!("copy {table} from stdin")).await.unwrap();
    futures_util::pin_mut!(sink);
    for chunk in 0..50 {
        let data: String = (0..100).map(|i| format!("{}\tname {}\n", chunk * 100 + i, i)).collect();
        sink.send(Bytes::from(data)).await.unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 5000);
    let stream = client.copy_out(&format!("copy (select * from {table} order by id) to stdout")).await.unwrap();
    let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
    let text: Vec<u8> = chunks.concat();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(text.lines().count(), 5000);
    assert!(text.starts_with("0\tname 0\n"));
    client.batch_execute(&format!("drop table {table}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_and_notifications_pass_through() {
    let proxy = Proxy::start().await;
    // Session mode keeps the LISTENing server connection with this client.
    let conn_str = proxy.conn_str("app", "app", "appsession");
    let (client, mut connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            let _ = tx.send(m);
        }
    });
    let channel = unique("chan");
    client.batch_execute("do $$ begin raise notice 'hello from the server'; end $$").await.unwrap();
    client.batch_execute(&format!("listen {channel}")).await.unwrap();
    let other = proxy.client().await;
    other.batch_execute(&format!("notify {channel}, 'payload'")).await.unwrap();
    // The notification arrives asynchronously; a query on the listener flushes it through.
    let mut notice = None;
    let mut notification = None;
    for _ in 0..50 {
        client.batch_execute("select 1").await.unwrap();
        while let Ok(m) = rx.try_recv() {
            match m {
                AsyncMessage::Notice(n) => notice = Some(n.message().to_string()),
                AsyncMessage::Notification(n) => {
                    notification = Some((n.channel().to_string(), n.payload().to_string()))
                }
                _ => {}
            }
        }
        if notification.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(notice.as_deref(), Some("hello from the server"));
    assert_eq!(notification, Some((channel, "payload".to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_mid_transaction_then_rollback() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let client = proxy.client().await;
    client.batch_execute("begin").await.unwrap();
    let err = client.batch_execute("select * from no_such_table_anywhere").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("42P01"));
    let err = client.batch_execute("select 1").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("25P02"));
    client.batch_execute("rollback").await.unwrap();
    let row = client.query_one("select 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    // The only server connection went back clean: another client can use it.
    let other = proxy.client().await;
    other.batch_execute("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_running_query() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    let token = client.cancel_token();
    let started = std::time::Instant::now();
    let sleeper = harness::sleep_on_primary(client, 10).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = sleeper.await.unwrap().unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("57014"));
    assert!(started.elapsed() < Duration::from_secs(9), "the sleep was cancelled, not finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_share_one_server_connection() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let a = proxy.client().await;
    let b = proxy.client().await;
    let pid_a: i32 = a.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let pid_b: i32 = b.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(pid_a, pid_b, "transaction pooling reuses the single server connection");
    // Inside a transaction the connection stays with its client.
    a.batch_execute("begin").await.unwrap();
    let in_tx: i32 = a.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(in_tx, pid_a);
    a.batch_execute("commit").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_parameters_follow_the_client() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let a = harness::connect(&format!("{} options='-c TimeZone=Asia/Tokyo'", proxy.conn_str("app", "app", "app")))
        .await
        .unwrap();
    let b = proxy.client().await;
    let tz_a: String = a.query_one("show timezone", &[]).await.unwrap().get(0);
    let tz_b: String = b.query_one("show timezone", &[]).await.unwrap().get(0);
    assert_eq!(tz_a, "Asia/Tokyo");
    assert_ne!(tz_b, "Asia/Tokyo", "one client's startup option must not leak to another");
    a.batch_execute("set timezone = 'Europe/Paris'").await.unwrap();
    let tz_b: String = b.query_one("show timezone", &[]).await.unwrap().get(0);
    let tz_a: String = a.query_one("show timezone", &[]).await.unwrap().get(0);
    assert_ne!(tz_b, "Europe/Paris");
    assert_eq!(tz_a, "Europe/Paris");
}
