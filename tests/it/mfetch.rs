//! mfetch against a fake POP3 server (tests/it/common/pop3.rs): what it fetches and how it
//! stores it (byte for byte, dot-unstuffed, LF line ends), never twice, deletion only after
//! the mail is durable, the MDA and filter contracts, the lock, and hostile servers (a
//! greeting that never comes, a line that never ends, repeated UIDLs, data injected after
//! STLS, a refused STLS, a cut connection, a message larger than listed): a clear error in
//! bounded time, nothing lost, nothing deleted that is not stored.

use crate::common::pop3::{FakePop3, Quirk};
use crate::common::{code, messages, run, stderr, tool};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn mail(n: usize) -> Vec<(String, Vec<u8>)> {
    (1..=n)
        .map(|i| {
            let text = format!(
                "From: Sender <s@example.test>\nSubject: message {i}\n\
                 Date: Tue, 01 Dec 2026 10:00:00 +0000\nMessage-ID: <m{i}@example.test>\n\n\
                 body of {i}\n.starts with a dot\n..two dots\n.\nend\n"
            );
            (format!("uid-{i}"), text.into_bytes())
        })
        .collect()
}

fn mfetch(home: &Path, port: u16, extra: &[&str]) -> Command {
    let mut c = tool(bin!("mfetch"), home);
    c.args(["--pop3", &format!("127.0.0.1:{port}"), "--user", "alice"]);
    // The test's own --tls and --password-command, else these.
    if !extra.contains(&"--tls") {
        c.args(["--tls", "none"]);
    }
    if !extra.contains(&"--password-command") {
        c.args(["--password-command", "echo secret"]);
    }
    c.args(["--timeout", "3"])
        .arg("--state-dir")
        .arg(home.join("state"))
        .args(extra);
    c
}

fn stored(md: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = messages(md)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    v.sort();
    v
}

fn sorted(m: &[(String, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = m.iter().map(|(_, b)| b.clone()).collect();
    v.sort();
    v
}

#[test]
fn fetches_every_message_once_byte_for_byte_then_deletes() {
    for quirk in [Quirk::None, Quirk::NoPipelining] {
        let home = tempfile::tempdir().unwrap();
        let md = home.path().join("Maildir");
        let msgs = mail(7);
        let srv = FakePop3::start(msgs.clone(), quirk.clone());
        let md_arg = md.to_str().unwrap();
        let out = run(
            &mut mfetch(
                home.path(),
                srv.port,
                &["--maildir", md_arg, "--batch", "3"],
            ),
            b"",
        );
        assert_eq!(code(&out), 0, "{quirk:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "not quiet");
        assert_eq!(stored(&md), sorted(&msgs), "{quirk:?}");
        assert_eq!(srv.left(), 0, "not deleted");
        // Every DELE came after the RETRs of its batch: deleted only once stored.
        let cmds = srv.commands();
        let first_dele = cmds.iter().position(|c| c.starts_with("DELE")).unwrap();
        let retrs_before = cmds[..first_dele]
            .iter()
            .filter(|c| c.starts_with("RETR"))
            .count();
        assert_eq!(retrs_before, 3, "{cmds:?}");
        // Nothing new: exit 1, silent, nothing stored twice.
        let out = run(
            &mut mfetch(home.path(), srv.port, &["--maildir", md_arg]),
            b"",
        );
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(out.stderr.is_empty());
        assert_eq!(messages(&md).len(), 7);
    }
}

#[test]
fn keep_leaves_mail_and_a_later_run_fetches_only_the_new() {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let md_arg = md.to_str().unwrap();
    let srv = FakePop3::start(mail(3), Quirk::None);
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md_arg, "--keep"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(srv.left(), 3);
    srv.state
        .lock()
        .unwrap()
        .messages
        .push(("uid-new".into(), b"Subject: new\n\nnew\n".to_vec()));
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md_arg, "--keep"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 4, "fetched twice or not at all");
    // Without --keep, what is stored here already is deleted, nothing fetched again.
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md_arg]),
        b"",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(srv.left(), 0);
    assert_eq!(messages(&md).len(), 4);
}

