//! Client authentication: SCRAM-SHA-256 (with SCRAM-SHA-256-PLUS offered over TLS), md5 or trust
//! per user, and auth passthrough for users not listed (their verifier looked up on the primary).
//! Unknown users go through the same exchange as known ones against a mock secret and fail the
//! same way, so nobody can probe which users exist.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use rand::RngCore;
use tokio::io::AsyncReadExt;

use crate::config::{AuthMethod, PassthroughSecret, Secret, UserSettings};
use crate::protocol::frame::FrameError;
use crate::protocol::{build, frame, from_client};
use crate::stream::Stream;
use binding::Binding;
use lookup::{Lookup, LookupError, Target};
use scram::{ScramError, ScramExchange, ScramVerifier};

pub mod binding;
pub mod lookup;
pub mod scram;

/// Why a password check failed. The client is told the same for each; the log says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    WrongPassword,
    /// No such role (or it may not log in, or its password expired).
    NoSuchRole,
    /// The looked-up verifier is neither SCRAM nor md5 (a plaintext password, or junk).
    UnusableVerifier,
}

impl FailReason {
    /// For the log line.
    pub fn describe(self) -> &'static str {
        match self {
            FailReason::WrongPassword => "wrong password",
            FailReason::NoSuchRole => "role does not exist",
            FailReason::UnusableVerifier => "the role's stored password is neither SCRAM-SHA-256 nor md5",
        }
    }
}

/// Why a login did not succeed. The session maps each to what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong password or unknown user: the same answer for both.
    #[error("password authentication failed for user \"{user}\"")]
    Failed { user: String, reason: FailReason },
    /// Auth passthrough could not ask the primary and had no recent answer.
    #[error("cannot look up user \"{user}\": {cause}")]
    Lookup { user: String, cause: LookupError },
    /// The client spoke out of turn.
    #[error("authentication protocol violation: {0}")]
    Protocol(&'static str),
    /// The client sent another message (a second StartupMessage, a Query…) where a password
    /// message was due. Its tag is in decimal, as PostgreSQL says it.
    #[error("expected a password or SASL response, got message type {tag}")]
    Unexpected { tag: u8 },
    /// A password or SASL message longer than any real one: refused before its body is read.
    #[error("password message of {len} bytes is over the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
    /// The client broke message framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The client's socket failed.
    #[error("client connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The client left in the middle of the exchange.
    #[error("client disconnected")]
    Gone,
}

/// Largest password or SASL message accepted.
const MAX_AUTH_MESSAGE: usize = 8 * 1024;

/// How one user's login is checked, prepared once at start-up (no key derivation per login).
enum Check {
    Scram(ScramVerifier),
    Md5(String),
    Trust,
}

/// Checks client logins against the configured users, and looks up the others when `[auth]`
/// is set.
pub struct Authenticator {
    users: HashMap<String, Check>,
    lookup: Option<Lookup>,
    mock_key: [u8; 32],
}

