//! TLS for the mail protocols: rustls with the ring provider, client and server configs.
//!
//! One place decides how we trust a server: the webpki (Mozilla) roots by default, the
//! certificates of a PEM file instead (`--ca-file`, msmtp's `tls_trust_file`), or a pinned
//! SHA-256 fingerprint of the server's certificate (`--fingerprint`, msmtp's
//! `tls_fingerprint`), which replaces chain and name checks because the pin names the exact
//! certificate. Host names are always verified otherwise, IP addresses against IP SANs.
//! Only the ring provider is used, so the tree builds one crypto library (CRATES.md).
//!
//! It is also the one place that turns a failed handshake into words a user can act on:
//! what went wrong (not trusted, wrong name, expired, not TLS at all) and which setting
//! fixes it, with the refused certificate's fingerprint, never rustls's Debug output.
//!
//! And it holds the one TLS vocabulary of every tool, client side ([`Mode`]): how TLS starts
//! ([`Start`]: starttls | implicit) and how strict the client is ([`Level`]: none | may |
//! encrypt | verify, Postfix's smtp_tls_security_level words), written the same in every
//! tool's flags and configuration, with msmtp's `tls on|off` and `tls_starttls on|off` as
//! aliases ([`Mode::from_keys`]). The handshakes run over any [`Io`], so a client works on a
//! socket it connected or on a stream it was handed.

use crate::exit::{Code, Error, Result};
use crate::net::conn::Io;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct};
use rustls::{SignatureScheme, server::ParsedCertificate};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A client's TLS stream over any transport.
pub type TlsStream = rustls::StreamOwned<ClientConnection, Box<dyn Io>>;

/// How TLS starts on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Plain text first, then the STARTTLS command (RFC 3207; POP3's STLS and IMAP's
    /// STARTTLS, RFC 2595): submission on 587, MX delivery on 25.
    StartTls,
    /// TLS from the first byte (RFC 8314 §3: 465, 993, 995).
    Implicit,
}

/// How strict a client is about TLS, each level asking more than the one before. The words
/// are Postfix's (smtp_tls_security_level), so an MTA's administrator reads them as meant.
/// DANE (RFC 7672) and MTA-STS (RFC 8461) are not levels of their own: both are `Verify`
/// with the trust decided per MX host (the TLSA records in [`TlsOptions::dane`], or the
/// roots for the MX host's name), which mrelay's `relay::policy` chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No TLS, even when offered; the only level at which credentials go in clear text.
    None,
    /// Opportunistic (RFC 7435): STARTTLS when the server offers it, in clear text when it
    /// does not or when the handshake fails; the certificate is not checked (there is clear
    /// text to fall back to, so refusing one would protect nothing). For MX delivery.
    May,
    /// TLS required, the certificate not checked: a passive eavesdropper learns nothing,
    /// an active one can still pose as the server.
    Encrypt,
    /// TLS required and the certificate verified: a chain to the trusted roots and the
    /// server's name, or a pinned fingerprint ([`TlsOptions`]).
    Verify,
}

/// How a client uses TLS on one connection: how it starts and how strict it is. At
/// [`Level::None`] the start is meaningless; [`Start::Implicit`] goes with `Encrypt` or
/// `Verify` only (a port that speaks TLS from the first byte has no clear text to fall
/// back to), which [`Mode::parse`] and [`Mode::from_keys`] enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// How TLS starts.
    pub start: Start,
    /// How strict the client is.
    pub level: Level,
}

/// The words of [`Mode::parse`], for messages.
const WORD_LIST: &str = "starttls, implicit, none, may, encrypt or verify";

/// Why [`Mode::from_keys`] refused the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The `tls` key is wrong: why.
    Tls(String),
    /// `tls_starttls` contradicts the `tls` key's word (which one the user meant cannot be
    /// guessed, and a wrong guess sends in the clear or not at all).
    Contradiction,
}

impl Mode {
    /// STARTTLS, verified: msubmit's default (submission, RFC 8314 §3.3 wants TLS there).
    pub const STARTTLS: Mode = Mode {
        start: Start::StartTls,
        level: Level::Verify,
    };
    /// Implicit TLS, verified (port 465).
    pub const IMPLICIT: Mode = Mode {
        start: Start::Implicit,
        level: Level::Verify,
    };
    /// No TLS.
    pub const NONE: Mode = Mode {
        start: Start::StartTls,
        level: Level::None,
    };
    /// Opportunistic STARTTLS: an MTA's default towards an MX.
    pub const MAY: Mode = Mode {
        start: Start::StartTls,
        level: Level::May,
    };

