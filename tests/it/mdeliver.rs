//! mdeliver: delivery, headers, loops, sizes and folders through the real binary.

use crate::common;
use common::*;
use std::fs;

fn mdeliver(home: &std::path::Path) -> std::process::Command {
    tool(bin!("mdeliver"), home)
}

#[test]
fn delivers_to_the_argument_with_lf_line_ends_and_trace_headers() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let out = run(
        mdeliver(t.path())
            .arg(&md)
            .args(["-f", "a@x.test", "-a", "b@y.test"]),
        b"From a@x.test Mon Jan  1 00:00:00 2024\r\nSubject: hi\r\n\r\nbody \xff\r\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "not quiet");
    assert_eq!(
        only_message(&md),
        b"Return-Path: <a@x.test>\nDelivered-To: b@y.test\nSubject: hi\n\nbody \xff\n"
    );
    assert!(files(&md.join("tmp")).is_empty());
}

#[test]
fn destination_falls_back_to_maildir_env_then_home() {
    let t = tempfile::tempdir().unwrap();
    let other = t.path().join("Other");
    let out = run(
        mdeliver(t.path()).env("MAILDIR", &other),
        b"Subject: 1\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&other).len(), 1);
    let out = run(&mut mdeliver(t.path()), b"Subject: 2\n\nx\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&t.path().join("Maildir")).len(), 1);
}

#[test]
fn envelope_comes_from_postfix_environment() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let out = run(
        mdeliver(t.path())
            .arg(&md)
            .env("SENDER", "")
            .env("RECIPIENT", "u@h.test"),
        b"Subject: x\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let m = only_message(&md);
    assert!(
        m.starts_with(b"Delivered-To: u@h.test\nSubject"),
        "{}",
        String::from_utf8_lossy(&m)
    );
}

#[test]
fn a_loop_is_refused_permanently_and_nothing_is_stored() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let out = run(
        mdeliver(t.path()).arg(&md).args(["-a", "Bob@Y.test"]),
        b"Received: by y.test\nDelivered-To: other@y.test\nDelivered-To: <bob@y.test>\n\
          Subject: x\n\nx\n",
    );
    assert_eq!(code(&out), 65);
    assert!(
        stderr(&out).starts_with("mdeliver: mail loop: "),
        "{}",
        stderr(&out)
    );
    assert!(messages(&md).is_empty());
    // Delivered-To in the body is not a loop.
    let out = run(
        mdeliver(t.path()).arg(&md).args(["-a", "bob@y.test"]),
        b"Subject: x\n\nDelivered-To: bob@y.test\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_delivery_agents_own_stamp_is_not_a_loop() {
    // Postfix's local(8) runs mailbox_command with a From_ line and its own Return-Path:,
    // X-Original-To: and Delivered-To: prepended (prepend_delivered_header = command), and
    // $RECIPIENT set: that is this delivery, not a loop.
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let postfix = b"From s@x.test  Sun Nov 29 15:00:00 2026\nReturn-Path: <s@x.test>\n\
        X-Original-To: bob@y.test\nDelivered-To: bob@y.test\n\
        Received: from x.test by y.test\nSubject: x\n\nx\n";
    let out = run(
        mdeliver(t.path())
            .arg(&md)
            .env("RECIPIENT", "bob@y.test")
            .env("SENDER", "s@x.test"),
        postfix,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 1);
    let stored = only_message(&md);
    // Postfix's Return-Path: and Delivered-To: say what ours would: neither is said twice.
    let text = String::from_utf8_lossy(&stored);
    assert_eq!(text.matches("Return-Path:").count(), 1, "{text}");
    assert_eq!(text.matches("Delivered-To:").count(), 1, "{text}");
    assert!(
        text.starts_with("Return-Path: <s@x.test>\nX-Original-To: bob@y.test\n"),
        "{text}"
    );
    // What was stored, coming round again under a new stamp, is a loop.
    let mut again =
        b"Return-Path: <s@x.test>\nDelivered-To: bob@y.test\nReceived: by y.test\n".to_vec();
    again.extend_from_slice(&stored);
    let out = run(
        mdeliver(t.path()).arg(&md).env("RECIPIENT", "bob@y.test"),
        &again,
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 1);
    let other = t.path().join("Other");
    // OpenSMTPD's stamp for a null sender, and getmail's: Delivered-To: alone on top.
    for stamped in [
        &b"Delivered-To: bob@y.test\nSubject: bounce\n\nx\n"[..],
        b"Delivered-To: bob@y.test\nReceived: from pop.y.test by h with POP3\nSubject: x\n\nx\n",
    ] {
        let out = run(
            mdeliver(t.path()).arg(&other).args(["-a", "bob@y.test"]),
            stamped,
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(messages(&other).len(), 2);
}

#[test]
fn a_pipe_back_into_mdeliver_under_a_stamp_ends_as_a_loop() {
    // The stored copy gets no second Delivered-To: under Postfix's stamp, but a rules pipe
    // does: an mdeliver fed by its own pipe (with the same rules) refuses the message
    // instead of piping it on for ever.
    let t = tempfile::tempdir().unwrap();
    let rules_dir = t.path().join(".config/mailpipe");
    fs::create_dir_all(&rules_dir).unwrap();
    let again = t.path().join("Again");
    fs::write(
        rules_dir.join("rules"),
        format!(
            "all pipe {} {}\n",
            bin!("mdeliver").display(),
            again.display()
        ),
    )
    .unwrap();
    let out = run(
        mdeliver(t.path())
            .arg(t.path().join("M"))
            .env("RECIPIENT", "bob@y.test"),
        b"Delivered-To: bob@y.test\nReceived: by y.test\nSubject: x\n\nx\n",
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mdeliver: mail loop: "),
        "{}",
        stderr(&out)
    );
    assert!(messages(&again).is_empty());
}

#[test]
fn a_missing_parent_of_the_maildir_is_not_created() {
    let t = tempfile::tempdir().unwrap();
    let typo = t.path().join("typo/deep/Maildir");
    let out = run(mdeliver(t.path()).arg(&typo), b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 73, "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "mdeliver: create maildir {}: {} does not exist\n",
            typo.display(),
            t.path().join("typo/deep").display()
        )
    );
    assert!(!t.path().join("typo").exists());
    // The Maildir itself, in a directory that exists, is created with tmp, new and cur.
    let md = t.path().join("Maildir");
    let out = run(mdeliver(t.path()).arg(&md), b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 1);
    assert!(md.join("tmp").is_dir());
    // $HOME/Maildir under a HOME that is not there is no reason to create the home.
    let gone = t.path().join("gone");
    let out = run(&mut mdeliver(&gone), b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 73, "{}", stderr(&out));
    assert!(!gone.exists());
    // $MAILDIR is the layout of the agent that set it (mreceive: BASE/USER/Maildir).
    let layout = t.path().join("base/bob/Maildir");
    let out = run(
        mdeliver(t.path()).env("MAILDIR", &layout),
        b"Subject: x\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&layout).len(), 1);
}

#[test]
fn max_size_refuses_permanently() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let out = run(
        mdeliver(t.path()).arg(&md).args(["--max-size", "1k"]),
        &[b'x'; 1025],
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(messages(&md).is_empty());
    let out = run(
        mdeliver(t.path()).arg(&md).args(["--max-size", "1k"]),
        &[b'x'; 1024],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn folders_are_created_with_marker_and_names_checked() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let out = run(
        mdeliver(t.path()).arg(&md).args(["--folder", "Lists.rust"]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md.join(".Lists.rust")).len(), 1);
    assert!(md.join(".Lists.rust/maildirfolder").is_file());
    for bad in ["../escape", "a/b", "..", ".x"] {
        let out = run(
            mdeliver(t.path()).arg(&md).args(["--folder", bad]),
            b"S: x\n\nx\n",
        );
        assert_eq!(code(&out), 64, "{bad}: {}", stderr(&out));
    }
    assert!(!t.path().join("escape").exists());
}

#[test]
fn flags_put_the_message_in_cur() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let out = run(
        mdeliver(t.path()).arg(&md).args(["--flags", "SF", "-v"]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.trim_end().ends_with(":2,FS"), "{printed}");
    assert_eq!(files(&md.join("cur")).len(), 1);
}

#[test]
fn an_unwritable_maildir_is_a_temporary_failure() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    fs::write(&md, b"a file, not a directory").unwrap();
    let out = run(mdeliver(t.path()).arg(&md), b"S: x\n\nx\n");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("mdeliver: "));
}

#[test]
fn envelope_with_newline_cannot_inject_headers() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let out = run(
        mdeliver(t.path())
            .arg(&md)
            .args(["-f", "a@b\nX-Injected: yes"]),
        b"S: x\n\nx\n",
    );
    assert_eq!(code(&out), 64);
    assert!(messages(&md).is_empty());
}

#[test]
fn usage_errors_exit_64() {
    let t = tempfile::tempdir().unwrap();
    let out = run(mdeliver(t.path()).arg("--no-such-flag"), b"");
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).starts_with("mdeliver: usage: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_large_message_streams_through_intact() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let mut msg = b"Subject: big\n\n".to_vec();
    for i in 0..200_000u32 {
        msg.extend_from_slice(format!("line {i} {}\n", "y".repeat(40)).as_bytes());
    }
    let out = run(mdeliver(t.path()).arg(&md), &msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(only_message(&md), msg);
}

#[test]
fn an_unwritable_stdout_after_delivery_is_only_a_warning() {
    // Exiting non-zero here would make the MTA retry and store the message twice.
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut cmd = mdeliver(t.path());
    cmd.arg(&md).arg("-v").stdin(std::process::Stdio::piped());
    cmd.stdout(full).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        i.write_all(b"Subject: x\n\nx\n").unwrap();
    }
    let out = wait_output(child, std::time::Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("stdout"), "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 1);
}

#[test]
fn dedupe_never_drops_a_message_whose_id_only_looks_the_same_lossily() {
    // Both ids are invalid UTF-8; read lossily they were the same string, and the second,
    // different message was dropped as a duplicate.
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    for msg in [
        &b"Message-ID: <\xff@x.test>\nSubject: one\n\nx\n"[..],
        b"Message-ID: <\xfe@x.test>\nSubject: two\n\nx\n",
    ] {
        let out = run(mdeliver(t.path()).arg(&md).arg("--dedupe"), msg);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(messages(&md).len(), 2);
}

#[test]
fn a_maildir_path_that_is_not_utf8_is_still_the_destination() {
    // std::env::var calls such a value unset: the message went to $HOME/Maildir instead.
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join(std::ffi::OsStr::from_bytes(b"M\xff"));
    let out = run(mdeliver(t.path()).env("MAILDIR", &md), b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 1);
    assert!(!t.path().join("Maildir").exists());
}

#[test]
fn a_delivered_to_with_a_blank_before_its_colon_is_still_a_loop() {
    // RFC 5322 §4.5 obsolete syntax; Postfix reads it as a field, and so must the loop check.
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let out = run(
        mdeliver(t.path()).arg(&md).args(["-a", "bob@y.test"]),
        b"Received: by y.test\nDelivered-To : bob@y.test\nSubject: x\n\nx\n",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(messages(&md).is_empty());
}

#[test]
fn no_message_is_refused_with_65_and_nothing_is_stored() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let big_blank = vec![b'\n'; 1_100_000];
    let inputs: [&[u8]; 5] = [
        b"",
        b"From a@x.test Mon Jan  1 00:00:00 2024\n",
        b"\n",
        b" \r\n\t\r\n",
        &big_blank,
    ];
    for input in inputs {
        let out = run(mdeliver(t.path()).arg(&md), input);
        assert_eq!(
            code(&out),
            65,
            "{:?}: {}",
            &input[..input.len().min(40)],
            stderr(&out)
        );
        assert_eq!(
            stderr(&out),
            "mdeliver: standard input: no message (empty, or only white space); nothing stored\n"
        );
        assert!(messages(&md).is_empty());
    }
    // -n says the same, before any rule is tried.
    let out = run(mdeliver(t.path()).arg("-n").arg(&md), b"");
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    // White space past the first 1 MiB still counts as a message when something follows it.
    let mut late = big_blank.clone();
    late.extend_from_slice(b"x\n");
    let out = run(mdeliver(t.path()).arg(&md), &late);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 1);
}

#[test]
fn a_failed_command_before_mdeliver_fails_the_pipeline() {
    // mailpipe(7)'s old example: mcompose refuses `bob` (no domain) and wrote nothing;
    // the pipeline's status is mdeliver's, which stored an empty message and exited 0.
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let script = format!(
        "{} -t bob -s lunch </dev/null | {} {}",
        bin!("mcompose").display(),
        bin!("mdeliver").display(),
        md.display()
    );
    let out = run(
        tool(std::path::PathBuf::from("/bin/sh"), t.path()).args(["-c", &script]),
        b"",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(stderr(&out).contains("mdeliver: standard input: no message"));
    assert!(messages(&md).is_empty());
}
