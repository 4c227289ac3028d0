//! mreceive in stdio mode (as inetd runs it): scripted sessions written as bytes, replies
//! read back, Maildirs inspected. Smuggling, relay tricks, limits, loops, delivery commands.

use crate::common;
use crate::common::mreceive;

use common::{code, files, messages, only_message, run, stderr, tmpfs, tool};
use mreceive::{LogLine, parse_log};
use std::path::Path;
use std::process::Output;

/// The reply codes of a session's output, one per complete reply.
fn codes(out: &Output) -> Vec<u16> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' ') || l.len() == 3)
        .filter_map(|l| l.get(..3).and_then(|c| c.parse().ok()))
        .collect()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run one stdio session of an MX for local.test delivering into `base`.
fn mx(base: &Path, extra: &[&str], input: &[u8]) -> Output {
    let mut c = tool(bin!("mreceive"), base);
    c.args(["-d", "local.test", "--hostname", "mx.local.test", "-m"])
        .arg(base.join("mail"))
        .args(extra);
    run(&mut c, input)
}

fn mailbox(base: &Path, user: &str) -> std::path::PathBuf {
    base.join("mail").join(user).join("Maildir")
}

const HEAD: &str =
    "EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n";

#[test]
fn delivers_pipelined_mail_with_trace_headers() {
    let d = tempfile::tempdir().unwrap();
    let input = "EHLO client.test\r\nMAIL FROM:<a@remote.test> SIZE=40 BODY=8BITMIME\r\n\
                 RCPT TO:<Bob@LOCAL.test>\r\nRCPT TO:<carol+lists@local.test>\r\nDATA\r\n\
                 Subject: hi\r\n\r\n..leading dot\r\nline two\r\n.\r\nQUIT\r\n";
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 250, 354, 250, 221],
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("250-PIPELINING\r\n"));
    assert!(text(&out).contains("250-SIZE 26214400\r\n"));
    let bob = String::from_utf8(only_message(&mailbox(d.path(), "bob"))).unwrap();
    assert!(bob.starts_with("Return-Path: <a@remote.test>\nDelivered-To: Bob@local.test\nReceived: from client.test\n\tby mx.local.test (mailpipe mreceive) with ESMTP id "), "{bob}");
    assert!(
        bob.ends_with("Subject: hi\n\n.leading dot\nline two\n"),
        "{bob}"
    );
    // Two recipients: the Received: header names neither.
    assert!(!bob.contains("\tfor <"), "{bob}");
    let carol = String::from_utf8(only_message(&mailbox(d.path(), "carol"))).unwrap();
    assert!(carol.contains("Delivered-To: carol+lists@local.test\n"));
}

#[test]
fn one_recipient_is_named_in_received() {
    let d = tempfile::tempdir().unwrap();
    let out = mx(d.path(), &[], format!("{HEAD}x\r\n.\r\n").as_bytes());
    assert_eq!(codes(&out), [220, 250, 250, 250, 354, 250]);
    let m = String::from_utf8(only_message(&mailbox(d.path(), "bob"))).unwrap();
    assert!(m.contains("\n\tfor <bob@local.test>;\n"), "{m}");
    // The HELO name cannot end the trace tokens early or open a comment.
    let input = format!("{HEAD}x\r\n.\r\n").replace("EHLO c.test", "EHLO a;b\\(c)");
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(codes(&out), [220, 250, 250, 250, 354, 250]);
    let m = messages(&mailbox(d.path(), "bob"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|m| m.contains("from a"))
        .unwrap();
    assert!(m.contains("Received: from a?b??c?\n"), "{m}");
}

/// Every SMTP smuggling variant: the smuggled transaction is content of a refused message,
/// never commands; only the real CRLF.CRLF ends the data.
#[test]
fn smuggling_variants_are_refused_never_executed() {
    let evil: &[&[u8]] = &[
        b"\n.\n",
        b"\n.\r\n",
        b"\r.\r",
        b"\r.\r\n",
        b"\r\n.\n",
        b"\r\n.\r",
        b"\r\n\0.\r\n",
        b"\r\n.\0\r\n",
        b"\r\n.\0\n",
    ];
    for e in evil {
        let d = tempfile::tempdir().unwrap();
        let mut input = format!("{HEAD}Subject: legit\r\n\r\nhello").into_bytes();
        input.extend_from_slice(e);
        input.extend_from_slice(
            b"MAIL FROM:<ceo@local.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n\
              Subject: smuggled\r\n\r\nevil\r\n.\r\nNOOP\r\n",
        );
        let out = mx(d.path(), &[], &input);
        let c = codes(&out);
        // 220 EHLO MAIL RCPT 354, then one refusal for the whole thing, then the NOOP.
        assert_eq!(c.len(), 7, "{e:?}: {}", text(&out));
        assert!(c[5] == 550 || c[5] == 554, "{e:?}: {}", text(&out));
        assert_eq!(c[6], 250, "{e:?}");
        assert!(
            messages(&mailbox(d.path(), "bob")).is_empty()
                && messages(&mailbox(d.path(), "alice")).is_empty(),
            "{e:?}: something was delivered"
        );
    }
}

#[test]
fn normalizing_keeps_smuggled_text_inside_one_message() {
    let d = tempfile::tempdir().unwrap();
    let input = format!(
        "{HEAD}Subject: x\r\n\r\nhello\n.\nMAIL FROM:<ceo@local.test>\r\nRCPT TO:<alice@local.test>\r\n\
         DATA\r\nevil\r\n.\r\nQUIT\r\n"
    );
    let out = mx(d.path(), &["--normalize-line-ends"], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 354, 250, 221],
        "{}",
        text(&out)
    );
    let m = String::from_utf8(only_message(&mailbox(d.path(), "bob"))).unwrap();
    assert!(m.contains("hello\n.\nMAIL FROM:<ceo@local.test>\n"), "{m}");
    assert!(messages(&mailbox(d.path(), "alice")).is_empty());
}

