//! Reloads the configuration on SIGHUP; what a reload does is [`crate::state::Shared::reload`].

use std::sync::Arc;

use crate::state::Shared;

/// Reloads on every SIGHUP until the task is dropped.
pub async fn on_sighup(ctx: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload from the admin console instead");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the configuration");
        if let Err(e) = ctx.reload() {
            tracing::error!(error = %e, "reload failed");
        }
    }
}
