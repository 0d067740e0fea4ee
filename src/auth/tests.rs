//! Auth passthrough end to end without sockets: the ClientKey a client's login gives pgsplit
//! logs it into a server holding the same verifier, and into no other.

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::binding::Binding;
use super::scram::{ScramExchange, ScramVerifier};
use crate::server::passthrough::KeyExchange;

/// The ClientKey pgsplit recovers when a client logs in with `password` against `verifier`.
fn recovered_key(password: &str, verifier: &ScramVerifier) -> [u8; 32] {
    let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let (server, first) = ScramExchange::start(verifier.clone(), client.message(), Binding::NotOffered).unwrap();
    client.update(&first).unwrap();
    server.finish(client.message()).expect("the right password").client_key
}

/// pgsplit logging into a "server" holding `held`, with keys from a login against `looked_up`.
fn server_login(looked_up: &ScramVerifier, password: &str, held: &ScramVerifier) -> Result<(), &'static str> {
    let client_key = recovered_key(password, looked_up);
    let (mut login, first) = KeyExchange::start(client_key, looked_up.server_key);
    let (server, server_first) = ScramExchange::start(held.clone(), &first, Binding::NotOffered).unwrap();
    let client_final = login.answer(&server_first)?;
    let done = server.finish(&client_final).map_err(|_| "the server refused the proof")?;
    login.verify(&done.server_final)
}

#[test]
fn keys_from_a_client_login_log_into_a_server_with_the_same_verifier() {
    let verifier = ScramVerifier::generate("s3cret");
    assert_eq!(server_login(&verifier, "s3cret", &verifier), Ok(()));
}

#[test]
fn keys_are_refused_by_a_server_whose_password_changed() {
    let old = ScramVerifier::generate("s3cret");
    let new = ScramVerifier::generate("changed");
    assert_eq!(server_login(&old, "s3cret", &new), Err("the server refused the proof"));
    // Same password, new salt (ALTER ROLE with the same password): other keys, refused too.
    let resalted = ScramVerifier::generate("s3cret");
    assert_eq!(server_login(&old, "s3cret", &resalted), Err("the server refused the proof"));
}

#[test]
fn the_recovered_key_is_the_one_the_password_derives() {
    let verifier = ScramVerifier::from_password("pw", b"0123456789abcdef", 4096);
    let key = recovered_key("pw", &verifier);
    let stored: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(key).into();
    assert_eq!(stored, verifier.stored_key);
}
