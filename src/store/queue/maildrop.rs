//! The maildrop: how a user's mail reaches the system queue without the queue, or anyone's
//! mail in it, being readable or writable by users (Postfix's postdrop model).
//!
//! The system queue belongs to the mail service user, mode 0700. Beside it, `maildrop/` is
//! owned by the service user, its group the drop group (`mailpipe-drop`), mode 1730: the
//! group may create files there but not list or read the directory, and the sticky bit lets
//! nobody but a file's owner (and the directory's) remove a file. `mdrop`, setgid to the
//! drop group, is the only way in: [`drop_file`] writes one file whose owner the kernel
//! records as the calling user, mode 0600 while it is written and 0640 (the group may read:
//! the service user is a member) once it is complete and fsynced; the mode is the
//! "complete" mark, as Postfix's is the execute bit. The service's queue run calls
//! [`pickup`]: each complete file is read as untrusted input, checked strictly, given a
//! `Received:` header naming the user the kernel recorded (and an `X-Authentication-Warning:`
//! when the sender is not that user's own address), stored durably in the queue, and only
//! then removed. A file that fails a check is moved aside into the queue's `corrupt/`,
//! with a log line, never sent.
//!
//! What mdrop does not do, on purpose: read a configuration, follow a symlink, trust an
//! environment variable, write anything but one new file (O_EXCL) in a directory that has
//! exactly the drop directory's owner, group and mode, or write more than [`MAX_DROP`].
//! It cannot fsync the directory (it may not open it for reading): the fsync of the new
//! file commits its directory entry on journaling filesystems (ext4, xfs), as Postfix's
//! postdrop relies on too.

use super::format::Queued;
use super::{Queue, Route};
use crate::exit::{Code, Context, Error, Result};
use crate::message::stamp;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The system maildrop, mdrop's default.
pub const SYSTEM_MAILDROP: &str = "/var/spool/mailpipe/maildrop";

/// The largest drop file mdrop writes and pickup reads (head and message): 64 MiB.
pub const MAX_DROP: u64 = 64 << 20;

/// The drop directory's mode: sticky, the owner everything, the group write and search.
pub const DIR_MODE: u32 = 0o1730;

/// A drop file's mode once complete; while written it is 0600.
const DONE_MODE: u32 = 0o640;

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::new(Code::Usage, p.display().to_string(), "contains a NUL"))
}

/// mdrop's side: check that `dir` is a drop directory for our effective group, read a
/// queue entry's head and message from `input` (route mx only; at most [`MAX_DROP`]),
/// and write it as one new file there. Returns the file's name.
pub fn drop_file(dir: &Path, input: &mut dyn Read) -> Result<String> {
    let what = || format!("maildrop {}", dir.display());
    let c = cstring(dir)?;
    // SAFETY: c is a valid NUL-terminated path; a negative result is an error.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(Error::io(
            Code::TempFail,
            what(),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: raw is a new descriptor nothing else owns.
    let dirfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let meta = File::from(dirfd.try_clone().or_code_with(Code::OsErr, what)?)
        .metadata()
        .or_code_with(Code::TempFail, what)?;
    // SAFETY: getegid and getuid have no preconditions and cannot fail.
    let (egid, uid) = unsafe { (libc::getegid(), libc::getuid()) };
    if !meta.is_dir() || meta.mode() & 0o7777 != DIR_MODE || meta.gid() != egid || meta.uid() == uid
    {
        return Err(Error::new(
            Code::Config,
            what(),
            "not a drop directory (mode 1730, the drop group, owned by the mail service)",
        ));
    }
    let mut input = BufReader::new(input.take(MAX_DROP + 1));
    let (queued, _) = Queued::read_from(&mut input, Path::new("<stdin>"))?;
    if queued.route != Route::Mx || queued.envelope.rcpts.is_empty() {
        return Err(Error::new(
            Code::DataErr,
            "input",
            "not a message for the mx route with recipients",
        ));
    }
    // Written again from what was read: only the keys this version knows reach the file.
    let head = queued.to_bytes()?;
    let (name, file) = create(&dirfd).or_code_with(Code::TempFail, what)?;
    let remove = || {
        let n = CString::new(name.as_str()).unwrap_or_default();
        // SAFETY: n is a valid NUL-terminated name under dirfd.
        unsafe { libc::unlinkat(dirfd.as_raw_fd(), n.as_ptr(), 0) };
    };
    let written = (|| -> Result<()> {
        let mut w = io::BufWriter::new(&file);
        w.write_all(&head).or_code_with(Code::TempFail, what)?;
        let n = io::copy(&mut input, &mut w).or_code_with(Code::TempFail, what)?;
        if head.len() as u64 + n > MAX_DROP {
            return Err(Error::new(
                Code::DataErr,
                "message",
                format!("larger than {} bytes", MAX_DROP),
            ));
        }
        w.flush().or_code_with(Code::TempFail, what)?;
        drop(w);
        file.sync_all().or_code_with(Code::TempFail, what)?;
        file.set_permissions(fs::Permissions::from_mode(DONE_MODE))
            .or_code_with(Code::TempFail, what)?;
        file.sync_all().or_code_with(Code::TempFail, what)
    })();
    if written.is_err() {
        remove();
    }
    written.map(|()| name)
}

