//! Logging into a server as a looked-up user without its password (auth passthrough): SCRAM from
//! the ClientKey recovered at the client's login, md5 from the stored hash. Pure: no I/O.
//!
//! A SCRAM proof is `ClientKey XOR HMAC(StoredKey, AuthMessage)` with `StoredKey = H(ClientKey)`,
//! so the ClientKey is all a client needs; the server's reply is checked with the ServerKey from
//! the same verifier. It works wherever the server holds that verifier (same salt and count).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// One SCRAM-SHA-256 login made with keys, between the client-first and the server-final
/// message.
pub struct KeyExchange {
    client_key: [u8; 32],
    server_key: [u8; 32],
    nonce: String,
    /// The gs2 header sent, and the certificate hash with SCRAM-SHA-256-PLUS: what c= carries.
    binding: Vec<u8>,
    /// What the server signs: set once its first message arrived.
    auth_message: Option<Vec<u8>>,
}

impl KeyExchange {
    /// Starts a login; returns the exchange and the client-first-message. With `end_point` (the
    /// server certificate's hash, for SCRAM-SHA-256-PLUS) the proof is bound to the TLS
    /// connection; without, `n`: no binding.
    pub fn start(client_key: [u8; 32], server_key: [u8; 32], end_point: Option<&[u8]>) -> (Self, Vec<u8>) {
        let mut raw = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut raw);
        let nonce = STANDARD.encode(raw);
        let gs2: &[u8] = if end_point.is_some() { b"p=tls-server-end-point,," } else { b"n,," };
        let first = [gs2, format!("n=,r={nonce}").as_bytes()].concat();
        let binding = [gs2, end_point.unwrap_or_default()].concat();
        (KeyExchange { client_key, server_key, nonce, binding, auth_message: None }, first)
    }

    /// Takes the server-first-message; returns the client-final-message with the proof.
    pub fn answer(&mut self, server_first: &[u8]) -> Result<Vec<u8>, &'static str> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first-message is not UTF-8")?;
        let nonce =
            text.strip_prefix("r=").and_then(|rest| rest.split(',').next()).ok_or("no nonce from the server")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours");
        }
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(&self.binding));
        let auth_message = format!("n=,r={},{text},{without_proof}", self.nonce).into_bytes();
        let stored_key: [u8; 32] = Sha256::digest(self.client_key).into();
        let mut proof = hmac(&stored_key, &auth_message);
        proof.iter_mut().zip(self.client_key).for_each(|(p, k)| *p ^= k);
        self.auth_message = Some(auth_message);
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server-final-message: the server must prove it holds the same verifier.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), &'static str> {
        let auth_message = self.auth_message.as_ref().ok_or("SASLFinal before SASLContinue")?;
        let signature = server_final.strip_prefix(b"v=").ok_or("the server's final message has no signature")?;
        let expected = STANDARD.encode(hmac(&self.server_key, auth_message));
        match signature == expected.as_bytes() {
            true => Ok(()),
            false => Err("the server's signature does not match the looked-up verifier"),
        }
    }
}

/// The md5 answer from a stored `md5…` hash: `"md5" + md5(hex ++ salt)`, what a client computes
/// after hashing the password with the user name. The hex is lowercased first: clients always
/// hash the lowercase form, so a hash pasted in upper case would otherwise never match. `None`
/// for anything that is not an md5 hash.
pub fn md5_answer(stored: &str, salt: [u8; 4]) -> Option<String> {
    let inner = stored.strip_prefix("md5").filter(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let mut h = Md5::new();
    h.update(inner.to_ascii_lowercase().as_bytes());
    h.update(salt);
    Some(format!("md5{:x}", h.finalize()))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_the_server_did_not_extend_is_refused() {
        let (mut login, _) = KeyExchange::start([1; 32], [2; 32], None);
        assert!(login.answer(b"r=other,s=c2FsdA==,i=4096").is_err());
        let nonce = login.nonce.clone();
        assert!(login.answer(format!("r={nonce},s=c2FsdA==,i=4096").as_bytes()).is_err());
        assert!(login.verify(b"v=AAAA").is_err());
    }

    #[test]
    fn md5_answer_matches_what_a_client_with_the_password_sends() {
        let mut h = Md5::new();
        h.update(b"pwalice");
        let stored = format!("md5{:x}", h.finalize());
        let salt = [1, 2, 3, 4];
        let from_password = postgres_protocol::authentication::md5_hash(b"alice", b"pw", salt);
        assert_eq!(md5_answer(&stored, salt).as_deref(), Some(from_password.as_str()));
        assert_eq!(
            md5_answer(&stored.to_uppercase().replace("MD5", "md5"), salt).as_deref(),
            Some(from_password.as_str())
        );
        assert_eq!(md5_answer("plain", salt), None);
    }
}
