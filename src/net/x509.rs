//! Just enough X.509 (RFC 5280 §4.1) to show a server's certificate to a person: subject,
//! issuer, validity and the names of its subjectAltName, as msmtp's `--serverinfo` shows
//! them; and the SubjectPublicKeyInfo's bytes, which DANE's selector 1 matches
//! ([`spki`], RFC 6698 §2.1.2). Read from the DER that rustls hands over; nothing here
//! decides trust (rustls, webpki and [`super::dane`] do). The input is the server's, so every length is
//! checked: anything malformed gives `None`, never a panic. A DER reader of its own, ~200
//! lines, because rustls and webpki keep theirs private and x509-parser would bring a dozen
//! crates for four fields.

/// What a person checks on a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The subject's distinguished name, RDNs in certificate order (`C=US, O=…, CN=…`).
    pub subject: String,
    /// The issuer's, likewise.
    pub issuer: String,
    /// Not valid before, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_before: String,
    /// Not valid after, likewise.
    pub not_after: String,
    /// The DNS names and IP addresses of its subjectAltName extension.
    pub names: Vec<String>,
}

/// The summary of a DER certificate, `None` when it is not one.
pub fn summary(der: &[u8]) -> Option<Summary> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, absent for v1.
    if rest.first() == Some(&0xA0) {
        rest = tlv(rest)?.2;
    }
    let (_serial, rest) = expect(rest, INTEGER)?;
    let (_algorithm, rest) = expect(rest, SEQUENCE)?;
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, rest) = expect(rest, SEQUENCE)?;
    let (_key, mut rest) = expect(rest, SEQUENCE)?;
    let (from, after) = {
        let (t1, tag1, r) = time(validity)?;
        let (t2, tag2, _) = time(r)?;
        (date(tag1, t1)?, date(tag2, t2)?)
    };
    let mut names = Vec::new();
    // [1] and [2] unique identifiers, then [3] EXPLICIT extensions.
    while let Some((tag, content, r)) = tlv(rest) {
        if tag == 0xA3 {
            names = alt_names(content).unwrap_or_default();
        }
        rest = r;
    }
    Some(Summary {
        subject: name(subject)?,
        issuer: name(issuer)?,
        not_before: from,
        not_after: after,
        names,
    })
}

/// The DER of a certificate's SubjectPublicKeyInfo, tag and length included (what a TLSA
/// record with selector 1 hashes, RFC 6698 §2.1.2); `None` when it is not a certificate.
pub fn spki(der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xA0) {
        rest = tlv(rest)?.2;
    }
    // serial, signature algorithm, issuer, validity, subject, then the key.
    for tag in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE] {
        rest = expect(rest, tag)?.1;
    }
    let (_, after) = expect(rest, SEQUENCE)?;
    rest.get(..rest.len() - after.len())
}

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element (X.690 §8.1): its tag, its content, what follows. Tags of one byte only
/// (every tag of a certificate); definite lengths only (DER has no other).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7F => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7F);
            let bytes = rest.get(..n)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        }
        _ => return None,
    };
    let content = rest.get(..len)?;
    Some((tag, content, &rest[len..]))
}

/// The element at the start of `input`, which must have `tag`: its content and the rest.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = tlv(input)?;
    (t == tag).then_some((content, rest))
}

/// A Time (RFC 5280 §4.1.2.5): its text, its tag, the rest.
fn time(input: &[u8]) -> Option<(&str, u8, &[u8])> {
    let (tag, content, rest) = tlv(input)?;
    let text = std::str::from_utf8(content).ok()?;
    matches!(tag, UTC_TIME | GENERALIZED_TIME).then_some((text, tag, rest))
}

/// `YYMMDDHHMMSSZ` (UTCTime: 50–99 are 19xx, RFC 5280 §4.1.2.5.1) or `YYYYMMDDHHMMSSZ`
/// (GeneralizedTime) as `YYYY-MM-DD HH:MM:SS UTC`.
fn date(tag: u8, text: &str) -> Option<String> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let century = if digits[..2] >= *"50" { "19" } else { "20" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_string(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

/// A Name (RFC 5280 §4.1.2.4): each attribute as `KEY=value`, in certificate order.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET)?;
        rdns = rest;
        while !set.is_empty() {
            let (attr, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(attr, OID)?;
            let (tag, text, _) = tlv(value)?;
            parts.push(format!("{}={}", attribute(oid), string(tag, text)));
        }
    }
    Some(parts.join(", "))
}

/// An attribute type's short name (RFC 4514 §3), else its dotted OID.
fn attribute(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0A] => "O".into(),
        [0x55, 0x04, 0x0B] => "OU".into(),
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01] => "emailAddress".into(),
        _ => dotted(oid),
    }
}

