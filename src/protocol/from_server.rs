//! Tags and borrowed views of the server messages pgsplit inspects. DataRow, RowDescription and
//! CopyData are never decoded.

/// ReadyForQuery: the end of a request; its status byte says whether a transaction is open.
pub const READY_FOR_QUERY: u8 = b'Z';
/// A whole ReadyForQuery: tag, length 5, status.
pub const READY_FOR_QUERY_LEN: usize = 6;
pub const ERROR_RESPONSE: u8 = b'E';
pub const NOTICE_RESPONSE: u8 = b'N';
pub const NOTIFICATION_RESPONSE: u8 = b'A';
pub const PARAMETER_STATUS: u8 = b'S';
pub const BACKEND_KEY_DATA: u8 = b'K';
pub const AUTHENTICATION: u8 = b'R';
pub const COPY_IN_RESPONSE: u8 = b'G';
pub const COPY_OUT_RESPONSE: u8 = b'H';
pub const COPY_BOTH_RESPONSE: u8 = b'W';

/// Messages that belong to no request: a server may send them at any time.
pub fn is_async(tag: u8) -> bool {
    matches!(tag, NOTICE_RESPONSE | NOTIFICATION_RESPONSE | PARAMETER_STATUS)
}

/// The start of a COPY: the server then streams data, waits for it, or both.
pub fn starts_copy(tag: u8) -> bool {
    matches!(tag, COPY_IN_RESPONSE | COPY_OUT_RESPONSE | COPY_BOTH_RESPONSE)
}

/// The transaction status of a ReadyForQuery body.
pub fn ready_status(body: &[u8]) -> Option<u8> {
    match body {
        [s @ (b'I' | b'T' | b'E')] => Some(*s),
        _ => None,
    }
}

/// Name and value of a ParameterStatus body, as raw bytes (values may be in any encoding).
pub fn parameter_status(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = super::nul_at(body)?;
    let (name, rest) = (&body[..nul], &body[nul + 1..]);
    let value = rest.strip_suffix(&[0])?;
    Some((name, value))
}

/// One field of an ErrorResponse or NoticeResponse body (`b'C'` for SQLSTATE, `b'M'` message…).
pub fn error_field(body: &[u8], field: u8) -> Option<&[u8]> {
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            return None;
        }
        let nul = super::nul_at(tail)?;
        if code == field {
            return Some(&tail[..nul]);
        }
        rest = &tail[nul + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let body = b"SERROR\0C42P01\0Mno such table\0\0";
        assert_eq!(error_field(body, b'C'), Some(&b"42P01"[..]));
        assert_eq!(error_field(body, b'M'), Some(&b"no such table"[..]));
        assert_eq!(error_field(body, b'H'), None);
        assert_eq!(error_field(b"Cbroken", b'C'), None);
    }

    #[test]
    fn status_and_params() {
        assert_eq!(ready_status(b"T"), Some(b'T'));
        assert_eq!(ready_status(b"X"), None);
        assert_eq!(parameter_status(b"TimeZone\0UTC\0"), Some((&b"TimeZone"[..], &b"UTC"[..])));
        assert_eq!(parameter_status(b"TimeZone\0UTC"), None);
    }
}
