//! The handshake before a session: TLS (SSLRequest, or a direct TLS handshake), GSSENCRequest
//! (answered 'N'), CancelRequest, protocol negotiation, authentication and the database check.

use std::future::Future;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use crate::auth::lookup::Target;
use crate::auth::FailReason;
use crate::config::{DatabaseSettings, Settings, WILDCARD_DATABASE};
use crate::protocol::build;
use crate::protocol::startup::{self, StartupMessage, StartupPacket};
use crate::server::BackendKey;
use crate::session::ClientError;
use crate::session::{logging, report_fatal, Authenticated, Session};
use crate::state::Shared;
use crate::stream::Stream;
use crate::tls::client_side::TLS_HANDSHAKE_RECORD;
use crate::tls::{ClientTls, ALPN_POSTGRESQL};

/// What a client that passed authentication gets.
pub enum Handoff {
    /// A session with a database.
    Session(Box<Authenticated>),
    /// The admin console, as this admin user.
    Console(String),
}

/// Serves one client connection from its first byte to its last, holding `permit` (its place
/// under `max_clients`) until it leaves. The task holds only what an idle session needs: the
/// handshake and login are boxed before the task starts (the socket and the shared state move
/// into them, so the task keeps no copy) and freed once done. They run in `span`, which goes with
/// them: the session makes its own when it logs.
pub fn handle_client(
    ctx: Arc<Shared>,
    tcp: TcpStream,
    permit: OwnedSemaphorePermit,
    span: tracing::Span,
) -> impl Future<Output = ()> + Send {
    let login = Box::pin(open_session(ctx, tcp).instrument(span));
    async move {
        // `let … else`, not `if let`: the scrutinee would stay in the task beside the session.
        let Some(session) = login.await else { return drop(permit) };
        session.run().await;
        drop(permit);
    }
}

/// The handshake, then the admin console (served here, to its end) or a logged-in session.
async fn open_session(ctx: Arc<Shared>, tcp: TcpStream) -> Option<Box<Session>> {
    let ctx = &ctx;
    let mut stream = Stream::Plain(tcp);
    let limit = ctx.config().settings.limits.handshake_timeout;
    let authenticated = match tokio::time::timeout(limit, handshake(ctx, &mut stream)).await {
        Ok(Ok(Some(authenticated))) => authenticated,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => return refuse(ctx, &mut stream, e).await,
        Err(_) => return refuse(ctx, &mut stream, ClientError::HandshakeTimeout).await,
    };
    let authenticated = match authenticated {
        Handoff::Session(authenticated) => *authenticated,
        Handoff::Console(user) => {
            if let Err(e) = crate::admin::serve(ctx.clone(), &mut stream, &user).await {
                // An oversized or malformed message: say so before closing, as sessions do.
                tracing::debug!(error = %e, "admin console closed");
                report_fatal(&mut stream, &e).await;
            }
            return None;
        }
    };
    match Session::login(ctx.clone(), stream, authenticated).await {
        Ok(session) => Some(Box::new(session)),
        Err((mut stream, e)) => refuse(ctx, &mut stream, e).await,
    }
}

/// Tells the client why it is refused; `None`, for [`open_session`] to return.
async fn refuse(ctx: &Shared, stream: &mut Stream, e: ClientError) -> Option<Box<Session>> {
    if let Some(why) = e.refusal() {
        ctx.counters.refused(why);
    }
    if let Some(code) = e.sqlstate() {
        ctx.counters.error(code);
    }
    logging::login_refused(&e);
    report_fatal(stream, &e).await;
    None
}

/// Reads startup packets until a StartupMessage, then authenticates. `None` after a cancel request.
async fn handshake(ctx: &Shared, stream: &mut Stream) -> Result<Option<Handoff>, ClientError> {
    let config = ctx.config();
    let tls = &config.settings.tls.client;
    if tls.offered() && starts_with_tls(stream).await? {
        start_tls(stream, tls).await?;
        // As PostgreSQL does: ALPN shows the client meant to speak PostgreSQL, not some other
        // protocol's TLS redirected here.
        if stream.alpn_protocol() != Some(ALPN_POSTGRESQL) {
            return Err(ClientError::TlsProtocol("direct TLS connection without ALPN protocol \"postgresql\""));
        }
    }
    loop {
        let mut len = [0u8; 4];
        read_exact(stream, &mut len).await?;
        let mut body = vec![0u8; startup::body_len(len)?];
        read_exact(stream, &mut body).await?;
        match startup::parse(&body)? {
            StartupPacket::SslRequest if stream.is_tls() => {
                return Err(ClientError::TlsProtocol("SSLRequest over a connection already using TLS"))
            }
            StartupPacket::SslRequest if tls.offered() => {
                stream.send(b"S").await?;
                start_tls(stream, tls).await?;
            }
            // Encryption not offered: 'N' lets the client go on in the clear (or give up).
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => stream.send(b"N").await?,
            // Cancels are honoured in the clear even when logins need TLS: libpq before 17
            // always sends them unencrypted, and the key itself is the credential.
            StartupPacket::Cancel { pid, secret } => {
                ctx.cancels.cancel(BackendKey { pid, secret }).await;
                return Ok(None);
            }
            StartupPacket::Startup(_) if tls.required() && !stream.is_tls() => return Err(ClientError::TlsRequired),
            StartupPacket::Startup(msg) => return accept(ctx, stream, msg).await.map(Some),
        }
    }
}

