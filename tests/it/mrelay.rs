//! mrelay against servers of our own on loopback: the scripted fake (replies on demand) and,
//! for MX routing, a real dnsmasq serving MX records (`--dns-server`, `--mx-port`,
//! `--allow-private-targets`). What each test shows is in its name; each fails when the
//! behaviour it names is broken.

use crate::common::smtp::{Fake, Script};
use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::relay::Relay;

const MSG: &[u8] = b"From: a@sender.test\nSubject: relay test\n\nhello\n";

/// What Python's email parser makes of a delivery report in `path`: its type, the
/// report-type, and per recipient `Final-Recipient Action Status`, one a line.
fn python_report(path: &Path) -> String {
    let script = r#"
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
print("type", m.get_content_type(), m.get_param("report-type"))
for part in m.walk():
    if part.get_content_type() == "message/delivery-status":
        blocks = part.get_payload()
        print("reporting", blocks[0].get("Reporting-MTA"))
        for b in blocks[1:]:
            print("rcpt", b.get("Final-Recipient"), b.get("Action"), b.get("Status"))
print("defects", sum(len(p.defects) for p in m.walk()))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_message_is_queued_sent_at_once_and_logged_per_recipient() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    let log = r.ok(
        &["-f", "a@sender.test", "x@example.test", "y@EXAMPLE.test"],
        MSG,
    );
    assert_eq!(fake.messages().len(), 1, "one transaction for both");
    let crlf = String::from_utf8_lossy(MSG).replace('\n', "\r\n");
    assert_eq!(String::from_utf8_lossy(&fake.messages()[0]), crlf);
    let dialogue = fake.log_text();
    assert!(dialogue.contains("MAIL FROM:<a@sender.test>"), "{dialogue}");
    assert!(dialogue.contains("RCPT TO:<x@example.test>"), "{dialogue}");
    assert!(dialogue.contains("EHLO relay.test"), "{dialogue}");
    // Every line is a log line: `mrelay[PID]: QUEUEID: delivery key=value…`.
    let lines = crate::common::mreceive::parse_log(&log, "mrelay");
    assert_eq!(lines.len(), 2, "{log}");
    for l in &lines {
        assert_eq!(l.kind, "delivery");
        assert_eq!(l.get("status"), Some("sent"));
    }
    for to in ["x@example.test", "y@EXAMPLE.test"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("to=<{to}>")))
            .unwrap_or_else(|| panic!("no log line for {to}: {log}"));
        for part in [
            "relay=127.0.0.1[127.0.0.1]:",
            "dsn=2.0.0",
            "status=sent reply=\"250 2.0.0 queued\"",
            "delay=",
            "attempts=1",
        ] {
            assert!(line.contains(part), "{part} missing: {line}");
        }
    }
    assert!(r.waiting().is_empty());
    assert!(r.list().contains("Mail queue is empty"));
}

#[test]
fn a_temporary_failure_waits_for_its_backoff_then_goes() {
    let refusing = Fake::start(Script {
        rcpt: vec![("later@", "451 4.2.1 mailbox busy\r\n")],
        ..Script::default()
    });
    let r = Relay::new(&format!(
        "route example.test [127.0.0.1]:{}\nrelay_retry 2s\n",
        refusing.port()
    ));
    let log = r.ok(
        &[
            "-f",
            "a@sender.test",
            "now@example.test",
            "later@example.test",
        ],
        MSG,
    );
    assert!(log.contains("to=<later@example.test>"), "{log}");
    assert!(
        log.contains("status=deferred reply=\"451 4.2.1 mailbox busy\""),
        "{log}"
    );
    assert_eq!(refusing.messages().len(), 1, "the other recipient went");
    let listing = r.list();
    assert!(
        listing.contains("to: <later@example.test>  pending, 1 attempts, next "),
        "{listing}"
    );
    assert!(
        listing.contains("to: <now@example.test>  delivered"),
        "{listing}"
    );
    // The server is fixed; the queue run before the backoff tries nothing.
    let fixed = Fake::start(Script::default());
    r.config(&format!(
        "route example.test [127.0.0.1]:{}\nrelay_retry 2s\n",
        fixed.port()
    ));
    r.ok(&["-q"], b"");
    assert!(fixed.log_text().is_empty(), "tried before its time");
    assert_eq!(r.waiting().len(), 1);
    std::thread::sleep(Duration::from_millis(2100));
    let log = r.ok(&["-q"], b"");
    assert!(log.contains("attempts=2"), "{log}");
    let dialogue = fixed.log_text();
    assert!(
        dialogue.contains("RCPT TO:<later@example.test>"),
        "{dialogue}"
    );
    assert!(
        !dialogue.contains("now@example.test"),
        "sent twice: {dialogue}"
    );
    assert!(r.waiting().is_empty());
}

#[test]
fn a_permanent_failure_is_bounced_to_the_sender_as_a_delivery_report() {
    let fake = Fake::start(Script {
        rcpt: vec![("nobody@", "550 5.1.1 no such user\r\n")],
        ..Script::default()
    });
    let r = Relay::new("");
    let mail = r.maildirs();
    r.config(&format!(
        "route example.test [127.0.0.1]:{}\nroute sender.test local {}\n",
        fake.port(),
        mail.display()
    ));
    let log = r.ok(
        &[
            "-f",
            "alice@sender.test",
            "-V",
            "env-42",
            "nobody@example.test",
        ],
        MSG,
    );
    assert!(
        log.contains("dsn=5.1.1 status=bounced bounce="),
        "no bounce in the log: {log}"
    );
    assert!(log.contains("reply=\"550 5.1.1 no such user\""), "{log}");
    // The original is done; its report waits in the same queue, from <> to the sender.
    let waiting = r.waiting();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let entry = std::fs::read_to_string(r.queue().join("new").join(&waiting[0])).unwrap();
    assert!(entry.contains("\nroute mx\n"), "{entry}");
    assert!(entry.contains("\nfrom \n"), "not from <>: {entry}");
    assert!(entry.contains("\nrcpt alice@sender.test\n"), "{entry}");
    // The next run delivers it by the local route.
    let log = r.ok(&["-q"], b"");
    assert!(log.contains("to=<alice@sender.test> relay=local:"), "{log}");
    assert!(r.waiting().is_empty());
    let inbox = mail.join("alice/Maildir");
    let report = &messages(&inbox)[0];
    let text = std::fs::read_to_string(report).unwrap();
    assert!(text.starts_with("Return-Path: <>\n"), "{text}");
    assert!(text.contains("Original-Envelope-Id: env-42"), "{text}");
    let parsed = python_report(report);
    for line in [
        "type multipart/report delivery-status",
        "reporting dns; relay.test",
        "rcpt rfc822; nobody@example.test failed 5.1.1",
        "defects 0",
    ] {
        assert!(
            parsed.lines().any(|l| l == line),
            "{line} missing: {parsed}"
        );
    }
}

