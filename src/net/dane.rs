//! DANE's certificate check (RFC 6698, RFC 7671, RFC 7672 §3): a server's chain matched
//! against the TLSA records of its MX host, records that [`super::dns`] found secure
//! (DNSSEC-validated). It replaces the Web PKI for that host: the records say which
//! certificate or which issuer the host uses, so no public CA is needed or trusted.
//!
//! Only what RFC 7672 §3.1 lets SMTP use:
//! - DANE-EE (usage 3): the server's own certificate or key matches a record. Its names and
//!   dates are not checked (RFC 7672 §3.1.1: the DNS binds the key to the host; an expired
//!   certificate with a matching key is still that host's key).
//! - DANE-TA (usage 2): a certificate of the chain the server sent matches a record, and
//!   the server's certificate chains to it, in date and valid for the MX host's name
//!   (RFC 7672 §3.1.2, §3.2.2; the trust anchor must be in the chain, RFC 7671 §5.2.2).
//! - Selectors 0 (the whole certificate) and 1 (its SubjectPublicKeyInfo); matching types
//!   0 (the bytes), 1 (SHA-256), 2 (SHA-512).
//!
//! PKIX-TA and PKIX-EE (usages 0 and 1) are unusable for SMTP (RFC 7672 §3.1.3): they are
//! ignored; a host with only unusable records still gets TLS required, unauthenticated
//! (RFC 7672 §2.2: "encrypt"), which [`usable`] lets the caller decide.

use super::x509;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, OtherError};
use std::fmt;
use std::sync::Arc;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlsa {
    /// Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// 0: the full certificate; 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: the selected bytes; 1: their SHA-256; 2: their SHA-512.
    pub matching: u8,
    /// The certificate association data.
    pub data: Vec<u8>,
}

/// DANE-TA: a trust anchor the server's chain must lead to.
pub const DANE_TA: u8 = 2;
/// DANE-EE: the server's own certificate or key.
pub const DANE_EE: u8 = 3;

impl Tlsa {
    /// True when SMTP may use it (RFC 7672 §3.1.3): DANE-TA or DANE-EE, a known selector
    /// and matching type, data of the length the matching type makes.
    pub fn is_usable(&self) -> bool {
        let length_ok = match self.matching {
            0 => !self.data.is_empty(),
            1 => self.data.len() == 32,
            2 => self.data.len() == 64,
            _ => false,
        };
        matches!(self.usage, DANE_TA | DANE_EE) && self.selector <= 1 && length_ok
    }

