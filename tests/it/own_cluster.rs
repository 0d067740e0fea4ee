//! A primary and two replicas of a test's own, for tests that change roles (failover) or need
//! a primary no other test writes to (WAL positions placed to the byte).

use std::path::PathBuf;
use std::process::Command;

use tokio_postgres::Client;

use crate::harness::{self, repo_root};

/// One test with a cluster of its own at a time: each starts one, on ports picked when it starts.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A primary and two replicas in a temp dir, destroyed when dropped.
pub struct OwnCluster {
    dir: PathBuf,
    /// The primary's port; the replicas listen on the next two.
    pub port: u16,
}

impl OwnCluster {
    pub fn start() -> OwnCluster {
        // The shared cluster takes its ports first, so the two never pick the same range.
        harness::cluster();
        let port = harness::free_port_range();
        let dir = std::env::temp_dir().join(format!("pgsplit-own-{}-{port}", std::process::id()));
        let cluster = OwnCluster { dir, port };
        cluster.cmd(&["start", &port.to_string()]);
        cluster
    }

    /// `scripts/cluster ARGS…` on this cluster's directory; panics on failure.
    pub fn cmd(&self, args: &[&str]) {
        let status = Command::new(repo_root().join("scripts/cluster"))
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .status()
            .expect("scripts/cluster runs");
        assert!(status.success(), "scripts/cluster {args:?} failed");
    }

    /// pgsplit in front of this cluster, `postgres` as the console's admin. The monitor logs in
    /// as `postgres`, as README's "Failover" asks (a monitor user with `pg_monitor`): it reads
    /// each standby's timeline from its WAL receiver.
    pub fn config(&self) -> String {
        format!(
            r#"admin_users = ["postgres"]
[listen]
addr = "127.0.0.1:0"
[pool]
size = 4
connect_timeout = "1s"
[[users]]
name = "app"
password = "app"
[[users]]
name = "postgres"
auth = "trust"
[databases.app]
primary = "127.0.0.1:{p}"
replicas = ["127.0.0.1:{r1}", "127.0.0.1:{r2}"]
[routing]
check_interval = "100ms"
failover_timeout = "1s"
monitor_user = "postgres"
"#,
            p = self.port,
            r1 = self.port + 1,
            r2 = self.port + 2,
        )
    }

    pub async fn direct(&self, node: u16) -> Client {
        harness::connect(&format!("host=127.0.0.1 port={node} user=postgres dbname=app")).await.expect("direct")
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/cluster")).arg("destroy").arg(&self.dir).status();
    }
}
