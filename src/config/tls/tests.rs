use std::path::PathBuf;

use super::*;
use crate::config::Settings;

/// A directory of PEM files: a CA, a leaf it signed (`server.*`), an unrelated key and junk.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pgsplit-tls-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
        std::fs::write(dir.join("junk.txt"), "not a certificate\n").unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn parse(tls: &str) -> Result<Settings, ConfigError> {
    let text = format!(
        "[[users]]\nname = \"app\"\npassword = \"pw\"\n[databases.app]\nprimary = \"127.0.0.1:5432\"\n[tls]\n{tls}"
    );
    crate::config::from_str_with_env(&text, "test", &|name| (name == "TLS_DIR").then(|| "/nonexistent".to_string()))
}

fn error(tls: &str) -> String {
    parse(tls).unwrap_err().to_string()
}

#[test]
fn no_tls_table_means_plaintext_both_ways() {
    let s = parse("").unwrap();
    assert_eq!(s.tls.client.mode, ClientTlsMode::Disable);
    assert!(!s.tls.client.offered());
    assert_eq!(s.tls.server.mode, ServerTlsMode::Disable);
    let rendered = crate::config::render(&s);
    assert!(rendered.contains("client_tls = \"disable\""), "{rendered}");
    assert!(rendered.contains("server_tls = \"disable\""), "{rendered}");
}

#[test]
fn a_certificate_offers_tls_to_clients() {
    let f = Files::new();
    let s = parse(&format!("cert = {:?}\nkey = {:?}\n", f.path("server.crt"), f.path("server.key"))).unwrap();
    assert_eq!(s.tls.client.mode, ClientTlsMode::Allow);
    assert!(s.tls.client.offered() && !s.tls.client.required());
    let s = parse(&format!(
        "cert = {:?}\nkey = {:?}\nclient_tls = \"require\"\n",
        f.path("server.crt"),
        f.path("server.key")
    ))
    .unwrap();
    assert!(s.tls.client.required());
    let rendered = crate::config::render(&s);
    assert!(rendered.contains("client_tls = \"require\""), "{rendered}");
    assert!(rendered.contains(&f.path("server.key")), "{rendered}");
    let s = parse(&format!(
        "cert = {:?}\nkey = {:?}\nclient_tls = \"disable\"\n",
        f.path("server.crt"),
        f.path("server.key")
    ))
    .unwrap();
    assert!(!s.tls.client.offered());
}

#[test]
fn client_modes_need_a_certificate_and_key() {
    for mode in ["allow", "require"] {
        let err = error(&format!("client_tls = \"{mode}\"\n"));
        assert!(err.contains("tls.client_tls") && err.contains("tls.cert"), "{err}");
    }
    let f = Files::new();
    let err = error(&format!("cert = {:?}\n", f.path("server.crt")));
    assert!(err.contains("tls.cert and tls.key go together"), "{err}");
}

#[test]
fn bad_mode_names_name_the_key() {
    let err = error("client_tls = \"prefer\"\n");
    assert!(err.contains("tls.client_tls") && err.contains("\"prefer\""), "{err}");
    let err = error("server_tls = \"verify-ca\"\n");
    assert!(err.contains("tls.server_tls") && err.contains("verify-full"), "{err}");
}

#[test]
fn unknown_tls_key_names_key_and_line() {
    let err = error("certificate = \"x\"\n");
    assert!(err.contains("certificate") && err.contains("line 7"), "{err}");
}

#[test]
fn unreadable_and_non_pem_files_are_named() {
    let f = Files::new();
    let err = error(&format!("cert = \"${{TLS_DIR}}/server.crt\"\nkey = {:?}\n", f.path("server.key")));
    assert!(err.contains("tls.cert") && err.contains("/nonexistent/server.crt"), "{err}");
    let err = error(&format!("cert = {:?}\nkey = {:?}\n", f.path("junk.txt"), f.path("server.key")));
    assert!(err.contains("tls.cert") && err.contains("no PEM certificate"), "{err}");
    let err = error(&format!("cert = {:?}\nkey = {:?}\n", f.path("server.crt"), f.path("server.crt")));
    assert!(err.contains("tls.key") && err.contains("no PEM private key"), "{err}");
    let err = error(&format!("server_tls = \"verify-full\"\nserver_ca = {:?}\n", f.path("junk.txt")));
    assert!(err.contains("tls.server_ca") && err.contains("no PEM certificate"), "{err}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let f = Files::new();
    let err = error(&format!(
        "cert = {:?}\nkey = {:?}\nclient_tls = \"disable\"\n",
        f.path("server.crt"),
        f.path("other.key")
    ));
    assert!(err.contains("tls.cert and tls.key"), "{err}");
}

#[test]
fn verify_full_needs_a_ca_and_only_it_takes_one() {
    let err = error("server_tls = \"verify-full\"\n");
    assert!(err.contains("tls.server_ca"), "{err}");
    let f = Files::new();
    let s = parse(&format!("server_tls = \"verify-full\"\nserver_ca = {:?}\n", f.path("ca.crt"))).unwrap();
    assert_eq!(s.tls.server.mode, ServerTlsMode::VerifyFull);
    let rendered = crate::config::render(&s);
    assert!(rendered.contains("server_tls = \"verify-full\"") && rendered.contains("ca.crt"), "{rendered}");
    let err = error(&format!("server_tls = \"require\"\nserver_ca = {:?}\n", f.path("ca.crt")));
    assert!(err.contains("only used with") && err.contains("\"require\""), "{err}");
    for mode in ["prefer", "require", "disable"] {
        let s = parse(&format!("server_tls = \"{mode}\"\n")).unwrap();
        assert_eq!(s.tls.server.mode.name(), mode);
    }
}