#[test]
fn scan_lists_headers_only_and_fetches_nothing() {
    let home = tempfile::tempdir().unwrap();
    let srv = FakePop3::start(mail(2), Quirk::None);
    let out = run(&mut mfetch(home.path(), srv.port, &["--scan"]), b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("2026-12-01 10:00  Sender <s@example.test>  message 1  ("),
        "{text}"
    );
    let cmds = srv.commands();
    assert!(cmds.iter().any(|c| c == "TOP 1 0"), "{cmds:?}");
    assert!(
        !cmds
            .iter()
            .any(|c| c.starts_with("RETR") || c.starts_with("DELE")),
        "{cmds:?}"
    );
    assert_eq!(srv.left(), 2);
}

#[test]
fn filter_fetches_deletes_or_leaves_by_exit_status() {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let srv = FakePop3::start(mail(3), Quirk::None);
    // message 1: fetch (0), message 2: delete unfetched (1), message 3: leave (2).
    let filter = "sh -c 'h=$(cat); case $h in *\"message 1\"*) exit 0;; *\"message 2\"*) exit 1;; *) exit 2;; esac'";
    let out = run(
        &mut mfetch(
            home.path(),
            srv.port,
            &["--maildir", md.to_str().unwrap(), "--filter", filter],
        ),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = stored(&md);
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("message 1"));
    let left = srv.state.lock().unwrap().messages.clone();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, "uid-3");
}

#[test]
fn max_size_leaves_large_messages() {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let mut msgs = mail(1);
    msgs.push((
        "big".into(),
        format!("Subject: big\n\n{}\n", "x".repeat(5000)).into_bytes(),
    ));
    let srv = FakePop3::start(msgs, Quirk::None);
    let out = run(
        &mut mfetch(
            home.path(),
            srv.port,
            &["--maildir", md.to_str().unwrap(), "--max-size", "1k"],
        ),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 1);
    assert_eq!(srv.left(), 1);
}

#[test]
fn mda_gets_each_message_and_its_failures_keep_mail_on_the_server() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let srv = FakePop3::start(mail(3), Quirk::None);
    // message 2: 75 (next time); message 3: 1 (failed); both stay on the server.
    let script = format!(
        "sh -c 'm=$(cat); case $m in *\"message 2\"*) exit 75;; *\"message 3\"*) exit 1;; esac; \
         printf %s \"$m\" > {}/$1' mda %F",
        out_dir.display()
    );
    let out = run(&mut mfetch(home.path(), srv.port, &["--mda", &script]), b"");
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exited with status 1"),
        "{}",
        stderr(&out)
    );
    // %F was the sender address, one argument.
    assert!(out_dir.join("s@example.test").exists());
    let left: Vec<String> = srv
        .state
        .lock()
        .unwrap()
        .messages
        .iter()
        .map(|m| m.0.clone())
        .collect();
    assert_eq!(left, ["uid-2", "uid-3"]);
}

