//! The client's state machine driven in memory, as the server's is (`net::conn::MemIo`,
//! tests/mreceive_fuzz.rs): a scripted server ([`Peer`]) answers each command line the
//! client completes, and records every write. Only `may`'s second connection needs sockets
//! (loopback), because making one is what it does.

use super::*;
use crate::envelope::Envelope;
use crate::net::tls::TlsOptions;
use crate::smtp::envelope::Partial;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;

/// What the client wrote.
#[derive(Default)]
struct Log {
    /// Every write as one piece (a PIPELINING batch is one).
    writes: Vec<Vec<u8>>,
    /// Every command line, without CRLF.
    commands: Vec<String>,
    /// The DATA content of each message as it came over the wire, dot-stuffed.
    data: Vec<Vec<u8>>,
}

/// A reply that says nothing: the server waits for ever (the client's read times out).
const SILENT: &str = "(silence)";

/// A scripted SMTP server in memory. Its greeting can be read at once; each command line
/// the client completes releases the next reply of the script, as does the end of the DATA
/// content after a 354. A reply is one segment for the reader, or several where it holds
/// `§` (a server's bytes coming in separate reads). A read with nothing released times out;
/// once the script is spent the connection ends.
struct Peer {
    segments: VecDeque<Vec<u8>>,
    script: VecDeque<&'static str>,
    partial: Vec<u8>,
    in_data: Option<Vec<u8>>,
    hung: bool,
    log: Arc<Mutex<Log>>,
}

impl Peer {
    fn new(script: &[&'static str]) -> (Peer, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut p = Peer {
            segments: VecDeque::new(),
            script: script.iter().copied().collect(),
            partial: Vec::new(),
            in_data: None,
            hung: false,
            log: Arc::clone(&log),
        };
        p.release();
        (p, log)
    }

    fn release(&mut self) {
        match self.script.pop_front() {
            Some(SILENT) => self.hung = true,
            Some(reply) => {
                if reply.starts_with("354") {
                    self.in_data = Some(Vec::new());
                }
                self.segments
                    .extend(reply.split('§').map(|s| s.as_bytes().to_vec()));
            }
            None => {}
        }
    }

    fn line(&mut self, line: Vec<u8>) {
        let mut log = self.log.lock().unwrap();
        if let Some(data) = &mut self.in_data {
            if line != b".\r\n" {
                data.extend_from_slice(&line);
                return;
            }
            log.data.push(std::mem::take(data));
            self.in_data = None;
        } else {
            let text = String::from_utf8_lossy(&line);
            log.commands.push(text.trim_end().to_string());
        }
        drop(log);
        self.release();
    }
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(seg) = self.segments.front_mut() else {
            if self.hung || !self.script.is_empty() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            return Ok(0);
        };
        let n = seg.len().min(buf.len());
        buf[..n].copy_from_slice(&seg[..n]);
        seg.drain(..n);
        if seg.is_empty() {
            self.segments.pop_front();
        }
        Ok(n)
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.log.lock().unwrap().writes.push(buf.to_vec());
        self.partial.extend_from_slice(buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.line(line);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Io for Peer {
    fn has_input(&self) -> bool {
        !self.segments.is_empty()
    }
}

fn opts(tls: Mode) -> Options {
    Options {
        tls,
        trust: TlsOptions::default(),
        helo: "client.test".into(),
        auth: None,
        timeouts: Timeouts::uniform(Duration::from_secs(5)),
        trace: None,
        source: None,
    }
}

fn over(script: &[&'static str], tls: Mode) -> (Result<Session>, Arc<Mutex<Log>>) {
    let (peer, log) = Peer::new(script);
    (Session::over(Box::new(peer), "mx.test", &opts(tls)), log)
}

/// A session in clear text, greeted with `ehlo`.
fn plain(ehlo: &'static str, rest: &[&'static str]) -> (Session, Arc<Mutex<Log>>) {
    let mut script = vec!["220 mx.test ESMTP\r\n", ehlo];
    script.extend_from_slice(rest);
    let (s, log) = over(&script, Mode::NONE);
    (s.unwrap(), log)
}

const ESMTP: &str = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

struct Msg(&'static [u8]);

impl Content for Msg {
    fn open(&mut self) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.0))
    }
}