    /// True when this record's data is that of the certificate `der`.
    pub fn matches(&self, der: &[u8]) -> bool {
        let selected = match self.selector {
            0 => der,
            1 => match x509::spki(der) {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        let digest;
        let made: &[u8] = match self.matching {
            0 => selected,
            1 => {
                digest = ring::digest::digest(&ring::digest::SHA256, selected);
                digest.as_ref()
            }
            2 => {
                digest = ring::digest::digest(&ring::digest::SHA512, selected);
                digest.as_ref()
            }
            _ => return false,
        };
        // The data is public (it is in the DNS): no need for a constant-time comparison.
        made == self.data.as_slice()
    }
}

impl fmt::Display for Tlsa {
    /// As in a zone file: `3 1 1 AA68...` (hex in upper case, dig's way).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        for b in &self.data {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// The records SMTP may use among `records` (RFC 7672 §3.1.3).
pub fn usable(records: &[Tlsa]) -> Vec<Tlsa> {
    records.iter().filter(|r| r.is_usable()).cloned().collect()
}

/// Why a chain matched no record: the error a handshake fails with, which
/// [`super::tls`] puts into words.
#[derive(Debug)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// Check the chain a server sent (`end_entity`, then `intermediates`) against the usable
/// `records` of the host `name`. Ok when a DANE-EE record matches the server's certificate,
/// or a DANE-TA record matches a certificate of the chain that the server's certificate
/// chains to, valid now and for `name`.
pub fn verify(
    records: &[Tlsa],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    name: &ServerName<'_>,
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<(), rustls::Error> {
    let records = usable(records);
    // RFC 7672 §3.1.1: DANE-EE, names and dates ignored.
    if records
        .iter()
        .any(|r| r.usage == DANE_EE && r.matches(end_entity.as_ref()))
    {
        return Ok(());
    }
    // RFC 7672 §3.1.2: DANE-TA. Each certificate of the chain that matches a record is
    // tried as the only trust anchor; webpki checks the path, the dates and the name.
    let mut why = None;
    for anchor in intermediates {
        if !records
            .iter()
            .any(|r| r.usage == DANE_TA && r.matches(anchor.as_ref()))
        {
            continue;
        }
        let mut roots = rustls::RootCertStore::empty();
        if roots.add(anchor.clone().into_owned()).is_err() {
            continue;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        match webpki.verify_server_cert(end_entity, intermediates, name, &[], now) {
            Ok(_) => return Ok(()),
            Err(e) => {
                why.get_or_insert(e);
            }
        }
    }
    // A DANE-TA anchor was found but the chain to it is wrong (expired, another name):
    // webpki's own error says which.
    if let Some(e) = why {
        return Err(e);
    }
    let list = records
        .iter()
        .map(Tlsa::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(rustls::Error::InvalidCertificate(CertificateError::Other(
        OtherError(Arc::new(Mismatch(format!(
            "matches none of the DNSSEC-signed TLSA records of {} ({list}): DANE (RFC 7672) \
             forbids delivery to it",
            name.to_str()
        )))),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn sha256(b: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .to_vec()
    }

    fn rec(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    /// A CA and a server certificate it issued for `names`, valid in `years` (from, to).
    struct Chain {
        ca: CertificateDer<'static>,
        ee: CertificateDer<'static>,
        ee_key: Vec<u8>,
    }

    fn chain(names: &[&str], from: i32, to: i32) -> Chain {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test TA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ee =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        ee.not_before = rcgen::date_time_ymd(from, 1, 1);
        ee.not_after = rcgen::date_time_ymd(to, 1, 1);
        let ee = ee.signed_by(&key, &ca, &ca_key).unwrap();
        Chain {
            ca: ca.der().clone(),
            ee: ee.der().clone(),
            ee_key: key.public_key_der(),
        }
    }

    fn check(records: &[Tlsa], c: &Chain, name: &str) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        verify(
            records,
            &c.ee,
            std::slice::from_ref(&c.ca),
            &name,
            UnixTime::now(),
            &provider(),
        )
    }

    #[test]
    fn dane_ee_matches_key_or_certificate_and_ignores_names_and_dates() {
        // Expired, and for another name: DANE-EE does not care (RFC 7672 §3.1.1).
        let c = chain(&["other.test"], 2000, 2001);
        let ee = c.ee.as_ref().to_vec();
        for r in [
            rec(3, 1, 1, sha256(&c.ee_key)),
            rec(3, 0, 1, sha256(&ee)),
            rec(3, 0, 0, ee.clone()),
            rec(
                3,
                1,
                2,
                ring::digest::digest(&ring::digest::SHA512, &c.ee_key)
                    .as_ref()
                    .to_vec(),
            ),
        ] {
            assert!(
                check(std::slice::from_ref(&r), &c, "mx.secure.test").is_ok(),
                "{r}"
            );
        }
        let wrong = rec(3, 1, 1, sha256(b"no such key"));
        let e = check(&[wrong], &c, "mx.secure.test").unwrap_err();
        assert!(e.to_string().contains("TLSA"), "{e}");
    }

    #[test]
    fn dane_ta_checks_the_chain_the_name_and_the_dates() {
        let c = chain(&["mx.secure.test"], 2020, 2090);
        let ta = rec(2, 0, 1, sha256(c.ca.as_ref()));
        assert!(check(std::slice::from_ref(&ta), &c, "mx.secure.test").is_ok());
        // The name is checked for DANE-TA (RFC 7672 §3.2.2).
        assert!(check(std::slice::from_ref(&ta), &c, "mx.other.test").is_err());
        let old = chain(&["mx.secure.test"], 2000, 2001);
        let ta = rec(2, 0, 1, sha256(old.ca.as_ref()));
        assert!(check(&[ta], &old, "mx.secure.test").is_err());
        // A DANE-TA record naming the server's own key is not a DANE-EE one.
        let c = chain(&["mx.secure.test"], 2020, 2090);
        let key_as_ta = rec(2, 1, 1, sha256(&c.ee_key));
        assert!(check(&[key_as_ta], &c, "mx.secure.test").is_err());
    }

    #[test]
    fn unusable_records_never_match() {
        let c = chain(&["mx.secure.test"], 2020, 2090);
        // PKIX-EE, an unknown matching type, a digest of the wrong length.
        for r in [
            rec(1, 1, 1, sha256(&c.ee_key)),
            rec(3, 1, 9, sha256(&c.ee_key)),
            rec(3, 1, 1, vec![1, 2, 3]),
            rec(3, 2, 1, sha256(&c.ee_key)),
        ] {
            assert!(!r.is_usable(), "{r}");
            assert!(check(std::slice::from_ref(&r), &c, "mx.secure.test").is_err());
        }
        assert_eq!(
            rec(3, 1, 1, vec![0xAB; 32]).to_string(),
            format!("3 1 1 {}", "AB".repeat(32))
        );
    }
}
