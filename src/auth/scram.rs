//! Server side of client authentication: SCRAM-SHA-256 exchanges and md5 checks, pure (no I/O).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::binding::Binding;
use crate::server::passthrough::md5_answer;
use ScramError::Malformed;

type HmacSha256 = Hmac<Sha256>;

/// PostgreSQL's defaults, so generated secrets look like the ones `ALTER ROLE ... PASSWORD` writes.
const DEFAULT_ITERATIONS: u32 = 4096;
const DEFAULT_SALT_LEN: usize = 16;
const SERVER_NONCE_LEN: usize = 18;
/// Every client runs PBKDF2 with the count we send it; beyond this a stored secret would only stall
/// logins (libpq takes seconds, some drivers refuse outright), so such a secret is treated as corrupt.
const MAX_ITERATIONS: u32 = 10_000_000;

/// A SCRAM-SHA-256 secret as PostgreSQL stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl ScramVerifier {
    /// Derive from a plaintext password (SASLprep as PostgreSQL: normalise when valid, raw bytes otherwise),
    /// salt, iterations. A zero count is raised to one, since PBKDF2 is undefined for zero.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let iterations = iterations.max(1);
        // PostgreSQL and libpq fall back to the raw bytes when SASLprep rejects the password, so a
        // password with prohibited characters must hash the same way here or the client never matches.
        let prepared = stringprep::saslprep(password).unwrap_or(password.into());
        let salted = hi(prepared.as_bytes(), salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Random 16-byte salt, 4096 iterations.
    pub fn generate(password: &str) -> Self {
        let mut salt = [0u8; DEFAULT_SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::from_password(password, &salt, DEFAULT_ITERATIONS)
    }

    /// Parse "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>"; None if not that shape.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iter, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        if iter.is_empty() || !iter.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let iterations: u32 = iter.parse().ok()?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return None;
        }
        let salt = STANDARD.decode(salt).ok().filter(|s| !s.is_empty())?;
        Some(ScramVerifier {
            iterations,
            salt,
            stored_key: STANDARD.decode(stored).ok()?.try_into().ok()?,
            server_key: STANDARD.decode(server).ok()?.try_into().ok()?,
        })
    }

    /// Deterministic fake secret for an unknown user, so that a probe sees the same salt every time and runs the
    /// same steps as for a real user (no user enumeration). `secret` is a per-process random key.
    /// The keys come from the same keyed hash as the salt, so no password can match them short of a
    /// SHA-256 preimage, and building the mock costs a few HMACs rather than a PBKDF2 run.
    pub fn mock(secret: &[u8], user: &str) -> Self {
        let derive = |label: &[u8]| {
            let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
            mac.update(label);
            mac.update(&[0]);
            mac.update(user.as_bytes());
            <[u8; 32]>::from(mac.finalize().into_bytes())
        };
        ScramVerifier {
            iterations: DEFAULT_ITERATIONS,
            salt: derive(b"salt")[..DEFAULT_SALT_LEN].to_vec(),
            stored_key: derive(b"stored key"),
            server_key: derive(b"server key"),
        }
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
        let iter = self.iterations;
        let (salt, stored) = (b64(&self.salt), b64(&self.stored_key));
        write!(f, "SCRAM-SHA-256${iter}:{salt}${stored}:{}", b64(&self.server_key))
    }
}

/// Why a SCRAM exchange did not succeed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// A message that is not SCRAM as RFC 5802 writes it.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The proof does not match the verifier.
    #[error("password authentication failed")]
    WrongPassword,
    /// The client's channel binding contradicts what was offered and chosen, or names another
    /// TLS connection; said in PostgreSQL's words, which clients and operators search for.
    #[error("{0}")]
    ChannelBinding(&'static str),
}

/// A client that proved its password.
#[derive(PartialEq, Eq)]
pub struct ScramSuccess {
    /// The server-final-message for AuthenticationSASLFinal.
    pub server_final: Vec<u8>,
    /// Recovered from the proof: with it pgsplit can log into servers holding the same verifier
    /// (auth passthrough) without ever knowing the password.
    pub client_key: [u8; 32],
}

/// The key stays out of logs.
impl fmt::Debug for ScramSuccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSuccess").field("server_final", &String::from_utf8_lossy(&self.server_final)).finish()
    }
}

/// One SCRAM exchange in progress, between the client-first and client-final messages.
pub struct ScramExchange {
    verifier: ScramVerifier,
    /// The channel binding the client's mechanism committed it to.
    binding: Binding,
    /// The gs2 header exactly as sent: the client echoes it base64-encoded in c=, which is what
    /// binds the "n"/"y" choice into the proof and defeats a downgrade by a man in the middle.
    gs2_header: Vec<u8>,
    /// client-first-message-bare "," server-first-message ",": the signed AuthMessage up to the
    /// client-final part.
    signed_prefix: Vec<u8>,
    /// Client nonce followed by ours: the r= the client-final message must carry.
    nonce: String,
}

