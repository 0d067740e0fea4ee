//! Target for SCRAM message parsing: the SASLInitialResponse framing, the client-first message,
//! and the client-final message of a live exchange (so a mutation is the only thing wrong with
//! it), with and without channel binding, plus stored verifiers and md5 replies.

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use proptest::prelude::*;

use super::mutate::{apply, mutated, mutations, Mutation};
use super::{run, seeds};
use crate::auth::binding::Binding;
use crate::auth::scram::{md5_check, md5_secret, ScramError, ScramExchange, ScramVerifier};
use crate::protocol::from_client;

/// Which SCRAM input a case changes.
#[derive(Clone, Debug)]
enum Input {
    /// A password message body as a client sends it first (SASLInitialResponse, or md5/cleartext).
    Initial(Vec<u8>),
    /// A live exchange, bound to a TLS certificate hash when `plus`, whose client-first and
    /// client-final are mutated as given.
    Live { plus: bool, first: Vec<Mutation>, last: Vec<Mutation> },
    /// A stored secret, as read from the config file.
    Verifier(Vec<u8>),
}

#[test]
fn scram() {
    // Few iterations: the client side of each live exchange runs PBKDF2 too.
    let verifier = ScramVerifier::from_password("pw", b"salt", 2);
    let secrets = vec![verifier.to_string().into_bytes(), md5_secret("app", "pw").into_bytes()];
    let input = prop_oneof![
        2 => mutated(seeds::password_bodies(), 6).prop_map(Input::Initial),
        2 => (any::<bool>(), mutations(3), mutations(3)).prop_map(|(plus, first, last)| Input::Live { plus, first, last }),
        1 => mutated(secrets, 4).prop_map(Input::Verifier),
    ];
    run("scram", 10_000, input, |input| match input {
        Input::Initial(body) => {
            if let Some((mechanism, client_first)) = from_client::sasl_initial_response(&body) {
                assert!(mechanism.len() + client_first.len() < body.len());
                for binding in [Binding::NotOffered, Binding::Declined, Binding::TlsServerEndPoint(END_POINT.to_vec())]
                {
                    let _ = ScramExchange::start(verifier.clone(), client_first, binding);
                }
            }
            let _ = md5_check(&md5_secret("app", "pw"), [1, 2, 3, 4], body.strip_suffix(&[0]).unwrap_or(&body));
        }
        Input::Live { plus, first, last } => live_exchange(&verifier, plus, &first, &last),
        Input::Verifier(text) => {
            let text = String::from_utf8_lossy(&text);
            if let Some(parsed) = ScramVerifier::parse(&text) {
                assert_eq!(ScramVerifier::parse(&parsed.to_string()), Some(parsed));
            }
            let _ = md5_check(&text, [0; 4], b"md5");
        }
    });
}

/// A stand-in for a certificate's `tls-server-end-point` hash.
const END_POINT: &[u8] = &[0x5a; 32];

/// One exchange with postgres-protocol's client, whose messages are mutated on the way: any
/// change to the client-final message must fail the login (the proof covers every byte of it).
fn live_exchange(verifier: &ScramVerifier, plus: bool, first: &[Mutation], last: &[Mutation]) {
    let (cb, binding) = match plus {
        true => {
            (ChannelBinding::tls_server_end_point(END_POINT.to_vec()), Binding::TlsServerEndPoint(END_POINT.to_vec()))
        }
        false => (ChannelBinding::unsupported(), Binding::NotOffered),
    };
    let mut client = ScramSha256::new(b"pw", cb);
    let client_first = apply(client.message().to_vec(), first, &[]);
    let Ok((exchange, server_first)) = ScramExchange::start(verifier.clone(), &client_first, binding) else { return };
    if client_first != client.message() || client.update(&server_first).is_err() {
        return;
    }
    let client_final = client.message().to_vec();
    let sent = apply(client_final.clone(), last, &[]);
    match exchange.finish(&sent) {
        Ok(_) => assert_eq!(sent, client_final, "a changed client-final message logged in"),
        Err(ScramError::WrongPassword | ScramError::Malformed(_) | ScramError::ChannelBinding(_)) => {
            assert_ne!(sent, client_final, "the real client-final message was refused")
        }
    }
}
