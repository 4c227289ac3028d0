//! Maildir delivery with the durability the format promises.
//!
//! The protocol (qmail's maildir(5), as mblaze's mdeliver and dovecot-lda do it): create a
//! uniquely named file in `tmp/` with O_EXCL, write, fsync the file, rename it into `new/`,
//! fsync `new/`, and only then report success. It is written out here rather than taken from
//! the `maildir` crate, which creates the file with the umask's mode (0644 under the usual
//! 022: every local user could read the mail, where maildrop and dovecot-lda store 0600) and
//! hands out no descriptor to fix that before the first byte, and which never fsyncs the
//! directory (after a crash the rename, and so the message, could be gone although we said
//! "delivered"). Folder names are validated here (`./../x` must not escape the Maildir).
//! Maildir++ folders (`.Name/`) get the `maildirfolder` marker file that Courier and Dovecot
//! expect.
//!
//! Everything we create is private whatever the umask: files 0600, directories 0700, set
//! with fchmod/chmod right after the exclusive create (the umask can only have taken bits
//! away, so nothing is ever more open than that in between). Directories that already exist
//! keep the mode their owner gave them.

use crate::exit::{Code, Context, Error, Result};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The mode of every file we store: mail is private (as maildrop and dovecot-lda store it).
pub const FILE_MODE: u32 = 0o600;

/// The mode of every directory we create.
const DIR_MODE: u32 = 0o700;

/// A Maildir (or a Maildir++ folder inside one) that we can deliver into.
#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
}

/// Where a delivered message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The full path of the file in `new/` or `cur/`.
    pub path: PathBuf,
}

impl Maildir {
    /// Open the Maildir at `root`, creating `tmp`, `new` and `cur` (mode 0700) when missing,
    /// as dovecot-lda does. The new directories are fsynced into their parents.
    pub fn open(root: &Path) -> Result<Maildir> {
        create_tree(root)?;
        Ok(Maildir {
            root: root.to_path_buf(),
        })
    }

    /// [`Maildir::open`], but never creating a missing parent of `root`: that is exit 73
    /// (EX_CANTCREAT) naming the parent. A Maildir a user names (`mdeliver /typo/deep/Maildir`)
    /// is created as maildirmake and dovecot-lda would, not a tree of mistyped directories.
    pub fn open_in_existing(root: &Path) -> Result<Maildir> {
        let parent = match root.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Err(e) = fs::metadata(parent)
            && e.kind() == io::ErrorKind::NotFound
        {
            return Err(Error::new(
                Code::CantCreat,
                format!("create maildir {}", root.display()),
                format!("{} does not exist", parent.display()),
            ));
        }
        Maildir::open(root)
    }

    /// The Maildir's root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The Maildir++ folder `name` (`.name/` under this root), created when missing with its
    /// `maildirfolder` marker. `INBOX` (any case) is the root itself. Nested folders use a dot:
    /// `Lists.rust`.
    pub fn folder(&self, name: &str) -> Result<Maildir> {
        if name.eq_ignore_ascii_case("inbox") {
            return Maildir::open(self.path());
        }
        check_folder_name(name)?;
        let root = self.path().join(format!(".{name}"));
        let fresh = !root.join("cur").is_dir();
        let md = Maildir::open(&root)?;
        if fresh {
            let marker = root.join("maildirfolder");
            open_private(OpenOptions::new().write(true), &marker)
                .and_then(|f| f.sync_all())
                .and_then(|_| sync_dir(&root))
                .or_code_with(Code::TempFail, || format!("create {}", marker.display()))?;
        }
        Ok(md)
    }

