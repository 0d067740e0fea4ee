//! The real binary as a person meets it: what it says for a missing config file, a taken
//! address, a misspelt value and a failed RELOAD (never a backtrace), `pgsplit FILE`,
//! `--log-level`, plain log lines into a pipe, and the last line it logs.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness;

/// A temporary directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(harness::unique(&format!("pgsplit-cli-{name}")));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment for what is under test; backtraces asked for, so a test
/// sees one if the binary would print it.
fn pgsplit() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgsplit"));
    command.env_remove("PGSPLIT_CONFIG").env_remove("RUST_LOG").env("RUST_BACKTRACE", "1");
    command
}

/// A command that must fail: its stderr, checked to be one clean message.
fn failure(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("pgsplit: "), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Error {"), "no Rust internals: {stderr}");
    stderr
}

/// A config for the daemon with no reachable server (none is needed to start and stop), an
/// admin console for `admin` (trust), and the given listen section.
fn daemon_config(listen: &str) -> String {
    format!(
        "admin_users = [\"admin\"]\n[listen]\n{listen}\n[log]\nlevel = \"info\"\n\
         [[users]]\nname = \"admin\"\nauth = \"trust\"\n\
         [databases.app]\nprimary = \"127.0.0.1:9\"\n"
    )
}

/// Starts the daemon with `command`, waits until it takes connections on `port`, lets `during`
/// run, then stops it with SIGTERM; returns what it wrote.
async fn run_daemon<F: std::future::Future<Output = ()>>(command: &mut Command, port: u16, during: F) -> Output {
    let child = start_daemon(command, port).await;
    during.await;
    stop_daemon(child).await
}

/// Starts the daemon with `command` and waits until it takes connections on `port`.
async fn start_daemon(command: &mut Command, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::from(std::mem::replace(command, pgsplit()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Polled closely, so that a test sees the daemon as soon as a client could.
    let mut up = false;
    for _ in 0..2500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(up, "pgsplit takes connections on {port}");
    child
}

/// Sends `signal` to a daemon this test started.
fn signal(child: &tokio::process::Child, signal: i32) {
    // Safety: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(child.id().unwrap() as i32, signal) }, 0);
}

/// Stops the daemon with SIGTERM and checks that it exited cleanly; returns what it wrote.
async fn stop_daemon(child: tokio::process::Child) -> Output {
    signal(&child, libc::SIGTERM);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("exits").unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

#[test]
fn a_missing_config_file_says_where_pgsplit_looked_and_where_to_start() {
    let dir = TempDir::new("missing");
    let stderr = failure(pgsplit().current_dir(&dir.0));
    let looked = dir.0.join("pgsplit.toml");
    assert!(stderr.contains(&format!("no config file at {}", looked.display())), "{stderr}");
    assert!(stderr.contains("the default") && stderr.contains("config/pgsplit.example.toml"), "{stderr}");
    let stderr = failure(pgsplit().current_dir(&dir.0).arg("mine.toml"));
    assert!(stderr.contains(&format!("no config file at {}", dir.0.join("mine.toml").display())), "{stderr}");
    assert!(stderr.contains("config/pgsplit.example.toml") && !stderr.contains("the default"), "{stderr}");
}

#[test]
fn a_misspelt_value_gets_file_line_and_the_allowed_values() {
    let dir = TempDir::new("value");
    let path = dir.write("bad.toml", &format!("{}[pool]\nsize = 2\nmode = \"transacton\"\n", daemon_config("")));
    let line = std::fs::read_to_string(&path).unwrap().lines().position(|l| l.starts_with("mode")).unwrap() + 1;
    for args in [vec!["check-config", "--config"], vec![]] {
        let stderr = failure(pgsplit().args(&args).arg(&path));
        let at = format!("pgsplit: {}: invalid value at line {line}, column 8", path.display());
        assert!(stderr.starts_with(&at), "{stderr}");
        assert!(stderr.contains("mode = \"transacton\""), "the line is quoted: {stderr}");
        assert!(stderr.contains(r#"pool.mode = "transacton": use "transaction" or "session""#), "{stderr}");
    }
}

#[test]
fn a_taken_address_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap();
    let dir = TempDir::new("taken");
    let free = harness::free_port();
    let metrics =
        dir.write("m.toml", &daemon_config(&format!("addr = \"127.0.0.1:{free}\"\nmetrics_addr = \"{taken}\"")));
    let stderr = failure(pgsplit().arg(&metrics));
    assert!(stderr.contains(&format!("cannot listen on {taken} (listen.metrics_addr)")), "{stderr}");
    assert!(stderr.contains("another process holds it") && !stderr.contains(&free.to_string()), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "the cause is said once: {stderr}");
    let clients = dir.write("c.toml", &daemon_config(&format!("addr = \"{taken}\"")));
    let stderr = failure(pgsplit().arg("--config").arg(&clients));
    assert!(stderr.contains(&format!("cannot listen on {taken} (listen.addr)")), "{stderr}");
}

#[test]
fn explain_needs_no_secrets_and_speaks_plainly() {
    let explain = |sql: &str| {
        let out = pgsplit()
            .args(["explain", "--config", "config/quickstart.toml", sql])
            .current_dir(harness::repo_root())
            .env_remove("APP_PASSWORD")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        for debug in ["None", "Some(", "Hints {", "[]", "Read (", "Unknown"] {
            assert!(!text.contains(debug), "{debug:?} in {text}");
        }
        text
    };
    let read = explain("select * from accounts where id = 1");
    assert!(read.contains("intent:     read (kind select)\n") && read.contains("tables:     accounts\n"), "{read}");
    assert!(read.contains("hints:      none\n") && read.contains("decision:   replica"), "{read}");
    let hinted = explain("/* pgsplit: route=primary min_lsn=0/16B3748 */ select 1");
    assert!(hinted.contains("hints:      route=primary min_lsn=0/16B3748\n"), "{hinted}");
    let garbled = explain("selec 1 frm nowhere");
    assert!(garbled.contains("could not parse") && garbled.contains("decision:   primary 127.0.0.1:5432"), "{garbled}");
    assert!(!garbled.contains("reason: write"), "{garbled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_file_runs_the_daemon_with_plain_logs_and_a_last_line() {
    let dir = TempDir::new("run");
    let port = harness::free_port();
    let path = dir.write("p.toml", &daemon_config(&format!("addr = \"127.0.0.1:{port}\"")));
    let out = run_daemon(pgsplit().arg(&path), port, async {}).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains('\u{1b}'), "no colours into a pipe: {stdout:?}");
    assert!(stdout.contains(&format!("pgsplit listening addr=127.0.0.1:{port}")), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains(" INFO ") && last.ends_with("pgsplit stopped"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_overrides_the_config_and_rust_log() {
    let dir = TempDir::new("level");
    let port = harness::free_port();
    let path = dir.write("p.toml", &daemon_config(&format!("addr = \"127.0.0.1:{port}\"")));
    let out =
        run_daemon(pgsplit().args(["--log-level", "error"]).arg(&path).env("RUST_LOG", "info"), port, async {}).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(" INFO ") && !stdout.contains("listening"), "{stdout}");
    let out = run_daemon(pgsplit().args(["--log-level", "debug"]).arg(&path), port, async {}).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(" DEBUG "), "{stdout}");
}

/// Signals sent as soon as pgsplit takes connections find its handlers, not the default action
/// (which ends the process): a SIGHUP reloads, a SIGTERM stops it cleanly. Both handlers are in
/// place before the listener binds, whatever the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_right_after_start_are_handled() {
    let dir = TempDir::new("signals");
    for workers in ["1", "2"] {
        let port = harness::free_port();
        let config =
            format!("{}[runtime]\nworkers = {workers}\n", daemon_config(&format!("addr = \"127.0.0.1:{port}\"")));
        let path = dir.write("p.toml", &config);
        let child = start_daemon(pgsplit().arg(&path), port).await;
        signal(&child, libc::SIGHUP);
        stop_daemon(child).await;
        let child = start_daemon(pgsplit().arg(&path), port).await;
        stop_daemon(child).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_is_logged_as_well_as_answered() {
    let dir = TempDir::new("reload");
    let port = harness::free_port();
    let path = dir.write("p.toml", &daemon_config(&format!("addr = \"127.0.0.1:{port}\"")));
    let broken = format!("{}[pool]\nmode = \"transacton\"\n", daemon_config(&format!("addr = \"127.0.0.1:{port}\"")));
    let out = run_daemon(pgsplit().arg(&path), port, async {
        let console = harness::connect(&format!("host=127.0.0.1 port={port} user=admin dbname=pgsplit"))
            .await
            .expect("the console opens");
        std::fs::write(&path, &broken).unwrap();
        let e = console.simple_query("RELOAD").await.unwrap_err();
        assert_eq!(harness::sqlstate(&e).as_deref(), Some("F0000"), "{e}");
    })
    .await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().find(|l| l.contains("RELOAD from the admin console failed"));
    let line = line.unwrap_or_else(|| panic!("no reload error in the log: {stdout}"));
    assert!(line.contains(" ERROR ") && line.contains("config not reloaded"), "{stdout}");
    assert!(stdout.contains("transacton"), "the log says what is wrong: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_hold_values_not_rust_debug() {
    let _healthy = harness::REPLICAS.read().await;
    let port = harness::free_port();
    let dir = TempDir::new("debug");
    let text = harness::split_config("size = 2", "shutdown_timeout = \"5s\"")
        .replace("addr = \"127.0.0.1:0\"", &format!("addr = \"127.0.0.1:{port}\""));
    let path = dir.write("p.toml", &format!("{text}\n[log]\nlevel = \"info\"\n"));
    let out = run_daemon(pgsplit().arg(&path), port, async {
        crate::routing::wait_for_replicas(&format!("host=127.0.0.1 port={port} user=app password=app dbname=app"))
            .await;
    })
    .await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let login = stdout.lines().find(|l| l.contains("client logged in")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(login.contains("pool_mode=\"transaction\""), "{login}");
    let eligible = stdout.lines().find(|l| l.contains("replica eligibility changed") && l.contains("eligible=true"));
    let eligible = eligible.unwrap_or_else(|| panic!("no replica became eligible: {stdout}"));
    assert!(eligible.contains(" lag_bytes=") && eligible.contains(" lag_seconds="), "{eligible}");
    for debug in ["Some(", "None", "Transaction", "\"]"] {
        assert!(!stdout.contains(debug), "{debug:?} in the log:\n{stdout}");
    }
}

#[test]
fn gen_docs_writes_a_man_page_and_completions_from_the_cli() {
    let dir = TempDir::new("docs");
    let out = Command::new(harness::repo_root().join("scripts/gen-docs")).arg(&dir.0).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |path: &str| std::fs::read_to_string(dir.0.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let man = read("man/pgsplit.1");
    assert!(man.contains("\n.TH pgsplit 1 "), "a roff page of section 1: {man}");
    for flag in ["\\-\\-config", "\\-\\-log\\-level", "pgsplit\\-explain(1)", "config/pgsplit.example.toml"] {
        assert!(man.contains(flag), "{flag} in {man}");
    }
    assert!(read("man/pgsplit-explain.1").contains("\\-\\-database"));
    let bash = read("completions/pgsplit.bash");
    assert!(bash.contains("check-config") && bash.contains("--log-level"), "{bash}");
    for shell in ["_pgsplit", "pgsplit.fish", "pgsplit.elv", "_pgsplit.ps1"] {
        assert!(read(&format!("completions/{shell}")).contains("check-config"), "{shell}");
    }
}

#[test]
fn the_license_is_the_one_cargo_toml_names() {
    let root = harness::repo_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"Apache-2.0\""));
    let license = std::fs::read_to_string(root.join("LICENSE")).expect("a LICENSE file");
    assert!(license.trim_start().starts_with("Apache License\n"), "{license}");
    assert!(license.contains("Version 2.0, January 2004") && license.contains("END OF TERMS AND CONDITIONS"));
}
