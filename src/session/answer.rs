//! What the session answers itself, without a server: Syncs and Flushes with nothing pending,
//! DEALLOCATE of protocol-level statements (the server knows them under pgsplit's names), a
//! plain BEGIN (sent with the transaction's first statement), a request no server could take,
//! and what is discarded up to the next Sync after one.

use bytes::BytesMut;

use super::request::{Batch, Summary};
use super::routing::Inspection;
use super::{logging, ClientError, Session};
use crate::classify::Deallocation;
use crate::config::PoolMode;
use crate::protocol::build::{self, Severity};
use crate::protocol::from_client;
use crate::protocol::sqlstate;
use crate::route::RequestClass;

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

    /// Answers a plain `BEGIN` itself when the client holds no connection: the server gets it in
    /// front of the transaction's first statement, in the same write. The transaction costs
    /// the server one round trip less, and holds no connection until it has work. Only a lone
    /// simple Query with nothing behind it, of a read-write transaction (the primary's), whose
    /// form cannot fail on an idle connection. `true` when the BEGIN was answered.
    pub(super) async fn begin_here(&mut self, batch: &Batch, inspection: &Inspection) -> Result<bool, ClientError> {
        let deferrable = self.mode == PoolMode::Transaction
            && self.server.is_none()
            && !self.begin_owed
            && self.client_in.is_empty()
            && is_plain_begin(&batch.bytes)
            && self.routing.class_of(inspection) == RequestClass::Transaction;
        if !deferrable {
            return Ok(false);
        }
        self.begin_owed = true;
        let mut out = BytesMut::with_capacity(32);
        build::command_complete(&mut out, "BEGIN");
        build::ready_for_query(&mut out, b'T');
        self.client.send(&out).await?;
        Ok(true)
    }

    /// The transaction status the client is in while no connection is held: in a transaction
    /// once pgsplit answered its BEGIN.
    fn status_unheld(&self) -> u8 {
        if self.begin_owed {
            b'T'
        } else {
            b'I'
        }
    }

    /// Answers `DEALLOCATE` of protocol-level statements itself: the server knows them under
    /// pgsplit's names, shared with other clients. The classification says whether the request
    /// is one, so its text is not read again. `true` when the request was answered.
    pub(super) async fn deallocate(&mut self, batch: &Batch, inspection: &Inspection) -> Result<bool, ClientError> {
        let Some(target) = deallocate_target(&batch.bytes, inspection) else { return Ok(false) };
        let status = self.server.as_ref().map_or(self.status_unheld(), |s| s.status());
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
            build::ready_for_query(&mut out, self.status_unheld());
        }
        self.client.send(&out).await?;
        Ok(true)
    }

    /// Answers a request no server could take: an error, then ReadyForQuery if the request
    /// ended in one; after a Flush-ended request, messages are dropped until the next Sync.
    pub(super) async fn refuse(&mut self, e: ClientError, summary: Summary) -> Result<(), ClientError> {
        self.span().in_scope(|| logging::request_refused(&e));
        // A transaction whose BEGIN pgsplit answered ends with the refusal: nothing of it ran.
        self.begin_owed = false;
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

/// Whether a request is one simple Query of a plain `BEGIN`, `BEGIN WORK`, `BEGIN TRANSACTION`
/// or `START TRANSACTION` (any case and spacing, one `;` at most): forms that take no option a
/// server could refuse, and whose CommandComplete is `BEGIN`.
fn is_plain_begin(bytes: &[u8]) -> bool {
    let Some((_, mut words)) = from_client::lone_query_words(bytes) else { return false };
    let is = from_client::is_word;
    let (first, second, third) = (words.next(), words.next(), words.next());
    let begin = is(first, b"begin") && (second.is_none() || is(second, b"work") || is(second, b"transaction"));
    let start = is(first, b"start") && is(second, b"transaction");
    (begin || start) && third.is_none()
}

/// Whether a request is one `DEALLOCATE` Query.
pub(super) fn is_deallocate(bytes: &[u8], inspection: &Inspection) -> bool {
    deallocate_target(bytes, inspection).is_some()
}

#[cfg(test)]
mod tests {
    use super::is_plain_begin;
    use crate::protocol::build;

    fn query(sql: &str) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        build::query(&mut out, sql);
        out.to_vec()
    }

    #[test]
    fn only_begins_that_cannot_fail_are_plain() {
        for sql in ["BEGIN", "begin;", "  Begin  Work ; ", "BEGIN TRANSACTION", "start\ntransaction;"] {
            assert!(is_plain_begin(&query(sql)), "{sql:?}");
        }
        for sql in [
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            "BEGIN READ ONLY",
            "START TRANSACTION READ WRITE",
            "BEGIN; SELECT 1",
            "BEGIN;;",
            "/* c */ BEGIN",
            "BEGINNING",
            "START",
            "COMMIT",
            "",
        ] {
            assert!(!is_plain_begin(&query(sql)), "{sql:?}");
        }
        let two = [query("BEGIN"), query("SELECT 1")].concat();
        assert!(!is_plain_begin(&two), "a Query with another behind it");
    }
}
