//! Bad input from clients: each gets an ErrorResponse or a clean close within the handshake
//! timeout, pgsplit never panics, and a healthy client served alongside notices nothing.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{self, Proxy};
use crate::raw::{self, Raw};

/// Reads everything until the peer closes (bounded by `limit`); returns the bytes.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let _ =
        tokio::time::timeout(limit, stream.read_to_end(&mut out)).await.expect("pgsplit closed the connection in time");
    out
}

fn startup(params: &[(&str, &str)], version: u32) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

/// Splits server messages into (tag, body) pairs.
fn messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if bytes.len() < len + 1 {
            break;
        }
        out.push((bytes[0], bytes[5..len + 1].to_vec()));
        bytes = &bytes[len + 1..];
    }
    out
}

fn sqlstate_of(body: &[u8]) -> String {
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        let end = tail.iter().position(|&b| b == 0).unwrap();
        if code == b'C' {
            return String::from_utf8_lossy(&tail[..end]).into_owned();
        }
        rest = &tail[end + 1..];
    }
    String::new()
}

/// Logs in as the trust user over a raw socket; returns the socket and the login messages.
async fn raw_login(proxy: &Proxy, version: u32, extra: &[(&str, &str)]) -> (TcpStream, Vec<(u8, Vec<u8>)>) {
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut params = vec![("user", "app_trust"), ("database", "app")];
    params.extend_from_slice(extra);
    s.write_all(&startup(&params, version)).await.unwrap();
    let mut got = Vec::new();
    loop {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed during login");
        got.extend_from_slice(&buf[..n]);
        let msgs = messages(&got);
        if msgs.last().is_some_and(|(t, _)| *t == b'Z') {
            return (s, msgs);
        }
    }
}

fn short_handshake_config() -> String {
    harness::test_config("size = 4", "handshake_timeout = \"1s\"\nmax_message_size = \"1MiB\"")
}

