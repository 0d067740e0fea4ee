//! TLS with rustls (the `ring` provider, chosen explicitly so no global provider is needed):
//! `client_side` for clients connecting to pgsplit, `server_side` for pgsplit's own connections to
//! servers, `pem` for reading certificates and keys, `cert_hash` for SCRAM channel binding.
//! Everything here is built once from the config, so a bad file is an error at load, not at the
//! first connection.

pub mod cert_hash;
pub mod client_side;
pub mod pem;
pub mod server_side;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client_side::ClientTls;
pub use server_side::{ServerTls, ServerTlsError};

/// The ALPN protocol name PostgreSQL uses (PostgreSQL 17 and later require it for direct TLS).
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Whether clients may or must use TLS to reach pgsplit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTlsMode {
    /// SSLRequest is answered 'N'.
    Disable,
    /// TLS is offered; plaintext clients are served too.
    Allow,
    /// Plaintext logins are refused (cancel requests are still accepted).
    Require,
}

impl ClientTlsMode {
    /// Every mode, in the order messages list them.
    pub const ALL: [ClientTlsMode; 3] = [ClientTlsMode::Disable, ClientTlsMode::Allow, ClientTlsMode::Require];

    /// The config spelling (`tls.client_tls`).
    pub fn name(self) -> &'static str {
        match self {
            ClientTlsMode::Disable => "disable",
            ClientTlsMode::Allow => "allow",
            ClientTlsMode::Require => "require",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// How pgsplit secures its own connections to servers, as libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerTlsMode {
    /// Plaintext.
    Disable,
    /// TLS if the server offers it, else plaintext; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, with the certificate chain checked against the configured CA and the host name.
    VerifyFull,
}

impl ServerTlsMode {
    /// Every mode, in the order messages list them.
    pub const ALL: [ServerTlsMode; 4] =
        [ServerTlsMode::Disable, ServerTlsMode::Prefer, ServerTlsMode::Require, ServerTlsMode::VerifyFull];

    /// The config spelling (`tls.server_tls`), as libpq spells `sslmode`.
    pub fn name(self) -> &'static str {
        match self {
            ServerTlsMode::Disable => "disable",
            ServerTlsMode::Prefer => "prefer",
            ServerTlsMode::Require => "require",
            ServerTlsMode::VerifyFull => "verify-full",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// Why certificates, keys or a TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The file is not PEM, or holds nothing of the expected kind.
    #[error("{path}: {reason}")]
    Pem { path: String, reason: String },
    /// rustls refused the material (a key that does not match the certificate, say).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every TLS configuration of pgsplit uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
