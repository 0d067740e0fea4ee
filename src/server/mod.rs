//! One PostgreSQL server connection: connecting, TLS and logging in (`connect`), and exchanging raw
//! messages (`conn`).

pub mod conn;
pub mod connect;
pub mod counters;
pub mod expect;
pub mod list;
pub mod outgoing;
pub mod params;
pub mod passthrough;

pub use conn::{BackendKey, ServerConn};
pub use connect::{connect, ServerLogin};
pub use outgoing::Outgoing;

/// What went wrong with a server connection.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    /// TLS could not be set up as `server_tls` asks.
    #[error("cannot secure the connection to {addr}: {source}")]
    Tls { addr: String, source: crate::tls::ServerTlsError },
    /// Connecting and logging in took longer than `pool.connect_timeout`.
    #[error("connecting to {addr} timed out after {millis} ms")]
    ConnectTimeout { addr: String, millis: u128 },
    /// The server refused the login (bad password, missing database…), with its own SQLSTATE.
    #[error("server {addr} refused the login: {message}")]
    Refused { addr: String, code: String, message: String },
    /// The server asked for an authentication pgsplit cannot give.
    #[error("server {addr}: {reason}")]
    Auth { addr: String, reason: String },
    /// A statement pgsplit ran itself failed.
    #[error("server {addr} rejected {what}: {message}")]
    Statement { addr: String, what: String, code: String, message: String },
    /// Reading or writing the socket failed.
    #[error("server connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("server closed the connection unexpectedly")]
    Closed,
    /// The server sent something that breaks the protocol.
    #[error("protocol error from server: {0}")]
    Protocol(String),
}