    /// Deliver one message: `write` streams it into a fresh file in `tmp/` (mode 0600).
    /// With `flags` (Maildir info letters such as `S` or `FS`) the message goes to `cur/` with
    /// those flags, as IMAP servers expect of a message already marked; otherwise to `new/`.
    ///
    /// Returns only after the file and the directory entry are on disk. On any failure the
    /// temporary file is removed and nothing is visible in `new/` or `cur/`.
    pub fn deliver(
        &self,
        flags: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<Delivered> {
        self.deliver_in(flags, None, write)
    }

    /// [`Maildir::deliver`], or with a `batch`: the message is written into `tmp/` (its
    /// name carrying the batch's tag) and left there, unsynced, for [`Batch::commit`] to
    /// sync, rename and make durable with the rest of the batch. The returned path is where
    /// it will be once committed.
    pub fn deliver_in(
        &self,
        flags: &str,
        batch: Option<&Batch>,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<Delivered> {
        let what = || format!("deliver to {}", self.path().display());
        let tag = batch.and_then(Batch::current_tag);
        let mut tmp = Tmp::create_tagged(&self.root.join("tmp"), tag.as_deref())
            .or_code_with(Code::TempFail, what)?;
        let crlf_size = {
            let buf = io::BufWriter::with_capacity(64 * 1024, &mut tmp.file);
            let mut counted = CrlfSize::new(buf);
            write(&mut counted).or_code_with(Code::TempFail, what)?;
            counted.inner.flush().or_code_with(Code::TempFail, what)?;
            counted.size()
        };
        if batch.is_none() {
            tmp.file.sync_all().or_code_with(Code::TempFail, what)?;
        }
        let meta = tmp.file.metadata().or_code_with(Code::TempFail, what)?;
        // The final name adds what makes it unique across hosts' file systems and what
        // readers use without opening the file: maildir(5)'s and Courier's S= (the file's
        // size) and W= (its size with CRLF line ends, what POP3's LIST reports: Dovecot's
        // and Courier's "virtual size"), so a POP3 server lists a mailbox without reading it.
        let id = format!(
            "{}V{}I{}.{},S={},W={}",
            tmp.unique,
            meta.dev(),
            meta.ino(),
            *HOSTNAME,
            meta.size(),
            crlf_size
        );
        let flags = normalize_flags(flags);
        let (sub, name) = if flags.is_empty() {
            ("new", id)
        } else {
            ("cur", format!("{id}:2,{flags}"))
        };
        let dir = self.path().join(sub);
        let path = dir.join(name);
        if let Some(batch) = batch {
            batch
                .start_sync(&tmp.file)
                .or_code_with(Code::TempFail, what)?;
            // The batch removes it from now on, unless it commits it.
            tmp.renamed = true;
            batch.lock().push(Pending {
                tmp: tmp.path.clone(),
                path: path.clone(),
            });
            return Ok(Delivered { path });
        }
        fs::rename(&tmp.path, &path).or_code_with(Code::TempFail, what)?;
        tmp.renamed = true;
        group_sync_dir(&dir).or_code_with(Code::TempFail, || format!("fsync {}", dir.display()))?;
        Ok(Delivered { path })
    }
}

/// A group commit of many deliveries in one process (mfetch's batches): each message is
/// written into `tmp/` and its fsync started at once on a pool of threads, so the syncs run
/// while the caller reads the next messages (and in parallel, so the file system's journal
/// takes them in few commits); [`Batch::commit`] waits for them, renames each file into
/// place and syncs each directory once. N messages cost one directory sync instead of N,
/// their file syncs overlap the network, and none is visible in `new/` before its data is
/// on disk.
///
/// A tag set with [`Batch::tag`] goes into the next files' names (`…P<pid>F<tag>.host`), so
/// a caller that recorded its intent can find, after a crash, which messages made it
/// ([`tagged`]). Dropped uncommitted, the batch removes its files from `tmp/`.
#[derive(Debug, Default)]
pub struct Batch {
    pending: Mutex<Vec<Pending>>,
    tag: Mutex<Option<String>>,
    syncer: Mutex<Option<Syncer>>,
}

/// The threads that fsync a batch's files as they are written.
#[derive(Debug)]
struct Syncer {
    jobs: std::sync::mpsc::Sender<File>,
    done: std::sync::mpsc::Receiver<io::Result<()>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    sent: usize,
}

/// How many files of a batch are synced at once.
const SYNC_THREADS: usize = 8;

impl Syncer {
    fn start() -> io::Result<Syncer> {
        let (jobs, queue) = std::sync::mpsc::channel::<File>();
        let (report, done) = std::sync::mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut workers = Vec::new();
        for _ in 0..SYNC_THREADS {
            let (queue, report) = (queue.clone(), report.clone());
            workers.push(
                std::thread::Builder::new()
                    .name("fsync".into())
                    .spawn(move || {
                        loop {
                            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            let Ok(file) = next else { return };
                            if report.send(file.sync_all()).is_err() {
                                return;
                            }
                        }
                    })?,
            );
        }
        Ok(Syncer {
            jobs,
            done,
            workers,
            sent: 0,
        })
    }

    /// Wait for every sync started; the first failure.
    fn finish(self) -> io::Result<()> {
        let Syncer {
            jobs,
            done,
            workers,
            sent,
        } = self;
        drop(jobs);
        let mut result = Ok(());
        for _ in 0..sent {
            match done.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = result.and(Err(e)),
                Err(_) => result = result.and(Err(io::Error::other("fsync thread died"))),
            }
        }
        for w in workers {
            let _ = w.join();
        }
        result
    }
}

#[derive(Debug)]
struct Pending {
    tmp: PathBuf,
    path: PathBuf,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// The tag the next deliveries carry in their names (lowercase hex digits only: the
    /// name part after it starts with `V`, which ends it for [`tagged`]).
    pub fn tag(&self, tag: Option<&str>) {
        let tag = tag.filter(|t| !t.is_empty() && t.bytes().all(is_tag_byte));
        *self.tag.lock().unwrap_or_else(|p| p.into_inner()) = tag.map(str::to_string);
    }

