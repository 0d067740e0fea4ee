//! The admin console through psql and tokio-postgres: every SHOW, PAUSE/RESUME, SHUTDOWN, bad
//! commands and who may connect; and live reload (RELOAD and SIGHUP) under load.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, cluster, unique, Proxy, REPLICAS};
use crate::routing::{port, wait_for_replicas};

/// The split config with `postgres` (trust) as the console's admin.
fn admin_config(pool: &str, extra: &str) -> String {
    format!("admin_users = [\"postgres\"]\n{}\n{extra}", harness::split_config(pool, ""))
}

async fn console(proxy: &Proxy) -> Client {
    proxy.client_as("postgres", "", "pgsplit").await
}

/// Rows of a console command as maps from column name to value.
async fn rows(console: &Client, command: &str) -> Vec<std::collections::BTreeMap<String, Option<String>>> {
    let messages = console.simple_query(command).await.unwrap_or_else(|e| panic!("{command}: {e}"));
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), row.get(i).map(str::to_string)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn value(row: &std::collections::BTreeMap<String, Option<String>>, column: &str) -> String {
    row.get(column).unwrap_or_else(|| panic!("no column {column} in {row:?}")).clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_command_through_psql() {
    let _healthy = REPLICAS.read().await;
    // The monitor needs pg_monitor rights to see the standbys' state and LSNs.
    let proxy = Proxy::with_config(&admin_config("size = 4", "[routing]\nmonitor_user = \"postgres\"")).await;
    let app = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    app.batch_execute("select 1").await.unwrap();
    let port = proxy.addr.port().to_string();
    for command in [
        "SHOW POOLS",
        "SHOW SERVERS",
        "SHOW CLIENTS",
        "SHOW STATS",
        "SHOW REPLICAS",
        "SHOW STANDBYS",
        "SHOW RULES",
        "SHOW CONFIG",
        "SHOW DATABASES",
        "SHOW LISTS",
        "SHOW VERSION",
        "SHOW HELP",
        "RELOAD",
        "PAUSE",
        "RESUME",
        "PAUSE app",
        "RESUME app",
    ] {
        let out = tokio::task::spawn_blocking({
            let port = port.clone();
            move || {
                Command::new("psql")
                    .args(["-X", "-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "pgsplit", "-c", command])
                    .output()
                    .expect("psql runs")
            }
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // RELOAD fails cleanly here: this pgsplit was started from text, not a file.
        if command == "RELOAD" {
            assert!(stderr.contains("not started from a config file"), "{command}: {stderr}");
            continue;
        }
        assert!(out.status.success(), "{command}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if command.starts_with("SHOW") {
            assert!(stdout.contains("row"), "{command} printed a table: {stdout}");
        }
    }
    let admin = console(&proxy).await;
    let replicas = rows(&admin, "SHOW REPLICAS").await;
    assert_eq!(replicas.iter().filter(|r| value(r, "database") == "app").count(), 3, "{replicas:?}");
    for port in cluster().replica_ports {
        let node = format!("127.0.0.1:{port}");
        let row = replicas.iter().find(|r| value(r, "node") == node && value(r, "database") == "app").expect("row");
        assert_eq!(value(row, "role"), "replica");
        assert!(["healthy", "lagging"].contains(&value(row, "state").as_str()), "{row:?}");
        assert!(!value(row, "replay_lsn").is_empty() && !value(row, "primary_lsn").is_empty());
    }
    let standbys = rows(&admin, "SHOW STANDBYS").await;
    let streaming = standbys.iter().filter(|r| value(r, "database") == "app" && value(r, "state") == "streaming");
    assert_eq!(streaming.count(), 2, "the primary sees both standbys streaming: {standbys:?}");
    let clients = rows(&admin, "SHOW CLIENTS").await;
    assert!(clients.iter().any(|r| value(r, "user") == "app" && value(r, "database") == "app"), "{clients:?}");
    let pools = rows(&admin, "SHOW POOLS").await;
    let primary = format!("127.0.0.1:{}", cluster().primary_port);
    let pool = pools.iter().find(|r| value(r, "node") == primary && value(r, "user") == "app").expect("primary pool");
    assert_eq!(value(pool, "pool_size"), "4");
    assert_eq!(value(pool, "pool_mode"), "transaction");
    let stats = rows(&admin, "SHOW STATS").await;
    let total: u64 = stats.iter().map(|r| value(r, "total_xact_count").parse::<u64>().unwrap()).sum();
    assert!(total >= 2, "{stats:?}");
    assert!(!rows(&admin, "SHOW SERVERS").await.is_empty());
    let config = rows(&admin, "SHOW CONFIG").await;
    assert!(config.iter().any(|r| value(r, "key") == "pool.size" && value(r, "value") == "4"), "{config:?}");
    let password = config.iter().find(|r| value(r, "key").ends_with("].password") && value(r, "value") == "app");
    assert!(password.is_none(), "passwords are never shown: {password:?}");
    let e = admin.simple_query("SHOW ME THE MONEY").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("42601"));
    assert!(e.as_db_error().unwrap().hint().unwrap_or("").contains("SHOW POOLS"), "{e}");
}

/// SHOW LISTS as a map from list to items.
async fn lists(console: &Client) -> std::collections::BTreeMap<String, u64> {
    let rows = rows(console, "SHOW LISTS").await;
    rows.iter().map(|r| (value(r, "list"), value(r, "items").parse().unwrap())).collect()
}

/// SHOW LISTS once its counts satisfy `done`, asked every 10 ms for up to 2 s; `None` if never.
async fn lists_once(
    console: &Client,
    done: impl Fn(&std::collections::BTreeMap<String, u64>) -> bool,
) -> Option<std::collections::BTreeMap<String, u64>> {
    for _ in 0..200 {
        let counts = lists(console).await;
        if done(&counts) {
            return Some(counts);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_clients_links_a_client_to_the_node_it_holds() {
    let proxy = Proxy::with_config(&admin_config("size = 2", "")).await;
    let admin = console(&proxy).await;
    let (busy, idle) = (proxy.client().await, proxy.client().await);
    idle.batch_execute("select 1").await.unwrap();
    busy.batch_execute("begin; select 1").await.unwrap();
    let primary = format!("127.0.0.1:{}", cluster().primary_port);
    let links = || async {
        let clients = rows(&admin, "SHOW CLIENTS").await;
        let mut links: Vec<String> =
            clients.iter().filter(|r| value(r, "user") == "app").map(|r| value(r, "link")).collect();
        links.sort();
        links
    };
    assert_eq!(links().await, ["".to_string(), primary.clone()], "the client in a transaction holds the primary");
    busy.batch_execute("commit").await.unwrap();
    assert_eq!(links().await, ["", ""], "a client between transactions holds nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_version_and_show_lists_as_pgbouncer_has_them() {
    let proxy = Proxy::with_config(&admin_config("size = 2", "")).await;
    let admin = console(&proxy).await;
    let version = rows(&admin, "SHOW VERSION").await;
    assert_eq!(version.len(), 1, "{version:?}");
    assert_eq!(value(&version[0], "version"), format!("pgsplit {}", env!("CARGO_PKG_VERSION")));

    let app = proxy.client().await;
    app.batch_execute("select 1").await.unwrap();
    let names: Vec<String> = rows(&admin, "SHOW LISTS").await.iter().map(|r| value(r, "list")).collect();
    let pgbouncer = [
        "databases",
        "users",
        "pools",
        "free_clients",
        "used_clients",
        "login_clients",
        "free_servers",
        "used_servers",
        "dns_names",
        "dns_zones",
        "dns_queries",
        "dns_pending",
    ];
    assert_eq!(names, pgbouncer, "PgBouncer's rows, in its order");
    let counts = lists(&admin).await;
    assert_eq!((counts["databases"], counts["users"]), (3, 4), "{counts:?}");
    // The app client and this console, both logged in.
    assert_eq!((counts["used_clients"], counts["login_clients"]), (2, 0), "{counts:?}");
    assert!(counts["pools"] >= 1 && counts["used_servers"] >= 1, "{counts:?}");
    assert_eq!(counts["free_clients"] + counts["free_servers"] + counts["dns_names"], 0, "{counts:?}");

    // A connection that never sends its startup packet is logging in until it goes.
    let silent = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let seen = lists_once(&admin, |c| c["login_clients"] == 1).await;
    let seen = seen.expect("the silent connection is counted as logging in");
    assert_eq!(seen["used_clients"], 3, "{seen:?}");
    drop(silent);
    drop(app);
    let left = lists_once(&admin, |c| c["used_clients"] == 1).await;
    assert_eq!(left.expect("the others are gone")["login_clients"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_users_open_the_console() {
    let proxy = Proxy::with_config(&admin_config("size = 2", "")).await;
    let e = proxy.try_client("app", "app", "pgsplit").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("28000"));
    let e = proxy.try_client("app", "wrong", "pgsplit").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("28P01"));
    let e = proxy.try_client("nobody", "x", "pgsplit").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("28P01"));
    assert!(rows(&console(&proxy).await, "show help").await.len() > 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_new_transactions_until_resume_and_shutdown_stops() {
    let proxy = Proxy::with_config(&admin_config("size = 2", "")).await;
    let admin = console(&proxy).await;
    let app = proxy.client().await;
    app.batch_execute("select 1").await.unwrap();
    admin.simple_query("PAUSE app").await.unwrap();
    let held = tokio::spawn(async move { app.query_one("select 42", &[]).await.map(|r| r.get::<_, i32>(0)) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a new transaction waits while its database is paused");
    let paused = rows(&admin, "SHOW DATABASES").await;
    assert!(paused.iter().any(|r| value(r, "name") == "app" && value(r, "paused") == "true"), "{paused:?}");
    admin.simple_query("RESUME app").await.unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), held).await.unwrap().unwrap().unwrap(), 42);
    let _ = admin.simple_query("SHUTDOWN").await;
    let mut proxy = proxy;
    let task = proxy.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("pgsplit stops after SHUTDOWN").unwrap();
}

/// Writes the reload test's config: `size` connections per pool, and the table rule or not.
fn write_reload_config(path: &std::path::Path, size: usize, table: &str, rule: bool) {
    let rule = match rule {
        true => format!(
            "[[routing.rules]]\nname = \"{table} on the primary\"\ntables = [\"{table}\"]\nroute = \"primary\"\n"
        ),
        false => String::new(),
    };
    let text = admin_config(&format!("size = {size}\ncheckout_timeout = \"10s\""), "");
    // [routing] tables must come before [[routing.rules]] would reopen it; append at the end.
    std::fs::write(path, format!("{text}\n[routing]\nread_your_writes = \"off\"\n{rule}")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_rules_and_pool_sizes_under_load_without_errors() {
    let _healthy = REPLICAS.read().await;
    let table = unique("reload");
    let path = std::env::temp_dir().join(format!("{table}.toml"));
    write_reload_config(&path, 4, &table, false);
    let proxy = Proxy::from_file(&path).await;
    let setup = proxy.client().await;
    setup.batch_execute(&format!("create table {table} (id int); insert into {table} values (0)")).await.unwrap();
    // With read_your_writes off, every read of the table (the setup session's own too) may go to
    // a replica that has not replayed the CREATE TABLE yet: wait until both have.
    harness::wait_replayed_on_replicas(&harness::table_exists(&table)).await;
    wait_for_replicas(&proxy.app_conn()).await;
    let on_replica = |p: u16| cluster().replica_ports.contains(&p);
    let sql = format!("select inet_server_port() from {table} limit 1");
    assert!(on_replica(port(&setup, &format!("select inet_server_port() from {table}")).await));
    // Load: 6 clients, reads and writes, counting every error.
    let errors = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6 {
        let client = proxy.client().await;
        let (errors, done, table) = (errors.clone(), done.clone(), table.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let result = match i % 3 {
                    0 => client
                        .execute(&format!("insert into {table} values ($1)"), &[&(w * 100_000 + i)])
                        .await
                        .map(|_| ()),
                    _ => client.query(&format!("select count(*) from {table}"), &[]).await.map(|_| ()),
                };
                if let Err(e) = result {
                    eprintln!("worker {w}: {e}");
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            i
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let admin = console(&proxy).await;
    write_reload_config(&path, 2, &table, true);
    admin.simple_query("RELOAD").await.expect("a valid config reloads");
    // Every session follows at its next transaction: the table now reads from the primary.
    assert_eq!(port(&setup, &sql).await, cluster().primary_port, "the new rule routes to the primary");
    let pools = rows(&admin, "SHOW POOLS").await;
    assert!(pools.iter().filter(|r| value(r, "user") == "app").all(|r| value(r, "pool_size") == "2"), "{pools:?}");
    // An invalid file is refused whole, with the key and line, and the running config stays.
    std::fs::write(&path, "[pool]\nsize = \"many\"\n").unwrap();
    let e = admin.simple_query("RELOAD").await.unwrap_err();
    let message = e.as_db_error().unwrap().message().to_string();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("F0000"));
    assert!(message.contains("size") && message.contains("line"), "{message}");
    assert_eq!(port(&setup, &sql).await, cluster().primary_port, "the running rule stays");
    // SIGHUP does what RELOAD does: back to the old rule and size 4.
    write_reload_config(&path, 4, &table, false);
    // SAFETY: kill(2) on our own process with a signal pgsplit handles.
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    let started = Instant::now();
    while !on_replica(port(&setup, &sql).await) {
        assert!(started.elapsed() < Duration::from_secs(10), "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut runs = 0;
    for w in workers {
        runs += w.await.unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "client errors during {runs} statements across reloads");
    setup.batch_execute(&format!("drop table {table}")).await.unwrap();
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_replicas_and_changes_passwords() {
    let _healthy = REPLICAS.read().await;
    let c = cluster();
    let name = unique("reload_nodes");
    let path = std::env::temp_dir().join(format!("{name}.toml"));
    let write = |replicas: &[u16], password: &str| {
        let list: Vec<String> = replicas.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let text = format!(
            "admin_users = [\"postgres\"]\n[listen]\naddr = \"127.0.0.1:0\"\n[pool]\nsize = 4\n\
             [[users]]\nname = \"app\"\npassword = \"{password}\"\nserver_password = \"app\"\n\
             [[users]]\nname = \"postgres\"\nauth = \"trust\"\n\
             [databases.app]\nprimary = \"127.0.0.1:{}\"\nreplicas = [{}]\n\
             [routing]\nread_your_writes = \"off\"\nmonitor_user = \"postgres\"\n",
            c.primary_port,
            list.join(", ")
        );
        std::fs::write(&path, text).unwrap();
    };
    write(&[], "app");
    let proxy = Proxy::from_file(&path).await;
    let client = proxy.client().await;
    assert_eq!(port(&client, "select inet_server_port()").await, c.primary_port, "no replicas yet");
    let admin = console(&proxy).await;
    // Add both replicas: reads spread over them once the new monitor finds them fresh.
    write(&c.replica_ports, "app");
    admin.simple_query("RELOAD").await.unwrap();
    wait_for_replicas(&proxy.app_conn()).await;
    // Remove one: it gets no more reads; its pool drains.
    write(&c.replica_ports[..1], "app");
    admin.simple_query("RELOAD").await.unwrap();
    for _ in 0..20 {
        let p = port(&client, "select inet_server_port()").await;
        assert_ne!(p, c.replica_ports[1], "a removed replica served a read");
    }
    let pools = rows(&admin, "SHOW POOLS").await;
    let removed = format!("127.0.0.1:{}", c.replica_ports[1]);
    assert!(!pools.iter().any(|r| value(r, "node") == removed), "the removed replica's pool is gone: {pools:?}");
    // A new password: new logins need it, the connected client carries on.
    write(&c.replica_ports[..1], "new-secret");
    admin.simple_query("RELOAD").await.unwrap();
    let e = proxy.try_client("app", "app", "app").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("28P01"));
    proxy.try_client("app", "new-secret", "app").await.expect("the new password works");
    client.batch_execute("select 1").await.expect("the connected client keeps working");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_console_message_gets_an_error_before_the_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let proxy = Proxy::with_config(&admin_config("size = 2", "")).await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut startup = 196608u32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0postgres\0database\0pgsplit\0\0");
    let mut msg = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(startup);
    s.write_all(&msg).await.unwrap();
    // A Query claiming 1 MiB: more than any console command may be.
    let mut query = vec![b'Q'];
    query.extend_from_slice(&(1u32 << 20).to_be_bytes());
    s.write_all(&query).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await.expect("closed in time");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("SFATAL") && text.contains("C54000"), "{text:?}");
}

/// The README's table of SHOW commands: for each row naming one command, the backticked column
/// names in its description, in order.
fn readme_show_columns() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(harness::repo_root().join("README.md")).unwrap();
    let mut found = Vec::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, command, description, _] = cells.as_slice() else { continue };
        let Some(command) = command.strip_prefix("`SHOW ").and_then(|c| c.strip_suffix('`')) else { continue };
        if command.contains('`') {
            continue;
        }
        let columns = description.split('`').skip(1).step_by(2).map(str::to_string).collect();
        found.push((format!("SHOW {command}"), columns));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_names_every_show_column_the_console_sends() {
    let proxy = Proxy::with_config(&admin_config("size = 2", "")).await;
    let admin = console(&proxy).await;
    let documented = readme_show_columns();
    let commands: Vec<&str> = documented.iter().map(|(c, _)| c.as_str()).collect();
    for expected in ["SHOW POOLS", "SHOW SERVERS", "SHOW CLIENTS", "SHOW STATS", "SHOW REPLICAS", "SHOW STANDBYS"] {
        assert!(commands.contains(&expected), "{expected} in the README's table: {commands:?}");
    }
    for (command, columns) in documented {
        let messages = admin.simple_query(&command).await.unwrap_or_else(|e| panic!("{command}: {e}"));
        let sent: Vec<String> = messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::RowDescription(columns) => {
                    Some(columns.iter().map(|c| c.name().to_string()).collect())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{command} sent no RowDescription"));
        assert_eq!(columns, sent, "README.md's columns of {command} and the console's");
    }
}