fn env(rcpts: &[&str]) -> Envelope {
    Envelope::new("a@a.test", rcpts.iter().copied())
}

fn reply(text: &str) -> Reply {
    Reply::parse(text.as_bytes()).unwrap()
}

fn commands(log: &Mutex<Log>) -> Vec<String> {
    log.lock().unwrap().commands.clone()
}

#[test]
fn a_greeting_other_than_220_ends_the_session() {
    let (s, log) = over(&["554 5.3.2 mx.test does not take mail\r\n"], Mode::NONE);
    let e = s.err().unwrap();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.to_string().starts_with("greeting from mx.test: 554"),
        "{e}"
    );
    assert!(commands(&log).is_empty());
    let (s, _) = over(&["421 4.3.2 busy\r\n"], Mode::NONE);
    assert_eq!(s.err().unwrap().code(), Code::TempFail);
}

#[test]
fn an_ehlo_refused_as_unknown_falls_back_to_helo_without_extensions() {
    let (mut s, log) = plain(
        "500 5.5.1 what is EHLO\r\n",
        &[
            "250 mx.test\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued\r\n",
        ],
    );
    assert!(!s.capabilities().pipelining);
    let d = s.deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort);
    assert!(d.all_accepted(), "{d:?}");
    assert_eq!(
        commands(&log),
        [
            "EHLO client.test",
            "HELO client.test",
            "MAIL FROM:<a@a.test>",
            "RCPT TO:<b@b.test>",
            "DATA"
        ]
    );
    // Without PIPELINING each command waits for its reply: one write each.
    let writes = log.lock().unwrap().writes.clone();
    assert!(writes.contains(&b"MAIL FROM:<a@a.test>\r\n".to_vec()));
    assert!(writes.contains(&b"RCPT TO:<b@b.test>\r\n".to_vec()));

    // A temporary refusal of EHLO is no reason to try HELO: the server is busy.
    let (s, log) = over(&["220 mx.test\r\n", "421 4.3.2 busy\r\n"], Mode::NONE);
    assert_eq!(s.err().unwrap().code(), Code::TempFail);
    assert_eq!(commands(&log), ["EHLO client.test"]);
}

#[test]
fn pipelining_sends_mail_the_rcpts_and_data_in_one_write() {
    let (mut s, log) = plain(
        ESMTP,
        &[
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued\r\n",
        ],
    );
    let d = s.deliver(
        &env(&["b@b.test", "c@b.test"]),
        &mut Msg(b"x\n"),
        Partial::Abort,
    );
    assert!(d.all_accepted(), "{d:?}");
    let writes = log.lock().unwrap().writes.clone();
    assert!(
        writes.contains(
            &b"MAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\nRCPT TO:<c@b.test>\r\nDATA\r\n"
                .to_vec()
        ),
        "{:?}",
        writes
            .iter()
            .map(|w| String::from_utf8_lossy(w))
            .collect::<Vec<_>>()
    );
    // The content and its end in one write too.
    assert!(writes.contains(&b"x\r\n.\r\n".to_vec()));
}

#[test]
fn each_recipient_gets_its_own_verdict() {
    let (mut s, _) = plain(
        ESMTP,
        &[
            "250 ok\r\n",
            "250 ok\r\n",
            "550 5.1.1 no such user\r\n",
            "451 4.3.0 try later\r\n",
            "354 go\r\n",
            "250 2.0.0 queued as X\r\n",
        ],
    );
    let rcpts = ["b@b.test", "c@b.test", "d@b.test"];
    let d = s.deliver(&env(&rcpts), &mut Msg(b"x\n"), Partial::SendToAccepted);
    assert_eq!(
        d.rcpts,
        [
            Verdict::Accepted(reply("250 2.0.0 queued as X\r\n")),
            Verdict::Refused(reply("550 5.1.1 no such user\r\n")),
            Verdict::Refused(reply("451 4.3.0 try later\r\n")),
        ]
    );
    let codes: Vec<Code> = d.refusals.iter().map(|r| r.error.code()).collect();
    assert_eq!(codes, [Code::NoUser, Code::TempFail]);
    assert!(d.error.is_none() && !d.all_accepted());
}

