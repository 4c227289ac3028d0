//! The client against scripted servers in memory: the dialogue it sends, what it makes of
//! the answers, and its refusals (PREAUTH without TLS, injection after STARTTLS, a UID
//! listed or sent twice, a wrong password).

use super::*;
use crate::net::conn::MemIo;
use std::sync::Mutex;

fn session(script: &str, opts: &Options) -> (Result<Client>, Arc<Mutex<Vec<u8>>>) {
    let (io, out) = MemIo::new(script.as_bytes().to_vec());
    (Client::over(Box::new(io), "imap.test", opts), out)
}

fn plain_opts() -> Options {
    let mut o = Options::new(Mode::NONE);
    o.auth = Some(Credentials {
        user: "alice".into(),
        secret: "se\"cret".into(),
        method: None,
    });
    o
}

fn sent(out: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&out.lock().unwrap()).into_owned()
}

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS IDLE] ready\r\n";

#[test]
fn login_select_list_fetch_delete() {
    let script = format!(
        "{GREETING}a1 OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE IDLE] in\r\n\
         * 2 EXISTS\r\n* OK [UIDVALIDITY 77] v\r\n* OK [UIDNEXT 9] n\r\na2 OK [READ-WRITE] sel\r\n\
         * 1 FETCH (UID 5 RFC822.SIZE 4)\r\n* 2 FETCH (RFC822.SIZE 3 UID 8)\r\na3 OK f\r\n\
         * 1 FETCH (UID 5 RFC822.SIZE 4 BODY[] {{4}}\r\nab\r\n)\r\n\
         * 2 FETCH (RFC822.SIZE 3 BODY[] {{3}}\r\nxyz UID 8)\r\na4 OK f\r\n\
         a5 OK stored\r\na6 OK expunged\r\na7 OK bye\r\n"
    );
    let (c, out) = session(&script, &plain_opts());
    let mut c = c.unwrap();
    assert!(
        c.has("MOVE"),
        "capabilities after login: {:?}",
        c.capabilities()
    );
    let mb = c.select("INBOX", false).unwrap();
    assert_eq!(
        mb,
        Mailbox {
            uidvalidity: 77,
            uidnext: Some(9),
            exists: 2
        }
    );
    let listed = c.list().unwrap();
    assert_eq!(
        listed,
        vec![Listed { uid: 5, size: 4 }, Listed { uid: 8, size: 3 }]
    );
    let mut got = Vec::new();
    c.fetch(&[5, 8], &mut |l, r| {
        let mut b = Vec::new();
        r.read_to_end(&mut b).unwrap();
        got.push((l.uid, b));
        Ok(())
    })
    .unwrap();
    // The second body's UID came after it: matched by its sequence number.
    assert_eq!(got, vec![(5, b"ab\r\n".to_vec()), (8, b"xyz".to_vec())]);
    c.delete(&[5, 8]).unwrap();
    c.logout();
    assert_eq!(
        sent(&out),
        "a1 LOGIN \"alice\" \"se\\\"cret\"\r\na2 SELECT \"INBOX\"\r\n\
         a3 UID FETCH 1:* (UID RFC822.SIZE)\r\n\
         a4 UID FETCH 5,8 (UID RFC822.SIZE BODY.PEEK[])\r\n\
         a5 UID STORE 5,8 +FLAGS.SILENT (\\Deleted)\r\na6 UID EXPUNGE 5,8\r\na7 LOGOUT\r\n"
    );
}

