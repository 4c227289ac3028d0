//! mdeliver's filtering rules and duplicate suppression, through the real binary.

use crate::common;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mdeliver(home: &Path) -> Command {
    tool(bin!("mdeliver"), home)
}

/// A Maildir and a rules file under a fresh HOME.
struct Setup {
    t: tempfile::TempDir,
    md: PathBuf,
    rules: PathBuf,
}

impl Setup {
    fn new(rules: &str) -> Setup {
        let t = tempfile::tempdir().unwrap();
        let md = t.path().join("Maildir");
        let rules_path = t.path().join("rules");
        fs::write(&rules_path, rules).unwrap();
        Setup {
            t,
            md,
            rules: rules_path,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = mdeliver(self.t.path());
        c.current_dir(self.t.path())
            .arg(&self.md)
            .arg("--rules")
            .arg(&self.rules);
        c
    }

    fn deliver(&self, extra: &[&str], msg: &[u8]) -> std::process::Output {
        let out = run(self.cmd().args(extra), msg);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        out
    }

    /// Message counts of the inbox and the named folders.
    fn counts(&self, folders: &[&str]) -> Vec<usize> {
        let mut v = vec![messages(&self.md).len()];
        for f in folders {
            v.push(messages(&self.md.join(format!(".{f}"))).len());
        }
        v
    }
}

const RULES: &str = r#"
# every test kind, and every action
header List-Id contains rust-users          folder Lists.rust
header Subject matches '^\[ann(ounce)?\]'   copy Announce
header Subject: is "hello there"            flags FS folder Greetings
sender contains @spam.test                  discard
size > 10k                                  folder Big
recipient is archive@h.test                 copy Archive
not header X-Keep exists and header Subject contains drop  discard
"#;

#[test]
fn each_test_kind_files_into_its_folder() {
    let s = Setup::new(RULES);
    let f = ["Lists.rust", "Announce", "Greetings", "Big", "Archive"];
    s.deliver(
        &[],
        b"List-ID: <Rust-Users.lists.test>\nSubject: x\n\nbody\n",
    );
    assert_eq!(s.counts(&f), [0, 1, 0, 0, 0, 0], "header contains");
    s.deliver(&[], b"Subject: hello THERE\n\nbody\n");
    assert_eq!(s.counts(&f), [0, 1, 0, 1, 0, 0], "header is");
    let g = files(&s.md.join(".Greetings/cur"));
    assert!(g[0].to_str().unwrap().ends_with(":2,FS"), "flags: {g:?}");
    s.deliver(&["-f", "bob@spam.test"], b"Subject: buy\n\nbody\n");
    assert_eq!(s.counts(&f), [0, 1, 0, 1, 0, 0], "sender discard");
    let mut big = b"Subject: big\n\n".to_vec();
    big.resize(10 * 1024 + 1, b'x');
    s.deliver(&[], &big);
    assert_eq!(s.counts(&f), [0, 1, 0, 1, 1, 0], "size");
    s.deliver(&[], &big[..10 * 1024]);
    assert_eq!(s.counts(&f), [1, 1, 0, 1, 1, 0], "size at the limit");
    s.deliver(&[], b"Subject: please drop\n\nbody\n");
    assert_eq!(s.counts(&f), [1, 1, 0, 1, 1, 0], "not/and discard");
    s.deliver(&[], b"Subject: please drop\nX-Keep: 1\n\nbody\n");
    assert_eq!(s.counts(&f), [2, 1, 0, 1, 1, 0], "not/and passes");
}

#[test]
fn copy_continues_and_the_first_terminal_match_wins() {
    let s = Setup::new(RULES);
    let f = ["Lists.rust", "Announce", "Archive"];
    // Copies into Announce (regex on the decoded Subject) and Archive (recipient), then inbox.
    s.deliver(
        &["-a", "archive@h.test"],
        b"Subject: =?utf-8?q?[Announce]_caf=C3=A9?=\n\nbody\n",
    );
    assert_eq!(s.counts(&f), [1, 0, 1, 1]);
    // The earlier terminal rule wins over a later copy: Lists.rust only.
    s.deliver(
        &["-a", "archive@h.test"],
        b"List-Id: rust-users\nSubject: [ann] x\n\nbody\n",
    );
    assert_eq!(s.counts(&f), [1, 1, 1, 1]);
    // Each copy is the whole message with the trace headers.
    let copy = fs::read(&messages(&s.md.join(".Archive"))[0]).unwrap();
    assert!(copy.starts_with(b"Delivered-To: archive@h.test\nSubject: =?utf-8?q?[Ann"));
}

#[test]
fn without_a_match_the_message_goes_to_the_default_folder() {
    let s = Setup::new(RULES);
    s.deliver(
        &["--folder", "Other"],
        b"Subject: nothing special\n\nbody\n",
    );
    assert_eq!(s.counts(&["Other"]), [0, 1]);
}

#[test]
fn a_broken_rules_file_delivers_to_the_inbox_with_a_warning() {
    let s = Setup::new("header Subject contains x folder Good\nheader Subject frobs y folder Z\n");
    let out = s.deliver(&[], b"Subject: x\n\nbody\n");
    let err = stderr(&out);
    assert!(
        err.starts_with("mdeliver: rules: ") && err.contains(":2: unknown comparison \"frobs\""),
        "{err}"
    );
    assert_eq!(s.counts(&["Good"]), [1, 0]);

    // A file others could write is not trusted (its pipe commands would run as us).
    use std::os::unix::fs::PermissionsExt;
    fs::write(&s.rules, "all folder Good\n").unwrap();
    fs::set_permissions(&s.rules, fs::Permissions::from_mode(0o666)).unwrap();
    let out = s.deliver(&[], b"Subject: x\n\nbody\n");
    assert!(
        stderr(&out).contains("writable by others"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.counts(&["Good"]), [2, 0]);

    // Unreadable (a directory) and missing named files: same rule.
    fs::remove_file(&s.rules).unwrap();
    let out = s.deliver(&[], b"Subject: x\n\nbody\n");
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));
    fs::create_dir(&s.rules).unwrap();
    let out = s.deliver(&[], b"Subject: x\n\nbody\n");
    assert!(stderr(&out).starts_with("mdeliver: rules: "));
    assert_eq!(s.counts(&["Good"]), [4, 0]);
}

