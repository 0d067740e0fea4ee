use super::*;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    let file: ConfigFile =
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: "test".into(), message: e.to_string() })?;
    validate(file, &|name| (name == "APP_PASSWORD").then(|| "s3cret".to_string()))
}

const MINIMAL: &str = r#"
[[users]]
name = "app"
password = "${APP_PASSWORD}"
[databases.app]
primary = "127.0.0.1:5432"
"#;

#[test]
fn defaults_fill_a_minimal_file() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:6432");
    assert_eq!(s.pool.mode, PoolMode::Transaction);
    assert_eq!(s.pool.size, 20);
    assert_eq!(s.pool.checkout_timeout, Duration::from_secs(5));
    assert_eq!(s.limits.max_message_size, 64 << 20);
    let app = &s.users["app"];
    assert_eq!(app.secret, Secret::Plain("s3cret".into()));
    assert_eq!(app.server_password.as_deref(), Some("s3cret"));
    assert_eq!(app.server_user, "app");
    assert_eq!(s.databases["app"].server_dbname, "app");
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = format!("{MINIMAL}\n[pool]\nsise = 3\n");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("sise"), "{err}");
    assert!(err.contains("line 9"), "{err}");
}

#[test]
fn unset_variable_is_named() {
    let err = parse(&MINIMAL.replace("APP_PASSWORD", "NOPE")).unwrap_err().to_string();
    assert!(err.contains("NOPE"), "{err}");
}

#[test]
fn verifier_and_md5_secrets_are_recognised() {
    let verifier = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
    let s = parse(&MINIMAL.replace("${APP_PASSWORD}", verifier)).unwrap();
    assert_eq!(s.users["app"].secret, Secret::ScramVerifier(verifier.into()));
    assert_eq!(s.users["app"].server_password, None);
    let md5 = format!("md5{}", "a".repeat(32));
    let text = MINIMAL.replace("${APP_PASSWORD}", &md5).replace("name = \"app\"", "name = \"app\"\nauth = \"md5\"");
    assert_eq!(parse(&text).unwrap().users["app"].secret, Secret::Md5Hash(md5));
}

#[test]
fn bad_values_are_rejected_with_the_key() {
    for (from, to, key) in [
        ("[databases.app]", "[pool]\nmode = \"statement\"\n[databases.app]", "pool.mode"),
        ("[databases.app]", "[pool]\ncheckout_timeout = \"soon\"\n[databases.app]", "checkout_timeout"),
        ("[databases.app]", "[pool]\nsize = 0\n[databases.app]", "pool.size"),
        ("127.0.0.1:5432", "127.0.0.1:port", "bad port"),
    ] {
        let err = parse(&MINIMAL.replace(from, to)).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn pool_mode_precedence() {
    let text = MINIMAL.replace("primary =", "pool_mode = \"session\"\nprimary =");
    let s = parse(&text).unwrap();
    assert_eq!(s.pool_mode_for("app", "app"), PoolMode::Session);
    assert_eq!(s.pool_mode_for("other", "app"), PoolMode::Transaction);
}

#[test]
fn missing_port_defaults_to_5432() {
    let s = parse(&MINIMAL.replace("127.0.0.1:5432", "db.internal")).unwrap();
    assert_eq!(s.databases["app"].primary, "db.internal:5432");
}
