//! The outgoing queue: messages with their envelopes, stored durably until a server took them.
//!
//! msubmit's `--queue` and `--flush` use it now; mrelay and mreceive's submission role will
//! share it. The queue directory is a Maildir, so storing is [`crate::store::maildir`]'s protocol:
//! a unique file in `tmp/` (O_EXCL), written, fsynced, renamed into `new/`, and `new/` fsynced
//! before we say "queued". Each file is the envelope (a few `key value` lines, a blank line)
//! then the message as given. Removal happens only after the server's 250 to the end of data.
//!
//! Crash safety: a crash before the rename leaves only a file in `tmp/` (never sent, and the
//! caller was not told "queued"); after it, the message is in `new/` until it was accepted.
//! A crash between the server's 250 and the unlink (or the directory fsync that makes a batch
//! of unlinks durable, [`Queue::sync`]) means the message is sent again on the next flush: a
//! duplicate is possible, a loss is not (the same trade every MTA queue makes).
//!
//! Retry state (attempt count, next attempt time, last error) lives beside, in `state/ID`,
//! replaced atomically by rename; losing it only resets the backoff. Messages refused
//! permanently move to `failed/` (never deleted by us). A lock file keeps two flushes from
//! sending the same message at once.

use crate::envelope::{Body, Envelope, Recipient};
use crate::exit::{Code, Context, Error, Result};
use crate::store::maildir::{FILE_MODE, Maildir, make_private_dir, open_private, sync_dir};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first line of every queue file: format and version.
const MAGIC: &str = "mailpipe-queue 1";

/// The longest envelope we read back (addresses are short; a huge one is a broken file).
const MAX_ENVELOPE: u64 = 1 << 20;

/// What a queue file holds besides the message: the envelope, the route, the arrival.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queued {
    /// The configuration account to send through (`None`: the defaults / command line).
    pub account: Option<String>,
    /// The envelope.
    pub envelope: Envelope,
    /// When it was queued (seconds since the epoch).
    pub queued: u64,
}

/// Retry bookkeeping for one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time (seconds since the epoch).
    pub next: u64,
    /// The last failure, one line.
    pub error: String,
}

/// One message in the queue.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The file name, unique in the queue.
    pub id: String,
    /// The queue file.
    pub path: PathBuf,
    /// Its envelope, route and arrival.
    pub queued: Queued,
    /// Its retry state.
    pub state: State,
}

/// The queue directory.
pub struct Queue {
    maildir: Maildir,
    dir: PathBuf,
}

/// Held while flushing; released on drop (and by the kernel if we are killed).
pub struct Lock {
    _file: File,
}

/// The default queue directory: $XDG_DATA_HOME/mailpipe/queue, else
/// ~/.local/share/mailpipe/queue (msubmit's `--queue`, mreceive's submissions).
pub fn default_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    data.or_else(|| crate::config::home().map(|h| h.join(".local/share")))
        .map(|d| d.join("mailpipe/queue"))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The wait before attempt `attempts + 1`: 1 minute, doubling, at most 1 hour.
pub fn backoff(attempts: u32) -> Duration {
    let mins = 1u64 << attempts.saturating_sub(1).min(6);
    Duration::from_secs(60 * mins.min(60))
}

fn check_value(key: &str, v: &str) -> Result<()> {
    if v.chars().any(char::is_control) {
        return Err(Error::new(
            Code::DataErr,
            format!("queue {key} {v:?}"),
            "contains a control character",
        ));
    }
    Ok(())
}

