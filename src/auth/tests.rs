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
    let (mut login, first) = KeyExchange::start(client_key, looked_up.server_key, None);
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

/// The same login bound to a TLS connection: the server (here pgsplit's own server side, which
/// checks bindings as PostgreSQL does) accepts the right certificate hash and no other.
fn bound_login(end_point: &[u8], server_sees: &[u8]) -> Result<(), &'static str> {
    let verifier = ScramVerifier::generate("s3cret");
    let client_key = recovered_key("s3cret", &verifier);
    let (mut login, first) = KeyExchange::start(client_key, verifier.server_key, Some(end_point));
    assert!(first.starts_with(b"p=tls-server-end-point,,"));
    let binding = Binding::TlsServerEndPoint(server_sees.to_vec());
    let (server, server_first) = ScramExchange::start(verifier, &first, binding).unwrap();
    let client_final = login.answer(&server_first)?;
    let done = server.finish(&client_final).map_err(|_| "the server refused the binding")?;
    login.verify(&done.server_final)
}

#[test]
fn keys_can_be_bound_to_the_servers_certificate() {
    assert_eq!(bound_login(&[7; 32], &[7; 32]), Ok(()));
    assert_eq!(bound_login(&[7; 32], &[8; 32]), Err("the server refused the binding"));
}
