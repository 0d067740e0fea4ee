//! Relaying one request: server replies to the client (held back where pgsplit must first know
//! more), and messages the client pipelines meanwhile to the server.

use std::future::Future;

use bytes::{Bytes, BytesMut};

use super::outbox::{Outbox, Withheld};
use super::{Relayed, Session, READ_RESERVE};
use crate::pool::Checkout;
use crate::protocol::lsn::LsnText;
use crate::protocol::{build, frame, from_server};
use crate::route::{RequestClass, Route};
use crate::server::conn::BatchEnd;
use crate::session::misroute::{self, Verdict};
use crate::session::request::{self, Taken};
use crate::session::ClientError;

/// What the relay does with the client's side meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intake {
    /// Reads what the client pipelines and forwards it.
    Reading,
    /// A pipelined request must be routed on its own: it waits in the read buffer for its turn.
    Deferred,
    /// The client sent Terminate: the replies owed are relayed, then the session ends.
    Terminated,
}

/// What a relay holds replies back for, until they show the request ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Guard {
    /// A write refused as read-only (25006) is run again on the primary.
    pub misroute: bool,
    /// A reused statement refused for its changed result type is prepared again and rerun.
    pub stale_plan: bool,
}

impl Guard {
    /// Nothing is held back.
    pub const NONE: Guard = Guard { misroute: false, stale_plan: false };
}

/// Where the replies of a relay stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replies {
    /// More are owed, or the client's pipeline is still open: the outbox goes to the client now.
    Waiting,
    /// Everything owed arrived: the outbox goes to the client once the connection is released.
    Last,
    /// A replica refused the request as a write before anything reached the client.
    Misrouted,
    /// A reused statement was refused for its changed result type before anything ran.
    StalePlan,
}

