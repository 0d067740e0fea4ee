//! Where a WAL position really is. `pg_current_wal_insert_lsn()`, which a write's LSN comes from,
//! points just past the next page's header when the last record ended exactly at a page
//! boundary; a standby's replay position stops at the page start, and passes the header only
//! when more WAL comes (on a quiet primary, the next running-transactions record ~15 s later).
//! A read waiting for such a position would wait for nothing: it means the page start.

/// A page header's size: the long one on a segment's first page, the short one on the others.
const SHORT_HEADER: u64 = 24;
const LONG_HEADER: u64 = 40;

/// A cluster's WAL page and segment sizes (`wal_block_size`, `wal_segment_size`): the same on
/// every node streaming from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalPages {
    block: u64,
    segment: u64,
}

impl WalPages {
    /// The sizes a node reports; `None` unless both are powers of two and a segment is a whole
    /// number of pages, as PostgreSQL requires: a position is lowered only when its page is known.
    pub fn new(block: i64, segment: i64) -> Option<WalPages> {
        let (block, segment) = (u64::try_from(block).ok()?, u64::try_from(segment).ok()?);
        let sane = block.is_power_of_two() && segment.is_power_of_two() && block > LONG_HEADER && segment >= block;
        sane.then_some(WalPages { block, segment })
    }

    /// The replay position that covers every record before `lsn`: `lsn` itself, unless it sits
    /// right after a page header, where no record can end (a header holds no record data, so
    /// the insert position is there only when the last record ended at the page start).
    pub fn record_end(self, lsn: u64) -> u64 {
        let header = if lsn % self.segment < self.block { LONG_HEADER } else { SHORT_HEADER };
        if lsn % self.block == header {
            lsn - header
        } else {
            lsn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGES: WalPages = WalPages { block: 8192, segment: 16 << 20 };

    #[test]
    fn a_position_just_past_a_page_header_means_the_page_start() {
        // Seen on PostgreSQL 15: the insert LSN 0/3C8BA018 while a caught-up standby replayed to 0/3C8BA000.
        assert_eq!(PAGES.record_end(0x3C8B_A018), 0x3C8B_A000);
        // A segment's first page has the long header.
        assert_eq!(PAGES.record_end(0x3D00_0028), 0x3D00_0000);
        assert_eq!(PAGES.record_end((5 << 32) | 0x28), 5 << 32);
    }

    #[test]
    fn every_other_position_is_kept() {
        // Within a page, and on a page boundary itself.
        for lsn in [0x3C8B_A000, 0x3C8B_A020, 0x3C8B_A1F8, 0x3C8B_BFF8, 0x3D00_0000] {
            assert_eq!(PAGES.record_end(lsn), lsn, "{lsn:X}");
        }
        // 24 bytes into a segment's first page is inside its long header: not a short-header end.
        assert_eq!(PAGES.record_end(0x3D00_0018), 0x3D00_0018);
        // 40 bytes into another page is 16 bytes of record data after its short header.
        assert_eq!(PAGES.record_end(0x3C8B_A028), 0x3C8B_A028);
    }

    #[test]
    fn other_page_sizes_move_the_boundaries() {
        let big = WalPages::new(32768, 64 << 20).unwrap();
        // 8192 + 24 is inside a 32 KiB page: a record may end there.
        assert_eq!(big.record_end(0x3C8B_A018), 0x3C8B_A018);
        assert_eq!(big.record_end(0x3C8B_8018), 0x3C8B_8000);
    }

    #[test]
    fn sizes_postgresql_would_not_have_are_refused() {
        assert_eq!(WalPages::new(8192, 16 << 20), Some(PAGES));
        for (block, segment) in
            [(0, 16 << 20), (8192, 0), (8000, 16 << 20), (8192, 4096), (-8192, 16 << 20), (32, 1024)]
        {
            assert_eq!(WalPages::new(block, segment), None, "{block} {segment}");
        }
    }
}