    /// One word for each mode, with what it means: what a tool's `--tls` offers for
    /// completion and its man page lists ([`Mode::parse`] takes any start and level joined).
    pub const WORDS: [(&'static str, &'static str); 7] = [
        (
            "starttls",
            "STARTTLS required, the certificate verified (the default)",
        ),
        (
            "implicit",
            "TLS from the first byte (the implicit-TLS port), the certificate verified",
        ),
        ("none", "clear text, even when the server offers TLS"),
        (
            "may",
            "STARTTLS when the server offers it, else clear text; no certificate check",
        ),
        ("encrypt", "STARTTLS required, the certificate not checked"),
        ("verify", "the same as starttls"),
        (
            "implicit,encrypt",
            "implicit TLS, the certificate not checked",
        ),
    ];

    /// A mode from its words, as `--tls` and the `tls` key take them: a level (`none`,
    /// `may`, `encrypt`, `verify`), a start (`starttls`, `implicit`: verified), or one of
    /// each joined by a comma (`implicit,encrypt`). A start alone is verified, a level alone
    /// starts with STARTTLS.
    pub fn parse(text: &str) -> std::result::Result<Mode, String> {
        let (mut start, mut level) = (None, None);
        for word in text.split(',').map(str::trim) {
            match word.to_ascii_lowercase().as_str() {
                "starttls" if start.is_none() => start = Some(Start::StartTls),
                "implicit" if start.is_none() => start = Some(Start::Implicit),
                "none" if level.is_none() => level = Some(Level::None),
                "may" if level.is_none() => level = Some(Level::May),
                "encrypt" if level.is_none() => level = Some(Level::Encrypt),
                "verify" if level.is_none() => level = Some(Level::Verify),
                "starttls" | "implicit" => {
                    return Err("more than one of starttls and implicit".into());
                }
                "none" | "may" | "encrypt" | "verify" => {
                    return Err("more than one of none, may, encrypt and verify".into());
                }
                _ => return Err(format!("expected {WORD_LIST}, got {text:?}")),
            }
        }
        Mode::new(
            start.unwrap_or(Start::StartTls),
            level.unwrap_or(Level::Verify),
        )
    }

    /// `start` with `level`, unless they contradict (implicit TLS with `none` or `may`).
    pub fn new(start: Start, level: Level) -> std::result::Result<Mode, String> {
        match (start, level) {
            (Start::Implicit, Level::None) => {
                Err("implicit TLS and none contradict each other".into())
            }
            (Start::Implicit, Level::May) => Err(
                "implicit TLS cannot fall back to clear text (may is for STARTTLS; \
                 implicit,encrypt does not check the certificate)"
                    .into(),
            ),
            (_, Level::None) => Ok(Mode::NONE),
            _ => Ok(Mode { start, level }),
        }
    }

    /// The mode an account's keys set, `None` when they set none: `tls` holds msmtp's `on`
    /// or `off` (and its other flag words) or [`Mode::parse`]'s words; `tls_starttls`
    /// (already read as a flag) is msmtp's `on` (STARTTLS) or `off` (implicit TLS), and
    /// gives a level word alone its start. A start word that `tls_starttls` contradicts is
    /// refused, as is `tls_starttls off` with `may` (there is no implicit opportunistic TLS).
    pub fn from_keys(
        tls: Option<&str>,
        starttls: Option<bool>,
    ) -> std::result::Result<Option<Mode>, KeyError> {
        let start_of = |starttls: Option<bool>| match starttls {
            Some(false) => Start::Implicit,
            _ => Start::StartTls,
        };
        let Some(text) = tls else {
            return Ok(starttls.map(|s| Mode {
                start: start_of(Some(s)),
                level: Level::Verify,
            }));
        };
        match text.to_ascii_lowercase().as_str() {
            "on" | "yes" | "true" | "1" => {
                return Ok(Some(Mode {
                    start: start_of(starttls),
                    level: Level::Verify,
                }));
            }
            "off" | "no" | "false" | "0" => return Ok(Some(Mode::NONE)),
            _ => {}
        }
        let mode = Mode::parse(text).map_err(|why| match why.starts_with("expected") {
            true => KeyError::Tls(format!("expected on, off, {WORD_LIST}, got {text:?}")),
            false => KeyError::Tls(why),
        })?;
        let says_start = text.split(',').any(|w| {
            let w = w.trim();
            w.eq_ignore_ascii_case("starttls") || w.eq_ignore_ascii_case("implicit")
        });
        match (mode.level, says_start, starttls) {
            (Level::None, _, _) | (_, _, None) => Ok(Some(mode)),
            (_, true, Some(s)) if start_of(Some(s)) != mode.start => Err(KeyError::Contradiction),
            (_, true, Some(_)) => Ok(Some(mode)),
            (level, false, Some(s)) => Mode::new(start_of(Some(s)), level)
                .map(Some)
                .map_err(|_| KeyError::Contradiction),
        }
    }