#[test]
fn relay_tricks_get_550_5_7_1_or_553() {
    let tricks = [
        "alice@remote.test",
        "alice%remote.test@local.test",
        "\"alice@remote.test\"@local.test",
        "@local.test:alice@remote.test",
        "alice@remote.test@local.test",
        "remote.test!alice@local.test",
        "alice@local.test.remote.test",
        "alice@local.test.",
        "alice@LOCAL.TEST..",
        "alice@[127.0.0.1]",
        "alice@local.test\"",
        "\"alice\"@local.test",
    ];
    for t in tricks {
        let d = tempfile::tempdir().unwrap();
        let input = format!("EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<{t}>\r\nQUIT\r\n");
        let out = mx(d.path(), &[], input.as_bytes());
        let c = codes(&out);
        assert!(
            c[3] == 550 || c[3] == 553 || c[3] == 501,
            "{t}: {}",
            text(&out)
        );
        if c[3] == 550 {
            assert!(text(&out).contains("550 5.7.1"), "{t}: {}", text(&out));
        }
    }
    // Case games and source routes to a local final address are fine.
    let d = tempfile::tempdir().unwrap();
    let input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<@remote.test:ALICE@Local.Test>\r\n\
                 RCPT TO:<Postmaster>\r\nDATA\r\nx\r\n.\r\n";
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 250, 354, 250],
        "{}",
        text(&out)
    );
    assert_eq!(messages(&mailbox(d.path(), "alice")).len(), 1);
    assert_eq!(messages(&mailbox(d.path(), "postmaster")).len(), 1);
}

#[test]
fn known_users_only() {
    let d = tempfile::tempdir().unwrap();
    let users = d.path().join("users");
    std::fs::write(&users, "# local users\nbob\nAlice\n").unwrap();
    let input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<bob@local.test>\r\n\
                 RCPT TO:<alice+x@local.test>\r\nRCPT TO:<mallory@local.test>\r\n\
                 RCPT TO:<postmaster@local.test>\r\nQUIT\r\n";
    let out = mx(
        d.path(),
        &["--users", users.to_str().unwrap()],
        input.as_bytes(),
    );
    assert_eq!(codes(&out), [220, 250, 250, 250, 250, 550, 250, 221]);
    assert!(text(&out).contains("550 5.1.1"));
    // A directory as the user list: its entries (here the Maildir base itself).
    std::fs::create_dir_all(mailbox(d.path(), "bob")).unwrap();
    let base = d.path().join("mail");
    let out = mx(
        d.path(),
        &["--users", base.to_str().unwrap()],
        input.as_bytes(),
    );
    assert_eq!(codes(&out), [220, 250, 250, 250, 550, 550, 250, 221]);
}

#[test]
fn command_and_text_line_limits() {
    let d = tempfile::tempdir().unwrap();
    // 512 octets with CRLF pass; 513 do not (RFC 5321 §4.5.3.1.4).
    let ok = format!("NOOP {}\r\n", "x".repeat(512 - 7));
    let long = format!("NOOP {}\r\n", "x".repeat(513 - 7));
    let out = mx(d.path(), &[], format!("{ok}{long}NOOP\r\n").as_bytes());
    assert_eq!(codes(&out), [220, 250, 500, 250]);
    assert!(text(&out).contains("500 5.5.2 line too long"));
    // A 1001-octet text line refuses the message at its end; 1000 is fine.
    for (n, want) in [(1000, 250), (1001, 554), (100_000, 554)] {
        let d = tempfile::tempdir().unwrap();
        let input = format!("{HEAD}{}\r\n.\r\nNOOP\r\n", "y".repeat(n - 2));
        let out = mx(d.path(), &[], input.as_bytes());
        assert_eq!(codes(&out), [220, 250, 250, 250, 354, want, 250], "{n}");
    }
}

#[test]
fn size_limits_at_mail_and_at_the_end() {
    let d = tempfile::tempdir().unwrap();
    let input = "EHLO c\r\nMAIL FROM:<a@r.test> SIZE=2000\r\nMAIL FROM:<a@r.test> SIZE=10\r\n\
                 RCPT TO:<bob@local.test>\r\nDATA\r\n";
    let body = "z".repeat(500) + "\r\n";
    let input = format!("{input}{}.\r\nQUIT\r\n", body.repeat(4));
    let out = mx(d.path(), &["--max-size", "1k"], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 552, 250, 250, 354, 552, 221],
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("552 5.3.4"));
    assert!(messages(&mailbox(d.path(), "bob")).is_empty());
}

#[test]
fn recipient_limit_is_452() {
    let d = tempfile::tempdir().unwrap();
    let mut input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\n".to_string();
    for u in ["a", "b", "c", "d"] {
        input += &format!("RCPT TO:<{u}@local.test>\r\n");
    }
    input += "DATA\r\nx\r\n.\r\n";
    let out = mx(d.path(), &["--max-recipients", "3"], input.as_bytes());
    assert_eq!(codes(&out), [220, 250, 250, 250, 250, 250, 452, 354, 250]);
    assert!(text(&out).contains("452 4.5.3"));
    assert!(messages(&mailbox(d.path(), "d")).is_empty());
    assert_eq!(messages(&mailbox(d.path(), "c")).len(), 1);
}

#[test]
fn more_than_100_received_headers_is_a_loop() {
    for (n, want) in [(100, 250), (101, 554)] {
        let d = tempfile::tempdir().unwrap();
        let hops = "Received: from a by b; Sun, 29 Nov 2026 10:00:00 +0000\r\n".repeat(n);
        let input = format!("{HEAD}{hops}Subject: x\r\n\r\nbody\r\n.\r\n");
        let out = mx(d.path(), &[], input.as_bytes());
        assert_eq!(codes(&out).last(), Some(&want), "{n}: {}", text(&out));
        if want == 554 {
            assert!(text(&out).contains("554 5.4.6"));
        }
    }
}

#[test]
fn protocol_order_and_unknown_commands() {
    let d = tempfile::tempdir().unwrap();
    let input = "MAIL FROM:<a@r.test>\r\nHELO c.test\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n\
                 MAIL FROM:<a@r.test>\r\nMAIL FROM:<a@r.test>\r\nDATA\r\nRSET\r\nXYZZY\r\nVRFY bob\r\n\
                 AUTH PLAIN AGEAYg==\r\nSTARTTLS\r\nBDAT 10 LAST\r\n0123456789NOOP\r\n";
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(
        codes(&out),
        [
            220, 503, 250, 503, 503, 250, 503, 554, 250, 500, 252, 502, 502, 503, 250
        ],
        "{}",
        text(&out)
    );
}

