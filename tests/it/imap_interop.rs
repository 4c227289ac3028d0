//! The IMAP client (`mailpipe::imap::client`) against a real Dovecot over TLS, implicit and
//! STARTTLS: login and a wrong password, sizes as listed, bodies byte for byte as the
//! Maildir holds them (with CRLF), delete with UID EXPUNGE, a new UIDVALIDITY after the
//! server lost its UID list, IDLE that sees new mail, and a server that closes during IDLE.
//! They need root (the peers run as their own users) and fail instead of skipping in CI.

use crate::common::*;
use mailpipe::exit::Code;
use mailpipe::imap::client::{Client, Credentials, Idle, Options};
use mailpipe::net::tls::{Mode, TlsOptions};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A Dovecot with alice (password `secret`) and `n` seeded messages.
pub struct Dovecot {
    pub peers: Peers,
    pub imap: u16,
    pub imaps: u16,
    pub ca: PathBuf,
    pub conf: String,
}

impl Dovecot {
    /// None when the peers cannot run here (and not in CI).
    pub fn start(n: usize) -> Option<Dovecot> {
        if !have(&["dovecot"]) {
            assert!(!in_ci(), "dovecot is missing in CI");
            return None;
        }
        if !is_root() {
            assert!(!in_ci(), "the interop test needs root in CI");
            eprintln!("SKIPPED: the peers need root");
            return None;
        }
        let peers = Peers::new();
        let s = peers.dir().to_str().unwrap().to_string();
        // Four distinct ports: each listener is held until all are chosen (free_port one at a
        // time can hand out the same port twice). Another test may still take one before
        // Dovecot binds it: then again with new ones.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/start-dovecot.sh");
        let mut started = None;
        for _ in 0..3 {
            let held: Vec<std::net::TcpListener> = (0..4)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            let p: Vec<u16> = held
                .iter()
                .map(|l| l.local_addr().unwrap().port())
                .collect();
            drop(held);
            let out = Command::new("bash")
                .arg(&script)
                .args([s.as_str(), "127.0.0.1"])
                .env("IMAP_PORT", p[0].to_string())
                .env("IMAPS_PORT", p[1].to_string())
                .env("POP3_PORT", p[2].to_string())
                .env("POP3S_PORT", p[3].to_string())
                .output()
                .unwrap();
            if out.status.success() {
                started = Some((p[0], p[1]));
                break;
            }
            eprintln!("start-dovecot.sh: {}", String::from_utf8_lossy(&out.stderr));
        }
        let (imap, imaps) = started.expect("dovecot did not start on three sets of ports");
        if n > 0 {
            let md = peers.dir().join("mail/alice/Maildir");
            peers.script(
                "seed-maildir.sh",
                &[md.to_str().unwrap(), &n.to_string()],
                &[],
            );
        }
        let ca = PathBuf::from(peers.env_value("dovecot", "TLS_CA").unwrap());
        let conf = peers.env_value("dovecot", "DOVECOT_CONF").unwrap();
        Some(Dovecot {
            peers,
            imap,
            imaps,
            ca,
            conf,
        })
    }

    pub fn maildir(&self) -> PathBuf {
        self.peers.dir().join("mail/alice/Maildir")
    }

    fn opts(&self, mode: Mode, password: &str) -> Options {
        let mut o = Options::new(mode);
        o.trust = TlsOptions {
            ca_file: Some(self.ca.clone()),
            ..TlsOptions::default()
        };
        o.auth = Some(Credentials {
            user: "alice".into(),
            secret: password.into(),
            method: None,
        });
        o.timeout = Duration::from_secs(20);
        o
    }

