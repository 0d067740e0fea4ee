//! Opening a server connection: TCP, TLS as `server_tls` asks, StartupMessage at protocol 3.0, and
//! the login (SCRAM-SHA-256, md5, cleartext or trust) with postgres-protocol doing the client side
//! of the cryptography.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::passthrough::{self, KeyExchange};
use super::{BackendKey, ServerConn, ServerError};
use crate::config::PassthroughSecret;
use crate::protocol::frame;
use crate::protocol::from_server;
use crate::stream::Stream;
use crate::tls::cert_hash::tls_server_end_point;
use crate::tls::ServerTls;

/// Largest message expected during a login.
const MAX_LOGIN_MESSAGE: usize = 64 * 1024;

/// Who pgsplit logs in as, where, and over what.
#[derive(Clone, Debug)]
pub struct ServerLogin {
    pub user: String,
    pub password: Option<String>,
    /// For a looked-up user (auth passthrough): what proves it instead of a password.
    pub passthrough: Option<PassthroughSecret>,
    pub database: String,
    pub tls: ServerTls,
}

/// Connects to `addr` and logs in, all within `timeout`.
pub async fn connect(addr: Arc<str>, login: &ServerLogin, timeout: Duration) -> Result<ServerConn, ServerError> {
    match tokio::time::timeout(timeout, connect_inner(addr.clone(), login)).await {
        Ok(result) => result,
        Err(_) => Err(ServerError::ConnectTimeout { addr: addr.to_string(), millis: timeout.as_millis() as u64 }),
    }
}

async fn connect_inner(addr: Arc<str>, login: &ServerLogin) -> Result<ServerConn, ServerError> {
    let mut stream = open(&addr, &login.tls).await?;
    let mut out = BytesMut::new();
    let params = [("user", login.user.as_str()), ("database", login.database.as_str())];
    frontend::startup_message(params.iter().copied(), &mut out)?;
    stream.send(&out).await?;
    let end_point = stream.server_certificate().and_then(tls_server_end_point);
    let mut login_state = Login {
        addr: &addr,
        login,
        scram: None,
        end_point,
        bound: false,
        key: BackendKey::default(),
        params: BTreeMap::new(),
    };
    let mut read_buf = BytesMut::with_capacity(4096);
    loop {
        let frame = loop {
            if let Some(f) = frame::split_frame(&mut read_buf, MAX_LOGIN_MESSAGE)
                .map_err(|e| ServerError::Protocol(e.to_string()))?
            {
                break f;
            }
            if stream.read_buf(&mut read_buf).await? == 0 {
                return Err(ServerError::Closed);
            }
        };
        out.clear();
        let done = login_state.on_message(frame.tag, frame.body(), &mut out)?;
        if !out.is_empty() {
            stream.send(&out).await?;
        }
        if done {
            let Login { key, params, bound, .. } = login_state;
            let mut conn = ServerConn::new(stream, addr, key, params);
            if bound {
                conn.set_channel_bound();
            }
            conn.absorb(read_buf);
            return Ok(conn);
        }
    }
}

/// Opens a socket to `addr` and secures it as `tls` asks.
async fn open(addr: &str, tls: &ServerTls) -> Result<Stream, ServerError> {
    let tcp =
        TcpStream::connect(addr).await.map_err(|source| ServerError::Connect { addr: addr.to_string(), source })?;
    crate::socket::tune(&tcp);
    tls.secure(tcp, addr).await.map_err(|source| ServerError::Tls { addr: addr.to_string(), source })
}

/// A SCRAM login in progress: with the configured password, or with a looked-up user's keys.
enum Scram {
    Password(Box<sasl::ScramSha256>),
    Keys(KeyExchange),
}

/// The client side of one login in progress.
struct Login<'a> {
    addr: &'a Arc<str>,
    login: &'a ServerLogin,
    scram: Option<Scram>,
    /// The server certificate's `tls-server-end-point` hash, over TLS.
    end_point: Option<Vec<u8>>,
    /// The login chose SCRAM-SHA-256-PLUS.
    bound: bool,
    key: BackendKey,
    params: BTreeMap<String, String>,
}

