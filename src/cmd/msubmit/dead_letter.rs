//! msubmit's last resort: a message it could neither send nor queue is appended to
//! `~/dead.letter`, as sendmail and mailx do, so that no failure loses it.
//!
//! Why: once msubmit has read its input, the caller has often let go of the message. A
//! pipeline (`mcompose --edit | msubmit -t`, whose draft is gone once mcompose's output was
//! written), cron, a script: each gets only the exit status. The exit status stays the
//! failure's; the diagnostic names where the message went.
//!
//! The file is an mbox (`From ` line, mboxrd quoting: a `>` before every line that starts with
//! `>*From `, so the quoting can be undone exactly), created 0600, locked, fsynced (and its
//! directory too when we created it); a failed append is cut off again, so the file never
//! ends in half a message. What is saved is the input as given (Bcc included, so that
//! `msubmit -t` can send it again), without a leading mbox `From ` line of its own.

use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait for another process's lock on the file before giving up (75).
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Save `message` after `failure`: the failure with where the message now is, or, when it
/// cannot be saved either, a temporary failure (75) saying so; the caller must then keep it.
/// An empty message (nothing was read) is not saved.
pub fn keep(failure: Error, message: &mut Buffer, sender: &str) -> Error {
    if message.is_empty() {
        return failure;
    }
    match save(message, &from_line_sender(sender)) {
        Ok(path) => {
            let saved = format!("message saved in {}", path.display());
            let why = match failure.why() {
                "" => saved,
                why => format!("{why} ({saved})"),
            };
            Error::new(failure.code(), failure.what().to_string(), why)
        }
        Err(e) => {
            crate::run::warn(&failure);
            Error::new(
                Code::TempFail,
                e.what().to_string(),
                format!("{} (the message is neither sent nor saved)", e.why()),
            )
        }
    }
}

/// `~/dead.letter`: $HOME, else the home directory of the password database.
fn path() -> Option<PathBuf> {
    let home = crate::config::home().or_else(|| {
        // SAFETY: getpwuid returns a pointer into static storage or NULL; we copy at once,
        // and msubmit has no other thread that could call it meanwhile.
        unsafe {
            let pw = libc::getpwuid(libc::getuid());
            if pw.is_null() || (*pw).pw_dir.is_null() {
                return None;
            }
            let dir = std::ffi::CStr::from_ptr((*pw).pw_dir).to_bytes();
            let dir = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(dir);
            Some(PathBuf::from(dir)).filter(|d| !d.as_os_str().is_empty())
        }
    })?;
    Some(home.join("dead.letter"))
}

/// The sender word of the `From ` line: one word of printable ASCII, or MAILER-DAEMON (the
/// null sender, or nothing usable), as mail systems write it.
fn from_line_sender(sender: &str) -> String {
    let s = sender.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    let s = s.strip_suffix('>').unwrap_or(s);
    match !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
        true => s.to_string(),
        false => "MAILER-DAEMON".to_string(),
    }
}

/// Append the message to `~/dead.letter`; returns the path.
fn save(message: &mut Buffer, sender: &str) -> Result<PathBuf> {
    let path = path().ok_or_else(|| {
        Error::new(
            Code::TempFail,
            "dead.letter",
            "no home directory (set HOME)",
        )
    })?;
    append(&path, message, sender)?;
    Ok(path)
}

fn append(path: &Path, message: &mut Buffer, sender: &str) -> Result<()> {
    let what = || format!("save message to {}", path.display());
    let fail = |e: io::Error| Error::io(Code::TempFail, what(), e);
    let (file, created) = open(path).map_err(fail)?;
    lock(&file).map_err(fail)?;
    let start = file.metadata().map_err(fail)?.len();
    let written = write(&file, start, message, sender).and_then(|()| file.sync_all());
    if let Err(e) = written {
        // Take back what was appended: a half message would swallow the next one.
        let _ = file.set_len(start);
        let _ = file.sync_all();
        return Err(fail(e));
    }
    if created && let Some(dir) = path.parent() {
        // The new file's name must be on disk too.
        File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
    }
    Ok(())
}

/// Open for appending, created 0600 when missing; never through a symbolic link, and only a
/// regular file (a FIFO or device there is not where mail goes). Also says whether it was
/// created.
fn open(path: &Path) -> io::Result<(File, bool)> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // Read too: the end of the file says whether an empty line must come first.
    let new = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(flags)
        .open(path);
    let (file, created) = match new {
        Ok(f) => (f, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .custom_flags(flags)
                .open(path)?;
            (f, false)
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, created))
}

/// Take the exclusive lock (flock), waiting up to [`LOCK_WAIT`] for another writer.
fn lock(file: &File) -> io::Result<()> {
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::other("locked by another process"));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Write one mbox entry at the end of `file` (which is `start` bytes long).
fn write(file: &File, start: u64, message: &mut Buffer, sender: &str) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    // mbox: an empty line before each `From ` line; the previous writer may have left none.
    let mut tail = [0u8; 2];
    let have = start.min(2) as usize;
    file.read_exact_at(&mut tail[..have], start - have as u64)?;
    out.write_all(match &tail[..have] {
        [] | [b'\n'] | [b'\n', b'\n'] => b"",
        [.., b'\n'] => b"\n",
        _ => b"\n\n",
    })?;
    let date = chrono::Local::now().format("%a %b %e %H:%M:%S %Y");
    writeln!(out, "From {sender} {date}")?;
    let head = message.head();
    // A leading mbox `From ` line of the input is an envelope line, not part of it.
    let skip = match head.starts_with(b"From ") {
        true => memchr::memchr(b'\n', head).map_or(head.len(), |i| i + 1),
        false => 0,
    };
    let mut r = message.reader()?;
    io::copy(&mut (&mut r).take(skip as u64), &mut io::sink())?;
    let mut quoted = Quoter::new(&mut out);
    io::copy(&mut r, &mut quoted)?;
    quoted.finish()?;
    out.flush()
}