#[test]
fn rules_come_from_the_default_file_then_the_config_and_no_rules_wins() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let conf = t.path().join(".config/mailpipe");
    fs::create_dir_all(&conf).unwrap();
    // No rules file at all: quiet delivery to the inbox.
    let out = run(mdeliver(t.path()).arg(&md), b"Subject: a\n\nx\n");
    assert!(code(&out) == 0 && out.stderr.is_empty(), "{}", stderr(&out));
    fs::write(conf.join("rules"), "all folder FromDefault\n").unwrap();
    assert_eq!(code(&run(mdeliver(t.path()).arg(&md), b"S: a\n\nx\n")), 0);
    assert_eq!(messages(&md.join(".FromDefault")).len(), 1);
    fs::write(t.path().join("other"), "all folder FromConfig\n").unwrap();
    fs::write(conf.join("config"), "rules ~/other\n").unwrap();
    assert_eq!(code(&run(mdeliver(t.path()).arg(&md), b"S: a\n\nx\n")), 0);
    assert_eq!(messages(&md.join(".FromConfig")).len(), 1);
    let out = run(
        mdeliver(t.path()).arg(&md).arg("--no-rules"),
        b"S: a\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 2);
}

#[test]
fn pipe_runs_argv_directly_with_the_message_and_envelope() {
    let s = Setup::new("");
    let dir = s.t.path();
    // Commands run in mdeliver's working directory: the test's temporary one.
    let marker = dir.join("pwned");
    let out_file = dir.join("out;$(touch pwned); touch pwned");
    fs::write(
        &s.rules,
        format!(
            // tee gets a file name full of shell syntax; a shell would run it.
            "header Subject contains pipe-me pipe /usr/bin/tee '{}'\n\
             header Subject contains env pipe /bin/sh -c 'printf \"%s|%s\\n\" \"$SENDER\" \"$RECIPIENT\" >\"$0\"; cat >>\"$0\"' '{}'\n",
            out_file.display(),
            dir.join("env").display()
        ),
    )
    .unwrap();
    let msg = format!(
        "Subject: pipe-me $(touch {m}); touch {m}; `touch {m}`\n\nbody\n",
        m = marker.display()
    );
    s.deliver(&["-f", "s@x.test", "-a", "r@y.test"], msg.as_bytes());
    let piped = fs::read(&out_file).expect("tee wrote the literal file name");
    assert_eq!(
        piped,
        format!("Return-Path: <s@x.test>\nDelivered-To: r@y.test\n{msg}").into_bytes()
    );
    assert!(!marker.exists(), "something ran a shell");
    assert!(messages(&s.md).is_empty(), "a pipe ends delivery");

    s.deliver(
        &["-f", "$(touch x)@x.test", "-a", "r@y.test"],
        b"Subject: env\n\nb\n",
    );
    let env = fs::read_to_string(dir.join("env")).unwrap();
    assert!(
        env.starts_with("$(touch x)@x.test|r@y.test\nReturn-Path:"),
        "{env}"
    );
}