impl Login<'_> {
    /// Handles one server message; writes any answer into `out`. `Ok(true)` once ReadyForQuery arrives.
    fn on_message(&mut self, tag: u8, body: &[u8], out: &mut BytesMut) -> Result<bool, ServerError> {
        match tag {
            from_server::AUTHENTICATION => self.on_auth(body, out)?,
            from_server::PARAMETER_STATUS => {
                if let Some((name, value)) = from_server::parameter_status(body) {
                    let name = String::from_utf8_lossy(name).into_owned();
                    self.params.insert(name, String::from_utf8_lossy(value).into_owned());
                }
            }
            from_server::BACKEND_KEY_DATA if body.len() >= 8 => {
                self.key = BackendKey {
                    pid: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    secret: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                };
            }
            from_server::ERROR_RESPONSE => {
                let field =
                    |f| String::from_utf8_lossy(from_server::error_field(body, f).unwrap_or_default()).into_owned();
                return Err(ServerError::Refused {
                    addr: self.addr.to_string(),
                    code: field(b'C'),
                    message: field(b'M'),
                });
            }
            from_server::READY_FOR_QUERY => return Ok(true),
            // Notices and NegotiateProtocolVersion need no answer.
            _ => {}
        }
        Ok(false)
    }

    fn on_auth(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), ServerError> {
        if body.len() < 4 {
            return Err(ServerError::Protocol("short authentication message".into()));
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let data = &body[4..];
        match code {
            0 => {}
            3 => frontend::password_message(self.password()?.as_bytes(), out)?,
            5 if data.len() == 4 => {
                let salt = [data[0], data[1], data[2], data[3]];
                frontend::password_message(self.md5(salt)?.as_bytes(), out)?;
            }
            10 => {
                let offered = |name: &[u8]| data.split(|&b| b == 0).any(|m| m == name);
                // Bound to the TLS connection whenever the server offers it over TLS: a man in
                // the middle holding another certificate cannot replay the proof.
                let plus = self.end_point.clone().filter(|_| offered(b"SCRAM-SHA-256-PLUS"));
                if plus.is_none() && !offered(b"SCRAM-SHA-256") {
                    return Err(self.auth_error("server offers no SASL mechanism pgsplit supports".into()));
                }
                let (scram, first) = self.start_scram(plus.as_deref())?;
                let mechanism = if plus.is_some() { "SCRAM-SHA-256-PLUS" } else { "SCRAM-SHA-256" };
                frontend::sasl_initial_response(mechanism, &first, out)?;
                self.bound = plus.is_some();
                self.scram = Some(scram);
            }
            11 => {
                let reply = match self.scram.as_mut() {
                    None => return Err(ServerError::Protocol("SASLContinue before SASL".into())),
                    Some(Scram::Password(scram)) => scram.update(data).map(|()| scram.message().to_vec()),
                    Some(Scram::Keys(keys)) => keys.answer(data).map_err(std::io::Error::other),
                };
                let reply = reply.map_err(|e| self.auth_error(e.to_string()))?;
                frontend::sasl_response(&reply, out)?;
            }
            12 => {
                let verdict = match self.scram.as_mut() {
                    None => return Err(ServerError::Protocol("SASLFinal before SASL".into())),
                    Some(Scram::Password(scram)) => scram.finish(data).map_err(|e| e.to_string()),
                    Some(Scram::Keys(keys)) => keys.verify(data).map_err(str::to_string),
                };
                verdict.map_err(|e| self.auth_error(format!("server signature rejected: {e}")))?;
            }
            other => return Err(self.auth_error(format!("server asked for unsupported authentication (code {other})"))),
        }
        Ok(())
    }

    /// The md5 answer: from the configured password, or a looked-up user's stored hash.
    fn md5(&self, salt: [u8; 4]) -> Result<String, ServerError> {
        match &self.login.passthrough {
            Some(PassthroughSecret::Md5(hash)) => passthrough::md5_answer(hash, salt)
                .ok_or_else(|| self.auth_error("the looked-up md5 hash is malformed".into())),
            Some(PassthroughSecret::Scram { .. }) => Err(self.auth_error(format!(
                "server asks md5 for user {:?}, whose looked-up verifier is SCRAM: set password_encryption \
                 alike on every node",
                self.login.user
            ))),
            None => Ok(md5_hash(self.login.user.as_bytes(), self.password()?.as_bytes(), salt)),
        }
    }

    /// The first SCRAM message: from the configured password, or a looked-up user's keys; bound
    /// to the TLS connection with `end_point`.
    fn start_scram(&self, end_point: Option<&[u8]>) -> Result<(Scram, Vec<u8>), ServerError> {
        match &self.login.passthrough {
            Some(PassthroughSecret::Scram { client_key, server_key }) => {
                let (keys, first) = KeyExchange::start(*client_key, *server_key, end_point);
                Ok((Scram::Keys(keys), first))
            }
            Some(PassthroughSecret::Md5(_)) => Err(self.auth_error(format!(
                "server asks SCRAM for user {:?}, whose looked-up verifier is md5",
                self.login.user
            ))),
            None => {
                let binding = match end_point {
                    Some(hash) => sasl::ChannelBinding::tls_server_end_point(hash.to_vec()),
                    None => sasl::ChannelBinding::unsupported(),
                };
                let scram = sasl::ScramSha256::new(self.password()?.as_bytes(), binding);
                let first = scram.message().to_vec();
                Ok((Scram::Password(Box::new(scram)), first))
            }
        }
    }

    fn password(&self) -> Result<&str, ServerError> {
        self.login.password.as_deref().ok_or_else(|| {
            self.auth_error(format!(
                "server asked for a password for user {:?} but none is configured: set server_password",
                self.login.user
            ))
        })
    }

    fn auth_error(&self, reason: String) -> ServerError {
        ServerError::Auth { addr: self.addr.to_string(), reason }
    }
}

/// Sends a CancelRequest for `key` to the server at `addr`, over TLS when `tls` asks for it (the
/// key is a credential).
pub async fn send_cancel(addr: &str, key: BackendKey, tls: &ServerTls) -> Result<(), ServerError> {
    let mut stream = open(addr, tls).await?;
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u32(16);
    buf.put_u32(80_877_102);
    buf.put_i32(key.pid);
    buf.put_i32(key.secret);
    stream.send(&buf).await?;
    // Wait for the server to close, so the cancel has been delivered when this returns.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
    Ok(())
}
