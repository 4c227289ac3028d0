//! The system queue's maildrop, as installed: mdrop copied setgid to a drop group, a service
//! user owning the queue and the maildrop (1730), two ordinary users. A user's mrelay hands
//! the message to mdrop; other users cannot read it; the service's queue run picks it up,
//! records the user and sends it; a forged or garbage drop file is moved aside with a log
//! line and the run goes on. Needs root (users, groups, chown); CI runs as root.

use crate::common::smtp::{Fake, Script};
use crate::common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

const GROUP: &str = "mpdrop-test";
const SERVICE: &str = "mpdrop-svc";
const USERS: [&str; 2] = ["mpdrop-u1", "mpdrop-u2"];

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    out
}

/// The group and users, made when missing (they stay: they are harmless and reused).
fn accounts() {
    let exists = |db: &str, name: &str| {
        Command::new("getent")
            .args([db, name])
            .output()
            .unwrap()
            .status
            .success()
    };
    if !exists("group", GROUP) {
        sh(Command::new("groupadd").args(["--system", GROUP]));
    }
    let nologin = "/usr/sbin/nologin";
    if !exists("passwd", SERVICE) {
        sh(Command::new("useradd").args(["--system", "-M", "-s", nologin, "-G", GROUP, SERVICE]));
    }
    for u in USERS {
        if !exists("passwd", u) {
            sh(Command::new("useradd").args(["-M", "-N", "-s", nologin, u]));
        }
    }
}