#[test]
fn mail_from_the_null_sender_is_never_bounced_to_it() {
    let fake = Fake::start(Script {
        rcpt: vec![
            ("@example.test", "550 5.1.1 no such user\r\n"),
            ("postmaster@relay.test", "550 5.1.1 no such user\r\n"),
        ],
        ..Script::default()
    });
    let r = Relay::new("");
    let mail = r.maildirs();
    r.config(&format!(
        "route example.test [127.0.0.1]:{}\nroute relay.test local {}\n",
        fake.port(),
        mail.display()
    ));
    // A report from <> that fails: its report goes to our postmaster, once.
    r.ok(&["-f", "<>", "nobody@example.test"], MSG);
    let waiting = r.waiting();
    assert_eq!(waiting.len(), 1);
    let entry = std::fs::read_to_string(r.queue().join("new").join(&waiting[0])).unwrap();
    assert!(entry.contains("\nrcpt postmaster@relay.test\n"), "{entry}");
    r.ok(&["-q"], b"");
    assert_eq!(messages(&mail.join("postmaster/Maildir")).len(), 1);
    // A message from <> to our postmaster that fails (as that report would, were the
    // postmaster's mail broken): nobody is told, nothing loops.
    r.config(&format!("route relay.test [127.0.0.1]:{}\n", fake.port()));
    let log = r.ok(&["-f", "", "postmaster@relay.test"], MSG);
    assert!(log.contains("status=failed reply=\"550 5.1.1"), "{log}");
    assert!(r.waiting().is_empty(), "a report about a report was queued");
    assert!(files(&r.queue().join("failed")).is_empty());
    r.ok(&["-q"], b"");
    assert_eq!(messages(&mail.join("postmaster/Maildir")).len(), 1);
}

#[test]
fn held_entries_wait_until_released_and_deleted_ones_are_gone() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "x@example.test"],
        MSG,
    );
    assert!(fake.log_text().is_empty(), "--queue-only sent it");
    let id = r.waiting().pop().expect("queued");
    r.ok(&["--hold", &id], b"");
    assert!(r.list().contains(&format!("{id}  ")) && r.list().contains("HELD"));
    r.ok(&["-q"], b"");
    r.ok(&["--flush"], b"");
    assert!(fake.log_text().is_empty(), "a held entry was tried");
    let out = r.run(&["--flush", &id], b"");
    assert_eq!(code(&out), 66, "{}", stderr(&out));
    r.ok(&["--release", &id], b"");
    assert!(!r.list().contains("HELD"));
    r.ok(&["--flush", &id], b"");
    assert_eq!(fake.messages().len(), 1);
    assert!(r.waiting().is_empty());
    // Deleted: never sent.
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "y@example.test"],
        MSG,
    );
    let id = r.waiting().pop().expect("queued");
    r.ok(&["--delete", &id], b"");
    assert!(r.waiting().is_empty());
    r.ok(&["--flush"], b"");
    assert_eq!(fake.messages().len(), 1);
    let out = r.run(&["--delete", &id], b"");
    assert_eq!(code(&out), 66, "{}", stderr(&out));
}

#[test]
fn the_json_listing_has_every_recipients_state() {
    let fake = Fake::start(Script {
        rcpt: vec![("later@", "451 4.2.1 mailbox busy\r\n")],
        ..Script::default()
    });
    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    r.ok(
        &[
            "-f",
            "\"a\\\"q\"@sender.test",
            "now@example.test",
            "later@example.test",
        ],
        MSG,
    );
    let out = r.run(&["--list", "--json"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let script = r#"
import json, sys
q = json.load(sys.stdin)
assert len(q) == 1, q
e = q[0]
print(e["queue"], e["route"], e["sender"], e["size"], type(e["arrived"]).__name__)
for r in e["recipients"]:
    print(r["address"], r["status"], r["attempts"], r["next_try"] is None, r["last_reply"])
"#;
    let mut py = Command::new("python3");
    py.args(["-c", script]);
    let parsed = run(&mut py, &out.stdout);
    assert!(parsed.status.success(), "{}", stderr(&parsed));
    let text = String::from_utf8_lossy(&parsed.stdout);
    let size = MSG.len();
    assert_eq!(
        text,
        format!(
            "waiting mx \"a\\\"q\"@sender.test {size} int\n\
             now@example.test delivered 1 True 250 2.0.0 queued\n\
             later@example.test pending 1 False 451 4.2.1 mailbox busy (from 127.0.0.1)\n"
        )
    );
}

#[test]
fn two_messages_to_one_destination_share_a_connection() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "x@example.test"],
        MSG,
    );
    r.ok(
        &["--queue-only", "-f", "b@sender.test", "y@example.test"],
        MSG,
    );
    r.ok(&["-q"], b"");
    let dialogue = fake.log_text();
    assert_eq!(fake.messages().len(), 2);
    assert_eq!(dialogue.matches("EHLO").count(), 1, "{dialogue}");
    assert_eq!(dialogue.matches("MAIL FROM").count(), 2, "{dialogue}");
    assert_eq!(dialogue.matches("QUIT").count(), 1, "{dialogue}");
}

