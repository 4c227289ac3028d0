//! mreceive with real clients on loopback: swaks (plain, --pipeline, --tls with our test CA,
//! AUTH PLAIN and LOGIN), `openssl s_client -starttls smtp`, msmtp, and our msubmit, plus the
//! end-to-end chain msubmit -> mreceive -> mdeliver -> Maildir.

use crate::common;
use crate::common::mreceive;

use common::{code, have, messages, run, stderr};
use mreceive::Server;
use std::process::Command;

fn swaks(s: &Server, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new("swaks");
    c.args([
        "--server",
        &format!("127.0.0.1:{}", s.port),
        "--helo",
        "c.test",
    ])
    .args(["--timeout", "20"])
    .args(extra);
    run(&mut c, b"")
}

fn tls_args(s: &Server) -> Vec<String> {
    vec![
        "--tls".into(),
        "--tls-verify".into(),
        "--tls-ca-path".into(),
        s.ca.display().to_string(),
        "--tls-sni".into(),
        "localhost".into(),
    ]
}

#[test]
fn swaks_plain_pipelined_tls_and_auth() {
    if !have(&["swaks"]) {
        return;
    }
    let s = Server::start(&[]);
    let out = swaks(&s, &["--from", "s@other.test", "--to", "bob@local.test"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    let out = swaks(
        &s,
        &[
            "--pipeline",
            "--from",
            "s@other.test",
            "--to",
            "bob@local.test,carol@local.test",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code(&out), 0, "{text}");
    assert_eq!(messages(&s.maildir("bob")).len(), 2);
    assert_eq!(messages(&s.maildir("carol")).len(), 1);
    // Relaying without AUTH is refused (swaks exits 24 on a refused RCPT).
    let out = swaks(&s, &["--from", "s@other.test", "--to", "x@remote.test"]);
    assert_ne!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("550 5.7.1"));
    // TLS, verified against our CA, then AUTH PLAIN and LOGIN: remote mail is queued.
    let tls = tls_args(&s);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    // alice sends to a remote address with AUTH `mech` and `password`, over `tls` or not.
    let auth = |tls: &[&str], mech: &str, password: &str| {
        let mut a: Vec<&str> = tls.to_vec();
        a.extend([
            "--auth",
            mech,
            "--auth-user",
            "alice",
            "--auth-password",
            password,
        ]);
        a.extend(["--from", "alice@local.test", "--to", "friend@remote.test"]);
        swaks(&s, &a)
    };
    for mech in ["PLAIN", "LOGIN"] {
        let out = auth(&tls, mech, "secret");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(code(&out), 0, "{mech}: {text}");
    }
    assert_eq!(messages(&s.dir.path().join("queue")).len(), 2);
    // A wrong password, and AUTH without TLS (not even offered).
    assert_ne!(code(&auth(&tls, "PLAIN", "nope")), 0);
    let out = auth(&[], "PLAIN", "secret");
    assert_ne!(code(&out), 0);
    assert_eq!(messages(&s.dir.path().join("queue")).len(), 2);
}

#[test]
fn openssl_s_client_starttls() {
    if !have(&["openssl"]) {
        return;
    }
    let s = Server::start(&[]);
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-starttls",
        "smtp",
        "-quiet",
        "-crlf",
        "-verify_return_error",
    ])
    .args(["-connect", &format!("127.0.0.1:{}", s.port)])
    .arg("-CAfile")
    .arg(&s.ca)
    .args(["-verify_ip", "127.0.0.1"]);
    let script = "EHLO c.test\nmail from:<s@other.test>\nrcpt to:<bob@local.test>\ndata\n\
                  Subject: via openssl\n\nhello\n.\nquit\n";
    let out = run(&mut c, script.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("250 2.0.0 ok, delivered"),
        "{text}{}",
        stderr(&out)
    );
    let m = std::fs::read_to_string(&messages(&s.maildir("bob"))[0]).unwrap();
    assert!(
        m.contains("with ESMTPS") && m.contains("Subject: via openssl"),
        "{m}"
    );
}

