//! What the session answers itself, without a server: Syncs and Flushes with nothing pending,
//! DEALLOCATE of protocol-level statements (the server knows them under pgsplit's names), a
//! request no server could take, and what is discarded up to the next Sync after one.

use bytes::BytesMut;

use super::request::{Batch, Summary};
use super::routing::Inspection;
use super::{logging, ClientError, Session};
use crate::classify::Deallocation;
use crate::protocol::build::{self, Severity};
use crate::protocol::sqlstate;

impl Session {
    /// Answers what needs no server before the request is classified: a request while
    /// discarding up to Sync, and Syncs and Flushes with nothing pending.
    pub(super) async fn answered_here(&mut self, batch: &Batch) -> Result<bool, ClientError> {
        if self.discarding {
            self.discard(batch.summary).await?;
            return Ok(true);
        }
        Ok(batch.summary.work == 0 && self.answer_sync_or_flush(batch.summary).await?)
    }

    /// Answers `DEALLOCATE` of protocol-level statements itself: the server knows them under
    /// pgsplit's names, shared with other clients. The classification says whether the request
    /// is one, so its text is not read again. `true` when the request was answered.
    pub(super) async fn deallocate(&mut self, batch: &Batch, inspection: &Inspection) -> Result<bool, ClientError> {
        let Some(target) = deallocate_target(&batch.bytes, inspection) else { return Ok(false) };
        let status = self.server.as_ref().map_or(b'I', |s| s.status());
        let tag = match target {
            // SQL-level statements (a pinned client) live on the server: it must drop them too.
            Deallocation::All if self.tx.pinned() => return Ok(false),
            Deallocation::All => "DEALLOCATE ALL",
            Deallocation::Name(name) if self.prepared.forget(name.as_bytes()) => "DEALLOCATE",
            Deallocation::Name(_) => return Ok(false),
        };
        if status == b'E' {
            return Ok(false);
        }
        if *target == Deallocation::All {
            self.prepared.clear();
        }
        let mut out = BytesMut::with_capacity(32);
        build::command_complete(&mut out, tag);
        build::ready_for_query(&mut out, status);
        self.client.send(&out).await?;
        Ok(true)
    }

    /// Answers a request of only Syncs and Flushes that needs no server: between requests nothing
    /// is pending (a relay ends only once every reply owed has arrived and no pipeline is open),
    /// so a Flush asks for nothing, and a Sync with no server held gets ReadyForQuery `I`, as
    /// PostgreSQL answers it. `false` when a held server must answer (its transaction status).
    async fn answer_sync_or_flush(&mut self, summary: Summary) -> Result<bool, ClientError> {
        if summary.readies == 0 {
            return Ok(true);
        }
        if self.server.is_some() {
            return Ok(false);
        }
        let mut out = BytesMut::with_capacity(6 * summary.readies);
        for _ in 0..summary.readies {
            build::ready_for_query(&mut out, b'I');
        }
        self.client.send(&out).await?;
        Ok(true)
    }

    /// Answers a request no server could take: an error, then ReadyForQuery if the request
    /// ended in one; after a Flush-ended request, messages are dropped until the next Sync.
    pub(super) async fn refuse(&mut self, e: ClientError, summary: Summary) -> Result<(), ClientError> {
        self.span().in_scope(|| logging::request_refused(&e));
        let mut out = BytesMut::new();
        let code = e.sqlstate().unwrap_or(sqlstate::CONNECTION_FAILURE);
        self.ctx.counters.error(code);
        build::error(&mut out, Severity::Error, code, &e.to_string(), e.hint());
        if summary.readies > 0 {
            build::ready_for_query(&mut out, b'I');
        } else {
            self.discarding = true;
        }
        self.client.send(&out).await?;
        Ok(())
    }

    async fn discard(&mut self, summary: Summary) -> Result<(), ClientError> {
        if summary.readies > 0 {
            self.discarding = false;
            let mut out = BytesMut::new();
            build::ready_for_query(&mut out, b'I');
            self.client.send(&out).await?;
        }
        Ok(())
    }
}

/// The statement a request of one `DEALLOCATE` Query names, if it is one: the request is that
/// one Query, and its classification found the DEALLOCATE.
fn deallocate_target<'i>(bytes: &[u8], inspection: &'i Inspection) -> Option<&'i Deallocation> {
    let mut messages = crate::protocol::frame::messages(bytes);
    let (Some((b'Q', _)), None) = (messages.next(), messages.next()) else { return None };
    let [class] = &inspection.statements[..] else { return None };
    class.deallocates.as_ref()
}

/// Whether a request is one `DEALLOCATE` Query.
pub(super) fn is_deallocate(bytes: &[u8], inspection: &Inspection) -> bool {
    deallocate_target(bytes, inspection).is_some()
}
