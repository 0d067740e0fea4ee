//! SCRAM channel binding through pgsplit: over TLS, clients are offered SCRAM-SHA-256-PLUS bound
//! to pgsplit's own certificate (`tls-server-end-point`, hashed as the certificate's signature
//! algorithm says), so `channel_binding=require` works for tokio-postgres and psql; over plain TCP
//! only SCRAM-SHA-256 is offered. Raw exchanges show the refusals: the hash of another
//! certificate, and a "y" (a client told nothing of PLUS: a downgrade) while PLUS was offered.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{self, Proxy};
use crate::raw;
use crate::tls::{connect_tls, connector};

/// A CA and a certificate it signed for localhost and 127.0.0.1, on disk for pgsplit's config.
struct Minted {
    ca_pem: String,
    cert_path: String,
    key_path: String,
    /// The certificate's DER, which `tls-server-end-point` hashes.
    cert_der: Vec<u8>,
}

/// Mints a CA signing with `alg` and pgsplit's certificate under it: the certificate's signature
/// algorithm, which the channel-binding hash follows, is the CA's.
fn mint(alg: &'static rcgen::SignatureAlgorithm) -> Minted {
    let cluster_dir = &harness::cluster().dir;
    let base = if cluster_dir.as_os_str().is_empty() { std::env::temp_dir() } else { cluster_dir.clone() };
    let dir: PathBuf = base.join(harness::unique("pgsplit-it-cb"));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "channel binding CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (cert_path, key_path) = (dir.join("proxy.crt"), dir.join("proxy.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    let path = |p: PathBuf| p.display().to_string();
    Minted { ca_pem: ca.pem(), cert_path: path(cert_path), key_path: path(key_path), cert_der: cert.der().to_vec() }
}

/// The CA file psql is told to trust.
fn ca_file(m: &Minted) -> String {
    PathBuf::from(&m.cert_path).with_file_name("ca.crt").display().to_string()
}

/// pgsplit with `m`'s certificate, offering TLS to clients in `mode`.
async fn proxy_with(m: &Minted, mode: &str) -> Proxy {
    let tls = format!("cert = {:?}\nkey = {:?}\nclient_tls = \"{mode}\"", m.cert_path, m.key_path);
    Proxy::with_config(&format!("{}\n[tls]\n{tls}\n", harness::test_config("size = 4", ""))).await
}

