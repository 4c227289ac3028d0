//! DKIM signing (RFC 6376) by msubmit and mrelay, checked by verifiers that are not ours:
//! Python's dkimpy (tests/peers/dkim-verify.py, its `dnsfunc` hook answering the key's TXT
//! question) and mail-auth's verifier (the crate that signs, but its verifying half), on
//! the message as a fake server received it and as Postfix delivered it into a Maildir.

use crate::common;
use crate::common::relay::Relay;
use crate::common::smtp::{Fake, Script};
use common::*;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

const MSG: &[u8] = b"From: Ann <ann@example.org>\nTo: alice@example.test\n\
    Subject: signed  mail\nMessage-ID: <1@example.org>\nDate: Tue, 1 Dec 2026 10:00:00 +0000\n\
    \nHello,\n\nthis is signed.\n";

const OTHER: &[u8] = b"From: eve@example.com\nTo: alice@example.test\nSubject: x\n\nnot ours\n";

/// A key published as `selector._domainkey.example.org`: the file and its TXT value.
struct Key {
    spec: String,
    name: String,
    txt: String,
}

/// The RSA test key and an Ed25519 key made by `mrelay --dkim-keygen`, with their records as
/// that option prints them.
fn keys(dir: &Path) -> Vec<Key> {
    let rsa = dir.join("rsa.pem");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dkim-test-rsa.pem"),
        &rsa,
    )
    .unwrap();
    let ed = dir.join("ed.pem");
    [("r1", rsa), ("e1", ed)]
        .into_iter()
        .map(|(sel, file)| {
            let spec = format!("example.org:{sel}:{}", file.display());
            let out = run(
                Command::new(bin!("mrelay")).args(["--dkim-keygen", &spec]),
                b"",
            );
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            let line = String::from_utf8(out.stdout).unwrap();
            let name = line.split_whitespace().next().unwrap().to_string();
            assert_eq!(name, format!("{sel}._domainkey.example.org."));
            let txt = line.split('"').skip(1).step_by(2).collect();
            Key { spec, name, txt }
        })
        .collect()
}

/// dkimpy's verdict: Some(true) when every signature verifies; None when dkimpy is missing
/// outside CI (the caller skips).
fn dkimpy(msg: &[u8], key: &Key) -> Option<(bool, String)> {
    let import = Command::new("python3")
        .args(["-c", "import dkim, nacl"])
        .output();
    if !import.is_ok_and(|o| o.status.success()) {
        assert!(!in_ci(), "dkimpy missing in CI (tests/peers/install.sh)");
        eprintln!("SKIPPED: dkimpy missing (tests/peers/install.sh)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dkim-verify.py");
    let record = format!("{}={}", key.name.trim_end_matches('.'), key.txt);
    let out = run(Command::new("python3").arg(script).arg(record), msg);
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out),
    ))
}

/// The TXT answers mail-auth's verifier gets: ours, never the DNS.
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

/// mail-auth's verdicts, one per signature.
fn mail_auth(msg: &[u8], key: &Key) -> Vec<DkimResult> {
    let records = Records(Mutex::new(HashMap::new()));
    let record = DomainKey::parse(key.txt.as_bytes()).unwrap();
    records.insert(
        key.name.clone().into(),
        Txt::from(record),
        std::time::Instant::now(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = MessageAuthenticator::new_system_conf().unwrap();
    let parsed = AuthenticatedMessage::parse(msg).unwrap();
    rt.block_on(auth.verify_dkim(Parameters::new(&parsed).with_txt_cache(&records)))
        .iter()
        .map(|o| o.result().clone())
        .collect()
}

/// Both verifiers pass `msg`, and fail it with one body byte changed.
fn verifies(msg: &[u8], key: &Key) {
    assert_eq!(mail_auth(msg, key), vec![DkimResult::Pass], "{}", key.name);
    let changed = String::from_utf8_lossy(msg).replace("is signed", "is signet");
    assert_ne!(mail_auth(changed.as_bytes(), key), vec![DkimResult::Pass]);
    if let Some((ok, why)) = dkimpy(msg, key) {
        assert!(ok, "dkimpy: {why}\n{}", String::from_utf8_lossy(msg));
        let (ok, _) = dkimpy(changed.as_bytes(), key).unwrap();
        assert!(!ok, "dkimpy passed a changed body");
    }
}

fn signatures(msg: &[u8]) -> usize {
    let text = String::from_utf8_lossy(msg).to_ascii_lowercase();
    text.lines()
        .filter(|l| l.starts_with("dkim-signature:"))
        .count()
}

#[test]
fn msubmit_signs_mail_from_its_domain_and_both_verifiers_pass_it() {
    let t = tempfile::tempdir().unwrap();
    let fake = Fake::start(Script::default());
    for key in keys(t.path()) {
        let send = |msg: &[u8]| {
            let mut c = tool(bin!("msubmit"), t.path());
            c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()])
                .args(["--tls", "none", "--timeout", "5", "--dkim", &key.spec, "-t"]);
            let out = run(&mut c, msg);
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            fake.messages().pop().unwrap()
        };
        let got = send(MSG);
        assert_eq!(signatures(&got), 1, "{}", String::from_utf8_lossy(&got));
        verifies(&got, &key);
        // From: another domain: sent as it was, unsigned.
        assert_eq!(signatures(&send(OTHER)), 0);
    }
}