#[test]
fn a_message_too_long_in_the_queue_fails_and_is_bounced() {
    let fake = Fake::start(Script {
        rcpt: vec![("@example.test", "451 4.2.1 mailbox busy\r\n")],
        ..Script::default()
    });
    let r = Relay::new("");
    let mail = r.maildirs();
    r.config(&format!(
        "route example.test [127.0.0.1]:{}\nroute sender.test local {}\nrelay_expire 1s\n",
        fake.port(),
        mail.display()
    ));
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "x@example.test"],
        MSG,
    );
    std::thread::sleep(Duration::from_millis(1100));
    let log = r.ok(&["-q"], b"");
    assert!(log.contains("dsn=4.4.7 status=bounced bounce="), "{log}");
    assert!(
        log.contains("delivery time expired after 1 second: 451 4.2.1"),
        "{log}"
    );
    r.ok(&["-q"], b"");
    let report = &messages(&mail.join("a/Maildir"))[0];
    let parsed = python_report(report);
    assert!(
        parsed.contains("rcpt rfc822; x@example.test failed 4.4.7"),
        "{parsed}"
    );
}

#[test]
fn a_recipient_waiting_past_the_delay_warning_is_reported_delayed_once() {
    let fake = Fake::start(Script {
        rcpt: vec![("@example.test", "451 4.2.1 mailbox busy\r\n")],
        ..Script::default()
    });
    let r = Relay::new("");
    let mail = r.maildirs();
    r.config(&format!(
        "route example.test [127.0.0.1]:{}\nroute sender.test local {}\nrelay_delay_warning 1s\n",
        fake.port(),
        mail.display()
    ));
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "x@example.test"],
        MSG,
    );
    r.ok(
        &[
            "--queue-only",
            "-f",
            "b@sender.test",
            "-N",
            "never",
            "y@example.test",
        ],
        MSG,
    );
    // Before the warning time: deferred, no report.
    r.ok(&["--flush"], b"");
    assert_eq!(r.waiting().len(), 2);
    std::thread::sleep(Duration::from_millis(1100));
    // Past it: one report queued (not for NOTIFY=NEVER); then delivered, and no second.
    r.ok(&["--flush"], b"");
    assert_eq!(r.waiting().len(), 3);
    r.ok(&["--flush"], b"");
    r.ok(&["--flush"], b"");
    assert_eq!(r.waiting().len(), 2, "the originals still wait");
    let reports = messages(&mail.join("a/Maildir"));
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(messages(&mail.join("b/Maildir")).is_empty());
    let parsed = python_report(&reports[0]);
    for line in [
        "type multipart/report delivery-status",
        "rcpt rfc822; x@example.test delayed 4.2.1",
        "defects 0",
    ] {
        assert!(
            parsed.lines().any(|l| l == line),
            "{line} missing: {parsed}"
        );
    }
    let text = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(text.contains("\nWill-Retry-Until: "), "{text}");
    assert!(text.starts_with("Return-Path: <>\n"), "{text}");
}

/// What Python's email parser decodes from each leaf of the message in `path`: per part,
/// `TYPE CTE: TEXT` (the payload decoded, as UTF-8 text or as hex for other types), and its
/// defects.
fn python_leaves(path: &Path) -> String {
    let script = r#"
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
for p in m.walk():
    if p.is_multipart():
        continue
    data = p.get_payload(decode=True)
    text = data.decode('utf-8') if p.get_content_maintype() == 'text' else data.hex()
    print(p.get_content_type(), p.get('Content-Transfer-Encoding'), repr(text))
print("defects", sum(len(p.defects) for p in m.walk()))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn eight_bit_mail_to_a_server_without_8bitmime_is_converted_to_seven_bits() {
    let fake = Fake::start(Script {
        ehlo: "250-fake.test\r\n250 PIPELINING\r\n",
        ..Script::default()
    });
    let r = Relay::new(&format!(
        "route example.test [127.0.0.1]:{}\nrelay_tls * none\n",
        fake.port()
    ));
    let bare = "From: a@sender.test\nSubject: bare\n\nna\u{ef}ve caf\u{e9} =\n".as_bytes();
    let mut multi = b"From: a@sender.test\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\n\
Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
gr\xc3\xbc\xc3\x9fe\n--zz\nContent-Type: application/octet-stream\n\
Content-Transfer-Encoding: binary\n\n"
        .to_vec();
    multi.extend(b"\x80\x81\xfe\xff\n--zz--\n");
    for msg in [bare, &multi[..]] {
        let log = r.ok(&["-f", "a@sender.test", "x@example.test"], msg);
        assert!(log.contains("status=sent"), "{log}");
    }
    let got = fake.messages();
    assert_eq!(got.len(), 2);
    assert!(!fake.log_text().contains("BODY=8BITMIME"));
    let dir = tempfile::tempdir().unwrap();
    let mut leaves = Vec::new();
    for (i, m) in got.iter().enumerate() {
        assert!(m.iter().all(|b| *b < 128), "{}", String::from_utf8_lossy(m));
        let path = dir.path().join(i.to_string());
        std::fs::write(&path, m).unwrap();
        leaves.push(python_leaves(&path));
    }
    assert_eq!(
        leaves[0],
        "text/plain quoted-printable 'na\u{ef}ve caf\u{e9} =\\n'\ndefects 0\n"
    );
    assert_eq!(
        leaves[1],
        "text/plain quoted-printable 'gr\u{fc}\u{df}e'\n\
         application/octet-stream base64 '8081feff'\ndefects 0\n"
    );
}

#[test]
fn what_cannot_be_made_seven_bit_is_returned_with_the_reason() {
    let fake = Fake::start(Script {
        ehlo: "250-fake.test\r\n250 PIPELINING\r\n",
        ..Script::default()
    });
    let r = Relay::new("");
    let mail = r.maildirs();
    r.config(&format!(
        "route example.test [127.0.0.1]:{}\nroute sender.test local {}\n",
        fake.port(),
        mail.display()
    ));
    // 8-bit in a header needs SMTPUTF8 (RFC 6531).
    let log = r.ok(
        &["-f", "a@sender.test", "x@example.test"],
        "Subject: caf\u{e9}\n\nna\u{ef}ve\n".as_bytes(),
    );
    assert!(log.contains("dsn=5.6.7"), "{log}");
    assert!(log.contains("does not support 8BITMIME"), "{log}");
    // A message/rfc822 part may not be re-encoded (RFC 2046 5.2.1).
    let inner = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\
                 Content-Type: message/rfc822\n\nSubject: in\n\n\u{e9}t\u{e9}\n--b--\n";
    let log = r.ok(&["-f", "a@sender.test", "x@example.test"], inner.as_bytes());
    assert!(log.contains("dsn=5.6.3"), "{log}");
    assert!(log.contains("message/rfc822"), "{log}");
    let log = r.ok(&["-f", "a@sender.test", "j\u{f6}rg@example.test"], MSG);
    assert!(log.contains("dsn=5.6.7"), "{log}");
    assert!(log.contains("does not support SMTPUTF8"), "{log}");
    assert!(fake.messages().is_empty());
    r.ok(&["-q"], b"");
    assert_eq!(messages(&mail.join("a/Maildir")).len(), 3);
}

#[test]
fn msubmits_queue_is_run_through_its_account() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!(
        "account isp\nhost 127.0.0.1\nport {}\ntls off\n",
        fake.port()
    ));
    let mut c = tool(bin!("msubmit"), r.t.path());
    c.arg("-C")
        .arg(r.t.path().join("config"))
        .arg("--queue-dir")
        .arg(r.queue())
        .args([
            "--queue",
            "-a",
            "isp",
            "-f",
            "a@sender.test",
            "x@example.test",
        ]);
    let out = run(&mut c, MSG);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(r.waiting().len(), 1);
    let log = r.ok(&["-q"], b"");
    assert!(log.contains("relay=account:isp"), "{log}");
    assert!(log.contains("status=sent"), "{log}");
    assert_eq!(fake.messages().len(), 1);
    assert!(r.waiting().is_empty());
}

