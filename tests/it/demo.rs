//! `make demo`'s script, demo/five-steps.sh, run as the README tells a new user to: all five
//! steps on one host with our binaries, the body checked byte-identical by the script itself,
//! and its servers gone afterwards, also when it is interrupted as Ctrl-C does.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/five-steps.sh")
}

fn bin_dir() -> PathBuf {
    crate::bin!("mfetch").parent().unwrap().to_path_buf()
}

/// Our processes still running with `dir` on their command line.
fn servers_in(dir: &Path) -> Vec<String> {
    let out = Command::new("pgrep")
        .arg("-af")
        .arg(dir.to_str().unwrap())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_demo_takes_a_message_through_all_five_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg(bin_dir()).env("TMPDIR", tmp.path());
    let out = crate::common::run(&mut cmd, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    // One line per step, in the order the message passes.
    let tools: Vec<&str> = stdout
        .lines()
        .take(7)
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(
        tools,
        [
            "mcompose", "msubmit", "mreceive", "mrelay", "mreceive", "maccess", "mfetch"
        ],
        "{stdout}"
    );
    assert!(stdout.contains("mrelay    status=sent"), "{stdout}");
    assert!(stdout.contains("Subject: five steps"), "{stdout}");
    assert!(
        stdout.contains("demo: the body arrived byte-identical"),
        "{stdout}"
    );
    assert!(stderr.is_empty(), "the demo is quiet on stderr: {stderr}");
    // Its servers stopped and its directory removed.
    assert!(
        servers_in(tmp.path()).is_empty(),
        "{:?}",
        servers_in(tmp.path())
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn ctrl_c_stops_the_demos_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new("bash")
        .arg(script())
        .arg(bin_dir())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Wait until its three servers run, then interrupt the whole group as a terminal does.
    let start = Instant::now();
    while servers_in(tmp.path()).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the servers never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the process group of our own child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the demo ignored Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    while !servers_in(tmp.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "servers left running: {:?}",
            servers_in(tmp.path())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
