//! The configuration file's keys through the real binaries: a key no tool reads, or an msmtp
//! key we do not support, stops every tool at its `file:line` (78) instead of being ignored,
//! and in a delivery path (mdeliver as an MDA, mreceive's delivery command) it defers the
//! mail (75, 451) rather than bouncing it.

use crate::common;
use crate::common::smtp;

use common::*;
use smtp::*;
use std::path::Path;
use std::process::Output;

/// Write the user's configuration under `home`; its path.
fn config(home: &Path, text: &str) -> std::path::PathBuf {
    write(&home.join(".config/mailpipe/config"), text)
}

fn fails(out: &Output, want: i32, needle: &str) {
    assert_eq!(code(out), want, "{}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
}

#[test]
fn an_unknown_key_stops_msubmit_and_mcompose_at_its_line() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let good = format!("host 127.0.0.1\nport {}\ntls off\n", fake.port());
    let send = |home: &Path| {
        run(
            tool(bin!("msubmit"), home).args(["-f", "a@a.test", "b@b.test"]),
            b"Subject: x\n\nx\n",
        )
    };
    // The configuration works as it is…
    config(t.path(), &good);
    assert_eq!(code(&send(t.path())), 0);
    assert_eq!(fake.messages().len(), 1);
    // …and with a misspelt key in it, nothing is sent: the trust file was meant.
    let path = config(
        t.path(),
        &format!("{good}\n# the CA\ntls_trust_fiel /etc/ca.pem\n"),
    );
    let out = send(t.path());
    fails(
        &out,
        78,
        &format!(
            "msubmit: {}:6: unknown key \"tls_trust_fiel\" (did you mean \"tls_trust_file\"?)",
            path.display()
        ),
    );
    assert_eq!(fake.messages().len(), 1, "nothing more was sent");
    config(t.path(), &format!("account a\nhots 127.0.0.1\n{good}"));
    fails(
        &send(t.path()),
        78,
        ":2: unknown key \"hots\" (did you mean \"host\"?)",
    );
    // msmtp's keys we do not support are refused by name, with why.
    config(t.path(), &format!("{good}protocol lmtp\n"));
    fails(
        &send(t.path()),
        78,
        ":4: msmtp's protocol lmtp is not supported: mailpipe speaks SMTP only",
    );
    config(t.path(), &format!("{good}tls_certcheck off\n"));
    fails(&send(t.path()), 78, "tls encrypt");
    // …and accepted where they ask for what msubmit does anyway.
    config(
        t.path(),
        &format!("{good}protocol smtp\nremove_bcc_headers on\n"),
    );
    assert_eq!(code(&send(t.path())), 0, "{}", stderr(&send(t.path())));
    // mcompose reads the same file.
    config(t.path(), &format!("{good}hots x\n"));
    let out = run(
        tool(bin!("mcompose"), t.path()).args(["-f", "a@a.test", "-t", "b@b.test", "-s", "x"]),
        b"x\n",
    );
    fails(&out, 78, ":4: unknown key \"hots\"");
}

#[test]
fn a_bare_host_is_a_configuration_error_never_queued() {
    let t = tempfile::tempdir().unwrap();
    let queue = t.path().join("queue");
    config(t.path(), "account a\nfrom a@a.test\nhost\ntls off\n");
    let out = run(
        tool(bin!("msubmit"), t.path())
            .args(["-a", "a", "--queue-on-failure", "--queue-dir"])
            .arg(&queue)
            .arg("b@b.test"),
        b"Subject: x\n\nx\n",
    );
    fails(&out, 78, ":3: host: needs the server's name or address");
    assert!(files(&queue.join("new")).is_empty(), "not queued");
}

/// One stdio session of an MX for local.test that delivers through mdeliver.
fn mx_through_mdeliver(home: &Path) -> Output {
    let input = "EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@local.test>\r\n\
                 DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let mut c = tool(bin!("mreceive"), home);
    c.args(["-d", "local.test", "--hostname", "mx.local.test", "-m"])
        .arg(home.join("mail"))
        .arg("-c")
        .arg(bin!("mdeliver"));
    run(&mut c, input.as_bytes())
}

