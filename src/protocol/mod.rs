//! The PostgreSQL wire protocol as pgsplit needs it: framing, the few messages it inspects, and the
//! messages it sends itself. No I/O lives here.

pub(crate) mod build;
pub mod frame;
pub(crate) mod from_client;
pub(crate) mod from_server;
pub(crate) mod lsn;
pub(crate) mod sqlstate;
pub(crate) mod startup;

pub use frame::{Frame, FrameError};

/// Where the first NUL of `bytes` is: the end of a string field. An empty name (the unnamed
/// statement and portal most drivers use) ends at once; anything longer, a statement's text
/// above all, is searched with vector instructions rather than a byte at a time.
pub(crate) fn nul_at(bytes: &[u8]) -> Option<usize> {
    match bytes.first() {
        Some(0) => Some(0),
        _ => memchr::memchr(0, bytes),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nul_at_finds_the_first_nul_or_none() {
        assert_eq!(super::nul_at(b""), None);
        assert_eq!(super::nul_at(b"\0abc\0"), Some(0));
        assert_eq!(super::nul_at(b"S_1\0x\0"), Some(3));
        let text = [b"SELECT abalance FROM pgbench_accounts WHERE aid = $1".as_slice(), b"\0\0"].concat();
        assert_eq!(super::nul_at(&text), Some(52));
        assert_eq!(super::nul_at(b"no end"), None);
    }
}
