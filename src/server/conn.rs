//! A logged-in server connection. It forwards raw bytes and tracks only what pooling needs: the
//! transaction status, how many ReadyForQuery are still owed, and the reported parameters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ServerError;
use crate::protocol::frame::{self, FrameError};
use crate::protocol::{build, from_server};

/// Largest message accepted from a server: PostgreSQL's own 1 GiB field limit.
const MAX_SERVER_MESSAGE: usize = 1 << 30;
/// Spare room kept in the read buffer, so one read can bring many rows.
const READ_RESERVE: usize = 32 * 1024;
/// Terminate, sent when pgsplit closes a server connection.
const TERMINATE: &[u8] = b"X\0\0\0\x04";
/// The query appended after a write commits, to learn the session's write LSN in the same round trip.
/// The insert position is never behind the commit record just written.
const LSN_PROBE: &[u8] = b"Q\0\0\0\x27SELECT pg_current_wal_insert_lsn()\0";

/// Whose reply a ReadyForQuery the server still owes closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owed {
    /// This many of the client's requests.
    Client(usize),
    /// pgsplit's LSN probe; its replies are swallowed.
    Probe,
}

/// The server's cancel key for this connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendKey {
    pub pid: i32,
    pub secret: i32,
}

/// One server connection between checkouts and during one.
pub struct ServerConn {
    stream: TcpStream,
    rbuf: BytesMut,
    /// `host:port` of the node.
    pub addr: Arc<str>,
    pub key: BackendKey,
    /// Current values of the parameters the server reports (ParameterStatus).
    pub params: BTreeMap<String, String>,
    /// The reported parameters as they were right after login.
    pub initial_params: BTreeMap<String, String>,
    /// A ParameterStatus arrived since the session last looked.
    pub params_changed: bool,
    /// Unreported parameters pgsplit set on this connection for a client.
    pub applied: BTreeMap<String, String>,
    /// Which client's parameters the connection last carried, and at which version.
    pub params_owner: Option<(u64, u64)>,
    pub created: Instant,
    pub last_used: Instant,
    /// The status byte of the last ReadyForQuery.
    pub status: u8,
    /// ReadyForQuery messages the server still owes, in order, and to whom.
    owed: VecDeque<Owed>,
    /// Extended-protocol messages were sent after the last Sync.
    pub unsynced: bool,
    /// Whether the session holding the connection still owes it a DISCARD ALL.
    pub needs_reset: bool,
    /// The socket failed or the protocol broke: never reuse.
    pub broken: bool,
}

/// What a batch of server output ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchEnd {
    /// More output is owed.
    More,
    /// The ReadyForQuery settling the client's requests so far arrived (its last 6 bytes).
    Ready,
    /// The LSN probe's replies arrived and were swallowed; the LSN, if it succeeded.
    Probe(Option<u64>),
}

impl ServerConn {
    /// Wraps a socket that has just finished the login, with what the login reported.
    pub fn new(stream: TcpStream, addr: Arc<str>, key: BackendKey, params: BTreeMap<String, String>) -> Self {
        let now = Instant::now();
        ServerConn {
            stream,
            rbuf: BytesMut::with_capacity(READ_RESERVE * 2),
            addr,
            key,
            initial_params: params.clone(),
            params,
            params_changed: false,
            applied: BTreeMap::new(),
            params_owner: None,
            created: now,
            last_used: now,
            status: b'I',
            owed: VecDeque::new(),
            unsynced: false,
            needs_reset: false,
            broken: false,
        }
    }

    /// Idle outside a transaction with nothing owed: safe to hand to another client.
    pub fn is_clean(&self) -> bool {
        !self.broken && self.owed.is_empty() && !self.unsynced && self.status == b'I' && !self.needs_reset
    }

    /// Nothing is owed, so a ROLLBACK or DISCARD ALL can bring the connection back to clean.
    pub fn is_resettable(&self) -> bool {
        !self.broken && self.owed.is_empty() && !self.unsynced
    }

    /// Nothing is owed to anyone.
    pub fn settled(&self) -> bool {
        self.owed.is_empty()
    }

    /// The next replies owed are the LSN probe's.
    pub fn probe_next(&self) -> bool {
        self.owed.front() == Some(&Owed::Probe)
    }

