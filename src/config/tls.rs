//! `[tls]`: the certificate pgsplit shows clients, and how its connections on either side are
//! secured. Files are read and parsed here, so a bad one fails the load and `check-config`.

use super::choices;
use super::env::{expand, invalid, invalid_at, EnvLookup};
use super::file::TlsFile;
use super::ConfigError;
use crate::tls::{pem, ClientTls, ClientTlsMode, ServerTls, ServerTlsMode, TlsError};

/// TLS on both sides, ready to use.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The file paths as configured, for `check-config`.
    pub cert: Option<String>,
    pub key: Option<String>,
    pub server_ca: Option<String>,
    pub client: ClientTls,
    pub server: ServerTls,
}

/// Validates `[tls]`: mode names, which files each mode needs, and the files themselves. Paths
/// may use `${VAR}`; relative ones are relative to pgsplit's working directory.
pub fn validate(mut file: TlsFile, env: EnvLookup) -> Result<TlsSettings, ConfigError> {
    for path in [&mut file.cert, &mut file.key, &mut file.server_ca].into_iter().flatten() {
        *path = expand(path, env)?;
    }
    if file.cert.is_some() != file.key.is_some() {
        return Err(invalid("tls.cert and tls.key go together: give both or neither".into()));
    }
    let client_mode = client_mode(file.client_tls.as_deref(), file.cert.is_some())?;
    let server_mode = server_mode(file.server_tls.as_deref(), file.server_ca.is_some())?;
    let client = match (&file.cert, &file.key) {
        (Some(cert), Some(key)) => {
            let chain = pem::load_certs(cert).map_err(|e| key_error("tls.cert", e))?;
            let key = pem::load_key(key).map_err(|e| key_error("tls.key", e))?;
            // Built even when disabled, so a bad pair is caught before someone enables it.
            ClientTls::new(client_mode, chain, key).map_err(|e| key_error("tls.cert and tls.key", e))?
        }
        _ => ClientTls::disabled(),
    };
    let roots = match &file.server_ca {
        Some(ca) => pem::load_certs(ca).map_err(|e| key_error("tls.server_ca", e))?,
        None => Vec::new(),
    };
    let server = ServerTls::new(server_mode, roots).map_err(|e| key_error("tls.server_ca", e))?;
    Ok(TlsSettings { cert: file.cert, key: file.key, server_ca: file.server_ca, client, server })
}

/// `tls.client_tls`: absent means allow when a certificate is given, else disable; any mode but
/// disable needs the certificate.
fn client_mode(value: Option<&str>, has_cert: bool) -> Result<ClientTlsMode, ConfigError> {
    let mode = match value {
        None if has_cert => ClientTlsMode::Allow,
        None => ClientTlsMode::Disable,
        Some(text) => ClientTlsMode::parse(text).ok_or_else(|| {
            let names = choices::quoted(&ClientTlsMode::ALL.map(ClientTlsMode::name));
            invalid_at("tls.client_tls", format!("tls.client_tls = {text:?}: use {names}"))
        })?,
    };
    if mode != ClientTlsMode::Disable && !has_cert {
        return Err(invalid(format!(
            "tls.client_tls = \"{}\" needs tls.cert and tls.key (the certificate chain and key shown to clients)",
            mode.name()
        )));
    }
    Ok(mode)
}

/// `tls.server_tls`: absent means disable; verify-full needs `tls.server_ca`, and only it takes one.
fn server_mode(value: Option<&str>, has_ca: bool) -> Result<ServerTlsMode, ConfigError> {
    let mode = match value {
        None => ServerTlsMode::Disable,
        Some(text) => ServerTlsMode::parse(text).ok_or_else(|| {
            let names = choices::quoted(&ServerTlsMode::ALL.map(ServerTlsMode::name));
            invalid_at("tls.server_tls", format!("tls.server_tls = {text:?}: use {names}"))
        })?,
    };
    match (mode, has_ca) {
        (ServerTlsMode::VerifyFull, false) => Err(invalid(
            "tls.server_tls = \"verify-full\" needs tls.server_ca (the CA file servers' certificates must chain to)"
                .into(),
        )),
        (ServerTlsMode::VerifyFull, true) | (_, false) => Ok(mode),
        (mode, true) => Err(invalid(format!(
            "tls.server_ca is only used with tls.server_tls = \"verify-full\" (it is \"{}\"), which checks server \
             certificates",
            mode.name()
        ))),
    }
}

fn key_error(key: &str, e: TlsError) -> ConfigError {
    invalid(format!("{key}: {e}"))
}

#[cfg(test)]
mod tests;