/// Keys stay out of logs; the nonce is what helps when debugging a stuck exchange.
impl fmt::Debug for ScramExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ScramExchange");
        d.field("nonce", &self.nonce).finish_non_exhaustive()
    }
}

impl ScramExchange {
    /// Takes the SASLInitialResponse payload (the client-first-message bytes, e.g. b"n,,n=,r=abc"); returns the
    /// exchange and the server-first-message to send in AuthenticationSASLContinue. The gs2 flag
    /// must fit `binding` (see [`Binding`]: "n" or "y" without PLUS, "y" refused as a downgrade
    /// when PLUS was offered, "p=tls-server-end-point" with PLUS). The user name in n= is ignored
    /// (PostgreSQL uses the startup user). Server nonce: 18 random bytes, base64.
    pub fn start(
        verifier: ScramVerifier,
        client_first: &[u8],
        binding: Binding,
    ) -> Result<(Self, Vec<u8>), ScramError> {
        let mut gs2 = client_first.splitn(3, |&b| b == b',');
        binding.check_flag(gs2.next().ok_or(Malformed("missing gs2 header"))?)?;
        // As PostgreSQL: the role is fixed by the startup packet, there is nothing to switch to.
        if gs2.next().ok_or(Malformed("missing gs2 header"))? != b"" {
            return Err(Malformed("authorization identity is not supported"));
        }
        let bare = gs2.next().ok_or(Malformed("missing gs2 header"))?;
        let gs2_header = client_first[..client_first.len() - bare.len()].to_vec();

        let mut attrs = bare.split(|&b| b == b',');
        if bare.starts_with(b"m=") {
            return Err(Malformed("mandatory extension is not supported"));
        }
        attr(&mut attrs, b"n=", "missing user name attribute")?;
        let client_nonce = attr(&mut attrs, b"r=", "missing nonce attribute")?;
        let printable = |b: &u8| (0x21..=0x7e).contains(b) && *b != b',';
        if client_nonce.is_empty() || !client_nonce.iter().all(printable) {
            return Err(Malformed("invalid nonce"));
        }
        check_extensions(attrs)?;

        let mut server_nonce = [0u8; SERVER_NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut server_nonce);
        let mut nonce: String = client_nonce.iter().map(|&b| char::from(b)).collect();
        nonce.push_str(&STANDARD.encode(server_nonce));
        let salt = STANDARD.encode(&verifier.salt);
        let server_first = format!("r={nonce},s={salt},i={}", verifier.iterations).into_bytes();
        let signed_prefix = [bare, b",", &server_first, b","].concat();
        let exchange = ScramExchange { verifier, binding, gs2_header, signed_prefix, nonce };
        Ok((exchange, server_first))
    }

    /// Takes the SASLResponse payload (client-final-message); checks channel-binding attr c= (base64 of the gs2
    /// header, then the certificate hash with PLUS), the nonce, and the proof (constant-time compare). Ok: the
    /// server-final-message and the recovered ClientKey. Err(WrongPassword) when the proof does not match.
    pub fn finish(self, client_final: &[u8]) -> Result<ScramSuccess, ScramError> {
        // The proof is always the last attribute and everything before it is signed, so split there.
        let at = client_final.windows(3).rposition(|w| w == b",p=");
        let at = at.ok_or(Malformed("missing proof attribute"))?;
        let (without_proof, proof) = (&client_final[..at], &client_final[at + 3..]);

        let mut attrs = without_proof.split(|&b| b == b',');
        let binding = attr(&mut attrs, b"c=", "missing channel-binding attribute")?;
        self.binding.check_data(&self.gs2_header, STANDARD.decode(binding).ok().as_deref())?;
        if attr(&mut attrs, b"r=", "missing nonce attribute")? != self.nonce.as_bytes() {
            return Err(Malformed("nonce does not match"));
        }
        check_extensions(attrs)?;
        let proof = STANDARD.decode(proof).ok().and_then(|p| <[u8; 32]>::try_from(p).ok());
        let mut client_key = proof.ok_or(Malformed("invalid proof"))?;

        let auth_message = [&self.signed_prefix, without_proof].concat();
        let signature = hmac(&self.verifier.stored_key, &auth_message);
        client_key.iter_mut().zip(signature).for_each(|(k, s)| *k ^= s);
        if !constant_time_eq(&Sha256::digest(client_key), &self.verifier.stored_key) {
            return Err(ScramError::WrongPassword);
        }
        let server_signature = hmac(&self.verifier.server_key, &auth_message);
        let server_final = format!("v={}", STANDARD.encode(server_signature)).into_bytes();
        Ok(ScramSuccess { server_final, client_key })
    }
}