#[test]
fn too_many_errors_hang_up() {
    let d = tempfile::tempdir().unwrap();
    let out = mx(d.path(), &[], "JUNK\r\n".repeat(50).as_bytes());
    let c = codes(&out);
    assert_eq!(c.len(), 22, "{}", text(&out));
    assert_eq!(c.last(), Some(&421));
}

#[test]
fn a_repeated_recipient_gets_the_message_once() {
    let d = tempfile::tempdir().unwrap();
    let input = format!("{HEAD}x\r\n.\r\n").replace(
        "RCPT TO:<bob@local.test>\r\n",
        &"RCPT TO:<bob@local.test>\r\nRCPT TO:<BOB@Local.Test>\r\n".repeat(3),
    );
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 250, 250, 250, 250, 250, 354, 250]
    );
    assert_eq!(messages(&mailbox(d.path(), "bob")).len(), 1);
}

#[test]
fn rcpt_parameters_we_do_not_offer_get_555() {
    let d = tempfile::tempdir().unwrap();
    let input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\n\
                 RCPT TO:<bob@local.test> NOTIFY=NEVER\r\nRCPT TO:<bob@local.test>\r\nQUIT\r\n";
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 250, 555, 250, 221],
        "{}",
        text(&out)
    );
}

#[test]
fn utf8_addresses_need_smtputf8() {
    // RFC 6531: without SMTPUTF8 on MAIL, a UTF-8 address is refused (it would end up in the
    // Received: and Delivered-To: headers of a message not marked as needing UTF-8).
    let d = tempfile::tempdir().unwrap();
    let input = "EHLO c\r\nMAIL FROM:<\u{e9}@r.test>\r\nMAIL FROM:<a@r.test>\r\n\
                 RCPT TO:<bob+\u{e9}@local.test>\r\nRSET\r\n\
                 MAIL FROM:<\u{e9}@r.test> SMTPUTF8\r\nRCPT TO:<bob+\u{e9}@local.test>\r\n\
                 DATA\r\nx\r\n.\r\nQUIT\r\n";
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 553, 250, 553, 250, 250, 250, 354, 250, 221],
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("553 5.6.7"));
    assert_eq!(messages(&mailbox(d.path(), "bob")).len(), 1);
}

#[test]
fn refused_recipients_count_as_errors() {
    // Probing user names or relay tricks one RCPT after another ends like any other run of
    // bad commands.
    let d = tempfile::tempdir().unwrap();
    let users = d.path().join("users");
    std::fs::write(&users, "bob\n").unwrap();
    let mut input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\n".to_string();
    for i in 0..50 {
        input += &format!("RCPT TO:<guess{i}@local.test>\r\n");
    }
    let out = mx(
        d.path(),
        &["--users", users.to_str().unwrap()],
        input.as_bytes(),
    );
    let c = codes(&out);
    assert_eq!(c.len(), 2 + 1 + 20 + 1, "{}", text(&out));
    assert_eq!(c.last(), Some(&421));
}

#[test]
fn an_idle_client_times_out_with_421() {
    let d = tempfile::tempdir().unwrap();
    let mut c = tool(bin!("mreceive"), d.path());
    c.args(["-d", "local.test", "--timeout", "1", "-m"])
        .arg(d.path().join("mail"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stdin = child.stdin.take().unwrap(); // held open, never written
    let start = std::time::Instant::now();
    let out = common::wait_output(child, std::time::Duration::from_secs(20));
    drop(stdin);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(codes(&out), [220, 421], "{}", text(&out));
    assert!(text(&out).contains("421 4.4.2"));
    // A client that stalls in the middle of DATA: 421, and nothing is delivered.
    let mut c = tool(bin!("mreceive"), d.path());
    c.args(["-d", "local.test", "--timeout", "1", "-m"])
        .arg(d.path().join("mail"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{HEAD}Subject: half\r\n").as_bytes()).unwrap();
    let out = common::wait_output(child, std::time::Duration::from_secs(20));
    drop(stdin);
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 354, 421],
        "{}",
        text(&out)
    );
    assert!(messages(&mailbox(d.path(), "bob")).is_empty());
    // One that stalls in the middle of an AUTH exchange: 421 as well.
    let pw = d.path().join("passwd");
    std::fs::write(&pw, "alice:$6$salt$hash\n").unwrap();
    let mut c = tool(bin!("mreceive"), d.path());
    c.args([
        "-d",
        "local.test",
        "--timeout",
        "1",
        "--insecure-auth",
        "-p",
    ])
    .arg(&pw)
    .arg("-m")
    .arg(d.path().join("mail"))
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"EHLO c\r\nAUTH LOGIN\r\n").unwrap();
    let out = common::wait_output(child, std::time::Duration::from_secs(20));
    drop(stdin);
    assert_eq!(codes(&out), [220, 250, 334, 421], "{}", text(&out));
    assert!(text(&out).contains("421 4.4.2"));
}

/// Feed `head`, then `drip` a byte at a time, one every 200 ms, for at most 12 seconds;
/// returns the output and how long the session lasted.
fn trickle(d: &Path, head: &str, drip: &[u8]) -> (Output, std::time::Duration) {
    let mut c = tool(bin!("mreceive"), d);
    c.args(["-d", "local.test", "--timeout", "2", "-m"])
        .arg(d.join("mail"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let start = std::time::Instant::now();
    std::io::Write::write_all(&mut stdin, head.as_bytes()).unwrap();
    for b in drip.iter().cycle() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if start.elapsed() > std::time::Duration::from_secs(12)
            || std::io::Write::write_all(&mut stdin, &[*b]).is_err()
        {
            break;
        }
    }
    let lasted = start.elapsed();
    drop(stdin);
    (
        common::wait_output(child, std::time::Duration::from_secs(20)),
        lasted,
    )
}

#[test]
fn a_trickling_client_times_out_too() {
    // A byte now and then resets no clock: a command line has the timeout in all, and DATA
    // must keep up a minimum rate (else a few such clients hold every session for ever).
    let d = tempfile::tempdir().unwrap();
    let (out, lasted) = trickle(d.path(), "", b"NOOP ");
    assert_eq!(codes(&out), [220, 421], "{}", text(&out));
    assert!(lasted < std::time::Duration::from_secs(8), "{lasted:?}");
    let (out, lasted) = trickle(d.path(), HEAD, b"x\r\n");
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 354, 421],
        "{}",
        text(&out)
    );
    assert!(lasted < std::time::Duration::from_secs(8), "{lasted:?}");
    assert!(messages(&mailbox(d.path(), "bob")).is_empty());
}

