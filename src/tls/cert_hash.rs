//! The `tls-server-end-point` channel-binding data of a certificate (RFC 5929 §4.1): its DER
//! hashed with the hash of its own signature algorithm, MD5 and SHA-1 raised to SHA-256.
//!
//! Only the signatureAlgorithm OID is read, by a few lines of DER walking, so no X.509 parser is
//! pulled in for one field. The algorithms mapped are those PostgreSQL (through OpenSSL) maps; for
//! any other (Ed25519, RSA-PSS) PostgreSQL has no hash either, and pgsplit then offers no
//! channel binding rather than one no client can match.

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// DER tag of a SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// DER tag of an OBJECT IDENTIFIER.
const OID: u8 = 0x06;

// Signature algorithm OIDs (contents octets), by the hash each one signs with.
const MD5_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04]; // 1.2.840.113549.1.1.4
const SHA1_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]; // 1.2.840.113549.1.1.5
const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]; // 1.2.840.113549.1.1.11
const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]; // 1.2.840.113549.1.1.12
const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]; // 1.2.840.113549.1.1.13
const SHA224_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e]; // 1.2.840.113549.1.1.14
const ECDSA_WITH_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]; // 1.2.840.10045.4.1
const ECDSA_WITH_SHA224: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01]; // 1.2.840.10045.4.3.1
const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]; // 1.2.840.10045.4.3.2
const ECDSA_WITH_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]; // 1.2.840.10045.4.3.3
const ECDSA_WITH_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]; // 1.2.840.10045.4.3.4

/// The certificate's `tls-server-end-point` data, or `None` when its DER does not parse or its
/// signature algorithm names no hash PostgreSQL would use.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    Some(match signature_algorithm(cert_der)? {
        MD5_WITH_RSA | SHA1_WITH_RSA | ECDSA_WITH_SHA1 => Sha256::digest(cert_der).to_vec(),
        SHA224_WITH_RSA | ECDSA_WITH_SHA224 => Sha224::digest(cert_der).to_vec(),
        SHA256_WITH_RSA | ECDSA_WITH_SHA256 => Sha256::digest(cert_der).to_vec(),
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => Sha384::digest(cert_der).to_vec(),
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => Sha512::digest(cert_der).to_vec(),
        _ => return None,
    })
}

/// The OID of `Certificate.signatureAlgorithm`: Certificate ::= SEQUENCE { tbsCertificate
/// SEQUENCE, signatureAlgorithm SEQUENCE { algorithm OID, parameters ANY OPTIONAL }, … }.
fn signature_algorithm(cert_der: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, certificate, _) = element(cert_der)? else { return None };
    let (SEQUENCE, _tbs, rest) = element(certificate)? else { return None };
    let (SEQUENCE, algorithm, _) = element(rest)? else { return None };
    let (OID, oid, _) = element(algorithm)? else { return None };
    Some(oid)
}

/// Splits one DER element off the front of `der`: its tag, its contents and what follows it.
/// Single-byte tags and definite lengths up to four bytes, which is all a certificate's outer
/// structure uses.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let (bytes, rest) = rest.split_at_checked(usize::from(first & 0x7f))?;
            (bytes.iter().fold(0usize, |len, &b| len << 8 | usize::from(b)), rest)
        }
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal DER shape of a certificate signed with `oid`: an empty TBS, the algorithm, and
    /// `pad` bytes of signature so long-form lengths get exercised.
    fn fake_cert(oid: &[u8], pad: usize) -> Vec<u8> {
        let tlv = |tag: u8, body: &[u8]| {
            let mut out = vec![tag];
            match body.len() {
                n @ 0..=0x7f => out.push(n as u8),
                n @ 0x80..=0xff => out.extend([0x81, n as u8]),
                n => out.extend([0x82, (n >> 8) as u8, n as u8]),
            }
            [out, body.to_vec()].concat()
        };
        let algorithm = tlv(SEQUENCE, &[tlv(OID, oid), vec![0x05, 0x00]].concat());
        let signature = tlv(0x03, &vec![0u8; pad]);
        tlv(SEQUENCE, &[tlv(SEQUENCE, &[]), algorithm, signature].concat())
    }

    #[test]
    fn hash_follows_the_signature_algorithm() {
        let cases: [(&[u8], usize); 11] = [
            (MD5_WITH_RSA, 32),
            (SHA1_WITH_RSA, 32),
            (ECDSA_WITH_SHA1, 32),
            (SHA224_WITH_RSA, 28),
            (SHA256_WITH_RSA, 32),
            (ECDSA_WITH_SHA256, 32),
            (SHA384_WITH_RSA, 48),
            (ECDSA_WITH_SHA384, 48),
            (SHA512_WITH_RSA, 64),
            (ECDSA_WITH_SHA512, 64),
            (ECDSA_WITH_SHA224, 28),
        ];
        for (oid, len) in cases {
            for pad in [3, 200, 600] {
                let cert = fake_cert(oid, pad);
                let hash = tls_server_end_point(&cert).unwrap_or_else(|| panic!("{oid:x?} {pad}"));
                assert_eq!(hash.len(), len, "{oid:x?}");
            }
        }
        let cert = fake_cert(SHA384_WITH_RSA, 10);
        assert_eq!(tls_server_end_point(&cert).unwrap(), Sha384::digest(&cert).to_vec());
        let cert = fake_cert(SHA1_WITH_RSA, 10);
        assert_eq!(tls_server_end_point(&cert).unwrap(), Sha256::digest(&cert).to_vec());
    }

    #[test]
    fn real_certificates_from_rcgen() {
        for (alg, hash_len) in [(&rcgen::PKCS_ECDSA_P256_SHA256, 32), (&rcgen::PKCS_ECDSA_P384_SHA384, 48)] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
            let hash = tls_server_end_point(cert.der()).expect("ECDSA certificates have a hash");
            assert_eq!(hash.len(), hash_len);
        }
        // Ed25519 signs without a separate hash: no tls-server-end-point data, as in PostgreSQL.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(tls_server_end_point(cert.der()), None);
    }

    #[test]
    fn bad_der_is_none_and_never_panics() {
        let good = fake_cert(SHA256_WITH_RSA, 300);
        assert!((0..good.len()).all(|n| tls_server_end_point(&good[..n]).is_none()));
        let unknown = fake_cert(&[0x2b, 0x65, 0x70], 10); // 1.3.101.112, Ed25519
        assert_eq!(tls_server_end_point(&unknown), None);
        for junk in [&[0x30, 0x80][..], &[0x30, 0x85, 1, 1, 1, 1, 1], &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], &[]] {
            assert_eq!(tls_server_end_point(junk), None);
        }
    }
}