#[test]
fn a_refused_recipient_stops_the_others_when_all_or_nothing() {
    // The server opens DATA for the accepted one: the only way to send nothing is to drop
    // the connection without an end of data.
    let (mut s, log) = plain(
        ESMTP,
        &[
            "250 ok\r\n",
            "250 ok\r\n",
            "550 5.1.1 no such user\r\n",
            "354 go\r\n",
            "250 queued\r\n",
        ],
    );
    let d = s.deliver(
        &env(&["b@b.test", "c@b.test"]),
        &mut Msg(b"x\n"),
        Partial::Abort,
    );
    assert_eq!(
        d.rcpts,
        [
            Verdict::Unsettled,
            Verdict::Refused(reply("550 5.1.1 no such user\r\n"))
        ]
    );
    assert!(!s.is_usable());
    let log = log.lock().unwrap();
    assert!(log.data.is_empty());
    assert!(log.writes.last().unwrap().ends_with(b"DATA\r\n"));
}

#[test]
fn recipients_over_the_servers_limit_go_in_a_next_transaction() {
    let too_many = "452 4.5.3 too many recipients\r\n";
    let (mut s, log) = plain(
        ESMTP,
        &[
            // r1, r2 accepted, r3 and r4 over the limit.
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            too_many,
            too_many,
            "354 go\r\n",
            "250 queued 1\r\n",
            // The rest: r3 accepted, r4 over the limit again.
            "250 ok\r\n",
            "250 ok\r\n",
            too_many,
            "354 go\r\n",
            "250 queued 2\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued 3\r\n",
        ],
    );
    let rcpts = ["r1@b.test", "r2@b.test", "r3@b.test", "r4@b.test"];
    let d = s.deliver(&env(&rcpts), &mut Msg(b"x\n"), Partial::AbortUnlessTooMany);
    let accepted = |t: &str| Verdict::Accepted(reply(t));
    assert_eq!(
        d.rcpts,
        [
            accepted("250 queued 1\r\n"),
            accepted("250 queued 1\r\n"),
            accepted("250 queued 2\r\n"),
            accepted("250 queued 3\r\n"),
        ]
    );
    assert!(d.all_accepted() && d.refusals.is_empty(), "{d:?}");
    let log = log.lock().unwrap();
    assert_eq!(log.data.len(), 3);
    let mails = log
        .commands
        .iter()
        .filter(|c| c.starts_with("MAIL"))
        .count();
    assert_eq!(mails, 3);
    assert_eq!(
        log.commands
            .iter()
            .filter(|c| c.contains("r4@b.test"))
            .count(),
        3
    );
}

#[test]
fn a_452_that_is_not_the_recipient_limit_is_a_refusal() {
    // 4.3.1 is "mail system full", not "too many recipients": nothing to split.
    let (mut s, log) = plain(
        ESMTP,
        &[
            "250 ok\r\n",
            "250 ok\r\n",
            "452 4.3.1 insufficient storage\r\n",
            "354 go\r\n",
            "250 queued\r\n",
        ],
    );
    let d = s.deliver(
        &env(&["b@b.test", "c@b.test"]),
        &mut Msg(b"x\n"),
        Partial::AbortUnlessTooMany,
    );
    assert_eq!(d.rcpts[0], Verdict::Unsettled);
    assert_eq!(
        d.rcpts[1],
        Verdict::Refused(reply("452 4.3.1 insufficient storage\r\n"))
    );
    assert!(log.lock().unwrap().data.is_empty());
}

#[test]
fn a_refused_data_refuses_every_recipient_and_the_next_message_starts_with_rset() {
    let (mut s, log) = plain(
        ESMTP,
        &[
            "250 ok\r\n",
            "250 ok\r\n",
            "554 5.3.4 message refused\r\n",
            "250 reset\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued\r\n",
        ],
    );
    let refused = reply("554 5.3.4 message refused\r\n");
    let d = s.deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort);
    assert_eq!(d.rcpts, [Verdict::Refused(refused.clone())]);
    assert_eq!(d.data, Some(refused));
    assert_eq!(d.refusals.len(), 1);
    assert_eq!(d.refusals[0].error.code(), Code::DataErr);
    assert!(s.is_usable());
    let d = s.deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort);
    assert!(d.all_accepted(), "{d:?}");
    let cmds = commands(&log);
    assert_eq!(
        cmds[cmds.len() - 4..],
        ["RSET", "MAIL FROM:<a@a.test>", "RCPT TO:<b@b.test>", "DATA"]
    );
}

