//! msubmit against a real Postfix (submission with STARTTLS and SASL AUTH through Dovecot,
//! implicit TLS, a plain MX port) on loopback, messages checked in the Maildirs Postfix
//! delivers to. One peer set serves every case (they run in sequence) because Dovecot's ports
//! are fixed per address; it uses 127.0.4.x so it cannot collide with other suites' peers.

use crate::common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const SUBMIT: &str = "127.0.4.1";
const MX: &str = "127.0.4.2";

struct Env {
    peers: Peers,
    home: tempfile::TempDir,
    ca: String,
    mail: PathBuf,
}

impl Env {
    fn maildir(&self, user: &str) -> PathBuf {
        self.mail.join(user).join("Maildir")
    }

    /// Wait until `user` has `n` messages; return them, oldest name first.
    fn wait_for(&self, user: &str, n: usize) -> Vec<Vec<u8>> {
        let md = self.maildir(user);
        let ok = wait_until(Duration::from_secs(15), || messages(&md).len() >= n);
        assert!(
            ok,
            "{user}: expected {n} messages, have {}",
            messages(&md).len()
        );
        messages(&md)
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }

    fn msubmit<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], stdin: &[u8]) -> Output {
        let mut c: Command = tool(bin!("msubmit"), self.home.path());
        c.args(["--timeout", "20"]).args(args);
        run(&mut c, stdin)
    }

    /// Submission port 587-style: STARTTLS then AUTH as alice.
    fn submit(&self, password: &str, extra: &[&str], stdin: &[u8]) -> Output {
        let cmd = format!("echo {password}");
        let mut args = vec![
            "--host",
            SUBMIT,
            "--port",
            "10587",
            "--ca-file",
            &self.ca,
            "--user",
            "alice",
        ];
        args.extend(["--password-command", &cmd]);
        args.extend(extra);
        self.msubmit(&args, stdin)
    }
}

fn start() -> Option<Env> {
    if !have(&["postfix", "dovecot"]) {
        return None;
    }
    if !is_root() {
        assert!(!in_ci(), "the peers need root in CI");
        eprintln!("SKIPPED: the peer scripts need root");
        return None;
    }
    let peers = Peers::new();
    let dir = peers.dir().to_str().unwrap().to_string();
    // The submission address gets a SAN; the MX address deliberately does not.
    peers.script(
        "start-dovecot.sh",
        &[&dir, SUBMIT],
        &[("TLS_EXTRA_SANS", "IP:127.0.4.1")],
    );
    peers.script(
        "start-postfix.sh",
        &[&dir, "mx1", &format!("{MX}:2525")],
        &[
            ("SUBMIT_LISTEN", "127.0.4.1:10587"),
            ("SMTPS_LISTEN", "127.0.4.1:10465"),
        ],
    );
    let ca = peers.env_value("dovecot", "TLS_CA").unwrap();
    let mail = PathBuf::from(peers.env_value("postfix-mx1", "MAIL_BASE").unwrap());
    Some(Env {
        peers,
        home: tempfile::tempdir().unwrap(),
        ca,
        mail,
    })
}

fn ok(out: &Output) {
    assert_eq!(code(out), 0, "{}", stderr(out));
}

