//! A running pgsplit fed thousands of random and mutated message sequences by logged-in clients,
//! while a healthy client keeps querying: no panic, no hang, and the healthy client notices
//! nothing. Deterministic: one fixed seed drives every choice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;

use crate::harness::{self, Proxy};
use crate::raw::{message, query, sync, Raw, HANG};

/// Sequences sent in all; each connection sends up to [`PER_CONNECTION`] before it leaves.
const SEQUENCES: usize = 3000;
const PER_CONNECTION: usize = 10;

/// Panics raised outside the tests' own code (pgsplit's, or a library's under it), counted from
/// the first call on: a panicking session task would otherwise die silently inside tokio.
fn panics_outside_tests() -> &'static AtomicUsize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().starts_with("tests/")) {
                PANICS.fetch_add(1, Ordering::Relaxed);
            }
            previous(info)
        }));
    });
    &PANICS
}

/// Parse, Bind, Describe and Execute of statement `name` (`""`: unnamed), without Sync.
fn extended(name: &str, sql: &str, param: Option<&str>) -> Vec<u8> {
    let mut parse = format!("{name}\0{sql}\0").into_bytes();
    parse.extend_from_slice(&[0, 0]);
    let mut bind = format!("\0{name}\0").into_bytes();
    bind.extend_from_slice(&[0, 0]);
    match param {
        Some(p) => {
            bind.extend_from_slice(&1i16.to_be_bytes());
            bind.extend_from_slice(&(p.len() as i32).to_be_bytes());
            bind.extend_from_slice(p.as_bytes());
        }
        None => bind.extend_from_slice(&0i16.to_be_bytes()),
    }
    bind.extend_from_slice(&[0, 0]);
    [message(b'P', &parse), message(b'B', &bind), message(b'D', b"P\0"), message(b'E', b"\0\0\0\0\0")].concat()
}

/// One sequence as real clients send it: psql, pgbench's three modes, named statements, COPY,
/// pipelines, transactions, DEALLOCATE.
fn base(rng: &mut StdRng, table: &str) -> Vec<u8> {
    const SQL: &[&str] = &[
        "select 1",
        "begin",
        "commit",
        "rollback",
        "select * from generate_series(1, 3)",
        "set work_mem = '2MB'",
        "show work_mem",
        "deallocate s1",
        "deallocate all",
        "select 1/0",
        "copy (select 1) to stdout",
        "listen fuzz",
        "/* pgsplit: route=replica */ select now()",
    ];
    let sql = SQL[rng.gen_range(0..SQL.len())];
    match rng.gen_range(0..9) {
        0 => query(sql),
        1 => [extended("", "select $1::int + 1", Some("41")), sync()].concat(),
        2 => [extended("s1", "select $1::text", Some("x")), sync(), extended("s1", "", None), sync()].concat(),
        3 => [message(b'P', b"s1\0select 2\0\0\0"), message(b'D', b"Ss1\0"), sync(), message(b'C', b"Ss1\0"), sync()]
            .concat(),
        4 => [extended("", sql, None), message(b'H', b""), sync()].concat(),
        5 => [query(&format!("copy {table} from stdin")), message(b'd', b"1\n2\n"), message(b'c', b"")].concat(),
        6 => [query(&format!("copy {table} from stdin")), message(b'd', b"x\n"), message(b'f', b"no\0")].concat(),
        7 => {
            [query("begin"), extended("", &format!("insert into {table} values (1)"), None), sync(), query("rollback")]
                .concat()
        }
        _ => {
            // Random tags and bodies, framed right.
            let mut out = Vec::new();
            for _ in 0..rng.gen_range(1..5) {
                let body: Vec<u8> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
                let tag = if rng.gen_bool(0.7) { b"QPBDECSHFdcf"[rng.gen_range(0..12)] } else { rng.gen() };
                out.extend(message(tag, &body));
            }
            out
        }
    }
}

/// A few of the changes a broken or hostile client makes: bit flips, truncation, lengths of any
/// size (above 2^31 too), bytes inserted, another sequence spliced in, a message repeated.
fn mutate(rng: &mut StdRng, mut bytes: Vec<u8>, other: &[u8]) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..5) {
        let n = bytes.len().max(1);
        match rng.gen_range(0..6) {
            0 if !bytes.is_empty() => {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] ^= 1 << rng.gen_range(0..8);
            }
            1 => bytes.truncate(rng.gen_range(0..n)),
            2 if bytes.len() >= 5 => {
                let at = rng.gen_range(1..bytes.len() - 3);
                let len: u32 = [0, 3, 4, 5, 0x7fff_ffff, 0x8000_0001, u32::MAX, rng.gen(), rng.gen_range(4..64)]
                    [rng.gen_range(0..9)];
                bytes[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            3 => {
                let at = rng.gen_range(0..n).min(bytes.len());
                let junk: Vec<u8> = (0..rng.gen_range(1..8)).map(|_| rng.gen()).collect();
                bytes.splice(at..at, junk);
            }
            4 if !other.is_empty() => {
                let from = rng.gen_range(0..other.len());
                let at = rng.gen_range(0..n).min(bytes.len());
                bytes.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                let dup = bytes.clone();
                bytes.extend(dup);
            }
        }
    }
    bytes
}

