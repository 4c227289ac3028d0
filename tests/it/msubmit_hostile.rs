//! msubmit on hostile input: values from the command line and the configuration that would
//! otherwise reach the SMTP dialogue as commands of their own, and servers that answer out of
//! turn. Each test fails if the defect it names comes back.

use crate::common;
use crate::common::smtp;

use common::*;
use smtp::*;

fn dsn_server() -> Fake {
    Fake::start(Script {
        ehlo: "250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 DSN\r\n",
        ..Script::default()
    })
}

fn send(fake: &Fake, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = tool(bin!("msubmit"), home);
    c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()]);
    c.args(["--tls", "none", "--timeout", "5", "-f", "a@a.test"]);
    c.args(args).arg("b@b.test");
    run(&mut c, b"Subject: x\n\nx\n")
}

#[test]
fn line_breaks_in_dsn_and_helo_values_never_reach_the_wire() {
    let fake = dsn_server();
    let t = tempfile::tempdir().unwrap();
    for args in [
        &["-N", "success\r\nRCPT TO:<evil@x.test>"][..],
        &["-N", "success ORCPT=rfc822;evil@x.test"],
        &["-R", "full\r\nRCPT TO:<evil@x.test>"],
        &["--helo", "h.test\r\nRCPT TO:<evil@x.test>"],
        &["--helo", "h.test evil"],
    ] {
        let out = send(&fake, t.path(), args);
        assert_eq!(code(&out), 64, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("msubmit: "), "{}", stderr(&out));
    }
    let config = t.path().join("config");
    for (key, value) in [
        ("domain", "\"h.test evil\""),
        ("dsn_notify", "\"success ORCPT=x\""),
        ("dsn_return", "\"full RET=HDRS\""),
    ] {
        std::fs::write(&config, format!("{key} {value}\n")).unwrap();
        let out = send(&fake, t.path(), &["-C", config.to_str().unwrap()]);
        assert_eq!(code(&out), 78, "{key}: {}", stderr(&out));
    }
    assert!(
        !fake.log_text().to_lowercase().contains("evil"),
        "{}",
        fake.log_text()
    );
    assert!(fake.accepted.lock().unwrap().is_empty());
    // The valid forms still work, msmtp's spellings included.
    std::fs::write(&config, "dsn_notify failure,delay\ndsn_return headers\n").unwrap();
    let out = send(&fake, t.path(), &["-C", config.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let log = fake.log_text();
    assert!(
        log.contains(" NOTIFY=FAILURE,DELAY") && log.contains(" RET=HDRS"),
        "{log}"
    );
}

#[test]
fn a_2xx_reply_to_data_is_not_taken_as_delivery() {
    // With and without PIPELINING: a server out of step answers DATA with 250; no message
    // was sent, so exit 0 would lose it.
    for ehlo in ["250-fake.test\r\n250 PIPELINING\r\n", "250 fake.test\r\n"] {
        let fake = Fake::start(Script {
            ehlo,
            data_reply: Some("250 2.0.0 ok\r\n"),
            ..Script::default()
        });
        let t = tempfile::tempdir().unwrap();
        let out = send(&fake, t.path(), &[]);
        assert_eq!(code(&out), 75, "{ehlo:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("instead of 354"), "{}", stderr(&out));
    }
}

#[test]
fn the_login_name_cannot_add_header_fields_for_a_null_sender() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()]);
    c.args(["--tls", "none", "--timeout", "5", "-f", "<>", "b@b.test"]);
    c.env("LOGNAME", "x\r\nBcc: evil@x.test\r\nX-Injected: 1");
    let out = run(&mut c, b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("control character"),
        "{}",
        stderr(&out)
    );
    assert!(fake.accepted.lock().unwrap().is_empty());
    // A plain login name still makes the From: of a bounce.
    c.env("LOGNAME", "daemon");
    let out = run(&mut c, b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = fake.accepted.lock().unwrap()[0].clone();
    assert!(header_value(&got, "From").is_some_and(|f| f.starts_with("daemon@")));
}

#[test]
fn a_flush_that_cannot_read_a_queue_file_does_not_exit_0() {
    let t = tempfile::tempdir().unwrap();
    let qdir = t.path().join("queue");
    let q = qdir.to_str().unwrap();
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["--queue-dir", q, "--list"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A torn or foreign file in new/: a message that will never be sent as it is.
    std::fs::write(qdir.join("new/1700000000.x"), b"not a queue file\n").unwrap();
    let mut c = tool(bin!("msubmit"), t.path());
    c.args([
        "--queue-dir",
        q,
        "--flush",
        "--host",
        "127.0.0.1",
        "--tls",
        "none",
    ]);
    let out = run(&mut c, b"");
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("1 unreadable"), "{}", stderr(&out));
    assert!(qdir.join("new/1700000000.x").exists());
}

#[test]
fn exit_statuses_for_local_input_trouble_are_the_documented_ones() {
    // The man page's EXIT STATUS must list what these return.
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/msubmit.1")).unwrap();
    let status = page.split(".SH EXIT STATUS").nth(1).unwrap();
    let status = status.split(".SH ").next().unwrap();
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()]);
    c.args(["--tls", "none", "-t"]);
    let out = run(&mut c, b"To: a@b.test, \"unclosed <x@y\nSubject: x\n\nx\n");
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(
        status.contains("Bcc: field that cannot be parsed"),
        "{status}"
    );
    // An element that parses but is no address is the message's fault too, not usage.
    let out = run(&mut c, b"To: Some Name without address\nSubject: x\n\nx\n");
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    // Standard input that cannot be read: a directory.
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--tls", "none", "b@b.test"]);
    c.stdin(std::fs::File::open("/").unwrap());
    let out = c.output().unwrap();
    assert_eq!(code(&out), 74, "{}", stderr(&out));
    assert!(status.contains("\n.B 74\n"), "{status}");
    assert!(fake.accepted.lock().unwrap().is_empty());
}

