//! When a session learns its write LSN: with each commit when it asks for `pgsplit.write_lsn`
//! (or reads wait for replicas), else behind its first read after a write, which the primary
//! serves, so a transaction that no read follows costs no probe.

use std::time::{Duration, Instant};

use crate::harness::{cluster, unique, Proxy, REPLICAS};
use crate::raw::{self, Raw};
use crate::routing::wait_for_replicas;

/// Runs `sql`, one simple Query with one ReadyForQuery, through `raw`: the first row's columns
/// as text, and the `pgsplit.write_lsn` reported with it.
pub async fn run(raw: &mut Raw, sql: &str) -> (Vec<String>, Option<String>) {
    raw.send(&raw::query(sql)).await;
    let replies = raw.until_ready(1).await;
    assert!(!replies.iter().any(|(t, _)| *t == b'E'), "{sql}: {replies:?}");
    let row = replies.iter().find(|(t, _)| *t == b'D').map(|(_, body)| columns(body)).unwrap_or_default();
    let token = replies.iter().find_map(|(t, body)| {
        let value = body.strip_prefix(b"pgsplit.write_lsn\0").filter(|_| *t == b'S')?;
        Some(String::from_utf8(value.strip_suffix(b"\0").expect("a C string").to_vec()).unwrap())
    });
    (row, token)
}

/// The text columns of a DataRow; NULL as "".
fn columns(body: &[u8]) -> Vec<String> {
    let mut rest = &body[2..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let len = i32::from_be_bytes(rest[..4].try_into().unwrap());
        rest = &rest[4..];
        let len = usize::try_from(len).unwrap_or(0);
        out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
        rest = &rest[len..];
    }
    out
}

/// pgsplit with two replicas (reads no replica can take yet go to the primary, so sessions learn
/// their LSN lazily), caught up; a raw session on it; and a new table of `columns` made through
/// that session.
async fn session_with_table(prefix: &str, columns: &str) -> (Proxy, Raw, String) {
    let proxy = Proxy::split().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique(prefix);
    let mut s = Raw::login(proxy.addr).await;
    run(&mut s, &format!("create table {t} ({columns})")).await;
    (proxy, s, t)
}