    fn current_tag(&self) -> Option<String> {
        self.tag.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Start syncing `file` on the pool (started with the first file).
    fn start_sync(&self, file: &File) -> io::Result<()> {
        let mut syncer = self.syncer.lock().unwrap_or_else(|p| p.into_inner());
        if syncer.is_none() {
            *syncer = Some(Syncer::start()?);
        }
        if let Some(s) = syncer.as_mut() {
            s.jobs
                .send(file.try_clone()?)
                .map_err(|_| io::Error::other("fsync threads gone"))?;
            s.sent += 1;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many deliveries wait for the commit.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sync every file, rename each into place, sync each directory once; only then is the
    /// batch delivered. On failure nothing is claimed: files not yet renamed are removed,
    /// those renamed stay (a re-run finds them by their tag).
    pub fn commit(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.lock());
        if pending.is_empty() {
            return Ok(());
        }
        let fail = |p: &Pending, e: io::Error| {
            Error::io(Code::TempFail, format!("deliver {}", p.path.display()), e)
        };
        // The syncs started as the files were written: wait for them all.
        let syncer = self.syncer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let synced = match syncer {
            Some(s) => s.finish(),
            None => Ok(()),
        };
        let synced = synced.map_err(|e| match pending.first() {
            Some(p) => fail(p, e),
            None => Error::io(Code::TempFail, "fsync", e),
        });
        let mut result = synced;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for p in &pending {
            if result.is_ok() {
                match fs::rename(&p.tmp, &p.path) {
                    Ok(()) => {
                        if let Some(d) = p.path.parent()
                            && !dirs.iter().any(|x| x == d)
                        {
                            dirs.push(d.to_path_buf());
                        }
                        continue;
                    }
                    Err(e) => result = Err(fail(p, e)),
                }
            }
            let _ = fs::remove_file(&p.tmp);
        }
        for d in &dirs {
            let r =
                group_sync_dir(d).or_code_with(Code::TempFail, || format!("fsync {}", d.display()));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for p in self.lock().iter() {
            let _ = fs::remove_file(&p.tmp);
        }
    }
}

fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The tags (see [`Batch::tag`]) of the messages in `new/` and `cur/` of `root` and of its
/// Maildir++ folders: what a crashed batch delivered.
pub fn tagged(root: &Path) -> io::Result<std::collections::HashSet<String>> {
    let mut found = std::collections::HashSet::new();
    let mut dirs = vec![root.to_path_buf()];
    for e in fs::read_dir(root)? {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') && e.path().join("cur").is_dir() {
            dirs.push(e.path());
        }
    }
    for d in dirs {
        for sub in ["new", "cur"] {
            let Ok(entries) = fs::read_dir(d.join(sub)) else {
                continue;
            };
            for e in entries {
                let name = e?.file_name();
                let name = name.to_string_lossy();
                let unique = name.split('.').nth(1).unwrap_or("");
                if let Some(i) = unique.rfind('F')
                    && unique[..i].contains('P')
                {
                    let tag: String = unique[i + 1..]
                        .bytes()
                        .take_while(|&b| is_tag_byte(b))
                        .map(char::from)
                        .collect();
                    found.insert(tag);
                }
            }
        }
    }
    Ok(found)
}

/// One message of a Maildir as a reader found it ([`Maildir::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Where the file is now.
    pub path: PathBuf,
    /// The stable unique part of its name: everything before the `:2,` info (maildir(5)),
    /// which flags and the move from `new/` to `cur/` never change.
    pub unique: String,
    /// True while it is in `new/` (delivered, never seen by a reader).
    pub new: bool,
}

impl Maildir {
    /// The messages in `new/` and `cur/` now, in name order (the delivery time leads the
    /// name, so oldest first). A reader's snapshot: mail delivered later is not in it. Files
    /// whose name starts with a dot (maildir(5): not messages) and what is not a regular
    /// file are left out.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for (sub, new) in [("cur", false), ("new", true)] {
            let dir = self.root.join(sub);
            let what = || format!("read {}", dir.display());
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(Code::TempFail, what(), e)),
            };
            for entry in entries {
                let entry = entry.or_code_with(Code::TempFail, what)?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let unique = name.split_once(':').map_or(name, |(u, _)| u).to_string();
                out.push(Listed {
                    path: entry.path(),
                    unique,
                    new,
                });
            }
        }
        out.sort_by(|a, b| a.unique.cmp(&b.unique));
        Ok(out)
    }

    /// Mark a message seen: one in `new/` moves to `cur/` with the `S` flag (maildir(5): a
    /// reader moves what it has shown), one in `cur/` gains `S` among its flags. Returns
    /// where it is now. Only a flag: the directories are not synced for it.
    pub fn mark_seen(&self, msg: &Listed) -> io::Result<PathBuf> {
        let name = msg
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other("file name not UTF-8"))?;
        let flags = match name.split_once(":2,") {
            Some((_, f)) if f.contains('S') => return Ok(msg.path.clone()),
            Some((_, f)) => f,
            None => "",
        };
        let to = self.root.join("cur").join(format!(
            "{}:2,{}",
            msg.unique,
            normalize_flags(&format!("{flags}S"))
        ));
        fs::rename(&msg.path, &to)?;
        Ok(to)
    }

    /// Remove messages (a POP3 session's deletions at QUIT), then fsync `new/` and `cur/`
    /// so the removal survives a crash before the client is told it happened. A file gone
    /// already is not an error (someone else removed it). The first other failure is
    /// returned after trying every file.
    pub fn remove(&self, paths: &[PathBuf]) -> Result<()> {
        let mut first = None;
        for p in paths {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first.get_or_insert_with(|| {
                        Error::io(Code::TempFail, format!("remove {}", p.display()), e)
                    });
                }
            }
        }
        for sub in ["new", "cur"] {
            let dir = self.root.join(sub);
            if let Err(e) = sync_dir(&dir) {
                first.get_or_insert_with(|| {
                    Error::io(Code::TempFail, format!("fsync {}", dir.display()), e)
                });
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Take the reader's lock on this Maildir (flock(2) on its directory), or `None` when
    /// another reader holds it: RFC 1939 §8's exclusive access to a maildrop. Deliveries
    /// take no lock (Maildir needs none) and go on meanwhile. The lock ends with the file.
    pub fn lock_reader(&self) -> io::Result<Option<File>> {
        let dir = File::open(&self.root)?;
        match dir.try_lock() {
            Ok(()) => Ok(Some(dir)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// A writer that counts what the bytes through it come to with CRLF line ends: each LF not
/// after a CR counts one more, and a last line without its line end counts the CRLF (or LF,
/// after a CR) a reader in CRLF adds, as maccess's RETR sends it (`pop3::server`).
struct CrlfSize<W> {
    inner: W,
    len: u64,
    bare_lfs: u64,
    last: Option<u8>,
}

impl<W: Write> CrlfSize<W> {
    fn new(inner: W) -> CrlfSize<W> {
        CrlfSize {
            inner,
            len: 0,
            bare_lfs: 0,
            last: None,
        }
    }

    /// The size with CRLF line ends of everything written.
    fn size(&self) -> u64 {
        let end = match self.last {
            None | Some(b'\n') => 0,
            Some(b'\r') => 1,
            Some(_) => 2,
        };
        self.len + self.bare_lfs + end
    }
}

impl<W: Write> Write for CrlfSize<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = &buf[..n];
        let mut prev = self.last;
        for i in memchr::memchr_iter(b'\n', done) {
            let before = if i == 0 { prev } else { Some(done[i - 1]) };
            if before != Some(b'\r') {
                self.bare_lfs += 1;
            }
        }
        if let Some(&b) = done.last() {
            prev = Some(b);
        }
        self.last = prev;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A message being written in `tmp/`; removed on drop unless it was renamed into place.
struct Tmp {
    file: File,
    path: PathBuf,
    /// The name's unique part: time, delivery counter and pid.
    unique: String,
    renamed: bool,
}

impl Tmp {
    /// A new file in `tmp`, created exclusively (O_EXCL) with mode 0600: a name that is
    /// taken (a clock set back, a pid reused) just means the next counter value.
    /// With a `tag` (letters and digits), the unique part ends in `F` and the tag, so the
    /// file is found again by it ([`Batch`]).
    fn create_tagged(tmp: &Path, tag: Option<&str>) -> io::Result<Tmp> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        loop {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(io::Error::other)?;
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let unique = format!(
                "{}.#{n:x}M{}P{}{}",
                t.as_secs(),
                t.subsec_nanos(),
                std::process::id(),
                tag.map(|t| format!("F{t}")).unwrap_or_default()
            );
            let path = tmp.join(format!("{unique}.{}", *HOSTNAME));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
            {
                Ok(file) => {
                    let tmp = Tmp {
                        file,
                        path,
                        unique,
                        renamed: false,
                    };
                    // The umask may have taken the owner's bits too; never more than 0600.
                    tmp.file
                        .set_permissions(Permissions::from_mode(FILE_MODE))?;
                    return Ok(tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// This host's name as it goes into Maildir file names (letters, digits, `-` and `.` only,
/// so never the `/` or `:` that maildir(5) says to escape).
static HOSTNAME: LazyLock<String> = LazyLock::new(crate::message::stamp::hostname);

/// Maildir flags in the order the spec wants them (ASCII order), each once.
pub fn normalize_flags(flags: &str) -> String {
    let mut f: Vec<char> = flags.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    f.sort_unstable();
    f.dedup();
    f.into_iter().collect()
}

/// Check a Maildir++ folder name: no path separators, no `..`, no leading or trailing dot,
/// no empty hierarchy level, no control characters.
pub fn check_folder_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(
            Code::Usage,
            format!("folder {name:?}"),
            why.to_string(),
        ))
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("contains a control character");
    }
    if name.split('.').any(str::is_empty) {
        return bad("empty level (leading, trailing or double dot)");
    }
    Ok(())
}

/// Create `root/{tmp,new,cur}` as needed, fsyncing each directory that gained an entry.
fn create_tree(root: &Path) -> Result<()> {
    if root.join("tmp").is_dir() && root.join("new").is_dir() && root.join("cur").is_dir() {
        return Ok(());
    }
    let what = || format!("create maildir {}", root.display());
    create_dir(root).or_code_with(Code::TempFail, what)?;
    for sub in ["tmp", "new", "cur"] {
        create_dir(&root.join(sub)).or_code_with(Code::TempFail, what)?;
    }
    sync_dir(root).or_code_with(Code::TempFail, what)?;
    Ok(())
}

/// mkdir -p with mode 0700, fsyncing the parent of every directory it makes.
fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    if !make_private_dir(dir)? {
        return Ok(());
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Create the one directory `dir` with mode 0700 whatever the umask (which may have taken
/// the owner's own bits too); false when it already was a directory, whose mode is then
/// left as its owner chose. The caller fsyncs the parent.
pub fn make_private_dir(dir: &Path) -> io::Result<bool> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Open `path` with `opts`, first creating it with mode 0600 whatever the umask when it is
/// missing (the marker and lock files beside the mail); an existing file keeps its mode.
pub fn open_private(opts: &OpenOptions, path: &Path) -> io::Result<File> {
    loop {
        match opts.clone().create_new(true).mode(FILE_MODE).open(path) {
            Ok(f) => {
                f.set_permissions(Permissions::from_mode(FILE_MODE))?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match opts.open(path) {
            // Removed since: create it after all.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            r => return r,
        }
    }
}

/// fsync a directory, making the entries created or renamed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Group commit of a directory fsync: threads (mreceive's sessions) that renamed into the same
/// directory at about the same time share one fsync. Each caller's rename happened before it
/// called; it returns once an fsync *started after its call* has completed, so its entry is
/// durable. While one fsync runs, later callers queue; the next fsync covers all of them, so
/// N concurrent deliveries into one Maildir cost about two directory fsyncs, not N. A lone
/// caller (mdeliver) does exactly one fsync, as before.
fn group_sync_dir(dir: &Path) -> io::Result<()> {
    let group = {
        let mut groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
        // One entry per directory synced, and an MX without --users has as many users as
        // clients make up: entries nobody is using (only the map holds them) are dropped
        // once there are many, so memory stays bounded in a server that runs for months.
        if groups.len() >= MAX_IDLE_GROUPS && !groups.contains_key(dir) {
            groups.retain(|_, g| Arc::strong_count(g) > 1);
        }
        Arc::clone(groups.entry(dir.to_path_buf()).or_default())
    };
    let mut st = group.state.lock().unwrap_or_else(|p| p.into_inner());
    st.requested += 1;
    let mine = st.requested;
    loop {
        if st.synced >= mine {
            return match &st.failed {
                Some((upto, kind, why)) if *upto >= mine && st.synced == *upto => {
                    Err(io::Error::new(*kind, why.clone()))
                }
                _ => Ok(()),
            };
        }
        if st.syncing {
            st = group.done.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        // Lead a round for everyone who asked so far.
        st.syncing = true;
        let upto = st.requested;
        drop(st);
        let r = sync_dir(dir);
        st = group.state.lock().unwrap_or_else(|p| p.into_inner());
        st.syncing = false;
        st.synced = upto;
        st.failed = r.err().map(|e| (upto, e.kind(), e.to_string()));
        group.done.notify_all();
    }
}

#[derive(Default)]
struct SyncGroup {
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Calls so far (each one's number is its ticket).
    requested: u64,
    /// Every ticket up to this one is covered by a completed fsync.
    synced: u64,
    /// An fsync is running.
    syncing: bool,
    /// The last round failed: its last ticket, and the error.
    failed: Option<(u64, io::ErrorKind, String)>,
}

/// How many directories' sync state is kept before idle ones are dropped.
const MAX_IDLE_GROUPS: usize = 1024;

static GROUPS: LazyLock<Mutex<HashMap<PathBuf, Arc<SyncGroup>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_shows_nothing_before_its_commit_and_its_tags_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(&dir.path().join("Maildir")).unwrap();
        let count = |sub: &str| fs::read_dir(md.path().join(sub)).unwrap().count();
        let b = Batch::new();
        b.tag(Some("0123456789abcdef"));
        let d = md
            .deliver_in("", Some(&b), |w| w.write_all(b"one\n"))
            .unwrap();
        b.tag(Some("NOT-HEX"));
        md.deliver_in("", Some(&b), |w| w.write_all(b"two\n"))
            .unwrap();
        assert_eq!((count("new"), count("tmp"), b.len()), (0, 2, 2));
        b.commit().unwrap();
        assert_eq!((count("new"), count("tmp")), (2, 0));
        assert_eq!(fs::read(&d.path).unwrap(), b"one\n");
        let tags = tagged(md.path()).unwrap();
        assert!(tags.contains("0123456789abcdef"), "{tags:?}");
        assert_eq!(tags.len(), 1, "an untagged name gave a tag: {tags:?}");
        // Dropped uncommitted: nothing visible, nothing left in tmp/.
        let b = Batch::new();
        md.deliver_in("", Some(&b), |w| w.write_all(b"three\n"))
            .unwrap();
        drop(b);
        assert_eq!((count("new"), count("tmp")), (2, 0));
    }

    #[test]
    fn folder_names_are_checked() {
        for bad in [
            "", "../x", "a/b", ".hidden", "a..b", "a.", "x\ny", "..", ".",
        ] {
            assert!(check_folder_name(bad).is_err(), "{bad:?} passed");
        }
        for good in ["Lists", "Lists.rust", "Spam", "ünï"] {
            assert!(check_folder_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn delivers_into_new_and_cur_with_flags() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(&dir.path().join("Maildir")).unwrap();
        let d = md
            .deliver("", |w| w.write_all(b"Subject: x\n\nhi\n"))
            .unwrap();
        assert!(d.path.starts_with(dir.path().join("Maildir/new")));
        assert_eq!(fs::read(&d.path).unwrap(), b"Subject: x\n\nhi\n");
        let d = md.deliver("SF", |w| w.write_all(b"x")).unwrap();
        assert!(d.path.to_str().unwrap().ends_with(":2,FS"));
        assert!(d.path.exists());
        let f = md.folder("Lists.rust").unwrap();
        assert!(
            dir.path()
                .join("Maildir/.Lists.rust/maildirfolder")
                .exists()
        );
        f.deliver("", |w| w.write_all(b"y")).unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("Maildir/.Lists.rust/new"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn open_in_existing_creates_the_maildir_but_no_missing_parent() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("typo/deep/Maildir");
        let e = Maildir::open_in_existing(&deep).unwrap_err();
        assert_eq!(e.code(), Code::CantCreat);
        assert!(
            e.why()
                .contains(&format!("{}", dir.path().join("typo/deep").display())),
            "{e}"
        );
        assert!(!dir.path().join("typo").exists());
        let md = dir.path().join("Maildir");
        Maildir::open_in_existing(&md).unwrap();
        for sub in ["tmp", "new", "cur"] {
            assert!(md.join(sub).is_dir());
        }
    }

    #[test]
    fn concurrent_deliveries_share_directory_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("M");
        Maildir::open(&root).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let root = &root;
                s.spawn(move || {
                    let md = Maildir::open(root).unwrap();
                    for i in 0..20 {
                        md.deliver("", |w| write!(w, "{t} {i}")).unwrap();
                    }
                });
            }
        });
        assert_eq!(fs::read_dir(root.join("new")).unwrap().count(), 160);
        // A directory that cannot be opened fails every caller of its round.
        assert!(group_sync_dir(&dir.path().join("missing")).is_err());
        assert!(group_sync_dir(&root).is_ok());
    }

    #[test]
    fn sync_state_of_many_directories_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 * MAX_IDLE_GROUPS {
            let d = dir.path().join(i.to_string());
            fs::create_dir(&d).unwrap();
            group_sync_dir(&d).unwrap();
        }
        let n = GROUPS.lock().unwrap_or_else(|p| p.into_inner()).len();
        // Other tests sync in parallel; a few of theirs may be in use at the moment.
        assert!(n <= MAX_IDLE_GROUPS + 16, "{n} entries");
    }

    #[test]
    fn a_reader_lists_marks_seen_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        let a = md.deliver("", |w| w.write_all(b"a")).unwrap();
        let b = md.deliver("F", |w| w.write_all(b"b")).unwrap();
        fs::write(dir.path().join("new/.hidden"), b"x").unwrap();
        let list = md.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].path.clone(), list[0].new), (a.path.clone(), true));
        assert_eq!((list[1].path.clone(), list[1].new), (b.path.clone(), false));
        assert!(!list[1].unique.contains(':'));
        // Seen: new/ to cur/ with S; cur/ gains S beside F; the unique part stays.
        let a2 = md.mark_seen(&list[0]).unwrap();
        assert!(a2.starts_with(dir.path().join("cur")) && a2.to_str().unwrap().ends_with(":2,S"));
        let b2 = md.mark_seen(&list[1]).unwrap();
        assert!(b2.to_str().unwrap().ends_with(":2,FS"));
        let again = md.list().unwrap();
        assert_eq!(
            again.iter().map(|l| &l.unique).collect::<Vec<_>>(),
            list.iter().map(|l| &l.unique).collect::<Vec<_>>()
        );
        // One reader at a time; the lock ends with its file.
        let lock = md.lock_reader().unwrap().unwrap();
        assert!(md.lock_reader().unwrap().is_none());
        drop(lock);
        assert!(md.lock_reader().unwrap().is_some());
        md.remove(&[a2, b2.clone(), b2]).unwrap();
        assert!(md.list().unwrap().is_empty());
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        let e = md
            .deliver("", |w| {
                w.write_all(b"partial")?;
                Err(io::Error::other("boom"))
            })
            .unwrap_err();
        assert_eq!(e.code(), Code::TempFail);
        for sub in ["tmp", "new", "cur"] {
            assert_eq!(fs::read_dir(dir.path().join(sub)).unwrap().count(), 0);
        }
    }
}