/// `s` with control characters (line ends) as spaces, for the one-line state file.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Queued {
    fn to_bytes(&self) -> Result<Vec<u8>> {
        let env = &self.envelope;
        let mut s = format!("{MAGIC}\n");
        let mut line = |k: &str, v: &str| -> Result<()> {
            check_value(k, v)?;
            s.push_str(&format!("{k} {v}\n"));
            Ok(())
        };
        if let Some(a) = &self.account {
            line("account", a)?;
        }
        line("from", &env.from)?;
        for r in &env.rcpts {
            line("rcpt", &r.addr)?;
            if let Some(n) = &r.notify {
                line("notify", n)?;
            }
            if let Some(o) = &r.orcpt {
                line("orcpt", o)?;
            }
        }
        if let Some(r) = &env.ret {
            line("ret", r)?;
        }
        if let Some(e) = &env.envid {
            line("envid", e)?;
        }
        line("8bit", if env.body.is_eight_bit() { "1" } else { "0" })?;
        line("size", &env.size.unwrap_or(0).to_string())?;
        line("queued", &self.queued.to_string())?;
        s.push('\n');
        Ok(s.into_bytes())
    }

    /// Read the envelope from the start of a queue file, leaving `r` at the message.
    fn read_from(r: &mut dyn BufRead, path: &Path) -> Result<Queued> {
        let bad = |why: &str| {
            Error::new(
                Code::DataErr,
                format!("queue file {}", path.display()),
                why.to_string(),
            )
        };
        let mut q = Queued::default();
        let env = &mut q.envelope;
        let mut first = true;
        let mut total = 0u64;
        loop {
            let mut line = String::new();
            let n = r
                .read_line(&mut line)
                .or_code_with(Code::TempFail, || format!("read {}", path.display()))?;
            total += n as u64;
            if n == 0 || total > MAX_ENVELOPE {
                return Err(bad("truncated envelope"));
            }
            let line = line.strip_suffix('\n').unwrap_or(&line);
            if first {
                if line != MAGIC {
                    return Err(bad("not a mailpipe queue file"));
                }
                first = false;
                continue;
            }
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            let num = |v: &str| v.parse::<u64>().map_err(|_| bad("bad number"));
            match k {
                "account" => q.account = Some(v.to_string()),
                "from" => env.from = v.to_string(),
                "rcpt" => env.rcpts.push(Recipient::new(v)),
                "notify" | "orcpt" => match env.rcpts.last_mut() {
                    Some(r) if k == "notify" => r.notify = Some(v.to_string()),
                    Some(r) => r.orcpt = Some(v.to_string()),
                    None => return Err(bad("recipient parameter before rcpt")),
                },
                "ret" => env.ret = Some(v.to_string()),
                "envid" => env.envid = Some(v.to_string()),
                "8bit" => env.body = Body::of(v == "1"),
                "size" => env.size = Some(num(v)?),
                "queued" => q.queued = num(v)?,
                // Keys from a newer version are ignored, so a downgrade still sends.
                _ => {}
            }
        }
        if env.rcpts.is_empty() {
            return Err(bad("no recipients"));
        }
        env.smtputf8 = env.needs_smtputf8();
        Ok(q)
    }
}

impl Queue {
    /// Open (creating it when missing, mode 0700) the queue at `dir`.
    pub fn open(dir: &Path) -> Result<Queue> {
        let maildir = Maildir::open(dir)?;
        for sub in ["state", "failed"] {
            let p = dir.join(sub);
            if !p.is_dir() {
                make_private_dir(&p)
                    .and_then(|_| sync_dir(dir))
                    .or_code_with(Code::TempFail, || format!("create {}", p.display()))?;
            }
        }
        Ok(Queue {
            maildir,
            dir: dir.to_path_buf(),
        })
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Store a message durably; `write` streams it. Returns the new entry's id.
    pub fn store(
        &self,
        queued: &Queued,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<String> {
        let head = queued.to_bytes()?;
        let d = self.maildir.deliver("", |w| {
            w.write_all(&head)?;
            write(w)
        })?;
        Ok(d.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    }

    /// Take the flush lock, or fail with [`Code::TempFail`] when another flush holds it.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.dir.join("lock");
        let file = open_private(OpenOptions::new().write(true), &path)
            .or_code_with(Code::TempFail, || format!("open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::new(
                Code::TempFail,
                format!("queue {}", self.dir.display()),
                "another flush is running",
            )),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(
                Code::TempFail,
                format!("lock {}", path.display()),
                e,
            )),
        }
    }

