//! mdeliver between the real incumbents: Postfix (fed by swaks) delivers through mdeliver as a
//! pipe(8) transport, Dovecot serves the result over IMAP, and mblaze reads the Maildir; and
//! Postfix reads our exit codes as sysexits promises (65 bounces, 75 defers). This is the job
//! mdeliver exists for; if any of them disagrees with us, this fails.

use crate::common;
use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The message as the client sends it: 8-bit text, a line that SMTP must dot-stuff, a long
/// line, and shell syntax in a header that a careless MDA would execute.
const BODY: &str = "Grüße aus der Schweiz.\r\n.a line that starts with a dot\r\n..two dots\r\n\
                    $(touch /tmp/mailpipe-interop-pwned); `id`\r\n";

fn message(subject: &str) -> String {
    format!(
        "From: Sender <s@other.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@other.test>\r\nX-Shell: $(touch /tmp/mailpipe-interop-pwned)\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{BODY}{}\r\n",
        "x".repeat(900)
    )
}

/// The body of a message (after the first empty line), with LF line ends and without the
/// trailing empty lines: swaks ends DATA with CRLF.CRLF even after data that ends in CRLF, so
/// the stored message gains one empty line at its end.
fn body_of(msg: &[u8]) -> String {
    let lf = String::from_utf8_lossy(msg).replace("\r\n", "\n");
    let (_, body) = lf.split_once("\n\n").expect("no header/body separator");
    body.trim_end_matches('\n').to_string()
}

fn swaks(server: &str, msg: &str) {
    let mut c = Command::new("swaks");
    c.args(["--server", server, "--helo", "client.test"])
        .args(["--from", "s@other.test", "--to", "alice@example.test"])
        .args(["--data", "-", "--silent", "2"]);
    let out = run(&mut c, msg.as_bytes());
    assert_eq!(code(&out), 0, "swaks: {}", stderr(&out));
}

#[test]
fn postfix_delivers_through_mdeliver_and_dovecot_serves_it_intact() {
    if !have(&["postfix", "dovecot", "swaks", "curl", "mlist", "mshow"]) {
        return;
    }
    if !is_root() {
        assert!(!in_ci(), "the interop test needs root in CI");
        eprintln!("SKIPPED: the peers need root");
        return;
    }
    let _ = fs::remove_file("/tmp/mailpipe-interop-pwned");
    let peers = Peers::new();
    let s = peers.dir();
    // Our binary where vmail can run it (the build tree may be private to root).
    let bin = s.join("mdeliver");
    fs::copy(bin!("mdeliver"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let rules = s.join("rules");
    fs::write(
        &rules,
        "header Subject contains [list] folder Lists\n\
         header Subject contains defer-me pipe /bin/false\n",
    )
    .unwrap();
    fs::set_permissions(&rules, fs::Permissions::from_mode(0o644)).unwrap();

    let imap = free_port().to_string();
    let (imaps, pop3, pop3s) = (free_port(), free_port(), free_port());
    peers.script(
        "start-dovecot.sh",
        &[s.to_str().unwrap(), "127.0.0.1"],
        &[
            ("IMAP_PORT", &imap),
            ("IMAPS_PORT", &imaps.to_string()),
            ("POP3_PORT", &pop3.to_string()),
            ("POP3S_PORT", &pop3s.to_string()),
        ],
    );
    let listen = format!("127.0.0.61:{}", free_port());
    let mail_base = s.join("mail");
    let args = format!("--dedupe --rules {}", rules.display());
    peers.script(
        "start-postfix.sh",
        &[s.to_str().unwrap(), "mdx", &listen, "example.test"],
        &[
            ("MAIL_BASE", mail_base.to_str().unwrap()),
            ("MDELIVER", bin.to_str().unwrap()),
            ("MDELIVER_ARGS", &args),
        ],
    );

    swaks(&listen, &message("interop"));
    swaks(&listen, &message("[list] interop"));
    // A second copy (same Message-ID) is dropped by --dedupe.
    swaks(&listen, &message("interop"));
    // sysexits as Postfix reads them: 65 (a loop) bounces, 75 (a failing pipe) defers.
    swaks(
        &listen,
        "Delivered-To: alice@example.test\r\nSubject: loop\r\n\r\nround and round\r\n",
    );
    swaks(&listen, "Subject: defer-me\r\n\r\nlater\r\n");
    let md = mail_base.join("alice/Maildir");
    let arrived = wait_until(Duration::from_secs(30), || {
        messages(&md).len() == 1 && messages(&md.join(".Lists")).len() == 1
    });
    let log_path = s.join("postfix-mdx/postfix.log");
    let log = || fs::read_to_string(&log_path).unwrap_or_default();
    assert!(arrived, "not delivered; postfix log:\n{}", log());
    let settled = wait_until(Duration::from_secs(30), || {
        let l = log();
        l.matches("relay=mdeliver").count() >= 5 && l.contains("status=deferred")
    });
    let log = log();
    assert!(settled, "not all five went via mdeliver:\n{log}");
    let sent = log
        .lines()
        .filter(|l| l.contains("relay=mdeliver") && l.contains("status=sent"))
        .count();
    assert_eq!(sent, 3, "{log}");
    assert!(
        log.lines().any(|l| l.contains("status=bounced")
            && l.contains(
                "mdeliver: mail loop: message was already delivered to alice@example.test"
            )),
        "the loop did not bounce:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("status=deferred")
            && l.contains("mdeliver: pipe to /bin/false: exited with status 1")),
        "the failing pipe did not defer:\n{log}"
    );
    assert_eq!(messages(&md).len(), 1, "the duplicate was stored");

    // On disk: our trace headers on top, LF line ends, owned by vmail, body intact.
    let file = &messages(&md)[0];
    let stored = fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(
        text.starts_with("Return-Path: <s@other.test>\nDelivered-To: alice@example.test\n"),
        "{text}"
    );
    assert!(!stored.contains(&b'\r'));
    assert_eq!(
        body_of(&stored),
        body_of(message("interop").as_bytes()),
        "body changed on the way"
    );
    let vmail_uid = fs::metadata(&md).unwrap().uid();
    assert_eq!(fs::metadata(file).unwrap().uid(), vmail_uid);
    assert!(md.join(".Lists/maildirfolder").is_file());
    assert!(!Path::new("/tmp/mailpipe-interop-pwned").exists());

    // Dovecot serves both, byte for byte what is on disk (IMAP sends CRLF).
    let fetch = |url: &str| {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "20", "-u", "alice:secret"])
            .arg(format!("imap://127.0.0.1:{imap}/{url}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {url}: {}", stderr(&out));
        out.stdout
    };
    let served = fetch("INBOX;UID=1");
    assert_eq!(
        String::from_utf8_lossy(&served)
            .replace("\r\n", "\n")
            .as_bytes(),
        &stored[..],
        "Dovecot served something else"
    );
    let listed = fetch("Lists;UID=1");
    assert_eq!(
        String::from_utf8_lossy(&listed)
            .replace("\r\n", "\n")
            .as_bytes(),
        fs::read(&messages(&md.join(".Lists"))[0]).unwrap()
    );

    // mblaze reads the same Maildir (Dovecot has moved the message to cur/ by now): one
    // message, and its decoded body is ours.
    let out = Command::new("mlist").arg(&md).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listed.lines().count(), 1, "mlist: {listed}");
    let out = Command::new("mshow")
        .arg("-N")
        .arg(listed.trim_end())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Grüße aus der Schweiz.\n.a line that starts with a dot\n..two dots\n"),
        "mshow: {shown} {}",
        stderr(&out)
    );
}

