//! What client log lines carry and how loud they are: every line about a client is in a `client`
//! span that names it (peer, then user, database and application_name once the startup packet is
//! read, then the id it is listed under once logged in), and each error is logged at a level that
//! says whose problem it is. Nothing here ever sees a password or a query.
//!
//! The handshake runs inside the span made at accept. A logged-in session holds no span: it makes
//! one from its registry entry for each line it logs ([`session_span`]), so an idle client keeps
//! no slot in the tracing registry and no poll pays to enter and leave a span. With debug or
//! trace on, each request runs in one, so the lines of the layers below carry the client too.

use std::net::SocketAddr;

use tracing::field::Empty;
use tracing::{Level, Span};

use super::ClientError;
use crate::pool::PoolError;
use crate::state::clients::ClientEntry;

/// The span a client accepted from `peer` runs in. It is an error-level span so that it is
/// enabled whenever any line inside it is: at `level = "warn"` an info span would be filtered out
/// and warnings would lose the client they are about.
pub fn client_span(peer: SocketAddr) -> Span {
    tracing::error_span!("client", client = Empty, peer = %peer, user = Empty, database = Empty, application_name = Empty)
}

/// The span of a logged-in client, the same fields as [`client_span`] filled in, made for one
/// log line (or, with debug on, one request) and then dropped.
pub fn session_span(entry: &ClientEntry) -> Span {
    tracing::error_span!(
        "client",
        client = entry.id,
        peer = entry.addr.map(tracing::field::display),
        user = entry.user(),
        database = entry.database(),
        application_name = &*entry.application_name,
    )
}

/// Whether lines below info may be written: then each request runs in its client's span.
pub fn detailed() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::level_filters::LevelFilter::DEBUG
}

/// Records on the current client span who the startup packet says the client is.
pub fn record_startup(user: &str, database: &str, application_name: Option<&str>) {
    let span = Span::current();
    span.record("user", user);
    span.record("database", database);
    if let Some(name) = application_name {
        span.record("application_name", name);
    }
}

/// Records the id a logged-in client is listed under in the registry of connected clients.
pub fn record_id(id: u64) {
    Span::current().record("client", id);
}

/// How loudly an error that refuses or ends a client is logged: pgsplit's or its servers' trouble
/// is a warning, what the client asked for or did wrong is information, and a client that simply
/// left (or was let go at shutdown) is debug.
pub fn level(e: &ClientError) -> Level {
    match e {
        ClientError::Io(_) | ClientError::Gone | ClientError::Shutdown => Level::DEBUG,
        ClientError::Pool(PoolError::Closed(_)) => Level::DEBUG,
        ClientError::Pool(PoolError::Exhausted { .. }) | ClientError::ServerLost(_) => Level::WARN,
        // The pool has already warned that the server cannot be reached (once per outage).
        ClientError::Pool(PoolError::Server(_)) => Level::INFO,
        _ => Level::INFO,
    }
}

/// Logs why a login did not complete.
pub fn login_refused(e: &ClientError) {
    let message = match e {
        // The client hears the same for both; the log says which it was.
        ClientError::AuthFailed { reason, .. } => {
            return tracing::info!(error = %e, reason = reason.describe(), "authentication failed");
        }
        ClientError::AuthUnavailable { cause, .. } => {
            return tracing::warn!(error = %cause, "authentication failed: the user's password could not be looked up");
        }
        ClientError::AuthProtocol(_) | ClientError::NoUser => "authentication failed",
        ClientError::TlsHandshake(_) => "client TLS handshake failed",
        ClientError::Io(_) | ClientError::Gone => "client left during the handshake",
        _ => "login refused",
    };
    emit(level(e), e, message);
}

/// Logs a request answered with an error instead of a server's reply.
pub fn request_refused(e: &ClientError) {
    emit(level(e), e, "request refused");
}

/// Logs the error that ended a logged-in client's session.
pub fn session_ended(e: &ClientError) {
    emit(level(e), e, "session ended");
}

fn emit(level: Level, e: &ClientError, message: &str) {
    match level {
        Level::ERROR | Level::WARN => tracing::warn!(error = %e, "{message}"),
        Level::INFO => tracing::info!(error = %e, "{message}"),
        _ => tracing::debug!(error = %e, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_say_whose_problem_it_is() {
        let failed = ClientError::AuthFailed { user: "app".into(), reason: crate::auth::FailReason::NoSuchRole };
        assert_eq!(level(&failed), Level::INFO);
        assert_eq!(level(&ClientError::UnknownDatabase("nope".into())), Level::INFO);
        assert_eq!(level(&ClientError::Gone), Level::DEBUG);
        assert_eq!(level(&ClientError::Shutdown), Level::DEBUG);
        let exhausted = PoolError::Exhausted { pool: "app@h:5432/app".into(), size: 1, waited_ms: 5000 };
        assert_eq!(level(&ClientError::Pool(exhausted)), Level::WARN);
        assert_eq!(level(&ClientError::ServerLost(crate::server::ServerError::Closed)), Level::WARN);
    }
}