/// A new file under `dirfd`, O_EXCL, mode 0600, never through a symlink.
fn create(dirfd: &OwnedFd) -> io::Result<(String, File)> {
    let mut random = [0u8; 6];
    for _ in 0..10 {
        stamp::fill_random(&mut random);
        let name = format!(
            "{}.{}.{}",
            super::now(),
            std::process::id(),
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let c = CString::new(name.as_str()).map_err(io::Error::other)?;
        // SAFETY: c is a valid NUL-terminated name; a negative result is an error.
        let raw = unsafe {
            libc::openat(
                dirfd.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if raw >= 0 {
            // SAFETY: raw is a new descriptor nothing else owns.
            return Ok((name, unsafe { File::from_raw_fd(raw) }));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    Err(io::Error::other("no unique name"))
}

/// What the pickup did with one drop file.
#[derive(Debug)]
pub enum Picked {
    /// Queued as this entry, from this user.
    Queued {
        /// The drop file's name.
        name: String,
        /// The queue entry's id.
        id: String,
        /// The user who dropped it (the file's owner).
        uid: u32,
    },
    /// Never completed and older than the limit (its writer died: mdrop killed mid-write, a
    /// full disk): removed, as Postfix's postsuper removes stale temporary files.
    Abandoned {
        /// The drop file's name.
        name: String,
        /// The user who began it (the file's owner).
        uid: u32,
        /// Seconds since it was last written.
        age: u64,
    },
    /// Refused: moved into `corrupt/` (or removed when that failed), with why.
    Rejected {
        /// The drop file's name.
        name: String,
        /// Why it was refused.
        why: String,
    },
}

/// The service's side: move every complete drop file of `dir` into `q`. `hostname` names
/// this host in the `Received:` header; `check` is the address syntax check (RFC 5321
/// §4.1.2, from the SMTP layer). Files still being written (not yet 0640) are left alone,
/// unless not written for `abandon_after`: then their writer is gone and they are removed
/// (no mail is lost: mdrop never said done for them).
pub fn pickup(
    q: &Queue,
    dir: &Path,
    hostname: &str,
    check: &dyn Fn(&str) -> std::result::Result<(), String>,
    abandon_after: std::time::Duration,
) -> Result<Vec<Picked>> {
    let what = || format!("maildrop {}", dir.display());
    let mut names: Vec<String> = fs::read_dir(dir)
        .or_code_with(Code::TempFail, what)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut done = Vec::new();
    let now = std::time::SystemTime::now();
    for name in names {
        let path = dir.join(&name);
        if let Ok(meta) = fs::symlink_metadata(&path)
            && meta.is_file()
            && meta.mode() & 0o7777 != DONE_MODE
        {
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if let Some(age) = age.filter(|a| *a > abandon_after) {
                // The drop directory is ours: its sticky bit lets its owner remove any file.
                if fs::remove_file(&path).is_ok() {
                    let (uid, age) = (meta.uid(), age.as_secs());
                    done.push(Picked::Abandoned { name, uid, age });
                }
            }
            continue;
        }
        match pick(q, &path, hostname, check) {
            Ok(Some((id, uid))) => {
                fs::remove_file(&path).or_code_with(Code::TempFail, || {
                    format!("remove {} (queued as {id})", path.display())
                })?;
                done.push(Picked::Queued { name, id, uid });
            }
            Ok(None) => {}
            Err(e) if e.code() == Code::DataErr => {
                let aside = q.dir().join("corrupt");
                let moved = super::make_private_dir(&aside)
                    .and_then(|_| fs::rename(&path, aside.join(&name)));
                let why = match moved {
                    Ok(()) => format!("{} (moved to {})", e.why(), aside.display()),
                    Err(_) => {
                        let _ = fs::remove_file(&path);
                        format!("{} (removed)", e.why())
                    }
                };
                done.push(Picked::Rejected { name, why });
            }
            Err(e) => return Err(e),
        }
    }
    if done.iter().any(|p| matches!(p, Picked::Queued { .. })) {
        super::sync_dir(dir).or_code_with(Code::TempFail, what)?;
    }
    Ok(done)
}

/// Queue one drop file; `None` when it is not complete yet. A `DataErr` rejects it.
fn pick(
    q: &Queue,
    path: &Path,
    hostname: &str,
    check: &dyn Fn(&str) -> std::result::Result<(), String>,
) -> Result<Option<(String, u32)>> {
    let bad = |why: String| Error::new(Code::DataErr, path.display().to_string(), why);
    let c = cstring(path)?;
    // SAFETY: c is a valid NUL-terminated path; a negative result is an error.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            // Still 0600: being written (or left by a writer that died; kept for the admin).
            Some(libc::EACCES) => Ok(None),
            Some(libc::ENOENT) => Ok(None),
            Some(libc::ELOOP) => Err(bad("a symbolic link".into())),
            _ => Err(Error::io(Code::TempFail, path.display().to_string(), e)),
        };
    }
    // SAFETY: raw is a new descriptor nothing else owns.
    let file = unsafe { File::from_raw_fd(raw) };
    let meta = file
        .metadata()
        .or_code_with(Code::TempFail, || path.display().to_string())?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(bad("not a plain file with one link".into()));
    }
    if meta.mode() & 0o7777 != DONE_MODE {
        // Readable to us but not marked complete (our own, or the owner's doing): wait.
        return Ok(None);
    }
    if meta.len() > MAX_DROP {
        return Err(bad(format!("larger than {MAX_DROP} bytes")));
    }
    let uid = meta.uid();
    let mut r = BufReader::new((&file).take(MAX_DROP));
    let (mut queued, head) = Queued::read_from(&mut r, path).map_err(|e| bad(e.why().into()))?;
    let env = &queued.envelope;
    if queued.route != Route::Mx || env.rcpts.is_empty() {
        return Err(bad("not for the mx route, or no recipients".into()));
    }
    for a in std::iter::once(&env.from)
        .filter(|f| !f.is_empty())
        .chain(env.rcpts.iter().map(|r| &r.addr))
    {
        check(a).map_err(|why| bad(format!("address {a:?}: {why}")))?;
    }
    let user = user_name(uid).unwrap_or_else(|| format!("uid{uid}"));
    let date = stamp::date_now();
    let mut trace = format!(
        "Received: by {hostname} (mailpipe mdrop, from userid {uid} ({user}));\n\t{date}\n"
    );
    // Postfix and sendmail let a user choose the sender and record who did: the warning
    // names the real user whenever the sender is not that user's own address.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let trusted = uid == 0 || uid == unsafe { libc::geteuid() };
    let own = format!("{user}@{hostname}");
    if !trusted && !env.from.eq_ignore_ascii_case(&own) {
        let from = if env.from.is_empty() { "<>" } else { &env.from };
        trace += &format!(
            "X-Authentication-Warning: {hostname}: {user} set sender to {from} using -f\n"
        );
    }
    queued.envelope.size = Some(meta.len() - head + trace.len() as u64);
    queued.queued = super::now();
    let id = q.store(&queued, |w| {
        w.write_all(trace.as_bytes())?;
        io::copy(&mut r, w).map(drop)
    })?;
    Ok(Some((id, uid)))
}

/// The login name of `uid`, from the password database.
fn user_name(uid: u32) -> Option<String> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut out = std::ptr::null_mut();
    // SAFETY: pw, buf and out are valid for the call; the result points into buf.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points to a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    name.to_str().ok().map(str::to_string)
}

/// The maildrop beside a queue directory: `QUEUE/../maildrop`.
pub fn beside(queue: &Path) -> Option<PathBuf> {
    queue.parent().map(|p| p.join("maildrop"))
}

/// mrelay's side for a user who cannot write the queue: run `mdrop` with the entry's head
/// and message on its standard input. Done once mdrop exits 0 (its file is durable).
pub fn hand_to(
    mdrop: &Path,
    dir: &Path,
    queued: &Queued,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let head = queued.to_bytes()?;
    let what = || format!("run {}", mdrop.display());
    let mut child = std::process::Command::new(mdrop)
        .arg("--maildrop")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .or_code_with(Code::TempFail, what)?;
    let fed = match child.stdin.take() {
        Some(mut stdin) => {
            let mut w = io::BufWriter::new(&mut stdin);
            w.write_all(&head)
                .and_then(|()| write(&mut w))
                .and_then(|()| w.flush())
        }
        None => Err(io::Error::other("no stdin")),
    };
    let status = child.wait().or_code_with(Code::TempFail, what)?;
    match (status.code(), fed) {
        (Some(0), Ok(())) => Ok(()),
        (Some(0), Err(e)) => Err(Error::io(Code::TempFail, what(), e)),
        // mdrop said why on standard error (inherited); a data error is the message's
        // fault, anything else may pass.
        (Some(65), _) => Err(Error::new(Code::DataErr, what(), "exit 65")),
        (Some(n), _) => Err(Error::new(Code::TempFail, what(), format!("exit {n}"))),
        (None, _) => Err(Error::new(Code::TempFail, what(), "killed by a signal")),
    }
}