    /// Whether an idle connection still looks usable: no EOF and no unsolicited output (a FATAL
    /// from a terminated backend, or stray notifications) waiting on the socket. One syscall.
    pub fn is_alive(&self) -> bool {
        if self.broken || !self.rbuf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Reads more bytes from the server. Cancel-safe: usable as a `select!` branch.
    pub async fn read_more(&mut self) -> Result<(), ServerError> {
        self.rbuf.reserve(READ_RESERVE);
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) => {
                self.broken = true;
                Err(ServerError::Closed)
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.broken = true;
                Err(e.into())
            }
        }
    }

    /// Splits the whole messages read so far into one batch to forward, tracking state as it goes.
    ///
    /// The batch stops right after the ReadyForQuery that settles the client's requests sent so
    /// far, so the caller can release the connection before forwarding it. The LSN probe's replies
    /// never reach a batch: they come back as [`BatchEnd::Probe`] with an empty batch.
    pub fn take_batch(&mut self) -> Result<Option<(Bytes, BatchEnd)>, ServerError> {
        if self.probe_next() {
            return self.take_probe().map(|lsn| lsn.map(|lsn| (Bytes::new(), BatchEnd::Probe(lsn))));
        }
        let mut status = self.status;
        let (owed, params, changed) = (&mut self.owed, &mut self.params, &mut self.params_changed);
        let result = frame::split_batch(&mut self.rbuf, MAX_SERVER_MESSAGE, |tag, msg| {
            match tag {
                from_server::READY_FOR_QUERY => {
                    status = from_server::ready_status(&msg[5..]).unwrap_or(b'E');
                    return !settle_one(owed);
                }
                from_server::PARAMETER_STATUS => *changed |= record_param(params, &msg[5..]),
                _ => {}
            }
            true
        });
        let (batch, scan) = result.map_err(|e| self.protocol_error(e))?;
        self.status = status;
        let end = if scan.stopped { BatchEnd::Ready } else { BatchEnd::More };
        Ok(batch.map(|b| (b, end)))
    }

    /// Consumes the LSN probe's replies once all have arrived; `Some(lsn)` then (`None` inside if the
    /// probe failed, as in an aborted transaction).
    fn take_probe(&mut self) -> Result<Option<Option<u64>>, ServerError> {
        let scan = frame::scan(&self.rbuf, MAX_SERVER_MESSAGE, |tag, _| tag != from_server::READY_FOR_QUERY)
            .map_err(|e| self.protocol_error(e))?;
        if !scan.stopped {
            return Ok(None);
        }
        let mut lsn = None;
        let replies = self.rbuf.split_to(scan.len);
        let mut rest = &replies[..];
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let (msg, tail) = rest.split_at(len + 1);
            match msg[0] {
                b'D' => lsn = first_column(&msg[5..]).and_then(|t| std::str::from_utf8(t).ok()).and_then(parse_lsn),
                from_server::READY_FOR_QUERY => self.status = from_server::ready_status(&msg[5..]).unwrap_or(b'E'),
                _ => {}
            }
            rest = tail;
        }
        self.owed.pop_front();
        Ok(Some(lsn))
    }

    /// Sends client bytes; `readies` is how many ReadyForQuery they will bring back and `unsynced`
    /// whether they leave an extended-protocol pipeline open (`None`: unchanged).
    pub async fn send(&mut self, bytes: &[u8], readies: usize, unsynced: Option<bool>) -> Result<(), ServerError> {
        if readies > 0 {
            match self.owed.back_mut() {
                Some(Owed::Client(n)) => *n += readies,
                _ => self.owed.push_back(Owed::Client(readies)),
            }
        }
        if let Some(u) = unsynced {
            self.unsynced = u;
        }
        self.write(bytes).await
    }

    /// Appends the LSN probe after what was sent: the replies to it follow the client's own.
    pub async fn send_lsn_probe(&mut self) -> Result<(), ServerError> {
        self.owed.push_back(Owed::Probe);
        self.write(LSN_PROBE).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ServerError> {
        if let Err(e) = self.stream.write_all(bytes).await {
            self.broken = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Runs a statement of pgsplit's own and swallows its replies (ParameterStatus still recorded).
    pub async fn run_internal(&mut self, sql: &str) -> Result<(), ServerError> {
        debug_assert!(self.owed.is_empty(), "internal statement while replies are owed");
        let mut msg = BytesMut::new();
        build::query(&mut msg, sql);
        self.send(&msg, 1, None).await?;
        let mut error: Option<(String, String)> = None;
        while !self.owed.is_empty() {
            self.read_more().await?;
            while let Some(frame) =
                frame::split_frame(&mut self.rbuf, MAX_SERVER_MESSAGE).map_err(|e| self.protocol_error(e))?
            {
                let body = frame.body();
                match frame.tag {
                    from_server::READY_FOR_QUERY => {
                        settle_one(&mut self.owed);
                        self.status = from_server::ready_status(body).unwrap_or(b'E');
                    }
                    from_server::PARAMETER_STATUS => self.params_changed |= record_param(&mut self.params, body),
                    from_server::ERROR_RESPONSE if error.is_none() => {
                        let field = |f| {
                            String::from_utf8_lossy(from_server::error_field(body, f).unwrap_or_default()).into_owned()
                        };
                        error = Some((field(b'C'), field(b'M')));
                    }
                    _ => {}
                }
            }
        }
        match error {
            None => Ok(()),
            Some((code, message)) => Err(ServerError::Statement {
                addr: self.addr.to_string(),
                what: sql.chars().take(80).collect(),
                code,
                message,
            }),
        }
    }

    fn protocol_error(&mut self, e: FrameError) -> ServerError {
        self.broken = true;
        ServerError::Protocol(e.to_string())
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        // Say goodbye so the server logs a clean disconnect; a full socket buffer just skips it.
        let _ = self.stream.try_write(TERMINATE);
    }
}

/// Counts one ReadyForQuery against the front of the owed queue; `true` when that settles all the
/// client requests sent so far (the front entry is used up).
fn settle_one(owed: &mut VecDeque<Owed>) -> bool {
    match owed.front_mut() {
        Some(Owed::Client(n)) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            owed.pop_front();
            true
        }
        None => true,
    }
}

/// The first column of a DataRow body, as text; `None` if NULL or malformed.
fn first_column(body: &[u8]) -> Option<&[u8]> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    body.get(6..6 + usize::try_from(len).ok()?)
}

