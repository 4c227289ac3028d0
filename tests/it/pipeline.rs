//! The five-step chain as users run it, through the real binaries only:
//! `mcompose | msubmit -t` → `mreceive` → `mdeliver` → Maildir, and the bytes that arrive
//! are what was composed (headers decoded, attachment byte for byte, Bcc gone).

use crate::common;
use crate::common::mreceive;
use crate::common::smtp;

use common::{code, messages, stderr, tool};
use mailparse::MailHeaderMap;
use mreceive::Server;
use smtp::{Fake, Script};
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn compose_submit_receive_deliver() {
    let md = bin!("mdeliver");
    let s = Server::start(&["-c", md.to_str().unwrap()]);
    let home = s.dir.path();
    let attachment: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let att_path = home.join("data.bin");
    std::fs::write(&att_path, &attachment).unwrap();

    // mcompose | msubmit -t, as a shell pipeline would run them.
    let mut compose: Command = tool(bin!("mcompose"), home);
    compose
        .args(["-f", "Jürgen <j@other.test>", "-t", "Bob <bob@local.test>"])
        .args(["-b", "carol@local.test", "-s", "Grüße, end to end"])
        .arg("-a")
        .arg(&att_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut composer = compose.spawn().unwrap();
    composer
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello Bob,\n.\nthe line above is a lone dot.\n")
        .unwrap();
    let mut submit: Command = tool(bin!("msubmit"), home);
    submit
        .args(["--host", "127.0.0.1", "--port", &s.port.to_string()])
        .args(["--tls", "none", "-t", "-i"])
        .stdin(composer.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = common::wait_output(submit.spawn().unwrap(), std::time::Duration::from_secs(60));
    let composed = composer.wait().unwrap();
    assert!(composed.success(), "mcompose failed");
    assert_eq!(code(&out), 0, "msubmit: {}", stderr(&out));

    for user in ["bob", "carol"] {
        let got = messages(&s.maildir(user));
        assert_eq!(got.len(), 1, "{user}: {got:?}");
        let raw = std::fs::read(&got[0]).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with(&format!(
                "Return-Path: <j@other.test>\nDelivered-To: {user}@local.test\nReceived: from "
            )),
            "{text}"
        );
        assert!(!text.contains("\r\n"), "Maildir files keep LF line ends");
        let mail = mailparse::parse_mail(&raw).unwrap();
        assert_eq!(
            mail.headers.get_all_values("Bcc").len(),
            0,
            "Bcc reached {user}"
        );
        assert_eq!(
            mail.headers.get_first_value("Subject").as_deref(),
            Some("Grüße, end to end")
        );
        let parts = &mail.subparts;
        assert_eq!(parts.len(), 2, "text and attachment");
        let body = parts[0].get_body().unwrap();
        assert!(body.contains("Hello Bob,\n.\nthe line above"), "{body:?}");
        assert_eq!(parts[1].get_body_raw().unwrap(), attachment);
    }
}

/// Issue 8 item 1: `printf 'Report below.\n.\nRegards\n' | mcompose … -a FILE | msubmit -t`, a
/// shell pipeline without -i, delivered only "Report below." (the attachment was gone). The
/// message must reach the server byte for byte as mcompose wrote it, the lone dot stuffed on
/// the wire.
#[test]
fn a_lone_dot_in_a_composed_body_does_not_cut_the_message() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let attachment: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(home.join("q3.pdf"), &attachment).unwrap();
    let script = r#"
        printf 'Report below.\n.\nRegards\n' |
        { "$1" -f a@x.test -t b@y.test -s s -a "$HOME/q3.pdf"; echo $? >"$HOME/mcompose.rc"; } |
        tee "$HOME/composed.eml" |
        "$2" --host 127.0.0.1 --port "$3" --tls none -t
    "#;
    let mut sh = tool("sh".into(), home);
    sh.args(["-c", script, "sh"])
        .arg(bin!("mcompose"))
        .arg(bin!("msubmit"))
        .arg(fake.port().to_string());
    let out = common::run(&mut sh, b"");
    assert_eq!(code(&out), 0, "msubmit: {}", stderr(&out));
    let rc = std::fs::read_to_string(home.join("mcompose.rc")).unwrap();
    assert_eq!(rc.trim(), "0", "mcompose failed: {}", stderr(&out));

    let composed = std::fs::read(home.join("composed.eml")).unwrap();
    assert!(
        String::from_utf8_lossy(&composed).contains("\nReport below.\n.\nRegards\n"),
        "mcompose wrote the lone dot as it is"
    );
    let wire = fake.accepted.lock().unwrap().clone();
    assert_eq!(wire.len(), 1);
    assert!(
        String::from_utf8_lossy(&wire[0]).contains("\r\nReport below.\r\n..\r\nRegards\r\n"),
        "the lone dot is stuffed on the wire"
    );
    // SMTP carries CRLF line ends; otherwise the server got what mcompose wrote.
    let want = String::from_utf8_lossy(&composed).replace('\n', "\r\n");
    let got = fake.messages().remove(0);
    assert_eq!(String::from_utf8_lossy(&got), want);
    let mail = mailparse::parse_mail(&got).unwrap();
    assert_eq!(mail.subparts.len(), 2, "text and attachment");
    assert_eq!(mail.subparts[1].get_body_raw().unwrap(), attachment);
}

