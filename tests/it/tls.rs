//! TLS on both sides: clients reaching pgsplit over TLS (tokio-postgres with rustls, psql with
//! verify-full, PostgreSQL 17's direct TLS), plaintext refused under `client_tls = "require"`, and
//! pgsplit's own connections to a primary that serves TLS, checked against a CA and a host name.
//! Certificates are minted per test process with rcgen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use tokio::sync::OnceCell;
use tokio_postgres::config::SslNegotiation;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::harness::{self, Proxy};

/// The process's certificates: a CA, pgsplit's certificate (localhost and 127.0.0.1), the
/// primary's (localhost only, so 127.0.0.1 must fail verify-full), and an unrelated CA.
struct Certs {
    dir: PathBuf,
    ca: rcgen::Certificate,
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        // Inside the cluster's directory, so they go when it is destroyed.
        let cluster_dir = &harness::cluster().dir;
        let base = if cluster_dir.as_os_str().is_empty() { std::env::temp_dir() } else { cluster_dir.clone() };
        let dir = base.join(format!("pgsplit-it-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, ca_key) = make_ca("pgsplit test CA");
        let (other_ca, _) = make_ca("some other CA");
        write_leaf(&dir, "proxy", &["localhost", "127.0.0.1"], &ca, &ca_key);
        write_leaf(&dir, "server", &["localhost"], &ca, &ca_key);
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.join("other-ca.crt"), other_ca.pem()).unwrap();
        Certs { dir, ca }
    })
}

fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).unwrap(), key)
}

fn write_leaf(dir: &Path, name: &str, sans: &[&str], ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, sans[0]);
    let cert = params.signed_by(&key, ca, ca_key).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// A rustls connector trusting `ca` (PEM), offering ALPN "postgresql" when `alpn`.
pub(crate) fn connector(ca_pem: &str, alpn: bool) -> MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if alpn {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    MakeRustlsConnect::new(config)
}

/// Connects with tokio-postgres over rustls, verifying the chain against the test CA and the host
/// name, which is what libpq's verify-full does.
pub(crate) async fn connect_tls(conn_str: &str, tls: MakeRustlsConnect) -> Result<Client, tokio_postgres::Error> {
    let config: tokio_postgres::Config = conn_str.parse().unwrap();
    connect_with(config, tls).await
}

async fn connect_with(config: tokio_postgres::Config, tls: MakeRustlsConnect) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The default test config with a `[tls]` table.
fn config_with(tls: &str) -> String {
    format!("{}\n[tls]\n{tls}\n", harness::test_config("size = 4", ""))
}

/// pgsplit offering TLS to clients in `mode`.
async fn proxy_with_client_tls(mode: &str) -> Proxy {
    let c = certs();
    let tls = format!("cert = {:?}\nkey = {:?}\nclient_tls = \"{mode}\"", c.path("proxy.crt"), c.path("proxy.key"));
    Proxy::with_config(&config_with(&tls)).await
}

/// `host=localhost` for verification, `hostaddr` so no IPv6 lookup gets in the way.
fn localhost_conn_str(proxy: &Proxy, extra: &str) -> String {
    format!("host=localhost hostaddr=127.0.0.1 port={} user=app password=app dbname=app {extra}", proxy.addr.port())
}

