//! The world an example runs in: the test's SMTP servers, a fresh root with the files the
//! examples name, the substitutions that make an example run here, and running commands with
//! bounds (own session, time limit, process group killed).

use crate::common;
use crate::common::mreceive;
use crate::examples::shell::{Expect, resolve};
use regex::Regex;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The password of every account the examples log in with.
pub const PASSWORD: &str = "secret";

/// Who may AUTH on the test servers: the users the examples and configurations name.
pub const SERVER_USERS: &[&str] = &["me", "alice", "me@example.org", "me@example.com"];

/// Where the test servers accept mail as an MX: the domains the examples send to.
pub const SERVER_DOMAINS: &str = "example.org,example.com,example.net,localhost";

/// A message as users keep them around: the fixture for every `*.eml` an example names.
pub const MESSAGE: &str = "From: Ann Example <ann@example.org>\n\
    To: Me <me@example.org>\n\
    Cc: bob@example.org\n\
    Subject: Q3 report\n\
    Date: Mon, 01 Jan 2024 10:00:00 +0000\n\
    Message-ID: <q3.1@example.org>\n\
    \n\
    The numbers are in.\n";

/// Where, under a world's root, Dovecot's LDA finds its configuration.
pub const DOVECOT_CONF: &str = "etc/dovecot/dovecot.conf";

/// The test's SMTP servers: mreceive on 127.0.0.1 with STARTTLS, and with implicit TLS,
/// sharing one mail directory and queue. An example's mail "arrived" when a file appeared
/// under `dir/mail` or `dir/queue`.
pub struct Servers {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub starttls: u16,
    pub implicit: u16,
    pub children: Vec<Child>,
}

