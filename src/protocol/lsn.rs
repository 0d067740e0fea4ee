//! WAL positions as text (`16/B374D848`) and as 64-bit numbers.

/// Parses a `pg_lsn` text into its 64-bit position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
        return None;
    }
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Formats a 64-bit WAL position as `pg_lsn` text.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(format_lsn((0x16 << 32) | 0xB374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        for bad in ["nope", "1/xyz", "/1", "1/", "123456789/0"] {
            assert_eq!(parse_lsn(bad), None, "{bad}");
        }
    }
}
