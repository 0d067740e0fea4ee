//! Logs: the real binary with `[log] format = "json"` writes only JSON lines, names the client in
//! each line about it, and never writes a password, a SCRAM message, a query or its parameters.

use std::time::Duration;

use serde_json::Value;

use crate::harness;

const PASSWORD: &str = "Lg-right-pw-7f3a9c";
const WRONG_PASSWORD: &str = "Lg-wrong-pw-91b2e4";
const PARAMETER: &str = "Lg-param-5e1d08";
const LITERAL: &str = "Lg-literal-c4a7f2";

/// The shared test config on `port`, JSON logs at info, and a user whose passwords are distinctive
/// enough to search the output for (it logs into servers as `app`).
fn config(port: u16) -> String {
    let base = harness::test_config("size = 2", "shutdown_timeout = \"5s\"")
        .replace("addr = \"127.0.0.1:0\"", &format!("addr = \"127.0.0.1:{port}\""));
    format!(
        "{base}\n[log]\nlevel = \"info\"\nformat = \"json\"\n\
         [[users]]\nname = \"logtest\"\npassword = \"{PASSWORD}\"\nserver_user = \"app\"\nserver_password = \"app\"\n"
    )
}

/// Runs the binary through a failed login, a good one with a query, and SIGTERM; returns
/// everything it wrote to stdout and stderr.
async fn run_binary_through_logins() -> String {
    let port = harness::free_port();
    let path = std::env::temp_dir().join(format!("pgsplit-logs-{}.toml", std::process::id()));
    std::fs::write(&path, config(port)).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgsplit"))
        .arg("--config")
        .arg(&path)
        // The config's level is what is under test, not the developer's.
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let conn = |password: &str| {
        format!("host=127.0.0.1 port={port} user=logtest password={password} dbname=app application_name=logs_test")
    };
    let mut refused = None;
    for _ in 0..100 {
        match harness::connect(&conn(WRONG_PASSWORD)).await {
            Err(e) if harness::sqlstate(&e).is_some() => {
                refused = Some(e);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(_) => panic!("a wrong password logged in"),
        }
    }
    let refused = refused.expect("the binary accepts connections");
    assert_eq!(harness::sqlstate(&refused).as_deref(), Some("28P01"), "{refused:?}");
    let ghost = conn(PASSWORD).replace("user=logtest", "user=ghost_user");
    let Err(unknown) = harness::connect(&ghost).await else { panic!("an unknown user logged in") };
    assert_eq!(harness::sqlstate(&unknown).as_deref(), Some("28P01"), "{unknown:?}");
    let client = harness::connect(&conn(PASSWORD)).await.expect("the right password logs in");
    let sql = format!("select $1::text || '{LITERAL}'");
    let row = client.query_one(sql.as_str(), &[&PARAMETER]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), format!("{PARAMETER}{LITERAL}"));
    // Logged by the session itself once logged in (it pins the client).
    client.batch_execute("listen logs_channel").await.unwrap();
    drop(client);
    let pid = child.id().unwrap() as i32;
    // Safety: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let output =
        tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await.expect("exits in time").unwrap();
    let _ = std::fs::remove_file(path);
    assert!(output.status.success(), "{:?}", output.status);
    let mut text = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    text.push_str(&String::from_utf8(output.stderr).expect("stderr is UTF-8"));
    text
}

/// The first line with this message.
fn line<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    let found = lines.iter().find(|l| l["message"] == message);
    found.unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_client_and_never_a_secret() {
    let output = run_binary_through_logins().await;
    let lines: Vec<Value> = output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        assert!(l.is_object(), "{l}");
        let timestamp = l["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {l}"));
        assert!(timestamp.ends_with('Z') && timestamp.contains('T'), "not RFC 3339 UTC: {timestamp}");
    }

    let failed = line(&lines, "authentication failed");
    assert_eq!(failed["level"], "INFO", "{failed}");
    assert!(failed["error"].as_str().unwrap_or_default().contains("logtest"), "{failed}");
    let span = &failed["span"];
    assert_eq!(span["name"], "client", "{failed}");
    assert_eq!(span["user"], "logtest", "{failed}");
    assert_eq!(span["database"], "app", "{failed}");
    assert_eq!(span["application_name"], "logs_test", "{failed}");
    assert!(span["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{failed}");

    assert_eq!(failed["reason"], "wrong password", "{failed}");
    let unknown = lines.iter().find(|l| l["span"]["user"] == "ghost_user" && l["message"] == "authentication failed");
    let unknown = unknown.unwrap_or_else(|| panic!("no failed login of ghost_user in {lines:#?}"));
    assert_eq!(unknown["reason"], "role does not exist", "{unknown}");

    // A session's own line names its client as the handshake's lines do.
    let pinned = line(&lines, "client pinned to its server connection until released, DISCARD ALL or disconnect");
    assert_eq!(pinned["span"]["user"], "logtest", "{pinned}");
    assert_eq!(pinned["span"]["application_name"], "logs_test", "{pinned}");
    assert!(pinned["span"]["client"].is_u64(), "{pinned}");
    assert!(pinned["span"]["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{pinned}");

    let login = line(&lines, "client logged in");
    assert_eq!(login["span"]["user"], "logtest", "{login}");
    assert!(login["span"]["client"].is_u64(), "a logged-in client has its id: {login}");
    line(&lines, "SIGTERM received");
    assert_eq!(lines.last().map(|l| &l["message"]), Some(&Value::from("pgsplit stopped")), "the last line");

    for secret in [PASSWORD, WRONG_PASSWORD, PARAMETER, LITERAL, "n,,n=", "c=biws"] {
        assert!(!output.contains(secret), "{secret:?} was logged:\n{output}");
    }
}