/// A route to an account whose mail must go through a SOCKS5 proxy waits (deferred, the
/// reason said) rather than going direct, which this route cannot do yet; msubmit's own
/// queue of that account goes through the proxy (tests/it/msubmit_route.rs).
#[test]
fn a_route_to_an_account_behind_a_proxy_waits_rather_than_going_direct() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!(
        "route example.test account isp
         account isp
host 127.0.0.1
port {}
tls off
proxy_host 127.0.0.1
proxy_port {}
",
        fake.port(),
        free_port()
    ));
    let log = r.ok(&["-f", "a@sender.test", "x@example.test"], MSG);
    assert!(log.contains("status=deferred"), "{log}");
    assert!(
        log.contains("proxy_host 127.0.0.1 is not supported"),
        "{log}"
    );
    assert!(fake.peers.lock().unwrap().is_empty(), "nothing went direct");
    assert_eq!(r.waiting().len(), 1);
}

#[test]
fn a_full_disk_while_queueing_is_exit_75_with_nothing_half_written() {
    let r = Relay::new("route example.test [127.0.0.1]:9\n");
    let Some(_tmpfs) = tmpfs::Tmpfs::mount(&r.queue(), "256k") else {
        return;
    };
    let mut big = MSG.to_vec();
    big.extend(
        std::iter::repeat_n(
            b"0123456789abcdef0123456789abcdef0123456789abcdef012345678\n".as_slice(),
            8000,
        )
        .flatten(),
    );
    for args in [
        &["--queue-only", "-f", "a@sender.test", "x@example.test"][..],
        &["-f", "a@sender.test", "x@example.test"],
    ] {
        let out = r.run(args, &big);
        assert_eq!(code(&out), 75, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("mrelay: "), "{}", stderr(&out));
        for d in ["new", "tmp", "state"] {
            let left = files(&r.queue().join(d));
            assert!(left.is_empty(), "{d}/ after {args:?}: {left:?}");
        }
    }
    // The space is back: a small message queues.
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "x@example.test"],
        MSG,
    );
    assert_eq!(r.waiting().len(), 1);
}

#[test]
fn the_daemon_takes_new_mail_at_once_and_stops_on_sigterm() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    std::fs::create_dir_all(r.queue()).unwrap();
    let child = r
        .cmd()
        .arg("--daemon")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "x@example.test"],
        MSG,
    );
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || fake.messages().len() == 1),
        "the daemon did not send it"
    );
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert!(wait_until(Duration::from_secs(5), || r
        .waiting()
        .is_empty()));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = wait_output(child, Duration::from_secs(5));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("status=sent"), "{}", stderr(&out));
}

#[test]
fn usage_errors_and_an_unwritable_queue() {
    let r = Relay::new("");
    let out = r.run(&[], b"");
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    let out = r.run(&["-f", "a@sender.test", "not an address"], MSG);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    let out = r.run(&["-N", "sometimes", "x@example.test"], MSG);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    let out = r.run(&["--hold", "../etc"], b"");
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    // A queue that cannot be written: 75, the caller keeps the message.
    let mut c = r.cmd();
    c.args(["--queue-dir", "/proc/mrelay-queue", "x@example.test"]);
    let out = run(&mut c, MSG);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let out = r.run(&["--version"], b"");
    assert_eq!(code(&out), 0);
}

/// dnsmasq on a loopback port with `records`; `None` when the peer is missing (outside CI)
/// or we are not root.
fn dnsmasq(records: &str) -> Option<(Peers, String)> {
    if !have(&["dnsmasq"]) {
        return None;
    }
    if !is_root() {
        assert!(!in_ci(), "the dnsmasq peer needs root in CI");
        eprintln!("SKIPPED: the peers need root");
        return None;
    }
    let peers = Peers::new();
    let file = peers.dir().join("records.conf");
    std::fs::write(&file, records).unwrap();
    let port = free_port().to_string();
    peers.script(
        "start-dnsmasq.sh",
        &[
            peers.dir().to_str().unwrap(),
            "127.0.0.1",
            &port,
            file.to_str().unwrap(),
        ],
        &[],
    );
    Some((peers, format!("127.0.0.1:{port}")))
}

const RECORDS: &str = "\
mx-host=two.test,mx1.two.test,10
mx-host=two.test,mx2.two.test,20
mx-host=three.test,mx1.two.test,10
mx-host=three.test,mx2.two.test,20
host-record=mx1.two.test,127.0.0.2
host-record=mx2.two.test,127.0.0.3
dns-rr=nullmx.test,15,000000
host-record=nullmx.test,127.0.0.6
mx-host=loop.test,relay.test,10
host-record=relay.test,127.0.0.9
";

