//! Real traffic to start mutations from. The `seeds/` files are what clients and PostgreSQL 15
//! sent each other through a recording TCP relay in front of a `scripts/cluster` primary:
//! `pgbench -n -t 3 -c 1` with `-M simple`, `-M extended` and `-M prepared`, `pgbench -S -M
//! extended`, psql running COPY in and out, a transaction and hinted queries (`psql-copy`), psql
//! with `PGOPTIONS` (`psql-options`), an md5 login (`psql-md5`), psql interrupted during
//! `pg_sleep` (`psql-cancel`, and its CancelRequest), asyncpg and psycopg 3 (pipeline mode,
//! executemany, COPY). Logins are SCRAM-SHA-256 unless named otherwise, so the SASL messages are
//! libpq's, asyncpg's and psycopg's own.

use crate::protocol::frame::whole_messages;
use crate::protocol::from_client;

/// One recorded connection: everything the client sent, everything the server sent.
pub(crate) struct Capture {
    pub client: &'static [u8],
    pub server: &'static [u8],
}

macro_rules! capture {
    ($name:literal) => {
        Capture {
            client: include_bytes!(concat!("seeds/", $name, ".client")),
            server: include_bytes!(concat!("seeds/", $name, ".server")),
        }
    };
}

/// Every recorded connection.
pub(crate) const CAPTURES: &[Capture] = &[
    capture!("pgbench-simple"),
    capture!("pgbench-extended"),
    capture!("pgbench-prepared"),
    capture!("pgbench-select"),
    capture!("psql-copy"),
    capture!("psql-options"),
    capture!("psql-md5"),
    capture!("psql-cancel"),
    capture!("asyncpg"),
    capture!("psycopg"),
];

/// psql's CancelRequest for the query it was interrupted in.
const CANCEL_REQUEST: &[u8] = include_bytes!("seeds/psql-cancelrequest.client");

/// The untagged packets a client stream starts with (SSLRequest, StartupMessage), each with its
/// length prefix, and the tagged messages after them.
pub(crate) fn split_startup(mut stream: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut packets = Vec::new();
    while stream.len() >= 8 {
        let len = u32::from_be_bytes([stream[0], stream[1], stream[2], stream[3]]) as usize;
        let code = u32::from_be_bytes([stream[4], stream[5], stream[6], stream[7]]);
        if !(8..=stream.len()).contains(&len) {
            break;
        }
        packets.push(&stream[..len]);
        stream = &stream[len..];
        if code >> 16 == 3 {
            break;
        }
    }
    (packets, stream)
}

/// Every untagged packet recorded, and some that drivers send in other setups.
pub(crate) fn startup_packets() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = CAPTURES.iter().flat_map(|c| split_startup(c.client).0).map(<[u8]>::to_vec).collect();
    out.push(CANCEL_REQUEST.to_vec());
    out.push(packet(80_877_104, &[])); // GSSENCRequest
    let options = [("user", "app"), ("database", "app"), ("options", "-c search_path=a,b -c =x -c= --x-y=1")];
    out.push(packet(196_608, &startup_params(&options)));
    // Protocol 3.2 with a protocol option, as libpq 18 may send.
    out.push(packet(196_610, &startup_params(&[("user", "app"), ("_pq_.test", "on"), ("replication", "database")])));
    out
}

/// A startup-phase packet: length, code, body.
pub(crate) fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Name/value pairs as a StartupMessage body carries them, with the final terminator.
pub(crate) fn startup_params(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out.push(0);
    out
}

/// What each client sent after its startup packet: password messages, then its requests.
pub(crate) fn client_streams() -> Vec<Vec<u8>> {
    CAPTURES.iter().map(|c| split_startup(c.client).1.to_vec()).collect()
}

/// What each client sent once logged in (without the password messages).
pub(crate) fn logged_in_streams() -> Vec<Vec<u8>> {
    let after_login = |c: &Capture| {
        let tagged = split_startup(c.client).1;
        let auth: usize = whole_messages(tagged).take_while(|m| m[0] == from_client::PASSWORD).map(<[u8]>::len).sum();
        tagged[auth..].to_vec()
    };
    CAPTURES.iter().map(after_login).collect()
}

/// The bodies of the password messages recorded (password, SASLInitialResponse, SASLResponse).
pub(crate) fn password_bodies() -> Vec<Vec<u8>> {
    let tagged = CAPTURES.iter().flat_map(|c| whole_messages(split_startup(c.client).1));
    tagged.filter(|m| m[0] == from_client::PASSWORD).map(|m| m[5..].to_vec()).collect()
}

/// The SQL texts recorded (Query and Parse), and some the classifier's tests find tricky.
pub(crate) fn sql_texts() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for message in CAPTURES.iter().flat_map(|c| whole_messages(split_startup(c.client).1)) {
        let body = &message[5..];
        match message[0] {
            from_client::QUERY => out.push(from_client::query_sql(body).to_vec()),
            from_client::PARSE => out.extend(from_client::parse_message(body).map(|(_, sql)| sql.to_vec())),
            _ => {}
        }
    }
    out.extend(TRICKY_SQL.iter().map(|s| s.as_bytes().to_vec()));
    out
}

/// Statements that stress the lexer and the walk: nesting, quoting, bodies, hints, locks.
const TRICKY_SQL: &[&str] = &[
    "WITH w AS (DELETE FROM t RETURNING *) SELECT * FROM w",
    "select $q$;'\"$q$, E'\\';x', U&\"d\\0061t\" from \"T\"\"x\" -- ;\n where a = 'b''c'",
    "/* pgsplit: route=replica min_lsn=16/B374D848 */ select /* nested /* c */ */ 1; -- pgsplit: route=primary",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; select 3",
    "select * from a join lateral (select nextval('s'), pg_advisory_lock(1)) x on true for no key update",
    "explain (analyze, buffers) copy (select * from t for update) to stdout",
    "select ((((((((((((((((((((1))))))))))))))))))))::int[] <@ array[1,2] and b ilike any (select 'x')",
    "set local search_path to \"$user\", public; set session authorization default; discard all",
    "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY; LISTEN x; PREPARE p AS select 1; DECLARE c CURSOR WITH HOLD FOR select 1",
];

/// What each server sent.
pub(crate) fn server_streams() -> Vec<Vec<u8>> {
    CAPTURES.iter().map(|c| c.server.to_vec()).collect()
}

/// Config files as people write them: the repository's examples and the tests' shape.
pub(crate) fn config_texts() -> Vec<Vec<u8>> {
    let files = [
        include_str!("../../config/pgsplit.example.toml"),
        include_str!("../../config/quickstart.toml"),
        include_str!("../../config/compose.toml"),
        MINIMAL_CONFIG,
    ];
    files.iter().map(|f| f.as_bytes().to_vec()).collect()
}

/// The smallest config that validates, as the integration tests start from.
pub(crate) const MINIMAL_CONFIG: &str = r#"
[listen]
addr = "127.0.0.1:0"
[limits]
handshake_timeout = "1s"
max_message_size = "1MiB"
[[users]]
name = "app"
password = "app"
[[users]]
name = "app_md5"
password = "app_md5"
auth = "md5"
[databases.app]
primary = "127.0.0.1:5432"
replicas = ["127.0.0.1:5433", "127.0.0.1:5434"]
[[routing.rules]]
tables = ["audit"]
route = "primary"
"#;