/// A delivery command per recipient: SENDER and RECIPIENT set, exit 75 is 451 for the
/// whole message (the recipients that got it may get it again), other failures 554.
#[test]
fn delivery_command_outcomes() {
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("got");
    std::fs::create_dir(&out_dir).unwrap();
    let script = d.path().join("deliver.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$RECIPIENT\" in temp*) exit 75;; perm*) exit 1;; esac\n\
             {{ echo \"S=$SENDER R=$RECIPIENT U=$USER M=$MAILDIR\"; cat; }} > {}/\"$RECIPIENT\"\n",
            out_dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cmd = script.to_str().unwrap();
    let session = |rcpts: &[&str]| {
        let mut input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\n".to_string();
        for r in rcpts {
            input += &format!("RCPT TO:<{r}@local.test>\r\n");
        }
        input += "DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n";
        let out = mx(d.path(), &["-c", cmd], input.as_bytes());
        (*codes(&out).last().unwrap(), text(&out))
    };
    assert_eq!(session(&["ok1", "ok2"]).0, 250);
    let got = std::fs::read_to_string(out_dir.join("ok1@local.test")).unwrap();
    assert!(
        got.starts_with(&format!(
            "S=a@r.test R=ok1@local.test U=ok1 M={}/mail/ok1/Maildir\nReceived: from c\n",
            d.path().display()
        )),
        "{got}"
    );
    assert!(got.ends_with("Subject: s\n\nbody\n"), "{got}");
    let (c, t) = session(&["ok3", "temp1", "perm1"]);
    assert_eq!(c, 451, "{t}");
    assert!(
        t.contains("451 4.3.0") && t.contains("temp1@local.test"),
        "{t}"
    );
    assert!(
        out_dir.join("ok3@local.test").exists(),
        "delivered before the failure"
    );
    let (c, t) = session(&["ok4", "perm2"]);
    assert_eq!(c, 554, "{t}");
    assert!(t.contains("perm2@local.test") && !t.contains("ok4@"), "{t}");
}

/// Some local recipients failing for now while others got the message: with a queue, the
/// failed ones wait in it (route local, the same delivery command and base) and the client
/// hears 250, so nobody gets the message twice; mrelay -q delivers them later. Without a
/// queue dir, or when every recipient failed for now, the client hears 451 as before.
#[test]
fn recipients_failing_for_now_are_queued_when_others_succeed() {
    let d = tempfile::tempdir().unwrap();
    let got = d.path().join("got");
    std::fs::create_dir(&got).unwrap();
    let down = d.path().join("down");
    std::fs::write(&down, "").unwrap();
    let script = d.path().join("deliver.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$RECIPIENT\" in temp*) [ -e {} ] && exit 75;; esac\n\
             {{ echo \"M=$MAILDIR\"; cat; }} >> {}/\"$RECIPIENT\"\n",
            down.display(),
            got.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let q = d.path().join("q");
    let session = |rcpts: &[&str], extra: &[&str]| {
        let mut input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\n".to_string();
        for r in rcpts {
            input += &format!("RCPT TO:<{r}@local.test>\r\n");
        }
        input += "DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n";
        let mut args = vec!["-c", script.to_str().unwrap()];
        args.extend(extra);
        let out = mx(d.path(), &args, input.as_bytes());
        (*codes(&out).last().unwrap(), text(&out), log_of(&out))
    };
    let with_q = ["--queue-dir", q.to_str().unwrap()];
    let (c, t, log) = session(&["ok1", "temp1"], &with_q);
    assert_eq!(c, 250, "{t}");
    let entries = messages(&q);
    assert_eq!(entries.len(), 1);
    let entry = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(entry.contains("\nroute local\n"), "{entry}");
    assert!(entry.contains(&format!(
        "\nroute.maildirs {}\n",
        d.path().join("mail").display()
    )));
    assert!(entry.contains("\nrcpt temp1@local.test\n") && !entry.contains("rcpt ok1"));
    let deferred = log
        .iter()
        .find(|l| l.get("to") == Some("<temp1@local.test>"))
        .unwrap();
    assert!(deferred.has("delivery", "status", "queued"), "{deferred:?}");
    let id = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(deferred.get("queued_as"), Some(id.as_str()), "{deferred:?}");
    assert!(
        deferred.get("reason").unwrap().contains("queued as"),
        "{deferred:?}"
    );
    assert_eq!(
        std::fs::read_to_string(got.join("ok1@local.test"))
            .unwrap()
            .matches("body")
            .count(),
        1
    );
    // Every local recipient failing for now, or no queue given: the client retries.
    assert_eq!(session(&["temp2", "temp3"], &with_q).0, 451);
    assert_eq!(session(&["ok2", "temp4"], &[]).0, 451);
    assert_eq!(messages(&q).len(), 1);
    // The queue run delivers it through the same command, told the same MAILDIR.
    std::fs::remove_file(&down).unwrap();
    let out = run(
        std::process::Command::new(bin!("mrelay"))
            .args(["-q", "--queue-dir"])
            .arg(&q),
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(messages(&q).is_empty(), "{}", stderr(&out));
    let late = std::fs::read_to_string(got.join("temp1@local.test")).unwrap();
    assert_eq!(late.matches("body").count(), 1, "{late}");
    assert!(
        late.starts_with(&format!("M={}\n", mailbox(d.path(), "temp1").display())),
        "{late}"
    );
    assert_eq!(
        std::fs::read_to_string(got.join("ok1@local.test"))
            .unwrap()
            .matches("body")
            .count(),
        1
    );
}

/// A queue on a full disk: the recipient that failed for now cannot be queued, so the
/// client hears 451 (and retries), and nothing half-written is left in the queue.
#[test]
fn a_queue_on_a_full_disk_is_451_with_nothing_half_written() {
    let d = tempfile::tempdir().unwrap();
    let q = d.path().join("q");
    let Some(_tmpfs) = tmpfs::Tmpfs::mount(&q, "256k") else {
        return;
    };
    let script = d.path().join("deliver.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$RECIPIENT\" in temp*) exit 75;; esac\ncat >/dev/null\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut input =
        "EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<ok1@local.test>\r\nRCPT TO:<temp1@local.test>\r\nDATA\r\nSubject: s\r\n\r\n"
            .to_string();
    for _ in 0..6000 {
        input += "0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n";
    }
    input += ".\r\n";
    let args = [
        "-c",
        script.to_str().unwrap(),
        "--queue-dir",
        q.to_str().unwrap(),
    ];
    let out = mx(d.path(), &args, input.as_bytes());
    assert_eq!(codes(&out).last(), Some(&451), "{}", text(&out));
    for sub in ["new", "tmp", "state"] {
        let left = files(&q.join(sub));
        assert!(left.is_empty(), "{sub}/: {left:?}");
    }
}

/// The default chain: mreceive -> mdeliver (by path) -> Maildir, MAILDIR from --maildir-base.
#[test]
fn through_mdeliver() {
    let d = tempfile::tempdir().unwrap();
    let md = bin!("mdeliver");
    let input = format!("{HEAD}Subject: via mdeliver\r\n\r\nhi\r\n.\r\n");
    let out = mx(d.path(), &["-c", md.to_str().unwrap()], input.as_bytes());
    assert_eq!(codes(&out).last(), Some(&250), "{}", text(&out));
    let m = String::from_utf8(only_message(&mailbox(d.path(), "bob"))).unwrap();
    assert!(
        m.starts_with("Return-Path: <a@remote.test>\nDelivered-To: bob@local.test\nReceived: "),
        "{m}"
    );
    // mdeliver's loop check through mreceive: 65 is permanent.
    let input = format!("{HEAD}Delivered-To: bob@local.test\r\n\r\nhi\r\n.\r\n");
    let out = mx(d.path(), &["-c", md.to_str().unwrap()], input.as_bytes());
    assert_eq!(codes(&out).last(), Some(&554), "{}", text(&out));
}

#[test]
fn built_in_delivery_refuses_loops_and_reports_disk_trouble_as_451() {
    let d = tempfile::tempdir().unwrap();
    let input = format!("{HEAD}Delivered-To: bob@local.test\r\n\r\nhi\r\n.\r\n");
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(codes(&out).last(), Some(&554), "{}", text(&out));
    // A Maildir base that is a file: nothing can be stored, the client must retry.
    std::fs::write(d.path().join("mail"), "not a dir").unwrap();
    let out = mx(d.path(), &[], format!("{HEAD}x\r\n.\r\n").as_bytes());
    assert_eq!(codes(&out).last(), Some(&451), "{}", text(&out));
}

/// The README's MX through mdeliver: users from the entries of the Maildir base, each
/// recipient's mail in its own Maildir (mdeliver gets MAILDIR=BASE/USER/Maildir), nothing in
/// the daemon user's own ~/Maildir, where mdeliver goes without MAILDIR.
#[test]
fn a_delivery_command_gets_each_recipients_mailbox() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("mail");
    for u in ["alice", "bob"] {
        std::fs::create_dir_all(base.join(u)).unwrap();
    }
    let md = bin!("mdeliver");
    let input = "EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.org>\r\n\
                 RCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n\
                 Subject: two\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    let mut c = tool(bin!("mreceive"), d.path());
    c.args(["-d", "example.org", "--hostname", "mx.example.org", "-u"])
        .arg(&base)
        .arg("-m")
        .arg(&base)
        .arg("-c")
        .arg(&md);
    let out = run(&mut c, input.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // carol is no user here; alice and bob get the message.
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 250, 550, 354, 250, 221],
        "{}",
        text(&out)
    );
    for u in ["alice", "bob"] {
        let m = String::from_utf8(only_message(&base.join(u).join("Maildir"))).unwrap();
        assert!(
            m.starts_with(&format!(
                "Return-Path: <a@remote.test>\nDelivered-To: {u}@example.org\n"
            )),
            "{m}"
        );
    }
    assert!(
        !d.path().join("Maildir").exists(),
        "mail in the daemon's own mailbox"
    );

    // Without a base, a command that names the recipient chooses each mailbox itself
    // (mdeliver creates the Maildir in a home that exists, never the home).
    let homes = d.path().join("home");
    for u in ["alice", "bob", "carol"] {
        std::fs::create_dir_all(homes.join(u)).unwrap();
    }
    let per_user = format!("{} '{}/${{user}}/Maildir'", md.display(), homes.display());
    let mut c = tool(bin!("mreceive"), d.path());
    c.args(["-d", "example.org", "-c", &per_user]);
    let out = run(&mut c, input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 250, 250, 354, 250, 221],
        "{}",
        text(&out)
    );
    for u in ["alice", "bob", "carol"] {
        assert_eq!(messages(&homes.join(u).join("Maildir")).len(), 1, "{u}");
    }
    assert!(
        !d.path().join("Maildir").exists(),
        "mail in the daemon's own mailbox"
    );
}

/// The README's standalone MX, as written there but for loopback, a spare port, temporary
/// paths and our mdeliver: mail for a user with a directory in the base arrives in that
/// user's Maildir.
#[test]
fn the_readme_mx_example_runs() {
    let d = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = mreceive::make_certs(d.path());
    let base = d.path().join("var-mail");
    std::fs::create_dir_all(base.join("alice")).unwrap();
    let port = common::free_port();
    let mut c = tool(bin!("mreceive"), d.path());
    c.args([
        "-l",
        &format!("127.0.0.1:{port}"),
        "-d",
        "example.org",
        "-u",
    ])
    .arg(&base)
    .arg("-m")
    .arg(&base)
    .arg("--tls-cert")
    .arg(&cert)
    .arg("--tls-key")
    .arg(&key)
    .arg("-c")
    .arg(bin!("mdeliver"))
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let up = common::wait_until(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut client = up
        .then(|| mreceive::Client::new(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()));
    if let Some(s) = client.as_mut() {
        s.reply();
        for (cmd, want) in [
            ("EHLO c.test\r\n", "250 "),
            ("MAIL FROM:<a@remote.test>\r\n", "250 "),
            ("RCPT TO:<alice@example.org>\r\n", "250 "),
            ("RCPT TO:<nobody@example.org>\r\n", "550 "),
            ("DATA\r\n", "354 "),
            ("Subject: readme\r\n\r\nhi\r\n.\r\n", "250 "),
            ("QUIT\r\n", "221 "),
        ] {
            let r = s.cmd(cmd);
            assert!(r.lines().last().unwrap_or("").starts_with(want), "{cmd}{r}");
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = common::wait_output(child, std::time::Duration::from_secs(20));
    assert!(up, "mreceive did not listen: {}", stderr(&out));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let m = only_message(&base.join("alice/Maildir"));
    assert!(m.ends_with(b"Subject: readme\n\nhi\n"));
}

/// Without a Maildir base, and with a delivery command that cannot tell recipients apart,
/// every user's mail would go into one mailbox: mreceive refuses to start (78) and says why.
#[test]
fn one_mailbox_for_everyone_is_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    let md = bin!("mdeliver");
    let md = md.to_str().unwrap();
    let users = d.path().to_str().unwrap();
    let session = b"EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.org>\r\n\
                    DATA\r\nx\r\n.\r\nQUIT\r\n";
    for (args, what) in [
        (&["-d", "example.org"][..], "no --maildir-base"),
        (
            &["-d", "example.org", "-u", users, "-c", md][..],
            "--deliver-command without --maildir-base",
        ),
        (
            &["-l", "127.0.0.1:0", "-d", "example.org", "-c", md][..],
            "--deliver-command without --maildir-base",
        ),
    ] {
        let out = run(tool(bin!("mreceive"), d.path()).args(args), session);
        assert_eq!(code(&out), 78, "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).starts_with(&format!(
                "mreceive: {what}: every user's mail would go into one mailbox: give \
                 --maildir-base DIR"
            )),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!d.path().join("Maildir").exists());
    // A placeholder with a typo would reach the command as it is.
    let typo = format!("{md} /srv/${{usr}}/Maildir");
    let out = run(
        tool(bin!("mreceive"), d.path()).args(["-d", "example.org", "-c", &typo]),
        session,
    );
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("mreceive: --deliver-command: unknown ${usr}"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_and_hash_password() {
    let d = tempfile::tempdir().unwrap();
    let out = run(&mut tool(bin!("mreceive"), d.path()), b"");
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("mreceive: no --domain: "));
    let out = run(
        tool(bin!("mreceive"), d.path()).args(["-d", "x.test", "--passwords", "/dev/null"]),
        b"",
    );
    assert_eq!(code(&out), 64);
    let out = run(
        tool(bin!("mreceive"), d.path()).arg("--hash-password"),
        b"secret\n",
    );
    assert_eq!(code(&out), 0);
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$6$") && hash.ends_with('\n'));
    assert!(mailpipe::passwd::check("secret", hash.trim()));
}

/// As inetd runs it: the connection is stdin, stdout and stderr. The client's address comes
/// from the socket (getpeername), and a log line (here: a failed TLS handshake) must not be
/// written into the SMTP dialogue: it goes to syslog, the one place left.
#[test]
fn inetd_style_socket_on_all_three_descriptors() {
    use std::io::{Read, Write};
    let d = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = mreceive::make_certs(d.path());
    let syslog_path = d.path().join("log");
    let syslog = std::os::unix::net::UnixDatagram::bind(&syslog_path).unwrap();
    syslog
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (sock, _) = l.accept().unwrap();
    let mut c = tool(bin!("mreceive"), d.path());
    c.args(["-d", "local.test", "--timeout", "5", "-m"])
        .arg(d.path().join("mail"))
        .arg("--syslog-socket")
        .arg(&syslog_path)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdin(std::os::fd::OwnedFd::from(sock.try_clone().unwrap()))
        .stdout(std::os::fd::OwnedFd::from(sock.try_clone().unwrap()))
        .stderr(std::os::fd::OwnedFd::from(sock));
    let child = c.spawn().unwrap();
    drop(c); // it holds our copies of the server side of the socket
    client
        .write_all(format!("{HEAD}x\r\n.\r\nSTARTTLS\r\n").as_bytes())
        .unwrap();
    // Wait for the 220 to STARTTLS, then send something that is not TLS.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("220 2.0.0") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    client
        .write_all(b"this is not a TLS client hello\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    let out = common::wait_output(child, std::time::Duration::from_secs(20));
    assert!(
        !String::from_utf8_lossy(&rest).contains("mreceive"),
        "a diagnostic went to the client: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(code(&out), 0);
    let mut logged = String::new();
    let mut buf = vec![0u8; 8192];
    while !logged.contains(" disconnect ") {
        let n = syslog.recv(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        logged += &format!("mreceive{}\n", &line[line.find('[').unwrap()..]);
    }
    let log = parse_log(&logged, "mreceive");
    let tls = log.iter().find(|l| l.kind == "tls").expect(&logged);
    assert_eq!(tls.get("status"), Some("failed"), "{logged}");
    assert_eq!(tls.get("client"), Some("127.0.0.1"));
    assert!(!tls.get("reason").unwrap_or("").is_empty());
    assert!(
        log.last().unwrap().has("disconnect", "end", "tls"),
        "{logged}"
    );
    let m = String::from_utf8(only_message(&mailbox(d.path(), "bob"))).unwrap();
    assert!(m.contains("Received: from c.test ([127.0.0.1])"), "{m}");
}

fn bdat(chunk: &str, last: bool) -> String {
    let last = if last { " LAST" } else { "" };
    format!("BDAT {}{last}\r\n{chunk}", chunk.len())
}

/// CHUNKING (RFC 3030): counted chunks, pipelined, no dot-stuffing and no end line, lines
/// joined across chunks, the same line rules as DATA.
#[test]
fn bdat_chunks() {
    let d = tempfile::tempdir().unwrap();
    let input = format!(
        "EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<bob@local.test>\r\n{}{}{}QUIT\r\n",
        bdat("Subject: chunked\r", false),
        bdat("\n\r\n.\r\n.not stuffed\r\nMAIL FROM:<x@y>\r\n", false),
        bdat("no line end", true),
    );
    let out = mx(d.path(), &[], input.as_bytes());
    assert!(text(&out).contains(" CHUNKING\r\n"));
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 250, 250, 250, 221],
        "{}",
        text(&out)
    );
    let m = String::from_utf8(only_message(&mailbox(d.path(), "bob"))).unwrap();
    assert!(
        m.ends_with("Subject: chunked\n\n.\n.not stuffed\nMAIL FROM:<x@y>\nno line end\n"),
        "{m}"
    );
    // A bare LF refuses the message at LAST; the octets never become commands.
    let d = tempfile::tempdir().unwrap();
    let input = format!(
        "EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<bob@local.test>\r\n{}NOOP\r\n",
        bdat("x\n.\nRSET\r\n", true),
    );
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 550, 250],
        "{}",
        text(&out)
    );
    assert!(messages(&mailbox(d.path(), "bob")).is_empty());
    // Too big: the first chunk fails the transaction; later chunks are read and refused.
    let big = "y".repeat(998) + "\r\n";
    let input = format!(
        "EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<bob@local.test>\r\n{}{}DATA\r\nNOOP\r\n",
        bdat(&big.repeat(2), false),
        bdat(&big, true),
    );
    let out = mx(d.path(), &["--max-size", "1k"], input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 250, 250, 552, 503, 503, 250],
        "{}",
        text(&out)
    );
    assert!(messages(&mailbox(d.path(), "bob")).is_empty());
}

/// The log lines on stderr (a delivery command's own stderr is passed on there too).
fn log_of(out: &Output) -> Vec<LogLine> {
    let text: String = stderr(out)
        .lines()
        .filter(|l| l.starts_with("mreceive["))
        .map(|l| format!("{l}\n"))
        .collect();
    parse_log(&text, "mreceive")
}

/// Issue 8 item 7: an accepted message is logged, one line for the message and one per
/// recipient, all with the session's id; the message's id is the one in its Received: header.
#[test]
fn an_accepted_message_is_logged_per_recipient() {
    let d = tempfile::tempdir().unwrap();
    let input = "EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@local.test>\r\n\
                 RCPT TO:<carol+x@local.test>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n";
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(codes(&out).last(), Some(&221), "{}", text(&out));
    let log = log_of(&out);
    let kinds: Vec<&str> = log.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["connect", "message", "delivery", "delivery", "disconnect"],
        "{}",
        stderr(&out)
    );
    assert!(log.iter().all(|l| l.session == log[0].session));
    let m = &log[1];
    assert!(m.has("message", "status", "accepted"), "{m:?}");
    assert_eq!(m.get("helo"), Some("client.test"));
    assert_eq!(m.get("from"), Some("<a@remote.test>"));
    assert_eq!(m.get("nrcpt"), Some("2"));
    assert_eq!(m.get("dsn"), Some("2.0.0"));
    let id = m.get("id").unwrap();
    let bob = String::from_utf8(only_message(&mailbox(d.path(), "bob"))).unwrap();
    assert!(
        bob.contains(&format!(" with ESMTP id {id};\n")),
        "{id}: {bob}"
    );
    for (line, to, user) in [
        (&log[2], "<bob@local.test>", "bob"),
        (&log[3], "<carol+x@local.test>", "carol"),
    ] {
        assert!(line.has("delivery", "status", "sent"), "{line:?}");
        assert_eq!(line.get("id"), Some(id));
        assert_eq!(line.get("to"), Some(to));
        assert_eq!(line.get("user"), Some(user));
        assert_eq!(line.get("dsn"), Some("2.0.0"));
        assert_eq!(line.get("reason"), None);
    }
    assert!(log[4].has("disconnect", "end", "quit"), "{:?}", log[4]);
    assert_eq!(log[4].get("accepted"), Some("1"));
}

