//! msubmit -bs (SMTP on standard input, as Alpine speaks it) through the real binary: a
//! scripted session on stdin, the scripted fake server of `common/smtp.rs` upstream on
//! loopback. What arrives upstream, one connection for several messages, the upstream's
//! verdict passed on (550, 451), the queue, and a smuggling attempt from the client; and a
//! round trip into a Maildir through a real `mreceive --listen`.

use crate::common;
use crate::common::mreceive;
use crate::common::smtp;

use common::*;
use smtp::*;
use std::path::Path;
use std::process::{Command, Output};

/// msubmit -bs aimed at 127.0.0.1:port in clear text.
fn bs(home: &Path, port: u16) -> Command {
    let mut c = tool(bin!("msubmit"), home);
    c.args(["-bs", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--tls", "none", "--timeout", "5"]);
    c
}

/// The final line of each reply on stdout (`250 2.0.0 sent: ...`), in order.
fn replies(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .map(str::to_string)
        .collect()
}

/// Assert the reply codes, and return the replies.
fn expect(out: &Output, codes: &[&str]) -> Vec<String> {
    let got = replies(out);
    let got_codes: Vec<&str> = got.iter().map(|l| &l[..3]).collect();
    assert_eq!(got_codes, codes, "{got:#?}\nstderr: {}", stderr(out));
    got
}

/// One transaction from a@a.test to `rcpts` with `content` (already CRLF and dot-stuffed,
/// without the final dot line).
fn transaction(rcpts: &[&str], content: &str) -> String {
    let mut s = "MAIL FROM:<a@a.test>\r\n".to_string();
    for r in rcpts {
        s += &format!("RCPT TO:<{r}>\r\n");
    }
    s + "DATA\r\n" + content + ".\r\n"
}

/// The message as the upstream got it (dot-stuffed, CRLF), without the Received: field
/// msubmit adds first; asserts that field is there.
fn after_received(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data).into_owned();
    assert!(
        text.starts_with("Received: from client.test\r\n\tby "),
        "{text}"
    );
    let mut rest = &text[..];
    while let Some(i) = rest.find("\r\n") {
        rest = &rest[i + 2..];
        if !rest.starts_with('\t') {
            break;
        }
    }
    rest.to_string()
}

const FULL: &str = "From: A <a@a.test>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\
    Message-ID: <m1@a.test>\r\nSubject: dots\r\n\r\nfirst\r\n..\r\n...two\r\n..x\r\nlast\r\n";

#[test]
fn a_session_sends_the_message_byte_identical_after_our_received_field() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let session =
        "EHLO client.test\r\n".to_string() + &transaction(&["b@b.test"], FULL) + "QUIT\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(&out, &["220", "250", "250", "250", "354", "250", "221"]);
    assert!(r[5].starts_with("250 2.0.0 sent: queued"), "{r:?}");
    let got = fake.accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    // The lone dot (sent as ".." by our client) went out stuffed again, all of it byte for
    // byte as the client sent it: a complete header needs nothing added.
    assert_eq!(after_received(&got[0]), FULL);
    assert!(String::from_utf8_lossy(&got[0]).contains("(mailpipe msubmit, from user "));
}

#[test]
fn two_messages_go_over_one_connection_with_the_header_fixed() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let session = "EHLO client.test\r\n".to_string()
        + &transaction(
            &["b@b.test", "hidden@c.test"],
            "Subject: one\r\nBcc: hidden@c.test\r\n\r\nbody one\r\n",
        )
        + &transaction(&["c@c.test"], FULL)
        + "QUIT\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    expect(
        &out,
        &[
            "220", "250", "250", "250", "250", "354", "250", "250", "250", "354", "250", "221",
        ],
    );
    let log = fake.log_text();
    assert_eq!(log.matches("EHLO ").count(), 1, "{log}");
    assert_eq!(log.matches("MAIL FROM:<a@a.test>").count(), 2, "{log}");
    assert!(log.contains("RCPT TO:<hidden@c.test>"), "{log}");
    let got = fake.accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let first = after_received(&got[0]);
    // As without -bs: Bcc removed; From (the envelope sender), Date, Message-ID added.
    assert!(
        first.starts_with("Subject: one\r\nFrom: a@a.test\r\nDate: "),
        "{first}"
    );
    assert!(!first.contains("hidden"), "{first}");
    assert!(first.contains("\r\nMessage-ID: <"), "{first}");
    assert!(first.ends_with("\r\n\r\nbody one\r\n"), "{first}");
    assert_eq!(after_received(&got[1]), FULL);
}