#[test]
fn the_content_is_dot_stuffed_with_crlf_and_one_end_of_data() {
    let (mut s, log) = plain(
        ESMTP,
        &["250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 queued\r\n"],
    );
    let msg = b".hidden\n..two\r\n.\nbare\rcr\nlast line";
    let d = s.deliver(&env(&["b@b.test"]), &mut Msg(msg), Partial::Abort);
    assert!(d.all_accepted(), "{d:?}");
    assert_eq!(
        log.lock().unwrap().data,
        [b"..hidden\r\n...two\r\n..\r\nbare\r\ncr\r\nlast line\r\n".to_vec()]
    );
}

#[test]
fn bytes_after_the_starttls_reply_are_refused_as_injection() {
    let ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
    // In the same segment as the 220 (in our buffer), and in a segment of their own (still
    // in the transport), at every level that starts TLS.
    for starttls in [
        "220 2.0.0 go ahead\r\n250 injected\r\n",
        "220 2.0.0 go ahead\r\n§250 injected\r\n",
    ] {
        for mode in [Mode::STARTTLS, Mode::parse("encrypt").unwrap(), Mode::MAY] {
            let (s, log) = over(&["220 mx.test\r\n", ehlo, starttls], mode);
            let e = s.err().unwrap();
            assert_eq!(e.code(), Code::Unavailable, "{mode}: {e}");
            assert!(e.to_string().contains("response injection"), "{e}");
            // Nothing went out after STARTTLS: no handshake, no command.
            let log = log.lock().unwrap();
            assert_eq!(log.writes.last().unwrap(), b"STARTTLS\r\n");
        }
    }
}

#[test]
fn multiline_replies_are_read_whole() {
    let (mut s, _) = plain(
        "250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
        &[
            "250 ok\r\n",
            "550-5.1.1 the mailbox b@b.test\r\n550-5.1.1 does not exist\r\n550 5.1.1 here\r\n",
            "554 5.5.1 no valid recipients\r\n",
            "250 reset\r\n",
        ],
    );
    let caps = s.capabilities();
    assert!(caps.pipelining && caps.eightbitmime);
    assert_eq!(caps.size, Some(1000));
    assert_eq!(caps.auth, ["PLAIN", "LOGIN"]);
    let d = s.deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort);
    let Verdict::Refused(r) = &d.rcpts[0] else {
        panic!("{d:?}")
    };
    assert_eq!(r.code, 550);
    assert_eq!(r.lines, ["the mailbox b@b.test", "does not exist", "here"]);
    // Over the announced SIZE: refused before MAIL, permanently.
    let mut big = env(&["b@b.test"]);
    big.size = Some(2000);
    let d = s.deliver(&big, &mut Msg(b"x\n"), Partial::Abort);
    assert_eq!(d.error.map(|e| e.code()), Some(Code::DataErr));
}

/// The replies of one whole delivery, greeting first.
const HAPPY: &[&str] = &[
    "220 mx.test\r\n",
    ESMTP,
    "250 ok\r\n",
    "250 ok\r\n",
    "354 go\r\n",
    "250 queued\r\n",
];

#[test]
fn a_refusal_read_before_354_stands_when_the_data_breaks_off() {
    // The server hangs up after its 354 (the script ends): the accepted recipient is
    // unsettled (send again), the refused ones keep their replies.
    let (mut s, _) = plain(
        ESMTP,
        &[
            "250 ok\r\n",
            "250 ok\r\n",
            "550 5.1.1 no such user\r\n",
            "451 4.3.0 try later\r\n",
            "354 go\r\n",
        ],
    );
    let rcpts = ["b@b.test", "c@b.test", "d@b.test"];
    let d = s.deliver(&env(&rcpts), &mut Msg(b"x\n"), Partial::SendToAccepted);
    assert_eq!(
        d.rcpts,
        [
            Verdict::Unsettled,
            Verdict::Refused(reply("550 5.1.1 no such user\r\n")),
            Verdict::Refused(reply("451 4.3.0 try later\r\n")),
        ]
    );
    let codes: Vec<Code> = d.refusals.iter().map(|r| r.error.code()).collect();
    assert_eq!(codes, [Code::NoUser, Code::TempFail]);
    assert_eq!(d.error.map(|e| e.code()), Some(Code::TempFail));
}