#[test]
fn a_dead_first_mx_is_skipped_for_the_second_and_remembered_for_the_run() {
    let Some((_peers, dns)) = dnsmasq(RECORDS) else {
        return;
    };
    let second = Fake::start_on("127.0.0.3:0", Script::default());
    let port = second.port();
    // The first MX answers every connection with 421 and counts them.
    let first = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = tries.clone();
    std::thread::spawn(move || {
        for conn in first.incoming() {
            let Ok(mut conn) = conn else { continue };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::Write::write_all(&mut conn, b"421 4.3.2 going down\r\n");
        }
    });
    let r = Relay::new("");
    let port = port.to_string();
    let mx = [
        "--dns-server",
        dns.as_str(),
        "--mx-port",
        port.as_str(),
        "--allow-private-targets",
    ];
    // Two domains with the same MX hosts: two destinations, two connections.
    for to in ["x@two.test", "y@three.test"] {
        let mut args = mx.to_vec();
        args.extend(["--queue-only", "-f", "a@sender.test", to]);
        r.ok(&args, MSG);
    }
    let mut args = mx.to_vec();
    args.push("-q");
    let log = r.ok(&args, b"");
    assert_eq!(second.messages().len(), 2, "{log}");
    assert_eq!(
        log.matches(&format!("relay=mx2.two.test[127.0.0.3]:{port}"))
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        tries.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the dead MX was tried again for the second message: {log}"
    );
    assert!(r.waiting().is_empty());
}

#[test]
fn a_null_mx_and_a_loop_to_this_host_bounce_at_once() {
    let Some((_peers, dns)) = dnsmasq(RECORDS) else {
        return;
    };
    let r = Relay::new("");
    let mail = r.maildirs();
    r.config(&format!("route sender.test local {}\n", mail.display()));
    let args = [
        "--dns-server",
        dns.as_str(),
        "--allow-private-targets",
        "-f",
        "a@sender.test",
        "x@nullmx.test",
        "y@loop.test",
    ];
    let log = r.ok(&args, MSG);
    assert!(log.contains("to=<x@nullmx.test> relay=none"), "{log}");
    assert!(log.contains("dsn=5.1.10"), "{log}");
    assert!(log.contains("dsn=5.4.6"), "{log}");
    assert_eq!(log.matches("status=bounced").count(), 2, "{log}");
    r.ok(&["-q"], b"");
    let parsed = python_report(&messages(&mail.join("a/Maildir"))[0]);
    assert!(
        parsed.contains("rcpt rfc822; x@nullmx.test failed 5.1.10"),
        "{parsed}"
    );
    assert!(
        parsed.contains("rcpt rfc822; y@loop.test failed 5.4.6"),
        "{parsed}"
    );
}

#[test]
fn with_syslog_the_lines_go_to_the_socket_given() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    let socket = r.t.path().join("log.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let log = r.ok(
        &[
            "--syslog-socket",
            socket.to_str().unwrap(),
            "-f",
            "a@sender.test",
            "x@example.test",
        ],
        MSG,
    );
    assert!(!log.contains("delivery"), "on stderr too: {log}");
    let mut buf = [0u8; 4096];
    let n = listener.recv(&mut buf).expect("a syslog datagram");
    let line = String::from_utf8_lossy(&buf[..n]);
    // RFC 3164: <PRI> with facility mail (2) and severity info (6): 2 * 8 + 6.
    assert!(line.starts_with("<22>"), "{line}");
    assert!(line.contains(" mrelay["), "{line}");
    assert!(line.contains(": delivery to=<x@example.test> "), "{line}");
    assert!(line.contains(" status=sent "), "{line}");
}

#[test]
fn a_servers_recipient_limit_splits_the_message_over_one_connection() {
    let fake = Fake::start(Script {
        max_rcpts: Some(2),
        ..Script::default()
    });
    let r = Relay::new(&format!("route example.test [127.0.0.1]:{}\n", fake.port()));
    let rcpts: Vec<String> = (1..=5).map(|i| format!("r{i}@example.test")).collect();
    let mut args = vec!["-f", "a@sender.test"];
    args.extend(rcpts.iter().map(String::as_str));
    let log = r.ok(&args, MSG);
    assert_eq!(log.matches("status=sent").count(), 5, "{log}");
    assert_eq!(fake.messages().len(), 3, "2 + 2 + 1 recipients");
    let dialogue = fake.log_text();
    assert_eq!(dialogue.matches("EHLO").count(), 1, "{dialogue}");
    assert_eq!(dialogue.matches("MAIL FROM").count(), 3, "{dialogue}");
    assert!(r.waiting().is_empty());
}

#[test]
fn a_pipe_route_runs_its_command_per_recipient_and_its_refusal_bounces() {
    let r = Relay::new("");
    let out = r.t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mail = r.maildirs();
    r.config(&format!(
        "route list.test pipe /bin/sh -c 'test \"$0\" != {out}/nobody || exit 67; cat > \"$0\"' \
         '{out}/${{user}}'\nroute sender.test local {}\n",
        mail.display(),
        out = out.display()
    ));
    let log = r.ok(
        &[
            "-f",
            "a@sender.test",
            "Ann+list@list.test",
            "nobody@list.test",
        ],
        MSG,
    );
    assert!(
        log.contains("to=<Ann+list@list.test> relay=pipe:/bin/sh"),
        "{log}"
    );
    assert_eq!(std::fs::read(out.join("ann")).unwrap(), MSG);
    assert!(log.contains("to=<nobody@list.test>"), "{log}");
    assert!(log.contains("status=bounced"), "{log}");
    assert!(log.contains("exited with status 67"), "{log}");
    r.ok(&["-q"], b"");
    let parsed = python_report(&messages(&mail.join("a/Maildir"))[0]);
    assert!(
        parsed.contains("rcpt rfc822; nobody@list.test failed"),
        "{parsed}"
    );
}

/// The SMTP session of the test servers below, after their own checks: a greeting as
/// `host`, 250 to everything, each message read to its dot and counted in `took`.
fn serve(
    mut r: std::io::BufReader<std::net::TcpStream>,
    mut w: std::net::TcpStream,
    host: &str,
    took: &std::sync::atomic::AtomicUsize,
) {
    use std::io::{BufRead, Write};
    let _ = w.write_all(format!("220 {host} ESMTP\r\n").as_bytes());
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        let cmd = line.to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("DATA") {
            let _ = w.write_all(b"354 go\r\n");
            let mut l2 = String::new();
            while r.read_line(&mut l2).unwrap_or(0) > 0 && l2 != ".\r\n" {
                l2.clear();
            }
            took.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            b"250 2.0.0 taken\r\n"
        } else if cmd.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        } else {
            b"250 ok\r\n"
        };
        let _ = w.write_all(reply);
        line.clear();
    }
}