#[test]
fn under_postfix_pipe_flags_dr_the_stamp_is_not_written_twice() {
    // pipe(8) flags=DR: Postfix prepends Return-Path: and Delivered-To: for this delivery
    // (and checks Delivered-To: loops itself); mdeliver stores them once, not its own again.
    if !have(&["postfix", "swaks"]) {
        return;
    }
    if !is_root() {
        assert!(!in_ci(), "the interop test needs root in CI");
        eprintln!("SKIPPED: the peers need root");
        return;
    }
    let peers = Peers::new();
    let s = peers.dir();
    let bin = s.join("mdeliver");
    fs::copy(bin!("mdeliver"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let listen = format!("127.0.0.63:{}", free_port());
    let mail_base = s.join("mail");
    peers.script(
        "start-postfix.sh",
        &[s.to_str().unwrap(), "mdr", &listen, "example.test"],
        &[
            ("MAIL_BASE", mail_base.to_str().unwrap()),
            ("MDELIVER", bin.to_str().unwrap()),
            ("MDELIVER_ARGS", "--no-rules"),
            ("MDELIVER_FLAGS", "DR"),
        ],
    );
    swaks(&listen, &message("stamped"));
    let md = mail_base.join("alice/Maildir");
    let log = || fs::read_to_string(s.join("postfix-mdr/postfix.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || messages(&md).len() == 1),
        "not delivered; postfix log:\n{}",
        log()
    );
    let stored = fs::read(&messages(&md)[0]).unwrap();
    let text = String::from_utf8_lossy(&stored);
    let head = text.split_once("\n\n").map_or(&*text, |(h, _)| h);
    assert_eq!(head.matches("Delivered-To:").count(), 1, "{text}");
    assert_eq!(head.matches("Return-Path:").count(), 1, "{text}");
    assert!(
        text.starts_with("Return-Path: <s@other.test>\nDelivered-To: alice@example.test\n"),
        "{text}"
    );
    assert_eq!(body_of(&stored), body_of(message("stamped").as_bytes()));
}