#[test]
fn garbage_silence_or_a_hang_up_is_temporary_never_success() {
    let garbage = [
        "hello there\r\n",
        "2500 ok\r\n",
        "25\r\n",
        "250-first line\r\n",
        "250-one\r\n350 two\r\n",
        "\u{0}\u{ff}\r\n",
        SILENT,
    ];
    for at in 0..HAPPY.len() {
        for bad in garbage {
            let mut script = HAPPY.to_vec();
            script[at] = bad;
            // The hang-up: the script ends before this reply.
            for script in [script, HAPPY[..at].to_vec()] {
                let (s, _) = over(&script, Mode::NONE);
                let e = match s {
                    Err(e) => e,
                    Ok(mut s) => {
                        let d = s.deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort);
                        assert!(!d.all_accepted(), "{at} {bad:?}: {d:?}");
                        assert_eq!(d.rcpts, [Verdict::Unsettled], "{at} {bad:?}");
                        d.error.unwrap()
                    }
                };
                assert_eq!(e.code(), Code::TempFail, "{at} {bad:?}: {e}");
            }
        }
    }
}

#[test]
fn a_250_to_data_is_a_server_out_of_step_not_a_delivery() {
    let mut script = HAPPY.to_vec();
    script[4] = "250 2.0.0 ok\r\n";
    let (s, log) = over(&script, Mode::NONE);
    let d = s
        .unwrap()
        .deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort);
    let e = d.error.unwrap();
    assert_eq!(e.code(), Code::TempFail);
    assert!(e.to_string().contains("instead of 354"), "{e}");
    assert_eq!(d.rcpts, [Verdict::Unsettled]);
    assert!(log.lock().unwrap().data.is_empty());
}

#[test]
fn a_line_break_in_an_address_never_reaches_the_wire() {
    let (mut s, log) = plain(ESMTP, &["250 ok\r\n"]);
    let d = s.deliver(
        &env(&["b@b.test>\r\nRCPT TO:<evil@x.test"]),
        &mut Msg(b"x\n"),
        Partial::Abort,
    );
    assert_eq!(d.error.map(|e| e.code()), Some(Code::Software));
    assert_eq!(commands(&log), ["EHLO client.test"]);
}

#[test]
fn tls_levels_decide_what_a_server_without_starttls_gets() {
    let may = [
        "220 mx.test\r\n",
        ESMTP,
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
    ];
    // may: clear text.
    let (s, log) = over(&may, Mode::MAY);
    let mut s = s.unwrap();
    assert!(!s.is_tls() && s.tls_failure().is_none());
    assert!(
        s.deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort)
            .all_accepted()
    );
    assert!(!commands(&log).iter().any(|c| c == "STARTTLS"));
    // encrypt, verify: nothing.
    for mode in ["encrypt", "verify", "starttls"] {
        let (s, log) = over(&may, Mode::parse(mode).unwrap());
        let e = s.err().unwrap();
        assert_eq!(e.code(), Code::Unavailable, "{mode}");
        assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
        assert_eq!(commands(&log), ["EHLO client.test"]);
    }
    // may, STARTTLS offered but refused: the session goes on in clear text.
    let ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
    let (s, log) = over(
        &[
            "220 mx.test\r\n",
            ehlo,
            "454 4.7.0 TLS not available\r\n",
            "250 ok\r\n",
        ],
        Mode::MAY,
    );
    let s = s.unwrap();
    assert!(!s.is_tls());
    assert!(s.tls_failure().unwrap().to_string().contains("454"));
    assert_eq!(commands(&log), ["EHLO client.test", "STARTTLS"]);
    let (s, _) = over(
        &["220 mx.test\r\n", ehlo, "454 4.7.0 TLS not available\r\n"],
        Mode::STARTTLS,
    );
    assert_eq!(s.err().unwrap().code(), Code::TempFail);
}