    /// The mode in [`Mode::parse`]'s words, shortest first: `none`, `starttls`, `implicit`,
    /// `may`, `encrypt`, `implicit,encrypt` (what logs show and `parse` reads back).
    pub fn name(self) -> &'static str {
        match (self.level, self.start) {
            (Level::None, _) => "none",
            (Level::Verify, Start::StartTls) => "starttls",
            (Level::Verify, Start::Implicit) => "implicit",
            (Level::May, _) => "may",
            (Level::Encrypt, Start::StartTls) => "encrypt",
            (Level::Encrypt, Start::Implicit) => "implicit,encrypt",
        }
    }

    /// True when mail must not go without TLS (`encrypt`, `verify`).
    pub fn requires_tls(self) -> bool {
        self.level >= Level::Encrypt
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the client checks the server's certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Trust the certificates in this PEM file instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Accept exactly the certificate with this SHA-256 digest (of its DER encoding).
    pub fingerprint: Option<[u8; 32]>,
    /// Verify the certificate for this name instead of the host we connect to.
    pub server_name: Option<String>,
    /// Present this certificate when the server asks for one (msmtp's `tls_cert_file` and
    /// `tls_key_file`; RFC 8446 §4.4.2, RFC 5246 §7.4.6).
    pub client_cert: Option<ClientCert>,
    /// Check the certificate against these DNSSEC-validated TLSA records (DANE, RFC 7672)
    /// instead of the roots, the file or the pin: mrelay towards an MX host that has them.
    pub dane: Option<Arc<Vec<crate::net::dane::Tlsa>>>,
}

/// A client certificate: PEM files, read when a connection is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate, then any intermediates.
    pub cert: PathBuf,
    /// Its private key (PKCS #8, PKCS #1 or SEC 1).
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build a client configuration for `level`: the certificate verified as `opts` says at
/// [`Level::Verify`], not checked at all below (`may`, `encrypt`: the trust settings are
/// then ignored, as Postfix ignores smtp_tls_CAfile below its verify level).
pub fn client_config_for(level: Level, opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    match level {
        Level::Verify => client_config(opts),
        _ => with_trust(Trust::Any, opts.client_cert.as_ref()),
    }
}

/// Build a client configuration that verifies the certificate as `opts` says.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let trust = if let Some(records) = &opts.dane {
        Trust::Dane(records.clone())
    } else if let Some(fp) = opts.fingerprint {
        Trust::Pinned(fp)
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let mut listed = Vec::new();
        match &opts.ca_file {
            Some(path) => {
                let what = || format!("CA file {}", path.display());
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| Error::new(Code::Config, what(), e))?;
                for cert in certs {
                    let cert = cert.map_err(|e| Error::new(Code::Config, what(), e))?;
                    roots
                        .add(cert.clone())
                        .map_err(|e| Error::new(Code::Config, what(), e))?;
                    listed.push(cert);
                }
                if roots.is_empty() {
                    return Err(Error::new(Code::Config, what(), "no certificates in it"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::new(Code::Software, "tls", e))?;
        Trust::Roots { webpki, listed }
    };
    with_trust(trust, opts.client_cert.as_ref())
}

fn with_trust(trust: Trust, client: Option<&ClientCert>) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Code::Software, "tls", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier {
            trust,
            provider: provider(),
        }));
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let (chain, key) = read_pair(&c.cert, &c.key)?;
            // rustls checks that the key is one it can sign with, not that it is the
            // certificate's: a mismatch shows as the server's refusal of the handshake.
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::new(Code::Config, c.key.display().to_string(), e))?
        }
    };
    Ok(Arc::new(config))
}

