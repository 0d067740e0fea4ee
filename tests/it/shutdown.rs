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
