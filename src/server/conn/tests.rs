use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

#[test]
fn message_walk() {
    let bytes = b"S\0\0\0\x04H\0\0\0\x04";
    let tags: Vec<u8> = messages(bytes).map(|(t, _)| t).collect();
    assert_eq!(tags, b"SH");
}

/// A connection over a loopback socket, and the socket's other end as the server.
async fn connected() -> (ServerConn, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let conn =
        ServerConn::new(Stream::Plain(client), Arc::from("test"), BackendKey { pid: 1, secret: 2 }, BTreeMap::new());
    (conn, server)
}

const SELECT: &[u8] = b"Q\0\0\0\x0dselect 1\0";
const BEGIN_REPLIES: &[u8] = b"C\0\0\0\x0aBEGIN\0Z\0\0\0\x05T";
const SELECT_REPLIES: &[u8] = b"C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05T";

#[tokio::test]
async fn a_deferred_begin_goes_first_in_the_same_write_and_its_replies_are_swallowed() {
    for probe in [false, true] {
        let (mut conn, mut server) = connected().await;
        assert!(conn.outside_transaction());
        conn.begin_first();
        assert!(!conn.outside_transaction(), "a BEGIN is owed: unnamed statements must not be reused");
        conn.send(SELECT, Pipeline::Closed, probe).await.unwrap();
        let mut expected = [BEGIN, SELECT].concat();
        if probe {
            expected.extend_from_slice(b"Q\0\0\0\x27SELECT pg_current_wal_insert_lsn()\0");
        }
        let mut sent = vec![0; expected.len()];
        server.read_exact(&mut sent).await.unwrap();
        assert_eq!(sent, expected, "probe={probe}: the BEGIN, the request, the probe only if asked");
        server.write_all(&[BEGIN_REPLIES, SELECT_REPLIES].concat()).await.unwrap();
        let mut forwarded = Vec::new();
        while forwarded.len() < SELECT_REPLIES.len() {
            conn.read_more().await.unwrap();
            while let Some((batch, _)) = conn.take_batch().unwrap() {
                forwarded.extend_from_slice(&batch);
            }
        }
        assert_eq!(forwarded, SELECT_REPLIES, "probe={probe}: the BEGIN's replies are not the client's");
        assert_eq!(conn.status(), b'T');
        assert_eq!(conn.settled(), !probe, "probe={probe}: only the probe's replies are still owed");
        // The next request goes out alone.
        conn.send(SELECT, Pipeline::Closed, false).await.unwrap();
        let mut sent = vec![0; SELECT.len()];
        server.read_exact(&mut sent).await.unwrap();
        assert_eq!(sent, SELECT);
    }
}

const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";
const PROBE_ROW: &[u8] = b"D\0\0\0\x13\0\x01\0\0\0\x090/16B3748";
const PROBE_TAIL: &[u8] = b"C\0\0\0\x0dSELECT 1\0";
const DESCRIPTION: &[u8] = b"T\0\0\0\x06\0\0";

/// Feeds `replies` as the server and collects what `take_batch` hands the session.
async fn batches(conn: &mut ServerConn, server: &mut TcpStream, replies: &[u8]) -> Vec<(Vec<u8>, BatchEnd)> {
    server.write_all(replies).await.unwrap();
    let mut got = Vec::new();
    while !conn.settled() {
        conn.read_more().await.unwrap();
        while let Some((batch, end)) = conn.take_batch().unwrap() {
            got.push((batch.to_vec(), end));
        }
    }
    got
}

#[tokio::test]
async fn a_plain_commit_carries_the_probe_in_its_own_text() {
    let (mut conn, mut server) = connected().await;
    conn.send(COMMIT, Pipeline::Closed, true).await.unwrap();
    let expected = b"Q\0\0\0\x2eCOMMIT;SELECT pg_current_wal_insert_lsn()\0";
    let mut sent = vec![0; expected.len()];
    server.read_exact(&mut sent).await.unwrap();
    assert_eq!(sent, expected, "one Query: the commit, then the probe");
    let complete = b"C\0\0\0\x0bCOMMIT\0";
    let ready = b"Z\0\0\0\x05I";
    let replies = [&complete[..], DESCRIPTION, PROBE_ROW, PROBE_TAIL, ready].concat();
    let got = batches(&mut conn, &mut server, &replies).await;
    let expected = vec![
        (complete.to_vec(), BatchEnd::More),
        (ready.to_vec(), BatchEnd::Ready),
        (Vec::new(), BatchEnd::Probe(Some(0x16B3748))),
    ];
    assert_eq!(got, expected, "the client's replies, its ReadyForQuery, then the probe's end");
}

#[tokio::test]
async fn a_failed_folded_commit_ends_as_rolled_back() {
    let (mut conn, mut server) = connected().await;
    conn.send(COMMIT, Pipeline::Closed, true).await.unwrap();
    let mut sent = vec![0; 47];
    server.read_exact(&mut sent).await.unwrap();
    let error = b"E\0\0\0\x0cC23503\0\0";
    let ready = b"Z\0\0\0\x05I";
    let got = batches(&mut conn, &mut server, &[&error[..], ready].concat()).await;
    let expected =
        vec![(error.to_vec(), BatchEnd::More), (ready.to_vec(), BatchEnd::Ready), (Vec::new(), BatchEnd::RolledBack)];
    assert_eq!(got, expected);
}

#[tokio::test]
async fn other_requests_keep_a_probe_of_their_own() {
    for request in [SELECT, b"Q\0\0\0\x15COMMIT AND CHAIN\0"] {
        let (mut conn, mut server) = connected().await;
        conn.send(request, Pipeline::Closed, true).await.unwrap();
        let expected = [request, b"Q\0\0\0\x27SELECT pg_current_wal_insert_lsn()\0"].concat();
        let mut sent = vec![0; expected.len()];
        server.read_exact(&mut sent).await.unwrap();
        assert_eq!(sent, expected);
    }
}
