//! msubmit's TLS checks against an in-test implicit-TLS server built on our own
//! `tls::server_config` and rcgen certificates: hermetic (no root, no Postfix) counterparts
//! of the Postfix interop cases, so a wrong trust decision fails on any machine.

mod common;
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

/// An implicit-TLS SMTP server on 127.0.0.1 that accepts everything; returns its port and
/// the messages it accepted.
fn server(pki: &Pki) -> (u16, Arc<Mutex<Vec<String>>>) {
    let config = mailpipe::tls::server_config(
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
    let mut c = tool(bin!("msubmit"), home);
    c.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        "implicit",
        "--timeout",
        "10",
    ])
    .args(extra)
    .args(["-f", "a@a.test", "b@b.test"]);
    run(&mut c, b"Subject: tls\n\nx\n")
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
    let fp = mailpipe::tls::fingerprint_hex(&pki.leaf_der);
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
        stderr(&out).contains("not valid for this host name"),
        "{}",
        stderr(&out)
    );
    let out = submit(t.path(), port, &["--tls-server-name", "mail.other.test"]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown authority"),
        "{}",
        stderr(&out)
    );
    let wrong = ["AB"; 32].join(":");
    let out = submit(t.path(), port, &["--fingerprint", &wrong]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("fingerprint does not match"),
        "{}",
        stderr(&out)
    );
    assert!(got.lock().unwrap().is_empty());
}
