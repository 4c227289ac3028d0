//! msubmit through the real binary against smtp-sink and scripted fake servers on loopback:
//! what arrives, exit codes for each failure, the sendmail command line, the queue.

use crate::common;
use crate::common::smtp;

use common::*;
use smtp::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn msubmit(home: &Path) -> Command {
    tool(bin!("msubmit"), home)
}

/// msubmit aimed at 127.0.0.1:port in clear text.
fn plain(home: &Path, port: u16) -> Command {
    plain_timeout(home, port, 5)
}

/// msubmit aimed at 127.0.0.1:port with the default TLS setting (STARTTLS required).
fn tls_default(home: &Path, port: u16) -> Command {
    let mut c = msubmit(home);
    c.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--timeout",
        "5",
    ]);
    c.args(["-f", "a@a.test", "b@b.test"]);
    c
}

fn plain_timeout(home: &Path, port: u16, secs: u64) -> Command {
    let mut c = msubmit(home);
    c.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        "none",
    ]);
    c.args(["--timeout", &secs.to_string()]);
    c
}

/// Start a fake with `script` and send it one small message in clear text.
fn one_shot(script: Script, args: &[&str]) -> (Fake, std::process::Output) {
    let fake = Fake::start(script);
    let t = tempfile::tempdir().unwrap();
    let out = run(plain(t.path(), fake.port()).args(args), b"S: x\n\nx\n");
    (fake, out)
}

