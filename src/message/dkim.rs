//! DKIM signing (RFC 6376): the `DKIM-Signature` field msubmit and mrelay put in front of
//! outgoing mail for the domains configured with `dkim DOMAIN SELECTOR KEYFILE`, and the
//! DNS TXT record (`SELECTOR._domainkey.DOMAIN`) that publishes the key.
//!
//! The canonicalisation, hashing and the field itself are the `mail-auth` crate's; this module
//! only chooses: relaxed/relaxed (RFC 6376 §3.4.2 and §3.4.4: survives the refolding and
//! whitespace changes of relays), rsa-sha256 or ed25519-sha256 (RFC 8463) by the key file,
//! no `l=` (a body-length limit lets anyone append to the message), and `From` signed twice
//! (RFC 6376 §8.15: an added second From: then breaks the signature).
//!
//! Crypto provider, and why this mail-auth: the project has one, ring (through rustls, and
//! hickory's). mail-auth 0.14 and later offer only aws-lc-rs (a second C crypto library that
//! also switches hickory to aws-lc and turns on rustls-platform-verifier) or RustCrypto, whose
//! RSA is `rsa` 0.9 with RUSTSEC-2023-0071 (Marvin: private-key operations leak timing);
//! they also need mail-parser 1.0, which needs a newer rustc than the project's 1.95.
//! mail-auth 0.13.3 has a `ring` feature: keys are ring's `RsaKeyPair` (blinded,
//! constant-time signing) and `Ed25519KeyPair`, hashing is ring's `digest`, and it shares
//! our hickory 0.26. So no `rsa`, no `aws-lc`, no `ed25519-dalek` in the tree.
//! The cost: ring makes no RSA keys, so `--dkim-keygen` creates Ed25519 keys and prints
//! the record of any key it is given (an RSA one from `openssl genpkey`). Receivers that do
//! not know ed25519-sha256 treat its signature as absent (RFC 8463 §4), so a domain that
//! wants every receiver to verify publishes an RSA key.

