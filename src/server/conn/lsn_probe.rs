//! The LSN probe: a query pgsplit appends to a request that may commit a write, in the same
//! write, so the session learns its write LSN in the same round trip.

use super::ServerConn;
use crate::protocol::lsn::parse_lsn;
use crate::server::expect::{Fate, Kind};
use crate::server::outgoing::Outgoing;

/// The probe, a simple Query: the insert position is never behind the commit record just written.
const LSN_PROBE: &[u8] = b"Q\0\0\0\x27SELECT pg_current_wal_insert_lsn()\0";

impl ServerConn {
    /// Appends the probe to `out`, expecting its replies (swallowed) after everything before it.
    pub(super) fn append_lsn_probe(&mut self, out: &mut Outgoing) {
        self.owed.push(Kind::Probe, Fate::Swallow, None);
        out.bytes.extend_from_slice(LSN_PROBE);
    }
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
    fn probe_row() {
        let mut body = 1i16.to_be_bytes().to_vec();
        body.extend_from_slice(&9i32.to_be_bytes());
        body.extend_from_slice(b"0/16B3748");
        assert_eq!(row_lsn(&body), Some(0x16B3748));
        assert_eq!(row_lsn(&[0, 1, 255, 255, 255, 255]), None, "NULL");
        assert_eq!(row_lsn(&[0, 1, 0, 0, 0, 9, b'x']), None, "truncated");
    }
}
