//! The shared test harness: temporary Maildirs, running the built binaries, and real peers
//! (Postfix, Dovecot, dnsmasq) on loopback with bounded waits and cleanup.
//!
//! Binaries are always called by absolute path (`bin!("mdeliver")` expands to
//! `CARGO_BIN_EXE_mdeliver`): Debian's mblaze installs its own `mdeliver` on PATH.

pub mod mreceive;
pub mod pop3;
pub mod relay;
pub mod smtp;
pub mod tmpfs;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The absolute path of one of our binaries.
#[macro_export]
macro_rules! bin {
    ($name:literal) => {
        std::path::PathBuf::from(env!(concat!("CARGO_BIN_EXE_", $name)))
    };
}

/// Run `cmd` with `stdin` as input and a clean environment apart from `env`; HOME points into
/// a directory that holds no configuration unless the test puts one there. stdout and stderr
/// are read while the child runs (a child writing more than a pipe buffer would otherwise
/// block forever); it is killed after 60 s.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
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
    let limit = Duration::from_secs(60);
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not yet reaped (its waiter still blocks).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("process did not finish within {limit:?}");
        }
    };
    let _ = writer.join();
    out
}

/// Wait for a child with a deadline; kill it and panic when it hangs.
pub fn wait_output(mut child: std::process::Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command for one of our binaries with an isolated environment: HOME and
/// XDG_CONFIG_HOME in `home`, no inherited MAILDIR/SENDER/RECIPIENT/MAILPIPE_CONFIG.
pub fn tool(path: PathBuf, home: &Path) -> Command {
    let mut c = Command::new(path);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("TMPDIR", std::env::temp_dir());
    c
}

/// The exit status as a number (-1 when killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The regular files in `dir` (sorted), or none when it does not exist.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    v.retain(|p| p.is_file());
    v.sort();
    v
}

/// The messages in a Maildir's new/ and cur/.
pub fn messages(maildir: &Path) -> Vec<PathBuf> {
    let mut v = files(&maildir.join("new"));
    v.extend(files(&maildir.join("cur")));
    v
}

/// The contents of the only message in `maildir`; panics unless there is exactly one.
pub fn only_message(maildir: &Path) -> Vec<u8> {
    let m = messages(maildir);
    assert_eq!(
        m.len(),
        1,
        "expected one message in {}: {m:?}",
        maildir.display()
    );
    std::fs::read(&m[0]).unwrap()
}

/// True when running under CI, where interop tests must not skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Check that external programs exist; outside CI, a missing one skips the test (returns
/// false, with a note on stderr); in CI it fails the test.
pub fn have(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| {
            !Path::new(p).is_file()
                && !Command::new("sh")
                    .args(["-c", &format!("command -v {p} >/dev/null")])
                    .status()
                    .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(!in_ci(), "interop peers missing in CI: {missing:?}");
    eprintln!("SKIPPED: missing {missing:?} (run tests/peers/install.sh)");
    false
}

/// True when running as root (the peer scripts need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for one test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Peer servers started from `tests/peers/` in a private state directory, stopped on drop.
pub struct Peers {
    pub state: tempfile::TempDir,
}

impl Peers {
    /// A new, empty state directory (traversable by the unprivileged peer users).
    pub fn new() -> Peers {
        let state = tempfile::Builder::new()
            .prefix("mp-peer")
            .tempdir_in("/tmp")
            .unwrap();
        Peers { state }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.state.path()
    }

    /// Run a peer script with arguments and extra environment; panics with its output on failure.
    pub fn script(&self, name: &str, args: &[&str], env: &[(&str, &str)]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers")
            .join(name);
        let mut c = Command::new("bash");
        c.arg(&script).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run peer script");
        assert!(
            out.status.success(),
            "{name} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A `KEY=value` from a peer's `run/<name>.env` file.
    pub fn env_value(&self, peer: &str, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.dir().join(format!("run/{peer}.env"))).ok()?;
        text.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        })
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/stop.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg(self.state.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Poll `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
