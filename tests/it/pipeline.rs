//! Pipeline mode and messages that arrive between requests: Flush and Sync with nothing pending,
//! a Flush racing the release of a server connection, COPY data sent with its COPY, Terminate in
//! the middle of a pipeline. Each timing is written on purpose (separate writes with pauses, or
//! one write), and what pgsplit answers is compared with what PostgreSQL itself answers.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{self, cluster, unique, Proxy, REPLICAS};
use crate::raw::{self, extended, flush, message, query, sync, terminate, Raw};
use crate::routing::{hidden_writer, wait_for_replicas};

/// How a pattern's messages are written.
#[derive(Clone, Copy, Debug)]
enum Timing {
    /// Everything, the query after it too, in one write.
    OneWrite,
    /// One write per piece: after a piece with a Sync its replies are read first, else a pause;
    /// the query after the pattern goes in the same write as its last piece.
    Stepwise,
}

/// The shapes of pipeline-mode traffic that have no reply owed at some point.
fn patterns(request: &[u8]) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let synced = [request, &sync()].concat();
    vec![
        ("flush after sync", vec![synced.clone(), flush()]),
        ("flush before sync", vec![request.to_vec(), flush(), sync()]),
        ("flush alone", vec![flush()]),
        ("flush between two requests", vec![synced.clone(), flush(), synced]),
        ("sync alone", vec![sync()]),
    ]
}

/// ReadyForQuery messages the server owes for `bytes`.
fn readies(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        n += usize::from(matches!(rest[0], b'S' | b'Q'));
        rest = &rest[len + 1..];
    }
    n
}

