//! mfetch over IMAP against a real Dovecot over implicit TLS: every message once into the
//! Maildir and expunged on the server, `--keep` and a second run that finds nothing new
//! (exit 1), `--scan` from three header fields, `--move-to` a folder, and a UIDVALIDITY
//! change that fetches only what is new (found again by Message-ID and size) and says so.

use crate::common::*;
use crate::imap_interop::Dovecot;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Run {
    home: tempfile::TempDir,
    maildir: PathBuf,
    state: PathBuf,
}

impl Run {
    fn new() -> Run {
        let home = tempfile::tempdir().unwrap();
        let maildir = home.path().join("Maildir");
        let state = home.path().join("state");
        Run {
            home,
            maildir,
            state,
        }
    }

    fn mfetch(&self, d: &Dovecot, extra: &[&str]) -> Output {
        let mut c = tool(bin!("mfetch"), self.home.path());
        c.args(["--imap", &format!("127.0.0.1:{}", d.imaps)])
            .args(["--tls", "implicit", "--ca-file", d.ca.to_str().unwrap()])
            .args(["--user", "alice", "--password-command", "echo secret"])
            .arg("--maildir")
            .arg(&self.maildir)
            .arg("--state-dir")
            .arg(&self.state)
            .args(extra);
        run(&mut c, b"")
    }

    /// Message-ID → how many copies arrived.
    fn arrived(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for sub in ["new", "cur"] {
            for p in files(&self.maildir.join(sub)) {
                *out.entry(message_id(&p)).or_default() += 1;
            }
        }
        out
    }
}