impl Servers {
    pub fn start() -> Servers {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = mreceive::make_certs(dir.path());
        let pw = dir.path().join("passwd");
        let hash = mailpipe::passwd::hash(PASSWORD).unwrap();
        let lines: String = SERVER_USERS
            .iter()
            .map(|u| format!("{u}:{hash}\n"))
            .collect();
        std::fs::write(&pw, lines).unwrap();
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for implicit in [false, true] {
            let port = common::free_port();
            let mut c = common::tool(crate::bin!("mreceive"), dir.path());
            c.args(["-l", &format!("127.0.0.1:{port}"), "-d", SERVER_DOMAINS])
                .args(["--hostname", "mx.test", "--timeout", "10"])
                .args(["--auth-failure-delay", "0"])
                .arg("-m")
                .arg(dir.path().join("mail"))
                .arg("--queue-dir")
                .arg(dir.path().join("queue"))
                .arg("--tls-cert")
                .arg(&cert)
                .arg("--tls-key")
                .arg(&key)
                .arg("-p")
                .arg(&pw)
                // A provider's server that lets its users send as the examples' authors.
                .args(
                    SERVER_USERS
                        .iter()
                        .flat_map(|u| ["--trusted-sender-login", u]),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if implicit {
                c.arg("--tls-on-connect");
            }
            children.push(c.spawn().unwrap());
            ports.push(port);
        }
        for &port in &ports {
            assert!(
                common::wait_until(Duration::from_secs(10), || {
                    TcpStream::connect(("127.0.0.1", port)).is_ok()
                }),
                "test server on port {port} did not start"
            );
        }
        Servers {
            dir,
            ca,
            cert,
            key,
            starttls: ports[0],
            implicit: ports[1],
            children,
        }
    }

    /// Messages the servers have taken so far.
    pub fn count(&self) -> usize {
        maildir_count(&self.dir.path().join("mail")) + maildir_count(&self.dir.path().join("queue"))
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Messages in every Maildir (and Maildir++ folder) under `dir`: files in new/ and cur/.
pub fn maildir_count(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && d.file_name().is_some_and(|n| n == "new" || n == "cur") {
                n += 1;
            }
        }
    }
    n
}

/// Every message file under `dir` (for finding where a server put one).
pub fn message_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() && d.file_name().is_some_and(|n| n == "new" || n == "cur") => {
                    out.push(p)
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// A fresh root for one block, with the files its examples name.
pub struct World<'s> {
    pub root: tempfile::TempDir,
    pub home: PathBuf,
    pub shim: PathBuf,
    pub user: String,
    pub srv: &'s Servers,
}

/// The directory of our binaries.
pub fn bin_dir() -> PathBuf {
    crate::bin!("mdeliver").parent().unwrap().to_path_buf()
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl<'s> World<'s> {
    pub fn new(srv: &'s Servers) -> World<'s> {
        let root = tempfile::Builder::new().prefix("mp-ex").tempdir().unwrap();
        let r = root.path();
        let home = r.join("home/me");
        for d in [
            "etc/mailpipe",
            "etc/ssl",
            "var/mail/bob",
            "var/spool",
            "home/bob",
            "home/me/Maildir/cur",
            "tmp",
            "usr/bin",
            "usr/sbin",
            "shim",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let put = |p: PathBuf, data: &[u8]| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        for f in ["body.txt", "note.txt", "fyi.txt"] {
            put(home.join(f), b"See you at noon.\n");
        }
        put(r.join("tmp/body"), b"See you at noon.\n");
        put(
            home.join("q3.pdf"),
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n",
        );
        put(r.join("etc/aliases"), b"root: me@example.org\n");
        put(home.join(".mailpass"), format!("{PASSWORD}\n").as_bytes());
        put(home.join("data.csv"), b"quarter,revenue\nQ3,42\n");
        put(home.join("note.html"), b"<p>See you at <b>noon</b>.</p>\n");
        for f in [
            "incoming.eml",
            "msg.eml",
            "message.eml",
            "Maildir/cur/1700000000.x:2,S",
        ] {
            put(home.join(f), MESSAGE.as_bytes());
        }
        put(
            home.join("rules"),
            b"header Subject contains report folder Reports\n",
        );
        put(
            home.join(".config/mailpipe/config"),
            format!(
                "# the test's submission server (tests/it/examples.rs)\ndefaults\nhost 127.0.0.1\n\
                 port {}\ntls_trust_file {}\nfetch_tls_trust_file {}\n\
                 # mrelay: every domain to the test server, the queue in the home (root's would\n\
                 # be the system's)\nroute * [127.0.0.1]:{}\nqueue_dir {}\n",
                srv.starttls,
                srv.ca.display(),
                srv.ca.display(),
                srv.starttls,
                home.join(".local/share/mailpipe/queue").display()
            )
            .as_bytes(),
        );
        std::fs::copy(&srv.cert, r.join("etc/ssl/mx.pem")).unwrap();
        std::fs::copy(&srv.key, r.join("etc/ssl/mx.key")).unwrap();
        // Our tools first on PATH (Debian's mblaze has its own mdeliver), a password store
        // for `pass show …`, and an editor that writes the reply.
        let shim = r.join("shim");
        for t in [
            "mcompose", "msubmit", "mrelay", "mreceive", "mdeliver", "maccess", "mfetch",
        ] {
            std::os::unix::fs::symlink(bin_dir().join(t), shim.join(t)).unwrap();
        }
        let script = |name: &str, body: &str| {
            let p = shim.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        };
        script("pass", &format!("echo {PASSWORD}"));
        script("fake-editor", "printf 'Thanks, noted.\\n' >> \"$1\"");
        World {
            home,
            shim,
            user: current_user(),
            srv,
            root,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The example's text with this world's paths, addresses, ports and users.
    pub fn substitute(&self, text: &str) -> String {
        static PATHS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(
                r#"(^|[\s='"(<>,])(/usr(?:/local)?/s?bin/(mcompose|msubmit|mrelay|mreceive|mdeliver|maccess|mfetch)\b|/usr/s?bin/(?:sendmail|mailq|newaliases)\b|/(?:etc|var|home|tmp)/|~([a-z][a-z0-9_-]*)/)"#,
            )
            .unwrap()
        });
        static HOSTS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(
                r"(^|[\s=])(?:smtp|mail|mx|submission|pop3?|imap)\d*\.example\.(?:org|com|net)\b",
            )
            .unwrap()
        });
        static LISTEN: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(-l|--listen)(\s+|=)(\[[0-9a-fA-F:]*\]|[0-9.]+|localhost):(\d+)").unwrap()
        });
        static VMAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bvmail\b").unwrap());
        static DOVECOT_LDA: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"/usr/lib/dovecot/dovecot-lda\b").unwrap());
        let root = self.root().display().to_string();
        // Our own binaries and the project's files stay where they are, wherever the project
        // was cloned (CI's clone may sit under /tmp or /var, which examples' paths move).
        let ours = [
            bin_dir().display().to_string(),
            crate::examples::project().display().to_string(),
        ];
        let mut held = text.to_string();
        for (i, p) in ours.iter().enumerate() {
            held = held.replace(p.as_str(), &format!("\u{1}{i}\u{1}"));
        }
        let text = held.as_str();
        let text = PATHS.replace_all(text, |c: &regex::Captures| {
            let mapped = if let Some(tool) = c.get(3) {
                bin_dir().join(tool.as_str()).display().to_string()
            } else if let Some(user) = c.get(4) {
                format!("{root}/home/{}/", user.as_str())
            } else {
                format!("{root}{}", &c[2])
            };
            format!("{}{mapped}", &c[1])
        });
        let text = HOSTS.replace_all(&text, "${1}127.0.0.1");
        let text = LISTEN.replace_all(&text, |c: &regex::Captures| {
            let host = match &c[3] {
                "0.0.0.0" => "127.0.0.1",
                "[::]" => "[::1]",
                h => h,
            };
            let port = if host.starts_with('[') {
                TcpListener::bind("[::1]:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            } else {
                common::free_port()
            };
            format!("{}{}{host}:{port}", &c[1], &c[2])
        });
        let text = VMAIL.replace_all(&text, self.user.as_str());
        // dovecot-lda reads /etc/dovecot/dovecot.conf: that path moves under the root like
        // every /etc path, given with -c since it is built in (see `servers::Dovecot`).
        let mut text = DOVECOT_LDA
            .replace_all(&text, |c: &regex::Captures| {
                format!("{} -c {root}/{DOVECOT_CONF}", &c[0])
            })
            .into_owned();
        // msubmit --host without --port: the test server that speaks the chosen TLS mode.
        if text.contains("--host 127.0.0.1") && !text.contains("--port") {
            let port = if text.contains("--tls implicit") {
                self.srv.implicit
            } else {
                self.srv.starttls
            };
            text = text.replace(
                "--host 127.0.0.1",
                &format!("--host 127.0.0.1 --port {port}"),
            );
        }
        for (i, p) in ours.iter().enumerate() {
            text = text.replace(&format!("\u{1}{i}\u{1}"), p);
        }
        text
    }

    /// `~/x`, `~`, or a path relative to the home of "me" (where examples run).
    pub fn path(&self, p: &str, home: &Path) -> PathBuf {
        resolve(p, home, &self.home)
    }

    /// The environment of an interactive shell of user "me".
    pub fn env(&self, c: &mut Command) {
        c.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", self.shim.display()),
            )
            .env("HOME", &self.home)
            .env("USER", "me")
            .env("LOGNAME", "me")
            .env("EDITOR", "fake-editor")
            .env("TMPDIR", self.root().join("tmp"))
            .env("LANG", "C.UTF-8")
            .current_dir(&self.home);
    }

    /// Run `line` with bash -o pipefail in the user's shell environment.
    pub fn bash(&self, line: &str, stdin: &[u8]) -> Result<Output, String> {
        let mut c = Command::new("bash");
        self.env(&mut c);
        c.args(["-o", "pipefail", "-c", line]);
        run_bounded(&mut c, stdin, Duration::from_secs(30))
    }
}