#[test]
fn a_server_that_drips_its_reply_times_out_as_a_whole() {
    // Each read got the full timeout: a byte every half second kept a 1-second limit
    // from ever firing, for a reply of up to 128 lines of 2048 bytes.
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            for b in b"220 slowly, slowly, slowly, slowly, slowly\r\n" {
                if c.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    });
    let t = tempfile::tempdir().unwrap();
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
    c.args(["--tls", "none", "--timeout", "1", "b@b.test"]);
    let start = std::time::Instant::now();
    let out = run(&mut c, b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
}

#[test]
fn t_takes_bare_local_names_as_system_mail_writes_them() {
    // mdadm --monitor and logwatch pipe "To: root" into sendmail -t; it was refused (65).
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()]);
    c.args([
        "--tls",
        "none",
        "--timeout",
        "5",
        "-f",
        "monitor@h.test",
        "-t",
    ]);
    let msg = b"From: mdadm monitoring <root>\nTo: root, \"john doe\"@x.test\nSubject: Fail\n\nx\n";
    let out = run(&mut c, msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let log = fake.log_text();
    assert!(log.contains("RCPT TO:<root@h.test>"), "{log}");
    assert!(log.contains("RCPT TO:<\"john doe\"@x.test>"), "{log}");
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
}

#[test]
fn a_repeated_sendmail_option_is_accepted_as_sendmail_does() {
    // Callers add their own -i or -t to a configured "sendmail -oi" or "sendmail -t": clap
    // refused the repetition with exit 64 and nothing was sent.
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    for args in [
        &["-i", "-oi", "b@b.test"][..],
        &["-t", "-i", "-t"],
        &["-f", "x@x.test", "-f", "a@a.test", "b@b.test"],
    ] {
        let mut c = tool(bin!("msubmit"), t.path());
        c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()]);
        c.args(["--tls", "none", "--timeout", "5"]).args(args);
        let out = run(&mut c, b"To: b@b.test\nSubject: x\n\nx\n");
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    assert_eq!(fake.accepted.lock().unwrap().len(), 3);
    assert!(
        fake.log_text().contains("MAIL FROM:<a@a.test>"),
        "the last -f wins"
    );
}

#[test]
fn a_bare_login_name_as_sender_is_completed_with_the_host_name() {
    // `sendmail -f www-data` (PHP's sendmail_path, scripts) exited 64 "no domain".
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let mut c = tool(bin!("msubmit"), t.path());
    c.args(["--host", "127.0.0.1", "--port", &fake.port().to_string()]);
    c.args([
        "--tls",
        "none",
        "--timeout",
        "5",
        "-f",
        "www-data",
        "b@b.test",
    ]);
    let out = run(&mut c, b"Subject: x\n\nx\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let log = fake.log_text();
    assert!(log.contains("MAIL FROM:<www-data@"), "{log}");
    let got = fake.accepted.lock().unwrap()[0].clone();
    assert!(header_value(&got, "From").is_some_and(|f| f.starts_with("www-data@")));
}
