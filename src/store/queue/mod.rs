//! The outgoing queue: messages waiting for their next hop, with what became of each
//! recipient, stored so that a crash never loses one.
//!
//! msubmit's `--queue`, `--flush` and `--list` and mreceive's submissions use it now; mrelay
//! and the local route will share it. Layout of the queue directory:
//!
//! - `new/ID`: an entry, the message once with its route, envelope and arrival
//!   ([`format`] has the bytes). Written once, as a Maildir delivery ([`crate::store::maildir`]):
//!   a unique file in `tmp/` (O_EXCL), written, fsynced, renamed into `new/`, `new/`
//!   fsynced before we say "queued". Never rewritten: a large message is not copied again
//!   for each change of state.
//! - `state/ID`: per recipient, its status (pending, delivered, failed), attempts, next try
//!   and last reply. Replaced whole on every change: a temporary file, fsync, rename, fsync of
//!   `state/`. Missing until the first attempt ("every recipient pending").
//! - `failed/ID`: entries whose recipients are all done, some refused for good and not
//!   reported; kept, never deleted by us (msubmit lists them FAILED). An entry whose
//!   failures were all reported by a bounce in the queue (mrelay's) is removed instead.
//! - `hold/ID`: entries put on hold by hand (mrelay `--hold`): no runner sees them until
//!   they are released, renamed back into `new/` (Postfix's hold queue).
//! - `hosts/ADDRESS:PORT`: per-host retry hints, the next hops found dead and when to try
//!   them again ([`hosts`]); an optimisation, never needed to send or keep mail.
//! - `lock`: taken shared by every runner, so they work side by side while an older
//!   mailpipe's flush (which takes it exclusively and knows no per-entry lock) cannot run
//!   beside them.
//!
//! Locking is per entry: a runner holds an exclusive flock(2) on the entry file while it
//! sends it, so two runners never send the same entry, and skip each other's. Having the
//! lock, it checks that the name still leads to the file it locked (another runner may have
//! finished it meanwhile) and reads the state again.
//!
//! Crash safety (a SIGKILL or a power loss, at any point):
//! - A recipient is never lost. The entry file, which names every recipient, leaves `new/`
//!   only when no recipient is pending: removed once every one was delivered (the removal
//!   is the record), or renamed into `failed/` once a state saying which failed is durable.
//!   A crash between that state write and the rename leaves an entry with nothing pending,
//!   which the next run moves without sending. A state write that does not complete leaves
//!   the previous state whole (the rename is atomic).
//! - A recipient is sent to twice only if the crash falls between the server's reply to
//!   the final dot and the state write that records it (the rename of the state file, or
//!   the removal of the entry when every recipient is delivered): the next run finds it
//!   still pending and sends again. A duplicate is possible, a loss is not: the trade every
//!   MTA queue makes (RFC 5321 §6.1 wants the message kept until delivery is certain).
//!   A parallel run ([`Queue::run_parallel`]) has that window once per thread, so one crash
//!   can send as many entries twice as there are threads sending at that moment.
//! - Removals of delivered entries are made durable by one fsync of `new/` per 100 entries
//!   and at the end of a run (under a busy disk that fsync is most of a flush's time). A
//!   SIGKILL cannot undo an unlink; a power loss can, up to that batch, and those entries
//!   are then sent again too. The new states of deferred entries likewise: each file
//!   fsynced before its rename, one fsync of `state/` per 100 and at the end of a run; a
//!   power loss can bring back an entry's previous state (whole), so it is tried again
//!   sooner, or a recipient delivered meanwhile is sent again.
//! - A state file that is torn or unreadable reads as "every recipient pending" (duplicates,
//!   never a loss); one left without its entry is removed by the next run.

mod format;
pub mod hosts;
pub mod maildrop;
mod run;

pub use format::{Local, Queued, RcptState, Route, ServerFlags, Status, VERSION};
pub use run::{Attempt, Job, Lanes, Report, Retry, Schedule, Verdict};

use crate::exit::{Code, Context, Error, Result};
use crate::store::maildir::{FILE_MODE, Maildir, make_private_dir, open_private, sync_dir};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One entry of the queue.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The file name, unique in the queue.
    pub id: String,
    /// The entry file.
    pub path: PathBuf,
    /// Its route, envelope and arrival.
    pub queued: Queued,
    /// The state of each recipient, in the envelope's order.
    pub rcpts: Vec<RcptState>,
}