/// "md5" + hex(md5(password ++ user)), PostgreSQL's stored md5 form.
pub fn md5_secret(user: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(user.as_bytes());
    format!("md5{:x}", h.finalize())
}

/// Check an md5 PasswordMessage payload (without trailing NUL) against a stored "md5…" secret and the 4-byte salt:
/// the answer a client with the password sends, as pgsplit itself gives servers from a stored hash.
pub fn md5_check(stored: &str, salt: [u8; 4], response: &[u8]) -> bool {
    md5_answer(stored, salt).is_some_and(|expected| constant_time_eq(expected.as_bytes(), response))
}

/// PBKDF2-HMAC-SHA-256 for a single 32-byte block, which is all SCRAM-SHA-256 needs.
pub fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let keyed = HmacSha256::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The next attribute, which must carry `prefix`; returns its value.
fn attr<'a>(
    attrs: &mut impl Iterator<Item = &'a [u8]>,
    prefix: &[u8],
    missing: &'static str,
) -> Result<&'a [u8], ScramError> {
    let value = attrs.next().and_then(|a| a.strip_prefix(prefix));
    value.ok_or(Malformed(missing))
}

/// Optional attributes are ignored as PostgreSQL does, but must still look like "x=...".
fn check_extensions<'a>(mut attrs: impl Iterator<Item = &'a [u8]>) -> Result<(), ScramError> {
    let valid = |a: &[u8]| a.len() >= 2 && a[0].is_ascii_alphabetic() && a[1] == b'=';
    attrs.all(valid).then_some(()).ok_or(Malformed("invalid attribute"))
}

