//! Duplicate suppression by Message-ID, as `formail -D` and Sieve's `duplicate` (RFC 7352) do.
//!
//! The same message often arrives twice (a list and a direct Cc, a retried fetch); RFC 5322
//! §3.6.4 makes the Message-ID the identity to compare. The cache is a plain file of ids, one a
//! line, oldest first, that remembers at least the last [`KEEP`] ids: appends go to the end
//! (write + fsync), and when it holds twice that many it is rewritten with the newest [`KEEP`]
//! (temporary file + fsync + rename + directory fsync), so it is bounded and never torn.
//!
//! Concurrency: a [`Cache`] holds an exclusive lock on a separate `FILE.lock` (a lock on the
//! data file itself would be lost when the rewrite renames a new file over it) from before the
//! check until after the record, and mdeliver delivers while holding it. So of several
//! deliveries of one id at once exactly one stores the message, and the others see its id.
//! An id is recorded only after the delivery succeeded: a failed delivery is retried later and
//! must not then be dropped as a duplicate.

use crate::exit::{Code, Context, Error, Result};
use crate::message::header;
use crate::store::maildir::{FILE_MODE, open_private, sync_dir};
use std::collections::HashSet;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How many ids are remembered at least (the file holds up to twice as many).
pub const KEEP: usize = 5000;

/// The file name of the default cache, inside the Maildir (beside Dovecot's `dovecot-uidlist`;
/// no leading dot, so no Maildir++ reader mistakes it for a folder).
pub const DEFAULT_NAME: &str = "mailpipe-dedupe";

/// Longest id kept; RFC 5322 §2.1.1 limits a line to 998 characters.
const MAX_ID: usize = 998;

/// The Message-ID of a header block, without angle brackets: `None` when there is none, or
/// it is empty, too long, not UTF-8, or holds control characters (then the message is never a duplicate).
pub fn message_id(block: &[u8]) -> Option<String> {
    let field = header::fields(block)
        .into_iter()
        .find(|f| f.is("Message-ID"))?;
    // Not UTF-8: the lossy text would turn different ids into one (every invalid byte
    // becomes U+FFFD) and drop a message that is no duplicate. Such an id is no id.
    std::str::from_utf8(field.raw).ok()?;
    let raw = field.value_raw();
    let id = header::bare_addr(&raw);
    if id.is_empty() || id.len() > MAX_ID || id.chars().any(char::is_control) {
        return None;
    }
    Some(id.to_string())
}

/// The id cache, locked for as long as it lives.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    // Held for its lock; closing the file (on drop) releases it.
    _lock: File,
    ids: Vec<String>,
    seen: HashSet<String>,
    keep: usize,
}

impl Cache {
    /// Lock the cache at `path` (waiting for other deliveries) and read it. Failing to lock or
    /// read is a temporary failure: better a later retry than a silent duplicate or a drop.
    pub fn open(path: &Path) -> Result<Cache> {
        Cache::open_keeping(path, KEEP)
    }

