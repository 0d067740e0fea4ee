//! Attacks PostgreSQL and PgBouncer have hardened against: messages out of turn during SCRAM,
//! `options` settings without a name, lengths above 2^31, oversized password messages and
//! guessed cancel keys. Each is refused with a FATAL and its SQLSTATE at once (not at the
//! handshake timeout), and nobody else notices.

use std::net::SocketAddr;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{self, Proxy};
use crate::raw::{self, error_field, message, Raw, HANG};

/// A long handshake timeout: an answer within [`HANG`] comes from the check, not the timeout.
fn config() -> String {
    harness::test_config("size = 4", "handshake_timeout = \"60s\"")
}

/// Reads to the close (which must come within [`HANG`]); the FATAL's SQLSTATE and message.
async fn fatal(conn: &mut Raw) -> (String, String) {
    let messages = conn.until_closed().await;
    let (_, body) = messages.iter().find(|(t, _)| *t == b'E').unwrap_or_else(|| panic!("no error in {messages:?}"));
    assert_eq!(error_field(body, b'S'), "FATAL");
    (error_field(body, b'C'), error_field(body, b'M'))
}

/// Starts a SCRAM login as `app` and reads the AuthenticationSASL request.
async fn at_sasl(proxy: &Proxy) -> Raw {
    let mut conn = Raw::start(proxy.addr, &[("user", "app"), ("database", "app")]).await;
    let (tag, body) = conn.next_message().await.expect("an authentication request");
    assert_eq!((tag, &body[..4]), (b'R', &10i32.to_be_bytes()[..]), "AuthenticationSASL");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_startup_message_during_scram_is_08p01_at_once() {
    let proxy = Proxy::with_config(&config()).await;
    // A whole one: its first bytes read as tag 0 and a length of 10 KiB or more.
    let mut conn = at_sasl(&proxy).await;
    conn.send(&raw::startup_message(&[("user", "postgres"), ("database", "app")])).await;
    let (code, text) = fatal(&mut conn).await;
    assert_eq!((code.as_str(), text.as_str()), ("08P01", "expected a password or SASL response, got message type 0"));
    // A short one, which used to wait for the 2 KiB it seemed to announce.
    let mut conn = at_sasl(&proxy).await;
    conn.send(&[0, 0, 0, 9, 0, 3, 0, 0, 0]).await;
    assert_eq!(fatal(&mut conn).await.0, "08P01");
    proxy.client().await.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_options_setting_without_a_name_or_value_is_refused() {
    let proxy = Proxy::with_config(&config()).await;
    for (options, code) in [("-c =x", "42602"), ("-c=", "42602"), ("--=on", "42602"), ("-c work_mem", "42601")] {
        let mut conn =
            Raw::start(proxy.addr, &[("user", "app_trust"), ("database", "app"), ("options", options)]).await;
        let (got, text) = fatal(&mut conn).await;
        assert_eq!(got, code, "{options:?}: {text}");
    }
    let mut conn = Raw::start(proxy.addr, &[("user", "app_trust"), ("database", "app"), ("bad;name", "x")]).await;
    assert_eq!(fatal(&mut conn).await.0, "42602");
    let good = [("user", "app_trust"), ("database", "app"), ("options", "-c work_mem=2MB")];
    let mut conn = Raw::start(proxy.addr, &good).await;
    conn.until_ready(1).await;
    conn.send(&raw::query("show work_mem")).await;
    let reply = conn.until_ready(1).await;
    assert!(reply.iter().any(|(t, body)| *t == b'D' && body.ends_with(b"2MB")), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_above_2_31_is_08p01_wherever_it_comes() {
    let proxy = Proxy::with_config(&config()).await;
    // As the startup packet's length.
    let mut conn = TcpStream::connect(proxy.addr).await.unwrap();
    conn.write_all(&0x8000_0000u32.to_be_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(HANG, conn.read_to_end(&mut reply)).await.expect("closed in time").unwrap();
    assert_eq!(error_field(&reply[5..], b'C'), "08P01");
    // As a SASL message's.
    let mut conn = at_sasl(&proxy).await;
    conn.send(&[b'p', 0x80, 0, 0, 1]).await;
    assert_eq!(fatal(&mut conn).await.0, "08P01");
    // After login, where 54000 would tell the client to raise limits.max_message_size.
    for len in [0x8000_0001u32, u32::MAX] {
        let mut conn = Raw::login(proxy.addr).await;
        let mut header = vec![b'Q'];
        header.extend_from_slice(&len.to_be_bytes());
        conn.send(&header).await;
        let (code, text) = fatal(&mut conn).await;
        assert_eq!(code, "08P01", "{text}");
        assert!(text.contains("invalid message length"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_response_before_the_initial_response_is_08p01() {
    let proxy = Proxy::with_config(&config()).await;
    let mut conn = at_sasl(&proxy).await;
    conn.send(&message(b'p', b"c=biws,r=abcdefghijklmnop,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")).await;
    let (code, text) = fatal(&mut conn).await;
    assert_eq!(code, "08P01", "{text}");
    assert!(text.contains("SASLInitialResponse"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_message_over_the_limit_is_refused_before_its_body() {
    let proxy = Proxy::with_config(&config()).await;
    let header = |len: u32| [&[b'p'][..], &len.to_be_bytes()].concat();
    let mut conn = at_sasl(&proxy).await;
    conn.send(&header(100_000)).await;
    let (code, text) = fatal(&mut conn).await;
    assert_eq!(
        (code.as_str(), text.as_str()),
        ("08P01", "password message of 100000 bytes is over the limit of 8192 bytes")
    );
    // md5: the password itself.
    let mut conn = Raw::start(proxy.addr, &[("user", "app_md5"), ("database", "app")]).await;
    let (tag, _) = conn.next_message().await.expect("AuthenticationMD5Password");
    assert_eq!(tag, b'R');
    conn.send(&header(8 * 1024 + 5)).await;
    assert_eq!(fatal(&mut conn).await.0, "08P01");
}

/// Logs in over a raw socket; the connection and its cancel key (process id, secret).
async fn keyed_login(addr: SocketAddr) -> (Raw, i32, i32) {
    let mut conn = Raw::start(addr, &[("user", "app_trust"), ("database", "app")]).await;
    let login = conn.until_ready(1).await;
    let (_, key) = login.iter().find(|(t, _)| *t == b'K').expect("BackendKeyData");
    let pid = i32::from_be_bytes(key[..4].try_into().unwrap());
    (conn, pid, i32::from_be_bytes(key[4..8].try_into().unwrap()))
}

/// Sends one CancelRequest; pgsplit must close the connection within [`HANG`], saying nothing.
async fn send_cancel(addr: SocketAddr, pid: i32, secret: i32) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut packet = 16u32.to_be_bytes().to_vec();
    packet.extend_from_slice(&80_877_102u32.to_be_bytes());
    packet.extend_from_slice(&pid.to_be_bytes());
    packet.extend_from_slice(&secret.to_be_bytes());
    s.write_all(&packet).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(HANG, s.read_to_end(&mut rest)).await.expect("cancel connection closed").unwrap();
    assert!(rest.is_empty(), "a cancel request gets no reply: {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_flood_with_guessed_keys_cancels_nothing_and_delays_no_one() {
    let proxy = Proxy::with_config(&config()).await;
    let lock = rand::random::<u32>() as i64;
    let admin = harness::primary_admin().await;
    admin.execute(&format!("select pg_advisory_lock({lock})"), &[]).await.unwrap();
    // Two victims wait on the lock the test holds: their queries run until the test lets go.
    let wait = raw::query(&format!("select pg_advisory_xact_lock({lock})"));
    let (mut victim, pid, secret) = keyed_login(proxy.addr).await;
    let (mut control, control_pid, control_secret) = keyed_login(proxy.addr).await;
    victim.send(&wait).await;
    control.send(&wait).await;
    let waiting = format!(
        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like '%xact_lock({lock})%'"
    );
    let mut polls = 0;
    while admin.query_one(&waiting, &[]).await.unwrap().get::<_, i64>(0) < 2 {
        polls += 1;
        assert!(polls < 1000, "the victims' queries never waited on the lock");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let healthy = proxy.client().await;
    let load = tokio::spawn(async move {
        for _ in 0..200 {
            healthy.query_one("select 1", &[]).await.expect("a healthy client during the flood");
        }
    });

    // 1,000 guesses at the victim's secret and 1,000 at random keys, eight at a time.
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let guesses: Vec<(i32, i32)> = (0..2000)
        .map(|i| if i % 2 == 0 { (pid, rng.gen()) } else { (rng.gen(), rng.gen()) })
        .filter(|&(p, s)| (p, s) != (pid, secret) && p != control_pid)
        .collect();
    let addr = proxy.addr;
    let floods: Vec<_> = guesses
        .chunks(250)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            tokio::spawn(async move {
                for (p, s) in chunk {
                    send_cancel(addr, p, s).await;
                }
            })
        })
        .collect();
    for flood in floods {
        flood.await.unwrap();
    }
    load.await.unwrap();

    // The right key still cancels: the control's query ends with 57014.
    send_cancel(proxy.addr, control_pid, control_secret).await;
    let cancelled = control.until_ready(1).await;
    let error = cancelled.iter().find(|(t, _)| *t == b'E').expect("the control's query was cancelled");
    assert_eq!(error_field(&error.1, b'C'), "57014");
    // The victim's query runs to its end once the lock is free.
    admin.execute(&format!("select pg_advisory_unlock({lock})"), &[]).await.unwrap();
    let done = victim.until_ready(1).await;
    assert!(!done.iter().any(|(t, _)| *t == b'E'), "the victim's query failed: {done:?}");
    assert!(done.iter().any(|(t, _)| *t == b'C'), "{done:?}");
    proxy.client().await.query_one("select 1", &[]).await.unwrap();
}
