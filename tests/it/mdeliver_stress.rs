//! mdeliver under stress: parallel deliveries, SIGKILL at random moments, a full disk, and a
//! 200 MB message in bounded memory. Each test checks the Maildir promise: a file in new/ is a
//! whole message, and exit 0 means the message is there.

use crate::common;
use common::*;
use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mdeliver(home: &Path) -> Command {
    tool(bin!("mdeliver"), home)
}

/// Message number `n`: its index in a header, then `lines` lines that depend on `n`, so any
/// file can be checked against what was sent for it.
fn message(n: usize, lines: usize) -> Vec<u8> {
    let mut m = format!("X-Index: {n}\nMessage-ID: <{n}@stress.test>\nSubject: message {n}\n\n")
        .into_bytes();
    for l in 0..lines {
        writeln!(m, "{n:08} {l:08} {}", "abcdefghij".repeat(4)).unwrap();
    }
    m
}

/// Check every file in `dir` against `expect(index)`; returns the indexes found.
fn check_files(dir: &Path, expect: impl Fn(usize) -> Vec<u8>) -> Vec<usize> {
    let mut found = Vec::new();
    for f in files(dir) {
        let data = fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned();
        let n: usize = text
            .strip_prefix("X-Index: ")
            .and_then(|r| r.split('\n').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: not one of ours: {text:?}", f.display()));
        assert!(
            data == expect(n),
            "{}: message {n} is not intact",
            f.display()
        );
        found.push(n);
    }
    found
}

/// xorshift64*: enough randomness for kill timings without a dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Rng(t.as_nanos() as u64 | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn eight_parallel_writers_deliver_a_thousand_intact_messages() {
    const WORKERS: usize = 8;
    // 1000 in total by default; MAILPIPE_STRESS_EACH=1000 runs 8 x 1000.
    let each: usize = std::env::var("MAILPIPE_STRESS_EACH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(125);
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (home, md) = (t.path().to_path_buf(), md.clone());
            std::thread::spawn(move || {
                for i in 0..each {
                    let n = w * each + i;
                    let out = run(mdeliver(&home).arg(&md), &message(n, n % 50));
                    assert_eq!(code(&out), 0, "message {n}: {}", stderr(&out));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let found = check_files(&md.join("new"), |n| message(n, n % 50));
    let unique: HashSet<usize> = found.iter().copied().collect();
    assert_eq!(found.len(), WORKERS * each);
    assert_eq!(unique.len(), WORKERS * each, "a message was stored twice");
    assert!(files(&md.join("tmp")).is_empty() && files(&md.join("cur")).is_empty());
}

#[test]
fn concurrent_first_deliveries_create_the_maildir_and_folder_once() {
    // Sixteen processes race to create a missing Maildir and a missing folder (by rule and
    // by flag): every mkdir that loses the race must count as success. The Maildir is a
    // $MAILDIR, as mreceive sets it, so its missing parents are created too.
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("deep/new/M");
    let rules = t.path().join("rules");
    fs::write(&rules, "header X-Index matches '[02468]$' copy Even\n").unwrap();
    let children: Vec<_> = (0..16)
        .map(|n| {
            let mut c = mdeliver(t.path());
            c.env("MAILDIR", &md)
                .arg("--rules")
                .arg(&rules)
                .args(["--folder", "Fresh"]);
            std::thread::spawn(move || run(&mut c, &message(n, 3)))
        })
        .collect();
    for c in children {
        let out = c.join().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(
        check_files(&md.join(".Fresh/new"), |n| message(n, 3)).len(),
        16
    );
    assert_eq!(
        check_files(&md.join(".Even/new"), |n| message(n, 3)).len(),
        8
    );
    assert!(md.join(".Fresh/maildirfolder").is_file() && md.join(".Even/maildirfolder").is_file());
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_message() {
    const RUNS: usize = 200;
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let mut rng = Rng::seeded();
    let seed = rng.0;
    // 0.3 to 3 MB: big enough that a kill often lands in the middle of the write.
    let lines = |n: usize| 5_000 + (n * 7919) % 45_000;
    let (mut ok, mut killed) = (Vec::new(), 0);
    for n in 0..RUNS {
        // With --dedupe, a kill can also land between delivery and recording the id.
        let mut child = mdeliver(t.path())
            .arg(&md)
            .arg("--dedupe")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let msg = message(n, lines(n));
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&msg);
        });
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        // kill(2) on an exited, unreaped child is harmless: it is still our zombie.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let _ = writer.join();
        match status.code() {
            Some(0) => ok.push(n),
            Some(c) => panic!("run {n} exited {c} (seed {seed})"),
            None => killed += 1,
        }
    }
    let found: HashSet<usize> = check_files(&md.join("new"), |n| message(n, lines(n)))
        .into_iter()
        .collect();
    for n in &ok {
        assert!(
            found.contains(n),
            "message {n} exited 0 but is missing (seed {seed})"
        );
    }
    assert!(files(&md.join("cur")).is_empty());
    // An id is recorded only after its message is stored, so no id names a missing message.
    let cache = fs::read_to_string(md.join("mailpipe-dedupe")).unwrap_or_default();
    // Only whole lines are ids (the cache ignores a torn last line).
    for line in cache.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let n: usize = line
            .trim_end()
            .trim_end_matches("@stress.test")
            .parse()
            .unwrap();
        assert!(
            found.contains(&n),
            "id of message {n} recorded but not stored (seed {seed})"
        );
    }
    eprintln!(
        "{RUNS} runs: {} exited 0, {killed} killed, {} in new/ (seed {seed})",
        ok.len(),
        found.len()
    );
    assert!(
        killed > 0,
        "no run was killed mid-delivery: the test proved nothing"
    );
}

/// A tmpfs mounted for the life of the value (root only).
struct Tmpfs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = is_root()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
                .arg("tmpfs")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            // CI runs as root on a machine that can mount: there this must not skip.
            assert!(!in_ci(), "cannot mount a tmpfs for the full-disk test");
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs { dir, mounted: true })
    }
    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
    }
}