/// Runs `pieces` and then `next` on a new connection to `addr` (inside a transaction when
/// `in_transaction`); returns every reply after the login.
async fn run(
    addr: SocketAddr,
    pieces: &[Vec<u8>],
    timing: Timing,
    next: &[u8],
    in_transaction: bool,
) -> Vec<(u8, Vec<u8>)> {
    let mut conn = Raw::login(addr).await;
    let mut replies = Vec::new();
    if in_transaction {
        conn.send(&query("BEGIN")).await;
        replies.extend(conn.until_ready(1).await);
    }
    match timing {
        Timing::OneWrite => {
            let all = [pieces.concat(), next.to_vec()].concat();
            conn.send(&all).await;
            replies.extend(conn.until_ready(readies(&all)).await);
        }
        Timing::Stepwise => {
            for (i, piece) in pieces.iter().enumerate() {
                let piece = if i + 1 == pieces.len() { [piece.as_slice(), next].concat() } else { piece.clone() };
                conn.send(&piece).await;
                match readies(&piece) {
                    0 => tokio::time::sleep(Duration::from_millis(20)).await,
                    n => replies.extend(conn.until_ready(n).await),
                }
            }
        }
    }
    if in_transaction {
        conn.send(&query("COMMIT")).await;
        replies.extend(conn.until_ready(1).await);
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_sync_with_nothing_pending_never_hang_and_answer_as_postgres_does() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::split().await;
    let client = proxy.client().await;
    let t = unique("pipe");
    client.batch_execute(&format!("create table {t} (id int); grant all on {t} to public")).await.unwrap();
    wait_for_replicas(&proxy.app_conn()).await;
    let direct: SocketAddr = ([127, 0, 0, 1], cluster().primary_port).into();
    let next = [extended("select 2"), sync()].concat();
    let insert = format!("insert into {t} values (1)");
    // Reads go to a replica behind the misroute guard; writes to the primary with the LSN probe.
    for (route, sql) in [("replica", "select inet_server_port()"), ("primary", insert.as_str())] {
        for (name, pieces) in patterns(&extended(sql)) {
            for timing in [Timing::OneWrite, Timing::Stepwise] {
                for in_transaction in [false, true] {
                    let case = format!("{name}, {route} route, {timing:?}, in transaction: {in_transaction}");
                    let via = run(proxy.addr, &pieces, timing, &next, in_transaction).await;
                    let want = run(direct, &pieces, timing, &next, in_transaction).await;
                    assert!(!via.iter().any(|(t, _)| *t == b'E'), "{case}: {via:?}");
                    assert_eq!(raw::tags(&via), raw::tags(&want), "{case}");
                    assert_eq!(via.last(), Some(&(b'Z', b"I".to_vec())), "{case}");
                }
            }
        }
    }
    client.batch_execute(&format!("drop table {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_or_a_sync_alone_holds_no_server_connection() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1\ncheckout_timeout = \"2s\"", "")).await;
    let mut idle = Raw::login(proxy.addr).await;
    idle.send(&flush()).await;
    idle.expect_silence(Duration::from_millis(200)).await;
    idle.send(&sync()).await;
    assert_eq!(idle.until_ready(1).await, vec![(b'Z', b"I".to_vec())]);
    idle.send(&flush()).await;
    // The pool's one server connection is free for another client of the same user, though the
    // first said nothing more.
    let other = proxy.client_as("app_trust", "", "app").await;
    assert_eq!(other.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    idle.send(&[extended("select 3"), sync()].concat()).await;
    assert_eq!(raw::tags(&idle.until_ready(1).await), "12TDCZ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_data_sent_with_its_copy_reaches_the_server() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    let t = unique("copyin");
    client.batch_execute(&format!("create table {t} (id int); grant all on {t} to public")).await.unwrap();
    let mut conn = Raw::login(proxy.addr).await;
    // The COPY, its data, CopyDone, a stray CopyFail after it (PostgreSQL ignores it), and the
    // next query, all in one write: the server waits for data pgsplit already read.
    let mut bytes = query(&format!("copy {t} from stdin"));
    bytes.extend(message(b'd', b"1\n2\n"));
    bytes.extend(message(b'c', b""));
    bytes.extend(message(b'f', b"too late\0"));
    bytes.extend(query(&format!("select count(*) from {t}")));
    conn.send(&bytes).await;
    let replies = conn.until_ready(2).await;
    assert_eq!(raw::tags(&replies), "GCZTDCZ", "{replies:?}");
    assert_eq!(replies[4].1, b"\0\x01\0\0\0\x012".to_vec(), "both rows were copied");
    client.batch_execute(&format!("drop table {t}")).await.unwrap();
}

/// Rows in `table` on the primary, polled until `want` (bounded): a session's end is seen
/// shortly after its client leaves.
async fn count_settles_at(table: &str, want: i64) -> i64 {
    let admin = harness::primary_admin().await;
    let mut n = -1;
    for _ in 0..50 {
        n = admin.query_one(&format!("select count(*) from {table}"), &[]).await.unwrap().get(0);
        if n == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_in_a_pipeline_runs_what_came_before_and_rolls_back_an_unsynced_tail() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let client = proxy.client().await;
    let (synced, unsynced) = (unique("term_q"), unique("term_pbe"));
    for t in [&synced, &unsynced] {
        client.batch_execute(&format!("create table {t} (id int); grant all on {t} to public")).await.unwrap();
    }
    for while_busy in [false, true] {
        let mut conn = Raw::login(proxy.addr).await;
        if while_busy {
            // Everything after this arrives while pgsplit relays the first request.
            conn.send(&query("select pg_sleep(0.3)")).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut bytes = query(&format!("insert into {synced} values (1)"));
        bytes.extend(extended(&format!("insert into {unsynced} values (1)")));
        bytes.extend(terminate());
        conn.send(&bytes).await;
        assert!(conn.closed().await, "pgsplit closed the connection after Terminate");
    }
    // As PostgreSQL does: the Query ran and committed, the pipeline without a Sync rolled back.
    assert_eq!(count_settles_at(&synced, 2).await, 2);
    assert_eq!(count_settles_at(&unsynced, 0).await, 0);
    // The pool's one connection is usable again.
    assert_eq!(client.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    client.batch_execute(&format!("drop table {synced}; drop table {unsynced}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_pipelined_behind_a_misrouted_write_is_answered() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::split().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique("misrouted");
    let (f, admin) = hidden_writer(&t, "1").await;
    wait_for_replicas(&proxy.app_conn()).await;
    let mut conn = Raw::login(proxy.addr).await;
    // The replica refuses the write only after the sleep; the second query comes meanwhile.
    conn.send(&query(&format!("select pg_sleep(0.3), {f}()"))).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.send(&query("select 2")).await;
    let replies = conn.until_ready(2).await;
    assert!(!replies.iter().any(|(t, _)| *t == b'E'), "{replies:?}");
    assert_eq!(raw::tags(&replies), "TDCZTDCZ");
    assert_eq!(count_settles_at(&t, 1).await, 1, "the write ran once, on the primary");
    admin.batch_execute(&format!("drop function {f}(); drop table {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_duplicate_parse_keeps_the_statement_and_its_route() {
    let _healthy = REPLICAS.read().await;
    // The read must find a replica even when a busy machine briefly puts both past max_lag:
    // it waits for one instead of falling back to the primary, which would prove nothing.
    let config = harness::split_config_waiting("");
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client().await;
    let t = unique("dup");
    client.batch_execute(&format!("create table {t} (id int); grant all on {t} to public")).await.unwrap();
    wait_for_replicas(&proxy.app_conn()).await;
    let mut conn = Raw::login(proxy.addr).await;
    let parse = |sql: &str| message(b'P', format!("s1\0{sql}\0\0\0").as_bytes());
    conn.send(&[parse("select inet_server_port()"), sync()].concat()).await;
    assert_eq!(raw::tags(&conn.until_ready(1).await), "1Z");
    // The same name again, for a write: refused (42P05), so s1 is still the read.
    conn.send(&[parse(&format!("insert into {t} values (1)")), sync()].concat()).await;
    let refused = conn.until_ready(1).await;
    assert_eq!(raw::tags(&refused), "EZ");
    assert!(String::from_utf8_lossy(&refused[0].1).contains("42P05"), "{refused:?}");
    let mut run = message(b'B', b"\0s1\0\0\0\0\0\0\0");
    run.extend(message(b'E', b"\0\0\0\0\0"));
    run.extend(sync());
    conn.send(&run).await;
    let replies = conn.until_ready(1).await;
    assert_eq!(raw::tags(&replies), "2DCZ", "{replies:?}");
    let row = &replies[1].1;
    let port: u16 = String::from_utf8_lossy(&row[6..]).parse().unwrap();
    assert!(cluster().replica_ports.contains(&port), "the read ran on {port}, not on a replica");
    client.batch_execute(&format!("drop table {t}")).await.unwrap();
}
