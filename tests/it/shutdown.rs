//! Shutdown: stop accepting, end idle sessions, let open transactions finish.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::{self, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_transactions_finish_and_ends_idle_clients() {
    let mut proxy = Proxy::with_config(&harness::test_config("size = 4", "shutdown_timeout = \"10s\"")).await;
    let busy = proxy.client().await;
    let idle = proxy.client().await;
    busy.batch_execute("begin; select 1").await.unwrap();
    proxy.shutdown.cancel();
    // The idle client is told and disconnected as soon as its session sees the shutdown.
    disconnected(&idle, "the idle client").await;
    let err = idle.batch_execute("select 1").await.unwrap_err();
    assert!(idle.is_closed() || harness::sqlstate(&err).as_deref() == Some("57P01"), "{err:?}");
    // New clients are not accepted.
    assert!(proxy.try_client("app", "app", "app").await.is_err());
    // The open transaction runs to its end.
    let v: i32 = busy.query_one("select 41 + 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 42);
    busy.batch_execute("commit").await.unwrap();
    served_to_the_end(&mut proxy, "after the last transaction").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_pinned_session_between_transactions() {
    let mut proxy = Proxy::with_config(&harness::test_config("size = 4", "shutdown_timeout = \"10s\"")).await;
    let pinned = proxy.client().await;
    // LISTEN pins the session to its connection: it waits holding one, not as an idle client.
    pinned.batch_execute("listen shutdown_pinned").await.unwrap();
    proxy.shutdown.cancel();
    disconnected(&pinned, "the pinned client").await;
    served_to_the_end(&mut proxy, "once the pinned session ended").await;
}

/// Waits for pgsplit to end `client`'s connection: polled, not a fixed sleep that may not
/// suffice on a busy machine; 10 s only bound a session that never ends.
async fn disconnected(client: &tokio_postgres::Client, who: &str) {
    let started = Instant::now();
    while !client.is_closed() {
        assert!(started.elapsed() < Duration::from_secs(10), "{who} was not disconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the proxy's serve task to return after shutdown (`when`: what it waited for).
async fn served_to_the_end(proxy: &mut Proxy, when: &str) {
    let task = proxy.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap_or_else(|_| panic!("serve returns {when}"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_cleanly_on_sigterm() {
    // The multi-threaded runtime, the current-thread one of `workers = 1`, and the default.
    for workers in ["[runtime]\nworkers = 2\n", "[runtime]\nworkers = 1\n", ""] {
        serves_a_query_then_stops_on_sigterm(workers).await;
    }
}

async fn serves_a_query_then_stops_on_sigterm(runtime: &str) {
    let mut binary = Binary::start(runtime, Stdio::inherit).await;
    binary.client().await.query_one("select 1", &[]).await.unwrap();
    binary.stops_on_sigterm().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_changes_nothing_for_clients_or_signals() {
    // As `pgsplit 2>&1 | tee log` whose tee dies: the first line is read, then the pipes close.
    let mut binary = Binary::start("", Stdio::piped).await;
    let stdout = binary.child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let listening = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("pgsplit listening") {
                return;
            }
        }
        panic!("the log ended before pgsplit listened");
    };
    tokio::time::timeout(Duration::from_secs(30), listening).await.expect("pgsplit logs that it listens");
    drop(lines);
    drop(binary.child.stderr.take());
    // Each login logs a line now, into the dead pipe; the query must not notice.
    for _ in 0..3 {
        let client = binary.client().await;
        let answer = tokio::time::timeout(Duration::from_secs(10), client.query_one("select 41 + 1", &[])).await;
        assert_eq!(answer.expect("an answer").unwrap().get::<_, i32>(0), 42);
    }
    let (_, metrics) = harness::http_get(binary.metrics, "/metrics").await;
    let dropped = harness::metric_value(&metrics, "pgsplit_log_write_errors_total", &[]);
    assert!(dropped.is_some_and(|n| n > 0.0), "dropped log lines are counted: {dropped:?}");
    binary.stops_on_sigterm().await;
}

/// The pgsplit binary, run by a test on the primary-only config, with its output on `output`.
struct Binary {
    child: tokio::process::Child,
    port: u16,
    metrics: SocketAddr,
    config: std::path::PathBuf,
}

impl Binary {
    /// Starts the binary with `runtime` prepended to its config and logs at debug level.
    async fn start(runtime: &str, output: fn() -> Stdio) -> Binary {
        let (port, metrics_port) = (harness::free_port(), harness::free_port());
        let listen = format!("addr = \"127.0.0.1:{port}\"\nmetrics_addr = \"127.0.0.1:{metrics_port}\"");
        let config =
            harness::test_config("size = 2", "shutdown_timeout = \"5s\"").replace("addr = \"127.0.0.1:0\"", &listen);
        let path = std::env::temp_dir().join(format!("pgsplit-binary-{}-{port}.toml", std::process::id()));
        std::fs::write(&path, format!("{runtime}{config}")).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgsplit"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "pgsplit=debug")
            .stdout(output())
            .stderr(output())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Binary { child, port, metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)), config: path }
    }

    /// A client logged in as `app`, retried while the binary starts; each try bounded, as a
    /// pgsplit that stopped accepting would leave it waiting forever.
    async fn client(&self) -> tokio_postgres::Client {
        let conn_str = format!("host=127.0.0.1 port={} user=app password=app dbname=app", self.port);
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(5), harness::connect(&conn_str)).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the binary logs no client in within 30 s");
    }

    /// Sends SIGTERM and waits (generously) for a clean exit.
    async fn stops_on_sigterm(&mut self) {
        let pid = self.child.id().unwrap() as i32;
        // Safety: signalling a child process this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let status = exited.expect("exits after SIGTERM").unwrap();
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}
