//! The session: the only place that touches every stage. It reads a client request, routes it,
//! checks out a server connection, relays replies back, and releases the connection at
//! ReadyForQuery 'I' (transaction pooling) or at disconnect (session pooling).

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

use crate::classify::Pin;
use crate::config::{DatabaseSettings, Pinning, PoolMode, StaleFallback, UserSettings};
use crate::pool::{Checkout, PoolKey};
use crate::protocol::build::{self, Severity};
use crate::protocol::from_client::Pipeline;
use crate::route::Route;
use crate::state::cancel::CancelHandle;
use crate::state::clients::{ClientSlot, ClientState};
use crate::state::{Config, Shared};
use crate::stream::Stream;
use dispatch::Nodes;
use params::ClientParams;

use prepared::Prepared;
use relay::Guard;
use request::{Batch, Taken};
use routing::{Inspection, Parses, RoutingState};
use tx::TxState;

/// How a relay ended.
enum Relayed {
    Done,
    /// The node refused the request as a write (25006) and nothing reached the client: a
    /// replica misrouted to, or a primary that was demoted. Its pool.
    Refused(PoolKey),
    /// The server refused a statement pgsplit reused, for a result type changed by DDL, before
    /// anything ran or reached the client. The connection, settled.
    StalePlan(Checkout),
}

mod answer;
mod checkout;
pub(crate) mod dispatch;
pub(crate) mod error;
pub(crate) mod logging;
mod login;
pub(crate) mod misroute;
pub(crate) mod outbox;
pub(crate) mod params;
pub(crate) mod prepared;
mod relay;
pub mod request;
mod retry;
pub(crate) mod routing;
mod tx;

pub(crate) use error::ClientError;
pub(crate) use login::Authenticated;

/// Spare room a TLS client read takes (plain sockets read into a per-thread scratch buffer).
const READ_RESERVE: usize = 16 * 1024;

/// One logged-in client.
pub struct Session {
    client: Stream,
    client_in: BytesMut,
    ctx: Arc<Shared>,
    /// The configuration's own settings of the user and database, shared by their sessions.
    user: Arc<UserSettings>,
    db: Arc<DatabaseSettings>,
    mode: PoolMode,
    params: ClientParams,
    cancel: CancelHandle,
    /// The configuration the session runs under: its settings and rules until it follows a
    /// reload between transactions (one snapshot per transaction, not a load per message).
    config: Arc<Config>,
    /// The pools of the database's nodes, looked up once at login rather than per request.
    nodes: Nodes,
    routing: RoutingState,
    prepared: Prepared,
    /// The server connection kept between requests: inside a transaction, or in session mode.
    server: Option<Checkout>,
    /// Pins, and what the current transaction leaves behind if it ends well.
    tx: TxState,
    /// The client's ReadyForQuery, held back until the LSN probe behind it answers, with the
    /// replies before it that arrived without the probe's answer.
    ready_after_probe: Option<Bytes>,
    /// After a refused Flush-ended request, messages are dropped until Sync, as PostgreSQL does.
    discarding: bool,
    /// pgsplit answered the client's BEGIN: the server gets it with the next request.
    begin_owed: bool,
    id: u64,
    /// This client's entry in the registry of connected clients.
    slot: ClientSlot,
}

