//! The shipped config files parse, and the CLI validates and prints them.

use std::process::Command;

use pgsplit::config;

fn env(name: &str) -> Option<String> {
    ["APP_PASSWORD", "ADMIN_PASSWORD"].contains(&name).then(|| "app".to_string())
}

#[test]
fn shipped_configs_parse() {
    for file in ["config/pgsplit.example.toml", "config/quickstart.toml", "config/compose.toml"] {
        let path = crate::harness::repo_root().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let settings = config::from_str_with_env(&text, file, &env).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(settings.databases.contains_key("app"), "{file}");
        assert!(settings.users.contains_key("app"), "{file}");
    }
}

#[test]
fn check_config_prints_effective_config_and_hides_secrets() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgsplit"))
        .args(["check-config", "--config", "config/quickstart.toml"])
        .current_dir(crate::harness::repo_root())
        .env("APP_PASSWORD", "supersecret")
        .env("ADMIN_PASSWORD", "supersecret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("checkout_timeout = \"5s\""), "{text}");
    assert!(!text.contains("supersecret"), "{text}");
}

#[test]
fn check_config_rejects_unknown_keys_with_line() {
    let path = std::env::temp_dir().join(format!("pgsplit-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[pool]\nsize = 3\nbogus_key = 1\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_pgsplit")).args(["check-config", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus_key") && err.contains("line 3"), "{err}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgsplit")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pgsplit "));
}

#[test]
fn explain_prints_the_decision_and_why() {
    let run = |sql: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgsplit"))
            .args(["explain", "--config", "config/pgsplit.example.toml", sql])
            .current_dir(crate::harness::repo_root())
            .env("APP_PASSWORD", "x")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let read = run("select * from accounts where id = 1");
    assert!(read.contains("decision:   replica") && read.contains("reason: read"), "{read}");
    let ledger = run("select * from ledger");
    assert!(ledger.contains("ledger is always fresh") && ledger.contains("reason: rule"), "{ledger}");
    let write = run("select nextval('seq')");
    assert!(write.contains("decision:   primary") && write.contains("reason: write"), "{write}");
    let hinted = run("/* pgsplit: route=primary */ select 1");
    assert!(hinted.contains("reason: hint"), "{hinted}");
}
