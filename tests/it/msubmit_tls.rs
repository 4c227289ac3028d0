//! msubmit's TLS checks against an in-test implicit-TLS server built on our own
//! `tls::server_config` and rcgen certificates: hermetic (no root, no Postfix) counterparts
//! of the Postfix interop cases, so a wrong trust decision fails on any machine. Also what
//! a failure says (what happened and which setting fixes it, never rustls's Debug words)
//! and its exit status (a TLS mode that does not fit the port is 78, not 75).

use crate::common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

struct Pki {
    dir: tempfile::TempDir,
    leaf_der: Vec<u8>,
}

/// A CA and a leaf certificate for `names`, as PEM files in a temporary directory.
fn pki(names: &[&str]) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
    Pki {
        leaf_der: leaf.der().to_vec(),
        dir,
    }
}

/// A self-signed certificate for `names` as cert.pem and key.pem (and ca.pem, the same):
/// marked a CA when `ca` (as `openssl req -x509` makes them), and long expired when
/// `expired`.
fn self_signed(names: &[&str], ca: bool, expired: bool) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    Pki {
        leaf_der: cert.der().to_vec(),
        dir,
    }
}

/// A plain-text SMTP server on 127.0.0.1 (the port a user mistakes for implicit TLS).
fn plain_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = dialogue(&mut BufReader::new(tcp), &Mutex::new(Vec::new()));
            });
        }
    });
    port
}

/// An implicit-TLS SMTP server on 127.0.0.1 that accepts everything; returns its port and
/// the messages it accepted.
fn server(pki: &Pki) -> (u16, Arc<Mutex<Vec<String>>>) {
    let config = mailpipe::net::tls::server_config(
        &pki.dir.path().join("cert.pem"),
        &pki.dir.path().join("key.pem"),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, g) = (config.clone(), g.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut s = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                let _ = dialogue(&mut s, &g);
            });
        }
    });
    (port, got)
}

fn dialogue<S: std::io::Read + Write>(
    s: &mut BufReader<S>,
    got: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    s.get_mut().write_all(b"220 tls.test ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
            "EHLO" => b"250-tls.test\r\n250 PIPELINING\r\n",
            "DATA" => {
                s.get_mut().write_all(b"354 go\r\n")?;
                let mut msg = String::new();
                loop {
                    line.clear();
                    s.read_line(&mut line)?;
                    if line == ".\r\n" || line.is_empty() {
                        break;
                    }
                    msg.push_str(&line);
                }
                got.lock().unwrap().push(msg);
                b"250 2.0.0 ok\r\n"
            }
            "QUIT" => {
                s.get_mut().write_all(b"221 bye\r\n")?;
                return s.get_mut().flush();
            }
            _ => b"250 2.0.0 ok\r\n",
        };
        s.get_mut().write_all(reply)?;
        s.get_mut().flush()?;
    }
}

fn submit(home: &Path, port: u16, extra: &[&str]) -> std::process::Output {
    submit_in(home, port, "implicit", extra)
}

/// msubmit to 127.0.0.1:`port` with `--tls mode`.
fn submit_in(home: &Path, port: u16, mode: &str, extra: &[&str]) -> std::process::Output {
    let mut c = tool(bin!("msubmit"), home);
    c.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        mode,
        "--timeout",
        "10",
    ])
    .args(extra)
    .args(["-f", "a@a.test", "b@b.test"]);
    run(&mut c, b"Subject: tls\n\nx\n")
}

/// stderr, checked to be free of rustls's Debug output (what users saw before:
/// `other(othererror(causedasendentity))`, `badsignature`, `received corrupt message of
/// type InvalidContentType`).
fn human(out: &std::process::Output) -> String {
    let text = stderr(out);
    let lower = text.to_lowercase();
    for word in [
        "othererror",
        "causedasendentity",
        "badsignature",
        "unknownissuer",
        "notvalidforname",
        "expiredcontext",
        "invalidcontenttype",
        "corrupt message",
        "applicationverificationfailure",
        "{",
    ] {
        assert!(
            !lower.contains(word),
            "rustls internals ({word}) in: {text}"
        );
    }
    assert!(text.starts_with("msubmit: "), "{text}");
    text
}