/// Reads through `raw` until a replica serves it (each read must see the session's row), for at
/// most a generous hang guard: a session whose LSN stays unknown reads on the primary for good.
async fn reads_reach_a_replica(raw: &mut Raw, read: &str) {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let (row, _) = run(raw, read).await;
        assert_eq!(row[0], "t", "a read missed the session's own write");
        let port: u16 = row[1].parse().unwrap();
        if cluster().replica_ports.contains(&port) {
            return;
        }
        assert!(Instant::now() < give_up, "no read left the primary: the session never learned its LSN");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes with `write` and then runs `read` until the read learns the session's LSN by a probe
/// of its own (a `pgsplit.write_lsn` comes with it), which it returns with the read's row. The
/// monitor may sample the primary between the two and so bound the LSN first (no probe then):
/// each such attempt is ended with `end` (when not empty) and written and read again.
async fn read_learns_by_probe(s: &mut Raw, write: &str, read: &str, end: &str) -> (Vec<String>, String) {
    for _ in 0..20 {
        let (_, token) = run(s, write).await;
        assert_eq!(token, None, "a commit reports no LSN to a session that did not ask");
        if let (row, Some(token)) = run(s, read).await {
            return (row, token);
        }
        if !end.is_empty() {
            run(s, end).await;
        }
    }
    panic!("{read}: no probe in 20 writes and reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_learns_its_lsn_from_the_next_read_unless_the_session_asks() {
    let _healthy = REPLICAS.read().await;
    let (proxy, mut s, t) = session_with_table("lazy", "id int").await;
    let read = |id: i32| format!("select count(*) > 0, inet_server_port() from {t} where id = {id}");
    let (row, learned) = read_learns_by_probe(&mut s, &format!("insert into {t} values (1)"), &read(1), "").await;
    assert_eq!(row, ["t".to_string(), cluster().primary_port.to_string()], "a probe runs on the primary");
    reads_reach_a_replica(&mut s, &read(1)).await;

    // A read-only transaction learns it too: the probe runs in it, after the earlier commits.
    let (_, again) =
        read_learns_by_probe(&mut s, &format!("insert into {t} values (2)"), "begin read only", "commit").await;
    let lsn = |text: &str| pgsplit::classify::parse_lsn(text).unwrap();
    assert!(lsn(&again) > lsn(&learned), "{again} is past {learned}");
    run(&mut s, &read(2)).await;
    run(&mut s, "commit").await;
    reads_reach_a_replica(&mut s, &read(2)).await;

    // Asked for, the LSN comes with each commit.
    run(&mut s, "set pgsplit.report_write_lsn = on").await;
    let (_, token) = run(&mut s, &format!("insert into {t} values (3)")).await;
    assert!(lsn(&token.expect("the commit of a session that asked reports its LSN")) > lsn(&again));
    reads_reach_a_replica(&mut s, &read(3)).await;
    assert_eq!(probes(&proxy).await, (1.0, 2.0), "one commit's probe, two reads' (commits and reads before)");
    run(&mut s, &format!("drop table {t}")).await;
}

/// LSN probes `proxy` sent: behind commits, and behind reads.
async fn probes(proxy: &Proxy) -> (f64, f64) {
    let at = |at| async move { proxy.metric("pgsplit_lsn_probes_total", &[("at", at)]).await.unwrap_or(0.0) };
    (at("commit").await, at("read").await)
}

/// TPC-B's transactions: writes that no read of the session follows cost no probe, unless the
/// session asks for its LSN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_no_read_follows_cost_no_probe() {
    let _healthy = REPLICAS.read().await;
    let (proxy, mut s, t) = session_with_table("tpcb", "id int primary key, n int").await;
    run(&mut s, &format!("insert into {t} values (1, 0)")).await;
    let transaction = [
        "begin".to_string(),
        format!("update {t} set n = n + 1 where id = 1"),
        format!("select n from {t} where id = 1"),
        "end".into(),
    ];
    for _ in 0..10 {
        for sql in &transaction {
            assert_eq!(run(&mut s, sql).await.1, None, "{sql}");
        }
    }
    assert_eq!(probes(&proxy).await, (0.0, 0.0));
    run(&mut s, "set pgsplit.report_write_lsn = on").await;
    for _ in 0..10 {
        for sql in &transaction {
            let token = run(&mut s, sql).await.1;
            assert_eq!(token.is_some(), sql == "end", "{sql}: the LSN comes with the commit");
        }
    }
    assert_eq!(probes(&proxy).await, (10.0, 0.0));
    run(&mut s, &format!("drop table {t}")).await;
}

/// A session whose LSN pgsplit did not ask for takes the primary's insert position from a sample
/// the monitor asked for after its writes ended: its reads leave the primary with no probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_after_the_writes_bounds_their_lsn() {
    let _healthy = REPLICAS.read().await;
    let (proxy, mut s, t) = session_with_table("bound", "id int").await;
    let (_, token) = run(&mut s, &format!("insert into {t} values (1)")).await;
    assert_eq!(token, None);
    // A sample that saw WAL written after the session's insert ended ran after it; the sample
    // after that one was asked for after it. Each round writes WAL and waits for a sample of it.
    let admin = crate::harness::primary_admin().await;
    for _ in 0..2 {
        admin.execute(&format!("insert into {t} values (0)"), &[]).await.unwrap();
        let row = admin.query_one("select (pg_current_wal_lsn() - '0/0')::float8", &[]).await.unwrap();
        let written: f64 = row.get(0);
        let give_up = Instant::now() + Duration::from_secs(60);
        while proxy.metric("pgsplit_primary_wal_lsn_bytes", &[("database", "app")]).await.unwrap_or(0.0) < written {
            assert!(Instant::now() < give_up, "the monitor did not sample the primary");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let read = format!("select count(*) > 0, inet_server_port() from {t} where id = 1");
    let (row, token) = run(&mut s, &read).await;
    assert_eq!(row[0], "t", "the read saw the session's insert");
    assert_eq!(token, None, "no probe: the sample bounded the LSN");
    reads_reach_a_replica(&mut s, &read).await;
    run(&mut s, &format!("drop table {t}")).await;
}