fn fails(out: &Output, want: i32, needle: &str) {
    assert_eq!(code(out), want, "{}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
}

fn body_of(msg: &[u8]) -> &[u8] {
    let at = msg.windows(2).position(|w| w == b"\n\n").unwrap();
    &msg[at + 2..]
}

#[test]
fn submission_through_postfix() {
    let Some(env) = start() else { return };
    let _keep = &env.peers;

    // STARTTLS + AUTH PLAIN on the submission port; a message with bare LF line ends and
    // lone-dot lines arrives byte for byte.
    let body = b"one\n.\n..\n.dot\nend\n";
    let mut msg =
        b"From: Alice <alice@example.test>\nTo: bob@example.test\nSubject: dots\n\n".to_vec();
    msg.extend_from_slice(body);
    ok(&env.submit("secret", &["-i", "-t"], &msg));
    let got = env.wait_for("bob", 1);
    assert_eq!(body_of(&got[0]), body);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(
        text.contains("with ESMTPSA"),
        "not authenticated over TLS:\n{text}"
    );
    assert!(text.contains("Return-Path: <alice@example.test>"), "{text}");
    assert!(
        text.contains("\nMessage-ID: <") && text.contains("\nDate: "),
        "{text}"
    );

    // -t with Bcc: carol gets it, and nobody sees the Bcc field.
    ok(&env.submit(
        "secret",
        &["-t", "-oi"],
        b"From: alice@example.test\nTo: bob@example.test\nBcc: carol@example.test\nSubject: bcc\n\nx\n",
    ));
    let carol = env.wait_for("carol", 1);
    let bob = env.wait_for("bob", 2);
    let copies: Vec<String> = [&carol[..], &bob[..]]
        .concat()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|t| t.contains("Subject: bcc"))
        .collect();
    assert_eq!(copies.len(), 2, "carol and bob should each have it");
    for t in &copies {
        assert!(
            !t.to_ascii_lowercase().contains("\nbcc:"),
            "Bcc arrived:\n{t}"
        );
    }

    // Wrong password: 77 with Postfix's reply.
    fails(
        &env.submit(
            "wrong",
            &["-f", "alice@example.test", "bob@example.test"],
            b"S: x\n\nx\n",
        ),
        77,
        "AUTH PLAIN: 535 5.7.8",
    );

    // Recipient refused: 67, the reply in the diagnostic, nothing delivered to the other.
    let out = env.submit(
        "secret",
        &[
            "-f",
            "alice@example.test",
            "carol@example.test",
            "nosuchuser@example.test",
        ],
        b"Subject: refused\n\nx\n",
    );
    fails(&out, 67, "RCPT TO:<nosuchuser@example.test>: 550 5.1.1");
    assert!(!stderr(&out).contains("DATA"), "{}", stderr(&out));
    // A 4xx recipient: 75.
    fails(
        &env.submit(
            "secret",
            &["-f", "alice@example.test", "tempfail@example.test"],
            b"S: x\n\nx\n",
        ),
        75,
        "451 4.3.0",
    );

    // An msmtp-style account, chosen by the From: address, does the same with no flags.
    let config = format!(
        "defaults\ntls on\ntls_trust_file {}\n\naccount base\nhost {SUBMIT}\nport 10587\n\n\
         account alice : base\ntls_starttls on\nauth plain\nuser alice\n\
         passwordeval \"echo secret\"\nfrom alice@example.test\n",
        env.ca
    );
    let cfg = env.home.path().join(".config/mailpipe/config");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, config).unwrap();
    ok(&env.msubmit::<&str>(
        &["-t"],
        b"From: alice@example.test\nTo: carol@example.test\nSubject: by config\n\nx\n",
    ));
    std::fs::remove_file(&cfg).unwrap();

    // Implicit TLS (port 465 style) with AUTH LOGIN.
    ok(&env.msubmit(
        &[
            "--host",
            SUBMIT,
            "--port",
            "10465",
            "--tls",
            "implicit",
            "--ca-file",
            &env.ca,
            "--user",
            "alice",
            "--auth",
            "login",
            "--password-command",
            "echo secret",
            "-f",
            "alice@example.test",
            "carol@example.test",
        ],
        b"Subject: implicit\n\nx\n",
    ));
    let carol = env.wait_for("carol", 3); // bcc, by config, implicit
    assert!(
        carol
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains("Subject: implicit"))
    );
    assert!(
        !carol
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains("Subject: refused")),
        "sent despite a refused recipient"
    );

    // Certificate checks on the MX port (STARTTLS offered): the name does not match.
    let mx = [
        "--host",
        MX,
        "--port",
        "2525",
        "-f",
        "a@other.test",
        "bob@example.test",
    ];
    let with =
        |extra: &[&str]| -> Vec<String> { mx.iter().chain(extra).map(|s| s.to_string()).collect() };
    fails(
        &env.msubmit(&with(&["--ca-file", &env.ca]), b"S: x\n\nx\n"),
        69,
        "not valid for 127.0.4.2: it is for",
    );
    // ... unless the name we verify is one the certificate has.
    ok(&env.msubmit(
        &with(&[
            "--ca-file",
            &env.ca,
            "--tls-server-name",
            "mx1.example.test",
        ]),
        b"Subject: by name\n\nx\n",
    ));
    // Unknown issuer without the test CA.
    fails(
        &env.msubmit(
            &with(&["--tls-server-name", "mx1.example.test"]),
            b"S: x\n\nx\n",
        ),
        69,
        "unknown authority",
    );
    // Pinning: the right fingerprint works without any CA, a wrong one fails.
    let fp = fingerprint(&env.peers.dir().join("tls/server.pem"));
    ok(&env.msubmit(&with(&["--fingerprint", &fp]), b"Subject: pinned\n\nx\n"));
    let wrong = format!("{}00", &fp[..fp.len() - 2]);
    let wrong = if wrong == fp {
        format!("{}11", &fp[..fp.len() - 2])
    } else {
        wrong
    };
    fails(
        &env.msubmit(&with(&["--fingerprint", &wrong]), b"S: x\n\nx\n"),
        69,
        "fingerprint does not match",
    );
    // A TLS mode that does not fit the port is a configuration error (78), not a 75 to
    // retry: implicit TLS to Postfix's plain-text port, STARTTLS to its smtps port (which
    // waits for a handshake and sends no greeting).
    fails(
        &env.msubmit(&with(&["--tls", "implicit"]), b"S: x\n\nx\n"),
        78,
        "the server did not answer in TLS: is the port for STARTTLS",
    );
    fails(
        &env.msubmit(
            &[
                "--host",
                SUBMIT,
                "--port",
                "10465",
                "--tls",
                "starttls",
                "-f",
                "a@other.test",
                "bob@example.test",
            ],
            b"S: x\n\nx\n",
        ),
        78,
        "the server sends none but answers in TLS: the port is for implicit TLS",
    );
    // Plain SMTP to the MX with --tls none.
    ok(&env.msubmit(&with(&["--tls", "none"]), b"Subject: plain\n\nx\n"));
    let bob = env.wait_for("bob", 5);
    for s in ["by name", "pinned", "plain"] {
        assert!(
            bob.iter()
                .any(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {s}"))),
            "{s} missing"
        );
    }
}

fn fingerprint(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit('=').next().unwrap().to_string()
}
