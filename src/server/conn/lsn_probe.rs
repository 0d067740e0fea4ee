//! The LSN probe: a query pgsplit appends to a request that may commit a write, in the same
//! write, so the session learns its write LSN in the same round trip.
//!
//! A plain COMMIT sent alone as a simple Query carries the probe in its own text instead
//! (`COMMIT;SELECT pg_current_wal_insert_lsn()`): the server then answers both with one
//! ReadyForQuery and one send, where a second Query costs it another cycle and flush, and
//! pgsplit another read. That is what a TPC-B transaction ends with.

use bytes::BufMut;

use super::ServerConn;
use crate::protocol::from_client;
use crate::protocol::lsn::parse_lsn;
use crate::server::expect::{Fate, Kind};
use crate::server::outgoing::Outgoing;

/// The probe's statement: the insert position is never behind the commit record just written.
const PROBE_SQL: &[u8] = b"SELECT pg_current_wal_insert_lsn()";

/// The probe as a simple Query of its own.
const LSN_PROBE: &[u8] = b"Q\0\0\0\x27SELECT pg_current_wal_insert_lsn()\0";

impl ServerConn {
    /// Appends the probe to `out`, expecting its replies (swallowed) after everything before it.
    pub(super) fn append_lsn_probe(&mut self, out: &mut Outgoing) {
        self.owed.push(Kind::Probe, Fate::Swallow, None);
        out.bytes.extend_from_slice(LSN_PROBE);
    }

    /// Appends `request` to `out` with the probe folded into it, if it is a plain commit sent
    /// alone; `false` leaves both untouched.
    pub(super) fn fold_lsn_probe(&mut self, out: &mut Outgoing, request: &[u8]) -> bool {
        let Some(sql) = plain_commit(request) else { return false };
        self.owed.push(Kind::FoldedCommit, Fate::Forward, None);
        self.owed.push(Kind::FoldedProbe { commit_failed: false, answered: false }, Fate::Swallow, None);
        let len = 4 + sql.len() + 1 + PROBE_SQL.len() + 1;
        out.bytes.put_u8(from_client::QUERY);
        out.bytes.put_u32(len as u32);
        out.bytes.put_slice(sql);
        out.bytes.put_u8(b';');
        out.bytes.put_slice(PROBE_SQL);
        out.bytes.put_u8(0);
        true
    }
}

/// The SQL text of a request that is one simple Query of a plain `COMMIT` or `END`, optionally
/// with `WORK` or `TRANSACTION` (any case and spacing, one `;` at most). Its replies are known:
/// a CommandComplete or an ErrorResponse (notices aside), then the ReadyForQuery; so the probe's
/// replies behind it are told apart without counting statements. `COMMIT AND CHAIN` would run the
/// probe inside the next transaction: it takes the probe of its own.
fn plain_commit(request: &[u8]) -> Option<&[u8]> {
    let (sql, mut words) = from_client::lone_query_words(request)?;
    let is = from_client::is_word;
    let (first, second, third) = (words.next(), words.next(), words.next());
    let commit = is(first, b"commit") || is(first, b"end");
    let plain = second.is_none() || is(second, b"work") || is(second, b"transaction");
    (commit && plain && third.is_none()).then_some(sql)
}

/// The LSN in the probe's DataRow (one text column), if well formed.
pub(super) fn row_lsn(body: &[u8]) -> Option<u64> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let text = body.get(6..6 + usize::try_from(len).ok()?)?;
    parse_lsn(std::str::from_utf8(text).ok()?)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::protocol::frame;

    #[test]
    fn probe_is_one_well_formed_query() {
        let mut buf = BytesMut::from(LSN_PROBE);
        let frame = frame::split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(frame.tag, b'Q');
        assert_eq!(frame.body(), b"SELECT pg_current_wal_insert_lsn()\0");
        assert!(buf.is_empty());
    }

    #[test]
    fn only_a_plain_commit_alone_carries_the_probe() {
        let query = |sql: &str| {
            let mut q = vec![b'Q'];
            q.extend_from_slice(&(sql.len() as u32 + 5).to_be_bytes());
            q.extend_from_slice(sql.as_bytes());
            q.push(0);
            q
        };
        for sql in ["COMMIT", "commit;", " End Work ; ", "COMMIT TRANSACTION", "end\ntransaction"] {
            assert_eq!(plain_commit(&query(sql)), Some(sql.as_bytes()), "{sql:?}");
        }
        for sql in ["COMMIT AND CHAIN", "COMMIT PREPARED 'x'", "ROLLBACK", "commit; select 1", "/* c */ COMMIT", ""] {
            assert_eq!(plain_commit(&query(sql)), None, "{sql:?}");
        }
        let mut two = query("COMMIT");
        two.extend_from_slice(&query("SELECT 1"));
        assert_eq!(plain_commit(&two), None, "a Query with another behind it");
    }

    #[test]
    fn probe_row() {
        let mut body = 1i16.to_be_bytes().to_vec();
        body.extend_from_slice(&9i32.to_be_bytes());
        body.extend_from_slice(b"0/16B3748");
        assert_eq!(row_lsn(&body), Some(0x16B3748));
        assert_eq!(row_lsn(&[0, 1, 255, 255, 255, 255]), None, "NULL");
        assert_eq!(row_lsn(&[0, 1, 0, 0, 0, 9, b'x']), None, "truncated");
    }
}