/// A kept upstream connection that the server closed meanwhile (an idle timeout, its 421)
/// is not used for the next message: a new one is opened, and the client hears 250 twice.
#[test]
fn a_kept_connection_the_server_closed_is_replaced_not_used() {
    let fake = Fake::start(Script {
        close_after: Some(1),
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let session = "EHLO client.test\r\n".to_string()
        + &transaction(&["b@b.test"], FULL)
        + &transaction(&["c@c.test"], FULL)
        + "QUIT\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    expect(
        &out,
        &[
            "220", "250", "250", "250", "354", "250", "250", "250", "354", "250", "221",
        ],
    );
    let log = fake.log_text();
    assert_eq!(log.matches("EHLO ").count(), 2, "a new connection: {log}");
    assert_eq!(fake.accepted.lock().unwrap().len(), 2);
}

#[test]
fn an_upstream_550_for_one_recipient_is_a_550_to_the_client_and_nothing_is_sent() {
    let fake = Fake::start(Script {
        rcpt: vec![("bad@", "550 5.1.1 no such user here\r\n")],
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let session = "HELO client.test\r\n".to_string()
        + &transaction(&["good@b.test", "bad@b.test"], "Subject: x\r\n\r\nx\r\n")
        + "QUIT\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(
        &out,
        &["220", "250", "250", "250", "250", "354", "550", "221"],
    );
    assert!(
        r[6].starts_with("550 5.1.1 RCPT TO:<bad@b.test>: no such user here"),
        "{r:?}"
    );
    // All or nothing, as msubmit without -bs.
    assert!(fake.accepted.lock().unwrap().is_empty());
}

#[test]
fn an_upstream_4xx_is_a_451_to_the_client() {
    let fake = Fake::start(Script {
        rcpt: vec![("busy@", "450 4.2.1 mailbox busy\r\n")],
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let session = "EHLO client.test\r\n".to_string()
        + &transaction(&["busy@b.test"], "Subject: x\r\n\r\nx\r\n")
        + "QUIT\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(&out, &["220", "250", "250", "250", "354", "451", "221"]);
    assert!(r[5].contains("mailbox busy"), "{r:?}");
}

#[test]
fn an_upstream_that_is_down_gives_451_and_with_queue_on_failure_250_and_one_queued() {
    let port = free_port(); // nothing listens there
    let t = tempfile::tempdir().unwrap();
    let session = "EHLO client.test\r\n".to_string()
        + &transaction(&["b@b.test"], "Subject: x\r\n\r\nx\r\n")
        + "QUIT\r\n";
    let queue = t.path().join("queue");
    let out = run(
        bs(t.path(), port).arg("--queue-dir").arg(&queue),
        session.as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(&out, &["220", "250", "250", "250", "354", "451", "221"]);
    assert!(r[5].contains("connect to 127.0.0.1"), "{r:?}");
    assert!(!queue.join("new").exists() || files(&queue.join("new")).is_empty());

    let out = run(
        bs(t.path(), port)
            .args(["--queue-on-failure", "--queue-dir"])
            .arg(&queue),
        session.as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(&out, &["220", "250", "250", "250", "354", "250", "221"]);
    assert!(r[5].starts_with("250 2.0.0 queued as "), "{r:?}");
    assert_eq!(files(&queue.join("new")).len(), 1);
    let listed = run(
        tool(bin!("msubmit"), t.path())
            .arg("--list")
            .arg("--queue-dir")
            .arg(&queue),
        b"",
    );
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("from: <a@a.test>") && listed.contains("to: b@b.test"),
        "{listed}"
    );
}

#[test]
fn a_smuggling_shape_from_the_client_is_refused_and_nothing_runs() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    // `\n.\r\n` ends data for a lax server: the rest would be a second, smuggled message.
    let session = "EHLO client.test\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\nDATA\r\n\
        Subject: x\r\n\r\nx\n.\r\nMAIL FROM:<evil@a.test>\r\nRCPT TO:<victim@b.test>\r\nDATA\r\n\
        smuggled\r\n.\r\nQUIT\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    // The whole text up to the real end of data is one message, refused for the bare LF.
    let r = expect(&out, &["220", "250", "250", "250", "354", "550", "221"]);
    assert!(r[5].starts_with("550 5.6.11"), "{r:?}");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(fake.accepted.lock().unwrap().is_empty());
    assert!(!fake.log_text().contains("evil"), "{}", fake.log_text());
}

#[test]
fn input_ending_inside_a_transaction_exits_75_and_sends_nothing() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let session = "EHLO client.test\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\nDATA\r\nSubject: x\r\n\r\ncut off\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(fake.accepted.lock().unwrap().is_empty());
    // End of input between messages is a normal end, as for sendmail.
    let out = run(
        &mut bs(t.path(), fake.port()),
        b"EHLO client.test\r\nNOOP\r\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn recipients_t_and_f_are_refused_with_bs() {
    let t = tempfile::tempdir().unwrap();
    for extra in [&["b@b.test"][..], &["-t"], &["-f", "a@a.test"]] {
        let out = run(bs(t.path(), 25).args(extra), b"");
        assert_eq!(code(&out), 64, "{extra:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn with_queue_each_message_is_stored_and_nothing_connects() {
    let port = free_port(); // nothing listens there: --queue must not try
    let t = tempfile::tempdir().unwrap();
    let queue = t.path().join("queue");
    let session = "EHLO client.test\r\n".to_string()
        + &transaction(
            &["b@b.test"],
            "Subject: q\r\nBcc: hidden@c.test\r\n\r\nbody\r\n",
        )
        + "QUIT\r\n";
    let out = run(
        bs(t.path(), port).args(["-odq", "--queue-dir"]).arg(&queue),
        session.as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(&out, &["220", "250", "250", "250", "354", "250", "221"]);
    assert!(r[5].starts_with("250 2.0.0 queued as "), "{r:?}");
    let stored = files(&queue.join("new"));
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&std::fs::read(&stored[0]).unwrap()).into_owned();
    assert!(
        text.contains("\nSubject: q\nFrom: a@a.test\nDate: "),
        "{text}"
    );
    assert!(!text.contains("hidden"), "{text}");
}

#[test]
fn overlong_lines_from_the_client_are_refused() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let long = "x".repeat(1200);
    let session = format!("EHLO client.test\r\nNOOP {long}\r\n")
        + &transaction(&["b@b.test"], &format!("Subject: x\r\n\r\n{long}\r\n"))
        + "QUIT\r\n";
    let out = run(&mut bs(t.path(), fake.port()), session.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(
        &out,
        &["220", "250", "500", "250", "250", "354", "554", "221"],
    );
    assert!(r[6].contains("longer than 1000"), "{r:?}");
    assert!(fake.accepted.lock().unwrap().is_empty());
}

#[test]
fn a_round_trip_through_mreceive_arrives_in_the_maildir_as_the_client_meant_it() {
    let server = mreceive::Server::start(&[]);
    let t = tempfile::tempdir().unwrap();
    let session =
        "EHLO client.test\r\n".to_string() + &transaction(&["bob@local.test"], FULL) + "QUIT\r\n";
    let out = run(&mut bs(t.path(), server.port), session.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = expect(&out, &["220", "250", "250", "250", "354", "250", "221"]);
    assert!(r[5].starts_with("250 2.0.0 sent: "), "{r:?}");
    let m = String::from_utf8(only_message(&server.maildir("bob"))).unwrap();
    // Unstuffed twice (by msubmit, then by mreceive), stuffed once in between: the dot lines
    // are what the client's stuffing stood for, with the Maildir's LF line ends.
    let want = "From: A <a@a.test>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\n\
        Message-ID: <m1@a.test>\nSubject: dots\n\nfirst\n.\n..two\n.x\nlast\n";
    assert!(m.ends_with(want), "{m}");
    let msubmit = m
        .find("(mailpipe msubmit, from user ")
        .expect("our Received:");
    let mreceive = m.find("(mailpipe mreceive)").expect("mreceive's Received:");
    assert!(mreceive < msubmit, "{m}");
}