fn message_id(p: &Path) -> String {
    let text = String::from_utf8_lossy(&fs::read(p).unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Messages in the server's folder (its Maildir's new/ and cur/).
fn on_server(md: &Path) -> usize {
    messages(md).len()
}

#[test]
fn fetch_everything_once_and_expunge() {
    let Some(d) = Dovecot::start(30) else { return };
    let r = Run::new();
    let out = r.mfetch(&d, &["--batch", "7"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
    let got = r.arrived();
    assert_eq!(got.len(), 30);
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    assert_eq!(on_server(&d.maildir()), 0, "fetched mail is expunged");
    // Nothing new: fetchmail's 1, quietly.
    let out = r.mfetch(&d, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn keep_then_only_the_new_ones() {
    let Some(d) = Dovecot::start(5) else { return };
    let r = Run::new();
    let out = r.mfetch(&d, &["--keep"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(r.arrived().len(), 5);
    assert_eq!(on_server(&d.maildir()), 5);
    let out = r.mfetch(&d, &["--keep"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    d.peers.script(
        "seed-maildir.sh",
        &[d.maildir().to_str().unwrap(), "2"],
        &[],
    );
    let out = r.mfetch(&d, &["--keep"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = r.arrived();
    assert_eq!(got.values().sum::<usize>(), 7, "{got:?}");
    // Without --keep the five fetched earlier are deleted too: they are durable here.
    let out = r.mfetch(&d, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(on_server(&d.maildir()), 0);
    assert_eq!(r.arrived().values().sum::<usize>(), 7);
}

#[test]
fn a_new_uidvalidity_fetches_only_what_is_new_and_says_so() {
    let Some(d) = Dovecot::start(6) else { return };
    let r = Run::new();
    let out = r.mfetch(&d, &["--keep"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(r.arrived().len(), 6);
    // The server forgets its UIDs (a restored backup, a rebuilt index).
    for f in fs::read_dir(d.maildir()).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("dovecot")
        {
            fs::remove_file(&p).unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.peers.script(
        "seed-maildir.sh",
        &[d.maildir().to_str().unwrap(), "3"],
        &[],
    );
    let out = r.mfetch(&d, &["--keep"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("alice@127.0.0.1:")
            && err.contains("/INBOX: UIDVALIDITY")
            && err.contains("6 of 9"),
        "the change is said: {err}"
    );
    let got = r.arrived();
    assert_eq!(got.len(), 9, "{got:?}");
    assert!(got.values().all(|&n| n == 1), "duplicates: {got:?}");
    // And the state follows the new UIDVALIDITY: nothing new next time.
    let out = r.mfetch(&d, &["--keep"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

#[test]
fn scan_lists_new_mail_from_headers_and_fetches_nothing() {
    let Some(d) = Dovecot::start(3) else { return };
    let r = Run::new();
    let out = r.mfetch(&d, &["--scan"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("Sender <sender@example.test>") && text.contains("Test message 2"));
    assert!(r.arrived().is_empty());
    assert_eq!(on_server(&d.maildir()), 3);
}

#[test]
fn move_to_a_folder_instead_of_deleting() {
    let Some(d) = Dovecot::start(4) else { return };
    // A Maildir++ folder for Dovecot, owned as the mailbox is.
    let trash = d.maildir().join(".Trash");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(trash.join(sub)).unwrap();
    }
    let owner = std::process::Command::new("chown")
        .args(["-R", "vmail:vmail"])
        .arg(&trash)
        .status()
        .unwrap();
    assert!(owner.success());
    let r = Run::new();
    let out = r.mfetch(&d, &["--move-to", "Trash"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(r.arrived().len(), 4);
    assert_eq!(on_server(&d.maildir()), 0);
    assert_eq!(messages(&trash).len(), 4);
}

#[test]
fn daemon_fetches_on_idle_and_comes_back_after_the_server_closed() {
    let Some(d) = Dovecot::start(1) else { return };
    let r = Run::new();
    let mut c = tool(bin!("mfetch"), r.home.path());
    c.args(["--imap", &format!("127.0.0.1:{}", d.imaps)])
        .args(["--tls", "implicit", "--ca-file", d.ca.to_str().unwrap()])
        .args(["--user", "alice", "--password-command", "echo secret"])
        .arg("--maildir")
        .arg(&r.maildir)
        .arg("--state-dir")
        .arg(&r.state)
        // An hour between polls: only IDLE can bring the next messages in time.
        .args(["--daemon", "--interval", "3600"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id() as i32;
    let count = || r.arrived().values().sum::<usize>();
    let seed = || {
        d.peers.script(
            "seed-maildir.sh",
            &[d.maildir().to_str().unwrap(), "1"],
            &[],
        )
    };
    let limit = std::time::Duration::from_secs(30);
    let first = wait_until(limit, || count() == 1);
    seed();
    let second = wait_until(limit, || count() == 2);
    // The server closes every session (the watcher's in IDLE too); mail comes meanwhile.
    let kick = std::process::Command::new("doveadm")
        .args(["-c", &d.conf, "kick", "alice"])
        .output()
        .unwrap();
    seed();
    let third = wait_until(limit, || count() == 3);
    seed();
    let fourth = wait_until(limit, || count() == 4);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = wait_output(child, limit);
    let err = stderr(&out);
    assert!(first && second, "IDLE brought nothing: {} {err}", count());
    assert!(kick.status.success(), "{kick:?}");
    assert!(third && fourth, "nothing after the kick: {} {err}", count());
    assert_eq!(code(&out), 0, "{err}");
    assert!(r.arrived().values().all(|&n| n == 1));
}

/// The server's messages as they lie in its Maildir (LF line ends, as mfetch stores them).
fn server_contents(md: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = messages(md).iter().map(|p| fs::read(p).unwrap()).collect();
    v.sort();
    v
}

fn stored(md: &Path) -> Vec<Vec<u8>> {
    server_contents(md)
}

#[test]
fn a_connection_cut_mid_fetch_then_a_rerun_gets_each_message_once() {
    let Some(d) = Dovecot::start(200) else { return };
    let before = server_contents(&d.maildir());
    // Cut after about 40 kB of TLS from the server: inside a UID FETCH's literals.
    let (port, conns) = crate::mfetch_interop::cutting_proxy(d.imaps, 40_000);
    let r = Run::new();
    let fetch = |r: &Run| {
        let mut c = tool(bin!("mfetch"), r.home.path());
        c.args(["--imap", &format!("127.0.0.1:{port}")])
            .args(["--tls", "implicit", "--ca-file", d.ca.to_str().unwrap()])
            .args(["--tls-server-name", "localhost"])
            .args(["--user", "alice", "--password-command", "echo secret"])
            .arg("--maildir")
            .arg(&r.maildir)
            .arg("--state-dir")
            .arg(&r.state)
            .args(["--batch", "50"]);
        run(&mut c, b"")
    };
    let out = fetch(&r);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let part = messages(&r.maildir).len();
    assert!(part < 200, "the cut did not cut");
    let out = fetch(&r);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
    let got = stored(&r.maildir);
    assert_eq!(got.len(), before.len(), "lost or duplicated");
    assert!(
        got == before,
        "not byte for byte (LF line ends, as the server's Maildir)"
    );
    assert_eq!(on_server(&d.maildir()), 0);
}

#[test]
fn sigkill_at_random_during_a_2000_message_fetch_every_message_exactly_once() {
    use std::time::{Duration, Instant};
    let Some(d) = Dovecot::start(2000) else {
        return;
    };
    let before = server_contents(&d.maildir());
    assert_eq!(before.len(), 2000);
    let r = Run::new();
    let start = Instant::now();
    let mut kills = 0;
    let mut seed = std::process::id() as u64 ^ start.elapsed().subsec_nanos() as u64 | 1;
    loop {
        assert!(start.elapsed() < Duration::from_secs(300), "never finished");
        let mut c = tool(bin!("mfetch"), r.home.path());
        c.args(["--imap", &format!("127.0.0.1:{}", d.imaps)])
            .args(["--tls", "implicit", "--ca-file", d.ca.to_str().unwrap()])
            .args(["--user", "alice", "--password-command", "echo secret"])
            .arg("--maildir")
            .arg(&r.maildir)
            .arg("--state-dir")
            .arg(&r.state)
            .args(["--batch", "100"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // xorshift: a kill somewhere in the first 600 ms (the first eight runs always, then
        // none on every fourth run), so batches are cut at every stage.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(20 + seed % 600);
        let kill = kills < 8 || !seed.is_multiple_of(4);
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if kill && t.elapsed() >= wait {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if let Some(s) = status {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            match s.code() {
                Some(1) if on_server(&d.maildir()) == 0 => break,
                Some(0 | 1) => {}
                other => panic!("mfetch exited {other:?}: {err}"),
            }
        }
    }
    // (No count of kills is asserted: a run may finish before its moment.)
    eprintln!("{kills} kills before done");
    let got = stored(&r.maildir);
    assert_eq!(
        got.len(),
        2000,
        "{} messages after {kills} kills",
        got.len()
    );
    assert!(
        got == before,
        "not every message exactly once, byte for byte"
    );
}

/// A fake IMAP server on loopback that sends `script` whole once a client connects and
/// keeps what the client sent (until it closes); `None`: it never says a word.
fn fake(script: Option<&'static str>) -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        use std::io::{Read, Write};
        if let Some(script) = script {
            let _ = s.write_all(script.as_bytes());
        }
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(20)));
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
    });
    (port, rx)
}

fn mfetch_plain(r: &Run, port: u16) -> Output {
    let mut c = tool(bin!("mfetch"), r.home.path());
    c.args(["--imap", &format!("127.0.0.1:{port}"), "--tls", "none"])
        .args(["--user", "alice", "--password-command", "echo secret"])
        .args(["--timeout", "2"])
        .arg("--maildir")
        .arg(&r.maildir)
        .arg("--state-dir")
        .arg(&r.state);
    run(&mut c, b"")
}

#[test]
fn a_server_that_lists_a_uid_twice_gets_nothing_deleted() {
    let (port, sent) = fake(Some(
        "* OK [CAPABILITY IMAP4rev1 UIDPLUS] fake\r\na1 OK in\r\na2 OK caps\r\n\
         * 2 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\na3 OK sel\r\n\
         * 1 FETCH (UID 7 RFC822.SIZE 10)\r\n* 2 FETCH (UID 7 RFC822.SIZE 12)\r\na4 OK\r\n",
    ));
    let r = Run::new();
    let out = mfetch_plain(&r, port);
    assert_eq!(code(&out), 76, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("UID 7 listed twice"),
        "{}",
        stderr(&out)
    );
    let sent = sent.recv().unwrap();
    assert!(sent.contains("a4 UID FETCH 1:*"), "{sent}");
    assert!(
        !sent.contains("STORE") && !sent.contains("EXPUNGE"),
        "{sent}"
    );
    assert!(r.arrived().is_empty());
}

#[test]
fn a_greeting_that_never_comes_is_a_temporary_failure_in_bounded_time() {
    let (port, _sent) = fake(None);
    let r = Run::new();
    let start = std::time::Instant::now();
    let out = mfetch_plain(&r, port);
    assert!(start.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
}

#[test]
fn an_imap_host_account_fetches_each_of_its_folders_with_a_state_each() {
    let Some(d) = Dovecot::start(3) else { return };
    // A second folder, Lists, with two messages of its own.
    let lists = d.maildir().join(".Lists");
    d.peers
        .script("seed-maildir.sh", &[lists.to_str().unwrap(), "2"], &[]);
    let owner = std::process::Command::new("chown")
        .args(["-R", "vmail:vmail"])
        .arg(&lists)
        .status()
        .unwrap();
    assert!(owner.success());
    let r = Run::new();
    let cfg = r.home.path().join(".config/mailpipe/config");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    fs::write(
        &cfg,
        format!(
            "account work\nimap_host localhost\nfetch_port {}\nfetch_tls on\n\
             fetch_tls_starttls off\nfetch_tls_trust_file {}\nuser alice\n\
             passwordeval echo secret\nfolders INBOX, Lists\nkeep on\n",
            d.imaps,
            d.ca.display()
        ),
    )
    .unwrap();
    let fetch = || {
        let mut c = tool(bin!("mfetch"), r.home.path());
        c.arg("--maildir")
            .arg(&r.maildir)
            .arg("--state-dir")
            .arg(&r.state);
        run(&mut c, b"")
    };
    let out = fetch();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = r.arrived();
    assert_eq!(got.values().sum::<usize>(), 5, "{got:?}");
    // One state per folder, named by the account and the folder.
    let names: Vec<String> = fs::read_dir(&r.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "work%2FINBOX.seen"), "{names:?}");
    assert!(names.iter().any(|n| n == "work%2FLists.seen"), "{names:?}");
    // keep on: all still there, and nothing new for either folder.
    assert_eq!(on_server(&d.maildir()), 3);
    let out = fetch();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

#[test]
fn a_run_killed_mid_batch_then_a_new_uidvalidity_still_gives_each_message_once() {
    use std::time::{Duration, Instant};
    let Some(d) = Dovecot::start(1000) else {
        return;
    };
    let r = Run::new();
    let cmd = || {
        let mut c = tool(bin!("mfetch"), r.home.path());
        c.args(["--imap", &format!("127.0.0.1:{}", d.imaps)])
            .args(["--tls", "implicit", "--ca-file", d.ca.to_str().unwrap()])
            .args(["--user", "alice", "--password-command", "echo secret"])
            .arg("--maildir")
            .arg(&r.maildir)
            .arg("--state-dir")
            .arg(&r.state)
            .args(["--keep", "--batch", "100"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    };
    let pending = || {
        fs::read_dir(&r.state)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".pending"))
            })
            .unwrap_or(false)
    };
    // Kill runs until one dies inside a batch after some batches arrived (its intent log
    // left behind, files in the Maildir).
    let mut wait = 150;
    for _ in 0..40 {
        let mut child = cmd().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap();
        child.wait().unwrap();
        if pending() && !r.arrived().is_empty() {
            break;
        }
        wait += 25;
    }
    // (A run that finished before its kill leaves nothing to cut: the change below is then
    // met by a complete state, which must hold as well.)
    // Then the server's UIDs start over, once the killed runs' sessions are gone (a live
    // one would write its index back, old UIDVALIDITY and all).
    let _ = std::process::Command::new("doveadm")
        .args(["-c", &d.conf, "kick", "alice"])
        .output();
    std::thread::sleep(Duration::from_millis(500));
    for f in fs::read_dir(d.maildir()).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("dovecot")
        {
            let _ = fs::remove_file(&p);
        }
    }
    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    let mut said = String::new();
    loop {
        assert!(start.elapsed() < Duration::from_secs(120), "never finished");
        let out = run(&mut cmd(), b"");
        said.push_str(&stderr(&out));
        match code(&out) {
            0 => {}
            1 => break,
            // A temporary failure (the killed sessions still being torn down): again.
            75 => std::thread::sleep(Duration::from_millis(200)),
            c => panic!("mfetch exited {c}: {said}"),
        }
    }
    let got = r.arrived();
    assert_eq!(got.len(), 1000, "{} of 1000; {said}", got.len());
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} duplicated: {said}", twice.len());
}