fn conn_str(proxy: &Proxy, extra: &str) -> String {
    format!("host=localhost hostaddr=127.0.0.1 port={} user=app password=app dbname=app {extra}", proxy.addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_require_over_tls_with_tokio_postgres() {
    // SHA-256 and SHA-384 signed certificates: the hash must follow the signature algorithm.
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384] {
        let m = mint(alg);
        let proxy = proxy_with(&m, "require").await;
        for binding in ["require", "prefer", "disable"] {
            let conn = conn_str(&proxy, &format!("sslmode=require channel_binding={binding}"));
            let client =
                connect_tls(&conn, connector(&m.ca_pem, false)).await.unwrap_or_else(|e| panic!("{binding}: {e}"));
            let row = client.query_one("select $1::int + 1", &[&41i32]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 42);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_require_over_plain_tcp_fails_cleanly() {
    let m = mint(&rcgen::PKCS_ECDSA_P256_SHA256);
    let proxy = proxy_with(&m, "allow").await;
    // Only SCRAM-SHA-256 is offered in the clear, so the client gives up on its own.
    let err = harness::connect(&conn_str(&proxy, "sslmode=disable channel_binding=require")).await.unwrap_err();
    assert!(format!("{err:?}").contains("server did not use channel binding"), "{err:?}");
    assert_eq!(err.code(), None, "refused by the client, not by pgsplit");
    let client = harness::connect(&conn_str(&proxy, "sslmode=disable")).await.unwrap();
    client.batch_execute("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_require_with_psql() {
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384] {
        let m = mint(alg);
        let proxy = proxy_with(&m, "allow").await;
        let tls = format!("sslmode=verify-full sslrootcert={} channel_binding=require", ca_file(&m));
        let out = psql(conn_str(&proxy, &tls)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout, "42\n");
        let out = psql(conn_str(&proxy, "sslmode=disable channel_binding=require")).await;
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("channel binding"), "{out:?}");
    }
}

async fn psql(conn: String) -> std::process::Output {
    let run = move || Command::new("psql").arg(conn).args(["-X", "-At", "-c", "select 40 + 2"]).output();
    tokio::task::spawn_blocking(run).await.unwrap().expect("psql runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_is_offered_over_tls_only_and_checked() {
    let m = mint(&rcgen::PKCS_ECDSA_P384_SHA384);
    let proxy = proxy_with(&m, "allow").await;
    // The hash pgsplit must expect, computed here from the certificate: SHA-384, as it is signed.
    let hash = sha2::Sha384::digest(&m.cert_der).to_vec();
    let plus = |hash: Vec<u8>| ("SCRAM-SHA-256-PLUS", ChannelBinding::tls_server_end_point(hash));

    let mut plain = TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(start(&mut plain, "app").await, ["SCRAM-SHA-256"]);
    let mut tls = tls_stream(&proxy, &m).await;
    assert_eq!(start(&mut tls, "app").await, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    assert_eq!(scram(&mut tls, plus(hash.clone())).await, Ok(()));

    // Another certificate's hash: the client's TLS connection does not end at pgsplit. The same
    // refusal whether the user exists or not.
    for user in ["app", "nobody"] {
        let mut tls = tls_stream(&proxy, &m).await;
        start(&mut tls, user).await;
        let refused = scram(&mut tls, plus(sha2::Sha384::digest(b"another certificate").to_vec())).await;
        let (code, message) = refused.unwrap_err();
        assert_eq!(code, "08P01", "{message}");
        assert!(message.contains("SCRAM channel binding check failed"), "{message}");
    }

    // "y": the client could bind but saw no PLUS offered, so the offer was stripped on the way.
    let mut tls = tls_stream(&proxy, &m).await;
    start(&mut tls, "app").await;
    let (code, message) = scram(&mut tls, ("SCRAM-SHA-256", ChannelBinding::unrequested())).await.unwrap_err();
    assert_eq!(code, "08P01", "{message}");
    assert!(message.contains("SCRAM channel binding negotiation error"), "{message}");
    // "n" (a client without channel binding) is still served over TLS.
    let mut tls = tls_stream(&proxy, &m).await;
    start(&mut tls, "app").await;
    assert_eq!(scram(&mut tls, ("SCRAM-SHA-256", ChannelBinding::unsupported())).await, Ok(()));
}

/// A TLS connection to pgsplit after an SSLRequest, verified against `m`'s CA.
async fn tls_stream(proxy: &Proxy, m: &Minted) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.unwrap();
    assert_eq!(tcp.read_u8().await.unwrap(), b'S');
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(m.ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

/// Sends a StartupMessage as `user`; returns the SASL mechanisms pgsplit offers.
async fn start<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, user: &str) -> Vec<String> {
    s.write_all(&raw::startup_message(&[("user", user), ("database", "app")])).await.unwrap();
    let (tag, body) = read_message(s).await;
    assert_eq!((tag, &body[..4]), (b'R', &10u32.to_be_bytes()[..]), "AuthenticationSASL");
    let names = body[4..].split(|&b| b == 0).filter(|n| !n.is_empty());
    names.map(|n| String::from_utf8(n.to_vec()).unwrap()).collect()
}

/// Runs a SCRAM exchange with password "app" as the given mechanism and channel binding: `Ok`
/// at AuthenticationOk, else the ErrorResponse's SQLSTATE and message.
async fn scram<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    (mechanism, binding): (&str, ChannelBinding),
) -> Result<(), (String, String)> {
    let mut client = ScramSha256::new(b"app", binding);
    let mut initial = format!("{mechanism}\0").into_bytes();
    initial.extend((client.message().len() as u32).to_be_bytes());
    initial.extend(client.message());
    s.write_all(&raw::message(b'p', &initial)).await.unwrap();
    let body = expect_auth(s, 11).await?;
    client.update(&body).unwrap();
    s.write_all(&raw::message(b'p', client.message())).await.unwrap();
    let body = expect_auth(s, 12).await?;
    client.finish(&body).expect("pgsplit's server signature checks out");
    expect_auth(s, 0).await.map(drop)
}

/// The body after the code of an Authentication message with `code`, or the error sent instead.
async fn expect_auth<S: AsyncRead + Unpin>(s: &mut S, code: u32) -> Result<Vec<u8>, (String, String)> {
    let (tag, body) = read_message(s).await;
    if tag == b'E' {
        let field = |f: u8| {
            let found = body.split(|&b| b == 0).find(|x| x.first() == Some(&f));
            String::from_utf8_lossy(&found.unwrap_or(b" ")[1..]).into_owned()
        };
        return Err((field(b'C'), field(b'M')));
    }
    assert_eq!((tag, &body[..4]), (b'R', &code.to_be_bytes()[..]));
    Ok(body[4..].to_vec())
}

async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> (u8, Vec<u8>) {
    let read = async {
        let tag = s.read_u8().await.unwrap();
        let mut body = vec![0; s.read_u32().await.unwrap() as usize - 4];
        s.read_exact(&mut body).await.unwrap();
        (tag, body)
    };
    tokio::time::timeout(raw::HANG, read).await.expect("pgsplit answers")
}