#[test]
fn a_full_disk_is_a_temporary_failure_and_leaves_nothing() {
    // A real ENOSPC: a 512 KiB tmpfs (mounting needs root; CI is root).
    let Some(fs_) = Tmpfs::mount("512k") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let md = fs_.path().join("M");
    let small = message(1, 10);
    let out = run(mdeliver(t.path()).arg(&md), &small);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for (n, lines) in [(2, 20_000), (3, 9_000)] {
        // 1.2 MB and 530 KB: neither fits, both fail in the middle of the write.
        let out = run(mdeliver(t.path()).arg(&md), &message(n, lines));
        assert_eq!(code(&out), 75, "message {n}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no space left on device"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(check_files(&md.join("new"), |_| small.clone()), [1]);
    assert!(files(&md.join("cur")).is_empty());
    assert!(
        files(&md.join("tmp")).is_empty(),
        "partial file left in tmp/"
    );
    // The space came back: the next small message fits.
    let out = run(mdeliver(t.path()).arg(&md), &message(4, 10));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_200_mb_message_delivers_in_under_20_mb_of_memory() {
    const LINES: usize = 200 * 1024 * 1024 / 64;
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("M");
    let line = |l: usize| {
        format!(
            "{l:016x} {}\n",
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
        )
    };
    let mut child = mdeliver(t.path())
        .arg(&md)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The message is generated as a stream: the test holds 64 KiB of it at a time.
    let writer = std::thread::spawn(move || {
        let mut buf = b"Subject: big\n\n".to_vec();
        for l in 0..LINES {
            buf.extend_from_slice(line(l).as_bytes());
            if buf.len() >= 64 * 1024 {
                stdin.write_all(&buf).unwrap();
                buf.clear();
            }
        }
        stdin.write_all(&buf).unwrap();
    });
    let start = Instant::now();
    let (status, rss_kib) = peak_while_running(&mut child);
    writer.join().unwrap();
    assert_eq!(status, 0, "mdeliver failed");
    eprintln!("200 MB: {:?}, max RSS {rss_kib} KiB", start.elapsed());
    assert!(rss_kib < 20 * 1024, "max RSS {rss_kib} KiB");

    let m = messages(&md);
    assert_eq!(m.len(), 1);
    let mut r = BufReader::with_capacity(1 << 16, fs::File::open(&m[0]).unwrap());
    let mut head = String::new();
    r.read_line(&mut head).unwrap();
    r.read_line(&mut head).unwrap();
    assert_eq!(head, "Subject: big\n\n");
    let mut got = vec![0u8; 64];
    for l in 0..LINES {
        r.read_exact(&mut got).unwrap();
        assert!(got == line(l).as_bytes(), "line {l} differs");
    }
    assert_eq!(r.read(&mut got).unwrap(), 0, "trailing bytes");
}

/// Wait for `child`, returning its exit code (-1 when killed) and its peak resident set in
/// KiB: the highest VmHWM of /proc/PID/status seen while it ran, polled every 2 ms.
/// Not wait4(2)'s ru_maxrss: a child spawned with CLONE_VM (posix_spawn) starts on the
/// parent's memory, and the kernel folds the parent's peak into the child's at exec, so in
/// the one test binary, where other tests hold 100 MB at times, every child would seem to.
fn peak_while_running(child: &mut std::process::Child) -> (i32, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
            && let Some(kib) = line.split_whitespace().nth(1).and_then(|n| n.parse().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
