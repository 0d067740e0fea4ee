//! A logged-in server connection. It forwards raw bytes and tracks only what pooling needs: the
//! transaction status, how many ReadyForQuery are still owed, and the reported parameters.

use std::collections::BTreeMap;
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
    /// ReadyForQuery messages the server still owes.
    pub pending: usize,
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
    /// The last ReadyForQuery owed arrived.
    Ready,
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
            pending: 0,
            unsynced: false,
            needs_reset: false,
            broken: false,
        }
    }

    /// Idle outside a transaction with nothing owed: safe to hand to another client.
    pub fn is_clean(&self) -> bool {
        !self.broken && self.pending == 0 && !self.unsynced && self.status == b'I' && !self.needs_reset
    }

    /// Nothing is owed, so a ROLLBACK or DISCARD ALL can bring the connection back to clean.
    pub fn is_resettable(&self) -> bool {
        !self.broken && self.pending == 0 && !self.unsynced
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
    /// The batch stops right after the ReadyForQuery that settles everything owed, so the caller
    /// can release the connection before forwarding it.
    pub fn take_batch(&mut self) -> Result<Option<(Bytes, BatchEnd)>, ServerError> {
        let (mut pending, mut status) = (self.pending, self.status);
        let params = &mut self.params;
        let changed = &mut self.params_changed;
        let result = frame::split_batch(&mut self.rbuf, MAX_SERVER_MESSAGE, |tag, msg| {
            match tag {
                from_server::READY_FOR_QUERY => {
                    pending = pending.saturating_sub(1);
                    status = from_server::ready_status(&msg[5..]).unwrap_or(b'E');
                    return pending > 0;
                }
                from_server::PARAMETER_STATUS => *changed |= record_param(params, &msg[5..]),
                _ => {}
            }
            true
        });
        let (batch, scan) = result.map_err(|e| self.protocol_error(e))?;
        self.pending = pending;
        self.status = status;
        let end = if scan.stopped { BatchEnd::Ready } else { BatchEnd::More };
        Ok(batch.map(|b| (b, end)))
    }

    /// Sends client bytes; `readies` is how many ReadyForQuery they will bring back and `unsynced`
    /// whether they leave an extended-protocol pipeline open (`None`: unchanged).
    pub async fn send(&mut self, bytes: &[u8], readies: usize, unsynced: Option<bool>) -> Result<(), ServerError> {
        self.pending += readies;
        if let Some(u) = unsynced {
            self.unsynced = u;
        }
        if let Err(e) = self.stream.write_all(bytes).await {
            self.broken = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Runs a statement of pgsplit's own and swallows its replies (ParameterStatus still recorded).
    pub async fn run_internal(&mut self, sql: &str) -> Result<(), ServerError> {
        debug_assert!(self.pending == 0, "internal statement while the client's replies are owed");
        let mut msg = BytesMut::new();
        build::query(&mut msg, sql);
        self.send(&msg, 1, None).await?;
        let mut error: Option<(String, String)> = None;
        while self.pending > 0 {
            self.read_more().await?;
            while let Some(frame) =
                frame::split_frame(&mut self.rbuf, MAX_SERVER_MESSAGE).map_err(|e| self.protocol_error(e))?
            {
                let body = frame.body();
                match frame.tag {
                    from_server::READY_FOR_QUERY => {
                        self.pending -= 1;
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
