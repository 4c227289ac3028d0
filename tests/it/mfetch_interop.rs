//! mfetch against a real Dovecot POP3 server over TLS (tests/peers/start-dovecot.sh with a
//! Maildir seeded by seed-maildir.sh): every message byte for byte, implicit TLS and STLS,
//! a wrong password, a connection cut mid-fetch by a loopback proxy, and SIGKILL at random
//! moments during a 2000-message fetch, rerun until done: every message exactly once.
//! Needs root (the peer switches users) and Dovecot; in CI neither may be missing.

use crate::common::{Peers, code, free_port, have, in_ci, is_root, messages, run, stderr, tool};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Dovecot {
    peers: Peers,
    pop3: u16,
    pop3s: u16,
}

impl Dovecot {
    fn start(seed: usize) -> Option<Dovecot> {
        if !have(&["dovecot"]) {
            return None;
        }
        if !is_root() {
            assert!(!in_ci(), "the Dovecot peer needs root in CI");
            eprintln!("SKIPPED: the Dovecot peer needs root");
            return None;
        }
        let peers = Peers::new();
        let s = peers.dir().to_str().unwrap().to_string();
        let (imap, imaps, pop3, pop3s) = (free_port(), free_port(), free_port(), free_port());
        peers.script(
            "start-dovecot.sh",
            &[&s, "127.0.0.1"],
            &[
                ("IMAP_PORT", &imap.to_string()),
                ("IMAPS_PORT", &imaps.to_string()),
                ("POP3_PORT", &pop3.to_string()),
                ("POP3S_PORT", &pop3s.to_string()),
            ],
        );
        let d = Dovecot { peers, pop3, pop3s };
        d.peers.script(
            "seed-maildir.sh",
            &[d.maildrop().to_str().unwrap(), &seed.to_string()],
            &[],
        );
        Some(d)
    }

    fn maildrop(&self) -> PathBuf {
        self.peers.dir().join("mail/alice/Maildir")
    }

    fn ca(&self) -> PathBuf {
        self.peers.dir().join("tls/ca.pem")
    }

    /// The messages on the server now, sorted.
    fn contents(&self) -> Vec<Vec<u8>> {
        sorted_contents(&self.maildrop())
    }
}

fn sorted_contents(md: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = messages(md)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    v.sort();
    v
}

fn mfetch(home: &Path, port: u16, d: &Dovecot, extra: &[&str]) -> Command {
    let mut c = tool(bin!("mfetch"), home);
    c.args(["--pop3", &format!("127.0.0.1:{port}"), "--user", "alice"])
        .arg("--ca-file")
        .arg(d.ca())
        .arg("--state-dir")
        .arg(home.join("state"))
        .arg("--maildir")
        .arg(home.join("Maildir"))
        .args(["--timeout", "10"])
        .args(extra);
    if !extra.contains(&"--password-command") {
        c.args(["--password-command", "echo secret"]);
    }
    c
}