/// Runs queries on a healthy client until `stop`; returns how many succeeded and any error.
async fn healthy_load(
    proxy: &Proxy,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(u32, Option<String>)> {
    let client = proxy.client().await;
    tokio::spawn(async move {
        let mut ok = 0;
        while !*stop.borrow() {
            match client.query_one("select 1", &[]).await {
                Ok(_) => ok += 1,
                Err(e) => return (ok, Some(e.to_string())),
            }
        }
        (ok, None)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_get_errors_and_healthy_ones_notice_nothing() {
    let proxy = Proxy::with_config(&short_handshake_config()).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let healthy = healthy_load(&proxy, stop_rx).await;

    // Garbage instead of a startup packet.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let msgs = messages(&read_to_close(&mut s, Duration::from_secs(5)).await);
    assert_eq!(msgs.first().map(|m| (m.0, sqlstate_of(&m.1))), Some((b'E', "08P01".into())));

    // A truncated startup packet: the handshake timeout ends it.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[0, 0, 0, 100, 0, 3, 0, 0]).await.unwrap();
    let msgs = messages(&read_to_close(&mut s, Duration::from_secs(5)).await);
    assert_eq!(msgs.first().map(|m| (m.0, sqlstate_of(&m.1))), Some((b'E', "08P01".into())));

    // A client that connects and says nothing.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let msgs = messages(&read_to_close(&mut s, Duration::from_secs(5)).await);
    assert_eq!(msgs.first().map(|m| m.0), Some(b'E'));

    // A message declaring 1 GiB after login.
    let (mut s, _) = raw_login(&proxy, 196608, &[]).await;
    s.write_all(&[b'Q', 0x40, 0, 0, 0]).await.unwrap();
    let msgs = messages(&read_to_close(&mut s, Duration::from_secs(5)).await);
    assert_eq!(msgs.first().map(|m| (m.0, sqlstate_of(&m.1))), Some((b'E', "54000".into())));

    // A length below 4 after login.
    let (mut s, _) = raw_login(&proxy, 196608, &[]).await;
    s.write_all(&[b'Q', 0, 0, 0, 2]).await.unwrap();
    let msgs = messages(&read_to_close(&mut s, Duration::from_secs(5)).await);
    assert_eq!(msgs.first().map(|m| (m.0, sqlstate_of(&m.1))), Some((b'E', "08P01".into())));

    // No user in the startup packet.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&startup(&[("database", "app")], 196608)).await.unwrap();
    let msgs = messages(&read_to_close(&mut s, Duration::from_secs(5)).await);
    assert_eq!(msgs.first().map(|m| (m.0, sqlstate_of(&m.1))), Some((b'E', "28000".into())));

    // A client that vanishes mid-message.
    let (mut s, _) = raw_login(&proxy, 196608, &[]).await;
    s.write_all(&[b'Q', 0, 0, 0, 50, b's', b'e']).await.unwrap();
    drop(s);

    stop_tx.send(true).unwrap();
    let (ok, err) = healthy.await.unwrap();
    assert_eq!(err, None, "the healthy client saw an error");
    assert!(ok > 0);
    // And pgsplit still takes new clients.
    proxy.client().await.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_after_login_never_take_pgsplit_down() {
    use rand::{Rng, SeedableRng};
    let proxy = Proxy::with_config(&short_handshake_config()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..30 {
        let (mut s, _) = raw_login(&proxy, 196608, &[]).await;
        let len = rng.gen_range(1..200);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let _ = s.write_all(&junk).await;
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await;
    }
    let client = proxy.client().await;
    client.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sends_parameter_status_key_and_ready() {
    let proxy = Proxy::start().await;
    let (_s, msgs) = raw_login(&proxy, 196608, &[("application_name", "rawtest")]).await;
    assert_eq!(msgs[0], (b'R', vec![0, 0, 0, 0]), "AuthenticationOk first");
    let names: Vec<String> = msgs
        .iter()
        .filter(|(t, _)| *t == b'S')
        .map(|(_, b)| String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap()]).into_owned())
        .collect();
    for wanted in [
        "server_version",
        "client_encoding",
        "DateStyle",
        "TimeZone",
        "integer_datetimes",
        "standard_conforming_strings",
        "application_name",
    ] {
        assert!(names.iter().any(|n| n == wanted), "missing ParameterStatus {wanted}: {names:?}");
    }
    let app = msgs.iter().find(|(t, b)| *t == b'S' && b.starts_with(b"application_name\0")).unwrap();
    assert_eq!(app.1, b"application_name\0rawtest\0");
    assert!(msgs.iter().any(|(t, b)| *t == b'K' && b.len() == 8));
    assert_eq!(msgs.last().unwrap(), &(b'Z', vec![b'I']));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_protocol_and_pq_options_get_negotiate_protocol_version() {
    let proxy = Proxy::start().await;
    let (mut s, msgs) = raw_login(&proxy, (3 << 16) | 2, &[("_pq_.test_option", "1")]).await;
    let (tag, body) = &msgs[0];
    assert_eq!(*tag, b'v');
    assert_eq!(&body[..4], &0i32.to_be_bytes(), "newest minor version is 0");
    assert_eq!(&body[4..8], &1i32.to_be_bytes(), "one unsupported option");
    assert!(body.windows(15).any(|w| w == b"_pq_.test_optio"));
    // The session works at 3.0 afterwards.
    s.write_all(b"Q\0\0\0\x0dselect 1\0").await.unwrap();
    let mut got = Vec::new();
    while !messages(&got).iter().any(|(t, _)| *t == b'Z') {
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(messages(&got).iter().any(|(t, _)| *t == b'D'));
}

fn frontend(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

async fn exchange(s: &mut TcpStream, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    while !messages(&got).iter().any(|(t, _)| *t == b'Z') {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
    messages(&got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_statement_name_is_42p05_and_keeps_the_first() {
    let proxy = Proxy::with_config(&harness::test_config("size = 2", "")).await;
    let (mut s, _) = raw_login(&proxy, 196608, &[]).await;
    let parse = |sql: &str| frontend(b'P', &[b"s1\0".as_slice(), sql.as_bytes(), b"\0\0\0"].concat());
    let sync = frontend(b'S', b"");
    let first = exchange(&mut s, &[parse("select 1"), sync.clone()].concat()).await;
    assert_eq!(first.iter().map(|m| m.0).collect::<Vec<_>>(), b"1Z");
    let again = exchange(&mut s, &[parse("select 2"), sync.clone()].concat()).await;
    assert_eq!(again.iter().map(|m| m.0).collect::<Vec<_>>(), b"EZ");
    assert_eq!(sqlstate_of(&again[0].1), "42P05");
    let bind = frontend(b'B', b"\0s1\0\0\0\0\0\0\0");
    let exec = frontend(b'E', b"\0\0\0\0\0");
    let run = exchange(&mut s, &[bind, exec, sync.clone()].concat()).await;
    let row = run.iter().find(|m| m.0 == b'D').expect("a row");
    assert_eq!(&row.1[6..], b"1", "the first definition stands");
    // Close, then the name may be used again.
    let close = frontend(b'C', b"Ss1\0");
    let closed = exchange(&mut s, &[close, parse("select 3"), sync].concat()).await;
    assert_eq!(closed.iter().map(|m| m.0).collect::<Vec<_>>(), b"31Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_as_sql_forgets_protocol_statements() {
    let proxy = Proxy::with_config(&harness::test_config("size = 2", "")).await;
    let (mut s, _) = raw_login(&proxy, 196608, &[]).await;
    let parse = |name: &str, sql: &str| frontend(b'P', &[name.as_bytes(), b"\0", sql.as_bytes(), b"\0\0\0"].concat());
    let query = |sql: &str| frontend(b'Q', &[sql.as_bytes(), b"\0"].concat());
    let sync = frontend(b'S', b"");
    let tags = |m: &[(u8, Vec<u8>)]| m.iter().map(|m| m.0).collect::<Vec<_>>();
    assert_eq!(tags(&exchange(&mut s, &[parse("s1", "select 1"), sync.clone()].concat()).await), b"1Z");
    let done = exchange(&mut s, &query("DEALLOCATE s1")).await;
    assert_eq!(tags(&done), b"CZ");
    assert_eq!(done[0].1, b"DEALLOCATE\0");
    // The name is free again, and the old one is gone.
    let bind = frontend(b'B', b"\0s1\0\0\0\0\0\0\0");
    let gone = exchange(&mut s, &[bind, sync.clone()].concat()).await;
    assert_eq!(sqlstate_of(&gone[0].1), "26000");
    assert_eq!(tags(&exchange(&mut s, &[parse("s1", "select 2"), sync.clone()].concat()).await), b"1Z");
    let all = exchange(&mut s, &query("deallocate all;")).await;
    assert_eq!(all[0].1, b"DEALLOCATE ALL\0");
    assert_eq!(tags(&exchange(&mut s, &[parse("s1", "select 3"), sync].concat()).await), b"1Z");
    // A SQL-level statement still reaches the server (which knows it).
    let sql = exchange(&mut s, &query("deallocate never_prepared")).await;
    assert_eq!(sqlstate_of(&sql[0].1), "26000");
}

/// A message with tag 7, which no client may send: 8 bytes, as in the report that found pgsplit
/// waiting for a Sync behind it.
fn unknown_type() -> Vec<u8> {
    raw::message(7, b"junk")
}

/// Reads until the connection closes and checks that the only thing said was PostgreSQL's FATAL
/// 08P01 for message type 7.
async fn assert_fatal_unknown_type(conn: &mut Raw, what: &str) {
    let said = conn.until_closed().await;
    let errors: Vec<_> = said.iter().filter(|(t, _)| *t == b'E').collect();
    assert_eq!(errors.len(), 1, "{what}: one ErrorResponse before the close: {said:?}");
    let body = &errors[0].1;
    let fields = [b'S', b'C', b'M'].map(|f| raw::error_field(body, f));
    assert_eq!(fields, ["FATAL", "08P01", "invalid frontend message type 7"], "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_type_no_client_may_send_is_fatal_at_once() {
    // PostgreSQL's own answer, which pgsplit copies.
    let mut direct = Raw::login(SocketAddr::from(([127, 0, 0, 1], harness::cluster().primary_port))).await;
    direct.send(&unknown_type()).await;
    assert_fatal_unknown_type(&mut direct, "PostgreSQL").await;

    let proxy = Proxy::with_config(&harness::test_config("size = 2", "")).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let healthy = healthy_load(&proxy, stop_rx).await;
    let t = harness::unique("badtag");
    proxy
        .client()
        .await
        .batch_execute(&format!("create table {t} (id int); grant all on {t} to public"))
        .await
        .unwrap();

    let mut alone = Raw::login(proxy.addr).await;
    alone.send(&unknown_type()).await;
    assert_fatal_unknown_type(&mut alone, "alone").await;

    // Behind a Parse and Bind that wait for their Sync, so no request is complete.
    let mut unsynced = Raw::login(proxy.addr).await;
    unsynced.send(&[raw::extended("select 1"), unknown_type()].concat()).await;
    assert_fatal_unknown_type(&mut unsynced, "behind an unsynced Parse").await;

    // Inside a transaction, while a flushed pipeline is being relayed from a held connection:
    // the transaction is rolled back and the connection is not handed on mid-pipeline.
    let mut relaying = Raw::login(proxy.addr).await;
    relaying.send(&raw::query(&format!("begin; insert into {t} values (1)"))).await;
    relaying.until_ready(1).await;
    relaying.send(&[raw::extended("select 1"), raw::flush()].concat()).await;
    relaying.until_tag(b'C').await;
    relaying.send(&unknown_type()).await;
    assert_fatal_unknown_type(&mut relaying, "while relaying").await;

    stop_tx.send(true).unwrap();
    let (ok, err) = healthy.await.unwrap();
    assert_eq!(err, None, "the healthy client saw an error");
    assert!(ok > 0);
    let after = proxy.client().await;
    let rows: i64 = after.query_one(&format!("select count(*) from {t}"), &[]).await.unwrap().get(0);
    assert_eq!(rows, 0, "the abandoned transaction was rolled back");
    after.batch_execute(&format!("drop table {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_ends_a_client_sending_an_unknown_message_type() {
    let config = format!("admin_users = [\"postgres\"]\n{}", harness::test_config("size = 2", ""));
    let proxy = Proxy::with_config(&config).await;
    let mut console = Raw::login_as(proxy.addr, "postgres", "pgsplit").await;
    console.send(&raw::query("SHOW POOLS")).await;
    console.until_ready(1).await;
    console.send(&unknown_type()).await;
    assert_fatal_unknown_type(&mut console, "console").await;
    // The console still takes the next admin.
    let mut next = Raw::login_as(proxy.addr, "postgres", "pgsplit").await;
    next.send(&raw::query("SHOW POOLS")).await;
    assert!(!next.until_ready(1).await.iter().any(|(t, _)| *t == b'E'));
}