impl Entry {
    /// The recipients (indexes into the envelope) still to be sent to.
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        (self.rcpts.iter().enumerate())
            .filter(|(_, s)| s.status == Status::Pending)
            .map(|(i, _)| i)
    }

    /// The most attempts made for a recipient not delivered.
    pub fn attempts(&self) -> u32 {
        self.undelivered().map(|s| s.attempts).max().unwrap_or(0)
    }

    /// The earliest next try of a pending recipient, as its writer recorded it.
    pub fn next_try(&self) -> Option<u64> {
        self.pending().map(|i| self.rcpts[i].next).min()
    }

    /// The earliest next try of a pending recipient with the waits of `retry`.
    pub fn next_try_with(&self, retry: &Retry) -> Option<u64> {
        self.pending().map(|i| retry.next_try(&self.rcpts[i])).min()
    }

    /// The last replies of the recipients not delivered, each once, joined by `; `.
    pub fn last_error(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for s in self.undelivered() {
            if !s.reply.is_empty() && !seen.contains(&s.reply.as_str()) {
                seen.push(&s.reply);
            }
        }
        seen.join("; ")
    }

    fn undelivered(&self) -> impl Iterator<Item = &RcptState> {
        self.rcpts.iter().filter(|s| s.status != Status::Delivered)
    }
}

/// The queue directory.
pub struct Queue {
    maildir: Maildir,
    dir: PathBuf,
}

/// An entry locked for sending: the open, flocked file, the entry as read under the lock,
/// and where its message starts. Dropping it releases the lock (so does the kernel, when
/// the process dies).
struct Locked {
    file: File,
    entry: Entry,
    body: u64,
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

/// The wait before attempt `attempts + 1` by default ([`Retry::default`]): 1 minute,
/// doubling, at most 1 hour.
pub fn backoff(attempts: u32) -> Duration {
    Retry::default().delay(attempts)
}

/// An entry id names a file in the queue, nothing else: no path, no dot file.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.starts_with('.') || id.contains('/') || id.contains('\0') {
        return Err(Error::new(
            Code::Usage,
            format!("entry {id:?}"),
            "not a queue id",
        ));
    }
    Ok(())
}

/// A test's simulated crash: the steps of a state change call this between their system
/// calls, and a test makes the n-th call fail, leaving the files as a SIGKILL there would.
#[cfg(test)]
fn crash_point() -> io::Result<()> {
    tests::crash_point()
}

#[cfg(not(test))]
#[inline(always)]
fn crash_point() -> io::Result<()> {
    Ok(())
}

/// A test counts the fsyncs of `state/` (one per batch of deferred entries, not per entry).
#[cfg(test)]
fn note_state_sync() {
    tests::note_state_sync()
}

#[cfg(not(test))]
#[inline(always)]
fn note_state_sync() {}

