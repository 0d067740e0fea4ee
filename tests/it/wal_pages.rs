//! A write whose WAL ends exactly at a page boundary: `pg_current_wal_insert_lsn()` then says
//! the page start plus its header, which no standby's replay position reaches until more WAL
//! comes. Read-your-writes must treat it as the page start, or the session's next read waits
//! for WAL nobody writes. Placing a record end to the byte needs a primary no other test writes
//! to: a cluster of the test's own.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::harness::Proxy;
use crate::own_cluster::{OwnCluster, ONE_AT_A_TIME};
use crate::routing::port;

const PAGE: u64 = 8192;
const SEGMENT: u64 = 16 << 20;

async fn lsn(client: &Client, sql: &str) -> u64 {
    client.query_one(&format!("select ({sql} - '0/0')::int8"), &[]).await.unwrap().get::<_, i64>(0) as u64
}

/// The header at the start of the page at `boundary`: the long one on a segment's first page.
fn header(boundary: u64) -> u64 {
    if boundary % SEGMENT == 0 {
        40
    } else {
        24
    }
}

/// The message size that makes a transaction of one logical message, started at insert position
/// `at`, end exactly at a page boundary; `overhead` is what such a transaction adds to its message.
/// Messages of 256 bytes or more keep the record's header one size.
fn message_size(at: u64, overhead: u64) -> u64 {
    let mut boundary = (at / PAGE + 1) * PAGE;
    let mut room = boundary - at;
    while room < overhead + 256 {
        room += PAGE - header(boundary);
        boundary += PAGE;
    }
    room - overhead
}

const EMIT: &str = "select pg_logical_emit_message(true, 'pgsplit-test', repeat('x', $1::int))::text";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_write_ending_on_a_page_boundary_goes_to_a_replica_that_replayed_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let own = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    // A read waits for a replica that has the session's write instead of taking the primary: the
    // replicas never pass the page start on their own, so only a lowered LSN lets it go there.
    let config = own.config().replace("[routing]\n", "[routing]\nstale_fallback = \"wait\"\nwait_timeout = \"10s\"\n");
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client_as("postgres", "", "app").await;
    let primary = own.direct(own.port).await;
    let replicas = [own.direct(own.port + 1).await, own.direct(own.port + 2).await];
    let started = Instant::now();
    let in_time =
        || assert!(started.elapsed() < Duration::from_secs(120), "no write could be placed on a page boundary");
    // What a one-message transaction adds to its message (its record's header, the commit
    // record), measured where no page boundary is crossed. Other WAL coming between only makes
    // it look bigger: the smallest seen is the one, and every miss below measures again.
    let (mut overhead, mut measure) = (u64::MAX, true);
    loop {
        in_time();
        while measure {
            in_time();
            let before = lsn(&primary, "pg_current_wal_insert_lsn()").await;
            client.query_one(EMIT, &[&1024i32]).await.unwrap();
            let after = lsn(&primary, "pg_current_wal_insert_lsn()").await;
            if before / PAGE == after / PAGE {
                overhead = overhead.min(after - before - 1024);
                measure = false;
            }
        }
        let at = lsn(&primary, "pg_current_wal_insert_lsn()").await;
        let size = i32::try_from(message_size(at, overhead)).unwrap();
        client.query_one(EMIT, &[&size]).await.unwrap();
        let end = lsn(&primary, "pg_current_wal_insert_lsn()").await;
        let boundary = end - end % PAGE;
        if end != boundary + header(boundary) {
            // Other WAL came between (a checkpoint, autovacuum): measure and place it again.
            measure = true;
            continue;
        }
        // Both replicas replayed the write: at the page start, where they stay.
        for replica in &replicas {
            while lsn(replica, "pg_last_wal_replay_lsn()").await < boundary {
                in_time();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let served_by = port(&client, "select inet_server_port()").await;
        if lsn(&primary, "pg_current_wal_insert_lsn()").await != end {
            continue; // More WAL came, and the replicas may have passed the header with it.
        }
        assert_ne!(
            served_by, own.port,
            "the read after the write waited for WAL that never came, then took the primary"
        );
        return;
    }
}