/// An OID in dotted form (X.690 §8.19).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut n: u64 = 0;
    for &b in oid {
        n = n.saturating_mul(128).saturating_add(u64::from(b & 0x7F));
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (n / 40).min(2);
                arcs.push(first);
                arcs.push(n - 40 * first);
            } else {
                arcs.push(n);
            }
            n = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A directory string as text: UTF-8 and the ASCII kinds as they are, BMPString (UTF-16),
/// anything else lossily; control characters escaped, since it goes to a terminal.
fn string(tag: u8, bytes: &[u8]) -> String {
    let text = match tag {
        0x1E => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    };
    let mut out = String::new();
    for c in text.chars() {
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

/// The DNS names and IP addresses of the subjectAltName extension (RFC 5280 §4.2.1.6) among
/// `extensions` (the content of [3]).
fn alt_names(extensions: &[u8]) -> Option<Vec<String>> {
    let (mut list, _) = expect(extensions, SEQUENCE)?;
    while !list.is_empty() {
        let (ext, rest) = expect(list, SEQUENCE)?;
        list = rest;
        let (oid, mut ext) = expect(ext, OID)?;
        if oid != [0x55, 0x1D, 0x11] {
            continue;
        }
        // critical BOOLEAN DEFAULT FALSE, then the value.
        if ext.first() == Some(&0x01) {
            ext = tlv(ext)?.2;
        }
        let (value, _) = expect(ext, OCTET_STRING)?;
        let (mut general, _) = expect(value, SEQUENCE)?;
        let mut names = Vec::new();
        while let Some((tag, content, rest)) = tlv(general) {
            general = rest;
            match (tag, content.len()) {
                (0x82, _) => names.push(string(0x16, content)),
                (0x87, 4) => {
                    let a: [u8; 4] = content.try_into().ok()?;
                    names.push(std::net::Ipv4Addr::from(a).to_string());
                }
                (0x87, 16) => {
                    let a: [u8; 16] = content.try_into().ok()?;
                    names.push(std::net::Ipv6Addr::from(a).to_string());
                }
                _ => {}
            }
        }
        return Some(names);
    }
    Some(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_rcgen_wrote() {
        let mut params = rcgen::CertificateParams::new(vec![
            "mail.example.org".to_string(),
            "192.0.2.1".to_string(),
            "::1".to_string(),
        ])
        .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Grüße GmbH");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example.org");
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2051, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let s = summary(cert.der()).unwrap();
        assert_eq!(s.subject, "C=DE, O=Grüße GmbH, CN=mail.example.org");
        assert_eq!(s.issuer, s.subject);
        assert_eq!(s.not_before, "2026-01-02 00:00:00 UTC");
        // RFC 5280 §4.1.2.5: GeneralizedTime from 2050 on.
        assert_eq!(s.not_after, "2051-03-04 00:00:00 UTC");
        assert_eq!(s.names, ["mail.example.org", "192.0.2.1", "::1"]);
    }

    #[test]
    fn malformed_input_is_none_never_a_panic() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        assert!(summary(&der).is_some());
        // The key DANE's selector 1 hashes is the key rcgen made.
        assert_eq!(spki(&der), Some(key.public_key_der().as_slice()));
        for cut in 0..der.len() {
            let _ = summary(&der[..cut]);
            let _ = spki(&der[..cut]);
        }
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0xFF;
            let _ = summary(&bad);
            let _ = spki(&bad);
        }
        assert_eq!(summary(b""), None);
        assert_eq!(summary(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(dotted(&[0x2A, 0x86, 0x48]), "1.2.840");
        assert_eq!(
            date(UTC_TIME, "991231235959Z").as_deref(),
            Some("1999-12-31 23:59:59 UTC")
        );
        assert_eq!(date(UTC_TIME, "99123123595Z"), None);
        assert_eq!(string(0x0C, b"a\nb"), "a\\nb");
    }
}
