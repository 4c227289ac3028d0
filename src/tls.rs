//! TLS for the mail protocols: rustls with the ring provider, client and server configs.
//!
//! One place decides how we trust a server: the webpki (Mozilla) roots by default, the
//! certificates of a PEM file instead (`--ca-file`, msmtp's `tls_trust_file`), or a pinned
//! SHA-256 fingerprint of the server's certificate (`--fingerprint`, msmtp's
//! `tls_fingerprint`), which replaces chain and name checks because the pin names the exact
//! certificate. Host names are always verified otherwise, IP addresses against IP SANs.
//! Only the ring provider is used, so the tree builds one crypto library (CRATES.md).

use crate::exit::{Code, Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS stream over TCP.
pub type TlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// How the client checks the server's certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Trust the certificates in this PEM file instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Accept exactly the certificate with this SHA-256 digest (of its DER encoding).
    pub fingerprint: Option<[u8; 32]>,
    /// Verify the certificate for this name instead of the host we connect to.
    pub server_name: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build a client configuration.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Code::Software, "tls", e))?;
    let config = if let Some(fp) = opts.fingerprint {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                sha256: fp,
                provider: provider(),
            }))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &opts.ca_file {
            Some(path) => {
                let what = || format!("CA file {}", path.display());
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| Error::new(Code::Config, what(), e))?;
                for cert in certs {
                    let cert = cert.map_err(|e| Error::new(Code::Config, what(), e))?;
                    roots
                        .add(cert)
                        .map_err(|e| Error::new(Code::Config, what(), e))?;
                }
                if roots.is_empty() {
                    return Err(Error::new(Code::Config, what(), "no certificates in it"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Build a server configuration from a PEM certificate chain and a PEM private key (for
/// the servers: mreceive's STARTTLS and implicit TLS).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
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
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Code::Software, "tls", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::new(Code::Config, what(cert), e))?;
    Ok(Arc::new(config))
}

/// Run the TLS handshake as a client over `tcp`, verifying the server as `name`.
///
/// Certificate failures are [`Code::Unavailable`] (retrying will not fix a wrong certificate
/// or trust setting); network trouble during the handshake is [`Code::TempFail`].
pub fn connect(tcp: TcpStream, config: Arc<ClientConfig>, name: &str) -> Result<TlsStream> {
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| Error::new(Code::Config, format!("tls name {name:?}"), e))?;
    let conn = ClientConnection::new(config, server_name)
        .map_err(|e| Error::new(Code::Software, "tls", e))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            return Err(handshake_error(e, name));
        }
    }
    Ok(stream)
}

fn handshake_error(e: io::Error, name: &str) -> Error {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(why)) => Error::new(
            Code::Unavailable,
            format!("tls: certificate of {name}"),
            describe_cert_error(why),
        ),
        Some(other) => Error::new(Code::TempFail, "tls handshake", other),
        None => Error::io(Code::TempFail, "tls handshake", e),
    }
}

fn describe_cert_error(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "not valid for this host name".into()
        }
        C::UnknownIssuer => "issued by an unknown authority (see --ca-file)".into(),
        C::Expired | C::ExpiredContext { .. } => "expired".into(),
        C::ApplicationVerificationFailure => "fingerprint does not match".into(),
        other => format!("{other:?}").to_lowercase(),
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
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts exactly one certificate, by digest; signatures are still verified, so the peer
/// must hold that certificate's key.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let d = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if d.as_ref() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
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
