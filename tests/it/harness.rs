//! The test harness: one local cluster (a primary and two streaming replicas, started with
//! `scripts/cluster`) per test process, and pgsplit started in-process on port 0 per test.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgsplit::config;
use tokio::net::TcpListener;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

/// Ports and data directory of the shared cluster.
pub struct Cluster {
    pub primary_port: u16,
    pub replica_ports: [u16; 2],
    /// The cluster's directory, for `scripts/cluster stop-node` and friends.
    pub dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The repository root, where `scripts/` lives.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared cluster, started on first use. `PGSPLIT_TEST_PORT` and `PGSPLIT_TEST_DIR` reuse a
/// running one.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        if let Some(port) = std::env::var("PGSPLIT_TEST_PORT").ok().and_then(|p| p.parse().ok()) {
            let dir = PathBuf::from(std::env::var("PGSPLIT_TEST_DIR").unwrap_or_default());
            return Cluster { primary_port: port, replica_ports: [port + 1, port + 2], dir };
        }
        let port = free_port_range();
        let dir = std::env::temp_dir().join(format!("pgsplit-it-{}", std::process::id()));
        let status = Command::new(repo_root().join("scripts/cluster"))
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .status()
            .expect("scripts/cluster runs");
        assert!(status.success(), "scripts/cluster start failed");
        DIR_TO_DESTROY.set(dir.clone()).ok();
        // Safety: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(destroy_cluster) };
        Cluster { primary_port: port, replica_ports: [port + 1, port + 2], dir }
    })
}

static DIR_TO_DESTROY: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn destroy_cluster() {
    if let Some(dir) = DIR_TO_DESTROY.get() {
        let _ = Command::new(repo_root().join("scripts/cluster")).arg("destroy").arg(dir).status();
    }
}

/// A base port with it and the next two free, chosen from the process id to spread parallel runs.
/// All below 32768, where Linux's ephemeral ports begin: an outgoing connection could otherwise
/// take a port between this check and the server's bind.
pub fn free_port_range() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id() % (SPAN / 3) * 3;
    (0..SPAN / 3)
        .map(|i| (LOW + (start + i * 3) % SPAN) as u16)
        .find(|&p| (0..3).all(|i| StdListener::bind(("127.0.0.1", p + i)).is_ok()))
        .expect("a free port range")
}

/// A free port for a daemon a test starts, bound by the daemon after this returns: below
/// [`free_port_range`]'s ports and Linux's ephemeral ones (from 32768), so an outgoing connection
/// cannot take it meanwhile, and never the same one twice in a test run.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 12_000;
    const SPAN: u32 = 8_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() % SPAN;
    loop {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(i < SPAN, "no free port left below {}", LOW + SPAN);
        let port = (LOW + (start + i) % SPAN) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A pgsplit instance running in this test's runtime; shuts down when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Where `/metrics` and `/healthz` answer.
    pub metrics_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The config used by tests that do not care about replicas: database `app` on the primary only,
/// so replicas paused or stopped by other tests cannot touch them. `[pool]` and `[limits]`
/// settings go through `pool` and `limits`.
pub fn test_config(pool: &str, limits: &str) -> String {
    let c = cluster();
    split_config(pool, limits).replacen(
        &format!("replicas = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n", c.replica_ports[0], c.replica_ports[1]),
        "",
        1,
    )
}

/// [`split_config`] with pools of 4, where a read no replica can take yet waits for one (up to
/// 30 s) instead of going to the primary: where reads land does not depend on how fast the
/// monitor sees the replicas on a busy machine. `routing` adds to the `[routing]` section.
pub fn split_config_waiting(routing: &str) -> String {
    format!(
        "{}\n[routing]\nstale_fallback = \"wait\"\nwait_timeout = \"30s\"\n{routing}\n",
        split_config("size = 4", "")
    )
}

/// The config with database `app` on the primary and both replicas: read/write splitting.
pub fn split_config(pool: &str, limits: &str) -> String {
    let c = cluster();
    format!(
        r#"
[listen]
addr = "127.0.0.1:0"
[pool]
{pool}
[limits]
{limits}
[[users]]
name = "app"
password = "app"
[[users]]
name = "app_md5"
password = "app_md5"
auth = "md5"
[[users]]
name = "app_trust"
auth = "trust"
[[users]]
name = "postgres"
auth = "trust"
[databases.app]
primary = "127.0.0.1:{p}"
replicas = ["127.0.0.1:{r1}", "127.0.0.1:{r2}"]
[databases.appsession]
primary = "127.0.0.1:{p}"
server_dbname = "app"
pool_mode = "session"
[databases.postgres]
primary = "127.0.0.1:{p}"
"#,
        p = c.primary_port,
        r1 = c.replica_ports[0],
        r2 = c.replica_ports[1],
    )
}

impl Proxy {
    /// Starts pgsplit with the default test config (primary only).
    pub async fn start() -> Proxy {
        Proxy::with_config(&test_config("size = 4", "")).await
    }

    /// Starts pgsplit splitting reads over the replicas.
    pub async fn split() -> Proxy {
        Proxy::with_config(&split_config("size = 4", "")).await
    }

    /// Starts pgsplit with a full config text.
    pub async fn with_config(text: &str) -> Proxy {
        // RUST_LOG=pgsplit=debug shows pgsplit's logs in failing tests.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let settings = config::from_str(text, "test config").expect("test config is valid");
        Proxy::with_settings(settings).await
    }

    /// Starts pgsplit from a config file, which RELOAD and SIGHUP read again.
    pub async fn from_file(path: &std::path::Path) -> Proxy {
        let settings = config::load(path).expect("test config file is valid");
        Proxy::with_settings(settings).await
    }

    async fn with_settings(settings: config::Settings) -> Proxy {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let metrics = TcpListener::bind("127.0.0.1:0").await.expect("bind metrics");
        let metrics_addr = metrics.local_addr().expect("metrics addr");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            let listeners = pgsplit::app::Listeners::from_sockets(listener, Some(metrics));
            pgsplit::app::serve_all(listeners, settings, token).await.expect("serve");
        });
        Proxy { addr, metrics_addr, shutdown, task: Some(task) }
    }

    /// GETs `path` from the metrics endpoint: the status code and the body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.metrics_addr, path).await
    }

    /// The value of one sample of `/metrics`: `name` with every label in `labels` (others may
    /// be present); the sum when several series match, `None` when none does.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (_, body) = self.http_get("/metrics").await;
        metric_value(&body, name, labels)
    }

    /// A libpq-style connection string for this proxy.
    pub fn conn_str(&self, user: &str, password: &str, db: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} password='{password}' dbname={db}", self.addr.port())
    }

    /// The connection string of `app` to database `app`.
    pub fn app_conn(&self) -> String {
        self.conn_str("app", "app", "app")
    }

    /// Connects as `app` to database `app`.
    pub async fn client(&self) -> Client {
        self.client_as("app", "app", "app").await
    }

    /// Connects with the given credentials; panics on failure.
    pub async fn client_as(&self, user: &str, password: &str, db: &str) -> Client {
        self.try_client(user, password, db).await.expect("connect through pgsplit")
    }

    /// Connects with the given credentials.
    pub async fn try_client(&self, user: &str, password: &str, db: &str) -> Result<Client, tokio_postgres::Error> {
        connect(&self.conn_str(user, password, db)).await
    }
}