#[test]
fn a_typo_defers_mail_in_the_delivery_path_never_bounces_it() {
    let t = tempfile::tempdir().unwrap();
    let maildir = t.path().join("Maildir");
    config(t.path(), "defaults\nmax_size 10M\ndedup on\n");
    // mdeliver as an MDA: 75, so the MTA keeps the message; and loudly so.
    let out = run(
        tool(bin!("mdeliver"), t.path()).arg(&maildir),
        b"Subject: x\n\nx\n",
    );
    fails(
        &out,
        75,
        "mdeliver: configuration error (mail deferred, exit 75, until it is fixed): ",
    );
    assert!(stderr(&out).contains(":3: unknown key \"dedup\" (did you mean \"dedupe\"?)"));
    assert!(messages(&maildir).is_empty());
    // A bad value too: the size.
    config(t.path(), "max_size lots\n");
    let out = run(
        tool(bin!("mdeliver"), t.path()).arg(&maildir),
        b"Subject: x\n\nx\n",
    );
    fails(&out, 75, ":1: max_size: invalid size");
    // mreceive's delivery through mdeliver: 451 to the client, who keeps the message.
    config(t.path(), "defaults\ndedup on\n");
    let out = mx_through_mdeliver(t.path());
    let replies = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(replies.contains("\n451 "), "{replies}");
    assert!(!replies.contains("\n5"), "{replies}");
    assert!(messages(&t.path().join("mail/bob/Maildir")).is_empty());
    // Fixed, the next attempt delivers.
    config(t.path(), "defaults\ndedupe on\n");
    let out = mx_through_mdeliver(t.path());
    let replies = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(replies.contains("\n250 2.0.0"), "{replies}");
    assert_eq!(messages(&t.path().join("mail/bob/Maildir")).len(), 1);
}

#[test]
fn aliases_turn_crons_root_into_addresses() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let aliases = write(
        &t.path().join("aliases"),
        "# as /etc/aliases\npostmaster: root\nroot: admin@example.org,\n  ops@example.org\n\
         default: me@example.org\n",
    );
    config(
        t.path(),
        &format!(
            "host 127.0.0.1\nport {}\ntls off\naliases {}\n",
            fake.port(),
            aliases.display()
        ),
    );
    // cron: `sendmail -i -FCronDaemon -B8BITMIME -oem root`.
    let out = run(
        tool(bin!("msubmit"), t.path()).args([
            "-i",
            "-FCronDaemon",
            "-B8BITMIME",
            "-oem",
            "-f",
            "cron@host.test",
            "root",
        ]),
        b"Subject: Cron <root@host> run-parts\nTo: root\n\nout\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let log = fake.log_text();
    let rcpts: Vec<&str> = log.lines().filter(|l| l.starts_with("RCPT")).collect();
    assert_eq!(
        rcpts,
        ["RCPT TO:<admin@example.org>", "RCPT TO:<ops@example.org>"]
    );
    // Only the envelope: To: stays as written (as in msmtp).
    let m = String::from_utf8(fake.messages().pop().unwrap()).unwrap();
    assert!(m.contains("To: root\r\n"), "{m}");
    // -t reads the same names; `default` catches other local names, domains stay.
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["-t", "-f", "a@a.test"]),
        b"To: postmaster, www-data, you@y.test\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let log = fake.log_text();
    let rcpts: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("RCPT"))
        .skip(2)
        .collect();
    assert_eq!(
        rcpts,
        [
            "RCPT TO:<admin@example.org>",
            "RCPT TO:<ops@example.org>",
            "RCPT TO:<me@example.org>",
            "RCPT TO:<you@y.test>"
        ]
    );
    // What cannot be sent is the file's error at its line; nothing goes out.
    write(&aliases, "root: |/usr/bin/procmail\n");
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["-f", "a@a.test", "root"]),
        b"x\n",
    );
    fails(
        &out,
        78,
        &format!("{}:1: |/usr/bin/procmail: commands", aliases.display()),
    );
    std::fs::remove_file(&aliases).unwrap();
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["-f", "a@a.test", "root"]),
        b"x\n",
    );
    fails(&out, 78, "aliases ");
    assert_eq!(fake.messages().len(), 2);
}