#[test]
fn a_wrong_password_is_no_permission() {
    let script = format!("{GREETING}a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    let (c, _) = session(&script, &plain_opts());
    let e = c.err().unwrap();
    assert_eq!(e.code(), Code::NoPerm, "{e}");
    assert!(e.to_string().contains("Authentication failed"), "{e}");
}

#[test]
fn an_eight_bit_password_goes_as_a_literal() {
    let mut o = plain_opts();
    o.auth.as_mut().unwrap().secret = "pässword".into();
    let script = format!("{GREETING}a1 OK in\r\na2 OK caps\r\n");
    let (c, out) = session(&script, &o);
    c.unwrap();
    assert!(
        sent(&out).starts_with("a1 LOGIN \"alice\" {9+}\r\npässword\r\n"),
        "{}",
        sent(&out)
    );
}

#[test]
fn preauth_in_clear_text_is_refused_when_tls_is_required() {
    let (c, out) = session(
        "* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n",
        &Options::new(Mode::STARTTLS),
    );
    let e = c.err().unwrap();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    assert!(e.to_string().contains("PREAUTH"), "{e}");
    assert_eq!(sent(&out), "", "nothing may be sent");
}

#[test]
fn data_injected_after_the_starttls_reply_is_refused() {
    let script =
        "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\na1 OK go\r\n* OK [CAPABILITY X] injected\r\n";
    let (c, out) = session(script, &Options::new(Mode::STARTTLS));
    let e = c.err().unwrap();
    assert_eq!(e.code(), Code::Protocol, "{e}");
    assert!(e.to_string().contains("injection"), "{e}");
    assert_eq!(sent(&out), "a1 STARTTLS\r\n");
}

#[test]
fn no_starttls_offered_is_a_failure_not_clear_text() {
    let (c, out) = session(
        "* OK [CAPABILITY IMAP4rev1] hi\r\n",
        &Options::new(Mode::STARTTLS),
    );
    assert_eq!(c.err().unwrap().code(), Code::Unavailable);
    assert_eq!(sent(&out), "");
}

#[test]
fn a_uid_listed_twice_or_zero_is_an_error() {
    for bad in [
        "* 1 FETCH (UID 5 RFC822.SIZE 4)\r\n* 2 FETCH (UID 5 RFC822.SIZE 3)\r\n",
        "* 1 FETCH (UID 0 RFC822.SIZE 4)\r\n",
        "* 1 FETCH (UID x RFC822.SIZE 4)\r\n",
        "* 1 FETCH (UID 7)\r\n",
    ] {
        let script = format!(
            "{GREETING}a1 OK in\r\na2 OK caps\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\na3 OK s\r\n{bad}a4 OK f\r\n"
        );
        let (c, _) = session(&script, &plain_opts());
        let mut c = c.unwrap();
        c.select("INBOX", true).unwrap();
        let e = c.list().unwrap_err();
        assert_eq!(e.code(), Code::Protocol, "{bad}: {e}");
    }
}

#[test]
fn a_body_sent_twice_or_unasked_is_an_error_and_not_delivered_twice() {
    for (bad, want) in [
        (
            "* 1 FETCH (UID 5 BODY[] {1}\r\na)\r\n* 1 FETCH (UID 5 BODY[] {1}\r\na)\r\n",
            1,
        ),
        ("* 1 FETCH (UID 6 BODY[] {1}\r\na)\r\n", 0),
        ("* 1 FETCH (BODY[] {1}\r\na)\r\n", 0),
    ] {
        let script = format!("{GREETING}a1 OK in\r\na2 OK caps\r\n{bad}a3 OK f\r\n");
        let (c, _) = session(&script, &plain_opts());
        let mut c = c.unwrap();
        let mut n = 0;
        let e = c
            .fetch(&[5], &mut |_, r| {
                io::copy(r, &mut io::sink()).unwrap();
                n += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(n, want, "{bad}: {e}");
    }
}

#[test]
fn a_sink_failure_stops_the_fetch_with_its_own_error() {
    let script = format!(
        "{GREETING}a1 OK in\r\na2 OK caps\r\n* 1 FETCH (UID 5 BODY[] {{3}}\r\nabc)\r\na3 OK\r\n"
    );
    let (c, _) = session(&script, &plain_opts());
    let mut c = c.unwrap();
    let e = c
        .fetch(&[5], &mut |_, _| {
            Err(Error::new(Code::TempFail, "maildir", "disk full"))
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "maildir: disk full");
}

#[test]
fn idle_reports_new_mail_and_a_server_that_closes() {
    let script = format!(
        "{GREETING}a1 OK in\r\na2 OK caps\r\n+ idling\r\n* 3 EXISTS\r\na3 OK done\r\n\
         a4 OK caps\r\n+ idling\r\n* BYE shutting down\r\n"
    );
    let (c, out) = session(&script, &plain_opts());
    let mut c = c.unwrap();
    assert_eq!(c.idle(Duration::from_secs(5)).unwrap(), Idle::Changed);
    assert!(
        sent(&out).ends_with("a3 IDLE\r\nDONE\r\n"),
        "{}",
        sent(&out)
    );
    c.capability().unwrap();
    let e = c.idle(Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.code(), Code::TempFail);
    assert!(e.to_string().contains("shutting down"), "{e}");
}

#[test]
fn uid_sets_are_ranges_in_short_pieces() {
    assert_eq!(uid_sets(&[9, 1, 2, 3, 7, 3]), vec!["1:3,7,9"]);
    let many: Vec<u32> = (1..5000).map(|i| i * 2).collect();
    let sets = uid_sets(&many);
    assert!(sets.len() > 1 && sets.iter().all(|s| s.len() <= 4000));
    assert_eq!(parse_set("1:3,7").unwrap(), vec![1, 2, 3, 7]);
    assert!(parse_set("0:3").is_none() && parse_set("1:4294967295").is_none());
}

#[test]
fn mailbox_names_in_modified_utf7() {
    assert_eq!(mailbox_name("INBOX"), "INBOX");
    assert_eq!(mailbox_name("A&B"), "A&-B");
    // RFC 3501 §5.1.3's example.
    assert_eq!(
        mailbox_name("~peter/mail/台北/日本語"),
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    );
}

/// A server on loopback that sends `head`, then `tail` repeated for ever (or nothing).
fn hostile(head: &'static [u8], tail: Option<&'static [u8]>) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let _ = s.write_all(head);
        match tail {
            Some(t) => while s.write_all(t).is_ok() {},
            None => std::thread::sleep(Duration::from_secs(30)),
        }
    });
    addr
}

#[test]
fn a_greeting_that_never_comes_times_out() {
    let addr = hostile(b"", None);
    let mut o = Options::new(Mode::NONE);
    o.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let e = Client::connect(&[addr], "imap.test", &o).err().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(e.code(), Code::TempFail);
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[test]
fn a_line_that_never_ends_is_refused_in_bounded_memory() {
    let addr = hostile(b"* OK ", Some(&[b'x'; 65536]));
    let e = Client::connect(&[addr], "imap.test", &Options::new(Mode::NONE))
        .err()
        .unwrap();
    assert_eq!(e.code(), Code::Protocol);
    assert!(e.to_string().contains("line longer"), "{e}");
}

#[test]
fn a_two_gigabyte_literal_is_streamed_not_buffered() {
    let head = b"* OK [CAPABILITY IMAP4rev1] hi\r\na1 OK in\r\na2 OK caps\r\n\
                 * 1 FETCH (UID 5 BODY[] {2147483648}\r\n";
    let addr = hostile(head, Some(&[b'x'; 65536]));
    let mut c = Client::connect(&[addr], "imap.test", &plain_opts()).unwrap();
    // The sink takes 64 MiB and gives up, as a size limit would: the client held no more
    // than its buffer meanwhile (the reader hands over what arrives).
    let mut seen = 0u64;
    let e = c
        .fetch(&[5], &mut |l, r| {
            assert_eq!(l.size, 1 << 31);
            let mut buf = vec![0u8; 1 << 16];
            while seen < 64 << 20 {
                seen += r.read(&mut buf).unwrap() as u64;
            }
            Err(Error::new(Code::DataErr, "message", "too large"))
        })
        .unwrap_err();
    assert!(seen >= 64 << 20);
    assert_eq!(e.code(), Code::DataErr, "{e}");
}

#[test]
fn oauthbearer_errors_are_answered_then_cancelled_never_looped() {
    let mut o = plain_opts();
    o.auth.as_mut().unwrap().method = Some(Method::OAuthBearer);
    let caps = "* OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] hi\r\n";
    let script =
        format!("{caps}+ \r\n+ eyJzdGF0dXMiOiI0MDEifQ==\r\na1 NO [AUTHENTICATIONFAILED] no\r\n");
    let (c, out) = session(&script, &o);
    assert_eq!(c.err().unwrap().code(), Code::NoPerm);
    let lines: Vec<String> = sent(&out).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "a1 AUTHENTICATE OAUTHBEARER");
    assert_eq!(
        lines[2], "AQ==",
        "RFC 7628 §3.2.3: ^A after an error challenge"
    );
    // A server that never stops challenging: `*`, then the session ends.
    let script = format!("{caps}{}", "+ x\r\n".repeat(50));
    let (c, out) = session(&script, &o);
    assert_eq!(c.err().unwrap().code(), Code::TempFail);
    assert_eq!(sent(&out).lines().last(), Some("*"));
}

#[test]
fn idle_sees_new_mail_after_an_expunge_left_the_count_where_it_was() {
    let script = format!(
        "{GREETING}a1 OK in\r\na2 OK caps\r\n* 1 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\na3 OK s\r\n\
         + idling\r\n* 1 EXPUNGE\r\n* 1 EXISTS\r\na4 OK done\r\n"
    );
    let (c, _) = session(&script, &plain_opts());
    let mut c = c.unwrap();
    c.select("INBOX", true).unwrap();
    assert_eq!(c.idle(Duration::from_secs(5)).unwrap(), Idle::Changed);
}

#[test]
fn move_without_move_is_copy_then_delete_and_expunge_without_uidplus() {
    let script = "* OK [CAPABILITY IMAP4rev1] hi\r\na1 OK in\r\na2 OK caps\r\n\
                  a3 OK copied\r\na4 OK stored\r\na5 OK expunged\r\n";
    let (c, out) = session(script, &plain_opts());
    let mut c = c.unwrap();
    c.move_to(&[3, 4], "Trash").unwrap();
    let sent = sent(&out);
    assert!(
        sent.ends_with(
            "a3 UID COPY 3:4 \"Trash\"\r\na4 UID STORE 3:4 +FLAGS.SILENT (\\Deleted)\r\n\
             a5 EXPUNGE\r\n"
        ),
        "{sent}"
    );
}