const FROM: &[u8] = b"From ";

/// mboxrd quoting as the message streams through: a `>` before every line that matches
/// `>*From `. Memory stays flat whatever the lines (the `>`s are counted, not held).
struct Quoter<W: Write> {
    inner: W,
    /// At a line start: the `>`s seen and how much of "From " followed; `None` past it.
    start: Option<(u64, usize)>,
}

impl<W: Write> Quoter<W> {
    fn new(inner: W) -> Quoter<W> {
        Quoter {
            inner,
            start: Some((0, 0)),
        }
    }

    /// Write the held line start: `gts` times `>`, then `from` bytes of "From ".
    fn held(&mut self, gts: u64, from: usize) -> io::Result<()> {
        let mut gts = gts;
        while gts > 0 {
            let n = gts.min(64);
            self.inner.write_all(&[b'>'; 64][..n as usize])?;
            gts -= n;
        }
        self.inner.write_all(&FROM[..from])
    }

    /// End the entry: the last line gets its line end, then the empty line that ends an
    /// mbox entry.
    fn finish(mut self) -> io::Result<()> {
        match self.start {
            Some((0, 0)) => {}
            Some((gts, from)) => {
                self.held(gts, from)?;
                self.inner.write_all(b"\n")?;
            }
            None => self.inner.write_all(b"\n")?,
        }
        self.inner.write_all(b"\n")
    }
}

impl<W: Write> Write for Quoter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(&b) = rest.first() {
            match self.start {
                None => {
                    let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                    self.inner.write_all(&rest[..end])?;
                    if rest[end - 1] == b'\n' {
                        self.start = Some((0, 0));
                    }
                    rest = &rest[end..];
                }
                Some((gts, 0)) if b == b'>' => {
                    self.start = Some((gts + 1, 0));
                    rest = &rest[1..];
                }
                Some((gts, from)) if b == FROM[from] => {
                    self.start = match from + 1 == FROM.len() {
                        true => {
                            self.held(gts + 1, FROM.len())?;
                            None
                        }
                        false => Some((gts, from + 1)),
                    };
                    rest = &rest[1..];
                }
                Some((gts, from)) => {
                    // Not a From line: what was held is ordinary text; this byte goes on
                    // as in any line (a line end starts the next).
                    self.held(gts, from)?;
                    self.start = None;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut q = Quoter::new(&mut out);
        q.write_all(input).unwrap();
        q.finish().unwrap();
        // Byte by byte gives the same: held line starts survive any read boundary.
        let mut one = Vec::new();
        let mut q = Quoter::new(&mut one);
        for b in input {
            q.write_all(std::slice::from_ref(b)).unwrap();
        }
        q.finish().unwrap();
        assert_eq!(one, out);
        out
    }

    #[test]
    fn quotes_from_lines_mboxrd_style_and_ends_with_an_empty_line() {
        assert_eq!(
            quote(b"From me\nFrom\n>From x\n>>From y\n> From z\n From\nxFrom \n"),
            b">From me\nFrom\n>>From x\n>>>From y\n> From z\n From\nxFrom \n\n"
        );
        assert_eq!(quote(b"a\r\nFrom b\r\n"), b"a\r\n>From b\r\n\n");
        assert_eq!(quote(b"no line end"), b"no line end\n\n");
        assert_eq!(quote(b"a\n>>Fro"), b"a\n>>Fro\n\n");
        assert_eq!(quote(b"a\nFrom "), b"a\n>From \n\n");
        assert_eq!(quote(b""), b"\n");
        assert_eq!(quote(b"\n\nFrom\n"), b"\n\nFrom\n\n");
    }

    #[test]
    fn the_from_line_sender_is_one_word() {
        assert_eq!(from_line_sender("a@b.test"), "a@b.test");
        assert_eq!(from_line_sender("<a@b.test>"), "a@b.test");
        assert_eq!(from_line_sender("<>"), "MAILER-DAEMON");
        assert_eq!(from_line_sender("a b@c"), "MAILER-DAEMON");
        assert_eq!(from_line_sender("a@b\nFrom: x"), "MAILER-DAEMON");
        assert_eq!(from_line_sender(""), "MAILER-DAEMON");
    }

    #[test]
    fn appends_entries_and_quotes_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.letter");
        // A previous entry left without its empty line gets one.
        std::fs::write(
            &path,
            "From x Thu Jan  1 00:00:00 2026\nSubject: old\n\nold",
        )
        .unwrap();
        let mut spool = Buffer::new();
        spool
            .write_all(b"From envelope line\nSubject: s\n\nFrom here\nbody")
            .unwrap();
        append(&path, &mut spool, "me@a.test").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let (old, new) = text.split_once("old\n\nFrom me@a.test ").unwrap();
        assert!(old.ends_with("Subject: old\n\n"), "{text:?}");
        let (date, entry) = new.split_once('\n').unwrap();
        assert!(date.ends_with(&chrono::Local::now().format("%Y").to_string()));
        assert_eq!(entry, "Subject: s\n\n>From here\nbody\n\n");
    }

    #[test]
    fn a_new_file_is_private_and_a_symlink_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.letter");
        let mut spool = Buffer::new();
        spool.write_all(b"Subject: s\n\nb\n").unwrap();
        append(&path, &mut spool, "me@a.test").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = append(&link, &mut spool, "me@a.test").unwrap_err();
        assert_eq!(e.code(), Code::TempFail);
        assert!(e.to_string().contains("save message to"), "{e}");
    }
}