/// A minimal SMTP server on 127.0.0.1 that greets a connection only once `others` more
/// connections have been made to the servers sharing the `met` counter (else, after 2 s,
/// 421): a session of the first connection gets through only when another one opens
/// while it waits, that is when the sessions overlap in time. Returns its port and the
/// count of messages it took.
fn rendezvous(
    met: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    others: usize,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufReader, Write};
    use std::sync::atomic::Ordering::SeqCst;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let took = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = took.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut w) = conn else { continue };
            let (met, count) = (met.clone(), count.clone());
            std::thread::spawn(move || {
                let r = BufReader::new(w.try_clone().unwrap());
                met.fetch_add(1, SeqCst);
                let end = Instant::now() + Duration::from_secs(2);
                while met.load(SeqCst) <= others && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if met.load(SeqCst) <= others {
                    let _ = w.write_all(b"421 4.3.2 alone\r\n");
                    return;
                }
                serve(r, w, "meet.test", &count);
            });
        }
    });
    (port, took)
}

#[test]
fn a_queue_run_sends_to_two_destinations_at_once() {
    // Each server greets only while the other has a connection open too: a run that sends
    // one destination after the other gets 421 from both.
    let met = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (p1, took1) = rendezvous(met.clone(), 1);
    let (p2, took2) = rendezvous(met.clone(), 1);
    let r = Relay::new(&format!(
        "route one.test [127.0.0.1]:{p1}\nroute two.test [127.0.0.1]:{p2}\nrelay_tls * none\n"
    ));
    for to in ["x@one.test", "y@two.test"] {
        r.ok(&["--queue-only", "-f", "a@sender.test", to], MSG);
    }
    let log = r.ok(&["-q"], b"");
    let took = |t: &std::sync::Arc<std::sync::atomic::AtomicUsize>| {
        t.load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!((took(&took1), took(&took2)), (1, 1), "{log}");
    assert!(r.waiting().is_empty(), "{log}");
}

#[test]
fn relay_concurrency_1_sends_one_destination_after_the_other() {
    // The same servers, one thread: the first session waits for a second that never comes
    // while it is open, and both are deferred.
    let met = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (p1, took1) = rendezvous(met.clone(), 1);
    let (p2, took2) = rendezvous(met.clone(), 1);
    let r = Relay::new(&format!(
        "route one.test [127.0.0.1]:{p1}\nroute two.test [127.0.0.1]:{p2}\nrelay_tls * none\n\
         relay_concurrency 1\n"
    ));
    for to in ["x@one.test", "y@two.test"] {
        r.ok(&["--queue-only", "-f", "a@sender.test", to], MSG);
    }
    let log = r.ok(&["-q"], b"");
    let sequential = took1.load(std::sync::atomic::Ordering::SeqCst)
        + took2.load(std::sync::atomic::Ordering::SeqCst);
    // The first is refused alone; the second comes after the first's (counted) connection.
    assert_eq!(sequential, 1, "{log}");
    assert!(!r.waiting().is_empty(), "{log}");
}

#[test]
fn the_daemon_drains_a_backlog_to_several_destinations_at_once() {
    // Three servers that greet only once all three have a connection open: a daemon that
    // sends one destination after the other gets 421 and defers (for 5 minutes).
    let met = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let servers: Vec<_> = (0..3).map(|_| rendezvous(met.clone(), 2)).collect();
    let mut config = String::from("relay_tls * none\n");
    for (i, (port, _)) in servers.iter().enumerate() {
        config += &format!("route d{i}.test [127.0.0.1]:{port}\n");
    }
    let r = Relay::new(&config);
    for n in 0..4 {
        for i in 0..3 {
            let to = format!("u{n}@d{i}.test");
            r.ok(&["--queue-only", "-f", "a@sender.test", &to], MSG);
        }
    }
    let child = r
        .cmd()
        .arg("--daemon")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let took = |i: usize| servers[i].1.load(std::sync::atomic::Ordering::SeqCst);
    let drained = wait_until(Duration::from_secs(10), || {
        (0..3).map(took).sum::<usize>() == 12 && r.waiting().is_empty()
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = wait_output(child, Duration::from_secs(5));
    assert!(
        drained,
        "{:?} {}",
        (0..3).map(took).collect::<Vec<_>>(),
        stderr(&out)
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("status=sent").count(),
        12,
        "{}",
        stderr(&out)
    );
}

#[test]
fn sigterm_lets_the_daemons_transactions_in_flight_finish_and_keeps_the_rest() {
    let slow = Script {
        delay: Duration::from_millis(1500),
        ..Script::default()
    };
    let (a, b) = (Fake::start(slow.clone()), Fake::start(slow));
    let r = Relay::new(&format!(
        "route a.test [127.0.0.1]:{}\nroute b.test [127.0.0.1]:{}\nrelay_tls * none\n",
        a.port(),
        b.port()
    ));
    for n in 0..3 {
        for d in ["a", "b"] {
            let to = format!("u{n}@{d}.test");
            r.ok(&["--queue-only", "-f", "x@sender.test", &to], MSG);
        }
    }
    let child = r
        .cmd()
        .arg("--daemon")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both destinations' first messages are in their DATA phase: then the signal.
    assert!(wait_until(Duration::from_secs(5), || {
        a.log_text().contains("DATA") && b.log_text().contains("DATA")
    }));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = wait_output(child, Duration::from_secs(10));
    let log = stderr(&out);
    assert_eq!(code(&out), 0, "{log}");
    let sent = a.messages().len() + b.messages().len();
    // Both transactions in flight at the signal finish (on a loaded machine one lane may
    // have begun its next before the signal); the lanes stop before the rest.
    assert!((2..6).contains(&sent), "{sent} sent: {log}");
    assert_eq!(log.matches("status=sent").count(), sent, "{log}");
    // The rest are waiting, untouched: no attempt counted.
    assert_eq!(r.waiting().len(), 6 - sent, "{log}");
    assert_eq!(
        r.states().matches(" 0\n").count(),
        6 - sent,
        "{}",
        r.states()
    );
}

#[test]
fn an_abandoned_incomplete_drop_file_is_removed_and_a_young_one_kept() {
    let r = Relay::new("relay_maildrop_timeout 1h\n");
    std::fs::create_dir_all(r.queue()).unwrap();
    let drop = r.t.path().join("maildrop");
    std::fs::create_dir(&drop).unwrap();
    // Two files mdrop began and never marked complete (still 0600): one 2 hours old, one new.
    let write = |name: &str, age: Duration| {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(drop.join(name))
            .unwrap();
        std::io::Write::write_all(&mut &f, b"half a head").unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
    };
    write("old", Duration::from_secs(7200));
    write("young", Duration::from_secs(600));
    let log = r.ok(&["-q"], b"");
    assert!(!drop.join("old").exists(), "{log}");
    assert!(drop.join("young").exists(), "{log}");
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let removed = format!("pickup maildrop=old uid={uid} status=removed reason=");
    assert!(log.contains(&removed), "{log}");
    assert!(!log.contains("maildrop=young"), "{log}");
    assert!(r.waiting().is_empty());
}

/// A server on 127.0.0.1 that answers 421 to every connection while `alive` is false and
/// takes mail when it is true; its port, the connections made to it, the messages taken.
fn switchable(
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (
    u16,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufReader, Write};
    use std::sync::atomic::Ordering::SeqCst;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let took = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (t, k) = (tries.clone(), took.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut w) = conn else { continue };
            t.fetch_add(1, SeqCst);
            if !alive.load(SeqCst) {
                let _ = w.write_all(b"421 4.3.2 down for maintenance\r\n");
                continue;
            }
            let k = k.clone();
            std::thread::spawn(move || {
                let r = BufReader::new(w.try_clone().unwrap());
                serve(r, w, "up.test", &k);
            });
        }
    });
    (port, tries, took)
}

