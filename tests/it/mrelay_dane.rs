//! mrelay's DANE (RFC 7672) and MTA-STS (RFC 8461) against real components on loopback:
//! nsd serving signed, bogus and unsigned zones behind a validating unbound
//! (tests/peers/start-dnssec.sh), an HTTPS policy server with the peers' CA
//! (start-mta-sts.sh, on 127.0.0.5:443), mreceive as each MX host with the peers'
//! certificate (the one the TLSA records of secure.test name), and a man in the middle that
//! strips STARTTLS from the EHLO reply. What must hold: a TLSA match delivers over TLS; a
//! mismatch, a bogus signature, a stripped STARTTLS under DANE or MTA-STS enforce all
//! defer, and no MAIL command ever reaches the wire in clear text; an insecure zone stays
//! opportunistic; MTA-STS testing delivers; a changed id fetches again; a cached enforce
//! policy holds when the policy server is down.

use crate::common::relay::Relay;
use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The DNSSEC world (and the state dir of every peer), or None when skipped.
struct World {
    peers: Peers,
    resolver: String,
}

impl World {
    fn start() -> Option<World> {
        if !have(&["nsd", "unbound", "ldns-signzone", "python3"]) {
            return None;
        }
        if !is_root() {
            assert!(!in_ci(), "the DNSSEC peers need root in CI");
            eprintln!("SKIPPED: the peers need root");
            return None;
        }
        let peers = Peers::new();
        let (auth, res) = (free_port(), free_port());
        peers.script(
            "start-dnssec.sh",
            &[
                peers.dir().to_str().unwrap(),
                "127.0.0.1",
                &auth.to_string(),
                &res.to_string(),
            ],
            &[],
        );
        Some(World {
            resolver: format!("127.0.0.1:{res}"),
            peers,
        })
    }

    fn tls(&self, file: &str) -> PathBuf {
        self.peers.dir().join("tls").join(file)
    }

    /// A relay asking the validating resolver, MX connections to `port`, the peers' CA
    /// trusted for verify and MTA-STS.
    fn relay(&self, extra_config: &str) -> Relay {
        Relay::new(&format!(
            "relay_tls_trust_file {}\nrelay_retry 1s\n{extra_config}",
            self.tls("ca.pem").display()
        ))
    }

    fn send(&self, r: &Relay, port: u16, rcpt: &str) -> String {
        r.ok(
            &[
                "--dns-server",
                &self.resolver,
                "--mx-port",
                &port.to_string(),
                "--allow-private-targets",
                "-f",
                "a@relay.test",
                rcpt,
            ],
            b"Subject: dane\r\n\r\nhello\r\n",
        )
    }

