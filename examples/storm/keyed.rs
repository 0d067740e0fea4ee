//! A login that computes the client's side of SCRAM once per salt: the storm's `--cached-keys`
//! mode.
//!
//! A client proves its password with `SaltedPassword = PBKDF2(password, salt, iterations)`:
//! 4,096 HMACs, the bulk of a login's CPU on the client. A fleet of devices logging in at once
//! spends that on its own CPUs; on one machine it runs on the proxy's cores and bounds the storm
//! whatever the proxy does. Reusing it for the same salt and count (what a server hands every
//! login of one user) leaves the proxy's work as it is: the nonces, the proof and the server's
//! signature are computed and checked for every login, as RFC 5802 asks. The password is used as
//! given (no SASLprep): the bench's passwords are ASCII.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::BytesMut;
use hmac::{Hmac, Mac};
use pgsplit::bench_support::scram_salted_password;
use postgres_protocol::authentication::sasl::SCRAM_SHA_256;
use postgres_protocol::message::{backend, frontend};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type HmacSha256 = Hmac<Sha256>;

/// A salted password, computed by the first login that needs it; the others wait for it.
type Salted = Arc<OnceLock<[u8; 32]>>;

/// Where and as whom the storm logs in, from its connection string.
pub struct Target {
    addr: String,
    user: String,
    password: Vec<u8>,
    database: String,
    /// Salted passwords by (salt, iteration count), each computed by the first login needing it.
    salted: Mutex<HashMap<(Vec<u8>, u32), Salted>>,
}

impl Target {
    pub fn new(conninfo: &str) -> Result<Target, String> {
        let config: tokio_postgres::Config = conninfo.parse().map_err(|e| format!("{e}"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => return Err("--cached-keys needs a TCP host".into()),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().ok_or("no user in the connection string")?.to_string();
        Ok(Target {
            addr: format!("{host}:{port}"),
            database: config.get_dbname().unwrap_or(&user).to_string(),
            password: config.get_password().ok_or("no password in the connection string")?.to_vec(),
            user,
            salted: Mutex::default(),
        })
    }

    /// Logs in with SCRAM-SHA-256 and runs `SELECT 1`; returns the idle connection.
    pub async fn login(&self) -> Result<TcpStream, String> {
        let mut conn =
            Conn { stream: TcpStream::connect(&self.addr).await.map_err(|e| e.to_string())?, buf: BytesMut::new() };
        let mut out = BytesMut::new();
        let params = [("user", self.user.as_str()), ("database", self.database.as_str())];
        frontend::startup_message(params.iter().copied(), &mut out).map_err(|e| e.to_string())?;
        conn.send(&mut out).await?;
        let mut exchange = None;
        loop {
            match conn.next().await? {
                backend::Message::AuthenticationSasl(_) => {
                    let (started, first) = Exchange::start();
                    frontend::sasl_initial_response(SCRAM_SHA_256, &first, &mut out).map_err(|e| e.to_string())?;
                    exchange = Some(started);
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let exchange = exchange.as_mut().ok_or("SASLContinue before SASL")?;
                    let reply = exchange.answer(body.data(), |salt, count| self.salted(salt, count))?;
                    frontend::sasl_response(&reply, &mut out).map_err(|e| e.to_string())?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    exchange.as_ref().ok_or("SASLFinal before SASL")?.verify(body.data())?;
                }
                backend::Message::ReadyForQuery(_) => break,
                backend::Message::ErrorResponse(_) => return Err("the login was refused".into()),
                backend::Message::AuthenticationOk
                | backend::Message::ParameterStatus(_)
                | backend::Message::BackendKeyData(_)
                | backend::Message::NoticeResponse(_) => {}
                _ => return Err("unexpected message during the login".into()),
            }
            conn.send(&mut out).await?;
        }
        frontend::query("SELECT 1", &mut out).map_err(|e| e.to_string())?;
        conn.send(&mut out).await?;
        loop {
            match conn.next().await? {
                backend::Message::ReadyForQuery(_) => return Ok(conn.stream),
                backend::Message::ErrorResponse(_) => return Err("SELECT 1 failed".into()),
                _ => {}
            }
        }
    }

    fn salted(&self, salt: &[u8], count: u32) -> [u8; 32] {
        let cell = self.salted.lock().unwrap().entry((salt.to_vec(), count)).or_default().clone();
        *cell.get_or_init(|| scram_salted_password(&self.password, salt, count))
    }
}

/// A socket and the bytes read from it that no message has taken yet.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn send(&mut self, out: &mut BytesMut) -> Result<(), String> {
        if !out.is_empty() {
            self.stream.write_all(out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<backend::Message, String> {
        loop {
            if let Some(message) = backend::Message::parse(&mut self.buf).map_err(|e| e.to_string())? {
                return Ok(message);
            }
            if self.stream.read_buf(&mut self.buf).await.map_err(|e| e.to_string())? == 0 {
                return Err("the server closed the connection".into());
            }
        }
    }
}

/// The client's side of one SCRAM-SHA-256 exchange, without channel binding.
struct Exchange {
    nonce: String,
    server_key: Option<[u8; 32]>,
    auth_message: Vec<u8>,
}

impl Exchange {
    fn start() -> (Exchange, Vec<u8>) {
        let mut raw = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut raw);
        let nonce = STANDARD.encode(raw);
        let first = format!("n,,n=,r={nonce}").into_bytes();
        (Exchange { nonce, server_key: None, auth_message: Vec::new() }, first)
    }

    /// The client-final-message for the server-first-message `message`.
    fn answer(&mut self, message: &[u8], salted: impl FnOnce(&[u8], u32) -> [u8; 32]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(message).map_err(|_| "server-first-message is not UTF-8")?;
        let field =
            |name: &str| text.split(',').find_map(|f| f.strip_prefix(name)).ok_or(format!("no {name} from the server"));
        let (nonce, salt, count) = (field("r=")?, field("s=")?, field("i=")?);
        if !nonce.starts_with(&self.nonce) {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = STANDARD.decode(salt).map_err(|_| "the salt is not base64")?;
        let salted = salted(&salt, count.parse().map_err(|_| "the iteration count is not a number")?);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("n=,r={},{text},{without_proof}", self.nonce).into_bytes();
        let mut proof = hmac(&stored_key, &self.auth_message);
        proof.iter_mut().zip(client_key).for_each(|(p, k)| *p ^= k);
        self.server_key = Some(hmac(&salted, b"Server Key"));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks that the server knows the password's verifier.
    fn verify(&self, message: &[u8]) -> Result<(), String> {
        let server_key = self.server_key.ok_or("SASLFinal before SASLContinue")?;
        let signature = message.strip_prefix(b"v=").ok_or("no server signature")?;
        let expected = STANDARD.encode(hmac(&server_key, &self.auth_message));
        match signature == expected.as_bytes() {
            true => Ok(()),
            false => Err("the server's signature does not match".into()),
        }
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}
