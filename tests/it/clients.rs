//! Real clients through pgsplit: psql (meta-commands, multi-statement strings, a script) and
//! pgbench in simple and extended mode.

use std::process::{Command, Output};

use tokio::sync::OnceCell;

use crate::harness::{self, Proxy};

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("command runs");
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn psql(proxy: &Proxy, args: &[&str]) -> Command {
    let mut cmd = Command::new("psql");
    cmd.arg(proxy.conn_str("app", "app", "app")).args(["-X", "-v", "ON_ERROR_STOP=1"]).args(args);
    cmd
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_meta_commands_multi_statement_and_script() {
    let proxy = Proxy::start().await;
    let table = harness::unique("psql");
    let cmd = psql(&proxy, &["-c", &format!("create table {table} (id int primary key, note text)")]);
    blocking(move || run(cmd)).await;

    let cmd = psql(&proxy, &["-c", &format!("\\d {table}")]);
    let out = blocking(move || run(cmd)).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("note") && text.contains("PRIMARY KEY"), "{text}");

    let cmd = psql(&proxy, &["-At", "-c", "select 1; select 'two'"]);
    let out = blocking(move || run(cmd)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1\ntwo");

    let script = std::env::temp_dir().join(format!("{table}.sql"));
    std::fs::write(
        &script,
        format!(
            "begin;\ninsert into {table} values (1, 'a'), (2, 'b');\n\\copy {table} from stdin\n3\tc\n\\.\ncommit;\nselect count(*) from {table};\n\\copy (select * from {table} order by id) to stdout\ndrop table {table};\n"
        ),
    )
    .unwrap();
    let cmd = psql(&proxy, &["-Atq", "-f", script.to_str().unwrap()]);
    let out = blocking(move || run(cmd)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n1\ta\n2\tb\n3\tc\n");
    let _ = std::fs::remove_file(script);
}

static PGBENCH_INIT: OnceCell<()> = OnceCell::const_new();

async fn init_pgbench() {
    PGBENCH_INIT
        .get_or_init(|| async {
            let port = harness::cluster().primary_port;
            let mut cmd = Command::new("pgbench");
            cmd.args(["-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "app", "app"])
                .env("PGPASSWORD", "app");
            blocking(move || run(cmd)).await;
        })
        .await;
}

async fn pgbench(proxy: &Proxy, mode: &str, jobs: &str) {
    init_pgbench().await;
    let mut cmd = Command::new("pgbench");
    let port = proxy.addr.port().to_string();
    cmd.args(["-n", "-M", mode, "-T", "3", "-c", "8", "-j", jobs, "-h", "127.0.0.1", "-p", &port, "-U", "app", "app"])
        .env("PGPASSWORD", "app");
    let out = blocking(move || run(cmd)).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let processed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no transaction count in:\n{text}"));
    assert!(processed > 0, "{text}");
    let failed = text.lines().find_map(|l| l.strip_prefix("number of failed transactions: "));
    if let Some(failed) = failed {
        assert!(failed.starts_with("0 "), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_simple_and_extended_without_failures() {
    let proxy = Proxy::with_config(&harness::test_config("size = 4", "")).await;
    pgbench(&proxy, "simple", "2").await;
    pgbench(&proxy, "extended", "2").await;
}

/// Named prepared statements with 8 clients on 2 server connections: every transaction may land
/// on a connection that has not seen the client's statements yet. One thread per client, because
/// pgbench prepares synchronously: a thread blocked preparing for one client would stall its other
/// clients mid-transaction, holding the connections it waits for (PgBouncer deadlocks the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared_in_transaction_pooling() {
    let proxy = Proxy::with_config(&harness::test_config("size = 2", "")).await;
    pgbench(&proxy, "prepared", "8").await;
}
