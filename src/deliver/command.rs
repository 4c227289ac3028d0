//! Delivery to a program: run a command (never through a shell) with the message on its
//! standard input, bounded in time, and read its exit status by the MDA contract that
//! Postfix's pipe(8), msmtpd and procmail share: 0 delivered, 75 (EX_TEMPFAIL) try again
//! later, anything else permanent; a command that cannot start or dies by a signal is our
//! problem, so temporary. Used by mreceive's delivery command, the rules' `pipe`, `filter`
//! (whose standard output, the new message, is read back: [`run_captured`]) and `forward`
//! (the sendmail command), and next mfetch's `--mda`.

use crate::exit::{Code, Context, Error, Result};
use crate::message::buffer::Buffer;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

/// Run a delivery command for one recipient: exit 0 delivered, 75 temporary, anything else
/// permanent; not starting or a signal is temporary. A failure says why: the exit status and
/// the last line the command wrote on stderr (`exited with status 75: mdeliver: …: disk
/// full`), which the command's stderr still gets whole.
pub fn deliver(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    limit: Duration,
    msg: &mut Buffer,
) -> Result<()> {
    let what = format!("deliver via {}", argv.first().map_or("", String::as_str));
    let (status, said) = run_fed_told(argv, vars, limit, |w| msg.copy_to(w))?;
    let said = said.map(|l| format!(": {l}")).unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(75), _) => Err(Error::new(
            Code::TempFail,
            what,
            format!("exited with status 75{said}"),
        )),
        (Some(c), _) => Err(Error::new(
            Code::Unavailable,
            what,
            format!("exited with status {c}{said}"),
        )),
        (None, Some(s)) => Err(Error::new(
            Code::TempFail,
            what,
            format!("killed by signal {s}{said}"),
        )),
        _ => Err(Error::new(Code::TempFail, what, format!("failed{said}"))),
    }
}

/// Run `argv` directly (no shell) with `vars` set (or removed when `None`), the bytes `write`
/// produces on its standard input, standard output discarded and standard error shared.
/// A command that exits without reading all its input is not an error here: its exit status
/// says what happened. Failing to start it is [`Code::TempFail`]; so is running longer than
/// `limit`, after which it is killed with its whole process group.
pub fn run_fed(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<ExitStatus> {
    let none: Option<fn(&mut dyn Read) -> Result<()>> = None;
    run(argv, vars, limit, write, false, none).map(|(status, _, _)| status)
}

/// [`run_fed`], and the last line the command wrote on stderr (passed on to ours as it
/// comes), for the reason of a failed delivery.
fn run_fed_told(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(ExitStatus, Option<String>)> {
    let none: Option<fn(&mut dyn Read) -> Result<()>> = None;
    run(argv, vars, limit, write, true, none).map(|(status, said, _)| (status, said))
}

/// [`run_fed`], with the command's standard output given to `read` (a filter: the message
/// in, a new message out). `read` runs in a thread of its own, so a command that writes
/// before it has read all of its input never blocks on us. When `read` fails (as when the
/// output is over its limit), the command is killed at once with its process group. The
/// status is the command's; what `read` returned is beside it.
pub fn run_captured<T: Send>(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    read: impl FnOnce(&mut dyn Read) -> Result<T> + Send,
) -> Result<(ExitStatus, Result<T>)> {
    let (status, _, output) = run(argv, vars, limit, write, false, Some(read))?;
    let output = output.unwrap_or_else(|| Err(Error::new(Code::TempFail, "pipe", "no output")));
    Ok((status, output))
}

/// [`run_fed`], [`run_fed_told`] and [`run_captured`]: standard output to `read` when given,
/// else discarded; with `tell`, the last line of standard error kept for the reason.
fn run<T: Send>(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    tell: bool,
    read: Option<impl FnOnce(&mut dyn Read) -> Result<T> + Send>,
) -> Result<(ExitStatus, Option<String>, Option<Result<T>>)> {
    let Some(prog) = argv.first() else {
        return Err(Error::new(Code::TempFail, "pipe", "no command"));
    };
    let what = format!("pipe to {prog}");
    let mut cmd = Command::new(prog);
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(if read.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (key, val) in vars {
        match val {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    // Its own process group, so the watchdog also stops what it started (a grandchild
    // holding the pipe open would keep our write blocked).
    cmd.process_group(0);
    if tell {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().or_code(Code::TempFail, what.clone())?;
    let told = child.stderr.take().map(LastLine::read);
    let pid = child.id() as libc::pid_t;
    // Without a limit a command that never exits (or never reads) holds the delivery, and
    // the MTA or SMTP client behind it, for ever.
    let (done, expired) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let late = expired.recv_timeout(limit) == Err(RecvTimeoutError::Timeout);
        if late {
            kill_group(pid);
        }
        late
    });
    let stdout = child.stdout.take();
    let (written, output) = std::thread::scope(|scope| {
        let reader = match (read, stdout) {
            (Some(read), Some(mut out)) => Some(scope.spawn(move || {
                let r = read(&mut out);
                if r.is_err() {
                    // Reading gave up: the command must not go on writing (or wait to).
                    kill_group(pid);
                }
                r
            })),
            _ => None,
        };
        let written = match child.stdin.take() {
            Some(stdin) => {
                let mut w = io::BufWriter::with_capacity(64 * 1024, stdin);
                write(&mut w).and_then(|()| w.flush())
            }
            None => Ok(()),
        };
        // Its standard input is closed here (the writer is gone): a filter sees the end.
        let output = reader.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::new(Code::TempFail, what.clone(), "no output")))
        });
        (written, output)
    });
    wait_unreaped(pid).or_code(Code::TempFail, what.clone())?;
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let status = child.wait().or_code(Code::TempFail, what.clone())?;
    if timed_out {
        return Err(Error::new(
            Code::TempFail,
            what,
            format!("killed after {} seconds", limit.as_secs_f32()),
        ));
    }
    let said = told.and_then(LastLine::take);
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Code::TempFail, what, e)),
        _ => Ok((status, said, output)),
    }
}