/// Assert the exit code and a piece of the diagnostic.
fn fails(out: &std::process::Output, want: i32, needle: &str) {
    assert_eq!(code(out), want, "{}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
}

fn only(sink: &Sink) -> Vec<u8> {
    let m = sink.messages();
    assert_eq!(m.len(), 1, "expected one message at the sink");
    m.into_iter().next().unwrap()
}

/// The message as it arrived: smtp-sink's dump starts with its own X- lines and Received:,
/// and ends with an empty line of its own.
fn arrived(dump: &[u8]) -> &[u8] {
    let mut pos = 0;
    while pos < dump.len() {
        let end = dump[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(dump.len(), |i| pos + i + 1);
        let line = &dump[pos..end];
        if !(line.starts_with(b"X-") || line.starts_with(b"Received:") || line.starts_with(b"\t")) {
            break;
        }
        pos = end;
    }
    dump[pos..].strip_suffix(b"\n").unwrap_or(&dump[pos..])
}

fn arrived_body(dump: &[u8]) -> &[u8] {
    let m = arrived(dump);
    let at = m.windows(2).position(|w| w == b"\n\n").expect("header end");
    &m[at + 2..]
}

#[test]
fn bare_lf_and_a_lone_dot_line_arrive_intact_with_i() {
    if !have(&["/usr/sbin/smtp-sink"]) {
        return;
    }
    let sink = Sink::start();
    let t = tempfile::tempdir().unwrap();
    let body = b"first\n.\n..two dots\n.x\nlast without newline";
    let mut msg = b"Subject: dots\nMessage-ID: <m1@a.test>\nDate: x\nFrom: a@a.test\n\n".to_vec();
    msg.extend_from_slice(body);
    let out = run(
        plain(t.path(), sink.port).args(["-i", "-f", "a@a.test", "b@b.test"]),
        &msg,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "not quiet: {}",
        stderr(&out)
    );
    let dump = only(&sink);
    // smtp-sink unstuffs and stores LF line ends: the body is what we were given, plus the
    // line end the last line needed.
    let mut want = body.to_vec();
    want.push(b'\n');
    assert_eq!(
        String::from_utf8_lossy(arrived_body(&dump)),
        String::from_utf8_lossy(&want)
    );
}

/// A complete message (nothing for msubmit to add) whose body holds the lines that once ended
/// the input: a lone dot, a lone dot with CR, then more text and a dot line at the very end.
const DOTS: &[u8] =
    b"From: A <a@a.test>\r\nTo: b@b.test\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\
    Message-ID: <dots@a.test>\r\nSubject: dots\r\n\r\nReport below.\r\n.\r\nRegards\r\n\
    ..two\r\n.x\r\nlast\r\n.\r\n";

/// The one message `fake` accepted: the wire shows each dot line stuffed, and unstuffed it is
/// `want` byte for byte.
fn arrived_whole(fake: &Fake, want: &[u8]) {
    let wire = fake.accepted.lock().unwrap().clone();
    assert_eq!(wire.len(), 1, "expected one message");
    let text = String::from_utf8_lossy(&wire[0]);
    assert!(
        text.contains("\r\nRegards\r\n...two\r\n..x\r\n") && text.ends_with("\r\n..\r\n"),
        "lines starting with a dot not stuffed on the wire: {text:?}"
    );
    let got = fake.messages().remove(0);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "the message did not arrive byte for byte"
    );
}

#[test]
fn a_lone_dot_never_ends_the_message_in_any_input_mode() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let port = fake.port();
    // Recipients as arguments, without -i: the whole message goes, the lone dots stuffed.
    let out = run(
        plain(t.path(), port).args(["-f", "a@a.test", "b@b.test"]),
        DOTS,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    arrived_whole(&fake, DOTS);
    fake.accepted.lock().unwrap().clear();

    // Recipients from the header with -t; and LF line ends, as from a Unix pipe.
    let lf: Vec<u8> = String::from_utf8_lossy(DOTS)
        .replace("\r\n", "\n")
        .into_bytes();
    let out = run(plain(t.path(), port).arg("-t"), &lf);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    arrived_whole(&fake, DOTS);
    fake.accepted.lock().unwrap().clear();

    // As mutt runs it (`set sendmail=...` plus its own -oi -oem -f, then `--` and the
    // recipients); -i and -oi change nothing.
    for args in [
        &["-oi", "-oem", "-f", "a@a.test", "--", "b@b.test"][..],
        &["-i", "-t"],
    ] {
        let out = run(plain(t.path(), port).args(args), &lf);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        arrived_whole(&fake, DOTS);
        fake.accepted.lock().unwrap().clear();
    }

    // Through the queue: --queue stores the whole message, --flush sends it whole.
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    let out = run(
        msubmit(t.path()).args(["--queue-dir", q, "--queue", "-t"]),
        &lf,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(fake.accepted.lock().unwrap().is_empty());
    let out = run(
        plain(t.path(), port).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    arrived_whole(&fake, DOTS);
    fake.accepted.lock().unwrap().clear();

    // Queued after a failure (nothing listens on `down`), then flushed.
    let down = free_port();
    let out = run(
        plain(t.path(), down).args(["--queue-dir", q, "--queue-on-failure", "-t"]),
        &lf,
    );
    fails(&out, 0, "queued as");
    let out = run(
        plain(t.path(), port).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    arrived_whole(&fake, DOTS);
}

#[test]
fn t_reads_recipients_removes_bcc_and_adds_missing_fields() {
    if !have(&["/usr/sbin/smtp-sink"]) {
        return;
    }
    let sink = Sink::start();
    let t = tempfile::tempdir().unwrap();
    let out = run(
        plain(t.path(), sink.port).args([
            "-t",
            "-oi",
            "-F",
            "Ann Example",
            "-f",
            "ann@a.test",
            "extra@c.test",
        ]),
        b"To: Bob <bob@b.test>\nBcc: secret@s.test,\n hidden@s.test\nSubject: t\n\nhello\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dump = only(&sink);
    let text = String::from_utf8_lossy(&dump);
    let message = String::from_utf8_lossy(arrived(&dump));
    for rcpt in [
        "extra@c.test",
        "bob@b.test",
        "secret@s.test",
        "hidden@s.test",
    ] {
        assert!(
            text.contains(&format!("X-Rcpt-Args: <{rcpt}>")),
            "{rcpt} not in envelope:\n{text}"
        );
    }
    assert!(
        message.starts_with("To: Bob <bob@b.test>\nSubject: t\n"),
        "{message}"
    );
    assert!(
        !message.to_ascii_lowercase().contains("bcc"),
        "Bcc leaked:\n{message}"
    );
    assert!(
        !message.contains("hidden@") && !message.contains("secret@"),
        "Bcc leaked:\n{message}"
    );
    assert_eq!(
        header_value(&dump, "From").as_deref(),
        Some("Ann Example <ann@a.test>")
    );
    assert!(header_value(&dump, "Date").is_some());
    assert!(
        header_value(&dump, "Message-ID")
            .unwrap()
            .ends_with("@a.test>")
    );
    assert!(text.contains("X-Mail-Args: <ann@a.test>"), "{text}");
}

#[test]
fn starttls_required_but_not_offered_sends_nothing() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let out = run(
        &mut tls_default(t.path(), fake.port()),
        b"Subject: x\n\nx\n",
    );
    fails(&out, 69, "does not offer STARTTLS");
    assert!(!fake.log_text().contains("MAIL"), "{}", fake.log_text());
}

#[test]
fn data_after_the_starttls_reply_is_refused_as_injection() {
    let fake = Fake::start(Script {
        ehlo: "250-fake.test\r\n250 STARTTLS\r\n",
        starttls: "220 2.0.0 go ahead\r\n250-injected\r\n250 PIPELINING\r\n",
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let out = run(
        &mut tls_default(t.path(), fake.port()),
        b"Subject: x\n\nx\n",
    );
    fails(&out, 69, "response injection");
}

#[test]
fn tls_may_goes_on_in_clear_text_where_starttls_is_missing_or_refused() {
    let offered = "250-fake.test\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n";
    // Not offered (the default script), then offered and refused with 454.
    for ehlo in [Script::default().ehlo, offered] {
        let fake = Fake::start(Script {
            ehlo,
            ..Script::default()
        });
        let t = tempfile::tempdir().unwrap();
        let out = run(
            tls_default(t.path(), fake.port()).args(["--tls", "may"]),
            b"Subject: x\n\nx\n",
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(fake.accepted.lock().unwrap().len(), 1);
    }
    // Credentials never go in clear text at may: only at none.
    let fake = Fake::start(Script {
        ehlo: offered,
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let out = run(
        tls_default(t.path(), fake.port()).args([
            "--tls",
            "may",
            "--user",
            "u",
            "--password-command",
            "echo pw",
        ]),
        b"Subject: x\n\nx\n",
    );
    fails(&out, 78, "refusing to send credentials without TLS");
    assert!(!fake.log_text().contains("AUTH"), "{}", fake.log_text());
    // A word that is no mode is a usage error.
    let out = run(
        tls_default(t.path(), fake.port()).args(["--tls", "implicit,may"]),
        b"Subject: x\n\nx\n",
    );
    fails(&out, 64, "implicit TLS cannot fall back to clear text");
}

#[test]
fn a_4xx_greeting_is_temporary() {
    let (_fake, out) = one_shot(
        Script {
            greeting: "421 4.3.2 fake.test busy, try later\r\n",
            ..Script::default()
        },
        &["-f", "a@a.test", "b@b.test"],
    );
    fails(&out, 75, "421 4.3.2 fake.test busy");
}

#[test]
fn a_connection_dropped_mid_data_is_temporary() {
    let fake = Fake::start(Script {
        after_data: AfterData::DropAfter(1000),
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let mut msg = b"Subject: big\n\n".to_vec();
    for i in 0..50_000 {
        msg.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    let out = run(
        plain(t.path(), fake.port()).args(["-i", "-f", "a@a.test", "b@b.test"]),
        &msg,
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(fake.accepted.lock().unwrap().is_empty());
}

#[test]
fn no_reply_after_the_end_of_data_is_temporary() {
    let fake = Fake::start(Script {
        after_data: AfterData::Silent,
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let mut c = plain_timeout(t.path(), fake.port(), 1);
    c.args(["-f", "a@a.test", "b@b.test"]);
    let out = run(&mut c, b"S: x\n\nx\n");
    fails(&out, 75, "timed out");
}

#[test]
fn a_refused_recipient_sends_to_nobody_and_names_the_reply() {
    let (fake, out) = one_shot(
        Script {
            rcpt: vec![(
                "nosuch@",
                "550 5.1.1 <nosuch@b.test>: Recipient address rejected\r\n",
            )],
            ..Script::default()
        },
        &["-f", "a@a.test", "ok@b.test", "nosuch@b.test"],
    );
    fails(
        &out,
        67,
        "msubmit: RCPT TO:<nosuch@b.test>: 550 5.1.1 <nosuch@b.test>: Recipient address rejected",
    );
    assert!(
        fake.accepted.lock().unwrap().is_empty(),
        "message sent despite a refused recipient"
    );
    // A 4xx on one recipient is temporary, and again nothing is sent.
    let (fake, out) = one_shot(
        Script {
            rcpt: vec![("later@", "451 4.3.0 try again\r\n")],
            ehlo: "250 fake.test\r\n",
            ..Script::default()
        },
        &["-f", "a@a.test", "ok@b.test", "later@b.test"],
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        !fake.log_text().contains("DATA"),
        "no pipelining, so no DATA: {}",
        fake.log_text()
    );
}

#[test]
fn pipelining_sends_mail_rcpts_and_data_before_reading_replies() {
    let (fake, out) = one_shot(
        Script::default(),
        &["-f", "a@a.test", "b@b.test,c@c.test", "-v"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    // The trace shows all three commands sent before the first reply came back.
    let sent = err.find("--> DATA").expect("DATA sent");
    let first_reply = err.find("<-- 250 2.0.0 ok").expect("MAIL reply");
    assert!(sent < first_reply, "{err}");
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
}

#[test]
fn t_without_header_recipients_says_so() {
    // It said "give addresses, or -t" to a caller who had given -t.
    let t = tempfile::tempdir().unwrap();
    for (input, why) in [
        (&b""[..], "the message has no To:, Cc: or Bcc: address"),
        (
            b"Subject: x\nTo: undisclosed-recipients:;\n\nx\n",
            "the message has no To:, Cc: or Bcc: address",
        ),
        (
            b"To: a@b.test\nResent-To: list:;\n\nx\n",
            "the message has no Resent-To:, Resent-Cc: or Resent-Bcc: address",
        ),
    ] {
        let out = run(
            msubmit(t.path()).args(["--host", "127.0.0.1", "--tls", "none", "-t"]),
            input,
        );
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        // (A message that is not empty is kept in ~/dead.letter, and the line says so.)
        let said = format!("msubmit: no recipients: {why}");
        assert!(stderr(&out).starts_with(&said), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}

#[test]
fn sendmail_command_line_refusals_are_usage_errors() {
    let t = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["--", "-oQ@evil"][..], "looks like an option"),
        (&["-bd"][..], "-bd"),
        (&["-oQ/tmp", "a@b.test"][..], "-oQ/tmp"),
        (&["-f", "a@a.test"][..], "no recipients"),
        (&["a@b.test\r\nRCPT TO:<x@y>"][..], "recipient"),
    ] {
        let out = run(
            msubmit(t.path())
                .args(["--host", "127.0.0.1", "--tls", "none"])
                .args(args),
            b"S: x\n\nx\n",
        );
        assert_eq!(code(&out), 64, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    // Ignored sendmail options do not get in the way.
    let fake = Fake::start(Script::default());
    let out = run(
        plain(t.path(), fake.port()).args([
            "-oem", "-odi", "-oi", "-U", "-B", "8BITMIME", "-f", "a@a.test", "b@b.test",
        ]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn no_server_is_a_configuration_error() {
    let t = tempfile::tempdir().unwrap();
    let out = run(
        msubmit(t.path()).args(["-f", "a@a.test", "b@b.test"]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    // An unreachable server is temporary.
    let port = free_port();
    let out = run(
        plain(t.path(), port).args(["-f", "a@a.test", "b@b.test"]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
}

#[test]
fn an_account_is_chosen_by_the_from_address_and_logs_one_line() {
    if !have(&["/usr/sbin/smtp-sink"]) {
        return;
    }
    let sink = Sink::start();
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("msubmit.log");
    write(
        &t.path().join(".config/mailpipe/config"),
        &format!(
            "defaults\nhost 127.0.0.9\nport 1\naccount other\nfrom other@o.test\n\
             account mine\nhost 127.0.0.1\nport {}\ntls off\nfrom me@m.test\nlogfile {}\n",
            sink.port,
            log.display()
        ),
    );
    let out = run(
        msubmit(t.path()).args(["-t"]),
        b"From: Me <me@m.test>\nTo: you@y.test\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(sink.messages().len(), 1);
    let line = std::fs::read_to_string(&log).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    for kv in [
        "account=mine",
        "host=127.0.0.1",
        "tls=none",
        "from=me@m.test",
        "recipients=you@y.test",
        "smtpstatus=250",
        "exitcode=0",
    ] {
        assert!(line.contains(kv), "{kv} missing: {line}");
    }
}

#[test]
fn queue_list_and_flush() {
    if !have(&["/usr/sbin/smtp-sink"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    for i in 0..3 {
        let out = run(
            msubmit(t.path()).args(["--queue-dir", q, "-odq", "-f", "a@a.test", "b@b.test"]),
            format!("Subject: queued {i}\n\nbody {i}\n").as_bytes(),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(files(&qdir.join("new")).len(), 3);
    let out = run(msubmit(t.path()).args(["--queue-dir", q, "-bp"]), b"");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.matches("to: b@b.test").count(), 3, "{listing}");

    // The server is down: everything stays, with an attempt counted.
    let down = free_port();
    let out = run(
        plain(t.path(), down).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_eq!(files(&qdir.join("new")).len(), 3);
    let out = run(msubmit(t.path()).args(["--queue-dir", q, "--list"]), b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("attempts: 1")
            .count(),
        3
    );

    // Backoff: not due yet, so a flush now sends nothing; make them due and flush.
    let sink = Sink::start();
    for f in files(&qdir.join("state")) {
        std::fs::write(&f, "attempts 1\nnext 0\nerror x\n").unwrap();
    }
    let out = run(
        plain(t.path(), sink.port).args(["--queue-dir", q, "-q"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(sink.messages().len(), 3);
    assert!(files(&qdir.join("new")).is_empty());
    assert!(files(&qdir.join("state")).is_empty());
    let out = run(msubmit(t.path()).args(["--queue-dir", q, "--list"]), b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Mail queue is empty"
    );
}

#[test]
fn a_flush_killed_with_sigkill_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    let n = 12;
    for i in 0..n {
        let out = run(
            msubmit(t.path()).args(["--queue-dir", q, "--queue", "-f", "a@a.test", "b@b.test"]),
            format!("Subject: msg {i}\n\nbody\n").as_bytes(),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    // A slow server: each message takes 150 ms to be accepted.
    let slow = Fake::start(Script {
        delay: Duration::from_millis(150),
        ..Script::default()
    });
    let mut child = plain(t.path(), slow.port())
        .args(["--queue-dir", q, "--flush"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || slow
        .accepted
        .lock()
        .unwrap()
        .len()
        >= 4));
    std::thread::sleep(Duration::from_millis(70));
    child.kill().unwrap();
    child.wait().unwrap();
    let first = slow.accepted.lock().unwrap().len();
    assert!(first < n, "the flush finished before the kill");

    let fast = Fake::start(Script::default());
    let out = run(
        plain(t.path(), fast.port()).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let subjects = |msgs: &Vec<Vec<u8>>| -> Vec<String> {
        msgs.iter()
            .map(|m| header_value(m, "Subject").unwrap())
            .collect()
    };
    let mut all = subjects(&slow.accepted.lock().unwrap());
    all.extend(subjects(&fast.accepted.lock().unwrap()));
    for i in 0..n {
        assert!(all.contains(&format!("msg {i}")), "msg {i} lost: {all:?}");
    }
    // At most the message in flight at the kill is sent twice.
    assert!(all.len() <= n + 1, "{all:?}");
    assert!(files(&qdir.join("new")).is_empty());
}

#[test]
fn two_flushes_at_once_share_the_queue_and_send_each_message_once() {
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    let n = 12;
    for i in 0..n {
        let out = run(
            msubmit(t.path()).args(["--queue-dir", q, "--queue", "-f", "a@a.test", "b@b.test"]),
            format!("Subject: msg {i}\n\nbody\n").as_bytes(),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let slow = Fake::start(Script {
        delay: Duration::from_millis(100),
        ..Script::default()
    });
    let flush = || {
        plain(t.path(), slow.port())
            .args(["--queue-dir", q, "--flush"])
            .stdin(std::process::Stdio::null())
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(flush);
        let b = s.spawn(flush);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    for out in [&a, &b] {
        assert_eq!(code(out), 0, "{}", stderr(out));
    }
    let mut subjects: Vec<String> = (slow.accepted.lock().unwrap().iter())
        .map(|m| header_value(m, "Subject").unwrap())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), n, "{subjects:?}");
    assert_eq!(
        slow.accepted.lock().unwrap().len(),
        n,
        "a message went twice"
    );
    // Both worked: each flush connected and sent.
    assert_eq!(slow.log_text().matches("EHLO").count(), 2);
    assert!(files(&qdir.join("new")).is_empty());
}

#[test]
fn helo_is_used_when_ehlo_is_refused() {
    let (fake, out) = one_shot(
        Script {
            ehlo: "502 5.5.2 EHLO not implemented\r\n",
            ..Script::default()
        },
        &["-f", "a@a.test", "b@b.test"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(fake.log_text().contains("HELO "), "{}", fake.log_text());
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
}

#[test]
fn esmtp_parameters_are_sent_when_offered() {
    let fake = Fake::start(Script {
        ehlo: "250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n\
               250-SMTPUTF8\r\n250 DSN\r\n",
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let out = run(
        plain(t.path(), fake.port()).args([
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "id+1",
            "-f",
            "a@a.test",
            "üser@b.test",
        ]),
        "Subject: 8bit\n\ncafé\n".as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let log = fake.log_text();
    for p in [
        "SIZE=",
        "BODY=8BITMIME",
        "SMTPUTF8",
        "RET=HDRS",
        "ENVID=id+2B1",
        "NOTIFY=SUCCESS,FAILURE",
    ] {
        assert!(log.contains(p), "{p} missing:\n{log}");
    }
    // Too big for the announced SIZE: refused before anything is sent, permanently.
    let big = vec![b'x'; 1_000_001];
    let out = run(
        plain(t.path(), fake.port()).args(["-f", "a@a.test", "b@b.test"]),
        &big,
    );
    fails(&out, 65, "over the server's limit");
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
}

#[test]
fn credentials_go_only_over_tls_unless_tls_none_is_explicit() {
    let script = Script {
        ehlo: "250-fake.test\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n",
        ..Script::default()
    };
    let t = tempfile::tempdir().unwrap();
    // TLS is the default: the server offers no STARTTLS, so no AUTH, no mail.
    let fake = Fake::start(script.clone());
    let out = run(
        msubmit(t.path()).args([
            "--host",
            "127.0.0.1",
            "--port",
            &fake.port().to_string(),
            "--user",
            "u",
            "--password-command",
            "echo pw",
            "-f",
            "a@a.test",
            "b@b.test",
        ]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(!fake.log_text().contains("AUTH"), "{}", fake.log_text());
    // --tls none says the user wants clear text: XOAUTH2 with the token from the command.
    let fake = Fake::start(script);
    let out = run(
        plain(t.path(), fake.port()).args([
            "--user",
            "u@x.test",
            "--auth",
            "xoauth2",
            "--password-command",
            "echo tok",
            "-f",
            "a@a.test",
            "b@b.test",
        ]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // base64("user=u@x.test\x01auth=Bearer tok\x01\x01")
    assert!(
        fake.log_text()
            .contains("AUTH XOAUTH2 dXNlcj11QHgudGVzdAFhdXRoPUJlYXJlciB0b2sBAQ=="),
        "{}",
        fake.log_text()
    );
}

#[test]
fn flush_uses_one_connection_and_keeps_refused_messages_in_failed() {
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    for (i, rcpt) in ["a@b.test", "nosuch@b.test", "c@b.test"].iter().enumerate() {
        let out = run(
            msubmit(t.path()).args(["--queue-dir", q, "--queue", "-f", "a@a.test", rcpt]),
            format!("Subject: q{i}\n\nx\n").as_bytes(),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        // Distinct queue times keep the order of sending fixed.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let fake = Fake::start(Script {
        rcpt: vec![("nosuch@", "550 5.1.1 no such user\r\n")],
        ..Script::default()
    });
    let out = run(
        plain(t.path(), fake.port()).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    fails(&out, 67, "RCPT TO:<nosuch@b.test>: 550 5.1.1 no such user");
    assert_eq!(fake.accepted.lock().unwrap().len(), 2);
    let log = fake.log_text();
    assert_eq!(log.matches("EHLO").count(), 1, "{log}");
    assert!(log.contains("RSET"), "{log}");
    assert!(files(&qdir.join("new")).is_empty());
    assert_eq!(files(&qdir.join("failed")).len(), 1);
    let out = run(msubmit(t.path()).args(["--queue-dir", q, "--list"]), b"");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("FAILED") && listing.contains("550 5.1.1"),
        "{listing}"
    );
}

#[test]
fn flush_reconnects_after_abandoning_a_partly_refused_message() {
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    for (i, rcpts) in [&["ok@b.test", "nosuch@b.test"][..], &["ok@b.test"][..]]
        .iter()
        .enumerate()
    {
        let out = run(
            msubmit(t.path())
                .args(["--queue-dir", q, "--queue", "-f", "a@a.test"])
                .args(*rcpts),
            format!("Subject: p{i}\n\nx\n").as_bytes(),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let fake = Fake::start(Script {
        rcpt: vec![("nosuch@", "550 5.1.1 no such user\r\n")],
        ..Script::default()
    });
    let out = run(
        plain(t.path(), fake.port()).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    fails(&out, 67, "RCPT TO:<nosuch@b.test>: 550 5.1.1");
    // With PIPELINING the server already said 354; the only way to send nothing to ok@ is
    // to drop that connection, so the next message goes over a new one.
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    assert!(String::from_utf8_lossy(&accepted[0]).contains("Subject: p1"));
    assert_eq!(
        fake.log_text().matches("EHLO").count(),
        2,
        "{}",
        fake.log_text()
    );
    assert_eq!(files(&qdir.join("failed")).len(), 1);
}

#[test]
fn a_server_that_does_not_speak_smtp_is_temporary() {
    let (_fake, out) = one_shot(
        Script {
            greeting: "HTTP/1.1 400 Bad Request\r\n",
            ..Script::default()
        },
        &["-f", "a@a.test", "b@b.test"],
    );
    fails(&out, 75, "malformed reply line");
}

#[test]
fn a_large_message_streams_through_intact() {
    if !have(&["/usr/sbin/smtp-sink"]) {
        return;
    }
    let sink = Sink::start();
    let t = tempfile::tempdir().unwrap();
    let mut msg = b"From: a@a.test\nDate: x\nMessage-ID: <big@a.test>\nSubject: big\n\n".to_vec();
    for i in 0..120_000u32 {
        msg.extend_from_slice(
            format!(
                "{}line {i} {}\n",
                if i % 7 == 0 { "." } else { "" },
                "z".repeat(30)
            )
            .as_bytes(),
        );
    }
    assert!(msg.len() > 4 << 20);
    let out = run(plain(t.path(), sink.port).args(["-i", "b@b.test"]), &msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dump = only(&sink);
    assert_eq!(arrived(&dump), &msg[..], "the message changed on the way");
}

#[test]
fn queue_on_failure_keeps_temporary_failures_only() {
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    let down = free_port();
    let out = run(
        plain(t.path(), down).args([
            "--queue-dir",
            q,
            "--queue-on-failure",
            "-f",
            "a@a.test",
            "b@b.test",
        ]),
        b"Subject: later\n\nx\n",
    );
    fails(&out, 0, "queued as");
    assert_eq!(files(&qdir.join("new")).len(), 1);
    // A permanent refusal is not queued: it would fail again.
    let fake = Fake::start(Script {
        rcpt: vec![("nosuch@", "550 5.1.1 no such user\r\n")],
        ..Script::default()
    });
    let out = run(
        plain(t.path(), fake.port()).args([
            "--queue-dir",
            q,
            "--queue-on-failure",
            "-f",
            "a@a.test",
            "nosuch@b.test",
        ]),
        b"Subject: never\n\nx\n",
    );
    fails(&out, 67, "550 5.1.1");
    assert_eq!(files(&qdir.join("new")).len(), 1);
    // The queued one goes out with the next flush.
    let out = run(
        plain(t.path(), fake.port()).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    assert!(String::from_utf8_lossy(&accepted[0]).contains("Subject: later"));
}

#[test]
fn a_recipient_limit_splits_the_message_into_transactions() {
    let fake = Fake::start(Script {
        max_rcpts: Some(2),
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let out = run(
        plain(t.path(), fake.port()).args([
            "-f",
            "a@a.test",
            "r1@b.test,r2@b.test,r3@b.test,r4@b.test,r5@b.test",
        ]),
        b"Subject: many\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // 2 + 2 + 1 recipients: three transactions over one connection.
    assert_eq!(fake.accepted.lock().unwrap().len(), 3);
    let log = fake.log_text();
    assert_eq!(log.matches("EHLO").count(), 1, "{log}");
    assert_eq!(log.matches("RCPT TO:<r5@b.test>").count(), 3, "{log}");
}

#[test]
fn a_flush_remembers_the_recipients_a_split_transaction_delivered() {
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    let out = run(
        msubmit(t.path()).args([
            "--queue-dir",
            q,
            "--queue",
            "-f",
            "a@a.test",
            "r1@b.test,r2@b.test,r3@b.test",
        ]),
        b"Subject: split\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Two recipients per transaction: r1 and r2 are delivered, then the server fails the
    // transaction for r3 temporarily.
    let fake = Fake::start(Script {
        max_rcpts: Some(2),
        refuse_after: Some((1, "451 4.3.0 try again later\r\n")),
        ..Script::default()
    });
    let out = run(
        plain(t.path(), fake.port()).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    fails(&out, 75, "451 4.3.0");
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
    let out = run(msubmit(t.path()).args(["--queue-dir", q, "--list"]), b"");
    let listing = String::from_utf8_lossy(&out.stdout);
    for line in [
        "delivered: r1@b.test",
        "delivered: r2@b.test",
        "attempts: 1",
    ] {
        assert!(listing.contains(line), "{line} missing: {listing}");
    }
    assert!(!listing.contains("delivered: r3@"), "{listing}");
    // Due again: only r3 is sent to.
    for f in files(&qdir.join("state")) {
        let state = std::fs::read_to_string(&f).unwrap();
        let due: Vec<String> = state
            .lines()
            .map(|l| match l.split_once(' ') {
                // No time of a last attempt: the recorded next try (now) decides.
                Some((k @ ("next" | "last"), _)) => format!("{k} 0"),
                _ => l.to_string(),
            })
            .collect();
        std::fs::write(&f, due.join("\n") + "\n").unwrap();
    }
    let fake = Fake::start(Script::default());
    let out = run(
        plain(t.path(), fake.port()).args(["--queue-dir", q, "--flush"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let log = fake.log_text();
    assert!(log.contains("RCPT TO:<r3@b.test>"), "{log}");
    assert!(
        !log.contains("r1@b.test") && !log.contains("r2@b.test"),
        "{log}"
    );
    assert!(files(&qdir.join("new")).is_empty());
    assert!(files(&qdir.join("state")).is_empty());
}

#[test]
fn mailq_and_newaliases_links_behave_as_sendmails() {
    // Postfix, sendmail and ssmtp install mailq and newaliases as links to sendmail; with
    // msubmit as the system's sendmail they are links to msubmit.
    let t = tempfile::tempdir().unwrap();
    let links = t.path().join("bin");
    std::fs::create_dir(&links).unwrap();
    for name in ["mailq", "newaliases"] {
        std::os::unix::fs::symlink(bin!("msubmit"), links.join(name)).unwrap();
    }
    let mailq = || tool(links.join("mailq"), t.path());
    // mailq is msubmit --list (sendmail -bp), the default queue included.
    let out = run(&mut mailq(), b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Mail queue is empty\n"
    );
    let out = run(
        msubmit(t.path()).args(["--queue", "-f", "a@a.test", "b@b.test"]),
        b"Subject: queued\n\nbody\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&mut mailq(), b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("to: b@b.test"), "{listing}");
    // Its diagnostics carry its own name.
    let out = run(mailq().args(["--queue-dir", "/dev/null/q"]), b"");
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).starts_with("mailq: "), "{}", stderr(&out));

    // newaliases (and -bi, and Postfix's -I): no alias database to rebuild; exit 0, quietly,
    // reading nothing and sending nothing, whatever options an install script adds.
    let mut calls = vec![tool(links.join("newaliases"), t.path())];
    calls.push(tool(links.join("newaliases"), t.path()));
    calls[1].arg("-oA/etc/aliases");
    for flag in ["-bi", "-I"] {
        let mut c = msubmit(t.path());
        c.arg(flag);
        calls.push(c);
    }
    for mut c in calls {
        let out = run(&mut c, b"To: x@y.test\n\nnot a message to send\n");
        assert_eq!(code(&out), 0, "{c:?}: {}", stderr(&out));
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{c:?} not quiet"
        );
    }
    let out = run(&mut mailq(), b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("to: ").count(),
        1
    );
}

/// The mbox entries of `home`'s dead.letter (none when it does not exist), each its `From `
/// line and the message, without the empty line that ends it.
fn dead_letters(home: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(home.join("dead.letter")).unwrap_or_default();
    if text.is_empty() {
        return Vec::new();
    }
    assert!(
        text.starts_with("From ") && text.ends_with("\n\n"),
        "{text:?}"
    );
    text[..text.len() - 1]
        .split("\n\nFrom ")
        .map(|e| format!("From {}\n", e.strip_prefix("From ").unwrap_or(e)))
        .map(|e| {
            e.strip_suffix("\n\n")
                .map(|e| format!("{e}\n"))
                .unwrap_or(e)
        })
        .collect()
}

#[test]
fn a_message_neither_sent_nor_queued_is_saved_to_dead_letter() {
    use std::os::unix::fs::PermissionsExt;
    let fake = Fake::start(Script {
        rcpt: vec![("nosuch@", "550 5.1.1 no such user\r\n")],
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let dead = home.join("dead.letter");
    let msg = b"To: nosuch@b.test\nBcc: hidden@c.test\nSubject: keep me\n\nFrom the start.\n>From here\n.\nend\n";
    // A refused recipient and no queue: exit 67 as before, the message in ~/dead.letter.
    let out = run(plain(home, fake.port()).args(["-f", "a@a.test", "-t"]), msg);
    fails(
        &out,
        67,
        &format!(
            "550 5.1.1 no such user (message saved in {})",
            dead.display()
        ),
    );
    let mode = std::fs::metadata(&dead).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let entries = dead_letters(home);
    assert_eq!(entries.len(), 1);
    let (from_line, saved) = entries[0].split_once('\n').unwrap();
    assert!(from_line.starts_with("From a@a.test "), "{from_line}");
    // The input as given, Bcc included (to send it again with -t), From lines quoted.
    assert_eq!(
        saved,
        "To: nosuch@b.test\nBcc: hidden@c.test\nSubject: keep me\n\n>From the start.\n>>From here\n.\nend\n"
    );

    // Each failure appends: the server unreachable without --queue-on-failure (75), a broken
    // configuration (78: the message is read first), no recipients with -t (65), a queue that
    // cannot be written.
    let down = free_port();
    let bad_config = home.join("bad.conf");
    std::fs::write(&bad_config, "account\n").unwrap();
    let not_a_dir = home.join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let queue_in_file = not_a_dir.join("queue");
    let cases: [(Command, &[u8], i32, &str); 4] = [
        (plain(home, down), b"Subject: down\n\nx\n", 75, "connect"),
        (
            {
                let mut c = plain(home, fake.port());
                c.arg("-C").arg(&bad_config);
                c
            },
            b"Subject: config\n\nx\n",
            78,
            "account needs one name",
        ),
        (
            plain(home, fake.port()),
            b"Subject: nobody\n\nx\n",
            65,
            "no recipients: the message has no To:",
        ),
        (
            {
                let mut c = msubmit(home);
                c.arg("--queue").arg("--queue-dir").arg(&queue_in_file);
                c
            },
            b"Subject: queue\n\nx\n",
            -2,
            "",
        ),
    ];
    for (i, (mut cmd, input, want, needle)) in cases.into_iter().enumerate() {
        let args = if want == 65 {
            &["-t"][..]
        } else {
            &["-f", "a@a.test", "b@b.test"]
        };
        let out = run(cmd.args(args), input);
        if want != -2 {
            fails(&out, want, needle);
        } else {
            assert_ne!(code(&out), 0, "{}", stderr(&out));
        }
        assert!(
            stderr(&out).contains(&format!("(message saved in {})", dead.display())),
            "{}",
            stderr(&out)
        );
        let entries = dead_letters(home);
        assert_eq!(entries.len(), i + 2, "{entries:?}");
        let subject = String::from_utf8_lossy(&input[..input.len() - 4]).into_owned();
        assert!(
            entries[i + 1].ends_with(&format!("{subject}\n\nx\n")),
            "{entries:?}"
        );
    }
    assert!(fake.accepted.lock().unwrap().is_empty());

    // Queued after a temporary failure, or an empty input: nothing to save.
    let q = home.join("queue");
    let out = run(
        plain(home, down)
            .args(["--queue-on-failure", "--queue-dir"])
            .arg(&q)
            .args(["-f", "a@a.test", "b@b.test"]),
        b"Subject: queued\n\nx\n",
    );
    fails(&out, 0, "queued as");
    let out = run(plain(home, fake.port()).arg("-t"), b"");
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(!stderr(&out).contains("saved"), "{}", stderr(&out));
    assert_eq!(dead_letters(home).len(), 5);

    // $HOME says where; when the message cannot be saved there either, the failure is said
    // and then that: exit 75, so the caller keeps the message.
    let other = home.join("other");
    std::fs::create_dir(&other).unwrap();
    let out = run(
        plain(home, fake.port())
            .env("HOME", &other)
            .args(["-f", "a@a.test", "nosuch@b.test"]),
        b"Subject: elsewhere\n\nx\n",
    );
    fails(
        &out,
        67,
        &format!("(message saved in {}/dead.letter)", other.display()),
    );
    assert_eq!(dead_letters(&other).len(), 1);
    let gone = home.join("no/such/home");
    let out = run(
        plain(home, fake.port())
            .env("HOME", &gone)
            .args(["-f", "a@a.test", "nosuch@b.test"]),
        b"Subject: lost?\n\nx\n",
    );
    fails(&out, 75, "550 5.1.1 no such user\n");
    fails(
        &out,
        75,
        &format!("msubmit: save message to {}/dead.letter: ", gone.display()),
    );
    assert!(
        stderr(&out).contains("neither sent nor saved"),
        "{}",
        stderr(&out)
    );
}