#[test]
fn a_failing_pipe_is_a_temporary_failure() {
    for cmd in ["/bin/false", "/nonexistent/filter"] {
        let s = Setup::new(&format!("all copy Kept pipe {cmd}\n"));
        let out = run(&mut s.cmd(), b"Subject: x\n\nbody\n");
        assert_eq!(code(&out), 75, "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&format!("mdeliver: pipe to {cmd}: ")),
            "{}",
            stderr(&out)
        );
        assert!(messages(&s.md).is_empty());
    }
    // A filter that exits 0 without reading its input succeeded.
    let s = Setup::new("all pipe /bin/true\n");
    let mut big = b"Subject: x\n\n".to_vec();
    big.resize(4 << 20, b'y');
    s.deliver(&[], &big);
}

#[test]
fn dry_run_prints_the_plan_and_stores_nothing() {
    let s = Setup::new(RULES);
    let out = s.deliver(
        &["-n", "-a", "archive@h.test", "--flags", "S"],
        b"Subject: [ann] x\n\nbody\n",
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "store Announce flags S\nstore Archive flags S\nstore INBOX flags S\n"
    );
    assert!(!s.md.exists());
}

fn with_id(id: &str, n: usize) -> Vec<u8> {
    format!("Message-ID: <{id}>\nSubject: {n}\n\nbody {n}\n").into_bytes()
}

#[test]
fn dedupe_drops_a_second_copy_quietly() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let go = |extra: &[&str], msg: &[u8]| {
        let out = run(mdeliver(t.path()).arg(&md).args(extra), msg);
        assert!(code(&out) == 0 && out.stderr.is_empty(), "{}", stderr(&out));
    };
    go(&["--dedupe"], &with_id("a@x", 1));
    go(&["--dedupe"], &with_id("a@x", 2));
    go(&["--dedupe"], &with_id("b@x", 3));
    assert_eq!(messages(&md).len(), 2);
    assert!(md.join("mailpipe-dedupe").is_file());
    // Without --dedupe, or without a Message-ID, nothing is dropped.
    go(&[], &with_id("a@x", 4));
    go(&["--dedupe"], b"Subject: no id\n\nx\n");
    go(&["--dedupe"], b"Subject: no id\n\nx\n");
    assert_eq!(messages(&md).len(), 5);
    // The config key and an explicit cache file.
    fs::create_dir_all(t.path().join(".config/mailpipe")).unwrap();
    fs::write(t.path().join(".config/mailpipe/config"), "dedupe on\n").unwrap();
    go(&[], &with_id("b@x", 6));
    assert_eq!(messages(&md).len(), 5);
    let cache = t.path().join("cache");
    go(
        &["--dedupe-file", cache.to_str().unwrap()],
        &with_id("b@x", 7),
    );
    go(
        &["--dedupe-file", cache.to_str().unwrap()],
        &with_id("b@x", 8),
    );
    assert_eq!(messages(&md).len(), 6);
}

