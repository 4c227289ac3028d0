//! mreceive --listen: IPv4 and IPv6, the session bound, SIGTERM finishing sessions in flight
//! (and 421 to idle ones), STARTTLS with pipelined injection discarded (CVE-2011-0411),
//! implicit TLS, AUTH only after TLS, and authenticated mail going to the outgoing queue.
//! Loopback only.

use crate::common;
use crate::common::mreceive;

use common::{free_port, messages, wait_until};
use mreceive::{Client, Server, tls_client};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn send_mail<S: Read + Write>(c: &mut Client<S>, from: &str, to: &str) -> String {
    assert!(c.cmd(&format!("MAIL FROM:<{from}>\r\n")).starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{to}>\r\n"));
    if !r.starts_with("250") {
        assert!(c.cmd("RSET\r\n").starts_with("250"));
        return r;
    }
    assert!(c.cmd("DATA\r\n").starts_with("354"));
    c.cmd("Subject: t\r\n\r\nhello\r\n.\r\n")
}

#[test]
fn starttls_discards_injected_commands_and_auth_needs_tls() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    assert!(c.reply().starts_with("220 mx.local.test"));
    let ehlo = c.cmd("EHLO c.test\r\n");
    assert!(
        ehlo.contains("250-STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(
        c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
            .starts_with("538 5.7.11")
    );
    // The injection: a command pipelined after STARTTLS in the clear.
    c.send("STARTTLS\r\nRSET\r\n");
    let go = c.reply();
    assert!(go.starts_with("220 2.0.0"), "{go}");
    let tcp = c.into_inner();
    // The RSET is still in flight or in mreceive's buffer: either way it must be dropped,
    // not answered inside TLS. (If it was answered, the next reply would be its 250.)
    let mut t = tls_client(&s.ca, tcp);
    let ehlo = t.cmd("EHLO c.test\r\n");
    assert!(
        ehlo.starts_with("250-mx.local.test"),
        "injected reply: {ehlo}"
    );
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    // A failed AUTH is answered only after --auth-failure-delay (1 s by default).
    let asked = std::time::Instant::now();
    assert!(
        t.cmd("AUTH PLAIN AGFsaWNlAHdyb25n\r\n")
            .starts_with("535 5.7.8")
    );
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
    // LOGIN, step by step.
    assert!(t.cmd("AUTH LOGIN\r\n").starts_with("334 VXNlcm5hbWU6"));
    assert!(t.cmd("YWxpY2U=\r\n").starts_with("334 UGFzc3dvcmQ6"));
    assert!(t.cmd("c2VjcmV0\r\n").starts_with("235 2.7.0"));
    // Authenticated: a remote recipient is queued, not refused.
    let r = send_mail(&mut t, "alice@local.test", "friend@remote.test");
    assert!(r.starts_with("250 2.0.0 ok, queued"), "{r}");
    let queued = messages(&s.dir.path().join("queue"));
    assert_eq!(queued.len(), 1);
    let q = std::fs::read_to_string(&queued[0]).unwrap();
    assert!(q.contains("friend@remote.test"), "{q}");
    assert!(q.contains("with ESMTPSA"), "{q}");
    // By default for mrelay (--route mx), not an account of msubmit's.
    assert!(q.contains("\nroute mx\n"), "{q}");
    // Our own domains are delivered here even for authenticated clients, and judged as for
    // anyone; the other recipients of the same message share one queue entry.
    assert!(t.cmd("MAIL FROM:<alice@local.test>\r\n").starts_with("250"));
    assert!(t.cmd("RCPT TO:<bob@local.test>\r\n").starts_with("250"));
    assert!(
        t.cmd("RCPT TO:<x%y@local.test>\r\n")
            .starts_with("550 5.7.1")
    );
    assert!(t.cmd("RCPT TO:<a@far.test>\r\n").starts_with("250"));
    assert!(t.cmd("RCPT TO:<b@far.test>\r\n").starts_with("250"));
    assert!(t.cmd("DATA\r\n").starts_with("354"));
    let r = t.cmd("Subject: both\r\n\r\nhi\r\n.\r\n");
    assert!(r.starts_with("250 2.0.0 ok, delivered and queued"), "{r}");
    assert_eq!(messages(&s.maildir("bob")).len(), 1);
    let queued = messages(&s.dir.path().join("queue"));
    assert_eq!(queued.len(), 2);
    let both: String = queued
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(both.contains("a@far.test") && both.contains("b@far.test"));
    assert!(!both.contains("rcpt bob@local.test") && !both.contains("<bob@local.test>"));
    assert!(t.cmd("QUIT\r\n").starts_with("221"));
}

#[test]
fn unauthenticated_relay_is_refused_and_submission_requires_auth() {
    let s = Server::start(&["--submission"]);
    let mut c = s.connect();
    c.reply();
    c.cmd("EHLO c.test\r\n");
    assert!(c.cmd("MAIL FROM:<a@r.test>\r\n").starts_with("530 5.7.0"));
    let mut s2 = Server::start(&[]);
    let mut c = s2.connect();
    c.reply();
    c.cmd("EHLO c.test\r\n");
    let r = send_mail(&mut c, "a@r.test", "x@remote.test");
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(send_mail(&mut c, "a@r.test", "bob@local.test").starts_with("250"));
    assert_eq!(messages(&s2.maildir("bob")).len(), 1);
    drop(c);
    assert!(s2.stop().success());
}

#[test]
fn implicit_tls() {
    let s = Server::start(&["--tls-on-connect"]);
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let mut t = tls_client(&s.ca, tcp);
    assert!(t.reply().starts_with("220 mx.local.test"));
    let ehlo = t.cmd("EHLO c.test\r\n");
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"));
    assert!(send_mail(&mut t, "a@r.test", "bob@local.test").starts_with("250"));
    let m = std::fs::read_to_string(&messages(&s.maildir("bob"))[0]).unwrap();
    assert!(m.contains("with ESMTPS") && m.contains("(using TLS"), "{m}");
}

#[test]
fn ipv6_session_limit_and_sigterm_finishes_sessions_in_flight() {
    let p6 = free_port();
    let mut s = Server::start(&["-l", &format!("[::1]:{p6}"), "--max-sessions", "2"]);
    // Let the session of the start-up probe end: it counts until then.
    std::thread::sleep(Duration::from_millis(500));
    let mut v6 = Client::new(TcpStream::connect(("::1", p6)).unwrap());
    assert!(v6.reply().starts_with("220"));
    let mut v4 = s.connect();
    let greeting = v4.reply();
    assert!(greeting.starts_with("220"), "{greeting:?}");
    // Two sessions are open: the third is turned away.
    let mut third = s.connect();
    assert!(third.reply().starts_with("421 4.3.2"));
    v6.cmd("EHLO c6\r\n");
    assert!(send_mail(&mut v6, "a@r.test", "bob@local.test").starts_with("250"));
    let m = std::fs::read_to_string(&messages(&s.maildir("bob"))[0]).unwrap();
    assert!(m.contains("[IPv6:::1]"), "{m}");
    // Mid-transaction, SIGTERM: no new connections, but this session completes.
    v4.cmd("EHLO c4\r\n");
    assert!(v4.cmd("MAIL FROM:<a@r.test>\r\n").starts_with("250"));
    let child = s.child.take().unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(wait_until(Duration::from_secs(5), || TcpStream::connect((
        "127.0.0.1",
        s.port
    ))
    .is_err()));
    assert!(v4.cmd("RCPT TO:<carol@local.test>\r\n").starts_with("250"));
    assert!(v4.cmd("DATA\r\n").starts_with("354"));
    assert!(v4.cmd("x\r\n.\r\n").starts_with("250"));
    // Between transactions now: QUIT gets 221, or 421 when the shutdown came first.
    let bye = v4.cmd("QUIT\r\n");
    assert!(
        bye.starts_with("221") || bye.starts_with("421 4.3.2"),
        "{bye}"
    );
    // The idle session was told, unasked, that the server is going down.
    let bye = v6.reply();
    assert!(bye.starts_with("421 4.3.2"), "{bye}");
    let out = common::wait_output(child, Duration::from_secs(20));
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(messages(&s.maildir("carol")).len(), 1);
}

#[test]
fn sigterm_refuses_the_next_transaction_even_when_pipelined() {
    let mut s = Server::start(&[]);
    let mut c = s.connect();
    assert!(c.reply().starts_with("220"));
    c.cmd("EHLO c\r\n");
    assert!(c.cmd("MAIL FROM:<a@r.test>\r\n").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@local.test>\r\n").starts_with("250"));
    assert!(c.cmd("DATA\r\n").starts_with("354"));
    let child = s.child.take().unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(wait_until(Duration::from_secs(5), || TcpStream::connect((
        "127.0.0.1",
        s.port
    ))
    .is_err()));
    // The transaction in flight completes; the next one, in the same packet, gets 421, so a
    // busy client cannot keep a stopping server alive.
    assert!(
        c.cmd("x\r\n.\r\nMAIL FROM:<a@r.test>\r\n")
            .starts_with("250")
    );
    let next = c.reply();
    assert!(next.starts_with("421 4.3.2"), "{next}");
    let out = common::wait_output(child, Duration::from_secs(20));
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(messages(&s.maildir("bob")).len(), 1);
}

#[test]
fn sighup_stops_gracefully_too() {
    // No configuration to reload, and a hang-up must not cut a transaction in half.
    let mut s = Server::start(&[]);
    let mut c = s.connect();
    assert!(c.reply().starts_with("220"));
    c.cmd("EHLO c\r\n");
    assert!(c.cmd("MAIL FROM:<a@r.test>\r\n").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@local.test>\r\n").starts_with("250"));
    let child = s.child.take().unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert!(c.cmd("DATA\r\n").starts_with("354"));
    assert!(c.cmd("hup\r\n.\r\n").starts_with("250"));
    let out = common::wait_output(child, Duration::from_secs(20));
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(messages(&s.maildir("bob")).len(), 1);
}

#[test]
fn listen_takes_a_host_name() {
    // `-l localhost:PORT` was refused as not an address; it listens on localhost's
    // addresses (127.0.0.1 at least, ::1 too where /etc/hosts says so).
    let p = free_port();
    let s = Server::start(&["-l", &format!("localhost:{p}")]);
    let mut c = mreceive::Client::new(TcpStream::connect(("127.0.0.1", p)).unwrap());
    assert!(c.reply().starts_with("220 mx.local.test"));
    c.cmd("EHLO c.test\r\n");
    assert!(send_mail(&mut c, "a@r.test", "bob@local.test").starts_with("250"));
    assert_eq!(messages(&s.maildir("bob")).len(), 1);
}

/// Log in as alice over TLS on a server started with `extra`; the replies to MAIL FROM each
/// of `froms` (each transaction reset after).
fn mail_from_as_alice(extra: &[&str], froms: &[&str]) -> Vec<String> {
    let s = Server::start(extra);
    let mut c = s.connect();
    c.reply();
    c.cmd("EHLO c.test\r\n");
    assert!(c.cmd("STARTTLS\r\n").starts_with("220"));
    let mut t = tls_client(&s.ca, c.into_inner());
    t.cmd("EHLO c.test\r\n");
    assert!(
        t.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
            .starts_with("235")
    );
    froms
        .iter()
        .map(|f| {
            let r = t.cmd(&format!("MAIL FROM:<{f}>\r\n"));
            assert!(t.cmd("RSET\r\n").starts_with("250"));
            r
        })
        .collect()
}

#[test]
fn an_authenticated_user_may_not_send_as_another() {
    // Postfix's reject_sender_login_mismatch: alice's own address (and its +extensions) and
    // the null sender, nothing else unless a map or trust says so.
    let r = mail_from_as_alice(
        &[],
        &[
            "alice@local.test",
            "alice+x@LOCAL.test",
            "",
            "bob@local.test",
            "alice@r.test",
        ],
    );
    assert!(r[..3].iter().all(|r| r.starts_with("250")), "{r:?}");
    for refused in &r[3..] {
        assert!(refused.starts_with("553 5.7.1 "), "{r:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("senders");
    std::fs::write(&map, "sales@local.test alice,bob\n@r.test alice\n").unwrap();
    let map = map.to_str().unwrap();
    let r = mail_from_as_alice(
        &["--sender-login-map", map],
        &["sales@local.test", "any@r.test", "bob@local.test"],
    );
    assert!(r[0].starts_with("250") && r[1].starts_with("250"), "{r:?}");
    assert!(r[2].starts_with("553 5.7.1 "), "{r:?}");
    // A trusted relay account may give any sender.
    let r = mail_from_as_alice(
        &["--trusted-sender-login", "alice"],
        &["bob@local.test", "x@elsewhere.test"],
    );
    assert!(r.iter().all(|r| r.starts_with("250")), "{r:?}");
}

#[test]
fn an_authenticated_user_may_not_write_as_another() {
    // The From: check at the end of data: 550 5.7.1 for an author the login does not own,
    // whatever MAIL FROM said; a trusted login writes as anyone.
    for (extra, from, want) in [
        (&[][..], "Alice <alice@local.test>", "250"),
        (
            &[][..],
            "\"alice@local.test\" <bob@local.test>",
            "550 5.7.1 ",
        ),
        (&[][..], "alice@local.test, bob@local.test", "550 5.7.1 "),
        (
            &["--trusted-sender-login", "alice"][..],
            "bob@local.test",
            "250",
        ),
    ] {
        let s = Server::start(extra);
        let mut c = s.connect();
        c.reply();
        c.cmd("EHLO c.test\r\n");
        assert!(c.cmd("STARTTLS\r\n").starts_with("220"));
        let mut t = tls_client(&s.ca, c.into_inner());
        t.cmd("EHLO c.test\r\n");
        assert!(
            t.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
                .starts_with("235")
        );
        assert!(t.cmd("MAIL FROM:<alice@local.test>\r\n").starts_with("250"));
        assert!(t.cmd("RCPT TO:<bob@local.test>\r\n").starts_with("250"));
        assert!(t.cmd("DATA\r\n").starts_with("354"));
        let end = t.cmd(&format!("From: {from}\r\nSubject: t\r\n\r\nhi\r\n.\r\n"));
        assert!(end.starts_with(want), "{from}: {end}");
        let stored = messages(&s.maildir("bob")).len();
        assert_eq!(stored, usize::from(want == "250"), "{from}");
    }
}