    /// The queued messages (not the failed ones), oldest first. Unreadable files are
    /// returned as errors beside the list, never dropped silently.
    pub fn list(&self) -> Result<(Vec<Entry>, Vec<Error>)> {
        self.list_in("new")
    }

    /// The messages that were refused permanently.
    pub fn failed(&self) -> Result<(Vec<Entry>, Vec<Error>)> {
        self.list_in("failed")
    }

    fn list_in(&self, sub: &str) -> Result<(Vec<Entry>, Vec<Error>)> {
        let dir = self.dir.join(sub);
        let rd = fs::read_dir(&dir)
            .or_code_with(Code::TempFail, || format!("read {}", dir.display()))?;
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for e in rd {
            let e = e.or_code_with(Code::TempFail, || format!("read {}", dir.display()))?;
            let id = e.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            let path = e.path();
            let read = File::open(&path)
                .or_code_with(Code::TempFail, || format!("open {}", path.display()))
                .and_then(|f| Queued::read_from(&mut BufReader::new(f), &path));
            match read {
                Ok(queued) => entries.push(Entry {
                    state: self.state(&id),
                    id,
                    path,
                    queued,
                }),
                // Gone between readdir and open: another flush sent it.
                Err(_) if !path.exists() => {}
                Err(err) => errors.push(err),
            }
        }
        entries.sort_by(|a, b| (a.queued.queued, &a.id).cmp(&(b.queued.queued, &b.id)));
        Ok((entries, errors))
    }