/// SIGKILL the process group `pid` leads.
fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill(2) has no memory effects. The child is not reaped before the threads
    // that call this are joined (see wait_unreaped), so the group id is still its own.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
}

/// Wait until child `pid` has exited, leaving it a zombie (WNOWAIT): its pid cannot be
/// reused until `Child::wait` reaps it.
fn wait_unreaped(pid: libc::pid_t) -> io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain data, for which all zero bytes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOWAIT;
        // SAFETY: info is a valid siginfo_t to write to; waitid has no other effects.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A command's stderr, read on a thread: passed on to ours as it comes, its last non-empty
/// line kept.
struct LastLine {
    last: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    closed: std::sync::mpsc::Receiver<()>,
}

/// The most of a line kept: a reason, not a transcript.
const MAX_SAID: usize = 300;

impl LastLine {
    fn read(mut from: std::process::ChildStderr) -> LastLine {
        let last = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (closed_tx, closed) = std::sync::mpsc::channel();
        let keep = std::sync::Arc::clone(&last);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut line = Vec::new();
            let end_line = |line: &mut Vec<u8>| {
                let text = String::from_utf8_lossy(line).trim().to_string();
                if !text.is_empty() {
                    *keep.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
                }
                line.clear();
            };
            let mut buf = [0u8; 4096];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let _ = io::stderr().write_all(&buf[..n]);
                for &b in &buf[..n] {
                    if b == b'\n' {
                        end_line(&mut line);
                    } else if line.len() < MAX_SAID {
                        line.push(b);
                    }
                }
            }
            end_line(&mut line);
            let _ = closed_tx.send(());
        });
        LastLine { last, closed }
    }

    /// The last line, once the command's stderr is closed. Something it started may keep
    /// stderr open after it exited: then what it said so far, after a moment's wait.
    fn take(self) -> Option<String> {
        let _ = self.closed.recv_timeout(Duration::from_millis(200));
        self.last.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> Result<()> {
        let argv = ["sh", "-c", script].map(String::from);
        let mut msg = Buffer::new();
        msg.write_all(b"Subject: x\n\nhi\n").unwrap();
        deliver(&argv, &[], Duration::from_secs(10), &mut msg)
    }

    #[test]
    fn a_failure_names_the_last_line_the_command_wrote_on_stderr() {
        let e = sh("cat >/dev/null; echo one >&2; printf 'two: disk full\\n\\n' >&2; exit 75")
            .unwrap_err();
        assert_eq!(e.code(), Code::TempFail);
        assert_eq!(
            e.to_string(),
            "deliver via sh: exited with status 75: two: disk full"
        );
        let e = sh("cat >/dev/null; exit 1").unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.to_string(), "deliver via sh: exited with status 1");
        assert!(sh("cat >/dev/null; echo fine >&2").is_ok());
    }

    #[test]
    fn something_left_holding_stderr_does_not_hold_the_delivery() {
        let start = Instant::now();
        let e = sh("cat >/dev/null; echo no such user >&2; sleep 5 & exit 67").unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            e.to_string(),
            "deliver via sh: exited with status 67: no such user"
        );
    }
}
