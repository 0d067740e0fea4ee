//! Shutdown: stop accepting, end idle sessions, let open transactions finish.

use std::time::Duration;

use crate::harness::{self, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_transactions_finish_and_ends_idle_clients() {
    let mut proxy = Proxy::with_config(&harness::test_config("size = 4", "shutdown_timeout = \"10s\"")).await;
    let busy = proxy.client().await;
    let idle = proxy.client().await;
    busy.batch_execute("begin; select 1").await.unwrap();
    proxy.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The idle client was told and disconnected.
    let err = idle.batch_execute("select 1").await.unwrap_err();
    assert!(idle.is_closed() || harness::sqlstate(&err).as_deref() == Some("57P01"), "{err:?}");
    // New clients are not accepted.
    assert!(proxy.try_client("app", "app", "app").await.is_err());
    // The open transaction runs to its end.
    let v: i32 = busy.query_one("select 41 + 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 42);
    busy.batch_execute("commit").await.unwrap();
    let task = proxy.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns after the last transaction")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_cleanly_on_sigterm() {
    // The default multi-threaded runtime, and the current-thread one of `workers = 1`.
    for workers in ["", "[runtime]\nworkers = 1\n"] {
        serves_a_query_then_stops_on_sigterm(workers).await;
    }
}

async fn serves_a_query_then_stops_on_sigterm(runtime: &str) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = harness::test_config("size = 2", "shutdown_timeout = \"5s\"")
        .replace("addr = \"127.0.0.1:0\"", &format!("addr = \"127.0.0.1:{port}\""));
    let config = format!("{runtime}{config}");
    let path = std::env::temp_dir().join(format!("pgsplit-sigterm-{}.toml", std::process::id()));
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgsplit"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "pgsplit=warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let conn_str = format!("host=127.0.0.1 port={port} user=app password=app dbname=app");
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = harness::connect(&conn_str).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = client.expect("the binary accepts connections");
    client.query_one("select 1", &[]).await.unwrap();
    let pid = child.id().unwrap() as i32;
    // Safety: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_file(path);
}