/// A PEM certificate chain and its private key, for a server or a client certificate.
fn read_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let what = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| Error::new(Code::Config, what(cert), e))?;
    if chain.is_empty() {
        return Err(Error::new(
            Code::Config,
            what(cert),
            "no certificates in it",
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| Error::new(Code::Config, what(key), e))?;
    Ok((chain, key))
}

/// Build a server configuration from a PEM certificate chain and a PEM private key (for
/// the servers: mreceive's STARTTLS and implicit TLS).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let what = |p: &Path| p.display().to_string();
    let (chain, key) = read_pair(cert, key)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Code::Software, "tls", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::new(Code::Config, what(cert), e))?;
    Ok(Arc::new(config))
}

/// Run the TLS handshake as a client over `io` from its first byte (implicit TLS, RFC 8314),
/// verifying the server as `name`; the transport's timeouts bound it.
///
/// A server that answers in plain text is [`Code::Config`]: the port is for STARTTLS or
/// clear text, and only the settings can change that. Certificate failures are
/// [`Code::Unavailable`] (retrying will not fix a wrong certificate or trust setting);
/// network trouble during the handshake is [`Code::TempFail`].
pub fn connect(io: impl Io + 'static, config: Arc<ClientConfig>, name: &str) -> Result<TlsStream> {
    handshake(Box::new(io), config, name, Start::Implicit)
}

/// Run the TLS handshake after the server's 220 reply to STARTTLS (RFC 3207), as
/// [`connect`] does; a server that then goes on in plain text is broken, not misconfigured
/// by us ([`Code::Unavailable`]).
pub fn upgrade(io: impl Io + 'static, config: Arc<ClientConfig>, name: &str) -> Result<TlsStream> {
    handshake(Box::new(io), config, name, Start::StartTls)
}

/// `start` decides what a server answering in plain text means.
fn handshake(
    io: Box<dyn Io>,
    config: Arc<ClientConfig>,
    name: &str,
    start: Start,
) -> Result<TlsStream> {
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| Error::new(Code::Config, format!("tls name {name:?}"), e))?;
    let conn = ClientConnection::new(config, server_name)
        .map_err(|e| Error::new(Code::Software, "tls", e))?;
    let mut stream = rustls::StreamOwned::new(conn, io);
    REFUSED.set(None);
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            return Err(handshake_error(e, name, start));
        }
    }
    Ok(stream)
}

thread_local! {
    /// The SHA-256 of the certificate [`Verifier`] refused last on this thread. rustls runs
    /// the verifier inside `complete_io` on the calling thread and hands back only the
    /// error, so this is how the refused certificate's fingerprint reaches the message
    /// (wrapping it into the error instead would change the alert sent to the server).
    static REFUSED: Cell<Option<[u8; 32]>> = const { Cell::new(None) };
}

fn handshake_error(e: io::Error, name: &str, start: Start) -> Error {
    let refused = REFUSED.take();
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        let why = match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                "the server closed the connection during the handshake".to_string()
            }
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
            _ => return Error::io(Code::TempFail, format!("tls handshake with {name}"), e),
        };
        return Error::new(Code::TempFail, format!("tls handshake with {name}"), why);
    };
    use rustls::Error as E;
    let (code, why) = match tls {
        E::InvalidCertificate(c) => {
            return Error::new(
                Code::Unavailable,
                format!("tls: certificate of {name}"),
                describe_cert_error(c, refused),
            );
        }
        // A TLS record starts with its content type (20–24, RFC 8446 §5.1); an SMTP reply
        // starts with a digit. rustls calls that a corrupt message of type
        // InvalidContentType.
        E::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => match start {
            // EX_CONFIG (78), not 75: every retry (a queue's included) would fail the same
            // way. Nor 69: the server works as set up for its port; our setting is what
            // is wrong, and the message names it.
            Start::Implicit => (
                Code::Config,
                "the server did not answer in TLS: is the port for STARTTLS (--tls starttls, \
                 or tls_starttls on) or plain text (--tls none)?"
                    .to_string(),
            ),
            Start::StartTls => (
                Code::Unavailable,
                "the server accepted STARTTLS but did not answer in TLS".to_string(),
            ),
        },
        E::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            let said = words(&format!("{alert:?}"));
            if let Some(refused) = client_cert_alert(*alert) {
                return Error::new(refused.0, format!("tls handshake with {name}"), refused.1);
            }
            match alert {
                A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity => (
                    Code::Unavailable,
                    format!(
                        "the server refused the handshake ({said}): no TLS version or cipher \
                         suite in common? (we require TLS 1.2 or later)"
                    ),
                ),
                _ => (
                    Code::TempFail,
                    format!("the server ended the handshake ({said})"),
                ),
            }
        }
        E::PeerIncompatible(why) => (
            Code::Unavailable,
            format!(
                "the server's TLS is incompatible with ours ({}): TLS 1.2 or later with \
                 current cipher suites is required",
                words(&format!("{why:?}"))
            ),
        ),
        E::PeerMisbehaved(why) => (
            Code::Unavailable,
            format!(
                "the server broke the TLS protocol ({})",
                words(&format!("{why:?}"))
            ),
        ),
        E::NoCertificatesPresented => (
            Code::Unavailable,
            "the server presented no certificate".to_string(),
        ),
        other => (Code::TempFail, other.to_string()),
    };
    Error::new(code, format!("tls handshake with {name}"), why)
}