/// GETs `path` from a metrics endpoint at `addr`: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to metrics");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await.expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).await.expect("read response");
    let status = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Connects with tokio-postgres and drives the connection in the background.
pub async fn connect(conn_str: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn_str, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A superuser connection straight to the primary, bypassing pgsplit.
pub async fn primary_admin() -> Client {
    let port = cluster().primary_port;
    connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=app")).await.expect("direct connection")
}

/// The SQLSTATE of a tokio-postgres error, if the server (or pgsplit) sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}

/// A unique name for a test's own table.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Runs `scripts/cluster ARGS…` on the shared cluster's directory; panics on failure.
pub fn cluster_cmd(args: &[&str]) {
    let dir = &cluster().dir;
    assert!(!dir.as_os_str().is_empty(), "set PGSPLIT_TEST_DIR with PGSPLIT_TEST_PORT for this test");
    let status = Command::new(repo_root().join("scripts/cluster"))
        .arg(args[0])
        .arg(dir)
        .args(&args[1..])
        .status()
        .expect("scripts/cluster runs");
    assert!(status.success(), "scripts/cluster {args:?} failed");
}

/// A superuser connection straight to a replica (0 or 1).
pub async fn replica_admin(i: usize) -> Client {
    let port = cluster().replica_ports[i];
    connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=app"))
        .await
        .expect("direct connection to replica")
}

/// Tests that stop, pause or lag replicas take this for writing; tests that count on healthy
/// replicas take it for reading.
pub static REPLICAS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Polls `sql` on `node` until it returns a row; panics with `what` after 30 s. Replication is
/// asynchronous: what the primary just committed reaches a standby some time later (hundreds of
/// milliseconds on a busy machine), so a test that needs it there waits for it there.
pub async fn wait_for_row(node: &Client, sql: &str, what: &str) {
    let started = Instant::now();
    while node.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until both replicas answer `sql` with a row: an object or row committed on the primary
/// has been replayed on each, so a clean session's read (which may go to either replica, however
/// far behind) finds it. Only for tests holding [`REPLICAS`] for reading: a paused or stopped
/// replica would never answer.
pub async fn wait_replayed_on_replicas(sql: &str) {
    for i in 0..2 {
        wait_for_row(&replica_admin(i).await, sql, &format!("replica {i} never answered {sql}")).await;
    }
}

/// A query that returns a row once table `t` exists, for [`wait_replayed_on_replicas`] and
/// [`wait_for_row`]: the table's own name would be an error on a standby that lacks it.
pub fn table_exists(t: &str) -> String {
    format!("select 1 from pg_class where relname = '{t}'")
}

/// Sends `select pg_sleep(seconds)` through `client` (which it takes; a pgsplit that sends it
/// to the primary), with a text of its own, and returns once the primary runs it. A cancel or
/// terminate sent a fixed time after sending could arrive before the statement started on a busy
/// machine, and meet nothing; sent after this, it meets the sleep.
pub async fn sleep_on_primary(
    client: Client,
    seconds: u32,
) -> tokio::task::JoinHandle<Result<(), tokio_postgres::Error>> {
    let marker = unique("sleeper");
    let sql = format!("select pg_sleep({seconds}), '{marker}'");
    let sleeper = tokio::spawn(async move { client.batch_execute(&sql).await });
    // The marker goes in as a parameter, so this query's own text does not contain it.
    let running = "select 1 from pg_stat_activity where state = 'active' and strpos(query, $1) > 0 \
                   and pid <> pg_backend_pid()";
    let admin = primary_admin().await;
    let started = Instant::now();
    while admin.query(running, &[&marker]).await.unwrap().is_empty() {
        assert!(!sleeper.is_finished(), "the sleep ended before it was seen running");
        assert!(started.elapsed() < Duration::from_secs(20), "the sleep never ran on the primary");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sleeper
}

/// See [`Proxy::metric`].
pub fn metric_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        if series_name != name || !labels.iter().all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\""))) {
            continue;
        }
        *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
    }
    found
}