/// Run a command in its own session (no controlling terminal, one process group to kill),
/// feeding `stdin`; killed with its group after `limit`.
pub fn run_bounded(c: &mut Command, stdin: &[u8], limit: Duration) -> Result<Output, String> {
    own_session(c);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("cannot start {c:?}: {e}"))?;
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(|e| e.to_string())?,
        Err(_) => {
            // SAFETY: kill(2) on the process group of our own child, which has not been reaped.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return Err(format!("did not finish within {limit:?}"));
        }
    };
    let _ = writer.join();
    Ok(out)
}

pub fn own_session(c: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

pub fn show(out: &Output) -> String {
    let cut = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let s = s.trim_end();
        if s.len() > 1500 {
            let from = (s.len() - 1500..s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(s.len());
            format!("…{}", &s[from..])
        } else {
            s.to_string()
        }
    };
    format!(
        "exit {:?}\n  stdout: {}\n  stderr: {}",
        out.status.code(),
        cut(&out.stdout),
        cut(&out.stderr)
    )
}

pub fn looks_like_message(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let header = Regex::new(r"^[A-Za-z][A-Za-z0-9-]*:").unwrap();
    header.is_match(&text) && (text.contains("\n\n") || text.contains("\r\n\r\n"))
}

/// The state an expectation is checked against.
pub fn measure(w: &World, e: &Expect) -> usize {
    match e {
        Expect::Sent => w.srv.count(),
        Expect::Queued(q) | Expect::Flushed(q) => maildir_count(q),
        Expect::Delivered(m) | Expect::DryRun(m) => maildir_count(m),
        Expect::Grown(f) => std::fs::metadata(f).map_or(0, |m| m.len() as usize),
        _ => 0,
    }
}

pub fn check(
    w: &World,
    e: &Expect,
    before: usize,
    server_before: usize,
    out: &Output,
) -> Result<(), String> {
    let after = measure(w, e);
    let ok = match e {
        Expect::Sent | Expect::Queued(_) | Expect::Delivered(_) | Expect::Grown(_) => {
            after > before
        }
        Expect::Flushed(_) => after == 0 && (before == 0 || w.srv.count() > server_before),
        Expect::DryRun(_) => after == before && !out.stdout.is_empty(),
        Expect::MessageFile(f) => std::fs::read(f).is_ok_and(|d| looks_like_message(&d)),
        Expect::MessageOnStdout => looks_like_message(&out.stdout),
        Expect::Scanned => !out.stdout.is_empty(),
        Expect::Link(target, link) => std::fs::read_link(link).is_ok_and(|t| &t == target),
        Expect::Directory(d) => d.is_dir(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {e:?} (before {before}, after {after})"))
    }
}

/// Run a command line and check every expectation of its stages.
pub fn run_checked(
    w: &World,
    line: &str,
    expects: &[Expect],
    run: impl FnOnce() -> Result<Output, String>,
) -> Result<Output, String> {
    let before: Vec<usize> = expects.iter().map(|e| measure(w, e)).collect();
    let server_before = w.srv.count();
    let out = run().map_err(|e| format!("{line}\n  {e}"))?;
    if !out.status.success() {
        return Err(format!("{line}\n  {}", show(&out)));
    }
    for (e, b) in expects.iter().zip(before) {
        check(w, e, b, server_before, &out)
            .map_err(|why| format!("{line}\n  {why}\n  {}", show(&out)))?;
    }
    Ok(out)
}

/// A background server in its own process group, stopped with SIGTERM (then SIGKILL).
pub struct Background {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Background {
    pub fn start(mut c: Command) -> Result<Background, String> {
        own_session(&mut c);
        let log = std::env::temp_dir().join(format!(
            "mp-ex-{}-{}.log",
            std::process::id(),
            common::free_port()
        ));
        let f = std::fs::File::create(&log).unwrap();
        c.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let child = c.spawn().map_err(|e| format!("cannot start {c:?}: {e}"))?;
        Ok(Background {
            child: Some(child),
            log,
        })
    }

    /// Stop the group; what it wrote, and how it ended.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let pid = child.id() as i32;
        let early = child.try_wait().ok().flatten();
        // SAFETY: kill(2) on our own child's process group.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let start = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break Some(s);
            }
            if start.elapsed() > Duration::from_secs(10) {
                // SAFETY: as above.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        format!(
            "{} {}",
            match (early, status) {
                (Some(s), _) => format!("had exited by itself ({s})"),
                (None, Some(s)) => format!("stopped ({s})"),
                (None, None) => "did not stop on SIGTERM".into(),
            },
            text.trim_end()
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's process group.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}