/// What an alert about certificates means when the server sends it: the server checks
/// only the client's, so it refused ours, or wanted one and got none.
fn client_cert_alert(alert: rustls::AlertDescription) -> Option<(Code, String)> {
    use rustls::AlertDescription as A;
    let said = words(&format!("{alert:?}"));
    match alert {
        // RFC 8446 §4.4.2.4: the server required a certificate and the client sent none.
        // Our setting, not the server's failure: nothing but a setting fixes it.
        A::CertificateRequired => Some((
            Code::Config,
            "the server asks for a client certificate: give one with tls_cert_file and \
             tls_key_file"
                .to_string(),
        )),
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::UnknownCA => Some((
            Code::Unavailable,
            format!(
                "the server refused the client certificate ({said}): give one it accepts \
                 with tls_cert_file and tls_key_file"
            ),
        )),
        _ => None,
    }
}

/// The error for an I/O error on an established TLS connection that carries a certificate
/// alert: a TLS 1.3 server checks the client's certificate after the client finished its
/// side of the handshake, so its refusal arrives with the first read (RFC 8446 §4.4.2.4).
/// `None` for any other error.
pub fn alert_error(what: &str, e: &io::Error) -> Option<Error> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    let rustls::Error::AlertReceived(alert) = inner else {
        return None;
    };
    let (code, why) = client_cert_alert(*alert)?;
    Some(Error::new(code, what, why))
}

/// `CamelCase` (how rustls names alerts and reasons) as lowercase words.
fn words(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars().filter(char::is_ascii_alphanumeric) {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What a refused certificate means and what to do about it. `refused` is its SHA-256,
/// offered for `--fingerprint` (to be checked first: pinning an attacker's certificate is
/// the one way to make that advice harmful).
fn describe_cert_error(e: &CertificateError, refused: Option<[u8; 32]>) -> String {
    use CertificateError as C;
    let fp = refused.map_or("SHA256".to_string(), |d| colon_hex(&d));
    let pin = format!("or, once you have checked it, pin it with --fingerprint {fp}");
    match e {
        C::UnknownIssuer => format!(
            "not trusted: issued by an unknown authority, or self-signed (give its CA's \
             certificate, or the server's own, with --ca-file FILE; {pin})"
        ),
        C::BadSignature => format!(
            "not trusted: its signature does not verify with the certificate of its issuer \
             in --ca-file (an old copy of a renewed certificate?; update --ca-file FILE, \
             {pin})"
        ),
        C::Other(o) if o.0.downcast_ref::<crate::net::dane::Mismatch>().is_some() => {
            o.0.to_string()
        }
        C::Other(o) if is_ca_used_as_end_entity(o) => format!(
            "not trusted: a CA certificate presented as the server's own (give that very \
             certificate with --ca-file FILE, {pin})"
        ),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = expected.to_str();
            let presented: Vec<&str> = presented.iter().filter_map(|n| host_name(n)).collect();
            if presented.is_empty() {
                format!(
                    "not valid for {expected}: it names no host in its subjectAltName \
                     ({pin})"
                )
            } else {
                format!(
                    "not valid for {expected}: it is for {} (connect by that name, or give \
                     it with --tls-server-name NAME)",
                    presented.join(", ")
                )
            }
        }
        C::NotValidForName => {
            "not valid for this host name (connect by the name in the certificate, or give it \
             with --tls-server-name NAME)"
                .into()
        }
        C::ExpiredContext { not_after, .. } => format!(
            "expired on {} (the server must renew it; or is this machine's clock wrong?)",
            date(not_after)
        ),
        C::Expired => {
            "expired (the server must renew it; or is this machine's clock wrong?)".into()
        }
        C::NotValidYetContext { not_before, .. } => format!(
            "not valid before {} (is this machine's clock wrong?)",
            date(not_before)
        ),
        C::NotValidYet => "not valid yet (is this machine's clock wrong?)".into(),
        C::ApplicationVerificationFailure => format!(
            "fingerprint does not match: the server presented {fp} (a renewed certificate? \
             check it, then give the new one with --fingerprint)"
        ),
        C::Revoked => "revoked by its issuer".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "not meant for a TLS server (its extended key usage says otherwise)".into()
        }
        C::BadEncoding => "malformed (not valid DER)".into(),
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            format!("signed with an algorithm we do not support ({pin})")
        }
        other => format!("refused: {}", words(&format!("{other:?}"))),
    }
}