/// Reads until pgsplit closes the connection; panics with what was sent if it stays open [`HANG`].
async fn read_to_close(stream: &mut tokio::net::TcpStream, sent: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    match tokio::time::timeout(HANG, stream.read_to_end(&mut got)).await {
        Ok(_) => {}
        Err(_) => {
            let admin = harness::primary_admin().await;
            let activity = admin
                .query(
                    "select state, wait_event_type, left(query, 60) from pg_stat_activity where usename = 'app_trust'",
                    &[],
                )
                .await
                .unwrap();
            let activity: Vec<(Option<String>, Option<String>, Option<String>)> =
                activity.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
            panic!("pgsplit kept the connection open {HANG:?} after the client left; it sent {sent:?}; got {got:?}; server sessions: {activity:?}")
        }
    }
    let mut messages = Vec::new();
    let mut rest = &got[..];
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let Some(body) = rest.get(5..len + 1) else { break };
        messages.push((rest[0], body.to_vec()));
        rest = &rest[len + 1..];
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_sequences_after_login_never_panic_or_hang() {
    let panics = panics_outside_tests().load(Ordering::Relaxed);
    let config = harness::test_config("size = 4", "max_message_size = \"1MiB\"\nhandshake_timeout = \"5s\"");
    let proxy = Proxy::with_config(&config).await;
    let table = harness::unique("fuzz_copy");
    harness::primary_admin()
        .await
        .batch_execute(&format!("create table {table} (a int); grant all on {table} to public"))
        .await
        .unwrap();

    // The healthy client (user app: a pool of its own) runs simple and extended queries throughout.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let healthy = proxy.client().await;
    let load = tokio::spawn(async move {
        let mut ok = 0u32;
        while !*stopped.borrow() {
            let simple = tokio::time::timeout(HANG, healthy.simple_query("select 1")).await;
            simple.expect("the healthy client's query hung").expect("the healthy client's query failed");
            let extended = tokio::time::timeout(HANG, healthy.query_one("select $1::int + 1", &[&41i32])).await;
            let row = extended.expect("the healthy client's query hung").expect("the healthy client's query failed");
            assert_eq!(row.get::<_, i32>(0), 42);
            ok += 1;
        }
        ok
    });

    let mut rng = StdRng::seed_from_u64(0x5eed);
    let (mut sent, mut connections, mut fatal) = (0, 0, 0);
    let mut previous = Vec::new();
    while sent < SEQUENCES {
        let mut conn = Raw::login(proxy.addr).await;
        connections += 1;
        let mut sequences = Vec::new();
        for _ in 0..PER_CONNECTION {
            let mut sequence = base(&mut rng, &table);
            if rng.gen_bool(0.6) {
                sequence = mutate(&mut rng, sequence, &previous);
            }
            sent += 1;
            let written = conn.stream.write_all(&sequence).await;
            sequences.push(sequence.clone());
            previous = sequence;
            if written.is_err() {
                break; // pgsplit closed it: allowed, after a FATAL.
            }
        }
        // Leaving: whatever state the session is in, pgsplit must finish and close in time.
        let _ = conn.stream.shutdown().await;
        let replies = read_to_close(&mut conn.stream, &sequences).await;
        fatal += usize::from(replies.iter().any(|(t, b)| *t == b'E' && b.windows(6).any(|w| w == b"SFATAL")));
    }

    stop.send(true).unwrap();
    let healthy_queries = load.await.expect("the healthy client never saw an error");
    assert!(healthy_queries > 0);
    assert!(!proxy.task.as_ref().unwrap().is_finished(), "pgsplit's server task ended");
    let client = proxy.client_as("app_trust", "", "app").await;
    client.query_one("select 1", &[]).await.expect("a new client after the fuzzing");
    assert_eq!(panics_outside_tests().load(Ordering::Relaxed), panics, "a panic outside the tests' code");
    eprintln!("live fuzz: {sent} sequences over {connections} connections, {fatal} ended by FATAL, {healthy_queries} healthy rounds");
}

/// Found by the test above: after an error PostgreSQL ignores everything up to a Sync, a Query
/// too, so the ReadyForQuery pgsplit owes the client for that Query never comes. The client is
/// as stuck as it would be on PostgreSQL; once it leaves, pgsplit must notice and free the
/// connection even while the next request waits for its turn (here: ROLLBACK).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_while_the_server_ignores_its_query_frees_the_connection() {
    let proxy = Proxy::with_config(&harness::test_config("size = 1", "")).await;
    let mut conn = Raw::login(proxy.addr).await;
    let wedged = [
        message(b'C', b"Xjunk\0"), // "invalid CLOSE message subtype": the server skips to Sync
        query("begin"),            // ignored: no ReadyForQuery
        crate::raw::extended("select 1"),
        sync(),
        query("rollback"),
    ];
    conn.send(&wedged.concat()).await;
    let _ = conn.stream.shutdown().await;
    read_to_close(&mut conn.stream, &wedged).await;
    // The pool's only connection is back (or replaced): another client gets it.
    let other = proxy.client_as("app_trust", "", "app").await;
    let row = tokio::time::timeout(HANG, other.query_one("select 1", &[])).await.expect("the connection was freed");
    assert_eq!(row.unwrap().get::<_, i32>(0), 1);
}
