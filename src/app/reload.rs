//! Reloads the configuration on SIGHUP; what a reload does is [`crate::state::Shared::reload`].

use std::sync::Arc;

use crate::state::Shared;

/// The SIGHUP stream.
pub struct Hangups(tokio::signal::unix::Signal);

/// Listens for SIGHUP from now on: from here a SIGHUP is queued for [`on_sighup`] instead of
/// ending the process.
pub fn listen() -> Option<Hangups> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(Hangups(hangups)),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload from the admin console instead");
            None
        }
    }
}

/// Reloads on every SIGHUP until the task is dropped.
pub async fn on_sighup(ctx: Arc<Shared>, hangups: Option<Hangups>) {
    let Some(Hangups(mut hangups)) = hangups else { return };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the configuration");
        if let Err(e) = ctx.reload() {
            tracing::error!(error = %e, "reload failed");
        }
    }
}
