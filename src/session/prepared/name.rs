//! The server-side name of a statement, `pgsplit_N`, built on the stack: it is spelled into
//! every rewritten Bind, so it must not cost an allocation each time.

use std::io::Write;

/// `pgsplit_` and up to 20 digits.
pub struct ServerName {
    buf: [u8; 28],
    len: usize,
}

impl ServerName {
    /// The name of statement `id`.
    pub fn of(id: u64) -> Self {
        let mut buf = [0u8; 28];
        let mut cursor = &mut buf[..];
        // 8 bytes of prefix and at most 20 digits fit the 28 bytes, so the write cannot fail.
        let _ = write!(cursor, "pgsplit_{id}");
        let len = 28 - cursor.len();
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
        assert_eq!(ServerName::of(7).as_bytes(), b"pgsplit_7");
        assert_eq!(ServerName::of(u64::MAX).as_bytes(), format!("pgsplit_{}", u64::MAX).as_bytes());
    }
}
