//! The handshake before a session: SSLRequest and GSSENCRequest (answered 'N'), CancelRequest,
//! protocol negotiation, authentication and the database check.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::session::{report_fatal, Session};
use super::ClientError;
use crate::app::AppContext;
use crate::config::{DatabaseSettings, UserSettings};
use crate::protocol::build;
use crate::protocol::startup::{self, StartupMessage, StartupPacket};
use crate::server::BackendKey;

/// A client that passed authentication, with where it wants to go.
pub struct Accepted {
    pub startup: StartupMessage,
    pub user: UserSettings,
    pub db: DatabaseSettings,
}

/// Serves one client connection from its first byte to its last.
pub async fn handle_client(ctx: Arc<AppContext>, mut stream: TcpStream) {
    let limit = ctx.settings.limits.handshake_timeout;
    let accepted = match tokio::time::timeout(limit, handshake(&ctx, &mut stream)).await {
        Ok(Ok(Some(accepted))) => accepted,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return refuse(&ctx, &mut stream, e).await,
        Err(_) => return refuse(&ctx, &mut stream, ClientError::HandshakeTimeout).await,
    };
    match Session::login(ctx.clone(), stream, accepted).await {
        Ok(session) => session.run().await,
        Err((mut stream, e)) => refuse(&ctx, &mut stream, e).await,
    }
}

async fn refuse(ctx: &AppContext, stream: &mut TcpStream, e: ClientError) {
    if let Some(why) = e.refusal() {
        ctx.counters.refused(why);
    }
    if let Some(code) = e.sqlstate() {
        ctx.counters.error(code);
    }
    match &e {
        ClientError::AuthFailed(_) | ClientError::UnknownDatabase(_) => tracing::info!(error = %e, "login refused"),
        ClientError::Io(_) | ClientError::Gone => tracing::debug!(error = %e, "client left during handshake"),
        _ => tracing::warn!(error = %e, "client refused"),
    }
    report_fatal(stream, &e).await;
}

/// Reads startup packets until a StartupMessage, then authenticates. `None` after a cancel request.
async fn handshake(ctx: &AppContext, stream: &mut TcpStream) -> Result<Option<Accepted>, ClientError> {
    loop {
        let mut len = [0u8; 4];
        read_exact(stream, &mut len).await?;
        let mut body = vec![0u8; startup::body_len(len)?];
        read_exact(stream, &mut body).await?;
        match startup::parse(&body)? {
            // TLS and GSSAPI encryption are not offered: 'N' lets the client go on in the clear.
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => stream.write_all(b"N").await?,
            StartupPacket::Cancel { pid, secret } => {
                ctx.cancels.cancel(BackendKey { pid, secret }).await;
                return Ok(None);
            }
            StartupPacket::Startup(msg) => return accept(ctx, stream, msg).await.map(Some),
        }
    }
}

async fn accept(ctx: &AppContext, stream: &mut TcpStream, msg: StartupMessage) -> Result<Accepted, ClientError> {
    if msg.minor > 0 || !msg.protocol_options.is_empty() {
        let mut out = BytesMut::new();
        build::negotiate_protocol_version(&mut out, msg.protocol_options.clone());
        stream.write_all(&out).await?;
    }
    if msg.get("replication").is_some_and(|v| !matches!(v, "false" | "off" | "no" | "0")) {
        return Err(ClientError::Replication);
    }
    let user = msg.get("user").filter(|u| !u.is_empty()).ok_or(ClientError::NoUser)?.to_string();
    let database = msg.get("database").filter(|d| !d.is_empty()).unwrap_or(&user).to_string();
    ctx.auth.authenticate(stream, &user).await?;
    // Authentication only succeeds for configured users; a miss here would be a config race.
    let user = ctx.settings.users.get(&user).cloned().ok_or(ClientError::AuthFailed(user))?;
    let db = ctx.settings.databases.get(&database).cloned().ok_or(ClientError::UnknownDatabase(database))?;
    Ok(Accepted { startup: msg, user, db })
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), ClientError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ClientError::Gone),
        Err(e) => Err(e.into()),
    }
}