#[test]
fn credentials_go_in_clear_text_only_at_level_none() {
    let ehlo = "250-mx.test\r\n250 AUTH PLAIN\r\n";
    let cred = Credentials {
        user: "me".into(),
        secret: "secret".into(),
        mechanism: None,
    };
    let mut o = opts(Mode::MAY);
    o.auth = Some(cred.clone());
    let (peer, log) = Peer::new(&["220 mx.test\r\n", ehlo]);
    let e = Session::over(Box::new(peer), "mx.test", &o).err().unwrap();
    assert_eq!(e.code(), Code::Config);
    assert!(e.to_string().contains("without TLS"), "{e}");
    assert_eq!(commands(&log), ["EHLO client.test"]);

    let mut o = opts(Mode::NONE);
    o.auth = Some(cred);
    let (peer, log) = Peer::new(&["220 mx.test\r\n", ehlo, "235 2.7.0 ok\r\n"]);
    let s = Session::over(Box::new(peer), "mx.test", &o).unwrap();
    assert_eq!(s.authenticated(), Some("me"));
    assert_eq!(commands(&log)[1], "AUTH PLAIN AG1lAHNlY3JldA==");
}

/// A loopback server for `may`'s second connection: the first connection agrees to STARTTLS
/// and then answers the ClientHello in clear text; later ones take the message. Returns the
/// address and each connection's command lines.
fn broken_tls_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<Vec<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(Mutex::new(Vec::new()));
    let c = Arc::clone(&conns);
    std::thread::spawn(move || {
        for (n, tcp) in listener.incoming().flatten().enumerate() {
            let i = {
                let mut c = c.lock().unwrap();
                c.push(Vec::new());
                c.len() - 1
            };
            let _ = serve_one(tcp, n == 0, &c, i);
        }
    });
    (addr, conns)
}

fn serve_one(
    tcp: TcpStream,
    break_tls: bool,
    conns: &Mutex<Vec<Vec<String>>>,
    i: usize,
) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = tcp.try_clone()?;
    let mut r = BufReader::new(tcp);
    out.write_all(b"220 mx.test\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        conns.lock().unwrap()[i].push(cmd.clone());
        let reply: &[u8] = match cmd.get(..4).unwrap_or("") {
            "EHLO" => b"250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "STAR" if break_tls => {
                out.write_all(b"220 go ahead\r\n")?;
                let mut hello = [0u8; 512];
                let _ = r.read(&mut hello)?;
                out.write_all(b"500 this is not TLS\r\n")?;
                return Ok(());
            }
            "DATA" => {
                out.write_all(b"354 go\r\n")?;
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line == ".\r\n" {
                        break;
                    }
                }
                b"250 queued\r\n"
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => b"250 ok\r\n",
        };
        out.write_all(reply)?;
    }
}

#[test]
fn a_failed_handshake_at_may_goes_on_in_clear_text_on_a_new_connection() {
    let (addr, conns) = broken_tls_server();
    let mut s = Session::connect(&[addr], "127.0.0.1", &opts(Mode::MAY)).unwrap();
    assert!(!s.is_tls());
    let why = s.tls_failure().unwrap().to_string();
    assert!(why.contains("did not answer in TLS"), "{why}");
    let d = s.deliver(&env(&["b@b.test"]), &mut Msg(b"x\n"), Partial::Abort);
    assert!(d.all_accepted(), "{d:?}");
    s.quit();
    let conns = conns.lock().unwrap().clone();
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0], ["EHLO client.test", "STARTTLS"]);
    // The second connection does not try STARTTLS again, though it is offered.
    assert!(!conns[1].iter().any(|c| c == "STARTTLS"), "{conns:?}");
    assert!(conns[1].iter().any(|c| c == "DATA"), "{conns:?}");
}

#[test]
fn a_failed_handshake_where_tls_is_required_sends_nothing() {
    for mode in ["encrypt", "verify"] {
        let (addr, conns) = broken_tls_server();
        let e = Session::connect(&[addr], "127.0.0.1", &opts(Mode::parse(mode).unwrap()))
            .err()
            .unwrap();
        assert_eq!(e.code(), Code::Unavailable, "{mode}: {e}");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(conns.lock().unwrap().len(), 1, "{mode}");
    }
}

#[test]
fn no_address_is_a_temporary_failure_that_names_the_server() {
    let e = Session::connect(&[], "mx.test", &opts(Mode::MAY))
        .err()
        .unwrap();
    assert_eq!(e.code(), Code::TempFail);
    assert_eq!(e.to_string(), "resolve mx.test: no addresses");
}