async fn ssl_in_use(client: &Client) -> bool {
    client.query_one("select ssl from pg_stat_ssl where pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_verify_full_with_tokio_postgres() {
    let proxy = proxy_with_client_tls("require").await;
    let ca = certs().ca.pem();
    let client = connect_tls(&localhost_conn_str(&proxy, "sslmode=require"), connector(&ca, false)).await.unwrap();
    let row = client.query_one("select $1::int + 1", &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    // A reply much larger than a TLS record and a request spanning several: nothing stays
    // buffered inside rustls.
    let big: String = client.query_one("select repeat('x', 3000000)", &[]).await.unwrap().get(0);
    assert_eq!(big.len(), 3_000_000);
    let sent = "y".repeat(1_000_000);
    let len: i32 = client.query_one("select length($1::text)", &[&sent]).await.unwrap().get(0);
    assert_eq!(len, 1_000_000);
    let rows = client.query("select generate_series(1, 20000)", &[]).await.unwrap();
    assert_eq!(rows.len(), 20_000);
    // The certificate also names 127.0.0.1.
    let by_ip = format!("host=127.0.0.1 port={} user=app password=app dbname=app sslmode=require", proxy.addr.port());
    let client = connect_tls(&by_ip, connector(&ca, false)).await.unwrap();
    client.batch_execute("select 1").await.unwrap();
    // A client that trusts another CA refuses pgsplit's certificate.
    let other = std::fs::read_to_string(certs().path("other-ca.crt")).unwrap();
    let err = connect_tls(&localhost_conn_str(&proxy, "sslmode=require"), connector(&other, false)).await.unwrap_err();
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_psql_verify_full() {
    let proxy = proxy_with_client_tls("require").await;
    let conn = localhost_conn_str(&proxy, &format!("sslmode=verify-full sslrootcert={}", certs().path("ca.crt")));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("psql").arg(conn).args(["-X", "-At", "-c", "select 40 + 2", "-c", "\\conninfo"]).output()
    })
    .await
    .unwrap()
    .expect("psql runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "psql failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("42\n"), "{stdout}");
    assert!(stdout.contains("SSL connection (protocol: TLSv1."), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_refuses_plaintext_with_28000() {
    let proxy = proxy_with_client_tls("require").await;
    let err = harness::connect(&localhost_conn_str(&proxy, "sslmode=disable")).await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("28000"), "{err:?}");
    let db = err.as_db_error().unwrap();
    assert!(db.message().contains("sslmode=require"), "{}", db.message());
    // psql's default (prefer) upgrades on its own; asked not to, it is refused the same way.
    let conn = localhost_conn_str(&proxy, "sslmode=disable");
    let out =
        tokio::task::spawn_blocking(move || Command::new("psql").arg(conn).args(["-X", "-c", "select 1"]).output())
            .await
            .unwrap()
            .expect("psql runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires TLS"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_allow_serves_both_and_disable_answers_n() {
    let proxy = proxy_with_client_tls("allow").await;
    harness::connect(&localhost_conn_str(&proxy, "sslmode=disable"))
        .await
        .unwrap()
        .batch_execute("select 1")
        .await
        .unwrap();
    let ca = certs().ca.pem();
    connect_tls(&localhost_conn_str(&proxy, "sslmode=require"), connector(&ca, false)).await.unwrap();
    let proxy = proxy_with_client_tls("disable").await;
    let err = connect_tls(&localhost_conn_str(&proxy, "sslmode=require"), connector(&ca, false)).await.unwrap_err();
    assert!(err.to_string().contains("TLS") || format!("{err:?}").contains("Tls"), "{err:?}");
    // prefer falls back to plaintext after the 'N'.
    let client = connect_tls(&localhost_conn_str(&proxy, "sslmode=prefer"), connector(&ca, false)).await.unwrap();
    client.batch_execute("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cancel_arrives_over_plaintext_and_over_tls() {
    let proxy = proxy_with_client_tls("require").await;
    let ca = certs().ca.pem();
    for over_tls in [false, true] {
        // prefer: the session is TLS (pgsplit answers 'S'), and the cancel follows `over_tls`.
        let client = connect_tls(&localhost_conn_str(&proxy, "sslmode=prefer"), connector(&ca, false)).await.unwrap();
        let token = client.cancel_token();
        let started = std::time::Instant::now();
        let sleeper = harness::sleep_on_primary(client, 10).await;
        if over_tls {
            token.cancel_query(connector(&ca, false)).await.unwrap();
        } else {
            token.cancel_query(NoTls).await.unwrap();
        }
        let err = sleeper.await.unwrap().unwrap_err();
        assert_eq!(harness::sqlstate(&err).as_deref(), Some("57014"), "over_tls {over_tls}: {err:?}");
        assert!(started.elapsed() < Duration::from_secs(9), "over_tls {over_tls}: the sleep was cancelled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_direct_negotiation_needs_alpn() {
    let proxy = proxy_with_client_tls("require").await;
    let ca = certs().ca.pem();
    let mut config: tokio_postgres::Config = localhost_conn_str(&proxy, "sslmode=require").parse().unwrap();
    config.ssl_negotiation(SslNegotiation::Direct);
    let client = connect_with(config.clone(), connector(&ca, true)).await.unwrap();
    let row = client.query_one("select 'direct'", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "direct");
    let err = connect_with(config, connector(&ca, false)).await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("08P01"), "{err:?}");
    assert!(err.as_db_error().unwrap().message().contains("ALPN"), "{err:?}");
}

/// Turns TLS on at the shared primary, once per process: its certificate and key go into the data
/// directory (owned by the cluster's OS user, the key 0600), then `ssl = on` and a reload. Plaintext
/// clients are still served (pg_hba uses `host` lines), so other tests are unaffected.
async fn primary_with_tls() {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let c = certs();
        let admin = harness::primary_admin().await;
        let data: String = admin.query_one("show data_directory", &[]).await.unwrap().get(0);
        install_server_files(Path::new(&data), c);
        admin.batch_execute("alter system set ssl = on").await.unwrap();
        admin.batch_execute("select pg_reload_conf()").await.unwrap();
        // The reload is asynchronous: wait until a verified TLS connection works.
        let port = harness::cluster().primary_port;
        let conn = format!("host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=app sslmode=require");
        for _ in 0..100 {
            if connect_tls(&conn, connector(&c.ca.pem(), false)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the primary did not start serving TLS");
    })
    .await;
}

fn install_server_files(data: &Path, c: &Certs) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(data).unwrap();
    for (from, to, mode) in [("server.crt", "server.crt", 0o644), ("server.key", "server.key", 0o600)] {
        let target = data.join(to);
        std::fs::copy(c.dir.join(from), &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
}

/// A config whose database `app` lives at `primary`, with `[tls]` for the server side.
fn server_side_config(primary: &str, tls: &str) -> String {
    let p = harness::cluster().primary_port;
    config_with(tls).replace(&format!("primary = \"127.0.0.1:{p}\"\n"), &format!("primary = \"{primary}\"\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_verify_full_to_the_primary() {
    primary_with_tls().await;
    let p = harness::cluster().primary_port;
    let tls = format!("server_tls = \"verify-full\"\nserver_ca = {:?}", certs().path("ca.crt"));
    let proxy = Proxy::with_config(&server_side_config(&format!("localhost:{p}"), &tls)).await;
    let client = proxy.client().await;
    assert!(ssl_in_use(&client).await, "pgsplit's server connection uses TLS");
    let big: String = client.query_one("select repeat('z', 2000000)", &[]).await.unwrap().get(0);
    assert_eq!(big.len(), 2_000_000);
    let table = harness::unique("tls_rows");
    client.batch_execute(&format!("create table {table} (id int, note text)")).await.unwrap();
    client
        .batch_execute(&format!("insert into {table} select g, repeat('n', 100) from generate_series(1, 5000) g"))
        .await
        .unwrap();
    let n: i64 = client.query_one(&format!("select count(*) from {table}"), &[]).await.unwrap().get(0);
    assert_eq!(n, 5000);
    client.batch_execute(&format!("drop table {table}")).await.unwrap();
    // Cancels reach the server over TLS too.
    let token = client.cancel_token();
    let sleeper = harness::sleep_on_primary(client, 10).await;
    token.cancel_query(NoTls).await.unwrap();
    let err = sleeper.await.unwrap().unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("57014"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_verify_full_checks_host_name_and_ca() {
    primary_with_tls().await;
    let p = harness::cluster().primary_port;
    // The primary's certificate names localhost only.
    let tls = format!("server_tls = \"verify-full\"\nserver_ca = {:?}", certs().path("ca.crt"));
    let proxy = Proxy::with_config(&server_side_config(&format!("127.0.0.1:{p}"), &tls)).await;
    let err = proxy.try_client("app", "app", "app").await.unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("cannot secure the connection") && message.contains("not valid for name"), "{message}");
    let tls = format!("server_tls = \"verify-full\"\nserver_ca = {:?}", certs().path("other-ca.crt"));
    let proxy = Proxy::with_config(&server_side_config(&format!("localhost:{p}"), &tls)).await;
    let err = proxy.try_client("app", "app", "app").await.unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("invalid peer certificate") && message.to_lowercase().contains("issuer"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_require_and_prefer_against_servers_with_and_without_tls() {
    primary_with_tls().await;
    let _healthy = harness::REPLICAS.read().await;
    let c = harness::cluster();
    let (primary, replica) = (format!("127.0.0.1:{}", c.primary_port), format!("127.0.0.1:{}", c.replica_ports[0]));
    // require: TLS without checking the certificate, so 127.0.0.1 is fine.
    let proxy = Proxy::with_config(&server_side_config(&primary, "server_tls = \"require\"")).await;
    assert!(ssl_in_use(&proxy.client().await).await);
    // The replica has no TLS: require refuses it clearly, prefer falls back to plaintext.
    let proxy = Proxy::with_config(&server_side_config(&replica, "server_tls = \"require\"")).await;
    let err = proxy.try_client("app", "app", "app").await.unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("does not accept TLS") && message.contains("\"require\""), "{message}");
    let proxy = Proxy::with_config(&server_side_config(&replica, "server_tls = \"prefer\"")).await;
    assert!(!ssl_in_use(&proxy.client().await).await);
    let proxy = Proxy::with_config(&server_side_config(&primary, "server_tls = \"prefer\"")).await;
    assert!(ssl_in_use(&proxy.client().await).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_monitor_follows_server_tls() {
    primary_with_tls().await;
    let c = harness::cluster();
    let tls = format!("server_tls = \"verify-full\"\nserver_ca = {:?}", certs().path("ca.crt"));
    // The monitor runs for databases with replicas; it reads the primary's functions over TLS too.
    let text = harness::split_config("size = 2", "").replace(
        &format!("primary = \"127.0.0.1:{}\"\nreplicas", c.primary_port),
        &format!("primary = \"localhost:{}\"\nreplicas", c.primary_port),
    );
    let _proxy = Proxy::with_config(&format!("{text}\n[tls]\n{tls}\n")).await;
    let admin = harness::primary_admin().await;
    let sql = "select count(*) from pg_stat_activity a join pg_stat_ssl s using (pid) \
               where a.application_name = 'pgsplit monitor' and s.ssl";
    for _ in 0..100 {
        let n: i64 = admin.query_one(sql, &[]).await.unwrap().get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no monitor connection to the primary used TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_connection_is_reused_and_replaced_when_killed() {
    primary_with_tls().await;
    let text = format!("{}\n[tls]\nserver_tls = \"require\"\n", harness::test_config("size = 1", ""));
    let proxy = Proxy::with_config(&text).await;
    let client = proxy.client().await;
    let pid: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    // The liveness check at checkout must not mistake an idle TLS connection for a dead one.
    let again: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(again, pid, "the idle TLS connection was reused");
    let admin = harness::primary_admin().await;
    // With a timeout, it returns once the backend has exited (PostgreSQL 14+).
    let ended: bool = admin.query_one("select pg_terminate_backend($1, 10000)", &[&pid]).await.unwrap().get(0);
    assert!(ended, "the backend exited within 10 s");
    let new_pid: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(new_pid, pid, "the killed connection was noticed at checkout and replaced");
    assert!(ssl_in_use(&client).await);
}

/// pgsplit binds its own SCRAM logins to the TLS connection when the server offers
/// SCRAM-SHA-256-PLUS: with a configured password and with a looked-up user's keys alike.
/// PostgreSQL checks the binding, so a login that works with it proves the hash right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_logins_over_tls_use_channel_binding() {
    primary_with_tls().await;
    let p = harness::cluster().primary_port;
    let base = server_side_config(&format!("127.0.0.1:{p}"), "server_tls = \"require\"");
    let config = format!("admin_users = [\"postgres\"]\n{base}\n[auth]\nuser = \"postgres\"\n");
    let proxy = Proxy::with_config(&config).await;
    let role = harness::unique("bound");
    harness::primary_admin().await.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'")).await.unwrap();
    for (user, password) in [("app", "app"), (role.as_str(), "pw")] {
        let client = proxy.client_as(user, password, "app").await;
        assert!(ssl_in_use(&client).await, "{user}: the server connection uses TLS");
    }
    let console = proxy.client_as("postgres", "", "pgsplit").await;
    let rows = console.simple_query("SHOW SERVERS").await.unwrap();
    let mut bound = Vec::new();
    for row in rows.iter().filter_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    }) {
        bound.push((row.get("user").unwrap().to_string(), row.get("channel_binding").unwrap().to_string()));
    }
    for user in ["app", role.as_str()] {
        assert!(bound.iter().any(|(u, b)| u == user && b == "true"), "{user} not bound: {bound:?}");
    }
    assert!(bound.iter().all(|(_, b)| b == "true"), "{bound:?}");
}