#[test]
fn msubmit_refuses_to_send_with_a_key_it_cannot_read() {
    let t = tempfile::tempdir().unwrap();
    let fake = Fake::start(Script::default());
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()])
        .args([
            "--tls",
            "none",
            "--dkim",
            "example.org:s:/nonexistent/key.pem",
            "-t",
        ]);
    let out = run(&mut c, MSG);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("msubmit: /nonexistent/key.pem: "),
        "{}",
        stderr(&out)
    );
    assert!(fake.messages().is_empty(), "nothing sent unsigned");
}

#[test]
fn mrelay_signs_by_the_from_domain_and_both_verifiers_pass_it() {
    let t = tempfile::tempdir().unwrap();
    let fake = Fake::start(Script::default());
    let keys = keys(t.path());
    let (rsa, ed) = (&keys[0], &keys[1]);
    // The configuration's line for one, the flag for the other domain's key.
    let r = Relay::new(&format!(
        "route example.test [127.0.0.1]:{}\ndkim {}\n",
        fake.port(),
        rsa.spec.replace(':', " ")
    ));
    r.ok(&["-f", "ann@example.org", "alice@example.test"], MSG);
    let got = fake.messages().pop().unwrap();
    assert_eq!(signatures(&got), 1, "{}", String::from_utf8_lossy(&got));
    verifies(&got, rsa);
    r.ok(&["-f", "eve@example.com", "alice@example.test"], OTHER);
    assert_eq!(signatures(&fake.messages().pop().unwrap()), 0);

    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    r.ok(
        &[
            "--dkim",
            &ed.spec,
            "-f",
            "ann@example.org",
            "alice@example.test",
        ],
        MSG,
    );
    verifies(&fake.messages().pop().unwrap(), ed);

    // A key that cannot be read: the message is not queued, and the reason named.
    let out = r.run(
        &["--dkim", "example.org:s:/nonexistent", "alice@example.test"],
        MSG,
    );
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(r.waiting().is_empty());
}

#[test]
fn signatures_survive_postfix() {
    if !have(&["postfix"]) {
        return;
    }
    if !is_root() {
        assert!(!in_ci(), "the peers need root in CI");
        eprintln!("SKIPPED: the peer scripts need root");
        return;
    }
    let peers = Peers::new();
    let dir = peers.dir().to_str().unwrap().to_string();
    // 127.0.14.x: this suite's own addresses (msubmit_postfix uses 127.0.4.x).
    peers.script("start-postfix.sh", &[&dir, "dkim", "127.0.14.2:2525"], &[]);
    let mail = PathBuf::from(peers.env_value("postfix-dkim", "MAIL_BASE").unwrap());
    let t = tempfile::tempdir().unwrap();
    let keys = keys(t.path());
    let r = Relay::new(&format!(
        "route example.test [127.0.14.2]:2525\ndkim {}\n",
        keys[0].spec.replace(':', " ")
    ));
    // mrelay signs one message with the RSA key, msubmit the other with the Ed25519 key.
    r.ok(&["-f", "ann@example.org", "alice@example.test"], MSG);
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.14.2", "--port", "2525", "--tls", "none"])
        .args(["--timeout", "20", "--dkim", &keys[1].spec, "-t"]);
    let out = run(&mut c, MSG);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let md = mail.join("alice/Maildir");
    assert!(
        wait_until(Duration::from_secs(20), || messages(&md).len() >= 2),
        "postfix delivered {} of 2",
        messages(&md).len()
    );
    let mut delivered: Vec<Vec<u8>> = messages(&md)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    delivered.sort_by_key(|m| !String::from_utf8_lossy(m).contains("a=rsa-sha256"));
    for (msg, key) in delivered.iter().zip(&keys) {
        assert!(
            String::from_utf8_lossy(msg).contains("Received: from"),
            "postfix added its trace field"
        );
        verifies(msg, key);
    }
}
