//! Splits a byte stream into whole protocol messages (1-byte tag, 4-byte length, body) without copying.
//!
//! A frame keeps the message's original bytes, header included, so the data path forwards exactly
//! what it received and never re-encodes.

use bytes::{Bytes, BytesMut};

/// Smallest legal value of the length field: the field counts itself.
const MIN_LEN: usize = 4;

/// Largest legal value: the field is a signed 32-bit integer in PostgreSQL, so a length with the
/// top bit set is negative there and no peer can mean it, whatever `max` allows.
const MAX_LEN: usize = i32::MAX as usize;

/// One whole message, still in wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The message's tag byte; its meaning depends on the direction.
    pub tag: u8,
    /// The whole message: tag, length and body.
    pub bytes: Bytes,
}

impl Frame {
    /// The body, after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }
}

/// Why a stream could not be framed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is below 4 or above 2^31 - 1, which no message can have.
    #[error("invalid message length {len} for message type {tag:?}")]
    BadLength { tag: char, len: usize },
    /// The message declares more bytes than the configured limit allows.
    #[error("message of type {tag:?} declares {len} bytes, over the limit of {max}")]
    TooLarge { tag: char, len: usize, max: usize },
    /// A logged-in client sent a tag no client may send. The text is PostgreSQL's own
    /// (`postgres.c`), tag in decimal, so clients and log readers see what a server would say.
    #[error("invalid frontend message type {tag}")]
    UnknownClientMessage { tag: u8 },
}

/// Splits the next whole message off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed. A declared length is checked against `max` before any
/// body arrives, so a peer cannot make pgsplit buffer an oversized message.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    let Some(len) = peek_len(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < len + 1 {
        // Reserve once for the rest of a large message instead of growing step by step.
        buf.reserve(len + 1 - buf.len());
        return Ok(None);
    }
    let tag = buf[0];
    let bytes = buf.split_to(len + 1).freeze();
    Ok(Some(Frame { tag, bytes }))
}

/// How far a run of whole messages at the front of a buffer reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Bytes covered by the whole messages scanned.
    pub len: usize,
    /// Number of whole messages scanned.
    pub count: usize,
    /// Whether `inspect` stopped the scan (as opposed to running out of whole messages).
    pub stopped: bool,
}

/// Walks the whole messages at the front of `buf` without consuming them.
///
/// `inspect` sees each message's tag and bytes and stops the scan after that message by returning
/// `false`. Nothing is copied or allocated: the caller splits `len` bytes off when it is ready.
pub fn scan(buf: &[u8], max: usize, mut inspect: impl FnMut(u8, &[u8]) -> bool) -> Result<Scan, FrameError> {
    let mut scan = Scan { len: 0, count: 0, stopped: false };
    loop {
        let rest = &buf[scan.len..];
        let Some(len) = peek_len(rest, max)? else { break };
        if rest.len() < len + 1 {
            break;
        }
        scan.count += 1;
        let go_on = inspect(rest[0], &rest[..len + 1]);
        scan.len += len + 1;
        if !go_on {
            scan.stopped = true;
            break;
        }
    }
    Ok(scan)
}

/// Splits off the longest run of whole messages at the front of `buf`, for batched forwarding.
///
/// Returns the batch (if any) and the scan that delimited it; `inspect` works as in [`scan`].
pub fn split_batch(
    buf: &mut BytesMut,
    max: usize,
    inspect: impl FnMut(u8, &[u8]) -> bool,
) -> Result<(Option<Bytes>, Scan), FrameError> {
    let scan = scan(buf, max, inspect)?;
    if scan.len == 0 {
        return Ok((None, scan));
    }
    Ok((Some(buf.split_to(scan.len).freeze()), scan))
}

/// The whole messages of a buffer that was framed already (a batch from [`split_batch`]), each
/// with its header. Stops at anything shorter than a header.
pub fn whole_messages(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if bytes.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let (msg, rest) = bytes.split_at((len + 1).clamp(5, bytes.len()));
        bytes = rest;
        Some(msg)
    })
}

/// The same as (tag, body) pairs.
pub fn messages(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    whole_messages(bytes).map(|m| (m[0], &m[5..]))
}

/// The tags of the whole messages in `bytes` as text ("PBDES"), for trace logs.
pub fn tags(bytes: &[u8]) -> String {
    messages(bytes).map(|(tag, _)| tag as char).collect()
}

/// Reads the header of the first message, if all five header bytes are there.
fn peek_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(FrameError::BadLength { tag: tag as char, len });
    }
    if len > max {
        return Err(FrameError::TooLarge { tag: tag as char, len, max });
    }
    Ok(Some(len))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One message in wire form, for tests here and elsewhere in the crate.
    pub(crate) fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn needs_more_until_whole() {
        let whole = msg(b'Q', b"select 1\0");
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            assert_eq!(split_frame(&mut buf, 1024).unwrap(), None, "byte {i}");
            buf.extend_from_slice(&[*b]);
        }
        let frame = split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(frame.tag, b'Q');
        assert_eq!(frame.body(), b"select 1\0");
        assert_eq!(&frame.bytes[..], &whole[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&msg(b'S', b""));
        buf.extend_from_slice(&msg(b'H', b""));
        assert_eq!(split_frame(&mut buf, 64).unwrap().unwrap().tag, b'S');
        assert_eq!(split_frame(&mut buf, 64).unwrap().unwrap().tag, b'H');
        assert_eq!(split_frame(&mut buf, 64).unwrap(), None);
    }

    #[test]
    fn rejects_short_length() {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert!(matches!(split_frame(&mut buf, 64), Err(FrameError::BadLength { .. })));
    }

    #[test]
    fn rejects_oversized_before_body_arrives() {
        let mut buf = BytesMut::from(&[b'Q', 0x40, 0, 0, 0][..]);
        let err = split_frame(&mut buf, 64 << 20).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 0x4000_0000, .. }));
    }

    #[test]
    fn a_length_above_2_31_is_invalid_whatever_the_limit() {
        for len in [0x8000_0000u32, 0x8000_0001, u32::MAX] {
            let mut buf = BytesMut::from(&[b'Q'][..]);
            buf.extend_from_slice(&len.to_be_bytes());
            let err = split_frame(&mut buf, usize::MAX).unwrap_err();
            assert_eq!(err, FrameError::BadLength { tag: 'Q', len: len as usize });
        }
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(split_frame(&mut buf, 64 << 20), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn batch_stops_where_inspect_says() {
        let mut buf = BytesMut::new();
        for tag in [b'D', b'D', b'C', b'Z', b'D'] {
            buf.extend_from_slice(&msg(tag, b"xy"));
        }
        buf.extend_from_slice(&[b'D', 0, 0]);
        let (batch, scan) = split_batch(&mut buf, 64, |tag, _| tag != b'Z').unwrap();
        assert_eq!((scan.count, scan.stopped), (4, true));
        assert_eq!(batch.unwrap().len(), 4 * 7);
        let (batch, scan) = split_batch(&mut buf, 64, |_, _| true).unwrap();
        assert_eq!((batch.unwrap().len(), scan.count, scan.stopped), (7, 1, false));
        assert_eq!(split_batch(&mut buf, 64, |_, _| true).unwrap().0, None);
        assert_eq!(buf.len(), 3);
    }
}