/// Timing must not reveal how many leading bytes of a proof or md5 reply were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::{md5_hash, sasl::ChannelBinding as Cb};
    use postgres_protocol::{authentication::sasl::ScramSha256, password};

    /// A whole exchange with the real client: our verdict, and whether it accepted our server-final.
    fn run(v: ScramVerifier, password: &str, cb: Cb) -> Result<bool, ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), cb);
        let (server, server_first) = ScramExchange::start(v, client.message(), Binding::NotOffered)?;
        client.update(&server_first).expect("accepts server-first");
        let done = server.finish(client.message())?;
        Ok(client.finish(&done.server_final).is_ok())
    }

    fn malformed<T>(r: Result<T, ScramError>) -> bool {
        matches!(r, Err(Malformed(_)))
    }

    #[test]
    fn exchanges_with_postgres_client() {
        let v = ScramVerifier::generate("s3cret pässword");
        for cb in [Cb::unsupported(), Cb::unrequested()] {
            assert_eq!(run(v.clone(), "s3cret pässword", cb), Ok(true));
        }
        let client = ScramSha256::new(b"pw", Cb::tls_server_end_point(vec![1, 2, 3]));
        let r = ScramExchange::start(v, client.message(), Binding::NotOffered);
        assert!(matches!(r.unwrap_err(), ScramError::ChannelBinding(_)));
    }

    #[test]
    fn finish_recovers_the_client_key() {
        let v = ScramVerifier::from_password("pw", b"salt", 16);
        let mut client = ScramSha256::new(b"pw", Cb::unsupported());
        let (server, server_first) = ScramExchange::start(v, client.message(), Binding::NotOffered).unwrap();
        client.update(&server_first).unwrap();
        let success = server.finish(client.message()).unwrap();
        assert_eq!(success.client_key, hmac(&hi(b"pw", b"salt", 16), b"Client Key"));
    }

    #[test]
    fn wrong_password_fails() {
        let v = ScramVerifier::generate("right");
        let r = run(v, "wrong", Cb::unsupported());
        assert_eq!(r, Err(ScramError::WrongPassword));
    }

    #[test]
    fn postgres_protocol_verifier_parses_and_authenticates() {
        // SASLprep maps U+00A0 and ﬁ, rejects a control character (raw bytes then), keeps the rest.
        for pw in ["hunter2", "a\u{a0}b", "bell\u{7}", "", "\u{fb01}x"] {
            let text = password::scram_sha_256(pw.as_bytes());
            let v = ScramVerifier::parse(&text).expect("parses");
            assert_eq!(v.to_string(), text);
            assert_eq!(ScramVerifier::from_password(pw, &v.salt, v.iterations), v);
            assert_eq!(run(v, pw, Cb::unsupported()), Ok(true), "{pw:?}");
        }
    }

    #[test]
    fn mock_is_deterministic_per_user() {
        let (k, other) = ([7u8; 32], [8u8; 32]);
        let m = ScramVerifier::mock(&k, "alice");
        assert_eq!(m, ScramVerifier::mock(&k, "alice"));
        assert_ne!(m.salt, ScramVerifier::mock(&k, "bob").salt);
        assert_ne!(m.salt, ScramVerifier::mock(&other, "alice").salt);
        assert_eq!((m.salt.len(), m.iterations), (16, 4096));
        assert_eq!(run(m, "", Cb::unsupported()), Err(ScramError::WrongPassword));
    }

    #[test]
    fn md5_round_trip() {
        let stored = md5_secret("alice", "pw");
        assert_eq!(stored, password::md5(b"pw", "alice"));
        let salt = [1, 2, 3, 4];
        let reply = md5_hash(b"alice", b"pw", salt);
        assert!(md5_check(&stored, salt, reply.as_bytes()));
        let upper = format!("md5{}", stored[3..].to_ascii_uppercase());
        assert!(md5_check(&upper, salt, reply.as_bytes()));
        assert!(!md5_check(&stored, [4, 3, 2, 1], reply.as_bytes()));
        let wrong = md5_hash(b"alice", b"px", salt);
        assert!(!md5_check(&stored, salt, wrong.as_bytes()));
        assert!(!md5_check(&stored, salt, &reply.as_bytes()[..34]));
        let longer = format!("{stored}0");
        for bad in ["", "md5", "md5xyz", &stored[..20], &longer, "SCRAM-SHA-256$1"] {
            assert!(!md5_check(bad, salt, reply.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn parse_rejects_bad_shapes() {
        let good = ScramVerifier::generate("x").to_string();
        assert!((0..good.len()).all(|n| ScramVerifier::parse(&good[..n]).is_none()));
        let k = STANDARD.encode([0u8; 32]);
        assert!(ScramVerifier::parse(&format!("SCRAM-SHA-256$4096:AAAA${k}:{k}")).is_some());
        // Zero, over the cap, over u32, signed, empty or invalid salt, short key, trailing junk.
        let bad = "0:AAAA 10000001:AAAA 99999999999:AAAA +5:AAAA 1: 1:! 1:AAAA";
        for (i, params) in bad.split(' ').enumerate() {
            let stored = if i == 6 { "AAAA" } else { &k };
            let text = format!("SCRAM-SHA-256${params}${stored}:{k}");
            assert_eq!(ScramVerifier::parse(&text), None, "{text}");
        }
        let extra = format!("SCRAM-SHA-256$1:AAAA${k}:{k}$x");
        assert_eq!(ScramVerifier::parse(&extra), None);
    }

    #[test]
    fn malformed_messages_never_panic() {
        // Few iterations: the client runs PBKDF2 for every case below.
        let v = ScramVerifier::from_password("pw", b"salt", 16);
        let start = |m: &[u8]| ScramExchange::start(v.clone(), m, Binding::NotOffered);
        assert!((0..9).all(|n| start(&b"n,,n=,r=abc"[..n]).is_err()));
        let bad: [&[u8]; 5] = [b"x,,n=,r=a", b"n,a=b,n=,r=a", b"n,,m=x,n=,r=a", b"n,,n=,r=a,b", b"n,,n=,r=\xff"];
        assert!(bad.into_iter().all(|m| malformed(start(m))));
        assert!(start(b"n,,n=\xff\xfe,r=a,x=ext").is_ok());

        // A live exchange and the client's final message for it, so only the tampering is wrong.
        let live = || {
            let mut client = ScramSha256::new(b"pw", Cb::unsupported());
            let (x, server_first) = start(client.message()).unwrap();
            client.update(&server_first).unwrap();
            (x, String::from_utf8(client.message().to_vec()).unwrap())
        };
        for n in 0..live().1.len() {
            let (x, s) = live();
            assert!(x.finish(&s.as_bytes()[..n]).is_err(), "{n}");
        }
        let tampers: [fn(&str) -> String; 5] = [
            |s| s.replacen("c=biws", "c=eSws", 1),
            |s| s.replacen("c=biws", "c=", 1),
            |s| s.replacen(",p=", ",1=x,p=", 1),
            |s| s.replacen(",r=", ",r=zz", 1),
            |s| format!("{s}A"),
        ];
        for tamper in tampers {
            let (x, s) = live();
            assert!(malformed(x.finish(tamper(&s).as_bytes())), "{}", tamper(&s));
        }
        // Well-formed but unsigned extension: parsed, then caught by the proof.
        let (x, s) = live();
        let unsigned = s.replacen(",p=", ",x=\u{ff},p=", 1);
        assert_eq!(x.finish(unsigned.as_bytes()), Err(ScramError::WrongPassword));

        let mut rng = rand::thread_rng();
        for _ in 0..500 {
            let mut junk = vec![0u8; (rng.next_u32() % 64) as usize];
            rng.fill_bytes(&mut junk);
            let text = String::from_utf8_lossy(&junk);
            let _ = (start(&junk), ScramVerifier::parse(&text));
            let _ = md5_check(&text, [0; 4], &junk);
            let _ = start(b"n,,n=,r=abc").unwrap().0.finish(&junk);
        }
    }
}