#[test]
fn dedupe_records_only_successful_deliveries() {
    let s = Setup::new("all pipe /bin/false\n");
    let out = run(s.cmd().arg("--dedupe"), &with_id("c@x", 1));
    assert_eq!(code(&out), 75);
    fs::write(&s.rules, "").unwrap();
    s.deliver(&["--dedupe"], &with_id("c@x", 1));
    assert_eq!(
        messages(&s.md).len(),
        1,
        "the retry was dropped as a duplicate"
    );
}

#[test]
fn concurrent_duplicates_store_exactly_one() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    for round in 0..5 {
        let id = format!("race{round}@x");
        let children: Vec<_> = (0..8)
            .map(|n| {
                let mut c = mdeliver(t.path());
                c.arg(&md).arg("--dedupe");
                let msg = with_id(&id, n);
                std::thread::spawn(move || run(&mut c, &msg))
            })
            .collect();
        for c in children {
            let out = c.join().unwrap();
            assert_eq!(code(&out), 0, "{}", stderr(&out));
        }
        assert_eq!(messages(&md).len(), round + 1, "round {round}");
    }
}

#[test]
fn the_examples_in_the_man_page_are_valid_rules() {
    use mailpipe::deliver::rules::{Facts, Rules};
    let man =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mailpipe-rules.5"))
            .unwrap();
    let examples = man.split(".SH EXAMPLES").nth(1).unwrap();
    let block = examples.split(".RS\n").nth(1).unwrap();
    let block = block.split("\n.RE").next().unwrap();
    let text = block
        .replace("\\-", "-")
        .replace("\\(aq", "'")
        .replace("\\e", "\\");
    let rules = Rules::parse(&text, "mailpipe-rules.5").unwrap();
    assert_eq!(rules.len(), 13);
    let plan = |msg: &[u8], sender: &str| -> Vec<String> {
        let facts = Facts {
            header: mailpipe::message::header::block(msg),
            body: mailpipe::deliver::rules::body_of(msg),
            sender,
            recipient: "me@example.org",
            size: 100,
        };
        rules
            .plan(&facts, "INBOX", "")
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(
        plan(b"List-Id: Debian <debian-user.lists.debian.org>\n", ""),
        ["store Lists.debian"]
    );
    assert_eq!(
        plan(b"List-Id: <Foo.lists.example.net>\n", ""),
        ["store Lists.Foo"]
    );
    let spamc = "filter /usr/bin/spamc";
    assert_eq!(
        plan(b"Subject: [ANNOUNCE] x\nX-Spam-Flag: YES\n", ""),
        [spamc, "store Announce", "store Junk flags S"]
    );
    assert_eq!(plan(b"Subject: hi\n", "x@junk.test"), [spamc, "discard"]);
    assert_eq!(
        plan(b"Cc: Team <team@example.org>\n", ""),
        [spamc, "store Team"]
    );
    assert_eq!(
        plan(b"Subject: news\n\nHello\nUnsubscribe: here\n", ""),
        [spamc, "store Bulk"]
    );
    assert_eq!(
        plan(b"From: The Boss <boss@example.org>\n", ""),
        [spamc, "store INBOX", "forward me@phone.example.org"]
    );
}

#[test]
fn body_tests_search_the_start_of_the_raw_body() {
    let s = Setup::new(
        "body contains 'click here to unsubscribe' folder Junk\n\
         body matches '^-- $' folder Signed\n",
    );
    let f = ["Junk", "Signed"];
    s.deliver(&[], b"Subject: hi\n\nHello,\nCLICK HERE to unsubscribe.\n");
    assert_eq!(s.counts(&f), [0, 1, 0], "body contains");
    s.deliver(&[], b"Subject: hi\n\nHello.\n-- \nme\n");
    assert_eq!(s.counts(&f), [0, 1, 1], "body matches at a line");
    // In the header it is no body test's business; past the first 256 KiB neither.
    s.deliver(&[], b"Subject: click here to unsubscribe\n\nx\n");
    let mut late = b"Subject: big\n\n".to_vec();
    late.resize(14 + (256 << 10), b'a');
    late.extend_from_slice(b"\nclick here to unsubscribe\n");
    s.deliver(&[], &late);
    assert_eq!(s.counts(&f), [2, 1, 1]);
}

#[test]
fn to_matches_an_address_in_any_recipient_field() {
    let s = Setup::new("to is rust-users@lists.test folder Lists\n");
    for h in [
        "To: Rust Users <RUST-USERS@lists.test>",
        "Cc: a@b.test, rust-users@lists.test",
        "Bcc: rust-users@lists.test",
        "Resent-To: rust-users@lists.test",
        "X-Envelope-To: rust-users@lists.test",
    ] {
        s.deliver(&[], format!("{h}\nSubject: s\n\nx\n").as_bytes());
    }
    assert_eq!(s.counts(&["Lists"]), [0, 5]);
    // Other fields, a display name, a longer address: not a recipient.
    for h in [
        "From: rust-users@lists.test",
        "Reply-To: rust-users@lists.test",
        "To: \"rust-users@lists.test\" <me@x.test>",
        "To: old-rust-users@lists.test",
    ] {
        s.deliver(&[], format!("{h}\n\nx\n").as_bytes());
    }
    assert_eq!(s.counts(&["Lists"]), [4, 5]);
}

#[test]
fn captured_groups_make_one_folder_per_list_and_nothing_outside() {
    let s = Setup::new("header List-Id matches '<([^>]*)>' folder Lists.$1\n");
    s.deliver(&[], b"List-Id: Rust <rust-users.lists.test>\n\nx\n");
    s.deliver(&[], b"List-Id: <rust-users.lists.test>\n\nx\n");
    s.deliver(&[], b"List-Id: Debian <debian-user.lists.test>\n\nx\n");
    assert_eq!(
        s.counts(&[
            "Lists.rust-users_lists_test",
            "Lists.debian-user_lists_test"
        ]),
        [0, 2, 1]
    );
    // A hostile List-Id stays one level under Lists, inside the Maildir.
    let before: Vec<_> = fs::read_dir(s.t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for id in ["../../x", "../x", "/tmp/x", "a/../../b", ".", ""] {
        s.deliver(&[], format!("List-Id: <{id}>\n\nx\n").as_bytes());
    }
    let after: Vec<_> = fs::read_dir(s.t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "something was created beside the Maildir");
    let mut folders: Vec<String> = fs::read_dir(&s.md)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".Lists."))
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        [
            ".Lists._",
            ".Lists.______x",
            ".Lists.___x",
            ".Lists._tmp_x",
            ".Lists.a_______b",
            ".Lists.debian-user_lists_test",
            ".Lists.rust-users_lists_test",
        ]
    );
    assert_eq!(s.counts(&["Lists._"]), [0, 2]);
    // A group the rule does not have is an error in the file: the inbox gets the message.
    fs::write(
        &s.rules,
        "header List-Id matches '<([^>]*)>' folder Lists.$2\n",
    )
    .unwrap();
    let out = s.deliver(&[], b"List-Id: <a.test>\n\nx\n");
    assert!(
        stderr(&out).contains(":1: folder \"Lists.$2\": $2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(messages(&s.md).len(), 1);
}

#[test]
fn filter_replaces_the_message_for_the_rules_after_it() {
    let s = Setup::new(
        r#"all filter /bin/sh -c 'printf "X-Spam-Flag: YES\r\n"; cat'
header X-Spam-Flag is yes flags S folder Junk
"#,
    );
    let msg = b"Subject: cheap\n\nbuy\n";
    s.deliver(&["-f", "s@x.test", "-a", "me@y.test"], msg);
    assert_eq!(s.counts(&["Junk"]), [0, 1]);
    let stored = fs::read(&messages(&s.md.join(".Junk"))[0]).unwrap();
    // Our trace on top of the filter's output (its CRLF made LF, as our input's is).
    assert_eq!(
        stored,
        [
            b"Return-Path: <s@x.test>\nDelivered-To: me@y.test\nX-Spam-Flag: YES\n".as_slice(),
            msg
        ]
        .concat()
    );
    // -n shows the filter and runs nothing.
    let out = s.deliver(&["-n"], msg);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "filter /bin/sh -c 'printf \"X-Spam-Flag: YES\\r\\n\"; cat'\nstore INBOX\n"
    );
}