#[test]
fn verified_trusted_and_pinned_certificates_are_accepted() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let (port, got) = server(&pki);
    let t = tempfile::tempdir().unwrap();
    let ca = pki.dir.path().join("ca.pem");
    let out = submit(t.path(), port, &["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = submit(
        t.path(),
        port,
        &[
            "--ca-file",
            ca.to_str().unwrap(),
            "--tls-server-name",
            "localhost",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let fp = mailpipe::net::tls::fingerprint_hex(&pki.leaf_der);
    let out = submit(t.path(), port, &["--fingerprint", &fp, "-v"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // -v shows the fingerprint to pin.
    assert!(
        stderr(&out).contains(&format!("SHA-256 {fp}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(got.lock().unwrap().len(), 3);
}

#[test]
fn a_wrong_name_an_unknown_issuer_or_a_wrong_pin_sends_nothing() {
    let pki = pki(&["mail.other.test"]);
    let (port, got) = server(&pki);
    let t = tempfile::tempdir().unwrap();
    let ca = pki.dir.path().join("ca.pem");
    let out = submit(t.path(), port, &["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        human(&out).contains(
            "certificate of 127.0.0.1: not valid for 127.0.0.1: it is for mail.other.test \
             (connect by that name, or give it with --tls-server-name NAME)"
        ),
        "{}",
        stderr(&out)
    );
    let out = submit(t.path(), port, &["--tls-server-name", "mail.other.test"]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    let fp = mailpipe::net::tls::fingerprint_hex(&pki.leaf_der);
    let text = human(&out);
    assert!(
        text.contains("not trusted: issued by an unknown authority, or self-signed")
            && text.contains("--ca-file FILE")
            && text.contains(&format!("--fingerprint {fp}")),
        "{text}"
    );
    let wrong = ["AB"; 32].join(":");
    let out = submit(t.path(), port, &["--fingerprint", &wrong]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        human(&out).contains(&format!(
            "fingerprint does not match: the server presented {fp}"
        )),
        "{}",
        stderr(&out)
    );
    assert!(got.lock().unwrap().is_empty());
}

#[test]
fn a_self_signed_certificate_given_as_the_trust_file_is_accepted() {
    // As msmtp accepts it with tls_trust_file. webpki refused the CA-marked one that
    // `openssl req -x509` makes: "other(othererror(causedasendentity))".
    for ca in [true, false] {
        let pki = self_signed(&["localhost", "127.0.0.1"], ca, false);
        let (port, got) = server(&pki);
        let t = tempfile::tempdir().unwrap();
        let cert = pki.dir.path().join("cert.pem");
        let out = submit(t.path(), port, &["--ca-file", cert.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "ca {ca}: {}", stderr(&out));
        assert_eq!(got.lock().unwrap().len(), 1, "ca {ca}");
    }
}

#[test]
fn a_self_signed_trust_file_still_checks_the_name_and_the_dates() {
    let t = tempfile::tempdir().unwrap();
    let pki = self_signed(&["mail.other.test"], true, false);
    let (port, got) = server(&pki);
    let cert = pki.dir.path().join("cert.pem");
    let out = submit(t.path(), port, &["--ca-file", cert.to_str().unwrap()]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        human(&out).contains("not valid for 127.0.0.1: it is for mail.other.test"),
        "{}",
        stderr(&out)
    );
    assert!(got.lock().unwrap().is_empty());

    let pki = self_signed(&["localhost", "127.0.0.1"], true, true);
    let (port, got) = server(&pki);
    let cert = pki.dir.path().join("cert.pem");
    let out = submit(t.path(), port, &["--ca-file", cert.to_str().unwrap()]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        human(&out).contains("certificate of 127.0.0.1: expired on 2021-01-01 00:00 UTC"),
        "{}",
        stderr(&out)
    );
    assert!(got.lock().unwrap().is_empty());
}

#[test]
fn an_untrusted_certificate_says_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    // Self-signed and marked a CA, not in any trust file.
    let pki = self_signed(&["localhost", "127.0.0.1"], true, false);
    let (port, got) = server(&pki);
    let fp = mailpipe::net::tls::fingerprint_hex(&pki.leaf_der);
    let out = submit(t.path(), port, &[]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    let text = human(&out);
    assert!(
        text.contains("certificate of 127.0.0.1: not trusted: a CA certificate presented as")
            && text.contains("--ca-file FILE")
            && text.contains(&format!("--fingerprint {fp}")),
        "{text}"
    );
    // Its fingerprint, as offered, is accepted.
    let out = submit(t.path(), port, &["--fingerprint", &fp]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(got.lock().unwrap().len(), 1);

    // The trust file holds another certificate of the same name (a stale copy): webpki
    // said "badsignature".
    let pki = self_signed(&["localhost", "127.0.0.1"], false, false);
    let (port, got) = server(&pki);
    let stale = self_signed(&["localhost", "127.0.0.1"], false, false);
    let cert = stale.dir.path().join("cert.pem");
    let out = submit(t.path(), port, &["--ca-file", cert.to_str().unwrap()]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    let text = human(&out);
    assert!(
        text.contains("not trusted: its signature does not verify")
            && text.contains("update --ca-file FILE"),
        "{text}"
    );
    assert!(got.lock().unwrap().is_empty());
}

#[test]
fn encrypt_takes_any_certificate_where_verify_refuses_it() {
    let t = tempfile::tempdir().unwrap();
    let pki = self_signed(&["mail.other.test"], true, true);
    let (port, got) = server(&pki);
    for verified in ["implicit", "implicit,verify"] {
        let out = submit_in(t.path(), port, verified, &[]);
        assert_eq!(code(&out), 69, "{verified}: {}", stderr(&out));
    }
    assert!(got.lock().unwrap().is_empty());
    let out = submit_in(t.path(), port, "implicit,encrypt", &["-v"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(got.lock().unwrap().len(), 1);
    // msmtp's tls_starttls gives a level its start in the configuration.
    let cfg = t.path().join("config");
    std::fs::write(
        &cfg,
        format!("account default\nhost 127.0.0.1\nport {port}\ntls encrypt\ntls_starttls off\n"),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["-C", c, "-f", "a@a.test", "b@b.test"]),
        b"Subject: tls\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(got.lock().unwrap().len(), 2);
}

#[test]
fn a_tls_mode_that_does_not_fit_the_port_is_a_configuration_error() {
    let t = tempfile::tempdir().unwrap();
    // Implicit TLS against a plain-text port: rustls said "received corrupt message of
    // type InvalidContentType", exit 75.
    let plain = plain_server();
    let out = submit_in(t.path(), plain, "implicit", &[]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        human(&out).contains(
            "tls handshake with 127.0.0.1: the server did not answer in TLS: is the port for \
             STARTTLS (--tls starttls, or tls_starttls on) or plain text (--tls none)?"
        ),
        "{}",
        stderr(&out)
    );

    // STARTTLS (or plain text) against an implicit-TLS port, which waits for a handshake
    // and sends no greeting: that was "greeting: timed out", exit 75, after the timeout.
    let pki = pki(&["localhost", "127.0.0.1"]);
    let (tls, got) = server(&pki);
    for mode in ["starttls", "none"] {
        let started = std::time::Instant::now();
        let out = submit_in(t.path(), tls, mode, &[]);
        assert_eq!(code(&out), 78, "{mode}: {}", stderr(&out));
        assert!(
            human(&out).contains(&format!(
                "greeting from 127.0.0.1:{tls}: the server sends none but answers in TLS: \
                 the port is for implicit TLS (use --tls implicit"
            )),
            "{}",
            stderr(&out)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(9));
    }
    assert!(got.lock().unwrap().is_empty());

    // Queued mail meeting the mismatch stays queued, and the flush says 78, not 75.
    let q = t.path().join("queue");
    let q = q.to_str().unwrap();
    let queued = run(
        tool(bin!("msubmit"), t.path()).args([
            "--queue-dir",
            q,
            "--queue",
            "-f",
            "a@a.test",
            "b@b.test",
        ]),
        b"Subject: q\n\nx\n",
    );
    assert_eq!(code(&queued), 0, "{}", stderr(&queued));
    let port = plain.to_string();
    let flush = [
        "--queue-dir",
        q,
        "--flush",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ];
    let out = run(
        tool(bin!("msubmit"), t.path())
            .args(flush)
            .args(["--tls", "implicit"]),
        b"",
    );
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        human(&out).contains("did not answer in TLS"),
        "{}",
        stderr(&out)
    );
    let list = run(
        tool(bin!("msubmit"), t.path()).args(["--queue-dir", q, "--list"]),
        b"",
    );
    assert!(stderr(&list).is_empty() && !list.stdout.is_empty());
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("Mail queue is empty"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
}

/// An implicit-TLS server for `pki` that requires a client certificate issued by the CA in
/// `client_ca` (DER); returns its port and the certificate each client presented.
fn server_asking_for_a_client_cert(pki: &Pki, client_ca: &[u8]) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.to_vec().into()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = vec![pki.leaf_der.clone().into()];
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_file(pki.dir.path().join("key.pem")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, s) = (config.clone(), s.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut stream = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                let _ = dialogue(&mut stream, &Mutex::new(Vec::new()));
                let peer = stream.get_ref().conn.peer_certificates();
                if let Some(cert) = peer.and_then(|c| c.first()) {
                    s.lock().unwrap().push(cert.to_vec());
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn a_client_certificate_is_presented_when_the_server_asks_for_one() {
    let pki = pki(&["127.0.0.1"]);
    // The client's own CA and certificate (msmtp's tls_cert_file and tls_key_file).
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (port, seen) = server_asking_for_a_client_cert(&pki, ca.der());
    let t = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = (t.path().join("alice.pem"), t.path().join("alice.key"));
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let ca_file = pki.dir.path().join("ca.pem");
    let ca_arg = ["--ca-file", ca_file.to_str().unwrap()];
    // Without one, the server refuses the session and nothing is sent; the message says
    // which keys give one.
    let out = submit(t.path(), port, &ca_arg);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    let text = human(&out);
    assert!(text.contains("tls_cert_file"), "{text}");
    assert!(seen.lock().unwrap().is_empty());
    crate::common::smtp::write(
        &t.path().join(".config/mailpipe/config"),
        &format!(
            "tls_cert_file {}\ntls_key_file {}\n",
            cert_pem.display(),
            key_pem.display()
        ),
    );
    let out = submit(t.path(), port, &ca_arg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The server's thread records the certificate when its session has ended, which may be
    // a moment after msubmit has exited.
    crate::common::wait_until(std::time::Duration::from_secs(5), || {
        !seen.lock().unwrap().is_empty()
    });
    assert_eq!(seen.lock().unwrap().as_slice(), [cert.der().to_vec()]);
}