/// Whether the client opened with a TLS handshake instead of a startup packet (PostgreSQL 17's
/// `sslnegotiation=direct`): a startup packet's length would begin with a zero byte.
async fn starts_with_tls(stream: &mut Stream) -> Result<bool, ClientError> {
    let Stream::Plain(tcp) = stream else { return Ok(false) };
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await? {
        0 => Err(ClientError::Gone),
        _ => Ok(first[0] == TLS_HANDSHAKE_RECORD),
    }
}

/// Replaces the client's plain socket with TLS over it.
async fn start_tls(stream: &mut Stream, tls: &ClientTls) -> Result<(), ClientError> {
    let tcp = stream.take_plain().ok_or(ClientError::TlsProtocol("TLS requested twice"))?;
    *stream = tls.accept(tcp).await.map_err(ClientError::TlsHandshake)?;
    Ok(())
}

async fn accept(ctx: &Shared, stream: &mut Stream, msg: StartupMessage) -> Result<Handoff, ClientError> {
    if msg.minor > 0 || !msg.protocol_options.is_empty() {
        let mut out = BytesMut::new();
        build::negotiate_protocol_version(&mut out, msg.protocol_options.clone());
        stream.send(&out).await?;
    }
    if msg.get("replication").is_some_and(|v| !matches!(v, "false" | "off" | "no" | "0")) {
        return Err(ClientError::Replication);
    }
    let user = msg.get("user").filter(|u| !u.is_empty()).ok_or(ClientError::NoUser)?.to_string();
    let database = msg.get("database").filter(|d| !d.is_empty()).unwrap_or(&user).to_string();
    logging::record_startup(&user, &database, msg.get("application_name"));
    let config = ctx.config();
    if database == crate::config::ADMIN_DATABASE {
        config.auth.authenticate(stream, &user).await?;
        return match config.settings.admin_users.contains(&user) {
            true => Ok(Handoff::Console(user)),
            false => Err(ClientError::NotAdmin(user)),
        };
    }
    let db = config.settings.database(&database);
    let user = match (config.auth.lookup(), &db) {
        (Some(lookup), Some(db)) if !config.auth.lists(&user) => {
            let addr = lookup_node(ctx, db);
            let target = Target { addr: &addr, database: lookup.database(lookup_home(&config.settings, db)) };
            config.auth.authenticate_looked_up(stream, &user, &target).await?
        }
        // An unlisted user of an unknown database cannot be looked up: refused as unknown.
        (Some(_), None) if !config.auth.lists(&user) => return Err(ClientError::UnknownDatabase(database)),
        _ => {
            config.auth.authenticate(stream, &user).await?;
            // Authentication only succeeds for listed users; a miss here would be a config race.
            let listed = config.settings.users.get(&user).cloned();
            listed.ok_or(ClientError::AuthFailed { user, reason: FailReason::NoSuchRole })?
        }
    };
    let db = db.ok_or(ClientError::UnknownDatabase(database))?;
    Ok(Handoff::Session(Box::new(Authenticated { startup: msg, user, db })))
}

/// The server database lookups run in unless `[auth] database` says: the database's own, and
/// for a `"*"` one the `"*"` entry's (`postgres` by default) rather than whatever the client
/// named, which may not exist. `pg_authid` is shared by every database of a cluster.
fn lookup_home<'a>(settings: &'a Settings, db: &'a DatabaseSettings) -> &'a str {
    match db.from_wildcard {
        true => settings.databases.get(WILDCARD_DATABASE).map_or(&db.server_dbname, |w| &w.server_dbname),
        false => &db.server_dbname,
    }
}

/// Where auth passthrough asks for a user's password: the node the monitor elected primary,
/// the configured primary before the first election.
fn lookup_node(ctx: &Shared, db: &DatabaseSettings) -> String {
    let topology = ctx.monitor().topology(db.topology_name());
    topology.as_ref().and_then(|t| t.elected()).map_or_else(|| db.primary.clone(), |node| node.addr.to_string())
}

async fn read_exact(stream: &mut Stream, buf: &mut [u8]) -> Result<(), ClientError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ClientError::Gone),
        Err(e) => Err(e.into()),
    }
}