/// The host name or address in webpki's rendering of a subjectAltName entry
/// (`DnsName("mx.example.org")`, `IpAddress(192.0.2.1)`); `None` for other kinds.
fn host_name(san: &str) -> Option<&str> {
    if let Some(dns) = san.strip_prefix("DnsName(\"") {
        dns.strip_suffix("\")")
    } else {
        san.strip_prefix("IpAddress(")?.strip_suffix(')')
    }
}

/// True for webpki's refusal of a certificate that says it is a CA (basicConstraints
/// cA=TRUE, as `openssl req -x509` makes them) as a server's own.
fn is_ca_used_as_end_entity(e: &rustls::OtherError) -> bool {
    matches!(
        e.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// A certificate time, for messages: `2026-01-31 23:59 UTC`.
fn date(t: &UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || format!("{} (Unix time)", t.as_secs()),
            |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
}

/// True when the server at `addr` answers a TLS ClientHello with a TLS record within
/// `wait`: a server that sends no SMTP greeting may be waiting for a handshake (implicit
/// TLS, RFC 8314 §3.3) on a port we took for STARTTLS or plain text. Used on a second
/// connection, so the first is undisturbed if the server is merely slow to greet.
pub fn answers_tls(addr: SocketAddr, wait: Duration) -> bool {
    let probe = || -> io::Result<bool> {
        let mut tcp = TcpStream::connect_timeout(&addr, wait)?;
        tcp.set_read_timeout(Some(wait))?;
        tcp.set_write_timeout(Some(wait))?;
        // No certificate is looked at: only the first record's header is read.
        let config = client_config(&TlsOptions::default()).map_err(io::Error::other)?;
        let name = ServerName::IpAddress(addr.ip().into());
        let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        while conn.wants_write() {
            conn.write_tls(&mut tcp)?;
        }
        // RFC 8446 §5.1: a handshake (22) or alert (21) record, protocol version 3.x.
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head)?;
        Ok(matches!(head, [21 | 22, 3]))
    };
    probe().unwrap_or(false)
}

/// What a TLS session negotiated, for msubmit's `--serverinfo`.
#[derive(Clone, Debug)]
pub struct Negotiated {
    /// The protocol version, as rustls names it (`TLSv1_3`).
    pub protocol: String,
    /// The cipher suite, as rustls names it (`TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The key exchange group (`X25519`), when known.
    pub group: Option<String>,
    /// The server's certificate chain as sent, its own first (DER).
    pub chain: Vec<Vec<u8>>,
}

/// What `stream` negotiated.
pub fn negotiated(stream: &TlsStream) -> Negotiated {
    let c = &stream.conn;
    Negotiated {
        protocol: c
            .protocol_version()
            .map_or("?".into(), |v| format!("{v:?}")),
        cipher: c
            .negotiated_cipher_suite()
            .map_or("?".into(), |s| format!("{:?}", s.suite())),
        group: c
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name())),
        chain: c
            .peer_certificates()
            .map(|certs| certs.iter().map(|cert| cert.to_vec()).collect())
            .unwrap_or_default(),
    }
}