    fn state(&self, id: &str) -> State {
        let text = fs::read_to_string(self.dir.join("state").join(id)).unwrap_or_default();
        let mut st = State::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("attempts", v)) => st.attempts = v.parse().unwrap_or(0),
                Some(("next", v)) => st.next = v.parse().unwrap_or(0),
                Some(("error", v)) => st.error = v.to_string(),
                _ => {}
            }
        }
        st
    }

    fn write_state(&self, id: &str, st: &State) -> Result<()> {
        let dir = self.dir.join("state");
        let tmp = dir.join(format!(".{id}.tmp"));
        let text = format!(
            "attempts {}\nnext {}\nerror {}\n",
            st.attempts, st.next, st.error
        );
        // Private like the message it is about (its error names the recipients): 0600
        // whatever the umask, also over a leftover of a crash.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .and_then(|mut f| {
                f.set_permissions(Permissions::from_mode(FILE_MODE))?;
                f.write_all(text.as_bytes())
            })
            .and_then(|_| fs::rename(&tmp, dir.join(id)))
            .or_code_with(Code::TempFail, || format!("write {}", tmp.display()))
    }

    /// Open a message for sending: a reader positioned after the envelope.
    pub fn message(&self, entry: &Entry) -> Result<BufReader<File>> {
        let f = File::open(&entry.path)
            .or_code_with(Code::TempFail, || format!("open {}", entry.path.display()))?;
        let mut r = BufReader::with_capacity(64 * 1024, f);
        Queued::read_from(&mut r, &entry.path)?;
        Ok(r)
    }

    /// The server accepted the message: remove it. The removal becomes durable with the
    /// next [`Queue::sync`]; a crash before that can only send the message again.
    pub fn remove(&self, entry: &Entry) -> Result<()> {
        fs::remove_file(&entry.path).or_code_with(Code::TempFail, || {
            format!("remove {}", entry.path.display())
        })?;
        let _ = fs::remove_file(self.dir.join("state").join(&entry.id));
        Ok(())
    }

    /// Make the removals so far durable: one directory fsync for a whole batch instead of
    /// one per message, which under a busy disk is most of a flush's time.
    pub fn sync(&self) -> Result<()> {
        let new = self.dir.join("new");
        sync_dir(&new).or_code_with(Code::TempFail, || format!("fsync {}", new.display()))
    }

    /// A temporary failure: count the attempt and schedule the next one.
    pub fn defer(&self, entry: &Entry, error: &str) -> Result<State> {
        let attempts = entry.state.attempts.saturating_add(1);
        let st = State {
            attempts,
            next: now() + backoff(attempts).as_secs(),
            error: one_line(error),
        };
        self.write_state(&entry.id, &st)?;
        Ok(st)
    }

    /// A permanent failure: move the message to `failed/` with the reason.
    pub fn fail(&self, entry: &Entry, error: &str) -> Result<()> {
        let st = State {
            attempts: entry.state.attempts.saturating_add(1),
            next: 0,
            error: one_line(error),
        };
        self.write_state(&entry.id, &st)?;
        let to = self.dir.join("failed").join(&entry.id);
        fs::rename(&entry.path, &to)
            .and_then(|_| sync_dir(&self.dir.join("failed")))
            .or_code_with(Code::TempFail, || {
                format!("move {} to failed/", entry.path.display())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn env() -> Queued {
        let mut b = Recipient::new("b@y.test");
        b.notify = Some("SUCCESS".into());
        Queued {
            account: Some("work".into()),
            envelope: Envelope {
                from: "a@x.test".into(),
                rcpts: vec![b, Recipient::new("c@y.test")],
                ret: Some("HDRS".into()),
                body: Body::EightBitMime,
                size: Some(12),
                ..Envelope::default()
            },
            queued: 5,
        }
    }

    #[test]
    fn stores_lists_and_reads_back() {
        let t = tempfile::tempdir().unwrap();
        let q = Queue::open(&t.path().join("q")).unwrap();
        let id = q
            .store(&env(), |w| w.write_all(b"Subject: x\n\nbody\n"))
            .unwrap();
        let (entries, errors) = q.list().unwrap();
        assert!(errors.is_empty());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, id);
        assert_eq!(entries[0].queued, env());
        let mut body = Vec::new();
        q.message(&entries[0])
            .unwrap()
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, b"Subject: x\n\nbody\n");
        assert!(
            fs::read_dir(t.path().join("q/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn defer_fail_and_remove() {
        let t = tempfile::tempdir().unwrap();
        let q = Queue::open(t.path()).unwrap();
        q.store(&env(), |w| w.write_all(b"x")).unwrap();
        q.store(&env(), |w| w.write_all(b"y")).unwrap();
        let (e, _) = q.list().unwrap();
        let st = q.defer(&e[0], "451 4.3.0 try\nlater").unwrap();
        assert_eq!(st.attempts, 1);
        assert!(st.next >= now() + 59);
        let (again, _) = q.list().unwrap();
        assert_eq!(
            again.iter().find(|x| x.id == e[0].id).unwrap().state,
            st.clone()
        );
        assert_eq!(st.error, "451 4.3.0 try later");
        q.fail(&e[1], "550 no").unwrap();
        assert_eq!(q.list().unwrap().0.len(), 1);
        assert_eq!(q.failed().unwrap().0[0].state.error, "550 no");
        q.remove(&e[0]).unwrap();
        q.sync().unwrap();
        assert!(q.list().unwrap().0.is_empty());
        let _lock = q.lock().unwrap();
        assert_eq!(q.lock().err().map(|e| e.code()), Some(Code::TempFail));
    }

    #[test]
    fn refuses_newlines_in_the_envelope_and_reports_broken_files() {
        let t = tempfile::tempdir().unwrap();
        let q = Queue::open(t.path()).unwrap();
        let mut bad = env();
        bad.envelope.from = "a@x\nrcpt evil@x".into();
        assert!(q.store(&bad, |w| w.write_all(b"x")).is_err());
        fs::write(t.path().join("new/junk"), b"not a queue file\n").unwrap();
        let (entries, errors) = q.list().unwrap();
        assert!(entries.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(30), Duration::from_secs(3600));
    }
}