use crate::exit::{Code, Error, Result};
use crate::message::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The header fields signed unless `dkim_headers` says otherwise: those a reader sees and
/// those that change how the body reads (RFC 6376 §5.4.1's list, trimmed to what we send).
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// A private key for signing, as read from its PEM file.
enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// A key made into mail-auth's signer (which owns it).
enum Ready {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// One signing domain: `dkim DOMAIN SELECTOR KEYFILE`.
pub struct Signer {
    /// The `d=` domain, lowercase.
    pub domain: String,
    /// The `s=` selector.
    pub selector: String,
    /// The key file, for messages.
    pub key_file: PathBuf,
    /// `k=` and `p=` of the TXT record.
    public: (&'static str, Vec<u8>),
    signer: Ready,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(
            f,
            "Signer({} {} {})",
            self.domain,
            self.selector,
            self.key_file.display()
        )
    }
}

/// Parse `DOMAIN SELECTOR KEYFILE` (the config's words) or `DOMAIN:SELECTOR:KEYFILE` (a
/// flag's value; the file name may hold colons).
pub fn parse_spec(spec: &str) -> std::result::Result<(String, String, PathBuf), String> {
    let parts: Vec<&str> = match spec.split_whitespace().count() {
        3 => spec.split_whitespace().collect(),
        _ => spec.trim().splitn(3, ':').collect(),
    };
    let [domain, selector, file] = parts[..] else {
        return Err("expected DOMAIN SELECTOR KEYFILE".into());
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    crate::message::address::check_domain(&domain)?;
    // RFC 6376 §3.1: a selector is dot-separated sub-domain labels.
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !selector.split('.').all(label_ok) {
        return Err(format!("{selector}: not a selector (DNS labels)"));
    }
    if file.is_empty() {
        return Err("no key file".into());
    }
    Ok((domain, selector.to_string(), PathBuf::from(file)))
}

impl Signer {
    /// The signer of `spec` (see [`parse_spec`]), its key read; `headers` empty: the
    /// [`DEFAULT_HEADERS`]. `what` names the spec's origin for errors.
    pub fn load(spec: &str, headers: &[String], what: &str) -> Result<Signer> {
        let (domain, selector, key_file) =
            parse_spec(spec).map_err(|why| Error::new(Code::Config, what, why))?;
        let pem = std::fs::read(&key_file)
            .map_err(|e| Error::io(Code::Config, key_file.display().to_string(), e))?;
        let key = read_key(&pem)
            .map_err(|why| Error::new(Code::Config, key_file.display().to_string(), why))?;
        let headers: Vec<String> = match headers.is_empty() {
            true => DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect(),
            false => headers.to_vec(),
        };
        let (public, signer) = match key {
            Key::Rsa(k) => (
                ("rsa", rsa_spki(&k.public_key())),
                Ready::Rsa(setup(k, &domain, &selector, headers)),
            ),
            Key::Ed25519(k) => (
                ("ed25519", k.public_key()),
                Ready::Ed25519(setup(k, &domain, &selector, headers)),
            ),
        };
        Ok(Signer {
            domain,
            selector,
            key_file,
            public,
            signer,
        })
    }

    /// The `DKIM-Signature` field for `msg` (the whole message, LF or CRLF line ends), with
    /// the message's own line end, to be written in front of it.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        // Canonicalisation works on CRLF lines (RFC 6376 §3.4); the wire has them too.
        let crlf = to_crlf(msg);
        let signature = match &self.signer {
            Ready::Rsa(s) => s.sign(&crlf),
            Ready::Ed25519(s) => s.sign(&crlf),
        }
        .map_err(|e| Error::new(Code::Software, "dkim signature", e.to_string()))?;
        let field = signature.to_header();
        let lf_only = !header::block(msg).windows(2).any(|w| w == b"\r\n");
        Ok(match lf_only {
            true => field.replace("\r\n", "\n").into_bytes(),
            false => field.into_bytes(),
        })
    }

    /// The TXT record that publishes the public key (RFC 6376 §3.6.1), as a zone file line.
    pub fn record(&self) -> String {
        let (k, p) = (self.public.0, B64.encode(&self.public.1));
        let value = format!("v=DKIM1; k={k}; p={p}");
        // A TXT character-string holds 255 octets (RFC 1035 §3.3.14): split, the receiver
        // joins them (RFC 6376 §3.6.2.2).
        let strings: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        format!(
            "{}._domainkey.{}. IN TXT ( {} )",
            self.selector,
            self.domain,
            strings.join(" ")
        )
    }

    /// Whether this signer signs for `domain` (the From: address's).
    pub fn signs_for(&self, domain: &str) -> bool {
        self.domain
            .eq_ignore_ascii_case(domain.trim_end_matches('.'))
    }
}

/// The signers of every `dkim` value (`(text, origin)` pairs, the origin `file:line` or a
/// flag's name for errors), each signing `headers` (empty: the defaults).
pub fn load_all<'a>(
    specs: impl IntoIterator<Item = (&'a str, &'a str)>,
    headers: &[String],
) -> Result<Vec<Signer>> {
    specs
        .into_iter()
        .map(|(spec, origin)| Signer::load(spec, headers, origin))
        .collect()
}

/// `dkim_headers`: field names separated by colons (as in `h=`), commas or blanks.
pub fn parse_headers(list: &str) -> Vec<String> {
    list.split(|c: char| c == ':' || c == ',' || c.is_whitespace())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

/// The signer for `msg`: the one whose domain is its From: address's (RFC 7489 §3.1.1's
/// strict alignment, what DMARC checks), if any.
pub fn pick<'a, S: AsRef<Signer>>(signers: &'a [S], msg: &[u8]) -> Option<&'a Signer> {
    let domain = from_domain(msg)?;
    signers
        .iter()
        .map(AsRef::as_ref)
        .find(|s| s.signs_for(&domain))
}

impl AsRef<Signer> for Signer {
    fn as_ref(&self) -> &Signer {
        self
    }
}

