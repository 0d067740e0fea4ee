//! Requests run a second time, unseen by the client: after the server refused a reused
//! statement whose result type DDL changed, and after a node refused a write as read-only (a
//! misrouted read, or a demoted primary).

use std::time::Instant;

use super::relay::Guard;
use super::request::Batch;
use super::routing::Inspection;
use super::{dispatch, misroute, ClientError, Session};
use crate::pool::{Checkout, PoolKey};
use crate::route::{Reason, Route};
use crate::state::cancel::CancelTarget;

impl Session {
    /// Runs a request again on the same connection after the server refused a statement pgsplit
    /// reused from an earlier Parse, because DDL changed its result type: the statements the
    /// request reused are closed and prepared afresh, and the client never sees the refusal.
    pub(super) async fn replan(
        &mut self,
        mut server: Checkout,
        batch: &Batch,
        inspection: &Inspection,
        route: Route,
        probed: bool,
    ) -> Result<(), ClientError> {
        self.ctx.statements.count_replan();
        self.span().in_scope(|| tracing::debug!("a reused statement's result type changed; preparing it again"));
        // The refusal is the transaction's only error, and it is not the client's.
        self.tx.begin(server.errors());
        let stale = self.prepared.undo_request();
        self.send_rewritten(&mut server, &batch.bytes, batch.summary.pipeline, &inspection.parsed, &stale, probed)
            .await?;
        self.relay(server, route, Guard::NONE).await.map(|_| ())
    }

    /// Runs again on the primary a request refused as a write before anything ran: by a replica
    /// (misrouted), or by the node believed primary (demoted: the monitor is asked for fresh
    /// samples, and the request waits for the node elected now).
    pub(super) async fn retry_on_primary(
        &mut self,
        batch: &Batch,
        inspection: &Inspection,
        refused_on: Route,
        refused: &PoolKey,
    ) -> Result<(), ClientError> {
        let refused_at = Instant::now();
        let sql = misroute::first_sql(&batch.bytes).unwrap_or_else(|| "(a prepared statement)".into());
        let statement = misroute::fingerprint(&sql);
        let failover_timeout = self.config.policy.settings.failover_timeout;
        if refused_on == Route::Primary {
            self.ctx.counters.failover_retry();
            self.span().in_scope(|| tracing::warn!(%statement, node = %refused.node, "the primary refused a write as read-only (demoted?); running it on the primary elected now"));
            self.nodes.await_new_primary(refused, refused_at, failover_timeout).await;
        } else {
            self.ctx.counters.misroute_retry();
            self.span().in_scope(
                || tracing::warn!(%statement, "a replica refused a statement as a write; running it on the primary"),
            );
            self.ctx.decisions.count(Route::Primary, Reason::Write);
        }
        let (mut server, _) = dispatch::checkout(&self.ctx, &self.nodes, Route::Primary, failover_timeout).await?;
        self.cancel.set_target(Some(CancelTarget { addr: server.addr().clone(), key: server.key() }));
        if !self.params_fit(&mut server) {
            self.sync_params(&mut server).await?;
        }
        self.routing.wrote();
        // What the refused run added to the client's statements would refuse its second run.
        self.prepared.undo_request();
        let probe = self.probe_owed(inspection, Route::Primary, true, false);
        self.send_rewritten(&mut server, &batch.bytes, batch.summary.pipeline, &inspection.parsed, &[], probe).await?;
        self.relay(server, Route::Primary, Guard::NONE).await.map(|_| ())
    }
}
