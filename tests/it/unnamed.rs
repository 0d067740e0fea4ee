//! Unnamed statements shared as pgsplit-named server statements: a text the server connection
//! has prepared before is answered without parsing it again, in a way no client can tell apart
//! from PostgreSQL itself: Describe, a Parse between Bind and Execute, a simple Query dropping
//! the unnamed statement, transactions, errors in a pipeline. A statement whose result type DDL
//! changed is prepared again, unseen by the client.

use std::net::SocketAddr;

use crate::harness::{self, cluster, primary_admin, unique, Proxy};
use crate::raw::{self, message, query, sync, Raw};

/// A Parse of the unnamed statement.
fn parse(sql: &str) -> Vec<u8> {
    message(b'P', format!("\0{sql}\0\0\0").as_bytes())
}

/// Bind of the unnamed portal to the unnamed statement, no parameters, text results.
fn bind() -> Vec<u8> {
    message(b'B', b"\0\0\0\0\0\0\0\0")
}

fn describe(target: u8) -> Vec<u8> {
    message(b'D', &[target, 0])
}

fn execute() -> Vec<u8> {
    message(b'E', b"\0\0\0\0\0")
}

fn close_statement() -> Vec<u8> {
    message(b'C', b"S\0")
}

/// One unnamed statement run as pgbench `-M extended` sends it.
fn run(sql: &str) -> Vec<u8> {
    [parse(sql), bind(), describe(b'P'), execute(), sync()].concat()
}

/// The replies without ParameterStatus (pgsplit adds its own), errors reduced to their
/// severity, SQLSTATE and message (the position in PostgreSQL's source is not the point).
fn comparable(replies: Vec<(u8, Vec<u8>)>) -> Vec<(u8, Vec<u8>)> {
    replies
        .into_iter()
        .filter(|(tag, _)| *tag != b'S')
        .map(|(tag, body)| match tag {
            b'E' => (tag, fields(&body, b"SCM")),
            _ => (tag, body),
        })
        .collect()
}

fn fields(body: &[u8], keep: &[u8]) -> Vec<u8> {
    body.split(|&b| b == 0).filter(|f| f.first().is_some_and(|c| keep.contains(c))).flatten().copied().collect()
}

fn primary() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster().primary_port))
}

/// Sends each step to pgsplit and to the primary directly, on one connection each, and asserts
/// that both answer each step alike.
async fn same_as_postgres(proxy: &Proxy, steps: &[(&str, Vec<u8>, usize)]) {
    let mut through = Raw::login(proxy.addr).await;
    let mut direct = Raw::login(primary()).await;
    for (what, bytes, readies) in steps {
        through.send(bytes).await;
        direct.send(bytes).await;
        let got = comparable(through.until_ready(*readies).await);
        let want = comparable(direct.until_ready(*readies).await);
        assert_eq!(
            got,
            want,
            "{what}: pgsplit answered {} where PostgreSQL answered {}",
            tag_str(&got),
            tag_str(&want)
        );
    }
}

fn tag_str(m: &[(u8, Vec<u8>)]) -> String {
    m.iter().map(|(t, _)| *t as char).collect()
}