#[test]
fn a_filter_that_fails_floods_or_hangs_is_a_temporary_failure() {
    let msg = b"Subject: s\n\nbody\n";
    for (filter, extra, why) in [
        ("/bin/sh -c 'cat; exit 3'", &[][..], "exited with status 3"),
        ("/bin/sh -c 'cat >/dev/null'", &[][..], "no message"),
        ("/nonexistent/spamc", &[][..], "no such file"),
        // Endless output: killed at twice the message and 1 MiB, or at --max-size.
        ("/usr/bin/yes", &[][..], "larger than 1048610 bytes"),
        (
            "/usr/bin/yes",
            &["--max-size", "10k"][..],
            "larger than 10240 bytes",
        ),
        // Never exits: killed after its time limit, with what it started.
        (
            "/bin/sh -c 'sleep 60 & sleep 60'",
            &["--timeout", "1"][..],
            "killed after 1 seconds",
        ),
    ] {
        let s = Setup::new(&format!("all copy Before filter {filter}\n"));
        let start = std::time::Instant::now();
        let out = run(s.cmd().args(extra), msg);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{filter}"
        );
        let err = stderr(&out);
        assert_eq!(code(&out), 75, "{filter}: {err}");
        assert!(err.starts_with("mdeliver: filter /"), "{filter}: {err}");
        assert!(err.contains(why), "{filter}: {err}");
        assert!(messages(&s.md).is_empty(), "{filter}");
        assert_eq!(s.counts(&["Before"]), [0, 1], "{filter}");
    }
}

