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
/// permanent; not starting or a signal is temporary.
pub fn deliver(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    limit: Duration,
    msg: &mut Buffer,
) -> Result<()> {
    let what = format!("deliver via {}", argv.first().map_or("", String::as_str));
    let status = run_fed(argv, vars, limit, |w| msg.copy_to(w))?;
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(75), _) => Err(Error::new(Code::TempFail, what, "exited with status 75")),
        (Some(c), _) => Err(Error::new(
            Code::Unavailable,
            what,
            format!("exited with status {c}"),
        )),
        (None, Some(s)) => Err(Error::new(
            Code::TempFail,
            what,
            format!("killed by signal {s}"),
        )),
        _ => Err(Error::new(Code::TempFail, what, "failed")),
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
    run(argv, vars, limit, write, none).map(|(status, _)| status)
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
    let (status, output) = run(argv, vars, limit, write, Some(read))?;
    let output = output.unwrap_or_else(|| Err(Error::new(Code::TempFail, "pipe", "no output")));
    Ok((status, output))
}

/// [`run_fed`] and [`run_captured`]: standard output to `read` when given, else discarded.
fn run<T: Send>(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    read: Option<impl FnOnce(&mut dyn Read) -> Result<T> + Send>,
) -> Result<(ExitStatus, Option<Result<T>>)> {
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
    let mut child = cmd.spawn().or_code(Code::TempFail, what.clone())?;
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
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Code::TempFail, what, e)),
        _ => Ok((status, output)),
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
