//! A running `mreceive --listen` for tests, with a test CA (rcgen), a password file for
//! alice/secret, a small line-oriented SMTP client, and a reader of its log lines. Loopback
//! only.
//! Included as `#[path = "common/mreceive.rs"] mod mreceive;` beside `mod common;`.

use crate::common::{free_port, tool, wait_until};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// A test CA and a server certificate for localhost, 127.0.0.1 and ::1, as PEM files.
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    // Distinct names: with rcgen's default one for both, OpenSSL takes the leaf for
    // self-signed.
    let dn = |cn: &str| {
        let mut d = DistinguishedName::new();
        d.push(DnType::CommonName, cn);
        d
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = dn("mailpipe test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .unwrap();
    leaf.distinguished_name = dn("localhost");
    let leaf = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let (ca_pem, cert, keyf) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&keyf, key.serialize_pem()).unwrap();
    (ca_pem, cert, keyf)
}

/// A running `mreceive --listen` on 127.0.0.1, stopped (SIGTERM) on drop.
pub struct Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub child: Option<Child>,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = make_certs(dir.path());
        let port = free_port();
        let pw = dir.path().join("passwd");
        // `secret`, hashed by mreceive's own code.
        std::fs::write(
            &pw,
            format!("alice:{}\n", mailpipe::passwd::hash("secret").unwrap()),
        )
        .unwrap();
        let mut c = tool(crate::bin!("mreceive"), dir.path());
        c.args(["-l", &format!("127.0.0.1:{port}"), "-d", "local.test"])
            .args(["--hostname", "mx.local.test"])
            // Ten seconds unless the test says.
            .args(
                ["--timeout", "10"]
                    .iter()
                    .filter(|_| !extra.contains(&"--timeout")),
            )
            .arg("-m")
            .arg(dir.path().join("mail"))
            .arg("--queue-dir")
            .arg(dir.path().join("queue"))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--passwords")
            .arg(&pw)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = c.spawn().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "mreceive did not listen"
        );
        Server {
            port,
            dir,
            ca,
            child: Some(child),
        }
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    pub fn connect(&self) -> Client<TcpStream> {
        Client::new(TcpStream::connect(("127.0.0.1", self.port)).unwrap())
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        crate::common::wait_output(child, Duration::from_secs(20)).status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A line-oriented SMTP client for tests.
pub struct Client<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> Client<S> {
    pub fn new(s: S) -> Client<S> {
        Client {
            r: BufReader::new(s),
        }
    }
    pub fn send(&mut self, text: &str) {
        self.r.get_mut().write_all(text.as_bytes()).unwrap();
    }
    /// One whole reply, all its lines.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap() == 0 {
                return all;
            }
            all += &line;
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }
    pub fn cmd(&mut self, text: &str) -> String {
        self.send(text);
        self.reply()
    }
    pub fn into_inner(self) -> S {
        assert!(self.r.buffer().is_empty(), "unread input");
        self.r.into_inner()
    }
}

pub fn tls_client(ca: &Path, tcp: TcpStream) -> Client<mailpipe::net::tls::TlsStream> {
    let cfg = mailpipe::net::tls::client_config(&mailpipe::net::tls::TlsOptions {
        ca_file: Some(ca.to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    Client::new(mailpipe::net::tls::connect(tcp, cfg, "localhost").unwrap())
}

/// One log line as a reader (or a log parser) splits it: `mreceive[PID]: SESSION: KIND`, then
/// `key=value` pairs, a value either bare or in double quotes with backslash escapes.
#[derive(Debug)]
pub struct LogLine {
    pub session: String,
    pub kind: String,
    pub pairs: Vec<(String, String)>,
}

impl LogLine {
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut found = self.pairs.iter().filter(|(k, _)| k == key);
        let v = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{key} twice in {self:?}");
        v
    }
    pub fn has(&self, kind: &str, key: &str, value: &str) -> bool {
        self.kind == kind && self.get(key) == Some(value)
    }
}

/// Parse log lines; panics on a line that is not one (every line on stderr must be).
pub fn parse_log(text: &str, ident: &str) -> Vec<LogLine> {
    text.lines()
        .map(|line| {
            let rest = line
                .strip_prefix(ident)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.split_once("]: "))
                .map(|(_, r)| r)
                .unwrap_or_else(|| panic!("not a log line: {line:?}"));
            let (session, rest) = rest.split_once(": ").unwrap();
            let (kind, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut pairs = Vec::new();
            while !rest.is_empty() {
                let (key, after) = rest
                    .split_once('=')
                    .unwrap_or_else(|| panic!("no key=value at {rest:?} in {line:?}"));
                assert!(!key.contains([' ', '"']), "{line:?}");
                let (value, after) = if let Some(q) = after.strip_prefix('"') {
                    let mut value = String::new();
                    let mut chars = q.char_indices();
                    let end = loop {
                        match chars.next() {
                            Some((i, '"')) => break i + 1,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, 'r')) => value.push('\r'),
                                Some((_, 't')) => value.push('\t'),
                                Some((_, 'u')) => {
                                    let hex: String = chars
                                        .by_ref()
                                        .map(|(_, c)| c)
                                        .skip(1)
                                        .take_while(|&c| c != '}')
                                        .collect();
                                    value.push(
                                        char::from_u32(u32::from_str_radix(&hex, 16).unwrap())
                                            .unwrap(),
                                    );
                                }
                                Some((_, c)) => value.push(c),
                                None => panic!("unterminated quote in {line:?}"),
                            },
                            Some((_, c)) => value.push(c),
                            None => panic!("unterminated quote in {line:?}"),
                        }
                    };
                    (value, &q[end..])
                } else {
                    let end = after.find(' ').unwrap_or(after.len());
                    (after[..end].to_string(), &after[end..])
                };
                pairs.push((key.to_string(), value));
                rest = after.strip_prefix(' ').unwrap_or(after);
            }
            LogLine {
                session: session.to_string(),
                kind: kind.to_string(),
                pairs,
            }
        })
        .collect()
}