    /// [`Cache::open`] remembering at least `keep` ids.
    fn open_keeping(path: &Path, keep: usize) -> Result<Cache> {
        let lock_path = lock_path(path);
        let what = || format!("dedupe cache {}", lock_path.display());
        let lock = open_private(OpenOptions::new().read(true).write(true), &lock_path)
            .or_code_with(Code::TempFail, what)?;
        lock.lock().or_code_with(Code::TempFail, what)?;
        let mut text = Vec::new();
        match File::open(path) {
            Ok(f) => {
                // Bounded: twice KEEP lines of at most MAX_ID bytes, plus slack.
                let cap = (2 * keep as u64 + 2) * (MAX_ID as u64 + 1);
                f.take(cap)
                    .read_to_end(&mut text)
                    .or_code_with(Code::TempFail, || format!("read {}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(Code::TempFail, format!("{}", path.display()), e)),
        }
        // Only whole lines count: a crash during an append can leave a partial last one.
        let whole = match text.iter().rposition(|&b| b == b'\n') {
            Some(i) => &text[..=i],
            None => &[][..],
        };
        let ids: Vec<String> = whole
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let seen = ids.iter().cloned().collect();
        Ok(Cache {
            path: path.to_path_buf(),
            _lock: lock,
            ids,
            seen,
            keep: keep.max(1),
        })
    }

    /// True when `id` was recorded before.
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Record `id` durably.
    pub fn record(&mut self, id: &str) -> Result<()> {
        if self.contains(id) {
            return Ok(());
        }
        let what = || format!("record in {}", self.path.display());
        if self.ids.len() + 1 > 2 * self.keep {
            self.ids.push(id.to_string());
            let start = self.ids.len() - self.keep;
            self.ids.drain(..start);
            self.rewrite().or_code_with(Code::TempFail, what)?;
        } else {
            self.append(id).or_code_with(Code::TempFail, what)?;
            self.ids.push(id.to_string());
        }
        self.seen.insert(id.to_string());
        Ok(())
    }

    fn append(&self, id: &str) -> std::io::Result<()> {
        let mut f = open_private(OpenOptions::new().read(true).append(true), &self.path)?;
        let len = f.metadata()?.len();
        let mut line = Vec::with_capacity(id.len() + 2);
        if len > 0 {
            // After a torn append, start on a fresh line so the partial one stays alone.
            f.seek(SeekFrom::End(-1))?;
            let mut last = [0u8];
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                line.push(b'\n');
            }
        }
        line.extend_from_slice(id.as_bytes());
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()?;
        if len == 0 {
            sync_dir(parent(&self.path))?;
        }
        Ok(())
    }

    fn rewrite(&self) -> std::io::Result<()> {
        let dir = parent(&self.path);
        let mut tmp = tempfile::Builder::new()
            .prefix(".mailpipe-dedupe")
            .tempfile_in(dir)?;
        // It replaces the cache: 0600 like the file open_private makes, whatever the umask.
        tmp.as_file()
            .set_permissions(Permissions::from_mode(FILE_MODE))?;
        let mut text = Vec::new();
        for id in &self.ids {
            text.extend_from_slice(id.as_bytes());
            text.push(b'\n');
        }
        tmp.write_all(&text)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        sync_dir(dir)
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_bare_and_sane() {
        assert_eq!(
            message_id(b"Subject: x\nmessage-id:  <a.b@c> \n").as_deref(),
            Some("a.b@c")
        );
        assert_eq!(message_id(b"Message-ID:\n <a@c>\n").as_deref(), Some("a@c"));
        assert_eq!(message_id(b"Subject: x\n"), None);
        assert_eq!(message_id(b"Message-ID: <>\n"), None);
        assert_eq!(message_id(b"Message-ID: <a\x01b>\n"), None);
        // Two different ids must not meet as one lossy string.
        assert_eq!(message_id(b"Message-ID: <\xff@x.test>\n"), None);
    }

    #[test]
    fn records_survive_reopen_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        {
            let mut c = Cache::open_keeping(&path, 3).unwrap();
            assert!(!c.contains("a"));
            c.record("a").unwrap();
            assert!(c.contains("a"));
        }
        let mut c = Cache::open_keeping(&path, 3).unwrap();
        assert!(c.contains("a"));
        for id in ["b", "c", "d", "e", "f", "g"] {
            c.record(id).unwrap();
        }
        drop(c);
        let c = Cache::open_keeping(&path, 3).unwrap();
        assert!(!c.contains("a"), "oldest id kept past the bound");
        assert!(c.contains("e") && c.contains("f") && c.contains("g"));
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 6, "{lines} lines");
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        std::fs::write(&path, b"a\nhalf-writ").unwrap();
        let mut c = Cache::open(&path).unwrap();
        assert!(c.contains("a") && !c.contains("half-writ"));
        c.record("b").unwrap();
        drop(c);
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nhalf-writ\nb\n");
    }
}