/// An SMTP server on loopback, and a HOME whose msubmit configuration sends to it.
fn forward_setup(rules: &str) -> (Setup, crate::common::smtp::Fake) {
    let fake = crate::common::smtp::Fake::start(Default::default());
    let s = Setup::new(rules);
    let conf = s.t.path().join(".config/mailpipe");
    fs::create_dir_all(&conf).unwrap();
    fs::write(
        conf.join("config"),
        format!(
            "defaults\nhost 127.0.0.1\nport {}\ntls off\ntimeout 10\n",
            fake.port()
        ),
    )
    .unwrap();
    (s, fake)
}

#[test]
fn forward_sends_through_msubmit_keeping_the_sender_and_our_delivered_to() {
    let (s, fake) = forward_setup(
        "header Subject contains copy copy INBOX forward me@phone.test\n\
         all forward other@z.test third@z.test\n",
    );
    let msg = b"Subject: please copy\nFrom: a@x.test\n\nbody\n.\nmore\n";
    let out = s.deliver(&["-f", "s@x.test", "-a", "me@y.test"], msg);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert_eq!(messages(&s.md).len(), 1, "copy INBOX");
    let log = fake.log_text();
    assert!(log.contains("MAIL FROM:<s@x.test>"), "{log}");
    assert!(log.contains("RCPT TO:<me@phone.test>"), "{log}");
    let sent = fake.messages();
    assert_eq!(sent.len(), 1);
    let text = String::from_utf8_lossy(&sent[0]).replace("\r\n", "\n");
    assert!(text.starts_with("Delivered-To: me@y.test\n"), "{text}");
    assert!(!text.contains("Return-Path:"), "{text}");
    assert!(text.ends_with("\nbody\n.\nmore\n"), "{text}");

    // The null sender stays null; every address of the rule gets it.
    s.deliver(&["-f", "", "-a", "me@y.test"], b"Subject: bounce\n\nx\n");
    let log = fake.log_text();
    assert!(log.contains("MAIL FROM:<>"), "{log}");
    assert!(log.contains("RCPT TO:<other@z.test>") && log.contains("RCPT TO:<third@z.test>"));

    // Forwarded back to us through an MTA: a loop, refused (65), not a storm.
    let back = format!("Received: by mx.test\n{text}");
    let out = run(
        s.cmd().args(["-f", "s@x.test", "-a", "me@y.test"]),
        back.as_bytes(),
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert_eq!(fake.messages().len(), 2);
}

#[test]
fn a_forward_that_fails_is_a_temporary_failure() {
    // Nothing listens on the port msubmit is sent to.
    let (s, fake) = forward_setup("all forward me@phone.test\n");
    let port = fake.port();
    drop(fake);
    let conf = s.t.path().join(".config/mailpipe/config");
    let unused = free_port();
    let text = fs::read_to_string(&conf)
        .unwrap()
        .replace(&port.to_string(), &unused.to_string());
    fs::write(&conf, text).unwrap();
    let out = run(s.cmd().args(["-f", "s@x.test"]), b"Subject: s\n\nx\n");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mdeliver: forward to me@phone.test via /"),
        "{}",
        stderr(&out)
    );
    // The sendmail key names another command, run with sendmail's arguments, no shell.
    let argv_file = s.t.path().join("argv");
    fs::write(
        &conf,
        format!(
            "sendmail \"/bin/sh -c 'printf \\\"%s \\\" \\\"$@\\\" >{}' sendmail\"\n",
            argv_file.display()
        ),
    )
    .unwrap();
    s.deliver(&["-f", "s@x.test"], b"Subject: s\n\nx\n");
    assert_eq!(
        fs::read_to_string(&argv_file).unwrap(),
        "-i -fs@x.test -- me@phone.test "
    );
}