/// What was negotiated, for `-v`: protocol, cipher suite and the SHA-256 fingerprint of the
/// server's certificate (what `--fingerprint` wants).
pub fn describe(stream: &TlsStream) -> String {
    let c = &stream.conn;
    let version = c
        .protocol_version()
        .map_or("?".into(), |v| format!("{v:?}"));
    let suite = c
        .negotiated_cipher_suite()
        .map_or("?".into(), |s| format!("{:?}", s.suite()));
    let fp = c
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map_or("?".into(), |cert| fingerprint_hex(cert.as_ref()));
    format!("TLS {version} {suite}, server certificate SHA-256 {fp}")
}

/// Parse a SHA-256 fingerprint written as 64 hex digits, with or without colons.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bad = || {
        Error::new(
            Code::Usage,
            format!("fingerprint {s:?}"),
            "expected a SHA-256 digest: 32 hex bytes, colons optional",
        )
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The SHA-256 fingerprint of a DER certificate, as `AB:CD:…`.
pub fn fingerprint_hex(der: &[u8]) -> String {
    colon_hex(&sha256(der))
}

fn sha256(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    out
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// How we trust the server's certificate; see the module comment.
#[derive(Debug)]
enum Trust {
    /// Any certificate (levels `may` and `encrypt`); the handshake signatures are still
    /// checked against it, as rustls requires.
    Any,
    /// Exactly the certificate with this SHA-256 digest; signatures are still verified, so
    /// the peer must hold that certificate's key.
    Pinned([u8; 32]),
    /// A chain to one of the roots, checked by webpki; `listed` holds the certificates of
    /// the trust file, if one was given.
    Roots {
        webpki: Arc<WebPkiServerVerifier>,
        listed: Vec<CertificateDer<'static>>,
    },
    /// The host's TLSA records ([`crate::net::dane`]): DANE-EE or DANE-TA.
    Dane(Arc<Vec<crate::net::dane::Tlsa>>),
}

/// Our one certificate verifier: [`Trust`], and the refused certificate noted for the
/// error message (see [`REFUSED`]).
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let digest = sha256(end_entity.as_ref());
        let verdict = match &self.trust {
            Trust::Any => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(pin) if *pin == digest => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(_) => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            Trust::Dane(records) => crate::net::dane::verify(
                records,
                end_entity,
                intermediates,
                server_name,
                now,
                &self.provider,
            )
            .map(|()| ServerCertVerified::assertion()),
            Trust::Roots { webpki, listed } => {
                match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                    // A self-signed server certificate given as the trust file, as msmtp
                    // (GnuTLS, OpenSSL) accepts it with tls_trust_file. webpki refuses it
                    // when it says it is a CA (cA=TRUE, what `openssl req -x509` makes):
                    // a trust anchor is never an end entity to webpki, and rustls has no
                    // switch for that. The bytes being the very certificate the user
                    // trusts stands for the chain; webpki checked the validity period
                    // before the CA flag (rustls-webpki 0.103 verify_cert.rs:
                    // check_issuer_independent_properties), so a CaUsedAsEndEntity here
                    // means in date; the name is checked below. The handshake signature
                    // (verify_tls1x_signature) still proves the server holds its key.
                    Err(rustls::Error::InvalidCertificate(CertificateError::Other(o)))
                        if is_ca_used_as_end_entity(&o)
                            && listed.iter().any(|c| c.as_ref() == end_entity.as_ref()) =>
                    {
                        ParsedCertificate::try_from(end_entity)
                            .and_then(|c| rustls::client::verify_server_name(&c, server_name))
                            .map(|()| ServerCertVerified::assertion())
                    }
                    verdict => verdict,
                }
            }
        };
        if verdict.is_err() {
            REFUSED.set(Some(digest));
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client's transport (the SMTP and POP3 clients'): clear text until TLS starts,
/// then TLS over it.
pub enum ClientStream {
    Plain(Box<dyn Io>),
    Tls(Box<TlsStream>),
    /// Dropped on purpose (a transaction that must not complete) or lost.
    Closed,
}