/// A failed delivery always names its reason: the command's exit status and the last line
/// it wrote on stderr; the built-in Maildir's I/O error.
#[test]
fn a_failed_delivery_is_logged_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("deliver.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat >/dev/null\ncase \"$USER\" in\n\
         temp) echo 'warming up' >&2; echo \"deliver: $MAILDIR: quota exceeded\" >&2; exit 75;;\n\
         perm) exit 67;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let input = "EHLO c\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<ok@local.test>\r\n\
                 RCPT TO:<temp@local.test>\r\nRCPT TO:<perm@local.test>\r\n\
                 DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let out = mx(
        d.path(),
        &["-c", script.to_str().unwrap()],
        input.as_bytes(),
    );
    assert_eq!(codes(&out)[6..], [354, 451, 221], "{}", text(&out));
    // The command's stderr is passed on whole; its last line is the reason.
    assert!(stderr(&out).contains("\nwarming up\n"), "{}", stderr(&out));
    let log = log_of(&out);
    let message = log.iter().find(|l| l.kind == "message").unwrap();
    assert_eq!(message.get("status"), Some("deferred"), "{message:?}");
    assert!(message.get("reply").unwrap().starts_with("451 4.3.0 "));
    let rcpt = |user: &str| {
        log.iter()
            .find(|l| l.has("delivery", "user", user))
            .unwrap_or_else(|| panic!("no line for {user}: {}", stderr(&out)))
    };
    assert_eq!(rcpt("ok").get("status"), Some("sent"));
    let temp = rcpt("temp");
    assert_eq!(temp.get("status"), Some("deferred"));
    assert_eq!(temp.get("dsn"), Some("4.3.0"));
    assert_eq!(
        temp.get("reason").unwrap(),
        format!(
            "deliver via {}: exited with status 75: deliver: {}/mail/temp/Maildir: quota exceeded",
            script.display(),
            d.path().display()
        )
    );
    let perm = rcpt("perm");
    assert_eq!(perm.get("status"), Some("bounced"));
    assert_eq!(perm.get("dsn"), Some("5.3.0"));
    assert!(
        perm.get("reason")
            .unwrap()
            .ends_with(": exited with status 67"),
        "{perm:?}"
    );
    // Built in: a Maildir that cannot be made says why.
    std::fs::create_dir_all(d.path().join("mail")).unwrap();
    std::fs::write(d.path().join("mail/bob"), "not a directory").unwrap();
    let out = mx(d.path(), &[], format!("{HEAD}x\r\n.\r\n").as_bytes());
    assert_eq!(codes(&out).last(), Some(&451), "{}", text(&out));
    let log = log_of(&out);
    let bob = log.iter().find(|l| l.kind == "delivery").unwrap();
    assert_eq!(bob.get("status"), Some("deferred"), "{bob:?}");
    let reason = bob.get("reason").unwrap();
    assert!(
        reason.contains("mail/bob/Maildir: ") && !reason.ends_with(": "),
        "{reason}"
    );
}