#[test]
fn log_says_which_rules_matched_and_what_was_done() {
    let s = Setup::new(
        "header Subject contains ann copy Announce\n\
         all filter /bin/cat\n\
         header Subject contains fail pipe /bin/false\n\
         header Subject contains x folder X\n",
    );
    let log = s.t.path().join("deliveries.log");
    let r = s.rules.display().to_string();
    let go = |msg: &[u8]| {
        run(
            s.cmd()
                .args(["--log", log.to_str().unwrap(), "-f", "a@b.test", "-D"]),
            msg,
        )
    };
    assert_eq!(
        code(&go(b"Message-ID: <1@b.test>\nSubject: ann x\n\nx\n")),
        0
    );
    assert_eq!(
        code(&go(b"Message-ID: <2@b.test>\nSubject: fail\n\nx\n")),
        75
    );
    assert_eq!(
        code(&go(b"Message-ID: <1@b.test>\nSubject: ann x\n\nx\n")),
        0
    );
    assert_eq!(code(&go(b"Subject: other\n\nx\n")), 0);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let rest = |l: &str| l.split_once(' ').unwrap().1.to_string();
    assert!(lines[0].starts_with("time=20"), "{text}");
    assert_eq!(
        rest(lines[0]),
        format!(
            "from=a@b.test to=- message_id=1@b.test size=41 rules={r}:1,{r}:2,{r}:4 \
             done=\"store Announce; filter /bin/cat; store X\" exitcode=0"
        )
    );
    assert_eq!(
        rest(lines[1]),
        format!(
            "from=a@b.test to=- message_id=2@b.test size=40 rules={r}:2 done=\"filter /bin/cat\" \
             exitcode=75 reason=\"pipe to /bin/false: exited with status 1\""
        )
    );
    assert!(
        rest(lines[2]).contains(" rules=- done=duplicate exitcode=0"),
        "{text}"
    );
    assert!(
        rest(lines[3]).contains(&format!(
            " rules={r}:2 done=\"filter /bin/cat; store INBOX\" exitcode=0"
        )),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A log that cannot be written is a warning; the message is delivered all the same.
    let out = run(
        s.cmd().args(["--log", s.t.path().to_str().unwrap()]),
        b"Subject: x\n\nx\n",
    );
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).starts_with("mdeliver: log "),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.counts(&["X"]), [1, 2]);
}
