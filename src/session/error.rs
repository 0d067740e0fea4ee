//! Client-side errors, each knowing what the client is told and whether the connection ends.

use crate::auth::lookup::LookupError;
use crate::auth::{AuthError, FailReason};
use crate::metrics::Refusal;
use crate::pool::PoolError;
use crate::protocol::frame::FrameError;
use crate::protocol::sqlstate;
use crate::protocol::startup::StartupError;
use crate::server::{ReadError, ServerError};
use crate::session::params::ParamError;

/// Why a client session stopped, or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client's socket failed; there is no one left to tell.
    #[error("client connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The client closed its connection or sent Terminate.
    #[error("client disconnected")]
    Gone,
    /// The client broke message framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The startup packet was unacceptable.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The client did not finish the handshake in time.
    #[error("handshake not finished within the handshake timeout")]
    HandshakeTimeout,
    /// No user in the startup packet.
    #[error("no PostgreSQL user name specified in startup packet")]
    NoUser,
    /// Wrong password or unknown user: the same answer for both; the log says which.
    #[error("password authentication failed for user \"{user}\"")]
    AuthFailed { user: String, reason: FailReason },
    /// Auth passthrough could not ask the primary for the user's password and had no recent
    /// answer. What went wrong is logged, never told.
    #[error("pgsplit cannot check the password of user \"{user}\" right now")]
    AuthUnavailable { user: String, cause: LookupError },
    /// The client spoke out of turn during authentication.
    #[error("authentication protocol violation: {0}")]
    AuthProtocol(&'static str),
    /// Another message where a password message was due, or one too long to be a password:
    /// said as [`AuthError`] says it.
    #[error(transparent)]
    AuthMessage(AuthError),
    /// `tls.client_tls = "require"` and the client logs in without TLS.
    #[error("pgsplit requires TLS (SSL) from clients and this connection is not using it: connect with sslmode=require (or verify-ca, verify-full)")]
    TlsRequired,
    /// The client's TLS handshake failed; rustls has already told it why with an alert.
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(std::io::Error),
    /// TLS negotiation out of order.
    #[error("TLS protocol violation: {0}")]
    TlsProtocol(&'static str),
    /// An authenticated user not listed in `admin_users` asked for the console.
    #[error("user \"{0}\" may not open the pgsplit admin console")]
    NotAdmin(String),
    /// The database is not configured.
    #[error("database \"{0}\" does not exist")]
    UnknownDatabase(String),
    /// A startup parameter or `options` setting PostgreSQL would refuse (an empty name…).
    #[error(transparent)]
    StartupParam(#[from] ParamError),
    /// Replication connections are not proxied.
    #[error("replication connections are not supported by pgsplit")]
    Replication,
    /// The server connection failed while this client was using it.
    #[error("server connection failed: {0}")]
    ServerLost(#[from] ServerError),
    /// No server connection could be had at login.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// pgsplit is shutting down.
    #[error("pgsplit is shutting down")]
    Shutdown,
    /// A statement needs its server session kept and `pool.pinning = "refuse"`.
    #[error(
        "{} ties a client to one server connection, which pool.pinning = \"refuse\" forbids in transaction pooling", .0.describe()
    )]
    NeedsSession(crate::classify::Pin),
    /// No replica is fresh enough for a read and `stale_fallback = "error"`.
    #[error("no replica is fresh enough for this read")]
    NoFreshReplica,
    /// No node was elected primary within `failover_timeout`: none answers out of recovery on
    /// the newest timeline (a failover under way, or every candidate down or fenced).
    #[error("database \"{0}\" has no primary: no node answers out of recovery on the newest timeline")]
    NoPrimary(String),
    /// The kept connection's node lost the election while up (a failover): the transaction on it
    /// is rolled back there.
    #[error("the primary changed (failover): {0}, where this transaction ran, is no longer the primary; the transaction is rolled back")]
    PrimaryChanged(String),
}

impl From<ReadError> for ClientError {
    fn from(e: ReadError) -> Self {
        ClientError::ServerLost(e.into())
    }
}

impl From<AuthError> for ClientError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Failed { user, reason } => ClientError::AuthFailed { user, reason },
            AuthError::Lookup { user, cause } => ClientError::AuthUnavailable { user, cause },
            AuthError::Protocol(what) => ClientError::AuthProtocol(what),
            e @ (AuthError::Unexpected { .. } | AuthError::TooLong { .. }) => ClientError::AuthMessage(e),
            AuthError::Frame(e) => ClientError::Frame(e),
            AuthError::Io(e) => ClientError::Io(e),
            AuthError::Gone => ClientError::Gone,
        }
    }
}