#[test]
fn msmtp_as_mx_client_and_submission_client() {
    if !have(&["msmtp"]) {
        return;
    }
    let s = Server::start(&[]);
    let conf = s.dir.path().join("msmtprc");
    std::fs::write(
        &conf,
        format!(
            "defaults\nhost 127.0.0.1\nport {}\ntls_trust_file {}\n\
             account mx\ntls off\nfrom s@other.test\n\
             account sub\ntls on\ntls_starttls on\nauth plain\nuser alice\npassword secret\n\
             from alice@local.test\n",
            s.port,
            s.ca.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let msg = b"From: s@other.test\nTo: bob@local.test\nSubject: via msmtp\n\nhi\n.\n..\nend\n";
    let out = run(
        Command::new("msmtp")
            .arg("-C")
            .arg(&conf)
            .args(["-a", "mx", "bob@local.test"]),
        msg,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let m = std::fs::read_to_string(&messages(&s.maildir("bob"))[0]).unwrap();
    assert!(m.ends_with("Subject: via msmtp\n\nhi\n.\n..\nend\n"), "{m}");
    // Submitted, the message is alice's own (mreceive refuses another author after AUTH).
    let mine = b"From: alice@local.test\nTo: far@remote.test\nSubject: via msmtp\n\nhi\n";
    let out = run(
        Command::new("msmtp")
            .arg("-C")
            .arg(&conf)
            .args(["-a", "sub", "far@remote.test"]),
        mine,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&s.dir.path().join("queue")).len(), 1);
}

/// Our own client: msubmit over STARTTLS with AUTH into the queue, and the end-to-end chain
/// msubmit -> mreceive -> mdeliver -> Maildir.
#[test]
fn msubmit_to_mreceive_to_mdeliver() {
    let md = bin!("mdeliver");
    // Queued for msubmit --flush: the account route (mrelay's mx is the default).
    let s = Server::start(&["-c", md.to_str().unwrap(), "--route", "account"]);
    let home = s.dir.path();
    let msubmit = |args: &[&str], msg: &[u8]| {
        let mut c = common::tool(bin!("msubmit"), home);
        c.args(["--host", "127.0.0.1", "--port", &s.port.to_string()])
            .args(args);
        run(&mut c, msg)
    };
    let msg = b"From: s@other.test\nTo: bob@local.test\nSubject: end to end\n\n.dot line\nbye\n";
    let out = msubmit(
        &["--tls", "none", "-f", "s@other.test", "bob@local.test"],
        msg,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let m = std::fs::read_to_string(&messages(&s.maildir("bob"))[0]).unwrap();
    assert!(
        m.starts_with("Return-Path: <s@other.test>\nDelivered-To: bob@local.test\nReceived: "),
        "{m}"
    );
    assert!(
        m.contains("Subject: end to end\n") && m.ends_with("\n.dot line\nbye\n"),
        "{m}"
    );
    let ca = s.ca.display().to_string();
    let out = msubmit(
        &[
            "--tls",
            "starttls",
            "--ca-file",
            &ca,
            "--tls-server-name",
            "localhost",
            "--user",
            "alice",
            "--password-command",
            "echo secret",
            "-f",
            "alice@local.test",
            "far@remote.test",
        ],
        // Submitted, the message is alice's own (mreceive refuses another author after AUTH).
        b"From: alice@local.test\nTo: far@remote.test\nSubject: end to end\n\n.dot line\nbye\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&home.join("queue")).len(), 1);
    // The queue is msubmit's: its --flush relays the message to the recipient's MX (another
    // mreceive, for remote.test), which delivers it.
    let mx = Server::start(&["-d", "remote.test"]);
    let q = home.join("queue");
    let mut c = common::tool(bin!("msubmit"), home);
    c.args([
        "--host",
        "127.0.0.1",
        "--port",
        &mx.port.to_string(),
        "--tls",
        "none",
    ])
    .args(["--flush", "--queue-dir", q.to_str().unwrap()]);
    let out = run(&mut c, b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(messages(&q).is_empty());
    let m = std::fs::read_to_string(&messages(&mx.maildir("far"))[0]).unwrap();
    assert_eq!(m.matches("Received: from ").count(), 2, "{m}");
    assert!(
        m.contains("with ESMTPSA") && m.ends_with("\n.dot line\nbye\n"),
        "{m}"
    );
}

/// Postfix's SMTP client relaying to mreceive: a private Postfix (tests/peers) with an smtp
/// transport and relayhost pointing at mreceive, STARTTLS required and verified against our
/// CA; mail injected with Postfix's sendmail arrives in mreceive's Maildir.
#[test]
fn postfix_relays_to_mreceive_over_starttls() {
    if !common::is_root() || !have(&["postfix", "postconf", "/usr/sbin/sendmail"]) {
        eprintln!("SKIPPED: needs root and postfix");
        return;
    }
    let s = Server::start(&[]);
    let peers = common::Peers::new();
    let dir = peers.dir().to_str().unwrap().to_string();
    let listen = format!("127.0.0.1:{}", common::free_port());
    peers.script(
        "start-postfix.sh",
        &[&dir, "relay", &listen, "other.test"],
        &[],
    );
    let etc = peers.dir().join("postfix-relay/etc");
    let ca = peers.dir().join("relay-ca.pem");
    std::fs::copy(&s.ca, &ca).unwrap();
    let postconf = |setting: &str| {
        let st = Command::new("postconf")
            .arg("-c")
            .arg(&etc)
            .args(["-e", setting])
            .status()
            .unwrap();
        assert!(st.success(), "postconf {setting}");
    };
    postconf("default_transport = smtp");
    postconf(&format!("relayhost = [127.0.0.1]:{}", s.port));
    postconf("smtp_tls_security_level = verify");
    postconf("smtp_tls_verify_cert_match = nexthop, localhost, 127.0.0.1");
    postconf(&format!("smtp_tls_CAfile = {}", ca.display()));
    let master = etc.join("master.cf");
    let mut m = std::fs::read_to_string(&master).unwrap();
    m += "smtp      unix  - - n -    - smtp\n";
    std::fs::write(&master, m).unwrap();
    let st = Command::new("postfix")
        .arg("-c")
        .arg(&etc)
        .arg("reload")
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut c = Command::new("/usr/sbin/sendmail");
    c.arg("-C")
        .arg(&etc)
        .args(["-f", "s@other.test", "bob@local.test"]);
    let out = run(
        &mut c,
        b"From: s@other.test\nTo: bob@local.test\nSubject: via postfix\n\nrelayed\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let arrived = common::wait_until(std::time::Duration::from_secs(30), || {
        messages(&s.maildir("bob")).len() == 1
    });
    let log =
        std::fs::read_to_string(peers.dir().join("postfix-relay/postfix.log")).unwrap_or_default();
    assert!(arrived, "nothing arrived; postfix log:\n{log}");
    let m = std::fs::read_to_string(&messages(&s.maildir("bob"))[0]).unwrap();
    assert!(
        m.contains("with ESMTPS") && m.contains("Subject: via postfix"),
        "{m}"
    );
    // Postfix logs the delivery after our 250 reached it: the message can be in the Maildir
    // a moment before the line is in the log.
    let log_path = peers.dir().join("postfix-relay/postfix.log");
    let sent = common::wait_until(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path)
            .is_ok_and(|l| l.contains("status=sent (250 2.0.0 ok, delivered)"))
    });
    assert!(
        sent,
        "{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// The man page's Dovecot example: without --maildir-base, dovecot-lda given `-d ${user}`
/// finds each recipient's mailbox itself (userdb), so mreceive accepts the command.
#[test]
fn dovecot_lda_per_user_through_the_user_placeholder() {
    let lda = "/usr/lib/dovecot/dovecot-lda";
    if !have(&["dovecot", lda]) {
        return;
    }
    if !common::is_root() {
        assert!(!common::in_ci(), "the interop test needs root in CI");
        eprintln!("SKIPPED: the peers need root");
        return;
    }
    let peers = common::Peers::new();
    let s = peers.dir();
    let port = |_| common::free_port().to_string();
    let [imap, imaps, pop3, pop3s] = [0; 4].map(port);
    peers.script(
        "start-dovecot.sh",
        &[s.to_str().unwrap(), "127.0.0.1"],
        &[
            ("IMAP_PORT", &imap),
            ("IMAPS_PORT", &imaps),
            ("POP3_PORT", &pop3),
            ("POP3S_PORT", &pop3s),
        ],
    );
    let conf = peers.env_value("dovecot", "DOVECOT_CONF").unwrap();
    let cmd = format!("{lda} -c {conf} -d ${{user}}");
    let out = run(
        common::tool(bin!("mreceive"), s).args(["-d", "example.org", "-c", &cmd]),
        b"EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.org>\r\n\
          RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: via lda\r\n\r\nhi\r\n.\r\nQUIT\r\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\r\n250 2.0.0"), "{text}{}", stderr(&out));
    for u in ["alice", "bob"] {
        let md = s.join("mail").join(u).join("Maildir");
        assert_eq!(messages(&md).len(), 1, "{u}: {text}");
    }
    assert!(!s.join("Maildir").exists());
}