/// relaxed/relaxed, no `l=`, the given fields (RFC 6376 §5.4).
fn setup<K: SigningKey<Hasher = Sha256>>(
    key: K,
    domain: &str,
    selector: &str,
    headers: Vec<String>,
) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(headers)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// The domain of the message's first From: address, lowercase.
pub fn from_domain(msg: &[u8]) -> Option<String> {
    let from = header::first(header::block(msg), "From")?;
    let list = crate::message::address::parse_list_lenient(&from);
    let addr = list.first()?.addr.to_string();
    let (_, domain) = addr.rsplit_once('@')?;
    Some(domain.trim_end_matches('.').to_ascii_lowercase())
}

/// Create an Ed25519 key at `path` (0600, never over an existing file) in PKCS#8 PEM.
pub fn keygen(path: &Path) -> Result<()> {
    let der = Ed25519Key::generate_pkcs8()
        .map_err(|e| Error::new(Code::Software, "dkim key", e.to_string()))?;
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        B64.encode(der)
    );
    let what = path.display().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(Code::CantCreat, &what, e))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(Code::IoErr, &what, e))
}

/// An RSA key (PKCS#1 or PKCS#8) or an Ed25519 key (PKCS#8, v1 as openssl writes it or v2).
fn read_key(pem: &[u8]) -> std::result::Result<Key, String> {
    let der = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| "not a PEM private key (PKCS#1 or PKCS#8)".to_string())?;
    if let Ok(k) = RsaKey::<Sha256>::from_key_der(der.clone_key()) {
        return Ok(Key::Rsa(k));
    }
    match der {
        PrivateKeyDer::Pkcs8(p) => Ed25519Key::from_pkcs8_maybe_unchecked_der(p.secret_pkcs8_der())
            .map(Key::Ed25519)
            .map_err(|_| "neither an RSA nor an Ed25519 key ring accepts".into()),
        _ => Err("not an RSA key ring accepts (2048 to 8192 bits)".into()),
    }
}