/// Parses a `pg_lsn` text (`16/B374D848`) into its 64-bit position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Formats a 64-bit WAL position as `pg_lsn` text.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Records a ParameterStatus; `true` if it changed a value.
fn record_param(params: &mut BTreeMap<String, String>, body: &[u8]) -> bool {
    let Some((name, value)) = from_server::parameter_status(body) else { return false };
    let name = String::from_utf8_lossy(name).into_owned();
    let value = String::from_utf8_lossy(value).into_owned();
    params.insert(name, value.clone()).as_ref() != Some(&value)
}

impl ServerConn {
    /// Takes over bytes read past the end of the login.
    pub(super) fn absorb(&mut self, leftover: BytesMut) {
        if !leftover.is_empty() {
            self.rbuf.extend_from_slice(&leftover);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_probe_is_one_well_formed_query() {
        let mut buf = BytesMut::from(LSN_PROBE);
        let frame = frame::split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(frame.tag, b'Q');
        assert_eq!(frame.body(), b"SELECT pg_current_wal_insert_lsn()\0");
        assert!(buf.is_empty());
    }

    #[test]
    fn lsn_text_round_trip() {
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(format_lsn((0x16 << 32) | 0xB374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(parse_lsn("1/xyz"), None);
    }

    #[test]
    fn data_row_first_column() {
        let mut body = 1i16.to_be_bytes().to_vec();
        body.extend_from_slice(&9i32.to_be_bytes());
        body.extend_from_slice(b"0/16B3748");
        assert_eq!(first_column(&body), Some(&b"0/16B3748"[..]));
        assert_eq!(first_column(&[0, 1, 255, 255, 255, 255]), None, "NULL");
        assert_eq!(first_column(&[0, 1, 0, 0, 0, 9, b'x']), None, "truncated");
    }

    #[test]
    fn owed_queue_settles_client_then_probe() {
        let mut owed = VecDeque::from([Owed::Client(2), Owed::Probe]);
        assert!(!settle_one(&mut owed));
        assert!(settle_one(&mut owed));
        assert_eq!(owed.front(), Some(&Owed::Probe));
        assert!(settle_one(&mut owed));
        assert!(owed.is_empty());
    }
}
