//! WAL positions as text (`16/B374D848`) and as 64-bit numbers.

/// Parses a `pg_lsn` text into its 64-bit position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let half = |s: &str| {
        let ok = (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| u32::from_str_radix(s, 16).ok()).flatten()
    };
    Some((u64::from(half(high)?) << 32) | u64::from(half(low)?))
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
        for bad in ["nope", "1/xyz", "/1", "1/", "123456789/0", "+1/2"] {
            assert_eq!(parse_lsn(bad), None, "{bad}");
        }
    }
}