#[test]
fn dovecot_over_tls_every_message_byte_for_byte_and_a_wrong_password() {
    let Some(d) = Dovecot::start(30) else { return };
    let before = d.contents();
    let home = tempfile::tempdir().unwrap();
    let out = run(
        &mut mfetch(
            home.path(),
            d.pop3,
            &d,
            &["--tls", "starttls", "--password-command", "echo wrong"],
        ),
        b"",
    );
    assert_eq!(code(&out), 77, "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    // STLS, kept on the server.
    let out = run(
        &mut mfetch(home.path(), d.pop3, &d, &["--tls", "starttls", "--keep"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(sorted_contents(&home.path().join("Maildir")), before);
    // Implicit TLS, another state: fetched again into another Maildir, then deleted.
    let home2 = tempfile::tempdir().unwrap();
    let out = run(&mut mfetch(home2.path(), d.pop3s, &d, &[]), b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(sorted_contents(&home2.path().join("Maildir")), before);
    assert!(d.contents().is_empty(), "not deleted on the server");
    // A pinned certificate (msubmit's --fingerprint) instead of the CA; a wrong pin is 69
    // before any credential is sent.
    let cert = d.peers.dir().join("tls/server.pem");
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = fp.trim().rsplit('=').next().unwrap().to_string();
    let home3 = tempfile::tempdir().unwrap();
    let mut c = tool(bin!("mfetch"), home3.path());
    c.args([
        "--pop3",
        &format!("127.0.0.1:{}", d.pop3s),
        "--user",
        "alice",
    ])
    .args(["--password-command", "echo secret", "--fingerprint", &fp])
    .arg("--state-dir")
    .arg(home3.path().join("state"))
    .arg("--maildir")
    .arg(home3.path().join("Maildir"));
    let out = run(&mut c, b"");
    assert_eq!(code(&out), 1, "pinned: {}", stderr(&out));
    let wrong = format!("{}00", &fp[..fp.len() - 2]);
    let wrong = if wrong == fp {
        format!("{}11", &fp[..fp.len() - 2])
    } else {
        wrong
    };
    let mut c = tool(bin!("mfetch"), home3.path());
    c.args([
        "--pop3",
        &format!("127.0.0.1:{}", d.pop3s),
        "--user",
        "alice",
    ])
    .args(["--password-command", "echo secret", "--fingerprint", &wrong])
    .arg("--state-dir")
    .arg(home3.path().join("state"));
    let out = run(&mut c, b"");
    assert_eq!(code(&out), 69, "wrong pin: {}", stderr(&out));
}

/// A loopback proxy to `to` that cuts its first connection after `cut` bytes from the
/// server; later connections pass whole.
pub fn cutting_proxy(to: u16, cut: usize) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let n = conns.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(client) = c else { return };
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                return;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
            });
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let mut buf = [0u8; 4096];
                let mut sent = 0;
                loop {
                    let k = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => k,
                    };
                    let k = if first { k.min(cut - sent) } else { k };
                    if client.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    sent += k;
                    if first && sent >= cut {
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (port, conns)
}

#[test]
fn dovecot_connection_cut_mid_fetch_then_rerun_gets_each_message_once() {
    let Some(d) = Dovecot::start(200) else { return };
    let before = d.contents();
    let home = tempfile::tempdir().unwrap();
    // Cut after about 40 kB of TLS from the server: mid-RETR.
    let (port, conns) = cutting_proxy(d.pop3s, 40_000);
    let out = run(&mut mfetch(home.path(), port, &d, &["--batch", "50"]), b"");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let md = home.path().join("Maildir");
    let part = messages(&md).len();
    assert!(part < 200, "the cut did not cut");
    let out = run(&mut mfetch(home.path(), port, &d, &["--batch", "50"]), b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    assert_eq!(sorted_contents(&md), before, "lost or duplicated");
    assert!(d.contents().is_empty());
}

#[test]
fn dovecot_sigkill_at_random_during_a_2000_message_fetch_every_message_exactly_once() {
    let Some(d) = Dovecot::start(2000) else {
        return;
    };
    let before = d.contents();
    assert_eq!(before.len(), 2000);
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let start = Instant::now();
    let mut kills = 0;
    // What the killed runs had stored by the last kill: some, or no kill cut a fetch.
    let mut during = 0;
    let mut seed = std::process::id() as u64 ^ start.elapsed().subsec_nanos() as u64;
    loop {
        assert!(start.elapsed() < Duration::from_secs(300), "never finished");
        let mut c = mfetch(home.path(), d.pop3s, &d, &["--batch", "100"]);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // xorshift: up to twelve runs killed at a random moment in a window that grows with
        // each kill (a loaded machine may need seconds for a first batch), more while no
        // killed run has stored anything yet; the runs after them left to finish. A run may
        // finish before its moment comes: the loop ends once the server is empty.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(10 + seed % (300 + 100 * kills));
        let kill = kills < 12 || (during == 0 && kills < 40);
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if kill && t.elapsed() >= wait {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                during = messages(&md).len();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if let Some(s) = status {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            match s.code() {
                Some(1) if d.contents().is_empty() => break,
                Some(0 | 1) => {}
                // Dovecot still holds the killed session's lock for a moment.
                Some(75) => std::thread::sleep(Duration::from_millis(100)),
                other => panic!("mfetch exited {other:?}: {err}"),
            }
        }
    }
    eprintln!("{kills} kills before done");
    assert!(
        kills > 0 && during > 0,
        "no killed run stored anything: no kill cut a fetch ({kills} kills)"
    );
    let got = sorted_contents(&md);
    assert_eq!(
        got.len(),
        2000,
        "{} messages after {kills} kills",
        got.len()
    );
    assert_eq!(got, before, "not every message exactly once, byte for byte");
}