#[test]
fn a_dead_host_costs_one_connection_across_runs_until_its_hint_is_due() {
    use std::sync::atomic::Ordering::SeqCst;
    let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (port, tries, took) = switchable(alive.clone());
    let r = Relay::new(&format!(
        "route dead.test [127.0.0.1]:{port}\nrelay_tls * none\n"
    ));
    let queue = |to: &str| r.ok(&["--queue-only", "-f", "a@sender.test", to], MSG);
    queue("x@dead.test");
    let log = r.ok(&["-q"], b"");
    assert_eq!(tries.load(SeqCst), 1, "{log}");
    let hint = r.queue().join("hosts").join(format!("127.0.0.1:{port}"));
    let text = std::fs::read_to_string(&hint).unwrap();
    assert!(
        text.contains("failures 1\n") && text.contains("421"),
        "{text}"
    );
    // A second run, with new messages due: the hint defers them all without dialing, and
    // so does the attempt of a message as it is submitted.
    queue("y@dead.test");
    queue("z@dead.test");
    let log = r.ok(&["-q"], b"");
    assert_eq!(log.matches("status=deferred").count(), 2, "{log}");
    assert_eq!(log.matches("down in an earlier run").count(), 2, "{log}");
    let log = r.ok(&["-f", "a@sender.test", "w@dead.test"], MSG);
    assert!(log.contains("down in an earlier run"), "{log}");
    assert_eq!(tries.load(SeqCst), 1, "a dead host dialed again: {log}");
    // The listing shows the hint.
    let list = r.list();
    assert!(list.contains(&format!("127.0.0.1:{port}")), "{list}");
    // A flush by hand dials it anyway; it works now, and the success clears the hint.
    alive.store(true, SeqCst);
    let log = r.ok(&["--flush"], b"");
    assert_eq!(took.load(SeqCst), 4, "{log}");
    assert!(!hint.exists(), "{log}");
    queue("v@dead.test");
    let log = r.ok(&["-q"], b"");
    assert_eq!(took.load(SeqCst), 5, "{log}");
    assert!(r.waiting().is_empty(), "{log}");
}

#[test]
fn notify_success_is_reported_relayed_or_delivered_unless_the_next_hop_takes_dsn() {
    let plain = Fake::start(Script::default());
    let with_dsn = Fake::start(Script {
        ehlo: "250-fake.test\r\n250-PIPELINING\r\n250-DSN\r\n250 8BITMIME\r\n",
        ..Script::default()
    });
    let r = Relay::new("");
    let mail = r.maildirs();
    r.config(&format!(
        "route plain.test [127.0.0.1]:{}\nroute dsn.test [127.0.0.1]:{}\n\
         route sender.test local {}\nrelay_tls * none\n",
        plain.port(),
        with_dsn.port(),
        mail.display()
    ));
    let send = |notify: &[&str], to: &str| {
        let mut args = vec!["-f", "a@sender.test"];
        args.extend(notify);
        args.push(to);
        let log = r.ok(&args, MSG);
        assert!(log.contains("status=sent"), "{log}");
    };
    send(&["-N", "success,failure"], "x@plain.test");
    // Not asked, or the next hop took the NOTIFY and reports itself: no report from us.
    send(&[], "y@plain.test");
    send(&["-N", "success"], "z@dsn.test");
    assert!(with_dsn.log_text().contains("NOTIFY=SUCCESS"));
    // A local route delivers: the report says delivered.
    send(&["-N", "success"], "b@sender.test");
    r.ok(&["-q"], b"");
    assert_eq!(messages(&mail.join("b/Maildir")).len(), 1);
    let reports = messages(&mail.join("a/Maildir"));
    assert_eq!(reports.len(), 2, "{:?}", reports);
    let parsed: String = reports.iter().map(|p| python_report(p)).collect();
    assert_eq!(
        parsed
            .matches("type multipart/report delivery-status")
            .count(),
        2,
        "{parsed}"
    );
    assert!(
        parsed.contains("rcpt rfc822; x@plain.test relayed 2.0.0"),
        "{parsed}"
    );
    assert!(
        parsed.contains("rcpt rfc822; b@sender.test delivered 2.0.0"),
        "{parsed}"
    );
    assert_eq!(parsed.matches("defects 0").count(), 2, "{parsed}");
    assert!(r.waiting().is_empty());
}

