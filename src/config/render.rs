//! `check-config` output: the effective configuration, defaults filled in and secrets hidden,
//! in the file's own TOML shape.

use super::env::literal;
use super::file::{
    AuthFile, ConfigFile, DatabaseFile, LimitsFile, ListenFile, LogFile, PoolFile, ReplicaFile, RoutingFile, RuleFile,
    RuntimeFile, TlsFile, UserFile,
};
use super::routing::{ReadYourWrites, RoutingSettings};
use super::units::{format_duration, format_size};
use super::{DatabaseSettings, LookupSettings, PoolMode, Secret, Settings, UserSettings};

/// Renders `settings` as TOML.
pub fn render(settings: &Settings) -> String {
    let file = ConfigFile {
        admin_users: settings.admin_users.iter().map(|u| literal(u)).collect(),
        listen: ListenFile {
            addr: Some(settings.listen.to_string()),
            metrics_addr: settings.metrics_addr.map(|a| a.to_string()),
        },
        pool: PoolFile {
            mode: Some(mode(settings.pool.mode)),
            size: Some(settings.pool.size),
            checkout_timeout: Some(format_duration(settings.pool.checkout_timeout)),
            idle_timeout: Some(format_duration(settings.pool.idle_timeout)),
            max_lifetime: Some(format_duration(settings.pool.max_lifetime)),
            connect_timeout: Some(format_duration(settings.pool.connect_timeout)),
            pinning: Some(settings.pool.pinning.name().into()),
            reuse_unnamed: Some(settings.pool.reuse_unnamed),
        },
        limits: LimitsFile {
            max_clients: Some(settings.limits.max_clients),
            max_message_size: Some(format_size(settings.limits.max_message_size as u64)),
            handshake_timeout: Some(format_duration(settings.limits.handshake_timeout)),
            shutdown_timeout: Some(format_duration(settings.limits.shutdown_timeout)),
        },
        runtime: RuntimeFile { workers: Some(settings.workers) },
        log: LogFile { level: Some(settings.log_level.clone()), format: Some(settings.log_format.name().into()) },
        routing: routing(&settings.routing),
        tls: TlsFile {
            cert: settings.tls.cert.as_deref().map(literal),
            key: settings.tls.key.as_deref().map(literal),
            client_tls: Some(settings.tls.client.mode.name().into()),
            server_tls: Some(settings.tls.server.mode.name().into()),
            server_ca: settings.tls.server_ca.as_deref().map(literal),
        },
        auth: auth(settings.auth_lookup.as_ref()),
        users: settings.users.values().map(|u| user(u)).collect(),
        databases: settings.databases.values().map(|d| (d.name.clone(), database(d))).collect(),
    };
    // Every field is a plain string, number or table: serialisation cannot fail.
    toml::to_string_pretty(&file).expect("settings render as TOML")
}

fn auth(lookup: Option<&LookupSettings>) -> AuthFile {
    let Some(l) = lookup else { return AuthFile::default() };
    AuthFile {
        user: Some(literal(&l.user)),
        password: l.password.as_ref().map(|_| "(hidden)".into()),
        query: Some(literal(&l.query)),
        database: l.database.as_deref().map(literal),
        cache_ttl: Some(format_duration(l.cache_ttl)),
    }
}

fn user(u: &UserSettings) -> UserFile {
    UserFile {
        name: literal(&u.name),
        password: secret(&u.secret),
        auth: Some(u.auth.name().into()),
        server_user: Some(literal(&u.server_user)),
        server_password: u.server_password.as_ref().map(|_| "(hidden)".into()),
        pool_mode: u.pool_mode.map(mode),
    }
}

fn database(d: &DatabaseSettings) -> DatabaseFile {
    DatabaseFile {
        primary: literal(&d.primary),
        replicas: d
            .replicas
            .iter()
            .map(|r| ReplicaFile::Weighted { addr: literal(&r.addr), weight: Some(r.weight) })
            .collect(),
        server_dbname: Some(literal(&d.server_dbname)),
        pool_mode: d.pool_mode.map(mode),
        pool_size: d.pool_size,
    }
}

fn routing(r: &RoutingSettings) -> RoutingFile {
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    RoutingFile {
        max_lag: Some(format_duration(r.max_lag)),
        max_lag_bytes: Some(format_size(r.max_lag_bytes)),
        read_your_writes: Some(ReadYourWrites::of(r.read_your_writes).name().into()),
        report_write_lsn: Some(r.report_write_lsn),
        stale_fallback: Some(r.stale_fallback.name().into()),
        wait_timeout: Some(format_duration(r.wait_timeout)),
        failover_timeout: Some(format_duration(r.failover_timeout)),
        balance: Some(r.balance.name().into()),
        primary_reads: Some(r.primary_reads),
        check_interval: Some(format_duration(r.check_interval)),
        write_functions: Some(r.write_functions.clone()),
        monitor_user: r.monitor_user.clone(),
        monitor_password: r.monitor_password.as_ref().map(|_| "(hidden)".into()),
        rules: r
            .rules
            .iter()
            .map(|rule| RuleFile {
                name: Some(rule.name.clone()),
                database: some(&rule.databases),
                user: some(&rule.users),
                application_name: some(&rule.application_names),
                kind: some(&rule.kinds),
                tables: some(&rule.tables),
                functions: some(&rule.functions),
                regex: rule.regex.clone(),
                route: rule.route.name().into(),
                max_lag: rule.max_lag.map(format_duration),
            })
            .collect(),
    }
}

fn mode(m: PoolMode) -> String {
    m.name().into()
}

fn secret(s: &Secret) -> Option<String> {
    match s {
        Secret::None => None,
        Secret::Plain(_) => Some("(hidden)".into()),
        Secret::ScramVerifier(_) => Some("(SCRAM verifier)".into()),
        Secret::Md5Hash(_) => Some("(md5 hash)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{from_str, from_str_with_env};
    use super::*;

    /// What validates renders into a file that validates again, to the same values, even where
    /// an expanded value holds `${` itself (found by the config fuzz target).
    #[test]
    fn an_expanded_value_holding_dollar_brace_renders_back_as_itself() {
        let text = r#"
[[users]]
name = "${NAME}"
password = "secret"
server_user = "${NAME}"
[databases.app]
primary = "127.0.0.1:5432"
server_dbname = "${NAME}"
"#;
        let env = |name: &str| (name == "NAME").then(|| "u${APP_PASSWORD}".to_string());
        let settings = from_str_with_env(text, "test", &env).expect("validates");
        let again = from_str(&render(&settings), "rendered").expect("the rendered file validates");
        let user = again.users.values().next().expect("one user");
        assert_eq!(user.name, "u${APP_PASSWORD}");
        assert_eq!(user.server_user, "u${APP_PASSWORD}");
        assert_eq!(again.databases["app"].server_dbname, "u${APP_PASSWORD}");
    }
}
