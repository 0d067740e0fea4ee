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

#[test]
fn bad_spellings_are_refused_with_the_accepted_ones() {
    let user = |line: &str| MINIMAL.replace("name = \"app\"", &format!("name = \"app\"\n{line}"));
    let database = |line: &str| MINIMAL.replace("primary =", &format!("{line}\nprimary ="));
    let section = |text: &str| format!("{MINIMAL}\n{text}\n");
    for (text, message) in [
        (section("[pool]\nmode = \"statement\""), r#"pool.mode = "statement": use "transaction" or "session""#),
        (user("pool_mode = \"Session\""), r#"users.pool_mode = "Session": use "transaction" or "session""#),
        (database("pool_mode = \"x\""), r#"databases.pool_mode = "x": use "transaction" or "session""#),
        (section("[pool]\npinning = \"Pin\""), r#"pool.pinning = "Pin": use "pin" or "refuse""#),
        (user("auth = \"password\""), r#"user "app": auth "password" is not one of scram-sha-256, md5, trust"#),
        (
            section("[log]\nlevel = \"Verbose\""),
            r#"log.level = "verbose": use "error", "warn", "info", "debug" or "trace""#,
        ),
        (section("[log]\nformat = \"JSON\""), r#"log.format = "JSON": use "text" or "json""#),
        (section("[routing]\nread_your_writes = \"on\""), r#"routing.read_your_writes = "on": use "lsn" or "off""#),
        (section("[routing]\nstale_fallback = \"x\""), r#"routing.stale_fallback = "x": use primary, wait or error"#),
        (section("[routing]\nbalance = \"x\""), r#"routing.balance = "x": use least-busy, round-robin or random"#),
        (
            section("[[routing.rules]]\nname = \"r\"\nroute = \"Primary\""),
            r#"routing.rules "r": route = "Primary": use primary, replica or any"#,
        ),
        (
            section("[tls]\nclient_tls = \"prefer\""),
            r#"tls.client_tls = "prefer": use "disable", "allow" or "require""#,
        ),
        (
            section("[tls]\nserver_tls = \"x\""),
            r#"tls.server_tls = "x": use "disable", "prefer", "require" or "verify-full""#,
        ),
        (
            section("[tls]\nclient_tls = \"require\""),
            r#"tls.client_tls = "require" needs tls.cert and tls.key (the certificate chain and key shown to clients)"#,
        ),
        (
            section("[tls]\nserver_tls = \"verify-full\""),
            r#"tls.server_tls = "verify-full" needs tls.server_ca (the CA file servers' certificates must chain to)"#,
        ),
        (
            section("[tls]\nserver_tls = \"require\"\nserver_ca = \"ca.crt\""),
            r#"tls.server_ca is only used with tls.server_tls = "verify-full" (it is "require"), which checks server certificates"#,
        ),
    ] {
        assert_eq!(parse(&text).unwrap_err().to_string(), message);
    }
}

#[test]
fn every_spelling_reads_back_as_itself() {
    use crate::classify::RouteTarget;
    use crate::config::routing::{Balance, ReadYourWrites, StaleFallback};
    use crate::tls::{ClientTlsMode, ServerTlsMode};

    fn round_trip<T: Copy + PartialEq + std::fmt::Debug>(
        all: &[T],
        name: fn(T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) {
        for &value in all {
            assert_eq!(parse(name(value)), Some(value), "{}", name(value));
        }
    }
    round_trip(&PoolMode::ALL, PoolMode::name, PoolMode::parse);
    round_trip(&Pinning::ALL, Pinning::name, Pinning::parse);
    round_trip(&AuthMethod::ALL, AuthMethod::name, AuthMethod::parse);
    round_trip(&LogFormat::ALL, LogFormat::name, LogFormat::parse);
    round_trip(&StaleFallback::ALL, StaleFallback::name, StaleFallback::parse);
    round_trip(&Balance::ALL, Balance::name, Balance::parse);
    round_trip(&ReadYourWrites::ALL, ReadYourWrites::name, ReadYourWrites::parse);
    round_trip(&ClientTlsMode::ALL, ClientTlsMode::name, ClientTlsMode::parse);
    round_trip(&ServerTlsMode::ALL, ServerTlsMode::name, ServerTlsMode::parse);
    round_trip(&RouteTarget::ALL, RouteTarget::name, RouteTarget::parse);
}

#[test]
fn workers_default_to_the_cpus_and_must_be_at_least_one() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(parse(MINIMAL).unwrap().workers, super::default_workers(cpus));
    let defaults: Vec<usize> = (1..=5).map(super::default_workers).collect();
    assert_eq!(defaults, [1, 1, 3, 4, 5], "one worker on two CPUs or fewer, else one per CPU");
    let with = |n: &str| format!("[runtime]\nworkers = {n}\n{MINIMAL}");
    assert_eq!(parse(&with("1")).unwrap().workers, 1);
    let err = parse(&with("0")).unwrap_err().to_string();
    assert!(err.contains("runtime.workers"), "{err}");
}

#[test]
fn auth_lookup_needs_a_user_and_a_query_taking_the_name() {
    assert!(parse(MINIMAL).unwrap().auth_lookup.is_none());
    let s = parse(&format!("{MINIMAL}[auth]\nuser = \"lookup\"\npassword = \"${{APP_PASSWORD}}\"\n")).unwrap();
    let lookup = s.auth_lookup.expect("[auth] user turns the lookup on");
    assert_eq!(lookup.query, super::auth::DEFAULT_QUERY);
    assert_eq!(lookup.password.as_deref(), Some("s3cret"));
    assert_eq!(lookup.cache_ttl, Duration::from_secs(60));
    assert!(!format!("{lookup:?}").contains("s3cret"), "the password stays out of Debug");
    let no_user = parse(&format!("{MINIMAL}[auth]\nquery = \"select 1\"\n")).unwrap_err().to_string();
    assert!(no_user.contains("needs `user`"), "{no_user}");
    let no_param = parse(&format!("{MINIMAL}[auth]\nuser = \"l\"\nquery = \"select passwd from pg_shadow\"\n"));
    assert!(no_param.unwrap_err().to_string().contains("$1"));
    let typo = parse(&format!("{MINIMAL}[auth]\nuser = \"l\"\ncache_tl = \"1s\"\n")).unwrap_err().to_string();
    assert!(typo.contains("cache_tl"), "{typo}");
}

#[test]
fn the_wildcard_database_serves_unlisted_names_under_their_own_name() {
    let text =
        format!("{MINIMAL}[databases.\"*\"]\nprimary = \"10.0.0.1:5432\"\nreplicas = [\"10.0.0.2\"]\npool_size = 3\n");
    let s = parse(&text).unwrap();
    assert_eq!(s.databases["*"].server_dbname, "postgres", "the monitor logs into postgres");
    let listed = s.database("app").unwrap();
    assert!(!listed.from_wildcard);
    assert_eq!(listed.topology_name(), "app");
    let other = s.database("reports").unwrap();
    assert_eq!((other.name.as_str(), other.server_dbname.as_str()), ("reports", "reports"));
    assert_eq!(other.topology_name(), "*");
    assert_eq!(other.primary, "10.0.0.1:5432");
    assert_eq!(other.pool_size, Some(3));
    assert!(parse(MINIMAL).unwrap().database("reports").is_none(), "no wildcard, no database");
}

#[test]
fn auth_and_wildcard_render_back_to_the_same_settings() {
    let text = format!(
        "{MINIMAL}[auth]\nuser = \"lookup\"\nquery = \"select p from f($1)\"\ndatabase = \"postgres\"\n\
         cache_ttl = \"5s\"\n[databases.\"*\"]\nprimary = \"10.0.0.1:5432\"\n"
    );
    let s = parse(&text).unwrap();
    let again = parse(&crate::config::render(&s)).unwrap();
    assert_eq!(again.auth_lookup, s.auth_lookup);
    assert_eq!(again.databases["*"].server_dbname, "postgres");
}

#[test]
fn a_refused_value_is_shown_with_its_file_and_line() {
    let env = |_: &str| Some("s3cret".to_string());
    let text = format!("{MINIMAL}\n[pool]\nmode = \"transacton\"\n");
    let err = crate::config::from_str_with_env(&text, "my.toml", &env).unwrap_err().to_string();
    assert!(err.starts_with("my.toml: invalid value at line 9, column 8\n"), "{err}");
    assert!(err.contains("9 | mode = \"transacton\"\n  |        ^^^^^^^^^^^^\n"), "{err}");
    assert!(err.ends_with(r#"pool.mode = "transacton": use "transaction" or "session""#), "{err}");
    let text = MINIMAL.replace("primary =", "pool_mode = \"x\"\nprimary =");
    let err = crate::config::from_str_with_env(&text, "my.toml", &env).unwrap_err().to_string();
    assert!(err.contains("line 6, column 13"), "{err}");
    let text = format!("{MINIMAL}\n[[users]]\nname = \"b\"\nauth = \"md6\"\n");
    let err = crate::config::from_str_with_env(&text, "my.toml", &env).unwrap_err().to_string();
    assert!(err.contains("line 10, column 8") && err.contains("is not one of scram-sha-256, md5, trust"), "{err}");
}