impl Queue {
    /// Open (creating it when missing, mode 0700) the queue at `dir`.
    pub fn open(dir: &Path) -> Result<Queue> {
        let maildir = Maildir::open(dir)?;
        for sub in ["state", "failed", "hold"] {
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

    /// The entries waiting (not the failed ones), oldest first. Unreadable files are
    /// returned as errors beside the list, never dropped silently.
    pub fn list(&self) -> Result<(Vec<Entry>, Vec<Error>)> {
        self.list_in("new")
    }

    /// The entries some of whose recipients were refused for good.
    pub fn failed(&self) -> Result<(Vec<Entry>, Vec<Error>)> {
        self.list_in("failed")
    }

    /// The entries on hold.
    pub fn held(&self) -> Result<(Vec<Entry>, Vec<Error>)> {
        self.list_in("hold")
    }

    /// Put the waiting entry `id` on hold: no runner sends it until [`Queue::release`].
    /// Fails while a runner is sending it, or when there is no such waiting entry.
    pub fn hold(&self, id: &str) -> Result<()> {
        let _locked = self.lock_by_hand(id)?;
        self.move_entry(id, "new", "hold")
    }

    /// Release the held entry `id`: it waits in `new/` again, as it was.
    pub fn release(&self, id: &str) -> Result<()> {
        check_id(id)?;
        if !self.dir.join("hold").join(id).exists() {
            return Err(Error::new(
                Code::NoInput,
                format!("entry {id}"),
                "not on hold",
            ));
        }
        self.move_entry(id, "hold", "new")
    }

    /// Delete the entry `id` (waiting, held or failed) and its state, for good.
    pub fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let waiting = self.dir.join("new").join(id);
        let path = if waiting.exists() {
            // Locked, so that a runner sending it right now is not undone behind its back.
            let locked = self.lock_by_hand(id)?;
            locked.entry.path
        } else {
            ["hold", "failed"]
                .iter()
                .map(|sub| self.dir.join(sub).join(id))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    Error::new(Code::NoInput, format!("entry {id}"), "not in the queue")
                })?
        };
        let what = || format!("remove {}", path.display());
        fs::remove_file(&path).or_code_with(Code::TempFail, what)?;
        if let Some(parent) = path.parent() {
            sync_dir(parent).or_code_with(Code::TempFail, what)?;
        }
        match fs::remove_file(self.state_path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(
                Code::TempFail,
                format!("remove {}", self.state_path(id).display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// The waiting entry `id`, locked for a change made by hand: an error (not `None`) when
    /// it is missing or a runner has it.
    fn lock_by_hand(&self, id: &str) -> Result<Locked> {
        check_id(id)?;
        match self.lock_entry(id)? {
            Some(l) => Ok(l),
            None if self.dir.join("new").join(id).exists() => Err(Error::new(
                Code::TempFail,
                format!("entry {id}"),
                "being sent right now; try again",
            )),
            None => Err(Error::new(
                Code::NoInput,
                format!("entry {id}"),
                "not waiting in the queue",
            )),
        }
    }

    /// Rename the entry `id` from one directory of the queue to another, durably.
    fn move_entry(&self, id: &str, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.dir.join(from), self.dir.join(to));
        fs::rename(src.join(id), dst.join(id))
            .and_then(|_| sync_dir(&dst))
            .and_then(|_| sync_dir(&src))
            .or_code_with(Code::TempFail, || {
                format!("move {id} from {from}/ to {to}/")
            })
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
            match self.read_entry(id, e.path()) {
                Some(Ok(entry)) => entries.push(entry),
                Some(Err(err)) => errors.push(err),
                None => {}
            }
        }
        entries.sort_by(|a, b| (a.queued.queued, &a.id).cmp(&(b.queued.queued, &b.id)));
        Ok((entries, errors))
    }

    /// The waiting entry `id` alone, as [`Queue::list`] would list it (a run of one entry
    /// reads that one, not the whole queue).
    fn list_one(&self, id: &str) -> Result<(Vec<Entry>, Vec<Error>)> {
        check_id(id)?;
        Ok(
            match self.read_entry(id.to_string(), self.dir.join("new").join(id)) {
                Some(Ok(entry)) => (vec![entry], Vec::new()),
                Some(Err(err)) => (Vec::new(), vec![err]),
                None => (Vec::new(), Vec::new()),
            },
        )
    }

    /// The entry file at `path` with its state; `None` when it is gone (a runner finished
    /// it since it was listed).
    fn read_entry(&self, id: String, path: PathBuf) -> Option<Result<Entry>> {
        let read = File::open(&path)
            .or_code_with(Code::TempFail, || format!("open {}", path.display()))
            .and_then(|f| Queued::read_from(&mut BufReader::new(f), &path));
        match read {
            Ok((queued, _)) => Some(Ok(Entry {
                rcpts: self.state(&id, &queued),
                id,
                path,
                queued,
            })),
            Err(_) if !path.exists() => None,
            Err(err) => Some(Err(err)),
        }
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.dir.join("state").join(id)
    }

    fn state(&self, id: &str, queued: &Queued) -> Vec<RcptState> {
        let text = fs::read_to_string(self.state_path(id)).unwrap_or_default();
        format::state_from(&text, &queued.envelope)
    }

    /// Replace the entry's state durably: a temporary file, fsync, rename, fsync of `state/`
    /// (unless `durable` is false: the caller fsyncs `state/` once for a batch,
    /// [`Queue::sync_states`]).
    fn write_state(&self, entry: &Entry, durable: bool) -> Result<()> {
        let dir = self.dir.join("state");
        let tmp = dir.join(format!(".{}.tmp", entry.id));
        let text = format::state_to_bytes(&entry.queued.envelope, &entry.rcpts);
        let what = || format!("write {}", tmp.display());
        // Private like the message it is about (its replies name the recipients): 0600
        // whatever the umask, also over a leftover of a crash.
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .or_code_with(Code::TempFail, what)?;
        f.set_permissions(Permissions::from_mode(FILE_MODE))
            .and_then(|_| f.write_all(&text))
            .and_then(|_| crash_point())
            .and_then(|_| f.sync_all())
            .and_then(|_| crash_point())
            .and_then(|_| fs::rename(&tmp, dir.join(&entry.id)))
            .and_then(|_| crash_point())
            .and_then(|_| match durable {
                true => {
                    note_state_sync();
                    sync_dir(&dir).and_then(|_| crash_point())
                }
                false => Ok(()),
            })
            .or_code_with(Code::TempFail, what)
    }

    /// Every recipient was delivered: remove the entry, then its state. The removal becomes
    /// durable with the next [`Queue::sync`]; a crash can only send it again.
    fn remove(&self, entry: &Entry) -> Result<()> {
        crash_point()
            .and_then(|_| fs::remove_file(&entry.path))
            .and_then(|_| crash_point())
            .or_code_with(Code::TempFail, || {
                format!("remove {}", entry.path.display())
            })?;
        match fs::remove_file(self.state_path(&entry.id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(
                Code::TempFail,
                format!("remove {}", self.state_path(&entry.id).display()),
                e,
            )),
            _ => crash_point().or_code(Code::TempFail, "remove"),
        }
    }

    /// Every recipient is done, some failed: record that, then move the entry to `failed/`.
    fn fail(&self, entry: &Entry) -> Result<()> {
        self.write_state(entry, true)?;
        let failed = self.dir.join("failed");
        fs::rename(&entry.path, failed.join(&entry.id))
            .and_then(|_| crash_point())
            .and_then(|_| sync_dir(&failed))
            .and_then(|_| crash_point())
            .or_code_with(Code::TempFail, || {
                format!("move {} to failed/", entry.path.display())
            })
    }

    /// Make the removals so far durable: one directory fsync for a whole batch instead of
    /// one per entry.
    fn sync(&self) -> Result<()> {
        let new = self.dir.join("new");
        sync_dir(&new).or_code_with(Code::TempFail, || format!("fsync {}", new.display()))
    }

    /// Make the state renames so far durable: one fsync of `state/` for a batch.
    fn sync_states(&self) -> Result<()> {
        let dir = self.dir.join("state");
        note_state_sync();
        sync_dir(&dir).or_code_with(Code::TempFail, || format!("fsync {}", dir.display()))
    }

    /// Take the queue-wide lock shared (see the module header), or fail with
    /// [`Code::TempFail`] while an older mailpipe's flush holds it.
    fn lock_shared(&self) -> Result<File> {
        let path = self.dir.join("lock");
        let file = open_private(OpenOptions::new().write(true), &path)
            .or_code_with(Code::TempFail, || format!("open {}", path.display()))?;
        match file.try_lock_shared() {
            Ok(()) => Ok(file),
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

    /// Lock the entry `id` for sending. `Ok(None)` when another runner holds it or finished
    /// it since it was listed.
    fn lock_entry(&self, id: &str) -> Result<Option<Locked>> {
        let path = self.dir.join("new").join(id);
        let what = || format!("lock {}", path.display());
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(Code::TempFail, what(), e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(Code::TempFail, what(), e)),
        }
        // The lock is on the file we opened; the name may since lead elsewhere (the runner
        // before us removed it or moved it to failed/ while we waited).
        let held = file.metadata().or_code_with(Code::TempFail, what)?;
        match fs::metadata(&path) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {}
            _ => return Ok(None),
        }
        let (queued, body) = Queued::read_from(&mut BufReader::new(&file), &path)?;
        let entry = Entry {
            rcpts: self.state(id, &queued),
            id: id.to_string(),
            path,
            queued,
        };
        Ok(Some(Locked { file, entry, body }))
    }

    /// Remove state files whose entry is gone (a crash between the removal of an entry and
    /// of its state), and temporary ones left by a crash.
    fn sweep(&self) -> Result<()> {
        let dir = self.dir.join("state");
        let rd = fs::read_dir(&dir)
            .or_code_with(Code::TempFail, || format!("read {}", dir.display()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
                Some(id) => id.to_string(),
                None => name,
            };
            // new/ first: an entry moves from new/ to failed/ (one rename), never back, so
            // one absent from new/ is in failed/ already or gone for good.
            // hold/ last: an entry is held and released by hand, between runs or during
            // one; a release between the looks costs a state (duplicates, never a loss).
            if ["new", "failed", "hold"]
                .iter()
                .any(|sub| self.dir.join(sub).join(&id).exists())
            {
                continue;
            }
            let _ = fs::remove_file(e.path());
        }
        self.hosts().sweep();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
