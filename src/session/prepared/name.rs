//! The server-side name of a statement, `pgsplit_N`, built on the stack: it is spelled into
//! every rewritten Bind, so it must not cost an allocation each time.

/// `pgsplit_` and up to 20 digits.
pub struct ServerName {
    buf: [u8; 28],
    len: usize,
}

impl ServerName {
    /// The name of statement `id`.
    /// Digits are written by hand: `write!` costs more than the rest of a Bind's rewrite.
    pub fn of(id: u64) -> Self {
        const PREFIX: &[u8] = b"pgsplit_";
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = id;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut buf = [0u8; 28];
        buf[..PREFIX.len()].copy_from_slice(PREFIX);
        let len = PREFIX.len() + digits.len() - at;
        buf[PREFIX.len()..len].copy_from_slice(&digits[at..]);
        ServerName { buf, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(ServerName::of(0).as_bytes(), b"pgsplit_0");
        assert_eq!(ServerName::of(7).as_bytes(), b"pgsplit_7");
        assert_eq!(ServerName::of(1234567890).as_bytes(), b"pgsplit_1234567890");
        assert_eq!(ServerName::of(u64::MAX).as_bytes(), format!("pgsplit_{}", u64::MAX).as_bytes());
    }
}
