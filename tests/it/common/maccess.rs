//! A running `maccess --listen` for tests: a test CA (the mreceive harness's), a password file
//! for alice/secret, alice's Maildir under the base, one listener with STLS and one with
//! implicit TLS, and a small line-oriented POP3 client. Loopback only.

use crate::common::mreceive::make_certs;
use crate::common::{free_port, tool, wait_until};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// alice's password.
pub const PASSWORD: &str = "secret";

/// A running maccess (one process serving both ports), stopped (SIGTERM) on drop.
pub struct Maccess {
    /// STLS port.
    pub port: u16,
    /// Implicit-TLS port (a second process with --tls-on-connect).
    pub tls_port: u16,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub passwd: PathBuf,
    children: Vec<Child>,
}

impl Maccess {
    /// Start maccess with `extra` flags on both listeners.
    pub fn start(extra: &[&str]) -> Maccess {
        let dir = tempfile::Builder::new()
            .prefix("maccess")
            .tempdir_in("/tmp")
            .unwrap();
        let (ca, cert, key) = make_certs(dir.path());
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!("alice:{}\n", mailpipe::passwd::hash(PASSWORD).unwrap()),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("mail/alice/Maildir")).unwrap();
        let mut m = Maccess {
            port: free_port(),
            tls_port: free_port(),
            dir,
            ca,
            cert,
            key,
            passwd,
            children: Vec::new(),
        };
        for (port, implicit) in [(m.port, false), (m.tls_port, true)] {
            let mut c = m.command();
            c.args(["-l", &format!("127.0.0.1:{port}")]).args(extra);
            if !extra.contains(&"--timeout") {
                c.args(["--timeout", "10"]);
            }
            if implicit {
                c.arg("--tls-on-connect");
            }
            c.stdout(Stdio::null()).stderr(Stdio::piped());
            m.children.push(c.spawn().unwrap());
            assert!(
                wait_until(Duration::from_secs(10), || TcpStream::connect((
                    "127.0.0.1",
                    port
                ))
                .is_ok()),
                "maccess did not listen"
            );
        }
        m
    }

    /// maccess with this instance's base, passwords and certificate (no mode flags).
    pub fn command(&self) -> Command {
        let mut c = tool(crate::bin!("maccess"), self.dir.path());
        c.arg("-m")
            .arg(self.dir.path().join("mail"))
            .arg("-p")
            .arg(&self.passwd)
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
            .args(["--hostname", "pop.local.test"]);
        c
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail/alice/Maildir")
    }

    /// Seed alice's Maildir with `n` messages (tests/peers/seed-maildir.sh) and the
    /// awkward ones of [`awkward`]; returns every message's bytes, in no order.
    pub fn seed(&self, n: usize) -> Vec<Vec<u8>> {
        seed(&self.maildir(), n)
    }

    pub fn connect(&self) -> Pop<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Pop::new(tcp)
    }

    /// SIGTERM to every process, and their stderr.
    pub fn stop(&mut self) -> Vec<(std::process::ExitStatus, String)> {
        self.children
            .drain(..)
            .map(|child| {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let out = crate::common::wait_output(child, Duration::from_secs(20));
                (
                    out.status,
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Maccess {
    fn drop(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Messages no seed script writes: a line that starts with a dot, a lone dot, a long line,
/// 8-bit text, an empty body. Each has a Return-Path, as mail delivered here has (getmail
/// adds `Return-Path: <unknown>` to one without).
pub fn awkward() -> Vec<Vec<u8>> {
    let rp = "Return-Path: <a@example.test>\n";
    let v: Vec<Vec<u8>> = vec![
        b"Subject: dots\n\n.starts with a dot\n.\n..two\nend\n".to_vec(),
        format!("Subject: long\n\n{}\n", "x".repeat(990)).into_bytes(),
        "Subject: 8bit\nContent-Type: text/plain; charset=utf-8\n\nGrüße, ünïcödé\n"
            .as_bytes()
            .to_vec(),
        b"Subject: empty body\n\n".to_vec(),
    ];
    v.into_iter()
        .map(|m| [rp.as_bytes(), &m].concat())
        .collect()
}

/// Seed `maildir` with `n` messages of the seed script and [`awkward`]'s.
pub fn seed(maildir: &Path, n: usize) -> Vec<Vec<u8>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/seed-maildir.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(maildir)
        .arg(n.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = mailpipe::store::maildir::Maildir::open(maildir).unwrap();
    for m in awkward() {
        md.deliver("", |w| w.write_all(&m)).unwrap();
    }
    let mut all: Vec<Vec<u8>> = crate::common::messages(maildir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    all.sort();
    all
}

/// `texts` with CRLF made LF, sorted: what a client stored, comparable with [`seed`]'s.
pub fn normalized(texts: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = texts
        .into_iter()
        .map(|t| {
            let mut out = Vec::with_capacity(t.len());
            let mut i = 0;
            while i < t.len() {
                if t[i] == b'\r' && t.get(i + 1) == Some(&b'\n') {
                    i += 1;
                    continue;
                }
                out.push(t[i]);
                i += 1;
            }
            out
        })
        .collect();
    v.sort();
    v
}

/// A line-oriented POP3 client for tests.
pub struct Pop<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> Pop<S> {
    pub fn new(s: S) -> Pop<S> {
        Pop {
            r: BufReader::new(s),
        }
    }
    pub fn send(&mut self, text: &str) {
        self.r.get_mut().write_all(text.as_bytes()).unwrap();
    }
    /// One line ("" at the end of input).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.r.read_line(&mut line);
        line
    }
    /// A multi-line body up to its ".", lines as sent.
    pub fn multi(&mut self) -> String {
        let mut all = String::new();
        loop {
            let l = self.line();
            if l.is_empty() || l == ".\r\n" {
                return all;
            }
            all += &l;
        }
    }
    pub fn cmd(&mut self, text: &str) -> String {
        self.send(text);
        self.line()
    }
    pub fn into_inner(self) -> S {
        self.r.into_inner()
    }
}
