//! Relaying one request: server replies to the client (held back where pgsplit must first know
//! more), and messages the client pipelines meanwhile to the server.

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::{Relayed, Session, READ_RESERVE};
use crate::classify::format_lsn;
use crate::client::misroute::{self, Verdict};
use crate::client::request::{self, Taken};
use crate::client::ClientError;
use crate::pool::Checkout;
use crate::protocol::build;
use crate::route::{RequestClass, Route};
use crate::server::conn::BatchEnd;

impl Session {
    /// Forwards server replies to the client, and further client messages to the server, until
    /// every reply owed has arrived and no pipeline is open. With `guarded`, replies are held
    /// back until they show the request ran, so a misrouted write can still go to the primary.
    pub(super) async fn relay(
        &mut self,
        mut server: Checkout,
        route: Route,
        guarded: bool,
    ) -> Result<Relayed, ClientError> {
        let max = self.nodes.config.settings.limits.max_message_size;
        let mut held: Option<Vec<Bytes>> = guarded.then(Vec::new);
        // A pipelined request the current node must not run waits in `cbuf` for its own turn.
        let mut paused = false;
        loop {
            while let Some((batch, end)) = server.take_batch()? {
                tracing::trace!(tags = %crate::server::conn::messages(&batch).map(|(t, _)| t as char).collect::<String>(), ?end, "to client");
                if let Some(pieces) = held.as_mut() {
                    match misroute::judge(&batch) {
                        Verdict::Misrouted => return self.drain_misrouted(server).await,
                        Verdict::Undecided if end == BatchEnd::More => {
                            pieces.push(batch);
                            continue;
                        }
                        _ => {
                            for piece in held.take().unwrap_or_default() {
                                self.client.send(&piece).await?;
                            }
                        }
                    }
                }
                let batch = match end {
                    BatchEnd::More => batch,
                    BatchEnd::Ready if server.probe_next() => {
                        // Hold the ReadyForQuery back: the write's LSN goes out before it.
                        let split = batch.len() - 6;
                        self.held_ready = Some(batch.slice(split..));
                        batch.slice(..split)
                    }
                    BatchEnd::Ready => batch,
                    BatchEnd::Probe(lsn) => self.after_probe(lsn),
                };
                if end != BatchEnd::More && server.settled() && !server.unsynced {
                    self.end_request(server);
                    self.client.send(&batch).await?;
                    return Ok(Relayed::Done);
                }
                self.client.send(&batch).await?;
            }
            self.cbuf.reserve(READ_RESERVE);
            tokio::select! {
                // Replies: forwarded at the top of the loop.
                read = server.read_more() => read?,
                // While replies are owed the client may pipeline more, or stream COPY data.
                read = self.client.read_buf(&mut self.cbuf), if !paused => {
                    if read? == 0 {
                        return Err(ClientError::Gone);
                    }
                    paused = self.forward_pipelined(&mut server, route, max).await?;
                }
            }
        }
    }

    /// Forwards whole messages the client pipelined; `true` when one must wait for its own
    /// routing (a write or a transaction behind a read on a replica).
    async fn forward_pipelined(
        &mut self,
        server: &mut Checkout,
        route: Route,
        max: usize,
    ) -> Result<bool, ClientError> {
        let b = match request::take(&mut self.cbuf, max, false)? {
            Taken::Batch(b) => b,
            Taken::Terminate => return Err(ClientError::Gone),
            Taken::NeedMore => return Ok(false),
        };
        let found = self.routing.inspect(&self.ctx.classifier.load(), &b.bytes, false);
        let elsewhere = route != Route::Primary
            && !matches!(self.routing.class_of(&found), RequestClass::Read)
            && self.held.is_none();
        // A simple Query ends a Flush-opened pipeline on the server anyway; a write (asyncpg's
        // COPY after its column lookup) leaves the replica once pgsplit's own Sync closes it.
        // Extended messages after a Flush must stay: the pipeline lives on this connection.
        if elsewhere && server.unsynced && b.bytes.first() == Some(&b'Q') && b.summary.readies == 1 {
            server.close_pipeline().await?;
        }
        if elsewhere && !server.unsynced {
            let mut back = BytesMut::with_capacity(b.bytes.len() + self.cbuf.len());
            back.extend_from_slice(&b.bytes);
            back.extend_from_slice(&self.cbuf);
            self.cbuf = back;
            return Ok(true);
        }
        if found.writes() {
            self.routing.wrote();
        }
        self.note_session_changes(&found);
        self.send_request(server, &b.bytes, b.summary.unsynced).await?;
        Ok(false)
    }

    /// Discards a misrouted request's replies and returns the replica connection, clean.
    async fn drain_misrouted(&mut self, mut server: Checkout) -> Result<Relayed, ClientError> {
        loop {
            while server.take_batch()?.is_some() {}
            if server.settled() {
                break;
            }
            server.read_more().await?;
        }
        self.cancel.set_target(None);
        drop(server);
        Ok(Relayed::Misrouted)
    }

    /// Records the LSN a commit reached and returns what the client gets now: ParameterStatus
    /// `pgsplit.write_lsn` (after a commit) and the held-back ReadyForQuery.
    fn after_probe(&mut self, lsn: Option<u64>) -> Bytes {
        let ready = self.held_ready.take().unwrap_or_default();
        let committed = ready.get(5) == Some(&b'I');
        let mut out = BytesMut::with_capacity(64);
        if let Some(lsn) = self.routing.probe_answered(lsn, committed) {
            build::parameter_status(&mut out, "pgsplit.write_lsn", &format_lsn(lsn));
        }
        out.extend_from_slice(&ready);
        out.freeze()
    }
}
