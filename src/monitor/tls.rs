//! TLS for the monitor's tokio-postgres connections, with the same rustls configuration and
//! `server_tls` mode as the data path. No channel binding: SCRAM runs without it, as on the data
//! path.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;
use tokio_rustls::TlsConnector;

use crate::tls::server_side::server_name;
use crate::tls::{ServerTls, ServerTlsMode};

/// Makes tokio-postgres connections TLS as `server_tls` asks.
#[derive(Clone)]
pub struct MakeRustls {
    config: Option<Arc<ClientConfig>>,
}

impl MakeRustls {
    /// The connector for `tls`, and the sslmode to hand tokio-postgres with it (verification is
    /// the connector's business: `verify-full` is `Require` with a verifying rustls config).
    pub fn new(tls: &ServerTls) -> (MakeRustls, SslMode) {
        let mode = match tls.mode {
            ServerTlsMode::Disable => SslMode::Disable,
            ServerTlsMode::Prefer => SslMode::Prefer,
            ServerTlsMode::Require | ServerTlsMode::VerifyFull => SslMode::Require,
        };
        (MakeRustls { config: tls.client_config() }, mode)
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    /// Never fails here: tokio-postgres asks even under sslmode=disable, where no handshake
    /// follows, so a missing config or a host that cannot be a TLS name only fails a handshake.
    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // tokio-postgres hands the bare host; `server_name` expects `host:port`.
        let name = server_name(&format!("{domain}:0")).map_err(|e| e.to_string());
        let config = self.config.clone().ok_or_else(|| "server_tls is disabled".to_string());
        Ok(RustlsConnect(config.and_then(|config| name.map(|name| (TlsConnector::from(config), name)))))
    }
}

/// One connection's TLS handshake, or why there can be none.
pub struct RustlsConnect(Result<(TlsConnector, ServerName<'static>), String>);

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let (connector, name) = self.0.map_err(io::Error::other)?;
            let stream = connector.connect(name, socket).await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// A monitor connection's TLS stream.
pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().0.as_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_monitor_connections_are_not_refused_before_the_handshake() {
        // tokio-postgres asks for a TLS connector even under sslmode=disable.
        let (mut make, mode) = MakeRustls::new(&ServerTls::disabled());
        assert!(matches!(mode, SslMode::Disable));
        assert!(make.make_tls_connect("127.0.0.1").is_ok());
        assert!(make.make_tls_connect("/var/run/postgresql").is_ok());
    }
}
