//! REQUIRETLS (RFC 8689) end to end: mreceive offers it only after STARTTLS and queues the
//! flag; mrelay sends such a message only over verified TLS to a host that offers it
//! (another mreceive), never in clear text, and returns it (5.7.30) from a verified host that
//! does not (Postfix, which has no REQUIRETLS).

use crate::common;
use crate::common::mreceive::{Server, tls_client};
use crate::common::relay::Relay;
use crate::common::smtp::{Fake, Script};
use common::*;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Relay a REQUIRETLS message for bob@remote.test through `front` (authenticated, over
/// STARTTLS), so it waits in `front`'s queue with the flag.
fn submit_requiretls(front: &Server) {
    let mut c = front.connect();
    assert!(c.reply().starts_with("220"));
    let ehlo = c.cmd("EHLO client.test\r\n");
    assert!(
        !ehlo.contains("REQUIRETLS"),
        "offered in clear text: {ehlo}"
    );
    let plain = c.cmd("MAIL FROM:<alice@local.test> REQUIRETLS\r\n");
    assert!(plain.starts_with("530 5.7.10"), "{plain}");
    assert!(c.cmd("STARTTLS\r\n").starts_with("220"));
    let tcp: TcpStream = c.into_inner();
    let mut c = tls_client(&front.ca, tcp);
    let ehlo = c.cmd("EHLO client.test\r\n");
    assert!(ehlo.contains("REQUIRETLS"), "{ehlo}");
    // alice:secret, AUTH PLAIN.
    assert!(
        c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
            .starts_with("235")
    );
    assert!(
        c.cmd("MAIL FROM:<alice@local.test> REQUIRETLS\r\n")
            .starts_with("250")
    );
    assert!(c.cmd("RCPT TO:<bob@remote.test>\r\n").starts_with("250"));
    assert!(c.cmd("DATA\r\n").starts_with("354"));
    let end = c.cmd("From: alice@local.test\r\nSubject: secret\r\n\r\nfor TLS only\r\n.\r\n");
    assert!(end.starts_with("250"), "{end}");
    c.cmd("QUIT\r\n");
    let q = front.dir.path().join("queue");
    let queued: String = ["new", "cur", "tmp", ""]
        .iter()
        .flat_map(|d| files(&q.join(d)))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    assert!(
        queued.lines().any(|l| l == "requiretls 1"),
        "flag not queued"
    );
}

/// A relay over `front`'s queue with `config`.
fn relay_over(front: &Server, config: &str) -> Relay {
    let r = Relay::new(config);
    std::fs::remove_dir_all(r.queue()).ok();
    std::os::unix::fs::symlink(front.dir.path().join("queue"), r.queue()).unwrap();
    r
}

#[test]
fn requiretls_goes_only_over_verified_tls_to_a_host_that_offers_it() {
    let front = Server::start(&[]);
    submit_requiretls(&front);

    // First a next hop in clear text: nothing may go; the message waits.
    let fake = Fake::start(Script::default());
    let r = relay_over(
        &front,
        &format!("route remote.test [127.0.0.1]:{}\n", fake.port()),
    );
    let log = r.ok(&["-q"], b"");
    assert!(fake.messages().is_empty(), "sent without TLS: {log}");
    assert!(log.contains("status=deferred"), "{log}");

    // Then mreceive, its certificate verified, REQUIRETLS offered: it goes, and says so.
    let next = Server::start(&["-d", "remote.test"]);
    let r = relay_over(
        &front,
        &format!(
            "route remote.test [127.0.0.1]:{}\nrelay_tls_trust_file {}\n",
            next.port,
            next.ca.display()
        ),
    );
    let log = r.ok(&["--flush", "", "-v"], b"");
    let mail = log
        .lines()
        .find(|l| l.contains("--> MAIL FROM:"))
        .unwrap_or("");
    assert!(mail.ends_with(" REQUIRETLS"), "{log}");
    assert!(log.contains("status=sent"), "{log}");
    assert!(
        wait_until(Duration::from_secs(5), || messages(&next.maildir("bob"))
            .len()
            == 1),
        "not delivered: {log}"
    );
}

#[test]
fn requiretls_is_returned_by_a_verified_host_without_it() {
    if !have(&["postfix"]) {
        return;
    }
    if !is_root() {
        assert!(!in_ci(), "the peers need root in CI");
        eprintln!("SKIPPED: the peer scripts need root");
        return;
    }
    let front = Server::start(&[]);
    submit_requiretls(&front);
    let peers = Peers::new();
    let dir = peers.dir().to_str().unwrap().to_string();
    peers.script(
        "start-postfix.sh",
        &[&dir, "rtls", "127.0.14.3:2525", "remote.test"],
        &[("TLS_EXTRA_SANS", "IP:127.0.14.3")],
    );
    let ca = Path::new(&dir).join("tls/ca.pem");
    let r = relay_over(
        &front,
        &format!(
            "route remote.test [127.0.14.3]:2525\nrelay_tls_trust_file {}\n",
            ca.display()
        ),
    );
    let log = r.ok(&["-q"], b"");
    assert!(log.contains("dsn=5.7.30"), "{log}");
    assert!(log.contains("status=bounced"), "{log}");
    let mail = std::path::PathBuf::from(peers.env_value("postfix-rtls", "MAIL_BASE").unwrap());
    assert!(messages(&mail.join("bob/Maildir")).is_empty());
}

#[test]
fn msubmit_requiretls_needs_verified_tls_and_the_servers_offer() {
    let t = tempfile::tempdir().unwrap();
    let msg = b"From: alice@local.test\nTo: bob@remote.test\nSubject: s\n\nsecret\n";
    // Clear text: refused before MAIL, nothing sent, 69.
    let fake = Fake::start(Script::default());
    let mut c = tool(crate::bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()])
        .args(["--tls", "none", "--timeout", "5", "--requiretls", "-t"]);
    let out = run(&mut c, msg);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(stderr(&out).contains("REQUIRETLS"), "{}", stderr(&out));
    assert!(fake.messages().is_empty());
    assert!(
        !fake.log_text().contains("MAIL FROM"),
        "{}",
        fake.log_text()
    );

    // Verified STARTTLS to mreceive, which offers it: sent with REQUIRETLS, queued with it.
    let front = Server::start(&[]);
    let mut c = tool(crate::bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &front.port.to_string()])
        .arg("--ca-file")
        .arg(&front.ca)
        .args(["--user", "alice", "--password-command", "echo secret"])
        .args(["--timeout", "10", "--requiretls", "-t"]);
    let out = run(&mut c, msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let q = front.dir.path().join("queue");
    let queued: String = ["new", "cur", "tmp", ""]
        .iter()
        .flat_map(|d| files(&q.join(d)))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    assert!(queued.lines().any(|l| l == "requiretls 1"), "{queued}");
}