async fn counter(proxy: &Proxy, name: &str) -> f64 {
    proxy.metric(name, &[]).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unnamed_statement_is_parsed_once_per_server_connection_and_shared_by_clients() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let sql = format!("select $1::int + 1 as {}", unique("n"));
    let with_param = |n: i32| {
        let mut b = message(b'P', format!("\0{sql}\0\0\x01\0\0\0\x17").as_bytes());
        let mut bind_body = b"\0\0\0\0\0\x01".to_vec();
        let text = n.to_string();
        bind_body.extend_from_slice(&(text.len() as u32).to_be_bytes());
        bind_body.extend_from_slice(text.as_bytes());
        bind_body.extend_from_slice(b"\0\0");
        b.extend(message(b'B', &bind_body));
        b.extend([describe(b'P'), execute(), sync()].concat());
        b
    };
    let prepared_before = counter(&proxy, "pgsplit_prepared_statements_prepared_total").await;
    let mut first = Raw::login(proxy.addr).await;
    let mut second = Raw::login(proxy.addr).await;
    for n in 0..5 {
        for conn in [&mut first, &mut second] {
            conn.send(&with_param(n)).await;
            let replies = conn.until_ready(1).await;
            assert_eq!(raw::tags(&replies), "12TDCZ", "{replies:?}");
            let row = &replies[3].1;
            assert_eq!(String::from_utf8_lossy(&row[6..]), (n + 1).to_string(), "the parameter was bound");
        }
    }
    let prepared = counter(&proxy, "pgsplit_prepared_statements_prepared_total").await - prepared_before;
    assert_eq!(prepared, 1.0, "one server connection, one text: prepared once for both clients");
    assert_eq!(counter(&proxy, "pgsplit_prepared_statements_reused_total").await, 9.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_statements_pass_through_when_reuse_is_off() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\nreuse_unnamed = false", "")).await;
    let mut conn = Raw::login(proxy.addr).await;
    for _ in 0..3 {
        conn.send(&run("select 1")).await;
        assert_eq!(raw::tags(&conn.until_ready(1).await), "12TDCZ");
    }
    assert_eq!(counter(&proxy, "pgsplit_prepared_statements_prepared_total").await, 0.0);
    assert_eq!(counter(&proxy, "pgsplit_prepared_statements_reused_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_unnamed_statements_answer_exactly_as_postgres_does() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let a = "select 1 as a, $1::text as p";
    let b = "select 'x' as b";
    let steps: Vec<(&str, Vec<u8>, usize)> = vec![
        ("describe the statement", [parse(a), describe(b'S'), sync()].concat(), 1),
        ("describe it again, reused", [parse(a), describe(b'S'), sync()].concat(), 1),
        ("run it", run(b), 1),
        ("run it again, reused", run(b), 1),
        (
            "a parse between bind and execute",
            [parse(b), bind(), parse("select 3 as c"), describe(b'P'), execute(), describe(b'S'), sync()].concat(),
            1,
        ),
        ("bind without a parse runs the last one", [bind(), describe(b'P'), execute(), sync()].concat(), 1),
        ("a simple query drops the unnamed statement", query("select 2"), 1),
        ("so a bind after it fails", [bind(), execute(), sync()].concat(), 1),
        ("close it", [parse(b), sync(), close_statement(), bind(), execute(), sync()].concat(), 2),
        (
            "an error in the middle of a pipeline",
            [parse(b), bind(), execute(), parse("selec 1"), bind(), execute(), parse(b), bind(), execute(), sync()]
                .concat(),
            1,
        ),
        ("the pipeline after it", [run(b), run(b)].concat(), 2),
        ("inside a transaction", [query("begin"), run(b), run(b), query("commit")].concat(), 4),
        (
            "inside a failed transaction",
            [query("begin"), run("select 1/0"), run(b), query("rollback"), run(b)].concat(),
            5,
        ),
    ];
    same_as_postgres(&proxy, &steps).await;
}

/// Runs `select * from t` as an unnamed statement and returns its column count.
async fn columns_of_select_star(conn: &mut Raw, t: &str) -> u16 {
    conn.send(&run(&format!("select * from {t}"))).await;
    let replies = conn.until_ready(1).await;
    assert_eq!(raw::tags(&replies), "12TCZ", "no error reaches the client: {replies:?}");
    u16::from_be_bytes([replies[2].1[0], replies[2].1[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_statement_whose_result_type_changed_is_prepared_again_unseen() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let admin = primary_admin().await;
    let t = unique("replan");
    admin.batch_execute(&format!("create table {t} (a int); grant all on {t} to public")).await.unwrap();
    let mut conn = Raw::login(proxy.addr).await;
    assert_eq!(columns_of_select_star(&mut conn, &t).await, 1);
    assert_eq!(columns_of_select_star(&mut conn, &t).await, 1);
    let before = counter(&proxy, "pgsplit_prepared_statements_replanned_total").await;
    admin.batch_execute(&format!("alter table {t} add column b int")).await.unwrap();
    assert_eq!(columns_of_select_star(&mut conn, &t).await, 2, "the new column is there");
    assert_eq!(columns_of_select_star(&mut conn, &t).await, 2);
    let replanned = counter(&proxy, "pgsplit_prepared_statements_replanned_total").await - before;
    assert_eq!(replanned, 1.0, "prepared again once, then reused");

    // A client naming its statement is served the shared one too, and gets it fresh.
    admin.batch_execute(&format!("alter table {t} add column c int")).await.unwrap();
    let mut named = Raw::login(proxy.addr).await;
    let sql = format!("select * from {t}");
    let request = [
        message(b'P', format!("s1\0{sql}\0\0\0").as_bytes()),
        message(b'B', b"\0s1\0\0\0\0\0\0\0"),
        describe(b'P'),
        execute(),
        sync(),
    ]
    .concat();
    named.send(&request).await;
    let replies = named.until_ready(1).await;
    assert_eq!(raw::tags(&replies), "12TCZ", "{replies:?}");
    assert_eq!(u16::from_be_bytes([replies[2].1[0], replies[2].1[1]]), 3);
    admin.batch_execute(&format!("drop table {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_transaction_a_changed_result_type_is_the_clients_to_see_as_before() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let admin = primary_admin().await;
    let t = unique("replantx");
    admin.batch_execute(&format!("create table {t} (a int); grant all on {t} to public")).await.unwrap();
    let mut conn = Raw::login(proxy.addr).await;
    assert_eq!(columns_of_select_star(&mut conn, &t).await, 1);
    conn.send(&query("begin")).await;
    conn.until_ready(1).await;
    admin.batch_execute(&format!("alter table {t} add column b int")).await.unwrap();
    // Inside the transaction the statement is parsed as the client sent it: fresh, no error.
    assert_eq!(columns_of_select_star(&mut conn, &t).await, 2);
    conn.send(&query("commit")).await;
    conn.until_ready(1).await;
    admin.batch_execute(&format!("drop table {t}")).await.unwrap();
}