/// Issue 8 item 4: `mcompose --edit | msubmit -t` with a refused recipient lost the text:
/// mcompose removes its draft once its output is written whole, and msubmit then failed.
/// Now msubmit keeps what it read in ~/dead.letter and says so; the draft is gone as it
/// should be (nothing would ever clean up drafts of messages that went out).
#[test]
fn a_refused_edited_message_survives_in_dead_letter() {
    let fake = Fake::start(Script {
        rcpt: vec![("nosuch@", "550 5.1.1 <nosuch@y.test>: no such user\r\n")],
        ..Script::default()
    });
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let tmp = home.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // The editor types the body (and a line that mbox must quote).
    let editor = home.join("ed.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Three paragraphs of careful text.\\nFrom now on, no more.\\n' >> \"$1\"\n",
    )
    .unwrap();
    let script = r#"
        { "$1" -f a@x.test -t nosuch@y.test -s 'the report' --edit; echo $? >"$HOME/mcompose.rc"; } |
        tee "$HOME/composed.eml" |
        "$2" --host 127.0.0.1 --port "$3" --tls none -t
    "#;
    let mut sh = tool("sh".into(), home);
    sh.env("EDITOR", format!("sh {}", editor.display()))
        .env("TMPDIR", &tmp)
        .args(["-c", script, "sh"])
        .arg(bin!("mcompose"))
        .arg(bin!("msubmit"))
        .arg(fake.port().to_string());
    let out = common::run(&mut sh, b"");
    let dead = home.join("dead.letter");
    assert_eq!(code(&out), 67, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "msubmit: RCPT TO:<nosuch@y.test>: 550 5.1.1 <nosuch@y.test>: no such user \
             (message saved in {})",
            dead.display()
        )),
        "{}",
        stderr(&out)
    );
    let rc = std::fs::read_to_string(home.join("mcompose.rc")).unwrap();
    assert_eq!(rc.trim(), "0", "mcompose: {}", stderr(&out));
    assert!(
        common::files(&tmp).is_empty(),
        "mcompose's output was written whole, so its draft is removed"
    );
    assert!(fake.accepted.lock().unwrap().is_empty());

    // dead.letter holds what mcompose wrote, as one mbox entry.
    let composed = String::from_utf8(std::fs::read(home.join("composed.eml")).unwrap()).unwrap();
    assert!(composed.contains("\nThree paragraphs of careful text.\nFrom now on, no more.\n"));
    let saved = std::fs::read_to_string(&dead).unwrap();
    let (from_line, entry) = saved.split_once('\n').unwrap();
    assert!(from_line.starts_with("From a@x.test "), "{from_line}");
    let want = composed.replace("\nFrom now on", "\n>From now on") + "\n";
    assert_eq!(entry, want);
}

/// Issue 8 item 1, with the client people have: mutt with `set sendmail=...msubmit` (the
/// line msmtp users already have; mutt passes no -i) sends a body holding a lone dot and an
/// attachment, and the server gets all of it.
#[test]
fn mutt_through_msubmit_keeps_a_lone_dot_and_the_attachment() {
    if !common::have(&["mutt"]) {
        return;
    }
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let attachment: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(home.join("q3.pdf"), &attachment).unwrap();
    std::fs::write(
        home.join("muttrc"),
        format!(
            "set sendmail=\"{} --host 127.0.0.1 --port {} --tls none\"\n\
             set from=\"me@x.test\"\nset use_from=yes\nset envelope_from=yes\n\
             set record=\"\"\nset charset=\"utf-8\"\n",
            bin!("msubmit").display(),
            fake.port()
        ),
    )
    .unwrap();
    let mut mutt = tool("mutt".into(), home);
    mutt.args(["-n", "-F"])
        .arg(home.join("muttrc"))
        .args(["-s", "q3", "-a"])
        .arg(home.join("q3.pdf"))
        .args(["--", "bob@y.test"]);
    let out = common::run(&mut mutt, b"Report below.\n.\nRegards\n");
    assert_eq!(code(&out), 0, "mutt: {}", stderr(&out));
    let got = fake.messages();
    assert_eq!(got.len(), 1, "{}", fake.log_text());
    let mail = mailparse::parse_mail(&got[0]).unwrap();
    assert_eq!(mail.subparts.len(), 2, "text and attachment");
    let text = mail.subparts[0].get_body().unwrap();
    assert!(text.contains("Report below.\r\n.\r\nRegards"), "{text:?}");
    assert_eq!(mail.subparts[1].get_body_raw().unwrap(), attachment);
}