#[test]
fn a_routes_hosts_are_tried_in_order() {
    // The first host refuses connections (a port just freed); the second takes the mail.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!(
        "route multi.test [127.0.0.1]:{dead_port} [127.0.0.1]:{}\nrelay_tls * none\n",
        fake.port()
    ));
    let log = r.ok(&["-f", "a@sender.test", "x@multi.test"], MSG);
    assert_eq!(fake.messages().len(), 1, "{log}");
    let second = format!("relay=127.0.0.1[127.0.0.1]:{} ", fake.port());
    assert!(log.contains(&second), "{log}");
    assert!(r.waiting().is_empty(), "{log}");
}

#[test]
fn more_than_100_recipients_go_in_transactions_of_100_over_one_connection() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!(
        "route example.test [127.0.0.1]:{}\nrelay_tls * none\n",
        fake.port()
    ));
    let rcpts: Vec<String> = (0..150).map(|i| format!("u{i}@example.test")).collect();
    let mut args = vec!["-f", "a@sender.test"];
    args.extend(rcpts.iter().map(String::as_str));
    let log = r.ok(&args, MSG);
    assert_eq!(log.matches("status=sent").count(), 150, "{log}");
    let text = fake.log_text();
    assert_eq!(text.matches("MAIL FROM").count(), 2, "{text}");
    assert_eq!(text.matches("RCPT TO").count(), 150);
    // The first transaction has 100: its DATA comes after the 100th RCPT.
    let first = text.split("DATA").next().unwrap();
    assert_eq!(first.matches("RCPT TO").count(), 100);
    assert_eq!(fake.peers.lock().unwrap().len(), 1);
}

#[test]
fn tls_policy_per_domain_keeps_mail_from_a_server_without_starttls() {
    // The fake offers no STARTTLS: encrypt and verify wait, may sends in clear text.
    let fake = Fake::start(Script::default());
    let p = fake.port();
    let r = Relay::new(&format!(
        "route enc.test [127.0.0.1]:{p}\nroute ver.test [127.0.0.1]:{p}\n\
         route may.test [127.0.0.1]:{p}\nrelay_tls enc.test encrypt\nrelay_tls ver.test verify\n"
    ));
    for to in ["x@enc.test", "y@ver.test", "z@may.test"] {
        r.ok(&["--queue-only", "-f", "a@sender.test", to], MSG);
    }
    let log = r.ok(&["-q"], b"");
    assert_eq!(fake.messages().len(), 1, "{log}");
    let line = |to: &str| {
        log.lines()
            .find(|l| l.contains(&format!("to=<{to}>")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("z@may.test").contains("status=sent"), "{log}");
    for to in ["x@enc.test", "y@ver.test"] {
        let l = line(to);
        assert!(l.contains("status=deferred"), "{l}");
        assert!(l.to_ascii_lowercase().contains("starttls"), "{l}");
    }
    assert_eq!(r.waiting().len(), 2);
    // A policy's refusal is not the host's death: no hint keeps may.test's next mail.
    assert!(files(&r.queue().join("hosts")).is_empty());
    let log = r.ok(&["-f", "a@sender.test", "w@may.test"], MSG);
    assert!(log.contains("status=sent"), "{log}");
}

#[test]
fn a_shorter_expiry_set_later_applies_to_mail_already_queued_and_ret_hdrs_returns_the_header() {
    let fake = Fake::start(Script {
        rcpt: vec![("@example.test", "451 4.2.1 mailbox busy\r\n")],
        ..Script::default()
    });
    let r = Relay::new("");
    let mail = r.maildirs();
    let config = |extra: &str| {
        r.config(&format!(
            "route example.test [127.0.0.1]:{}\nroute sender.test local {}\n{extra}",
            fake.port(),
            mail.display()
        ))
    };
    // Queued and tried under the defaults (5 days): it waits.
    config("");
    let log = r.ok(
        &["-f", "a@sender.test", "-R", "hdrs", "x@example.test"],
        MSG,
    );
    assert!(log.contains("status=deferred"), "{log}");
    // The administrator shortens the expiry and the retry: the entry already queued obeys.
    config("relay_expire 1s\nrelay_retry 1s\n");
    std::thread::sleep(Duration::from_millis(1100));
    let log = r.ok(&["-q"], b"");
    assert!(log.contains("dsn=4.4.7 status=bounced"), "{log}");
    r.ok(&["-q"], b"");
    let report = &messages(&mail.join("a/Maildir"))[0];
    let parsed = python_report(report);
    assert!(
        parsed.contains("rcpt rfc822; x@example.test failed 4.4.7"),
        "{parsed}"
    );
    // RET=HDRS: the original's header comes back, not its body.
    let text = std::fs::read_to_string(report).unwrap();
    assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
    assert!(text.contains("Subject: relay test"), "{text}");
    assert!(!text.contains("\nhello\n"), "{text}");
}

#[test]
fn msubmit_flush_runs_only_its_account_routes_and_leaves_mrelays_entries() {
    let fake = Fake::start(Script::default());
    let r = Relay::new(&format!(
        "host 127.0.0.1\nport {p}\ntls off\nroute example.test [127.0.0.1]:{p}\nrelay_tls * none\n",
        p = fake.port()
    ));
    r.ok(
        &["--queue-only", "-f", "a@sender.test", "x@example.test"],
        MSG,
    );
    let mut c = tool(bin!("msubmit"), r.t.path());
    c.arg("-C")
        .arg(r.t.path().join("config"))
        .arg("--queue-dir")
        .arg(r.queue())
        .arg("--flush");
    let out = run(&mut c, b"");
    assert!(
        stderr(&out).contains("not msubmit's: left in the queue"),
        "{}",
        stderr(&out)
    );
    assert!(fake.messages().is_empty());
    assert_eq!(r.waiting().len(), 1);
    assert!(
        r.states().contains("x@example.test pending 0"),
        "{}",
        r.states()
    );
    let log = r.ok(&["-q"], b"");
    assert!(log.contains("status=sent"), "{log}");
    assert!(r.waiting().is_empty());
}
