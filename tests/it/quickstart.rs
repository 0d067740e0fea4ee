//! The quick start: its config gives a working client login, console and metrics endpoint; its
//! script says how to reach each, checks both ports pgsplit takes before building anything, and
//! installs only what it needs.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::harness::{self, cluster};

/// `scripts/quickstart ARGS` with the given environment; what it printed, and whether it succeeded.
fn quickstart(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(harness::repo_root().join("scripts/quickstart"));
    command.args(args);
    for var in ["PGSPLIT_QUICKSTART_DIR", "PGSPLIT_QUICKSTART_LISTEN", "PGSPLIT_QUICKSTART_METRICS"] {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_banner_names_every_way_in_and_the_cluster_directory() {
    let dir = std::env::temp_dir().join(harness::unique("pgsplit-qs-info"));
    let dir = dir.display().to_string();
    let env = [
        ("PGSPLIT_QUICKSTART_DIR", dir.clone()),
        ("PGSPLIT_QUICKSTART_LISTEN", "16432".to_string()),
        ("PGSPLIT_QUICKSTART_METRICS", "127.0.0.1:19930".to_string()),
    ];
    let (ok, text) = quickstart(&["info"], &env);
    assert!(ok, "{text}");
    for line in [
        format!("The cluster's data is in {dir}."),
        "psql \"host=127.0.0.1 port=16432 user=app dbname=app password=app\"".to_string(),
        "psql \"host=127.0.0.1 port=16432 user=admin dbname=pgsplit password=admin\" -c 'SHOW POOLS'".to_string(),
        "curl http://127.0.0.1:19930/metrics".to_string(),
        format!("pgsplit explain --config {dir}/quickstart.toml"),
        format!("'PGSPLIT_QUICKSTART_DIR={dir} scripts/quickstart stop'"),
    ] {
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    let (ok, text) = quickstart(&["info"], &[]);
    assert!(ok && text.contains("data is in .cache/quickstart.") && text.contains("port=6432"), "{text}");
    assert!(text.contains("--config config/quickstart.toml") && text.contains("'scripts/quickstart stop'"), "{text}");
}

#[test]
fn a_taken_listen_or_metrics_port_stops_the_quickstart_before_it_builds() {
    let base = harness::free_port_range();
    let dir = std::env::temp_dir().join(harness::unique("pgsplit-qs-ports"));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let free = format!("127.0.0.1:{}", harness::free_port());
    let env = |listen: &str, metrics: &str| {
        [
            ("PGSPLIT_QUICKSTART_DIR", dir.display().to_string()),
            ("PGSPLIT_QUICKSTART_PORT", base.to_string()),
            ("PGSPLIT_QUICKSTART_LISTEN", listen.to_string()),
            ("PGSPLIT_QUICKSTART_METRICS", metrics.to_string()),
        ]
    };
    let (ok, text) = quickstart(&[], &env(&taken, &free));
    assert!(!ok && text.contains(&format!("{taken} (where pgsplit listens) is already in use")), "{text}");
    assert!(text.contains("PGSPLIT_QUICKSTART_LISTEN=") && !text.contains("cargo build"), "{text}");
    let (ok, text) = quickstart(&[], &env(&free, &taken));
    assert!(!ok && text.contains(&format!("{taken} (where pgsplit serves /metrics) is already in use")), "{text}");
    assert!(text.contains("PGSPLIT_QUICKSTART_METRICS=") && !text.contains("cargo build"), "{text}");
    assert!(!dir.exists(), "nothing was started");
}

#[test]
fn the_quickstart_installs_no_driver_runtimes_and_the_tests_do() {
    let list = |args: &[&str]| {
        let out = Command::new(harness::repo_root().join("scripts/install-deps")).arg("--list").args(args).output();
        let out = out.unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect::<Vec<_>>()
    };
    let quick = list(&[]);
    assert!(quick.contains(&"postgresql".to_string()) && quick.contains(&"postgresql-client".to_string()), "{quick:?}");
    let tests = list(&["--tests"]);
    for driver in ["nodejs", "npm", "default-jdk-headless", "libpostgresql-jdbc-java", "python3-venv"] {
        assert!(!quick.iter().any(|p| p == driver), "the quick start would install {driver}: {quick:?}");
        assert!(tests.iter().any(|p| p == driver), "the tests need {driver}: {tests:?}");
    }
    let script = std::fs::read_to_string(harness::repo_root().join("scripts/quickstart")).unwrap();
    assert!(script.contains("\nscripts/install-deps\n"), "the quick start runs install-deps without flags");
    let ci = std::fs::read_to_string(harness::repo_root().join(".ci/run")).unwrap();
    let test = std::fs::read_to_string(harness::repo_root().join("scripts/test")).unwrap();
    assert!(ci.contains("install-deps --tests") && test.contains("\nscripts/install-deps --tests\n"));
}

/// `config/quickstart.toml` with the nodes moved to the test cluster and pgsplit to free ports.
fn shipped_config_on_the_test_cluster(listen: u16, metrics: u16) -> String {
    let text = std::fs::read_to_string(harness::repo_root().join("config/quickstart.toml")).unwrap();
    let c = cluster();
    let moved = text
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", c.primary_port))
        .replace("127.0.0.1:5433", &format!("127.0.0.1:{}", c.replica_ports[0]))
        .replace("127.0.0.1:5434", &format!("127.0.0.1:{}", c.replica_ports[1]))
        .replace("127.0.0.1:6432", &format!("127.0.0.1:{listen}"))
        .replace("127.0.0.1:9930", &format!("127.0.0.1:{metrics}"));
    assert_ne!(moved, text);
    moved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_gives_a_login_a_console_and_metrics() {
    let (listen, metrics) = (harness::free_port(), harness::free_port());
    let path = std::env::temp_dir().join(harness::unique("pgsplit-qs-config") + ".toml");
    std::fs::write(&path, shipped_config_on_the_test_cluster(listen, metrics)).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgsplit"))
        .arg(&path)
        .env("APP_PASSWORD", "app")
        .env("ADMIN_PASSWORD", "admin")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let conn = |user: &str, password: &str, db: &str| {
        format!("host=127.0.0.1 port={listen} user={user} password={password} dbname={db}")
    };
    let mut app = None;
    for _ in 0..200 {
        if let Ok(client) = harness::connect(&conn("app", "app", "app")).await {
            app = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let app = app.expect("app logs in through the quick start config");
    app.batch_execute("select 1").await.unwrap();
    let console = harness::connect(&conn("admin", "admin", "pgsplit")).await.expect("the console opens");
    let pools = console.simple_query("SHOW POOLS").await.expect("SHOW POOLS");
    assert!(pools.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))), "a pool row");
    let (status, body) = harness::http_get(format!("127.0.0.1:{metrics}").parse().unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("pgsplit_"), "{body}");
    drop(child);
    let _ = std::fs::remove_file(path);
}