impl Authenticator {
    /// Prepares every user's check; derives SCRAM verifiers from plaintext passwords once.
    pub fn new<'a>(users: impl IntoIterator<Item = &'a UserSettings>) -> Result<Self, String> {
        let mut checks = HashMap::new();
        for user in users {
            let check = match (user.auth, &user.secret) {
                (AuthMethod::Trust, _) => Check::Trust,
                (AuthMethod::ScramSha256, Secret::Plain(p)) => Check::Scram(ScramVerifier::generate(p)),
                (AuthMethod::ScramSha256, Secret::ScramVerifier(v)) => Check::Scram(
                    ScramVerifier::parse(v).ok_or_else(|| format!("user {:?}: malformed SCRAM verifier", user.name))?,
                ),
                (AuthMethod::Md5, Secret::Plain(p)) => Check::Md5(scram::md5_secret(&user.name, p)),
                (AuthMethod::Md5, Secret::Md5Hash(h)) => Check::Md5(h.clone()),
                (method, _) => {
                    return Err(format!("user {:?}: no secret usable for {} logins", user.name, method.name()))
                }
            };
            checks.insert(user.name.clone(), check);
        }
        let mut mock_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut mock_key);
        Ok(Authenticator { users: checks, lookup: None, mock_key })
    }

    /// Looks up users not listed through `lookup` (auth passthrough).
    pub fn with_lookup(self, lookup: Option<Lookup>) -> Self {
        Authenticator { lookup, ..self }
    }

    /// The lookup, when users not listed are looked up.
    pub fn lookup(&self) -> Option<&Lookup> {
        self.lookup.as_ref()
    }

    /// Whether `user` is listed in `[[users]]`.
    pub fn lists(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Runs the login exchange for a listed `user` (an unknown one fails it like a wrong
    /// password); on success the caller sends AuthenticationOk.
    pub async fn authenticate(&self, stream: &mut Stream, user: &str) -> Result<(), AuthError> {
        let verdict = match self.users.get(user) {
            Some(Check::Trust) => return Ok(()),
            Some(Check::Md5(secret)) => md5_exchange(stream, secret).await?,
            Some(Check::Scram(verifier)) => scram_exchange(stream, verifier.clone()).await?.is_some(),
            None => return Err(self.refuse(stream, user, FailReason::NoSuchRole).await),
        };
        match verdict {
            true => Ok(()),
            false => Err(failed(user, FailReason::WrongPassword)),
        }
    }

    /// Auth passthrough: checks `user` against the verifier the primary at `target` holds, and
    /// returns how pgsplit logs into servers as it.
    pub async fn authenticate_looked_up(
        &self,
        stream: &mut Stream,
        user: &str,
        target: &Target<'_>,
    ) -> Result<Arc<UserSettings>, AuthError> {
        let lookup = self.lookup.as_ref().ok_or_else(|| failed(user, FailReason::NoSuchRole))?;
        let looked = lookup.verifier(user, target).await;
        let looked = looked.map_err(|cause| AuthError::Lookup { user: user.to_string(), cause })?;
        let Some(verifier) = looked else {
            return Err(self.refuse(stream, user, FailReason::NoSuchRole).await);
        };
        if let Some(scram) = ScramVerifier::parse(&verifier) {
            let server_key = scram.server_key;
            return match scram_exchange(stream, scram).await? {
                Some(client_key) => Ok(looked_up(user, PassthroughSecret::Scram { client_key, server_key })),
                None => Err(failed(user, FailReason::WrongPassword)),
            };
        }
        if verifier.len() == 35 && verifier.starts_with("md5") {
            return match md5_exchange(stream, &verifier).await? {
                true => Ok(looked_up(user, PassthroughSecret::Md5(verifier))),
                false => Err(failed(user, FailReason::WrongPassword)),
            };
        }
        Err(self.refuse(stream, user, FailReason::UnusableVerifier).await)
    }

    /// Runs the exchange against a mock secret, so the client cannot tell this refusal from a
    /// wrong password; returns the failure to report.
    async fn refuse(&self, stream: &mut Stream, user: &str, reason: FailReason) -> AuthError {
        let mock = ScramVerifier::mock(&self.mock_key, user);
        match scram_exchange(stream, mock).await {
            Ok(_) => failed(user, reason),
            Err(e) => e,
        }
    }
}

fn failed(user: &str, reason: FailReason) -> AuthError {
    AuthError::Failed { user: user.to_string(), reason }
}

fn looked_up(user: &str, secret: PassthroughSecret) -> Arc<UserSettings> {
    let method = match secret {
        PassthroughSecret::Scram { .. } => AuthMethod::ScramSha256,
        PassthroughSecret::Md5(_) => AuthMethod::Md5,
    };
    Arc::new(UserSettings::looked_up(user, method, secret))
}

/// md5: send a random salt, compare the reply. `Ok(false)` on a wrong password.
async fn md5_exchange(stream: &mut Stream, secret: &str) -> Result<bool, AuthError> {
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut out = BytesMut::new();
    build::auth_md5(&mut out, salt);
    stream.send(&out).await?;
    let reply = read_password_message(stream).await?;
    let response = reply.strip_suffix(&[0]).ok_or(AuthError::Protocol("password message without terminator"))?;
    Ok(scram::md5_check(secret, salt, response))
}

/// SCRAM-SHA-256: the three-message SASL exchange, bound to the TLS connection when the client
/// chooses SCRAM-SHA-256-PLUS (offered when the stream has channel-binding data). The ClientKey
/// the proof gave on success, `Ok(None)` on a wrong password.
async fn scram_exchange(stream: &mut Stream, verifier: ScramVerifier) -> Result<Option<[u8; 32]>, AuthError> {
    let end_point = stream.tls_server_end_point().map(<[u8]>::to_vec);
    let mut out = BytesMut::new();
    build::auth_sasl(&mut out, Binding::mechanisms(end_point.as_deref()));
    stream.send(&out).await?;
    let initial = read_password_message(stream).await?;
    let (mechanism, client_first) =
        from_client::sasl_initial_response(&initial).ok_or(AuthError::Protocol("malformed SASLInitialResponse"))?;
    let binding = Binding::chosen(mechanism, end_point.as_deref())
        .ok_or(AuthError::Protocol("client chose a SASL mechanism that was not offered"))?;
    let (exchange, server_first) = ScramExchange::start(verifier, client_first, binding)
        .map_err(|e| scram_refusal(e, "malformed SCRAM client-first-message"))?;
    out.clear();
    build::auth_sasl_continue(&mut out, &server_first);
    stream.send(&out).await?;
    let client_final = read_password_message(stream).await?;
    match exchange.finish(&client_final) {
        Ok(done) => {
            out.clear();
            build::auth_sasl_final(&mut out, &done.server_final);
            stream.send(&out).await?;
            Ok(Some(done.client_key))
        }
        Err(ScramError::WrongPassword) => Ok(None),
        Err(e) => Err(scram_refusal(e, "malformed SCRAM client-final-message")),
    }
}

/// What the client is told for a SCRAM message refused: channel-binding refusals in PostgreSQL's
/// words, anything else as `malformed`.
fn scram_refusal(e: ScramError, malformed: &'static str) -> AuthError {
    match e {
        ScramError::ChannelBinding(why) => AuthError::Protocol(why),
        ScramError::Malformed(_) | ScramError::WrongPassword => AuthError::Protocol(malformed),
    }
}

/// Reads one message that must be a password-family message ('p'); returns its body.
///
/// The tag is checked as soon as it arrives: anything else (a second StartupMessage, whose
/// first bytes would read as a length) is refused at once instead of waiting for as many bytes
/// as it seems to announce.
async fn read_password_message(stream: &mut Stream) -> Result<Vec<u8>, AuthError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if let Some(&tag) = buf.first().filter(|&&tag| tag != from_client::PASSWORD) {
            return Err(AuthError::Unexpected { tag });
        }
        let frame = frame::split_frame(&mut buf, MAX_AUTH_MESSAGE).map_err(|e| match e {
            FrameError::TooLarge { len, max, .. } => AuthError::TooLong { len, max },
            e => AuthError::Frame(e),
        })?;
        if let Some(frame) = frame {
            return Ok(frame.body().to_vec());
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(AuthError::Gone);
        }
    }
}

#[cfg(test)]
mod tests;