/// Refusals an operator may want to see are logged like Postfix's `reject:` lines: a
/// recipient refused (relay, unknown user), a failed AUTH with the user tried, a message
/// refused for its content.
#[test]
fn refusals_are_logged() {
    let d = tempfile::tempdir().unwrap();
    let pw = d.path().join("passwd");
    std::fs::write(
        &pw,
        format!("alice:{}\n", mailpipe::passwd::hash("secret").unwrap()),
    )
    .unwrap();
    let plain = |user: &str, password: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
    };
    let input = format!(
        "EHLO c.test\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<x@elsewhere.test>\r\n\
         RCPT TO:<bob@local.test>\r\nDATA\r\nbare\nline feed\r\n.\r\nQUIT\r\n",
        plain("mallory", "guess")
    );
    let mut c = tool(bin!("mreceive"), d.path());
    c.args(["-d", "local.test", "--hostname", "mx.local.test", "-m"])
        .arg(d.path().join("mail"))
        .args(["--insecure-auth", "--auth-failure-delay", "0", "-p"])
        .arg(&pw);
    let out = run(&mut c, input.as_bytes());
    assert_eq!(
        codes(&out),
        [220, 250, 535, 250, 550, 250, 354, 550, 221],
        "{}",
        text(&out)
    );
    let log = log_of(&out);
    let auth = log.iter().find(|l| l.has("reject", "cmd", "AUTH")).unwrap();
    assert_eq!(auth.get("user"), Some("mallory"));
    assert_eq!(auth.get("dsn"), Some("5.7.8"));
    let rcpt = log.iter().find(|l| l.has("reject", "cmd", "RCPT")).unwrap();
    assert_eq!(rcpt.get("client"), Some("unknown"));
    assert_eq!(rcpt.get("helo"), Some("c.test"));
    assert_eq!(rcpt.get("from"), Some("<a@r.test>"));
    assert_eq!(rcpt.get("to"), Some("<x@elsewhere.test>"));
    assert_eq!(rcpt.get("dsn"), Some("5.7.1"));
    assert_eq!(rcpt.get("reply"), Some("550 5.7.1 relay access denied"));
    let message = log.iter().find(|l| l.kind == "message").unwrap();
    assert_eq!(message.get("status"), Some("rejected"), "{message:?}");
    assert_eq!(message.get("dsn"), Some("5.6.11"));
    assert!(!log.iter().any(|l| l.kind == "delivery"));
    let end = log.last().unwrap();
    assert_eq!(end.get("errors"), Some("1"), "{end:?}");
}