fn id(flag: &str, name: &str) -> u32 {
    let out = sh(Command::new("id").args([flag, name]));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Run `prog args` as `user` (its own groups only), stdin `input`.
fn as_user(user: &str, prog: &Path, args: &[&str], input: &[u8]) -> Output {
    let gid = id("-g", user).to_string();
    let mut c = Command::new("setpriv");
    c.args(["--reuid", user, "--regid", &gid, "--init-groups", "--"])
        .arg(prog)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LOGNAME", user);
    run(&mut c, input)
}

#[test]
fn a_users_mail_reaches_the_system_queue_through_the_setgid_maildrop() {
    if !is_root() {
        assert!(!in_ci(), "the maildrop test needs root in CI");
        eprintln!("SKIPPED: the maildrop test needs root");
        return;
    }
    accounts();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    std::fs::set_permissions(root, PermissionsExt::from_mode(0o755)).unwrap();
    // The binaries as `make install` puts them: mdrop setgid to the drop group, beside mrelay.
    let bin = root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for b in [bin!("mrelay"), bin!("mdrop")] {
        std::fs::copy(&b, bin.join(b.file_name().unwrap())).unwrap();
    }
    let mdrop = bin.join("mdrop");
    let drop_gid: u32 = {
        let out = sh(Command::new("getent").args(["group", GROUP]));
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    std::os::unix::fs::chown(&mdrop, Some(0), Some(drop_gid)).unwrap();
    std::fs::set_permissions(&mdrop, PermissionsExt::from_mode(0o2755)).unwrap();
    // The spool: the queue the service's alone, the maildrop 1730.
    let spool = root.join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, PermissionsExt::from_mode(0o755)).unwrap();
    let svc = id("-u", SERVICE);
    let queue = spool.join("queue");
    let maildrop = spool.join("maildrop");
    std::fs::create_dir(&queue).unwrap();
    std::os::unix::fs::chown(&queue, Some(svc), Some(id("-g", SERVICE))).unwrap();
    std::fs::set_permissions(&queue, PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::create_dir(&maildrop).unwrap();
    std::os::unix::fs::chown(&maildrop, Some(svc), Some(drop_gid)).unwrap();
    std::fs::set_permissions(&maildrop, PermissionsExt::from_mode(0o1730)).unwrap();

    let fake = Fake::start(Script::default());
    let config = root.join("config");
    std::fs::write(
        &config,
        format!("route example.test [127.0.0.1]:{}\n", fake.port()),
    )
    .unwrap();
    std::fs::set_permissions(&config, PermissionsExt::from_mode(0o644)).unwrap();
    let mrelay = bin.join("mrelay");
    let (cfg, q) = (config.to_str().unwrap(), queue.to_str().unwrap());
    let common = ["-C", cfg, "--queue-dir", q, "--hostname", "relay.test"];
    let relay_as = |user: &str, more: &[&str], input: &[u8]| {
        let args: Vec<&str> = common.iter().chain(more).copied().collect();
        as_user(user, &mrelay, &args, input)
    };

    // A user submits: exit 0, one file in the maildrop, the user's, 0640, the drop group's.
    let [u1, u2] = USERS;
    let msg = b"From: me\nSubject: dropped\n\nhello\n";
    let out = relay_as(u1, &["x@example.test"], msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = relay_as(u1, &["-f", "boss@relay.test", "y@example.test"], msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dropped = files(&maildrop);
    assert_eq!(dropped.len(), 2);
    for f in &dropped {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (id("-u", u1), drop_gid, 0o640)
        );
    }
    assert!(fake.messages().is_empty(), "only the service sends");
    // Another user can read neither the file nor the directory, nor the queue.
    let cat = Path::new("/bin/cat");
    let f = dropped[0].to_str().unwrap();
    assert_ne!(
        code(&as_user(u2, cat, &[f], b"")),
        0,
        "another user read a drop file"
    );
    let ls = Path::new("/bin/ls");
    assert_ne!(
        code(&as_user(u2, ls, &[maildrop.to_str().unwrap()], b"")),
        0
    );
    // mdrop run by hand with garbage: refused, nothing left behind.
    let out = as_user(
        u2,
        &mdrop,
        &["--maildrop", maildrop.to_str().unwrap()],
        b"garbage\n\nx\n",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    // mdrop refuses a directory that is not a maildrop (the user's own, say).
    let out = as_user(u2, &mdrop, &["--maildrop", "/tmp"], b"");
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert_eq!(files(&maildrop).len(), 2);

    // Forged drop files, as a user with write access could leave them: garbage, and a
    // symbolic link to the service's secrets.
    let junk = maildrop.join("0.junk");
    std::fs::write(
        &junk,
        "mailpipe-queue 2\nroute local\nroute.command /bin/sh -c evil\nrcpt a@b\n\nx\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&junk, Some(id("-u", u2)), Some(drop_gid)).unwrap();
    std::fs::set_permissions(&junk, PermissionsExt::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", maildrop.join("0.link")).unwrap();

    // The service's queue run: both messages sent, the user recorded, the forgeries aside.
    let out = relay_as(SERVICE, &["-q"], b"");
    let log = stderr(&out);
    assert_eq!(code(&out), 0, "{log}");
    assert!(files(&maildrop).is_empty(), "{log}");
    let sent: Vec<String> = fake
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert_eq!(sent.len(), 2, "{log}");
    let uid1 = id("-u", u1);
    for m in &sent {
        assert!(
            m.starts_with(&format!(
                "Received: by relay.test (mailpipe mdrop, from userid {uid1} ({u1}));"
            )),
            "{m}"
        );
        assert!(m.ends_with("Subject: dropped\r\n\r\nhello\r\n"), "{m}");
    }
    let forged: Vec<&String> = sent
        .iter()
        .filter(|m| m.contains("X-Authentication-Warning"))
        .collect();
    assert_eq!(forged.len(), 1, "{sent:?}");
    assert!(forged[0].contains(&format!(
        "X-Authentication-Warning: relay.test: {u1} set sender to boss@relay.test using -f"
    )));
    assert!(fake.log_text().contains("MAIL FROM:<boss@relay.test>"));
    assert!(
        fake.log_text()
            .contains(&format!("MAIL FROM:<{u1}@relay.test>")),
        "{}",
        fake.log_text()
    );
    assert_eq!(log.matches("status=rejected").count(), 2, "{log}");
    assert_eq!(files(&queue.join("corrupt")).len(), 2, "{log}");
    assert!(files(&queue.join("new")).is_empty(), "{log}");

    // The service's daemon takes a drop file within a second of its completion (inotify on
    // the maildrop), without a new entry in new/ to wake it.
    let args: Vec<String> = common
        .iter()
        .map(|a| a.to_string())
        .chain(["--daemon".into()])
        .collect();
    let gid = id("-g", SERVICE).to_string();
    let child = Command::new("setpriv")
        .args(["--reuid", SERVICE, "--regid", &gid, "--init-groups", "--"])
        .arg(&mrelay)
        .args(&args)
        .env_clear()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = relay_as(u2, &["z@example.test"], msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let start = std::time::Instant::now();
    assert!(
        wait_until(std::time::Duration::from_secs(5), || fake.messages().len()
            == 3),
        "the daemon did not pick it up"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // SAFETY: kill(2) on our own child (setpriv execs mrelay in place).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = wait_output(child, std::time::Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("pickup uid="), "{}", stderr(&out));
    assert!(files(&maildrop).is_empty());
}