impl Session {
    /// Serves requests until the client leaves; reports a fatal error to the client if one ends it.
    /// Boxed: the session lives on the heap once, not in the task's future (an async fn's
    /// by-value arguments take room there twice).
    pub async fn run(mut self: Box<Self>) {
        // One loop here rather than a nested future: each level of `async fn` costs every idle
        // client's task room. Serving a request is a deep state machine (routing, checkout,
        // relay): boxed, it takes memory only while a request runs.
        let e = loop {
            let batch = match self.next_request().await {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    let _span = self.span().entered();
                    tracing::debug!("client disconnected");
                    return;
                }
                Err(e) => break e,
            };
            // With debug on, the lines of every layer below name the client; otherwise no
            // span is made or entered per request.
            let served = match logging::detailed() {
                true => {
                    let span = self.span();
                    Box::pin(self.serve(batch).instrument(span)).await
                }
                false => Box::pin(self.serve(batch)).await,
            };
            if let Err(e) = served {
                break e;
            }
        };
        // Boxed: the error and its report take room only once a session ends with one.
        Box::pin(self.end_with(e)).await;
    }

    /// Tells the client the error that ends its session, and logs it.
    async fn end_with(&mut self, e: ClientError) {
        report_fatal(&mut self.client, &e).await;
        let _span = self.span().entered();
        logging::session_ended(&e);
    }

    /// This client's span, made for a log line: see [`logging::session_span`].
    fn span(&self) -> tracing::Span {
        logging::session_span(self.slot.entry())
    }

    /// Waits for a whole request. `None` when the client leaves.
    async fn next_request(&mut self) -> Result<Option<Batch>, ClientError> {
        loop {
            // Read each time, not kept in a local: it would take room in every waiting client.
            let max = self.config.settings.limits.max_message_size;
            match request::take(&mut self.client_in, max, true)? {
                Taken::Batch(batch) => return Ok(Some(batch)),
                Taken::Terminate => return Ok(None),
                Taken::NeedMore => {}
            }
            let read = if self.server.is_none() {
                // Between transactions, holding nothing: how most clients wait, so this wait
                // alone is what an idle client's task keeps room for.
                tokio::select! {
                    biased;
                    read = self.client.read_when_ready(&mut self.client_in, READ_RESERVE) => read?,
                    // Shutdown ends idle sessions at once.
                    _ = self.slot.closing() => return Err(ClientError::Shutdown),
                }
            } else {
                // Boxed: a client holding a connection (a transaction, a pin) listens to it too.
                match Box::pin(self.wait_holding()).await? {
                    Some(read) => read,
                    None => continue,
                }
            };
            if read == 0 {
                return Ok(None);
            }
        }
    }

    /// Waits for the client's next bytes while holding a connection, and forwards what the
    /// connection says meanwhile. `Some(n)`: the client's read; `None`: the connection spoke.
    async fn wait_holding(&mut self) -> Result<Option<usize>, ClientError> {
        let between_transactions = self.tx.pinned() && self.kept_is_idle();
        let Some(server) = self.server.as_mut() else { return Ok(None) };
        tokio::select! {
            biased;
            read = self.client.read_when_ready(&mut self.client_in, READ_RESERVE) => return Ok(Some(read?)),
            // A held connection speaks unasked: notifications for a LISTEN, notices, or its end.
            read = server.read_more() => read?,
            // Shutdown ends a pinned session between transactions; a transaction runs to its end.
            _ = self.slot.closing(), if between_transactions => return Err(ClientError::Shutdown),
        }
        self.forward_unasked().await?;
        Ok(None)
    }

    /// Whether the held connection is outside a transaction (a pinned session between requests).
    fn kept_is_idle(&self) -> bool {
        self.server.as_ref().is_some_and(|s| s.status() == b'I' && s.settled())
    }

    /// Forwards what a held connection sent between requests.
    async fn forward_unasked(&mut self) -> Result<(), ClientError> {
        let Some(server) = self.server.as_mut() else { return Ok(()) };
        while let Some((batch, _)) = server.take_batch()? {
            self.client.send(&batch).await?;
        }
        Ok(())
    }

    /// Notes a statement that needs its server session kept: pins the client, or refuses it.
    fn pin_for(&mut self, inspection: &Inspection) -> Result<(), ClientError> {
        let mut pins = inspection.statements.iter().flat_map(|c| c.pins.iter()).copied().peekable();
        if self.mode != PoolMode::Transaction || pins.peek().is_none() {
            return Ok(());
        }
        if self.config.settings.pool.pinning == Pinning::Refuse {
            return Err(ClientError::NeedsSession(pins.next().unwrap_or(Pin::Listen)));
        }
        let _span = self.span().entered();
        self.tx.pin(pins, &self.ctx.counters);
        Ok(())
    }

    /// Runs one request: each stage once, in data-path order.
    ///
    /// Not an `async fn`: its arguments would be kept twice in the future (as given, and as
    /// the body's locals), and this future is allocated for every request.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps each argument twice in its future")]
    fn serve(&mut self, batch: Batch) -> impl Future<Output = Result<(), ClientError>> + '_ {
        async move {
            if self.answered_here(&batch).await? {
                return Ok(());
            }
            if self.server.is_none() {
                // Between transactions: the request is classified and routed under the current
                // configuration.
                self.follow_reload();
            }
            let inspection = self.inspect(&batch);
            if self.deallocate(&batch, &inspection).await? || self.begin_here(&batch, &inspection).await? {
                return Ok(());
            }
            if let Err(e) = self.pin_for(&inspection) {
                return Box::pin(self.refuse(e, batch.summary)).await;
            }
            let fresh = self.server.is_none();
            // A request after a BEGIN pgsplit answered runs in that transaction, on the primary, as
            // it would have on the connection the BEGIN took.
            let begun = std::mem::take(&mut self.begin_owed);
            let (mut server, route) = match self.acquire(&inspection, begun).await {
                Ok(pair) => pair,
                Err(e) => return Box::pin(self.refuse(e, batch.summary)).await,
            };
            if !self.params_fit(&mut server) {
                // A round trip to the server anyway; boxed, so it does not size every request's future.
                Box::pin(self.sync_params(&mut server)).await?;
            }
            self.begin_request(&mut server, &inspection, fresh);
            if begun {
                server.begin_first();
            }
            // Outside a transaction until now: the request may commit a write, and nothing ran yet.
            let outside = fresh && !begun;
            self.prepared.start_request();
            let writes = outside && inspection.writes();
            // A read learns the LSN only if it ends the exchange (a probe must not land inside a
            // pipeline the client keeps open), and only where reads are routed at all.
            let reads = outside && !writes && batch.summary.waits_for_ready() && self.mode == PoolMode::Transaction;
            let probed = self.probe_owed(&inspection, route, writes, reads);
            self.send_rewritten(&mut server, &batch.bytes, batch.summary.pipeline, &inspection.parsed, &[], probed)
                .await?;
            // Replies are held back until they show the request ran, so a write a replica (or a
            // demoted primary) refuses can run again on the primary, and a reused statement whose
            // result type changed can be prepared again: only outside a transaction, and while
            // the client waits for a ReadyForQuery, not after a Flush.
            let waits = batch.summary.waits_for_ready();
            let guard = Guard { misroute: outside && waits, stale_plan: waits && self.prepared.reused_any() };
            let relayed = self.relay(server, route, guard).await?;
            if probed && !matches!(relayed, Relayed::Done) {
                // Its replies were drained with the refused request's.
                self.routing.probe_dropped();
            }
            // The retries are rare and deep: boxed, so they do not size every request's future.
            match relayed {
                Relayed::Done => Ok(()),
                Relayed::Refused(refused) => {
                    Box::pin(self.retry_on_primary(&batch, &inspection, route, &refused)).await
                }
                Relayed::StalePlan(server) => Box::pin(self.replan(server, &batch, &inspection, route, probed)).await,
            }
        }
    }

    /// Classifies the request's statements (texts kept only when a rule matches on text).
    fn inspect(&mut self, batch: &Batch) -> Inspection {
        let keep_text = !self.config.policy.rules.is_empty();
        self.routing.inspect(&self.config.classifier, &batch.bytes, keep_text, &self.prepared)
    }

    /// Notes what the request starts: its transaction's base, session changes and writes, and
    /// what DISCARD ALL or a pin leaves the connection owing.
    fn begin_request(&mut self, server: &mut Checkout, inspection: &Inspection, fresh: bool) {
        if fresh {
            self.tx.begin(server.errors());
        }
        self.tx.note(inspection);
        if inspection.writes() {
            self.routing.wrote();
        }
        if inspection.discards_all() {
            self.prepared.clear();
            server.forget_statements();
            self.tx.unpin_all();
            server.set_needs_reset(self.mode == PoolMode::Session);
        }
        if self.tx.pinned() {
            server.set_needs_reset(true);
        }
    }

    /// Whether the request owes the LSN probe, when read-your-writes has replicas to keep away
    /// from. `writes`: it may commit a write; `reads`: a plain read outside a transaction. A
    /// session learns its LSN with each commit when it asked for `pgsplit.write_lsn`, or when
    /// reads wait for replicas rather than take the primary (a read right after a write needs
    /// the LSN at once); else only when a read needs it, which spares writes a statement.
    fn probe_owed(&self, inspection: &Inspection, route: Route, writes: bool, reads: bool) -> bool {
        let settings = &self.config.policy.settings;
        if !settings.read_your_writes || self.nodes.replicas.is_empty() {
            return false;
        }
        let eager = settings.report_write_lsn || settings.stale_fallback == StaleFallback::Wait;
        if self.routing.reports_write_lsn(eager) {
            self.routing.wants_probe(inspection, route, writes)
        } else {
            reads && self.routing.wants_lazy_probe(inspection, route)
        }
    }

    /// Sends client messages, rewritten when they name prepared statements.
    async fn send_request(
        &mut self,
        server: &mut Checkout,
        bytes: &[u8],
        pipeline: Pipeline,
        parsed: &Parses,
    ) -> Result<(), ClientError> {
        self.send_rewritten(server, bytes, pipeline, parsed, &[], false).await
    }

    /// Sends client messages, rewritten when they name prepared statements; `stale` statements
    /// are prepared on the connection again first. With `probe`, the LSN probe follows them in
    /// the same write, so a commit costs no extra send.
    async fn send_rewritten(
        &mut self,
        server: &mut Checkout,
        bytes: &[u8],
        pipeline: Pipeline,
        parsed: &Parses,
        stale: &[u64],
        probe: bool,
    ) -> Result<(), ClientError> {
        tracing::trace!(tags = %crate::protocol::frame::tags(bytes), "to server");
        let reuse = self.config.settings.pool.reuse_unnamed;
        if !stale.is_empty() || self.prepared.touches(bytes, reuse) {
            let out = self.prepared.rewrite(&self.ctx.statements, bytes, parsed, server, reuse, stale);
            server.send_outgoing(out, pipeline, probe).await?;
        } else {
            server.send(bytes, pipeline, probe).await?;
        }
        if probe {
            let at_read = self.routing.probe_sent();
            self.ctx.counters.lsn_probe(at_read);
        }
        Ok(())
    }

    /// Applies the session changes of a transaction that just ended well.
    fn settle_session_changes(&mut self, server: &mut Checkout) {
        let keep = self.tx.settle(server.status(), server.errors());
        if !keep.is_empty() {
            for change in &keep {
                self.params.apply(change);
            }
            server.set_unreported(self.params.expected().unreported.clone());
        }
    }

    /// Settles a finished request: releases the connection (before the client sees the reply, so
    /// the next client gets it sooner), or keeps it while a transaction is open or in session mode.
    fn end_request(&mut self, mut server: Checkout) {
        self.settle_session_changes(&mut server);
        if server.status() == b'I' {
            self.routing.outside_transaction();
        }
        if server.take_params_changed() {
            // The client saw these ParameterStatus messages go by; only remember them.
            self.params.adopt_changes(&server.params().reported, &self.ctx.param_sets);
        }
        server.set_owner((self.id, self.params.version));
        // A connection a pin just left still owes a DISCARD ALL: the checkout guard runs it.
        let releasable = server.status() == b'I' && server.is_resettable();
        if self.mode == PoolMode::Transaction && !self.tx.pinned() && releasable {
            self.cancel.set_target(None);
            self.slot.set_state(ClientState::Idle);
            drop(server);
        } else {
            self.server = Some(server);
        }
    }
}

/// Sends a FATAL ErrorResponse for errors the client can be told about.
pub async fn report_fatal(client: &mut Stream, e: &ClientError) {
    if let Some(code) = e.sqlstate() {
        let mut out = BytesMut::new();
        build::error(&mut out, Severity::Fatal, code, &e.to_string(), e.hint());
        // The connection is ending either way; a failed write changes nothing.
        let _ = client.send(&out).await;
        let _ = client.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