#[test]
fn a_second_run_leaves_a_locked_account_at_once_quietly() {
    let home = tempfile::tempdir().unwrap();
    let srv = FakePop3::start(mail(1), Quirk::None);
    let state = home.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let lock =
        std::fs::File::create(state.join(format!("alice@127.0.0.1%3A{}.lock", srv.port))).unwrap();
    lock.lock().unwrap();
    let md = home.path().join("Maildir");
    let t = Instant::now();
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md.to_str().unwrap()]),
        b"",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(srv.commands().is_empty(), "it connected");
    drop(lock);
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md.to_str().unwrap()]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn wrong_password_is_77() {
    let home = tempfile::tempdir().unwrap();
    let srv = FakePop3::start(mail(1), Quirk::None);
    let mut c = mfetch(
        home.path(),
        srv.port,
        &[
            "--maildir",
            "x",
            "--password-command",
            "echo wrong",
            "--auth",
            "user",
        ],
    );
    let out = run(&mut c, b"");
    assert_eq!(code(&out), 77, "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
}

/// A hostile server: the exit code, the words, within a bounded time, nothing stored or
/// deleted.
fn hostile(quirk: Quirk, tls: &str, want: i32, words: &str) {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let srv = FakePop3::start(mail(3), quirk.clone());
    let mut c = mfetch(
        home.path(),
        srv.port,
        &["--maildir", md.to_str().unwrap(), "--tls", tls],
    );
    let t = Instant::now();
    let out = run(&mut c, b"");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "{quirk:?} took {:?}",
        t.elapsed()
    );
    assert_eq!(code(&out), want, "{quirk:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(words), "{quirk:?}: {}", stderr(&out));
    assert_eq!(srv.left(), 3, "{quirk:?}: deleted");
    let cmds = srv.commands();
    assert!(
        !cmds.iter().any(|c| c.starts_with("DELE")),
        "{quirk:?}: {cmds:?}"
    );
    if tls != "none" {
        assert!(
            !cmds
                .iter()
                .any(|c| c.starts_with("USER") || c.starts_with("PASS")),
            "credentials in clear: {cmds:?}"
        );
    }
}

#[test]
fn hostile_servers_get_a_clear_error_in_bounded_time() {
    hostile(Quirk::SilentGreeting, "none", 75, "timed out");
    hostile(Quirk::EndlessLine, "none", 76, "line too long");
    hostile(
        Quirk::RepeatedUidl,
        "none",
        76,
        "two messages have the UIDL",
    );
    hostile(Quirk::InjectAfterStls, "starttls", 76, "response injection");
    hostile(
        Quirk::RefuseStls,
        "starttls",
        69,
        "not going on in clear text",
    );
}

#[test]
fn a_message_larger_than_listed_is_refused_and_nothing_deleted() {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let srv = FakePop3::start(mail(2), Quirk::Oversized);
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md.to_str().unwrap()]),
        b"",
    );
    assert_eq!(code(&out), 76, "{}", stderr(&out));
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert!(messages(&md).is_empty());
    assert_eq!(srv.left(), 2);
}

#[test]
fn a_cut_connection_keeps_what_arrived_whole_and_the_rerun_fetches_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let msgs = mail(5);
    let srv = FakePop3::start(msgs.clone(), Quirk::CutAt(3));
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md.to_str().unwrap()]),
        b"",
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    // Messages 1 and 2 arrived whole and are kept; no half of message 3 anywhere.
    let got = stored(&md);
    assert_eq!(got, sorted(&msgs[..2]));
    assert!(
        std::fs::read_dir(md.join("tmp")).unwrap().next().is_none(),
        "tmp/ not clean"
    );
    assert_eq!(srv.left(), 5, "deleted without QUIT");
    // The server heals; the rerun deletes what is here and fetches only the rest.
    let srv2 = FakePop3::start(msgs.clone(), Quirk::None);
    let state = home.path().join("state");
    for f in std::fs::read_dir(&state).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let renamed = name.replace(&srv.port.to_string(), &srv2.port.to_string());
        std::fs::rename(&p, state.join(renamed)).unwrap();
    }
    let out = run(
        &mut mfetch(home.path(), srv2.port, &["--maildir", md.to_str().unwrap()]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stored(&md), sorted(&msgs));
    assert_eq!(srv2.left(), 0);
}