impl ClientError {
    /// SQLSTATE for the FATAL message sent before closing, or `None` when the client cannot be told.
    pub fn sqlstate(&self) -> Option<&str> {
        Some(match self {
            ClientError::ServerLost(ServerError::Statement { code, .. }) => code,
            // A database the server does not have (through "*"), a looked-up user it refuses:
            // the server's own answer says it best.
            ClientError::Pool(PoolError::Server(ServerError::Refused { code, .. }))
                if matches!(code.as_str(), sqlstate::INVALID_CATALOG_NAME | sqlstate::INVALID_PASSWORD) =>
            {
                code
            }
            ClientError::Io(_) | ClientError::Gone | ClientError::TlsHandshake(_) => return None,
            ClientError::Frame(FrameError::TooLarge { .. }) => sqlstate::PROGRAM_LIMIT_EXCEEDED,
            ClientError::Frame(_) | ClientError::Startup(_) | ClientError::HandshakeTimeout => {
                sqlstate::PROTOCOL_VIOLATION
            }
            ClientError::AuthProtocol(_) | ClientError::AuthMessage(_) | ClientError::TlsProtocol(_) => {
                sqlstate::PROTOCOL_VIOLATION
            }
            ClientError::TlsRequired => sqlstate::INVALID_AUTHORIZATION,
            ClientError::NoUser | ClientError::NotAdmin(_) => sqlstate::INVALID_AUTHORIZATION,
            ClientError::AuthFailed { .. } => sqlstate::INVALID_PASSWORD,
            ClientError::AuthUnavailable { .. } => sqlstate::CANNOT_CONNECT_NOW,
            ClientError::UnknownDatabase(_) => sqlstate::INVALID_CATALOG_NAME,
            ClientError::Replication => sqlstate::FEATURE_NOT_SUPPORTED,
            ClientError::StartupParam(e) => e.sqlstate(),
            ClientError::ServerLost(_) => sqlstate::CONNECTION_FAILURE,
            ClientError::Pool(PoolError::Exhausted { .. }) => sqlstate::TOO_MANY_CONNECTIONS,
            ClientError::Pool(_) => sqlstate::CONNECTION_FAILURE,
            ClientError::Shutdown => sqlstate::ADMIN_SHUTDOWN,
            ClientError::NoFreshReplica | ClientError::NoPrimary(_) => sqlstate::CANNOT_CONNECT_NOW,
            ClientError::PrimaryChanged(_) => sqlstate::CONNECTION_FAILURE,
            ClientError::NeedsSession(_) => sqlstate::FEATURE_NOT_SUPPORTED,
        })
    }

    /// Why a login failed, for the refusal counters; `None` for a client that just left.
    pub fn refusal(&self) -> Option<Refusal> {
        Some(match self {
            ClientError::Io(_) | ClientError::Gone => return None,
            ClientError::AuthFailed { .. }
            | ClientError::NoUser
            | ClientError::AuthProtocol(_)
            | ClientError::AuthMessage(_)
            | ClientError::NotAdmin(_) => Refusal::Auth,
            ClientError::UnknownDatabase(_) => Refusal::UnknownDatabase,
            ClientError::TlsRequired | ClientError::TlsHandshake(_) | ClientError::TlsProtocol(_) => Refusal::Tls,
            ClientError::Shutdown
            | ClientError::Pool(_)
            | ClientError::ServerLost(_)
            | ClientError::AuthUnavailable { .. } => Refusal::Unavailable,
            _ => Refusal::Handshake,
        })
    }

    /// What the client should do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ClientError::UnknownDatabase(_) => {
                Some("Connect to a database listed under [databases] in the pgsplit config.")
            }
            ClientError::NotAdmin(_) => Some("List the user in admin_users in the pgsplit config."),
            ClientError::TlsRequired => {
                Some("Connect with sslmode=require (or verify-full), or set tls.client_tls = \"allow\" in the pgsplit config.")
            }
            ClientError::Frame(FrameError::TooLarge { .. }) => {
                Some("Raise limits.max_message_size in the pgsplit config, or send less data per message.")
            }
            ClientError::Pool(PoolError::Exhausted { .. }) => {
                Some("All server connections stayed busy; retry later, or raise pool.size or pool.checkout_timeout.")
            }
            // The server answered: its message says what is wrong.
            ClientError::Pool(PoolError::Server(ServerError::Refused { .. })) => None,
            ClientError::Pool(_) | ClientError::ServerLost(_) => {
                Some("The server is down or unreachable; retry once it is back.")
            }
            ClientError::Shutdown => Some("Reconnect to another pgsplit instance or retry shortly."),
            ClientError::NoFreshReplica => {
                Some("Retry shortly, or route it to the primary (routing.stale_fallback = \"primary\").")
            }
            ClientError::NoPrimary(_) => Some("A failover may be under way; retry shortly."),
            ClientError::AuthUnavailable { .. } => Some("The primary cannot be asked for the password now; retry shortly."),
            ClientError::PrimaryChanged(_) => Some("Run the whole transaction again: it goes to the new primary."),
            _ => None,
        }
    }
}