    fn check(&self, r: &Relay, domain: &str) -> (i32, String) {
        let out = r.run(
            &[
                "--dns-server",
                &self.resolver,
                "--allow-private-targets",
                "--check",
                domain,
            ],
            b"",
        );
        (
            code(&out),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// mreceive as the MX host of `domain` at `addr:port`, with the peers' certificate.
struct Mx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Mx {
    fn start(w: &World, addr: &str, port: u16, domain: &str, cert: (&Path, &Path)) -> Mx {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mail/bob")).unwrap();
        let child = tool(crate::bin!("mreceive"), dir.path())
            .args(["-l", &format!("{addr}:{port}"), "-d", domain])
            .args(["--hostname", &format!("mx.{domain}"), "--timeout", "10"])
            .arg("-m")
            .arg(dir.path().join("mail"))
            .arg("--tls-cert")
            .arg(cert.0)
            .arg("--tls-key")
            .arg(cert.1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _ = w;
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((addr, port))
                .is_ok()),
            "mreceive did not listen on {addr}:{port}"
        );
        Mx { child, dir }
    }

    fn peers_cert(w: &World, addr: &str, port: u16, domain: &str) -> Mx {
        let (c, k) = (w.tls("server.pem"), w.tls("server.key"));
        Mx::start(w, addr, port, domain, (&c, &k))
    }

    /// The messages delivered to bob.
    fn delivered(&self) -> Vec<Vec<u8>> {
        let md = self.dir.path().join("mail/bob/Maildir");
        if !md.exists() {
            return Vec::new();
        }
        messages(&md)
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }
}

impl Drop for Mx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A man in the middle at `addr:port` in front of `to`: it replaces STARTTLS in the
/// server's EHLO reply, so the client sees no offer, and records what the client sends.
fn stripper(addr: &str, port: u16, to: u16) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let listener = TcpListener::bind((addr, port)).unwrap();
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                return;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let record = record.clone();
            // Client to server, recorded.
            std::thread::spawn(move || {
                let mut from = BufReader::new(c2);
                let mut to = s2;
                let mut line = String::new();
                while from.read_line(&mut line).is_ok_and(|n| n > 0) {
                    record.lock().unwrap().push_str(&line);
                    if to.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
            // Server to client, STARTTLS removed from the offer.
            std::thread::spawn(move || {
                let mut from = BufReader::new(server);
                let mut to = client;
                let mut line = String::new();
                while from.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let out = line.replace("STARTTLS", "XSTRIPPED");
                    if to.write_all(out.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    seen
}

/// A log line's status for the recipient.
fn deferred(log: &str) -> bool {
    log.contains("status=deferred")
}

#[test]
fn dane_matching_tlsa_delivers_over_tls_and_a_mismatch_defers() {
    let Some(w) = World::start() else { return };
    let port = free_port();
    let good = Mx::peers_cert(&w, "127.0.0.2", port, "secure.test");
    let bad = Mx::peers_cert(&w, "127.0.0.3", port, "badtlsa.test");

    let r = w.relay("");
    let log = w.send(&r, port, "bob@secure.test");
    assert!(log.contains("status=sent"), "{log}");
    let got = good.delivered();
    assert_eq!(got.len(), 1, "{log}");
    // mreceive's Received: says the session was encrypted (RFC 3848 ESMTPS).
    assert!(String::from_utf8_lossy(&got[0]).contains("ESMTPS"));

    // The same certificate, but the TLSA record of mx.badtlsa.test names another key.
    let log = w.send(&r, port, "bob@badtlsa.test");
    assert!(deferred(&log) && log.contains("TLSA"), "{log}");
    assert!(bad.delivered().is_empty());

    // TLS-Required: No (RFC 8689 §5): the sender relaxes DANE for this message only; the
    // waiting one stays waiting (its own header does not say so).
    let relaxed = b"TLS-Required: No\r\nSubject: dane\r\n\r\nrelaxed\r\n";
    let log = r.ok(
        &[
            "--dns-server",
            &w.resolver,
            "--mx-port",
            &port.to_string(),
            "--allow-private-targets",
            "-f",
            "a@relay.test",
            "bob@badtlsa.test",
        ],
        relaxed,
    );
    let sent = log.lines().filter(|l| l.contains("status=sent")).count();
    assert_eq!(sent, 1, "{log}");
    let got = bad.delivered();
    assert_eq!(got.len(), 1, "{log}");
    assert!(String::from_utf8_lossy(&got[0]).contains("relaxed"));

    // TLS-RPT (RFC 8460): the day's sessions, per policy domain, as its JSON report.
    let today = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .unwrap();
    let today = String::from_utf8(today.stdout).unwrap();
    let out = r.run(&["--tls-report", today.trim()], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let secure = text
        .lines()
        .find(|l| l.contains(r#""policy-domain":"secure.test""#));
    let secure = secure.unwrap_or_else(|| panic!("no report for secure.test: {text}"));
    assert!(secure.contains(r#""policy-type":"tlsa""#), "{secure}");
    assert!(
        secure.contains(r#""total-successful-session-count":1"#),
        "{secure}"
    );
    let report = text.lines().find(|l| l.contains("badtlsa.test")).unwrap();
    assert!(
        report.contains(r#""result-type":"validation-failure""#),
        "{report}"
    );
    assert!(report.contains(r#""failed-session-count":1"#), "{report}");
    // The relaxed message was held to no policy: a success of its own kind.
    assert!(
        report.contains(r#""policy-type":"no-policy-found""#),
        "{report}"
    );

    // --send: each report queued to its domain's _smtp._tls rua (secure.test has one), then
    // sent like any mail.
    let dns = [
        "--dns-server",
        w.resolver.as_str(),
        "--allow-private-targets",
    ];
    r.ok(
        &[&dns[..], &["--tls-report", today.trim(), "--send"]].concat(),
        b"",
    );
    let port_s = port.to_string();
    let log = r.ok(&[&dns[..], &["--mx-port", &port_s, "-q"]].concat(), b"");
    let got = good.delivered();
    let report = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .find(|m| m.contains("TLS-Report-Domain: secure.test"));
    let report = report.unwrap_or_else(|| panic!("no report delivered: {log}\n{}", r.list()));
    assert!(report.contains("application/tlsrpt+gzip"), "{report}");
    assert!(report.contains("TLS-Required: No"), "{report}");

    let (rc, out) = w.check(&r, "secure.test");
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("dnssec: MX set secure"), "{out}");
    assert!(out.contains("TLSA 3 1 1 "), "{out}");
    assert!(
        out.contains("certificate matching a TLSA record [dane]"),
        "{out}"
    );

    // relay_tls overrides: `may` for the bad one delivers (no DANE asked), unauthenticated.
    let r = w.relay("relay_tls badtlsa.test may\n");
    let log = w.send(&r, port, "bob@badtlsa.test");
    assert!(log.contains("status=sent"), "{log}");
    assert_eq!(bad.delivered().len(), 2);
}

#[test]
fn bogus_defers_and_insecure_stays_opportunistic() {
    let Some(w) = World::start() else { return };
    let port = free_port();
    // A certificate DANE would refuse (the mreceive harness's own CA): irrelevant when
    // the zone is unsigned.
    let other = tempfile::tempdir().unwrap();
    let (_, cert, key) = crate::common::mreceive::make_certs(other.path());
    let insecure = Mx::start(&w, "127.0.0.4", port, "insecure.test", (&cert, &key));
    // bogus.test's MX host: its forged address would be 127.0.0.9; a server there must
    // never be reached.
    let forged = Mx::peers_cert(&w, "127.0.0.9", port, "bogus.test");

    let r = w.relay("");
    let log = w.send(&r, port, "bob@insecure.test");
    assert!(log.contains("status=sent"), "{log}");
    assert_eq!(insecure.delivered().len(), 1);

    let log = w.send(&r, port, "bob@bogus.test");
    assert!(deferred(&log), "{log}");
    assert!(forged.delivered().is_empty());
    assert_eq!(r.waiting().len(), 1);
    let (rc, out) = w.check(&r, "bogus.test");
    assert_eq!(rc, 75, "{out}");
    assert!(out.contains("bogus"), "{out}");

    // dane-only: an unsigned domain is not sent to at all.
    let r = w.relay("relay_tls insecure.test dane-only\n");
    let log = w.send(&r, port, "bob@insecure.test");
    assert!(deferred(&log) && log.contains("dane-only"), "{log}");
    assert_eq!(insecure.delivered().len(), 1);
}

#[test]
fn dane_never_sends_in_clear_text_when_starttls_is_stripped() {
    let Some(w) = World::start() else { return };
    let (port, inner) = (free_port(), free_port());
    let real = Mx::peers_cert(&w, "127.0.0.1", inner, "secure.test");
    let seen = stripper("127.0.0.2", port, inner);
    let r = w.relay("");
    let log = w.send(&r, port, "bob@secure.test");
    assert!(deferred(&log), "{log}");
    let wire = seen.lock().unwrap().clone();
    assert!(
        wire.contains("EHLO"),
        "the relay did not reach the proxy: {wire}"
    );
    assert!(!wire.contains("MAIL FROM"), "sent in clear text: {wire}");
    assert!(real.delivered().is_empty());
}

/// MTA-STS's cases in one test: its policy server has one fixed address (127.0.0.5:443).
#[test]
fn mta_sts_enforce_testing_changed_id_and_a_cached_policy() {
    let Some(w) = World::start() else { return };
    let dir = w.peers.dir().to_str().unwrap().to_string();
    w.peers
        .script("start-mta-sts.sh", &[&dir, "127.0.0.5", "443"], &[]);
    let (port, inner) = (free_port(), free_port());
    // The MX host at 127.0.0.5: first mreceive itself, later a stripping proxy before it.
    let direct = Mx::peers_cert(&w, "127.0.0.5", port, "sts.test");
    let r = w.relay("");

    // enforce, fetched: verified TLS to mx.sts.test, and the policy cached in the queue.
    let log = w.send(&r, port, "bob@sts.test");
    assert!(log.contains("status=sent"), "{log}");
    assert_eq!(direct.delivered().len(), 1);
    let cache = r.queue().join("mta-sts/sts.test");
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert!(
        cached.contains("mode: enforce") && cached.contains("x-id: 1"),
        "{cached}"
    );
    let (rc, out) = w.check(&r, "sts.test");
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("mta-sts: mode enforce, mx mx.sts.test"),
        "{out}"
    );
    assert!(out.contains("[mta-sts enforce]"), "{out}");
    drop(direct);

    // enforce, STARTTLS stripped: deferred, no MAIL in clear text.
    let real = Mx::peers_cert(&w, "127.0.0.1", inner, "sts.test");
    let seen = stripper("127.0.0.5", port, inner);
    let log = w.send(&r, port, "bob@sts.test");
    assert!(deferred(&log), "{log}");
    let wire = seen.lock().unwrap().clone();
    assert!(
        wire.contains("EHLO") && !wire.contains("MAIL FROM"),
        "{wire}"
    );

    // A changed id (the cache holds id 0, testing): fetched again, enforce back in force.
    let testing = cached
        .replace("x-id: 1", "x-id: 0")
        .replace("mode: enforce", "mode: testing");
    std::fs::write(&cache, &testing).unwrap();
    let log = w.send(&r, port, "bob@sts.test");
    assert!(deferred(&log), "{log}");
    let now = std::fs::read_to_string(&cache).unwrap();
    assert!(
        now.contains("x-id: 1") && now.contains("mode: enforce"),
        "{now}"
    );

    // testing: delivered even through the stripping proxy (what testing means), in clear.
    let policy = w.peers.dir().join("mta-sts/policy.txt");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("mode: enforce", "mode: testing")).unwrap();
    std::fs::write(&cache, testing.replace("mode: testing", "mode: enforce")).unwrap();
    let before = real.delivered().len();
    let log = w.send(&r, port, "bob@sts.test");
    assert!(log.contains("status=sent"), "{log}");
    assert!(
        std::fs::read_to_string(&cache)
            .unwrap()
            .contains("mode: testing")
    );
    assert!(real.delivered().len() > before);
    // ... and reported (RFC 8460): what enforce would have refused.
    let today = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .unwrap();
    let out = r.run(
        &[
            "--tls-report",
            String::from_utf8_lossy(&today.stdout).trim(),
        ],
        b"",
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let sts = text
        .lines()
        .find(|l| l.contains(r#""policy-domain":"sts.test""#))
        .unwrap();
    assert!(
        sts.contains(r#""result-type":"starttls-not-supported""#),
        "{sts}"
    );

    // The policy server down, an enforce policy cached (under another id, so a fetch is
    // due and fails): the cached policy holds, nothing goes in clear text.
    w.peers.script("stop.sh", &[&dir, "mta-sts"], &[]);
    std::fs::write(&cache, cached.replace("x-id: 1", "x-id: 0")).unwrap();
    seen.lock().unwrap().clear();
    let log = w.send(&r, port, "bob@sts.test");
    assert!(deferred(&log), "{log}");
    assert!(!seen.lock().unwrap().contains("MAIL FROM"));
    let (_, out) = w.check(&r, "sts.test");
    assert!(out.contains("cached (the fetch failed"), "{out}");
}

/// The DNSSEC status as net::dns reads it from unbound: secure, insecure and bogus kept
/// apart, and a server that fails everything (SERVFAIL with and without CD) is a failure to
/// retry, not "bogus" (that only a resolver on loopback is believed: net::dns's tests).
#[test]
fn dnssec_status_secure_insecure_bogus_and_failed() {
    use mailpipe::net::dns::{Answer, Checked, Lookup, Options, Resolver, Type};
    let Some(w) = World::start() else { return };
    let opts = |server: &str| Options {
        server: Some(server.parse().unwrap()),
        timeout: Duration::from_secs(2),
        attempts: 1,
    };
    let dns = Resolver::new(&opts(&w.resolver)).unwrap();
    let ask = |name: &str, kind| dns.validated(&[(name, kind)]).remove(0);
    assert!(matches!(
        ask("secure.test", Type::Mx),
        Ok(Checked::Secure(Answer::Mx(_)))
    ));
    assert!(matches!(
        ask("_25._tcp.mx.secure.test", Type::Tlsa),
        Ok(Checked::Secure(Answer::Tlsa(r))) if r.len() == 1 && r[0].usage == 3
    ));
    // Secure denial: no TLSA records for the port, proven.
    assert!(matches!(
        ask("_26._tcp.mx.secure.test", Type::Tlsa),
        Ok(Checked::Secure(Answer::NxDomain))
    ));
    assert!(matches!(
        ask("insecure.test", Type::Mx),
        Ok(Checked::Insecure(Answer::Mx(_)))
    ));
    assert!(matches!(
        ask("mx.bogus.test", Type::A),
        Ok(Checked::Bogus(_))
    ));
    assert!(matches!(
        ask("_mta-sts.sts.test", Type::Txt),
        Ok(Checked::Insecure(Answer::Txt(t))) if t == ["v=STSv1; id=1"]
    ));

    // A server that answers SERVFAIL to everything, CD or not.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let servfail = sock.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x80 | (buf[2] & 0x01);
            reply[3] = 0x80 | 2;
            let _ = sock.send_to(&reply, from);
        }
    });
    let failing = Resolver::new(&opts(&servfail)).unwrap();
    let a = failing.validated(&[("secure.test", Type::Mx)]).remove(0);
    assert!(matches!(&a, Err(f) if f.is_temporary()), "{a:?}");
}
