//! TLS for clients connecting to pgsplit: pgsplit is the TLS server, with one certificate chain.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::cert_hash;
use super::{provider, ClientTlsMode, TlsError, ALPN_POSTGRESQL};
use crate::stream::{ClientTlsStream, Stream};

/// The first byte of a TLS record carrying a handshake: how a direct TLS connection (PostgreSQL
/// 17's `sslnegotiation=direct`) starts, where a startup packet's length would start with 0.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Whether and how clients get TLS.
#[derive(Clone)]
pub struct ClientTls {
    pub mode: ClientTlsMode,
    /// Present when a certificate is configured (even with `Disable`, so it was checked).
    acceptor: Option<TlsAcceptor>,
    /// The certificate's `tls-server-end-point` data, computed once and shared by every client
    /// it is shown to; `None` when its signature algorithm defines none (no SCRAM-SHA-256-PLUS).
    end_point: Option<Arc<[u8]>>,
}

impl ClientTls {
    /// No TLS for clients.
    pub fn disabled() -> Self {
        ClientTls { mode: ClientTlsMode::Disable, acceptor: None, end_point: None }
    }

    /// TLS offered (or required) with `chain` (leaf first) and its `key`.
    pub fn new(
        mode: ClientTlsMode,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        // The leaf is the only certificate rustls will show (one chain, no SNI choice), so its
        // hash is what every client's channel binding must carry.
        let end_point = chain.first().and_then(|leaf| cert_hash::tls_server_end_point(leaf)).map(Arc::from);
        if end_point.is_none() && mode != ClientTlsMode::Disable {
            let why = "the certificate's signature algorithm defines no tls-server-end-point hash";
            tracing::warn!("tls.cert: {why}, so clients are not offered SCRAM-SHA-256-PLUS (channel binding)");
        }
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // A client offering ALPN must offer "postgresql"; one offering none is served too.
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(ClientTls { mode, acceptor: Some(TlsAcceptor::from(Arc::new(config))), end_point })
    }

    /// Whether an SSLRequest is answered 'S'.
    pub fn offered(&self) -> bool {
        self.mode != ClientTlsMode::Disable && self.acceptor.is_some()
    }

    /// Whether plaintext logins are refused.
    pub fn required(&self) -> bool {
        self.mode == ClientTlsMode::Require
    }

    /// Runs the TLS handshake on a client's socket. Errors mean the client is gone: rustls has
    /// already sent it an alert.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        let Some(acceptor) = self.acceptor.as_ref().filter(|_| self.offered()) else {
            return Err(std::io::Error::other("TLS is not configured for clients"));
        };
        let tls = acceptor.accept(tcp).await?;
        Ok(Stream::ClientTls(Box::new(ClientTlsStream::new(tls, self.end_point.clone()))))
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("mode", &self.mode).field("offered", &self.offered()).finish()
    }
}
