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
    LsnText::new(lsn).as_str().to_owned()
}

/// A WAL position as `pg_lsn` text (`16/B374D848`), on the stack: written after every commit
/// that read-your-writes follows, where `format!` cost more than the rest of the reply.
pub struct LsnText {
    bytes: [u8; 17],
    len: usize,
}

impl LsnText {
    /// The text of `lsn`: each half in upper-case hex without leading zeros.
    pub fn new(lsn: u64) -> Self {
        let mut text = LsnText { bytes: [0; 17], len: 0 };
        text.push_half((lsn >> 32) as u32);
        text.bytes[text.len] = b'/';
        text.len += 1;
        text.push_half(lsn as u32);
        text
    }

    fn push_half(&mut self, half: u32) {
        let digits = (8 - half.leading_zeros() as usize / 4).max(1);
        for i in (0..digits).rev() {
            self.bytes[self.len] = b"0123456789ABCDEF"[(half >> (4 * i)) as usize & 0xf];
            self.len += 1;
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and '/' were written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_as_postgres_writes_it() {
        for lsn in [0, 1, 0xF, 0x10, 0x16_B374_D848, 0xFFFF_FFFF, 0x1_0000_0000, u64::MAX, 0xA_0000_000B] {
            assert_eq!(format_lsn(lsn), format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff));
        }
    }

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
