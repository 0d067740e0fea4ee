//! `check-config` output: the effective configuration, defaults filled in and secrets hidden,
//! in the file's own TOML shape.

use super::file::{ConfigFile, DatabaseFile, LimitsFile, ListenFile, LogFile, PoolFile, UserFile};
use super::units::{format_duration, format_size};
use super::{AuthMethod, PoolMode, Secret, Settings};

/// Renders `settings` as TOML.
pub fn render(settings: &Settings) -> String {
    let file = ConfigFile {
        listen: ListenFile { addr: Some(settings.listen.to_string()) },
        pool: PoolFile {
            mode: Some(mode(settings.pool.mode)),
            size: Some(settings.pool.size),
            checkout_timeout: Some(format_duration(settings.pool.checkout_timeout)),
            idle_timeout: Some(format_duration(settings.pool.idle_timeout)),
            max_lifetime: Some(format_duration(settings.pool.max_lifetime)),
            connect_timeout: Some(format_duration(settings.pool.connect_timeout)),
        },
        limits: LimitsFile {
            max_clients: Some(settings.limits.max_clients),
            max_message_size: Some(format_size(settings.limits.max_message_size as u64)),
            handshake_timeout: Some(format_duration(settings.limits.handshake_timeout)),
            shutdown_timeout: Some(format_duration(settings.limits.shutdown_timeout)),
        },
        log: LogFile { level: Some(settings.log_level.clone()) },
        users: settings
            .users
            .values()
            .map(|u| UserFile {
                name: u.name.clone(),
                password: secret(&u.secret),
                auth: Some(auth(u.auth).into()),
                server_user: Some(u.server_user.clone()),
                server_password: u.server_password.as_ref().map(|_| "(hidden)".into()),
                pool_mode: u.pool_mode.map(mode),
            })
            .collect(),
        databases: settings
            .databases
            .values()
            .map(|d| {
                let file = DatabaseFile {
                    primary: d.primary.clone(),
                    replicas: d.replicas.clone(),
                    server_dbname: Some(d.server_dbname.clone()),
                    pool_mode: d.pool_mode.map(mode),
                    pool_size: d.pool_size,
                };
                (d.name.clone(), file)
            })
            .collect(),
    };
    // Every field is a plain string, number or table: serialisation cannot fail.
    toml::to_string_pretty(&file).expect("settings render as TOML")
}

fn mode(m: PoolMode) -> String {
    match m {
        PoolMode::Transaction => "transaction".into(),
        PoolMode::Session => "session".into(),
    }
}

fn auth(a: AuthMethod) -> &'static str {
    match a {
        AuthMethod::ScramSha256 => "scram-sha-256",
        AuthMethod::Md5 => "md5",
        AuthMethod::Trust => "trust",
    }
}

fn secret(s: &Secret) -> Option<String> {
    match s {
        Secret::None => None,
        Secret::Plain(_) => Some("(hidden)".into()),
        Secret::ScramVerifier(_) => Some("(SCRAM verifier)".into()),
        Secret::Md5Hash(_) => Some("(md5 hash)".into()),
    }
}