    fn connect(&self, mode: Mode, password: &str) -> mailpipe::Result<Client> {
        let port = if mode == Mode::IMPLICIT {
            self.imaps
        } else {
            self.imap
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        Client::connect(&[addr], "localhost", &self.opts(mode, password))
    }
}

/// The Maildir's messages as IMAP serves them: CRLF line ends.
fn crlf(path: &Path) -> Vec<u8> {
    let raw = fs::read(path).unwrap();
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for &b in &raw {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Message-ID of a seeded message → its bytes with CRLF.
fn seeded(md: &Path) -> std::collections::HashMap<String, Vec<u8>> {
    let mut out = std::collections::HashMap::new();
    for sub in ["new", "cur"] {
        for p in files(&md.join(sub)) {
            let bytes = crlf(&p);
            let text = String::from_utf8_lossy(&bytes);
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .to_string();
            out.insert(id, bytes);
        }
    }
    out
}

fn message_id(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn fetch_over_implicit_tls_byte_identical_then_delete() {
    let Some(d) = Dovecot::start(20) else { return };
    let want = seeded(&d.maildir());
    let mut c = d.connect(Mode::IMPLICIT, "secret").unwrap();
    assert!(c.is_tls());
    let mb = c.select("INBOX", false).unwrap();
    assert_eq!(mb.exists, 20);
    let listed = c.list().unwrap();
    assert_eq!(listed.len(), 20);
    let mut sizes: Vec<u64> = want.values().map(|b| b.len() as u64).collect();
    let mut got_sizes: Vec<u64> = listed.iter().map(|l| l.size).collect();
    sizes.sort();
    got_sizes.sort();
    assert_eq!(got_sizes, sizes, "RFC822.SIZE is the CRLF size");

    let uids: Vec<u32> = listed.iter().map(|l| l.uid).collect();
    let mut got = Vec::new();
    c.fetch(&uids, &mut |l, r| {
        let mut b = Vec::new();
        r.read_to_end(&mut b).unwrap();
        assert_eq!(b.len() as u64, l.size);
        got.push((l.uid, b));
        Ok(())
    })
    .unwrap();
    assert_eq!(got.len(), 20);
    for (uid, bytes) in &got {
        let id = message_id(bytes);
        assert_eq!(Some(bytes), want.get(&id), "UID {uid} ({id}) differs");
    }

    // Headers only: the fields asked for, nothing of the body.
    let mut heads = 0;
    c.headers(
        &uids[..3],
        Some(&["DATE", "FROM", "SUBJECT"]),
        &mut |_, h| {
            let h = String::from_utf8_lossy(h);
            assert!(
                h.contains("Subject: Test message") && !h.contains("Message-ID"),
                "{h}"
            );
            heads += 1;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(heads, 3);

    c.delete(&uids[..5]).unwrap();
    let left = c.list().unwrap();
    assert_eq!(left.len(), 15);
    assert!(left.iter().all(|l| !uids[..5].contains(&l.uid)));
    c.logout();
    // A new session sees the same: the deletion was expunged, not just flagged.
    let mut c = d.connect(Mode::STARTTLS, "secret").unwrap();
    assert!(c.is_tls());
    let again = c.select("INBOX", true).unwrap();
    assert_eq!(again.exists, 15);
    assert_eq!(again.uidvalidity, mb.uidvalidity);
    c.logout();
}

#[test]
fn a_wrong_password_is_refused_with_no_permission() {
    let Some(d) = Dovecot::start(0) else { return };
    for mode in [Mode::IMPLICIT, Mode::STARTTLS] {
        let e = d.connect(mode, "wrong").err().unwrap();
        assert_eq!(e.code(), Code::NoPerm, "{e}");
        assert!(e.to_string().contains("LOGIN"), "{e}");
    }
    // Without the test CA, the certificate is not trusted: no login is tried.
    let mut o = d.opts(Mode::IMPLICIT, "secret");
    o.trust = TlsOptions::default();
    let addr: SocketAddr = format!("127.0.0.1:{}", d.imaps).parse().unwrap();
    let e = Client::connect(&[addr], "localhost", &o).err().unwrap();
    assert_ne!(e.code(), Code::NoPerm, "{e}");
}

#[test]
fn a_lost_uid_list_gives_a_new_uidvalidity() {
    let Some(d) = Dovecot::start(3) else { return };
    let mut c = d.connect(Mode::IMPLICIT, "secret").unwrap();
    let first = c.select("INBOX", true).unwrap();
    c.logout();
    // What a restored backup or a rebuilt index does: the server's UIDs start over
    // (Dovecot's new UIDVALIDITY is the time, hence the second's wait).
    let md = d.maildir();
    for f in fs::read_dir(&md).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("dovecot") {
            fs::remove_file(&p).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = d.connect(Mode::IMPLICIT, "secret").unwrap();
    let second = c.select("INBOX", true).unwrap();
    assert_ne!(second.uidvalidity, first.uidvalidity);
    assert_eq!(second.exists, 3);
    c.logout();
}

#[test]
fn idle_sees_new_mail_and_a_server_that_closes() {
    let Some(d) = Dovecot::start(1) else { return };
    let mut c = d.connect(Mode::IMPLICIT, "secret").unwrap();
    c.select("INBOX", true).unwrap();
    assert_eq!(c.idle(Duration::from_millis(300)).unwrap(), Idle::Quiet);
    let md = d.maildir();
    let seeder = {
        let md = md.clone();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/seed-maildir.sh");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            Command::new("bash")
                .arg(script)
                .arg(md)
                .arg("1")
                .output()
                .unwrap()
        })
    };
    assert_eq!(c.idle(Duration::from_secs(20)).unwrap(), Idle::Changed);
    seeder.join().unwrap();
    // The server closes while we wait: an error in bounded time, not a hang.
    let kicker = {
        let conf = d.conf.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            Command::new("doveadm")
                .args(["-c", &conf, "kick", "alice"])
                .output()
                .unwrap()
        })
    };
    let start = std::time::Instant::now();
    let e = c.idle(Duration::from_secs(20)).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10), "{e}");
    assert_eq!(e.code(), Code::TempFail, "{e}");
    kicker.join().unwrap();
}
