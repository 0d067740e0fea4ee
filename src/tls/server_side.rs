//! TLS for pgsplit's own connections to servers: SSLRequest, then a rustls handshake that checks
//! the certificate (`verify-full`) or only that the server holds its key (`prefer`, `require`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{provider, ServerTlsMode, TlsError, ALPN_POSTGRESQL};
use crate::stream::Stream;

/// SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// How pgsplit's connections to servers are secured.
#[derive(Clone)]
pub struct ServerTls {
    pub mode: ServerTlsMode,
    /// Present unless the mode is `Disable`.
    config: Option<Arc<ClientConfig>>,
}

/// Why TLS to a server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// The server answered 'N' to SSLRequest.
    #[error("the server does not accept TLS (ssl = off?) and server_tls = \"{0}\" forbids plaintext")]
    NotOffered(&'static str),
    /// Neither 'S' nor 'N'.
    #[error("the server answered SSLRequest with byte {0:#04x}")]
    Unexpected(u8),
    /// The address's host cannot be a TLS server name.
    #[error("{0:?} is not a valid host name for TLS")]
    BadName(String),
    /// The handshake failed: the certificate did not verify, or the connection broke.
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    /// The socket failed while asking for TLS.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ServerTls {
    /// Plaintext to servers.
    pub fn disabled() -> Self {
        ServerTls { mode: ServerTlsMode::Disable, config: None }
    }

    /// TLS in `mode`; `roots` are the CA certificates `VerifyFull` checks chains against.
    pub fn new(mode: ServerTlsMode, roots: Vec<CertificateDer<'static>>) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
        let mut config = match mode {
            ServerTlsMode::Disable => return Ok(Self::disabled()),
            ServerTlsMode::VerifyFull => {
                let mut store = RootCertStore::empty();
                for cert in roots {
                    store.add(cert)?;
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
            ServerTlsMode::Prefer | ServerTlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(KeyHolderOnly(provider())))
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(ServerTls { mode, config: Some(Arc::new(config)) })
    }

    /// The rustls configuration, unless TLS is disabled.
    pub fn client_config(&self) -> Option<Arc<ClientConfig>> {
        self.config.clone()
    }

    /// Asks the server at `addr` (`host:port`, the host naming it for verification) for TLS on
    /// a fresh socket and returns the stream to log in over: TLS, or plaintext when the mode
    /// allows it.
    pub async fn secure(&self, mut tcp: TcpStream, addr: &str) -> Result<Stream, ServerTlsError> {
        let Some(config) = &self.config else { return Ok(Stream::Plain(tcp)) };
        tcp.write_all(&SSL_REQUEST).await?;
        // Exactly one byte: anything read beyond it would be plaintext posing as TLS-protected.
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        match (answer[0], self.mode) {
            (b'S', _) => {}
            (b'N', ServerTlsMode::Prefer) => return Ok(Stream::Plain(tcp)),
            // Require or verify-full: a disabled mode has no config and never asks.
            (b'N', mode) => return Err(ServerTlsError::NotOffered(mode.name())),
            (other, _) => return Err(ServerTlsError::Unexpected(other)),
        }
        let name = server_name(addr)?;
        let tls = TlsConnector::from(config.clone()).connect(name, tcp).await.map_err(ServerTlsError::Handshake)?;
        Ok(Stream::ServerTls(Box::new(tls)))
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("mode", &self.mode).finish()
    }
}

/// The TLS server name of `host:port`: an IP address or a DNS name (`[v6]` brackets dropped).
pub fn server_name(addr: &str) -> Result<ServerName<'static>, ServerTlsError> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| ServerTlsError::BadName(host.to_string()))
}

/// libpq's `sslmode=require`: any certificate is accepted, but the handshake signatures are still
/// checked, so the server must hold the key of the certificate it shows.
#[derive(Debug)]
struct KeyHolderOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for KeyHolderOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_addresses() {
        assert!(matches!(server_name("127.0.0.1:5432").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name("[::1]:5432").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name("db.internal:5432").unwrap(), ServerName::DnsName(_)));
        assert!(server_name("bad name:5432").is_err());
    }

    #[test]
    fn verify_full_without_roots_still_builds_but_trusts_nothing() {
        // Config validation insists on server_ca; here only the mode plumbing is checked.
        let tls = ServerTls::new(ServerTlsMode::VerifyFull, Vec::new()).unwrap();
        assert!(tls.client_config().is_some());
        assert!(ServerTls::new(ServerTlsMode::Disable, Vec::new()).unwrap().client_config().is_none());
    }
}
