//! Mail and queue files are private whatever the umask the tools run under (issue 8 item 3):
//! every file mdeliver, mreceive and msubmit's queue store is 0600 and every directory they
//! create 0700, as maildrop and dovecot-lda store mail; a directory the user made keeps its
//! mode. Each tool runs as a real binary under umasks 022 (the usual one: files came out
//! 0644), 000, and 277 (which takes the owner's own bits).

use crate::common;

use common::{code, files, messages, run, stderr, tool};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

const UMASKS: [libc::mode_t; 3] = [0o022, 0o000, 0o277];

/// `cmd` to be run under `mask`.
fn under_umask(cmd: &mut Command, mask: libc::mode_t) -> &mut Command {
    // SAFETY: umask(2) is async-signal-safe and touches nothing but the child's own mask.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        })
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Assert `dirs` are 0700 and `files` 0600.
fn private(mask: libc::mode_t, dirs: &[&Path], files: &[&Path]) {
    for d in dirs {
        assert_eq!(mode(d), 0o700, "umask {mask:03o}: {}", d.display());
    }
    for f in files {
        assert_eq!(mode(f), 0o600, "umask {mask:03o}: {}", f.display());
    }
}

fn only(v: Vec<std::path::PathBuf>) -> std::path::PathBuf {
    assert_eq!(v.len(), 1, "{v:?}");
    v.into_iter().next().unwrap()
}

#[test]
fn mdeliver_stores_0600_in_0700_directories() {
    for mask in UMASKS {
        let t = tempfile::tempdir().unwrap();
        // A Maildir under a missing parent, from $MAILDIR (mreceive's BASE/USER/Maildir):
        // mdeliver makes both.
        let md = t.path().join("mail/Maildir");
        let out = run(
            under_umask(tool(bin!("mdeliver"), t.path()).env("MAILDIR", &md), mask),
            b"Subject: 1\n\nx\n",
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = run(
            under_umask(
                tool(bin!("mdeliver"), t.path())
                    .arg(&md)
                    .args(["--folder", "Lists", "--flags", "S"]),
                mask,
            ),
            b"Subject: 2\n\nx\n",
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let folder = md.join(".Lists");
        private(
            mask,
            &[
                &t.path().join("mail"),
                &md,
                &md.join("tmp"),
                &md.join("new"),
                &md.join("cur"),
                &folder,
                &folder.join("tmp"),
                &folder.join("new"),
                &folder.join("cur"),
            ],
            &[
                &only(messages(&md)),
                &only(files(&folder.join("cur"))),
                &folder.join("maildirfolder"),
            ],
        );
    }
}

/// Directories the user made are theirs: a group-readable Maildir stays so (shared mailboxes
/// rely on it); only the files we store in it are private.
#[test]
fn existing_directories_keep_their_mode() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    for d in [&md, &md.join("tmp"), &md.join("new"), &md.join("cur")] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    let out = run(
        under_umask(tool(bin!("mdeliver"), t.path()).arg(&md), 0o022),
        b"Subject: 1\n\nx\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for d in [&md, &md.join("tmp"), &md.join("new"), &md.join("cur")] {
        assert_eq!(mode(d), 0o750, "{}", d.display());
    }
    assert_eq!(mode(&only(messages(&md))), 0o600);
}

/// Built in (--maildir-base) and through mdeliver (-c): the base, the user's directory, the
/// Maildir and the message, all made by the delivery.
#[test]
fn mreceive_stores_0600_in_0700_directories() {
    let session = "EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@local.test>\r\n\
                   DATA\r\nSubject: s\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    let mdeliver = bin!("mdeliver");
    for mask in UMASKS {
        for via in [None, Some(mdeliver.to_str().unwrap())] {
            let t = tempfile::tempdir().unwrap();
            let base = t.path().join("mail");
            let mut c = tool(bin!("mreceive"), t.path());
            c.args(["-d", "local.test", "--hostname", "mx.local.test", "-m"])
                .arg(&base);
            if let Some(md) = via {
                c.args(["-c", md]);
            }
            let out = run(under_umask(&mut c, mask), session.as_bytes());
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("\r\n250 2.0.0"), "{via:?}: {text}");
            let md = base.join("bob/Maildir");
            private(
                mask,
                &[
                    &base,
                    &base.join("bob"),
                    &md,
                    &md.join("tmp"),
                    &md.join("new"),
                    &md.join("cur"),
                ],
                &[&only(messages(&md))],
            );
        }
    }
}

/// msubmit's queue: the directories, the queued message and its retry state.
#[test]
fn the_queue_is_private() {
    for mask in UMASKS {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("spool/queue");
        let out = run(
            under_umask(
                tool(bin!("msubmit"), t.path())
                    .arg("--queue-dir")
                    .arg(&q)
                    .args(["--queue", "-f", "a@a.test", "b@b.test"]),
                mask,
            ),
            b"Subject: queued\n\nbody\n",
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        // A flush to a server that is down writes the retry state.
        let down = common::free_port().to_string();
        let out = run(
            under_umask(
                tool(bin!("msubmit"), t.path())
                    .arg("--queue-dir")
                    .arg(&q)
                    .args(["--host", "127.0.0.1", "--port", &down, "--tls", "none"])
                    .arg("--flush"),
                mask,
            ),
            b"",
        );
        assert_eq!(code(&out), 75, "{}", stderr(&out));
        private(
            mask,
            &[
                &t.path().join("spool"),
                &q,
                &q.join("tmp"),
                &q.join("new"),
                &q.join("cur"),
                &q.join("state"),
                &q.join("failed"),
            ],
            &[
                &only(files(&q.join("new"))),
                &only(files(&q.join("state"))),
                &q.join("lock"),
            ],
        );
    }
}