impl Session {
    /// Forwards server replies to the client, and further client messages to the server, until
    /// every reply owed has arrived and no pipeline is open. Under a `guard`, replies are held
    /// back until they show the request ran, so a misrouted write can still go to the primary,
    /// and a statement refused for a changed result type can be prepared again.
    ///
    /// Not an `async fn`, so its arguments are not kept twice in every request's future.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps each argument twice in its future")]
    pub(super) fn relay(
        &mut self,
        mut server: Checkout,
        route: Route,
        guard: Guard,
    ) -> impl Future<Output = Result<Relayed, ClientError>> + '_ {
        async move {
            let max = self.config.settings.limits.max_message_size;
            let mut withheld: Option<Withheld> = (guard != Guard::NONE).then(Withheld::new);
            let mut intake = Intake::Reading;
            // Filled by each pass over the replies and sent at once: one outbox for the relay, so
            // the request's future holds one, not one in each state that sends.
            let mut out = Outbox::default();
            loop {
                match self.forward_replies(&mut server, &mut withheld, guard, &mut out)? {
                    Replies::Misrouted => {
                        drain(&mut server).await?;
                        self.cancel.set_target(None);
                        return Ok(Relayed::Refused(server.pool().key().clone()));
                    }
                    Replies::StalePlan => {
                        drain(&mut server).await?;
                        return Ok(Relayed::StalePlan(server));
                    }
                    Replies::Last => {
                        // Released before the client sees the reply, so the next client gets it sooner.
                        self.end_request(server);
                        out.send(&mut self.client).await?;
                        return Ok(Relayed::Done);
                    }
                    Replies::Waiting => out.send(&mut self.client).await?,
                }
                if intake == Intake::Terminated && server.awaits_client() {
                    // The client left a pipeline without a Sync (the server may never flush its
                    // replies) or a COPY unfinished. Dropping the connection rolls that back, as
                    // PostgreSQL does when its client leaves; what was synced before still runs.
                    return Err(ClientError::Gone);
                }
                // While the misroute guard holds replies back, the client's next messages wait: if
                // the request goes to the primary, what follows it must too.
                let reading = intake == Intake::Reading && withheld.is_none();
                if reading && server.awaits_client() && !self.client_in.is_empty() {
                    // The server waits for what the client already sent (the rest of an open
                    // pipeline, COPY data): no read will bring it again.
                    let before = self.client_in.len();
                    intake = Box::pin(self.forward_pipelined(&mut server, route, max)).await?;
                    if intake != Intake::Reading || self.client_in.len() != before {
                        continue;
                    }
                }
                // Not reading for the pipeline (a request deferred, replies held back), the client is
                // still watched: one that leaves must not keep the connection while the server waits
                // for a Sync that will never come (after an error PostgreSQL ignores even a Query
                // until Sync, so a ReadyForQuery owed for it never arrives). What it sends meanwhile
                // waits in the buffer for its turn, up to one request's bound.
                let watching =
                    !reading && intake != Intake::Terminated && self.client_in.len() < request::MAX_BUFFERED_REQUEST;
                tokio::select! {
                    biased;
                    // Replies: forwarded at the top of the loop.
                    read = server.read_more() => {
                        if let Err(e) = read {
                            // Boxed: rare, and holding the error across the send would size
                            // every request's future.
                            return Err(Box::pin(self.server_lost(e)).await);
                        }
                    }
                    // While replies are owed the client may pipeline more, or stream COPY data.
                    read = self.client.read_when_ready(&mut self.client_in, READ_RESERVE), if reading || watching => {
                        if read? == 0 {
                            return Err(ClientError::Gone);
                        }
                        if reading {
                            intake = Box::pin(self.forward_pipelined(&mut server, route, max)).await?;
                        }
                    }
                }
            }
        }
    }

    /// Takes the replies read so far for the client, withheld while the misroute guard is
    /// undecided; the ReadyForQuery before the LSN probe's replies waits for them. Nothing owed
    /// and no pipeline open ends the relay, whatever arrived when. Not async: the relay sends
    /// what it returns, so every request's future holds one send, not one inside another.
    fn forward_replies(
        &mut self,
        server: &mut Checkout,
        withheld: &mut Option<Withheld>,
        guard: Guard,
        outbox: &mut Outbox,
    ) -> Result<Replies, ClientError> {
        // What one pass takes goes out in one write: pgsplit's own answers (a ParseComplete for a
        // reused statement) and the server's replies do not cost a send each.
        while let Some((batch, end)) = server.take_batch()? {
            tracing::trace!(tags = %frame::tags(&batch), end = end.name(), "to client");
            if let Some(pieces) = withheld.as_mut() {
                match misroute::judge(&batch) {
                    Verdict::Misrouted if guard.misroute => return Ok(Replies::Misrouted),
                    Verdict::StalePlan if guard.stale_plan => return Ok(Replies::StalePlan),
                    Verdict::Undecided if end == BatchEnd::More => {
                        pieces.push(batch);
                        continue;
                    }
                    _ => outbox.extend(withheld.take()),
                }
            }
            let batch = match end {
                BatchEnd::More => batch,
                BatchEnd::Ready if server.probe_next() => {
                    // Hold the ReadyForQuery back: the write's LSN goes out before it.
                    let split = batch.len() - from_server::READY_FOR_QUERY_LEN;
                    self.ready_after_probe = Some(batch.slice(split..));
                    batch.slice(..split)
                }
                BatchEnd::Ready => batch,
                BatchEnd::Probe(lsn) => self.after_probe(lsn),
                BatchEnd::RolledBack => {
                    self.routing.probe_rolled_back();
                    self.ready_after_probe.take().unwrap_or_default()
                }
            };
            outbox.push(batch);
            if end != BatchEnd::More && server.settled() && !server.in_pipeline() {
                return Ok(Replies::Last);
            }
        }
        if server.settled() && !server.in_pipeline() {
            outbox.extend(withheld.take());
            return Ok(Replies::Last);
        }
        if let Some(ready) = self.ready_after_probe.take() {
            // The commit's replies wait with its ReadyForQuery for the probe's answer, which the
            // server sends right after them: one write to the client instead of two, and a
            // client that never sees a CommandComplete alone waits without waking for it.
            self.ready_after_probe = Some(before_ready(ready, outbox.take()));
        }
        Ok(Replies::Waiting)
    }

    /// The server connection failed mid-request: the replies held for the LSN probe's answer
    /// go out first, so the client learns its commit's outcome as it would have without the
    /// probe; then the failure is the client's error.
    async fn server_lost(&mut self, e: crate::server::ReadError) -> ClientError {
        self.send_held_replies().await;
        e.into()
    }

    /// Sends the replies held for the LSN probe's answer, if any.
    async fn send_held_replies(&mut self) {
        let Some(held) = self.ready_after_probe.take() else { return };
        let replies = &held[..held.len().saturating_sub(from_server::READY_FOR_QUERY_LEN)];
        if !replies.is_empty() {
            // Best effort: the connection's error is what the client is told next.
            let _ = self.client.send(replies).await;
        }
    }

    /// Forwards the whole messages the client pipelined, unless they must wait for their own turn:
    /// a write or a transaction behind a read on a replica, a request sent while only the LSN
    /// probe is owed, or a request the session itself must look at first (pins, DISCARD ALL,
    /// DEALLOCATE of a protocol-level statement).
    async fn forward_pipelined(
        &mut self,
        server: &mut Checkout,
        route: Route,
        max: usize,
    ) -> Result<Intake, ClientError> {
        let b = match request::take(&mut self.client_in, max, false)? {
            Taken::Batch(b) => b,
            Taken::Terminate => return Ok(Intake::Terminated),
            Taken::NeedMore => return Ok(Intake::Reading),
        };
        let inspection = self.routing.inspect(&self.config.classifier, &b.bytes, false, &self.prepared);
        let elsewhere = route != Route::Primary && !matches!(self.routing.class_of(&inspection), RequestClass::Read);
        // A simple Query ends a Flush-opened pipeline on the server anyway; a write (asyncpg's
        // COPY after its column lookup) leaves the replica once pgsplit's own Sync closes it.
        // Extended messages after a Flush must stay: the pipeline lives on this connection.
        if elsewhere && server.in_pipeline() && b.bytes.first() == Some(&b'Q') && b.summary.readies == 1 {
            server.close_pipeline().await?;
        }
        // Once only pgsplit's LSN probe is owed, the client's request is answered (but for its
        // ReadyForQuery): what the client sends now is a request of its own, routed and guarded
        // as one, not a tail of this one.
        let own_turn = elsewhere || server.probe_next() || self.needs_own_turn(&b, &inspection);
        if own_turn && !server.in_pipeline() {
            let mut back = BytesMut::with_capacity(b.bytes.len() + self.client_in.len());
            back.extend_from_slice(&b.bytes);
            back.extend_from_slice(&self.client_in);
            self.client_in = back;
            return Ok(Intake::Deferred);
        }
        if inspection.writes() {
            self.routing.wrote();
        }
        self.tx.note(&inspection);
        self.send_request(server, &b.bytes, b.summary.pipeline, &inspection.parsed).await?;
        Ok(Intake::Reading)
    }

    /// Whether pipelined messages hold something [`Session::serve`] handles before sending: a
    /// statement that pins the session, DISCARD ALL, or a DEALLOCATE pgsplit answers itself.
    fn needs_own_turn(&self, b: &request::Batch, inspection: &crate::session::routing::Inspection) -> bool {
        let pins = self.mode == crate::config::PoolMode::Transaction
            && inspection.statements.iter().any(|c| !c.pins.is_empty());
        pins || inspection.discards_all() || super::answer::is_deallocate(&b.bytes, inspection)
    }

    /// Records the LSN a commit reached and returns what the client gets now: ParameterStatus
    /// `pgsplit.write_lsn` (after a commit) and the held-back ReadyForQuery.
    fn after_probe(&mut self, lsn: Option<u64>) -> Bytes {
        let held = self.ready_after_probe.take().unwrap_or_default();
        let split = held.len().saturating_sub(from_server::READY_FOR_QUERY_LEN);
        let (replies, ready) = held.split_at(split);
        let committed = ready.get(5..).and_then(from_server::ready_status) == Some(b'I');
        let mut out = BytesMut::with_capacity(64 + replies.len());
        out.extend_from_slice(replies);
        if let Some(lsn) = self.routing.probe_answered(lsn, committed) {
            // The probe ran on the elected primary: its LSN is of the newest timeline.
            let timeline = self.nodes.topology.as_ref().map(|t| t.current().election.max_timeline);
            self.routing.write_timeline = timeline.filter(|t| *t > 0);
            build::parameter_status(&mut out, "pgsplit.write_lsn", LsnText::new(lsn).as_str());
        }
        out.extend_from_slice(ready);
        out.freeze()
    }
}

