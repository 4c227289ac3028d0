//! What a fetching account has seen, kept between runs: the ids (POP3 UIDLs; IMAP UIDs
//! under their UIDVALIDITY) of the messages already durable here, the intent log of the
//! batch in flight, and the lock that keeps a second run of the account away.
//!
//! Why these three files, per account (the key names them: an account, or `user@host:port`
//! for flags alone), in the state directory (`$XDG_STATE_HOME/mailpipe/mfetch`):
//! - `KEY.seen`: one id a line after a header line; replaced whole (a new file, fsync,
//!   rename, directory fsync) after each batch is durable, so it is never half written and
//!   never ahead of the mail (getmail6#112 saved it once at the end: a timeout fetched the
//!   whole mailbox again).
//! - `KEY.pending`: the ids of the batch being fetched, written durably before its first
//!   message. A run that finds it knows the last one died between the mail and the state,
//!   and looks in the Maildir for the messages' tags (see [`tag`]) to tell what arrived:
//!   exactly once, not at least once.
//! - `KEY.lock`: `flock`ed for the run; a second run finds it taken and leaves at once.

use crate::exit::{Code, Error, Result};
use crate::store::maildir::{make_private_dir, open_private, sync_dir};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first line of a state file: the format, for a later version to recognise.
const HEADER: &str = "mfetch-seen 1";

/// One account's state, locked for this run.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    key: String,
    seen: HashSet<String>,
    epoch: Option<u32>,
    _lock: File,
}

/// The state directory by default: `$XDG_STATE_HOME/mailpipe/mfetch`, else
/// `~/.local/state/mailpipe/mfetch` (XDG Base Directory: state that should persist between
/// restarts but is not important enough for the data directory).
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(base.join("mailpipe/mfetch"))
}

/// A key as a file name: letters, digits, `.`, `-`, `_` and `@` as they are, anything
/// else as `%XX` (a `/` in an account name must not name another directory).
pub fn file_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_@+".contains(&b) || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The tag a message of `key` with `id` (under `epoch`) carries in its Maildir file name:
/// 16 hex digits of a SHA-256, so ids of any characters (UIDLs may hold `/` and `:`) make a
/// name part, and two accounts' equal ids differ.
pub fn tag(key: &str, epoch: Option<u32>, id: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(key.as_bytes());
    ctx.update(b"\0");
    ctx.update(epoch.map(|e| e.to_string()).unwrap_or_default().as_bytes());
    ctx.update(b"\0");
    ctx.update(id.as_bytes());
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io_error(what: &Path, e: std::io::Error) -> Error {
    Error::io(Code::TempFail, what.display().to_string(), e)
}

/// Write `text` as the whole of `path`, durably: a new file, fsync, rename, directory fsync.
fn replace(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = open_private(OpenOptions::new().write(true), &tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map_err(|e| io_error(path, e))
}

impl State {
    /// Open and lock the state of `key` in `dir` (created 0700 when missing). `None` when
    /// another run holds the lock.
    pub fn open(dir: &Path, key: &str) -> Result<Option<State>> {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        make_private_dir(dir).map_err(|e| io_error(dir, e))?;
        let name = file_key(key);
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = open_private(OpenOptions::new().write(true), &lock_path)
            .map_err(|e| io_error(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(io_error(&lock_path, e)),
        }
        let mut state = State {
            dir: dir.to_path_buf(),
            key: key.to_string(),
            seen: HashSet::new(),
            epoch: None,
            _lock: lock,
        };
        let path = state.path("seen");
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut lines = text.lines();
                if lines.next() != Some(HEADER) {
                    return Err(Error::new(
                        Code::Config,
                        path.display().to_string(),
                        "not an mfetch state file (remove it to fetch everything again)",
                    ));
                }
                for l in lines {
                    if let Some(e) = l.strip_prefix("epoch ") {
                        state.epoch = e.parse().ok();
                    } else if !l.is_empty() {
                        state.seen.insert(l.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
        Ok(Some(state))
    }

    fn path(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{}.{what}", file_key(&self.key)))
    }

    /// The key the state is for.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The epoch the ids were recorded under (IMAP's UIDVALIDITY).
    pub fn epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// True when the message `id` is durable here already.
    pub fn seen(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// How many ids are known.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no id is known.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The ids of a batch a run died in, if one did.
    pub fn pending(&self) -> Result<Vec<String>> {
        let path = self.path("pending");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().skip(1).map(str::to_string).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// Write the intent log of a batch, durably, before its first message is fetched.
    pub fn intend<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let mut text = format!("{HEADER}\n");
        for id in ids {
            text.push_str(id);
            text.push('\n');
        }
        replace(&self.path("pending"), &text)
    }

    /// Record `ids` as durable here and keep, of the earlier ones, only those in `present`
    /// (the mailbox as listed now: an id gone from the server cannot come back, RFC 1939
    /// §7), under `epoch`; save durably, then drop the intent log.
    pub fn record<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        present: Option<&HashSet<&str>>,
        epoch: Option<u32>,
    ) -> Result<()> {
        if let Some(present) = present {
            self.seen.retain(|id| present.contains(id.as_str()));
        }
        self.seen.extend(ids.into_iter().map(str::to_string));
        self.epoch = epoch;
        let mut text = String::with_capacity(self.seen.len() * 24 + 32);
        text.push_str(HEADER);
        text.push('\n');
        if let Some(e) = epoch {
            text.push_str(&format!("epoch {e}\n"));
        }
        let mut ids: Vec<&String> = self.seen.iter().collect();
        ids.sort_unstable();
        for id in ids {
            text.push_str(id);
            text.push('\n');
        }
        replace(&self.path("seen"), &text)?;
        match fs::remove_file(self.path("pending")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&self.path("pending"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_durably_prunes_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("st");
        let mut s = State::open(&d, "me@pop.test:995").unwrap().unwrap();
        assert!(
            State::open(&d, "me@pop.test:995").unwrap().is_none(),
            "not locked"
        );
        s.intend(["a", "b"]).unwrap();
        assert_eq!(s.pending().unwrap(), ["a", "b"]);
        s.record(["a", "b"], None, None).unwrap();
        assert!(s.pending().unwrap().is_empty());
        let present: HashSet<&str> = ["b", "c"].into_iter().collect();
        s.record(["c"], Some(&present), None).unwrap();
        drop(s);
        let s = State::open(&d, "me@pop.test:995").unwrap().unwrap();
        assert!(!s.seen("a") && s.seen("b") && s.seen("c"));
        assert_eq!(file_key("../x/y"), "%2E.%2Fx%2Fy");
        assert_ne!(tag("a", None, "1"), tag("b", None, "1"));
        assert_eq!(tag("a", None, "1").len(), 16);
    }
}