/// A HELO name, an address or an AUTH user is the client's text: whatever it holds, it stays
/// one value of one key on one line.
#[test]
fn client_text_cannot_forge_log_lines_or_keys() {
    let d = tempfile::tempdir().unwrap();
    let forged = "status=sent to=<bob@local.test> \u{b}mreceive[1]: X: delivery \
                  status=sent\u{2028}\u{85}x";
    let from = "\"a status=sent\\\" b\"@r.test";
    let input = format!(
        "EHLO {forged}\r\nMAIL FROM:<{from}> SMTPUTF8\r\nRCPT TO:<bob@local.test>\r\n\
         RCPT TO:<nobody=x@elsewhere.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
    );
    let out = mx(d.path(), &[], input.as_bytes());
    assert_eq!(codes(&out).last(), Some(&221), "{}", text(&out));
    // Exactly the lines of the session, each parsed whole, with the client's text as values.
    let log = log_of(&out);
    let kinds: Vec<&str> = log.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["connect", "reject", "message", "delivery", "disconnect"],
        "{}",
        stderr(&out)
    );
    for l in &log[1..] {
        assert_eq!(
            l.get("helo"),
            if l.kind == "delivery" {
                None
            } else {
                Some(forged)
            }
        );
    }
    assert_eq!(log[1].get("to"), Some("<nobody=x@elsewhere.test>"));
    assert_eq!(log[2].get("from"), Some(&*format!("<{from}>")));
    assert_eq!(log[2].get("status"), Some("accepted"));
    assert_eq!(log[3].get("to"), Some("<bob@local.test>"));
    // No byte a terminal or a log viewer takes for a line end or an escape.
    let raw = stderr(&out);
    assert!(
        !raw.contains(['\r', '\u{b}', '\u{2028}', '\u{85}']),
        "{raw:?}"
    );
    assert_eq!(raw.lines().count(), 5, "{raw}");
}

