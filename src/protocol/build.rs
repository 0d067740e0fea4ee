//! Messages pgsplit sends itself, encoded with pgwire. Forwarded traffic never passes through here.

use bytes::BytesMut;
use pgwire::messages::response::{ErrorResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey};
use pgwire::messages::Message;

/// Severity of a message pgsplit reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the connection goes on.
    Error,
    /// The connection ends after this message.
    Fatal,
}

/// Encodes a message. pgwire refuses only a message over its type's length limit: 30000 bytes
/// for ParameterStatus, CommandComplete and NegotiateProtocolVersion (libpq's own limit for
/// them), 2 GiB for the rest. What pgsplit builds stays far below, but a ParameterStatus repeats
/// a value that a server or a client chose: one over the limit is left out (libpq would refuse
/// it anyway) instead of taking the session down.
fn put(buf: &mut BytesMut, msg: impl Message) {
    let start = buf.len();
    if let Err(e) = msg.encode(buf) {
        // The tag byte goes out before the length is checked.
        buf.truncate(start);
        tracing::warn!(error = %e, "a message too long for its type was not sent");
    }
}

/// ErrorResponse with severity, SQLSTATE, message and an optional hint.
pub fn error(buf: &mut BytesMut, severity: Severity, code: &str, message: &str, hint: Option<&str>) {
    let sev = match severity {
        Severity::Error => "ERROR",
        Severity::Fatal => "FATAL",
    };
    let mut fields =
        vec![(b'S', sev.to_string()), (b'V', sev.to_string()), (b'C', code.to_string()), (b'M', message.to_string())];
    if let Some(hint) = hint {
        fields.push((b'H', hint.to_string()));
    }
    put(buf, ErrorResponse::new(fields));
}

/// ReadyForQuery with the given status byte ('I', 'T' or 'E').
pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    put(buf, ReadyForQuery::new(status));
}

/// ParameterStatus.
pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    put(buf, ParameterStatus::new(name.to_string(), value.to_string()));
}

/// BackendKeyData with pgsplit's own key for this client.
pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    put(buf, BackendKeyData::new(pid, SecretKey::I32(secret)));
}

/// NegotiateProtocolVersion: pgsplit speaks 3.0 and no `_pq_.` options.
pub fn negotiate_protocol_version(buf: &mut BytesMut, unsupported: Vec<String>) {
    put(buf, NegotiateProtocolVersion::new(0, unsupported));
}

/// AuthenticationOk.
pub fn auth_ok(buf: &mut BytesMut) {
    put(buf, Authentication::Ok);
}

/// AuthenticationMD5Password with its salt.
pub fn auth_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    put(buf, Authentication::MD5Password(salt.to_vec()));
}

/// AuthenticationSASL offering `mechanisms`, in the client's order of preference.
pub fn auth_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    put(buf, Authentication::SASL(mechanisms.iter().map(|m| m.to_string()).collect()));
}

/// AuthenticationSASLContinue.
pub fn auth_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    put(buf, Authentication::SASLContinue(bytes::Bytes::copy_from_slice(data)));
}

/// AuthenticationSASLFinal.
pub fn auth_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    put(buf, Authentication::SASLFinal(bytes::Bytes::copy_from_slice(data)));
}

/// CommandComplete with its tag.
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    use bytes::BufMut;
    buf.put_u8(b'C');
    buf.put_u32((4 + tag.len() + 1) as u32);
    buf.put_slice(tag.as_bytes());
    buf.put_u8(0);
}

/// A simple Query message, for statements pgsplit runs itself (ROLLBACK, DISCARD ALL, SET).
pub fn query(buf: &mut BytesMut, sql: &str) {
    use bytes::BufMut;
    buf.put_u8(b'Q');
    buf.put_u32((4 + sql.len() + 1) as u32);
    buf.put_slice(sql.as_bytes());
    buf.put_u8(0);
}

/// RowDescription of text-format columns, each `(name, type oid, type size)`.
pub fn row_description(buf: &mut BytesMut, columns: &[(&str, u32, i16)]) {
    use pgwire::messages::data::{FieldDescription, RowDescription};
    let fields =
        columns.iter().map(|(name, oid, size)| FieldDescription::new(name.to_string(), 0, 0, *oid, *size, -1, 0));
    put(buf, RowDescription::new(fields.collect()));
}

/// DataRow of text values; `None` is SQL NULL.
pub fn data_row(buf: &mut BytesMut, values: &[Option<&str>]) {
    use bytes::BufMut;
    let mut data = BytesMut::new();
    for value in values {
        match value {
            Some(v) => {
                data.put_i32(v.len() as i32);
                data.put_slice(v.as_bytes());
            }
            None => data.put_i32(-1),
        }
    }
    put(buf, pgwire::messages::data::DataRow::new(data, values.len() as i16));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_over_its_limit_is_left_out_whole() {
        let mut buf = BytesMut::new();
        parameter_status(&mut buf, "a", "b");
        let one = buf.len();
        parameter_status(&mut buf, "search_path", &"x".repeat(40_000));
        assert_eq!(buf.len(), one, "nothing of it, not even its tag");
        ready_for_query(&mut buf, b'I');
        assert_eq!(&buf[one..], b"Z\0\0\0\x05I");
    }

    #[test]
    fn error_response_layout() {
        let mut buf = BytesMut::new();
        error(&mut buf, Severity::Fatal, "28P01", "nope", Some("try again"));
        assert_eq!(buf[0], b'E');
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        assert_eq!(len + 1, buf.len());
        let body = &buf[5..];
        assert!(body.windows(6).any(|w| w == b"C28P01"));
        assert!(body.windows(10).any(|w| w == b"Htry again"));
        assert_eq!(*buf.last().unwrap(), 0);
    }

    #[test]
    fn ready_and_query() {
        let mut buf = BytesMut::new();
        ready_for_query(&mut buf, b'T');
        assert_eq!(&buf[..], b"Z\0\0\0\x05T");
        buf.clear();
        query(&mut buf, "ROLLBACK");
        assert_eq!(&buf[..], b"Q\0\0\0\x0dROLLBACK\0");
    }
}
