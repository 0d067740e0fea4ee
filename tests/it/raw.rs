//! Raw protocol clients: messages written byte for byte, in the writes and with the pauses a test
//! chooses, so timings that real drivers produce by chance can be reproduced on purpose.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a reply may take before the test calls it a hang.
pub const HANG: Duration = Duration::from_secs(10);

/// A protocol message: tag, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A StartupMessage for protocol 3.0 with `params`.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec();
    for (name, value) in params {
        body.extend_from_slice(format!("{name}\0{value}\0").as_bytes());
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

/// A simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    message(b'Q', format!("{sql}\0").as_bytes())
}

/// Parse, Bind, Describe portal and Execute of an unnamed statement, without Sync: what libpq's
/// `PQsendQueryParams` sends in pipeline mode.
pub fn extended(sql: &str) -> Vec<u8> {
    let mut m = message(b'P', format!("\0{sql}\0\0\0").as_bytes());
    m.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    m.extend(message(b'D', b"P\0"));
    m.extend(message(b'E', b"\0\0\0\0\0"));
    m
}

pub fn sync() -> Vec<u8> {
    message(b'S', b"")
}

pub fn flush() -> Vec<u8> {
    message(b'H', b"")
}

pub fn terminate() -> Vec<u8> {
    message(b'X', b"")
}

/// A logged-in raw connection and what it has read but not yet returned.
pub struct Raw {
    pub stream: TcpStream,
    unread: Vec<u8>,
}

impl Raw {
    /// Logs in as `app_trust` (trust auth) to database `app` at `addr`: pgsplit or a node.
    pub async fn login(addr: SocketAddr) -> Raw {
        Raw::login_as(addr, "app_trust", "app").await
    }

    /// Logs in as `user`, who must need no password, to `database` at `addr`.
    pub async fn login_as(addr: SocketAddr, user: &str, database: &str) -> Raw {
        let mut raw = Raw::start(addr, &[("user", user), ("database", database)]).await;
        let login = raw.until_ready(1).await;
        assert!(!login.iter().any(|(t, _)| *t == b'E'), "login failed: {login:?}");
        raw
    }

    /// Connects and sends a StartupMessage (protocol 3.0) with `params`; reads nothing.
    pub async fn start(addr: SocketAddr, params: &[(&str, &str)]) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut raw = Raw { stream, unread: Vec::new() };
        raw.send(&startup_message(params)).await;
        raw
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to the server");
    }

    /// Reads until a message tagged `tag` has arrived; panics after [`HANG`] without one.
    pub async fn until_tag(&mut self, tag: u8) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !out.iter().any(|(t, _)| *t == tag) {
            match self.next_message().await {
                Some(m) => out.push(m),
                None => panic!("no {:?} within {HANG:?} after {out:?}", tag as char),
            }
        }
        out
    }

    /// Reads until `readies` ReadyForQuery messages have arrived; panics after [`HANG`] without
    /// one. Returns the messages as (tag, body).
    pub async fn until_ready(&mut self, readies: usize) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut seen = 0;
        while seen < readies {
            match self.next_message().await {
                Some(m) => {
                    seen += usize::from(m.0 == b'Z');
                    out.push(m);
                }
                None => panic!("no ReadyForQuery {} of {readies} within {HANG:?} after {out:?}", seen + 1),
            }
        }
        out
    }

    /// Whatever arrives within `wait`, which must be nothing complete.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(Some(m)) = tokio::time::timeout(wait, self.next_message()).await {
            panic!("expected no reply, got {m:?}");
        }
    }

    /// Reads until the peer closes; `true` if it did within [`HANG`].
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(HANG, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    /// Every message until the peer closes the connection; panics if it does not within [`HANG`].
    pub async fn until_closed(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut buf = [0u8; 8192];
        loop {
            match tokio::time::timeout(HANG, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => self.unread.extend_from_slice(&buf[..n]),
                Err(_) => panic!("the connection stayed open for {HANG:?}; read {:?}", self.unread),
            }
        }
        let mut out = Vec::new();
        while let Some(m) = self.buffered_message() {
            out.push(m);
        }
        out
    }

    /// The next whole message already read, if any.
    fn buffered_message(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.unread.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([self.unread[1], self.unread[2], self.unread[3], self.unread[4]]) as usize;
        if self.unread.len() <= len {
            return None;
        }
        let rest = self.unread.split_off(len + 1);
        let whole = std::mem::replace(&mut self.unread, rest);
        Some((whole[0], whole[5..].to_vec()))
    }

    /// The next whole message; `None` after [`HANG`] or when the peer closes.
    pub async fn next_message(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(m) = self.buffered_message() {
                return Some(m);
            }
            let mut buf = [0u8; 8192];
            match tokio::time::timeout(HANG, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.unread.extend_from_slice(&buf[..n]),
                _ => return None,
            }
        }
    }
}

/// A field of an ErrorResponse or NoticeResponse body (`b'S'` severity, `b'C'` SQLSTATE,
/// `b'M'` message), empty when absent.
pub fn error_field(body: &[u8], field: u8) -> String {
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        if code == field {
            return String::from_utf8_lossy(&tail[..end]).into_owned();
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    String::new()
}

/// The tags of `messages`, without ParameterStatus (pgsplit reports its own, `pgsplit.write_lsn`).
pub fn tags(messages: &[(u8, Vec<u8>)]) -> String {
    messages.iter().filter(|(t, _)| *t != b'S').map(|(t, _)| *t as char).collect()
}
