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

/// Why reading a server connection stopped: all [`ServerConn::read_more`] can fail with. Kept
/// apart from [`ServerError`] (96 bytes) so the futures that await a read, every request's
/// among them, hold room for 16.
#[derive(Debug)]
pub enum ReadError {
    /// The server closed the connection.
    Closed,
    /// Reading the socket failed.
    Io(std::io::Error),
}

impl From<ReadError> for ServerError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => ServerError::Closed,
            ReadError::Io(e) => ServerError::Io(e),
        }
    }
}

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
    ConnectTimeout { addr: String, millis: u64 },
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
