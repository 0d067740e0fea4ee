//! The accept loop: admits clients up to `max_clients`, refuses the rest with a clear error, and
//! stops accepting at shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::startup::handle_client;
use crate::protocol::build::{self, Severity};
use crate::protocol::sqlstate;
use crate::session::logging::client_span;
use crate::session::ClientError;
use crate::state::Shared;

/// Accepts clients until shutdown; each runs as a task on `tracker`.
pub async fn run(listener: TcpListener, ctx: Arc<Shared>, tracker: TaskTracker) {
    let slots = Arc::new(Semaphore::new(ctx.config().settings.limits.max_clients));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = ctx.shutdown.cancelled() => break,
        };
        crate::socket::tune(&stream);
        let ctx = ctx.clone();
        // Every line about this client, refused or served, carries its span (see `logging`).
        let span = client_span(peer);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                // Counted open until the client's task ends, for SHOW LISTS.
                let open = ctx.clients.accepted();
                let client = handle_client(ctx, stream, permit, span);
                tracker.spawn(async move {
                    client.await;
                    drop(open)
                });
            }
            Err(_) => {
                ctx.counters.refused(crate::metrics::Refusal::MaxClients);
                ctx.counters.error(sqlstate::TOO_MANY_CONNECTIONS);
                tracker.spawn(refuse_full(stream).instrument(span));
            }
        }
    }
}

async fn refuse_full(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut out = bytes::BytesMut::new();
    let message = "sorry, too many clients already (pgsplit limits.max_clients reached)";
    build::error(&mut out, Severity::Fatal, sqlstate::TOO_MANY_CONNECTIONS, message, None);
    let _ = stream.write_all(&out).await;
    tracing::warn!(error = %ClientError::Gone, "refused a client: max_clients reached");
}