impl ClientStream {
    /// The connection under it, for deadlines; `None` once closed.
    pub fn io(&mut self) -> Option<&mut dyn Io> {
        match self {
            ClientStream::Plain(s) => Some(s.as_mut()),
            ClientStream::Tls(s) => Some(s.sock.as_mut()),
            ClientStream::Closed => None,
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
            ClientStream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
            ClientStream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
            ClientStream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "00".repeat(31) + "ff";
        let fp = parse_fingerprint(&hex).unwrap();
        assert_eq!(fp[31], 0xff);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        assert_eq!(fingerprint_hex(b"").len(), 95);
    }

    #[test]
    fn refusals_read_as_words_with_what_to_do() {
        assert_eq!(words("HandshakeFailure"), "handshake failure");
        assert_eq!(
            host_name("DnsName(\"mx.example.org\")"),
            Some("mx.example.org")
        );
        assert_eq!(host_name("IpAddress(192.0.2.1)"), Some("192.0.2.1"));
        assert_eq!(host_name("DirectoryName"), None);
        let no_names = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("mx.example.org").unwrap(),
            presented: vec!["DirectoryName".into()],
        };
        let why = describe_cert_error(&no_names, Some([0xab; 32]));
        assert!(
            why.starts_with("not valid for mx.example.org: it names no host"),
            "{why}"
        );
        assert!(why.contains(&format!("--fingerprint {}", ["AB"; 32].join(":"))));
        let expired = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
        };
        assert!(describe_cert_error(&expired, None).starts_with("expired on 2023-11-14 22:13 UTC"));
    }

    #[test]
    fn one_vocabulary_for_how_tls_starts_and_how_strict_it_is() {
        let mode = |start, level| Mode { start, level };
        for (words, want) in [
            ("starttls", Mode::STARTTLS),
            ("verify", Mode::STARTTLS),
            ("StartTLS,Verify", Mode::STARTTLS),
            ("implicit", Mode::IMPLICIT),
            ("none", Mode::NONE),
            ("starttls,none", Mode::NONE),
            ("may", Mode::MAY),
            ("encrypt", mode(Start::StartTls, Level::Encrypt)),
            ("implicit, encrypt", mode(Start::Implicit, Level::Encrypt)),
            ("encrypt,implicit", mode(Start::Implicit, Level::Encrypt)),
        ] {
            assert_eq!(Mode::parse(words), Ok(want), "{words}");
            // The name reads back as the same mode.
            assert_eq!(Mode::parse(want.name()), Ok(want), "{words}");
        }
        for bad in [
            "",
            "on",
            "tls",
            "implicit,may",
            "implicit,none",
            "may,encrypt",
            "starttls,implicit",
        ] {
            assert!(Mode::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Mode::parse("bogus")
                .unwrap_err()
                .starts_with("expected starttls, implicit")
        );
        // Each word offered reads as the mode it names.
        for (word, _) in Mode::WORDS {
            let name = Mode::parse(word).map(Mode::name);
            assert_eq!(name, Ok(if word == "verify" { "starttls" } else { word }));
        }
        assert!(Level::None < Level::May && Level::May < Level::Encrypt);
        assert!(!Mode::MAY.requires_tls() && Mode::IMPLICIT.requires_tls());
    }

    #[test]
    fn msmtps_keys_are_aliases() {
        let keys = |tls, starttls| Mode::from_keys(tls, starttls);
        assert_eq!(keys(None, None), Ok(None));
        assert_eq!(keys(Some("on"), None), Ok(Some(Mode::STARTTLS)));
        assert_eq!(keys(Some("yes"), Some(false)), Ok(Some(Mode::IMPLICIT)));
        assert_eq!(keys(None, Some(false)), Ok(Some(Mode::IMPLICIT)));
        assert_eq!(keys(Some("off"), Some(false)), Ok(Some(Mode::NONE)));
        assert_eq!(keys(Some("none"), Some(true)), Ok(Some(Mode::NONE)));
        assert_eq!(keys(Some("may"), Some(true)), Ok(Some(Mode::MAY)));
        assert_eq!(
            keys(Some("encrypt"), Some(false)).map(|m| m.map(Mode::name)),
            Ok(Some("implicit,encrypt"))
        );
        assert_eq!(
            keys(Some("implicit"), Some(false)),
            Ok(Some(Mode::IMPLICIT))
        );
        for (tls, starttls) in [("implicit", true), ("starttls", false), ("may", false)] {
            assert_eq!(
                keys(Some(tls), Some(starttls)),
                Err(KeyError::Contradiction),
                "{tls}"
            );
        }
        let Err(KeyError::Tls(why)) = keys(Some("startls"), None) else {
            panic!()
        };
        assert!(why.starts_with("expected on, off, starttls"), "{why}");
    }

    #[test]
    fn default_roots_and_bad_ca_file() {
        assert!(client_config(&TlsOptions::default()).is_ok());
        let e = client_config(&TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        })
        .unwrap_err();
        assert_eq!(e.code(), Code::Config);
    }
}
