//! Tags and borrowed views of the client messages pgsplit inspects. Everything else is forwarded
//! as bytes.

/// Simple query.
pub const QUERY: u8 = b'Q';
/// Extended protocol: Parse, Bind, Describe, Execute, Close, Sync, Flush.
pub const PARSE: u8 = b'P';
pub const BIND: u8 = b'B';
pub const DESCRIBE: u8 = b'D';
pub const EXECUTE: u8 = b'E';
pub const CLOSE: u8 = b'C';
pub const SYNC: u8 = b'S';
pub const FLUSH: u8 = b'H';
/// Fast-path function call; answered with its own ReadyForQuery.
pub const FUNCTION_CALL: u8 = b'F';
/// The client is leaving.
pub const TERMINATE: u8 = b'X';
/// Password, SASLInitialResponse and SASLResponse share this tag.
pub const PASSWORD: u8 = b'p';
/// COPY from the client: data, done, failed.
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const COPY_FAIL: u8 = b'f';

/// Whether a logged-in client may send a message with this tag (protocol 3.0 and 3.2). Password
/// and SASL messages (`p`) belong to authentication only. PostgreSQL ends the connection on any
/// other tag, and so does pgsplit: it cannot tell where such a message's request ends.
pub fn may_send(tag: u8) -> bool {
    matches!(
        tag,
        QUERY
            | PARSE
            | BIND
            | DESCRIBE
            | EXECUTE
            | CLOSE
            | SYNC
            | FLUSH
            | FUNCTION_CALL
            | TERMINATE
            | COPY_DATA
            | COPY_DONE
            | COPY_FAIL
    )
}

/// What a run of client messages leaves of an extended-protocol pipeline on the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pipeline {
    /// Nothing in the run opens or closes one (COPY data, Flush).
    #[default]
    Unchanged,
    /// Extended-protocol messages after the last Sync: the server waits for more.
    Open,
    /// A Sync, Query or FunctionCall closed it.
    Closed,
}

/// Whether the server answers this message with its own ReadyForQuery.
pub fn expects_ready(tag: u8) -> bool {
    matches!(tag, QUERY | SYNC | FUNCTION_CALL)
}

/// Whether this message belongs to the extended protocol and leaves the server waiting for a Sync.
/// Flush does not: it only asks for what is pending, and after a Sync nothing is.
pub fn opens_pipeline(tag: u8) -> bool {
    matches!(tag, PARSE | BIND | DESCRIBE | EXECUTE | CLOSE)
}

/// Whether a client request is complete after this message, so a server must be found for it.
pub fn ends_request(tag: u8) -> bool {
    matches!(tag, QUERY | SYNC | FLUSH | FUNCTION_CALL)
}

/// The SQL text of a Query message body (without the trailing NUL), if well formed.
pub fn query_text(body: &[u8]) -> Option<&[u8]> {
    body.strip_suffix(&[0])
}

/// The SQL of a Query body: without its terminator, or the whole body if it lacks one.
pub fn query_sql(body: &[u8]) -> &[u8] {
    query_text(body).unwrap_or(body)
}

/// A request that is one simple Query: its SQL text without the NUL, and the words of that text
/// without one trailing `;`. Enough to recognise the plain forms of a statement (`BEGIN`,
/// `COMMIT WORK`) in place, without lexing or lowering a copy.
pub fn lone_query_words(request: &[u8]) -> Option<(&[u8], impl Iterator<Item = &[u8]>)> {
    let mut messages = super::frame::messages(request);
    let (Some((QUERY, body)), None) = (messages.next(), messages.next()) else { return None };
    let sql = query_sql(body);
    let text = sql.trim_ascii();
    let text = text.strip_suffix(b";").unwrap_or(text);
    Some((sql, text.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty())))
}

/// Whether `word` (from [`lone_query_words`]) is `expected`, in any case.
pub fn is_word(word: Option<&[u8]>, expected: &[u8]) -> bool {
    word.is_some_and(|w| w.eq_ignore_ascii_case(expected))
}

/// Parse body: the statement name and its SQL text.
pub fn parse_message(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    let (query, _) = cstr(rest)?;
    Some((name, query))
}

/// Bind body: the name of the prepared statement it binds.
pub fn bind_statement(body: &[u8]) -> Option<&[u8]> {
    let (_portal, rest) = cstr(body)?;
    cstr(rest).map(|(statement, _)| statement)
}

/// Close or Describe body: `b'S'` (statement) or `b'P'` (portal), and the name.
pub fn target(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    cstr(rest).map(|(name, _)| (kind, name))
}

/// Splits a NUL-terminated string off the front.
fn cstr(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = super::nul_at(body)?;
    Some((&body[..nul], &body[nul + 1..]))
}

/// SASLInitialResponse body: mechanism name and the initial client data.
pub fn sasl_initial_response(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = super::nul_at(body)?;
    let (mechanism, rest) = (&body[..nul], &body[nul + 1..]);
    if rest.len() < 4 {
        return None;
    }
    let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let data = &rest[4..];
    match len {
        -1 => Some((mechanism, &[])),
        n if n >= 0 && n as usize == data.len() => Some((mechanism, data)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_initial() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        assert_eq!(sasl_initial_response(&body), Some((&b"SCRAM-SHA-256"[..], &b"abc"[..])));
        body.pop();
        assert_eq!(sasl_initial_response(&body), None);
        assert_eq!(sasl_initial_response(b"no-nul"), None);
    }

    #[test]
    fn extended_protocol_views() {
        assert_eq!(parse_message(b"s1\0select 1\0\0\0"), Some((&b"s1"[..], &b"select 1"[..])));
        assert_eq!(parse_message(b"s1\0select 1"), None);
        assert_eq!(bind_statement(b"\0s1\0\0\0"), Some(&b"s1"[..]));
        assert_eq!(target(b"Ss1\0"), Some((b'S', &b"s1"[..])));
        assert_eq!(target(b""), None);
    }

    #[test]
    fn only_frontend_messages_may_be_sent_after_login() {
        let allowed: Vec<u8> = (0..=u8::MAX).filter(|&t| may_send(t)).collect();
        assert_eq!(allowed, b"BCDEFHPQSXcdf".to_vec());
        for tag in [0x07, 0, b'p', b'Z', b'T', b'G', 0xff] {
            assert!(!may_send(tag), "{tag:#04x}");
        }
    }

    #[test]
    fn request_boundaries() {
        for tag in [QUERY, SYNC, FLUSH, FUNCTION_CALL] {
            assert!(ends_request(tag));
        }
        for tag in [PARSE, BIND, EXECUTE, b'd'] {
            assert!(!ends_request(tag));
        }
        assert!(!expects_ready(FLUSH));
    }
}