#[test]
fn a_run_killed_between_the_maildir_and_the_state_fetches_nothing_twice() {
    // The state of a run cut off after its batch reached the Maildir: the intent log names
    // the batch, the state does not. The next run must find the batch by its tags.
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let msgs = mail(4);
    let srv = FakePop3::start(msgs.clone(), Quirk::None);
    let md_arg = md.to_str().unwrap();
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md_arg, "--keep"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let state = home.path().join("state");
    let key = format!("alice@127.0.0.1%3A{}", srv.port);
    let seen = state.join(format!("{key}.seen"));
    let text = std::fs::read_to_string(&seen).unwrap();
    // As if the run died after the Maildir's sync and before the state's write.
    std::fs::write(state.join(format!("{key}.pending")), &text).unwrap();
    std::fs::write(&seen, "mfetch-seen 1\n").unwrap();
    let out = run(
        &mut mfetch(home.path(), srv.port, &["--maildir", md_arg]),
        b"",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 of its messages had arrived"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stored(&md), sorted(&msgs), "fetched twice");
    assert_eq!(srv.left(), 0);
}

#[test]
fn sasl_plain_by_default_and_login_xoauth2_oauthbearer_when_asked() {
    for (auth, verb) in [
        (None, "AUTH PLAIN"),
        (Some("login"), "AUTH LOGIN"),
        (Some("xoauth2"), "AUTH XOAUTH2"),
        (Some("oauthbearer"), "AUTH OAUTHBEARER"),
    ] {
        let home = tempfile::tempdir().unwrap();
        let md = home.path().join("Maildir");
        let srv = FakePop3::start(mail(1), Quirk::Sasl);
        let mut extra = vec!["--maildir", md.to_str().unwrap()];
        if let Some(a) = auth {
            extra.extend(["--auth", a]);
        }
        let out = run(&mut mfetch(home.path(), srv.port, &extra), b"");
        assert_eq!(code(&out), 0, "{auth:?}: {}", stderr(&out));
        assert_eq!(messages(&md).len(), 1);
        assert!(
            srv.commands().iter().any(|c| c.starts_with(verb)),
            "{:?}",
            srv.commands()
        );
        assert!(!srv.commands().iter().any(|c| c.starts_with("USER")));
    }
}

#[test]
fn daemon_polls_fetches_what_arrives_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let srv = FakePop3::start(mail(1), Quirk::None);
    let mut c = mfetch(
        home.path(),
        srv.port,
        &[
            "--maildir",
            md.to_str().unwrap(),
            "--daemon",
            "--interval",
            "1",
        ],
    );
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let arrived =
        |n| crate::common::wait_until(Duration::from_secs(10), || messages(&md).len() == n);
    assert!(arrived(1), "the first poll fetched nothing");
    srv.state
        .lock()
        .unwrap()
        .messages
        .push(("uid-later".into(), b"Subject: later\n\nlater\n".to_vec()));
    assert!(arrived(2), "a later poll did not fetch the new message");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc_kill(child.id() as i32, 15) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(messages(&md).len(), 2);
    assert_eq!(srv.left(), 0);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn since_leaves_older_messages() {
    let home = tempfile::tempdir().unwrap();
    let md = home.path().join("Maildir");
    let mut msgs = mail(1);
    msgs.push((
        "new".into(),
        b"Subject: new\nDate: Fri, 01 Jan 2027 10:00:00 +0000\n\nnew\n".to_vec(),
    ));
    let srv = FakePop3::start(msgs, Quirk::None);
    let md_arg = md.to_str().unwrap();
    let out = run(
        &mut mfetch(
            home.path(),
            srv.port,
            &["--maildir", md_arg, "--since", "2027-01-01"],
        ),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = stored(&md);
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: new"));
    assert_eq!(srv.left(), 1, "the older one was not left");
}

#[test]
fn every_account_with_a_pop3_host_or_one_by_name_state_under_xdg_state_home() {
    let home = tempfile::tempdir().unwrap();
    let (one, two) = (
        FakePop3::start(mail(2), Quirk::None),
        FakePop3::start(mail(3), Quirk::None),
    );
    let cfg = home.path().join(".config/mailpipe/config");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "defaults\nfetch_tls none\nfetch_user alice\nfetch_passwordeval echo secret\n\
             account send\nhost smtp.example.org\n\
             account one\npop3_host 127.0.0.1\nfetch_port {}\n\
             account two\npop3_host 127.0.0.1\nfetch_port {}\nkeep on\n",
            one.port, two.port
        ),
    )
    .unwrap();
    let md = home.path().join("Maildir");
    let state = home.path().join("xdg-state");
    let fetch = |extra: &[&str]| {
        let mut c = tool(bin!("mfetch"), home.path());
        c.env("XDG_STATE_HOME", &state)
            .args(["--maildir", md.to_str().unwrap()])
            .args(extra);
        run(&mut c, b"")
    };
    let out = fetch(&["-a", "one"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!((messages(&md).len(), one.left(), two.left()), (2, 0, 3));
    let out = fetch(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Account two keeps its mail (keep on); each account's state is its own.
    assert_eq!((messages(&md).len(), one.left(), two.left()), (5, 0, 3));
    assert!(state.join("mailpipe/mfetch/one.seen").exists());
    assert!(state.join("mailpipe/mfetch/two.seen").exists());
    let out = fetch(&[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(messages(&md).len(), 5);
}
