//! The first packet a client sends: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest.
//! It has no tag byte, only a length and a code.

/// Longest startup packet accepted, as PostgreSQL (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// A decoded startup-phase packet.
#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// A request to cancel the query running on another connection.
    Cancel { pid: i32, secret: i32 },
    /// A StartupMessage for protocol 3.x.
    Startup(StartupMessage),
}

/// The parameters of a StartupMessage.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct StartupMessage {
    /// The minor protocol version asked for (0 for 3.0).
    pub minor: u16,
    /// Name/value pairs in the order sent, `_pq_.` protocol options excluded.
    pub params: Vec<(String, String)>,
    /// `_pq_.` protocol extension options, which pgsplit does not support.
    pub protocol_options: Vec<String>,
}

impl StartupMessage {
    /// The value of a parameter, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Why a startup packet was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartupError {
    #[error("invalid length of startup packet: {0}")]
    BadLength(usize),
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("invalid startup packet layout: {0}")]
    Malformed(&'static str),
}

/// Validates the 4-byte length prefix of a startup packet; returns the body length to read.
pub fn body_len(len_prefix: [u8; 4]) -> Result<usize, StartupError> {
    let len = u32::from_be_bytes(len_prefix) as usize;
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(StartupError::BadLength(len));
    }
    Ok(len - 4)
}

/// Decodes a startup packet body (everything after the length prefix).
pub fn parse(body: &[u8]) -> Result<StartupPacket, StartupError> {
    if body.len() < 4 {
        return Err(StartupError::Malformed("no protocol code"));
    }
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    match code {
        SSL_REQUEST => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST => parse_cancel(rest),
        _ => {
            let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
            if major != 3 {
                return Err(StartupError::UnsupportedProtocol { major, minor });
            }
            parse_params(rest, minor).map(StartupPacket::Startup)
        }
    }
}

fn parse_cancel(rest: &[u8]) -> Result<StartupPacket, StartupError> {
    if rest.len() < 8 {
        return Err(StartupError::Malformed("short cancel request"));
    }
    let pid = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let secret = i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    Ok(StartupPacket::Cancel { pid, secret })
}

fn parse_params(mut rest: &[u8], minor: u16) -> Result<StartupMessage, StartupError> {
    let mut msg = StartupMessage { minor, ..Default::default() };
    loop {
        let name = take_cstr(&mut rest)?;
        if name.is_empty() {
            break;
        }
        let value = take_cstr(&mut rest)?;
        if let Some(option) = name.strip_prefix("_pq_.") {
            msg.protocol_options.push(format!("_pq_.{option}"));
        } else {
            msg.params.push((name, value));
        }
    }
    if !rest.is_empty() {
        return Err(StartupError::Malformed("bytes after the final terminator"));
    }
    Ok(msg)
}

fn take_cstr(rest: &mut &[u8]) -> Result<String, StartupError> {
    let end = super::nul_at(rest).ok_or(StartupError::Malformed("missing terminator"))?;
    let s =
        std::str::from_utf8(&rest[..end]).map_err(|_| StartupError::Malformed("parameter is not UTF-8"))?.to_string();
    *rest = &rest[end + 1..];
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: u32, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        for (k, val) in pairs {
            v.extend_from_slice(k.as_bytes());
            v.push(0);
            v.extend_from_slice(val.as_bytes());
            v.push(0);
        }
        v.push(0);
        v
    }

    #[test]
    fn startup_params() {
        let b = body(196608, &[("user", "app"), ("database", "db"), ("_pq_.x", "1")]);
        let StartupPacket::Startup(m) = parse(&b).unwrap() else { panic!() };
        assert_eq!(m.get("user"), Some("app"));
        assert_eq!(m.get("database"), Some("db"));
        assert_eq!(m.protocol_options, vec!["_pq_.x".to_string()]);
        assert_eq!(m.minor, 0);
    }

    #[test]
    fn special_requests() {
        assert_eq!(parse(&SSL_REQUEST.to_be_bytes()).unwrap(), StartupPacket::SslRequest);
        assert_eq!(parse(&GSSENC_REQUEST.to_be_bytes()).unwrap(), StartupPacket::GssEncRequest);
        let mut c = CANCEL_REQUEST.to_be_bytes().to_vec();
        c.extend_from_slice(&7i32.to_be_bytes());
        c.extend_from_slice(&9i32.to_be_bytes());
        assert_eq!(parse(&c).unwrap(), StartupPacket::Cancel { pid: 7, secret: 9 });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(body_len([0, 0, 0, 3]).is_err());
        assert!(body_len([0x40, 0, 0, 0]).is_err());
        assert!(parse(&[1, 2]).is_err());
        assert!(matches!(parse(&body(2 << 16, &[])), Err(StartupError::UnsupportedProtocol { .. })));
        let mut b = body(196608, &[("user", "app")]);
        b.pop();
        b.pop();
        assert!(parse(&b).is_err());
        assert!(parse(&[0, 3, 0, 0, 0xff, 0xfe, 0, 0, 0]).is_err());
    }
}