/// Discards the replies of a request refused before it ran, until the connection owes nothing.
async fn drain(server: &mut Checkout) -> Result<(), ClientError> {
    loop {
        while server.take_batch()?.is_some() {}
        if server.settled() {
            return Ok(());
        }
        server.read_more().await?;
    }
}

/// `held` (replies, then the held ReadyForQuery) with `more` replies put before its
/// ReadyForQuery.
fn before_ready(held: Bytes, more: Bytes) -> Bytes {
    if more.is_empty() {
        return held;
    }
    let split = held.len().saturating_sub(from_server::READY_FOR_QUERY_LEN);
    let mut joined = BytesMut::with_capacity(held.len() + more.len());
    joined.extend_from_slice(&held[..split]);
    joined.extend_from_slice(&more);
    joined.extend_from_slice(&held[split..]);
    joined.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &[u8] = b"Z\0\0\0\x05I";

    #[test]
    fn replies_held_for_the_probe_stay_before_the_ready_for_query_in_order() {
        let held = before_ready(Bytes::from_static(READY), Bytes::new());
        assert_eq!(&held[..], READY, "nothing to add leaves the held ReadyForQuery alone");
        let held = before_ready(held, Bytes::from_static(b"C-commit"));
        let held = before_ready(held, Bytes::from_static(b"N-notice"));
        assert_eq!(&held[..], [&b"C-commitN-notice"[..], READY].concat());
    }
}