/// LF line ends become CRLF; CRLF stays.
fn to_crlf(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 32);
    let mut prev = 0u8;
    for &b in msg {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// DER length octets (X.690 §8.1.3).
fn der_len(n: usize, out: &mut Vec<u8>) {
    match n {
        0..=127 => out.push(n as u8),
        _ => {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
}

/// ring gives an RSA public key as a PKCS#1 RSAPublicKey; the `p=` of a DKIM record is
/// read as a SubjectPublicKeyInfo by most verifiers (dkimpy, OpenDKIM; RFC 6376 §3.6.1
/// errata 3017), so wrap it: SEQUENCE { AlgorithmIdentifier rsaEncryption NULL, BIT STRING }.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bits);
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(ALG.len() + bits.len(), &mut out);
    out.extend_from_slice(ALG);
    out.extend(bits);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::{
        AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    };
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::Mutex;

    const RSA_PEM: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dkim-test-rsa.pem"
    ));

    /// The TXT answers the verifier gets: ours, never the DNS.
    struct Records(Mutex<HashMap<Box<str>, Txt>>);

    impl ResolverCache<Box<str>, Txt> for Records {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().get(name).cloned()
        }
        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().remove(name)
        }
        fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
            self.0.lock().unwrap().insert(key, value);
        }
    }

    /// The record's value, from the zone line `record()` prints.
    fn txt_value(line: &str) -> String {
        line.split('"').skip(1).step_by(2).collect()
    }

    /// mail-auth's verdict on `signed` with `signer`'s record published.
    fn verify(signer: &Signer, signed: &[u8]) -> Vec<DkimResult> {
        let name = format!("{}._domainkey.{}.", signer.selector, signer.domain);
        let key = DomainKey::parse(txt_value(&signer.record()).as_bytes()).unwrap();
        let records = Records(Mutex::new(HashMap::new()));
        records.insert(name.into(), Txt::from(key), std::time::Instant::now());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let auth = MessageAuthenticator::new_system_conf().unwrap();
        let msg = AuthenticatedMessage::parse(signed).unwrap();
        rt.block_on(auth.verify_dkim(Parameters::new(&msg).with_txt_cache(&records)))
            .iter()
            .map(|o| o.result().clone())
            .collect()
    }

    const MSG: &[u8] = b"From: Ann <ann@Example.ORG>\nTo: bob@example.net\nSubject: hi  there\n\
        Date: Tue, 1 Dec 2026 10:00:00 +0000\n\nbody line\n\n\n";

    fn signers(dir: &Path) -> Vec<Signer> {
        let rsa = dir.join("rsa.pem");
        std::fs::write(&rsa, RSA_PEM).unwrap();
        let ed = dir.join("ed.pem");
        keygen(&ed).unwrap();
        vec![
            Signer::load(&format!("example.org r1 {}", rsa.display()), &[], "t").unwrap(),
            Signer::load(&format!("example.org:e1:{}", ed.display()), &[], "t").unwrap(),
        ]
    }

    #[test]
    fn signatures_verify_with_mail_auth_and_break_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        for s in signers(dir.path()) {
            assert_eq!(
                pick(std::slice::from_ref(&s), MSG).map(|p| &p.selector),
                Some(&s.selector)
            );
            let field = s.sign(MSG).unwrap();
            assert!(!field.contains(&b'\r'), "an LF message gets an LF field");
            let signed = to_crlf(&[field.as_slice(), MSG].concat());
            assert_eq!(
                verify(&s, &signed),
                vec![DkimResult::Pass],
                "{}",
                s.selector
            );
            // relaxed/relaxed: refolded header whitespace and trailing blanks still verify.
            let respaced = String::from_utf8(signed.clone())
                .unwrap()
                .replace("Subject: hi  there", "Subject:  hi there ")
                .replace("body line", "body   line  ");
            assert_eq!(verify(&s, respaced.as_bytes()), vec![DkimResult::Pass]);
            let changed = String::from_utf8(signed)
                .unwrap()
                .replace("body line", "body lime");
            let verdict = verify(&s, changed.as_bytes());
            assert!(
                verdict.len() == 1 && verdict[0] != DkimResult::Pass,
                "{verdict:?}"
            );
        }
    }

    #[test]
    fn from_is_oversigned_and_other_domains_are_not_signed() {
        let dir = tempfile::tempdir().unwrap();
        let s = signers(dir.path()).remove(1);
        let field = String::from_utf8(s.sign(MSG).unwrap()).unwrap();
        let h: String = field
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .into();
        let h: String = h.split_whitespace().collect();
        assert!(h.to_ascii_lowercase().contains("from:from:"), "{h}");
        assert!(!field.contains("l="), "no body length limit");
        let other = b"From: x@example.com\n\nhi\n";
        assert!(pick(std::slice::from_ref(&s), other).is_none());
        // A second From: added after signing fails (RFC 6376 8.15).
        let signed = to_crlf(&[field.as_bytes(), MSG].concat());
        let added = [b"From: mallory@example.org\r\n".as_slice(), &signed].concat();
        assert!(!matches!(verify(&s, &added)[..], [DkimResult::Pass]));
    }

    #[test]
    fn specs_and_keys_are_checked() {
        assert!(parse_spec("example.org s1 /k").is_ok());
        assert_eq!(
            parse_spec("Example.ORG.:s1:/a:b").unwrap().2,
            PathBuf::from("/a:b")
        );
        assert!(parse_spec("example.org bad_sel /k").is_err());
        assert!(parse_spec("example.org s1").is_err());
        assert!(
            read_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
        assert!(read_key(b"no pem").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        keygen(&p).unwrap();
        assert!(keygen(&p).is_err(), "never over an existing key");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn long_records_are_split_into_strings() {
        let dir = tempfile::tempdir().unwrap();
        let s = signers(dir.path()).remove(0);
        let line = s.record();
        assert!(line.starts_with("r1._domainkey.example.org. IN TXT ( \"v=DKIM1; k=rsa; p="));
        assert!(line.split('"').skip(1).step_by(2).all(|c| c.len() <= 255));
        assert_eq!(
            B64.decode(txt_value(&line).split("p=").nth(1).unwrap())
                .unwrap()[..4],
            [0x30, 0x82, 0x01, 0x22],
            "SubjectPublicKeyInfo of a 2048-bit key"
        );
    }
}