/// `--syslog-socket`: the lines go to syslog (facility mail, RFC 3164 as glibc writes it)
/// and not to stderr, here over a datagram socket the test binds (no /dev/log needed).
#[test]
fn syslog_over_a_socket() {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("log");
    let syslog = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    syslog
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let out = mx(
        d.path(),
        &["--syslog-socket", sock.to_str().unwrap()],
        format!("{HEAD}x\r\n.\r\nQUIT\r\n").as_bytes(),
    );
    assert_eq!(codes(&out).last(), Some(&221), "{}", text(&out));
    assert_eq!(stderr(&out), "", "log lines on stderr too");
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    while lines.len() < 4 {
        let n = syslog.recv(&mut buf).unwrap();
        lines.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    let pri = |l: &str| l[..l.find('>').unwrap() + 1].to_string();
    // <mail.info>, the time as "Mmm dd hh:mm:ss", then what stderr would have shown.
    let stamp =
        regex::Regex::new(r"^<22>[A-Z][a-z]{2} [ 1-3][0-9] \d\d:\d\d:\d\d mreceive\[").unwrap();
    for l in &lines {
        assert!(stamp.is_match(l), "{l}");
        assert_eq!(pri(l), "<22>");
    }
    let text: String = lines
        .iter()
        .map(|l| format!("mreceive{}\n", &l[l.find('[').unwrap()..]))
        .collect();
    let log = parse_log(&text, "mreceive");
    assert!(log[2].has("delivery", "status", "sent"), "{text}");
    assert!(log[3].has("disconnect", "end", "quit"), "{text}");
}
