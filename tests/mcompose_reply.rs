//! mcompose's replies, forwards, drafts and the edit cycle, through the real binary, checked
//! with Python's `email` package and mailparse.

mod common;
#[path = "support/mcompose.rs"]
mod support;

use common::{code, run, stderr};
use std::path::Path;
use support::*;

#[test]
fn reply_and_reply_all() {
    let t = T::new();
    let orig = sample_original(&t);
    let o = orig.to_str().unwrap();
    let msg = t.ok(
        &["-f", "me@example.org", "--reply", o],
        b"Tuesday is fine.\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "bjorn@example.net");
    assert_eq!(py(&p, "n:to"), "Björn");
    assert!(!p.contains_key("h:cc"));
    assert_eq!(py(&p, "h:subject"), "Re: Planning");
    assert_eq!(py(&p, "h:in-reply-to"), "<orig.2@example.net>");
    assert_eq!(
        py(&p, "h:references"),
        "<root.1@example.net> <orig.2@example.net>"
    );
    assert_eq!(
        py(&p, "text"),
        "On Mon, 2 Nov 2026 10:00:00 +0100, Björn wrote:\n\
         > Shall we meet on Tuesday? Grüße\n>\n> Björn\n\nTuesday is fine.\n"
    );

    let all = t.ok(
        &["-f", "Me <me@example.org>", "--reply", o, "--all"],
        b"ok\n",
    );
    let p = python(&all);
    assert_eq!(py(&p, "a:to"), "bjorn@example.net");
    assert_eq!(py(&p, "a:cc"), "other@example.com, third@example.com");
}

#[test]
fn forward_attaches_the_original_as_message_rfc822() {
    let t = T::new();
    let orig = sample_original(&t);
    let msg = t.ok(
        &[
            "-f",
            "me@example.org",
            "-t",
            "boss@example.org",
            "--forward",
            orig.to_str().unwrap(),
        ],
        b"FYI\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "h:subject"), "Fwd: Re: RE: Planning");
    assert_eq!(py(&p, "text"), "FYI\n");
    assert_eq!(py(&p, "att1:type"), "message/rfc822");
    assert_eq!(py(&p, "att1:subject"), "Re: RE: Planning");
    assert_eq!(
        py(&p, "att1:text"),
        "Shall we meet on Tuesday? Grüße\n\nBjörn\n"
    );
    let parsed = mailparse::parse_mail(&msg).unwrap();
    assert_eq!(parsed.subparts[1].ctype.mimetype, "message/rfc822");
    assert_eq!(
        parsed.subparts[1].get_body_raw().unwrap(),
        std::fs::read(&orig).unwrap()
    );
}

#[test]
fn drafts_give_headers_attachments_and_body() {
    let t = T::new();
    let att = t.write("plan.pdf", b"%PDF-1.7 plan");
    let draft = t.write(
        "draft.eml",
        format!(
            "From: Me <me@example.org>\nTo: a@example.org,\n b@example.org\nCc:\nSubject: Grüße vom Entwurf\n\
             X-Custom: from the draft\nAttach: {}\nDate: ignored\n\nDraft body.\n",
            att.display()
        ),
    );
    let msg = t.ok(
        &[
            "--draft",
            draft.to_str().unwrap(),
            "-c",
            "extra@example.org",
        ],
        b"stdin is not read\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "a@example.org, b@example.org");
    assert_eq!(py(&p, "a:cc"), "extra@example.org");
    assert_eq!(py(&p, "h:subject"), "Grüße vom Entwurf");
    assert_eq!(py(&p, "h:x-custom"), "from the draft");
    assert_eq!(py(&p, "text"), "Draft body.\n");
    assert_eq!(py(&p, "att1:name"), "plan.pdf");
    assert_eq!(p["att1:data"], b"%PDF-1.7 plan");
    assert!(!head(&msg).contains("ignored"));
    let sloppy = t.write("sloppy.eml", "To: a@example.org\nforgot the empty line\n");
    let out = t.run(&["--draft", sloppy.to_str().unwrap()], b"");
    assert_eq!(code(&out), 65);
    assert!(
        stderr(&out).contains("forgot the empty line"),
        "{}",
        stderr(&out)
    );
    assert!(draft.exists(), "a given draft is never removed");
}

#[test]
fn edit_runs_the_editor_and_keeps_the_draft_when_anything_fails() {
    let t = T::new();
    // The editor appends to the body and sets the subject; the path reaches it as $1.
    let editor = t.write(
        "ed.sh",
        "#!/bin/sh\nsed -i 's/^Subject: .*/Subject: edited/' \"$1\"\necho 'typed in the editor' >> \"$1\"\n",
    );
    let ed = format!("sh {}", editor.display());
    let tmp = t.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = run(
        t.cmd().env("EDITOR", &ed).env("TMPDIR", &tmp).args([
            "-f",
            "me@example.org",
            "-t",
            "a@example.org",
            "-s",
            "orig",
            "--edit",
        ]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let p = python(&out.stdout);
    assert_eq!(py(&p, "h:subject"), "edited");
    assert_eq!(py(&p, "a:to"), "a@example.org");
    assert_eq!(py(&p, "text"), "typed in the editor\n");
    assert!(
        common::files(&tmp).is_empty(),
        "the draft is removed after success"
    );

    // VISUAL wins over EDITOR; an editor that fails keeps the draft.
    let out = run(
        t.cmd()
            .env("EDITOR", &ed)
            .env("VISUAL", "false")
            .env("TMPDIR", &tmp)
            .args(["-t", "a@example.org", "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("draft kept in"), "{}", stderr(&out));
    assert_eq!(common::files(&tmp).len(), 1);

    // A bad address typed in the editor: exit 65, the draft is kept with the typo.
    let typo = t.write(
        "typo.sh",
        "#!/bin/sh\nsed -i 's/^To: .*/To: broken@/' \"$1\"\n",
    );
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", typo.display()))
            .env("TMPDIR", &tmp)
            .args(["-t", "a@example.org", "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(stderr(&out).contains("draft kept in"));
    let kept: Vec<_> = common::files(&tmp);
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter()
            .any(|k| std::fs::read_to_string(k).unwrap().contains("To: broken@"))
    );

    // Emptying the draft cancels; nothing is left behind.
    let empty = t.write("empty.sh", "#!/bin/sh\n: > \"$1\"\n");
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", empty.display()))
            .env("TMPDIR", &tmp)
            .args(["-t", "a@example.org", "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(common::files(&tmp).len(), 2);

    // A hostile draft file name is an argument, never shell text.
    let evil = t.write("x'; touch pwned; '.eml", "To: a@example.org\n\nbody\n");
    let out = run(
        t.cmd()
            .env("EDITOR", "true")
            .args(["--draft", evil.to_str().unwrap(), "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!t.path("pwned").exists() && !Path::new("pwned").exists());
}

#[test]
fn a_reply_to_ones_own_message_goes_to_its_recipients() {
    let t = T::new();
    let sent = t.write(
        "sent.eml",
        "From: Me <me@example.org>\nTo: friend@example.net\nSubject: plan\nMessage-ID: <s.1@example.org>\n\nhi\n",
    );
    let msg = t.ok(
        &["-f", "me@example.org", "--reply", sent.to_str().unwrap()],
        b"more\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "friend@example.net");
    assert_eq!(py(&p, "h:subject"), "Re: plan");
    assert_eq!(py(&p, "h:references"), "<s.1@example.org>");
}

#[test]
fn edit_starts_from_the_reply_quote_and_forward_attachment() {
    let t = T::new();
    let orig = sample_original(&t);
    // The editor checks what it was given, then writes the answer under the quote.
    let editor = t.write(
        "ed.sh",
        "#!/bin/sh\ngrep -q '^> Shall we meet on Tuesday' \"$1\" || exit 3\n\
         grep -q '^To: Björn <bjorn@example.net>' \"$1\" || exit 4\n\
         echo 'Yes.' >> \"$1\"\n",
    );
    let tmp = t.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", editor.display()))
            .env("TMPDIR", &tmp)
            .args([
                "-f",
                "me@example.org",
                "--reply",
                orig.to_str().unwrap(),
                "--edit",
            ]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let p = python(&out.stdout);
    assert_eq!(py(&p, "h:in-reply-to"), "<orig.2@example.net>");
    assert!(
        py(&p, "text").ends_with(">\n> Björn\nYes.\n"),
        "{}",
        py(&p, "text")
    );

    let check = t.write(
        "fwd.sh",
        "#!/bin/sh\ngrep -q '^Attach: .*orig.eml:message/rfc822$' \"$1\" || exit 3\n",
    );
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", check.display()))
            .env("TMPDIR", &tmp)
            .args([
                "-f",
                "me@example.org",
                "-t",
                "x@example.org",
                "--forward",
                orig.to_str().unwrap(),
                "--edit",
            ]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(py(&python(&out.stdout), "att1:subject"), "Re: RE: Planning");
    assert!(common::files(&tmp).is_empty());
}
