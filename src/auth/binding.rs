//! SCRAM channel binding (RFC 5802 §6 with RFC 5929's `tls-server-end-point`, the only type
//! PostgreSQL knows): which SASL mechanisms a connection is offered, and what the client's gs2
//! header and `c=` attribute must hold for the one it chose. Pure, no I/O.

use super::scram::ScramError;

/// SCRAM without channel binding.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// SCRAM bound to the TLS connection.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The gs2 channel-binding flag of a client using `tls-server-end-point`.
const END_POINT_FLAG: &[u8] = b"p=tls-server-end-point";

/// Channel binding as settled by what was offered and the mechanism the client chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Only SCRAM-SHA-256 was offered (plain TCP, or a certificate with no defined hash): the
    /// client says "n" (cannot bind) or "y" (could, but saw no offer).
    NotOffered,
    /// SCRAM-SHA-256-PLUS was offered and the client chose SCRAM-SHA-256: "n" only. A "y" says
    /// the client saw no PLUS in the list, so someone between removed it (a downgrade).
    Declined,
    /// The client chose SCRAM-SHA-256-PLUS: `p=tls-server-end-point` over this certificate hash.
    TlsServerEndPoint(Vec<u8>),
}

impl Binding {
    /// The mechanisms to offer: PLUS first, as PostgreSQL lists them, when the connection has
    /// `tls-server-end-point` data (`end_point`).
    pub fn mechanisms(end_point: Option<&[u8]>) -> &'static [&'static str] {
        match end_point {
            Some(_) => &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256],
            None => &[SCRAM_SHA_256],
        }
    }

    /// What the client's choice of `mechanism` binds it to; `None` for a mechanism not offered.
    pub fn chosen(mechanism: &[u8], end_point: Option<&[u8]>) -> Option<Self> {
        match (mechanism, end_point) {
            (b"SCRAM-SHA-256", None) => Some(Binding::NotOffered),
            (b"SCRAM-SHA-256", Some(_)) => Some(Binding::Declined),
            (b"SCRAM-SHA-256-PLUS", Some(hash)) => Some(Binding::TlsServerEndPoint(hash.to_vec())),
            _ => None,
        }
    }

    /// Checks the gs2 channel-binding flag (the first field of the client-first message), with
    /// PostgreSQL's wording for each refusal.
    pub(super) fn check_flag(&self, flag: &[u8]) -> Result<(), ScramError> {
        let bound = flag.starts_with(b"p=");
        if !bound && flag != b"n" && flag != b"y" {
            return Err(ScramError::Malformed("unknown channel-binding flag"));
        }
        match self {
            Binding::NotOffered | Binding::Declined if bound => Err(ScramError::ChannelBinding(
                "malformed SCRAM message: the client selected SCRAM-SHA-256 without channel binding, \
                 but the SCRAM message includes channel binding data",
            )),
            Binding::Declined if flag == b"y" => Err(ScramError::ChannelBinding(
                "SCRAM channel binding negotiation error: the client supports SCRAM channel binding \
                 but thinks the server does not, and this server does support it",
            )),
            Binding::NotOffered | Binding::Declined => Ok(()),
            Binding::TlsServerEndPoint(_) if !bound => Err(ScramError::ChannelBinding(
                "malformed SCRAM message: the client selected SCRAM-SHA-256-PLUS, \
                 but the SCRAM message does not include channel binding data",
            )),
            Binding::TlsServerEndPoint(_) if flag != END_POINT_FLAG => {
                Err(ScramError::ChannelBinding("unsupported SCRAM channel-binding type"))
            }
            Binding::TlsServerEndPoint(_) => Ok(()),
        }
    }

    /// Checks the decoded `c=` attribute of the client-final message: the gs2 header as sent,
    /// then, with PLUS, the certificate hash the client saw. A hash that differs means the client
    /// and pgsplit do not share one TLS connection (a man in the middle): a failed login.
    pub(super) fn check_data(&self, gs2_header: &[u8], c: Option<&[u8]>) -> Result<(), ScramError> {
        let data = match self {
            Binding::TlsServerEndPoint(hash) => &hash[..],
            Binding::NotOffered | Binding::Declined => &[],
        };
        if c == Some(&[gs2_header, data].concat()[..]) {
            return Ok(());
        }
        Err(match self {
            Binding::TlsServerEndPoint(_) => ScramError::ChannelBinding("SCRAM channel binding check failed"),
            Binding::NotOffered | Binding::Declined => {
                ScramError::Malformed("channel-binding data does not match the gs2 header")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::{ScramExchange, ScramSuccess, ScramVerifier};
    use postgres_protocol::authentication::sasl::{ChannelBinding as Cb, ScramSha256};

    const HASH: &[u8] = &[7; 32];

    /// Few iterations: the client runs PBKDF2 for every exchange.
    fn verifier() -> ScramVerifier {
        ScramVerifier::from_password("pw", b"salt", 16)
    }

    /// A whole exchange with the real client: pgsplit's verdict, and whether the client then
    /// accepted pgsplit's server-final message.
    fn run(binding: Binding, cb: Cb) -> Result<bool, ScramError> {
        let mut client = ScramSha256::new(b"pw", cb);
        let (server, server_first) = ScramExchange::start(verifier(), client.message(), binding)?;
        client.update(&server_first).expect("accepts server-first");
        let ScramSuccess { server_final, .. } = server.finish(client.message())?;
        Ok(client.finish(&server_final).is_ok())
    }

    fn refused(r: Result<bool, ScramError>, words: &str) -> bool {
        matches!(r, Err(ScramError::ChannelBinding(m)) if m.contains(words))
    }

    #[test]
    fn offers_plus_only_with_end_point_data() {
        assert_eq!(Binding::mechanisms(None), [SCRAM_SHA_256]);
        assert_eq!(Binding::mechanisms(Some(HASH)), [SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);
        assert_eq!(Binding::chosen(b"SCRAM-SHA-256", None), Some(Binding::NotOffered));
        assert_eq!(Binding::chosen(b"SCRAM-SHA-256", Some(HASH)), Some(Binding::Declined));
        let plus = Binding::chosen(b"SCRAM-SHA-256-PLUS", Some(HASH));
        assert_eq!(plus, Some(Binding::TlsServerEndPoint(HASH.to_vec())));
        assert_eq!(Binding::chosen(b"SCRAM-SHA-256-PLUS", None), None);
        assert_eq!(Binding::chosen(b"SCRAM-SHA-1", Some(HASH)), None);
    }

    #[test]
    fn plus_with_the_right_hash_logs_in() {
        let r = run(Binding::TlsServerEndPoint(HASH.to_vec()), Cb::tls_server_end_point(HASH.to_vec()));
        assert_eq!(r, Ok(true));
    }

    #[test]
    fn plus_with_another_certificate_hash_fails() {
        // The client saw another certificate: a TLS connection that is not pgsplit's.
        let r = run(Binding::TlsServerEndPoint(HASH.to_vec()), Cb::tls_server_end_point(vec![8; 32]));
        assert!(refused(r, "SCRAM channel binding check failed"));
        let short = run(Binding::TlsServerEndPoint(HASH.to_vec()), Cb::tls_server_end_point(HASH[..31].to_vec()));
        assert!(refused(short, "SCRAM channel binding check failed"));
    }

    #[test]
    fn y_is_a_downgrade_when_plus_was_offered() {
        let r = run(Binding::Declined, Cb::unrequested());
        assert!(refused(r, "SCRAM channel binding negotiation error"));
        // Without an offer, "y" is the honest answer of a client that could bind.
        assert_eq!(run(Binding::NotOffered, Cb::unrequested()), Ok(true));
        // A client that cannot bind (no TLS on its side) may still decline PLUS.
        assert_eq!(run(Binding::Declined, Cb::unsupported()), Ok(true));
    }

    #[test]
    fn binding_data_is_refused_unless_plus_was_chosen() {
        for binding in [Binding::NotOffered, Binding::Declined] {
            let r = run(binding, Cb::tls_server_end_point(HASH.to_vec()));
            assert!(refused(r, "without channel binding"));
        }
        let plus = Binding::TlsServerEndPoint(HASH.to_vec());
        for cb in [Cb::unsupported(), Cb::unrequested()] {
            assert!(refused(run(plus.clone(), cb), "does not include channel binding data"));
        }
        let other = ScramExchange::start(verifier(), b"p=tls-unique,,n=,r=abc", plus);
        assert!(matches!(other, Err(ScramError::ChannelBinding("unsupported SCRAM channel-binding type"))));
    }

    #[test]
    fn plus_c_attribute_must_carry_header_and_hash() {
        let plus = Binding::TlsServerEndPoint(HASH.to_vec());
        let header = b"p=tls-server-end-point,,";
        let good = [&header[..], HASH].concat();
        assert_eq!(plus.check_data(header, Some(&good)), Ok(()));
        let failed = Err(ScramError::ChannelBinding("SCRAM channel binding check failed"));
        // The header alone (the client-first's binding without the data), or an appended byte.
        for c in [&header[..], &[&good[..], b"x"].concat(), &[b"n,,", HASH].concat()] {
            assert_eq!(plus.check_data(header, Some(c)), failed);
        }
        assert_eq!(plus.check_data(header, None), failed);
        assert_eq!(Binding::Declined.check_data(b"n,,", Some(b"n,,")), Ok(()));
        assert!(Binding::Declined.check_data(b"n,,", Some(b"y,,")).is_err());
    }
}
