//! Real drivers through pgsplit in transaction pooling with read/write splitting. Each driver
//! suite is a script under tests/drivers/ that prints its own PASS/FAIL lines; its dependencies
//! install on first run into `.cache/` (git-ignored).

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{self, repo_root, Proxy, REPLICAS};

fn run_checked(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The Python venv with psycopg 3, asyncpg and SQLAlchemy, created once.
fn python_venv() -> PathBuf {
    let venv = repo_root().join(".cache/venv");
    let python = venv.join("bin/python");
    let requirements = repo_root().join("tests/drivers/python/requirements.txt");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements file");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run_checked(Command::new(&python).args(["-m", "pip", "install", "-q", "-r"]).arg(&requirements));
        std::fs::write(&stamp, wanted).expect("stamp");
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers() {
    let _healthy = REPLICAS.read().await;
    let python = tokio::task::spawn_blocking(python_venv).await.unwrap();
    let proxy = Proxy::with_config(&harness::split_config("size = 5", "max_clients = 1000")).await;
    let port = proxy.addr.port().to_string();
    let script = repo_root().join("tests/drivers/python/drivers.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).arg("-u").arg(script).env("PGSPLIT_PORT", port).output().expect("python runs")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "python driver suite failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

/// node-postgres installed with npm into `.cache/node`, next to a copy of the scenarios (ES
/// modules resolve their imports from the script's own folder).
fn node_project() -> PathBuf {
    let dir = repo_root().join(".cache/node");
    std::fs::create_dir_all(&dir).expect("cache folder");
    let manifest = std::fs::read_to_string(repo_root().join("tests/drivers/node/package.json")).expect("package.json");
    let stamp = dir.join("package.json.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(manifest.as_str()) {
        std::fs::write(dir.join("package.json"), &manifest).expect("package.json copy");
        run_checked(
            Command::new("npm").args(["install", "--no-audit", "--no-fund", "--no-package-lock"]).current_dir(&dir),
        );
        std::fs::write(&stamp, &manifest).expect("stamp");
    }
    std::fs::copy(repo_root().join("tests/drivers/node/drivers.mjs"), dir.join("drivers.mjs")).expect("script copy");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres() {
    let _healthy = REPLICAS.read().await;
    let dir = tokio::task::spawn_blocking(node_project).await.unwrap();
    let proxy = Proxy::with_config(&harness::split_config("size = 5", "max_clients = 1000")).await;
    let port = proxy.addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node").arg("drivers.mjs").current_dir(dir).env("PGSPLIT_PORT", port).output().expect("node runs")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "node-postgres suite failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

/// pgjdbc from Debian's libpostgresql-jdbc-java, and the scenarios compiled with javac.
fn java_classpath() -> String {
    let jar = "/usr/share/java/postgresql.jar";
    let classes = repo_root().join(".cache/java");
    run_checked(
        Command::new("javac")
            .args(["-cp", jar, "-d"])
            .arg(&classes)
            .arg(repo_root().join("tests/drivers/java/Drivers.java")),
    );
    format!("{}:{jar}", classes.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc() {
    let _healthy = REPLICAS.read().await;
    let classpath = tokio::task::spawn_blocking(java_classpath).await.unwrap();
    let proxy = Proxy::with_config(&harness::split_config("size = 5", "max_clients = 1000")).await;
    for threshold in ["1", "5"] {
        let (port, classpath) = (proxy.addr.port().to_string(), classpath.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new("java").args(["-cp", &classpath, "Drivers", threshold]).env("PGSPLIT_PORT", port).output()
        })
        .await
        .unwrap()
        .expect("java runs");
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{text}");
        assert!(out.status.success(), "pgjdbc suite failed (prepareThreshold={threshold}):\n{text}");
        assert!(text.contains(" passed, 0 failed"), "{text}");
    }
}
