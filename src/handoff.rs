//! Where mreceive hands accepted mail: local recipients into Maildirs (built in, through
//! [`crate::local`], the code mdeliver uses) or to a delivery command once per recipient;
//! recipients of other domains (only authenticated clients may have them) into the outgoing
//! spool ([`crate::spool`]), one entry per message, for msubmit's `--flush` and mrelay.
//!
//! Every path reports success only when the message is durable: the Maildir protocol with the
//! directory fsync, the queue's same protocol, or the command's exit 0 (its promise, as with
//! Postfix's pipe(8)). A command's exit 75 (EX_TEMPFAIL) is temporary, any other failure
//! permanent (the msmtpd contract); a command that cannot be started or dies by a signal is
//! our problem and temporary.

use crate::exit::{Code, Context, Error, Result};
use crate::input::Spool;
use crate::smtp::server::{Deliver, Envelope};
use crate::spool::{self, Queue};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// How local recipients get their mail.
#[derive(Clone, Debug)]
pub enum Local {
    /// Built-in: `BASE/<user>/Maildir`.
    Maildirs(PathBuf),
    /// Run `argv` once per recipient, the message on stdin; with a base, `MAILDIR` is set to
    /// `BASE/<user>/Maildir` for it.
    Command {
        /// The program and its arguments (never through a shell).
        argv: Vec<String>,
        /// The Maildir base to tell the command about.
        base: Option<PathBuf>,
    },
}

/// mreceive's [`Deliver`].
#[derive(Clone, Debug)]
pub struct Handoff {
    /// Local delivery.
    pub local: Local,
    /// The outgoing queue for authenticated mail; `None` refuses it (temporarily).
    pub queue: Option<PathBuf>,
}

impl Deliver for Handoff {
    fn deliver(&self, env: &Envelope, msg: &mut Spool) -> Vec<Result<()>> {
        // Recipients of other domains (only authenticated clients have them): one queue entry.
        let remote: Vec<&str> = env
            .rcpts
            .iter()
            .filter(|rc| rc.user.is_none())
            .map(|rc| rc.address.as_str())
            .collect();
        let queued = (!remote.is_empty()).then(|| self.enqueue(env, &remote, msg));
        env.rcpts
            .iter()
            .map(|rc| {
                let Some(user) = rc.user.as_deref() else {
                    return queued.as_ref().map_or(Ok(()), clone_result);
                };
                match &self.local {
                    Local::Maildirs(base) => {
                        let root = maildir_of(base, user);
                        crate::local::deliver_inbox(&root, &env.from, &rc.address, msg).map(drop)
                    }
                    Local::Command { argv, base } => {
                        let maildir = base.as_ref().map(|b| maildir_of(b, user));
                        let vars = [
                            ("SENDER", Some(env.from.as_str())),
                            ("RECIPIENT", Some(rc.address.as_str())),
                            ("USER", Some(user)),
                            ("MAILDIR", maildir.as_deref().and_then(Path::to_str)),
                        ];
                        deliver_command(argv, &vars, msg)
                    }
                }
            })
            .collect()
    }
}

fn clone_result(r: &Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::new(e.code(), e.what(), e.why())),
    }
}

/// `BASE/<user>/Maildir`; the user name was checked to be one safe path component.
pub fn maildir_of(base: &Path, user: &str) -> PathBuf {
    base.join(user).join("Maildir")
}

impl Handoff {
    fn enqueue(&self, env: &Envelope, rcpts: &[&str], msg: &mut Spool) -> Result<()> {
        let Some(dir) = &self.queue else {
            return Err(Error::new(Code::TempFail, "queue", "no queue directory"));
        };
        let queued = spool::Envelope {
            account: None,
            from: env.from.clone(),
            rcpts: rcpts.iter().map(|r| (r.to_string(), None)).collect(),
            ret: None,
            envid: None,
            eight_bit: env.eight_bit,
            size: msg.len(),
            queued: spool::now(),
        };
        Queue::open(dir)?
            .store(&queued, |w| msg.copy_to(w))
            .map(drop)
    }
}

/// Run a delivery command for one recipient: exit 0 delivered, 75 temporary, anything else
/// permanent; not starting or a signal is temporary.
fn deliver_command(argv: &[String], vars: &[(&str, Option<&str>)], msg: &mut Spool) -> Result<()> {
    let what = format!("deliver via {}", argv.first().map_or("", String::as_str));
    let status = run_fed(argv, vars, |w| msg.copy_to(w))?;
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
/// says what happened. Failing to start it is [`Code::TempFail`].
pub fn run_fed(
    argv: &[String],
    vars: &[(&str, Option<&str>)],
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<ExitStatus> {
    let Some(prog) = argv.first() else {
        return Err(Error::new(Code::TempFail, "pipe", "no command"));
    };
    let what = format!("pipe to {prog}");
    let mut cmd = Command::new(prog);
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    for (key, val) in vars {
        match val {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let mut child = cmd.spawn().or_code(Code::TempFail, what.clone())?;
    let written = match child.stdin.take() {
        Some(stdin) => {
            let mut w = io::BufWriter::with_capacity(64 * 1024, stdin);
            write(&mut w).and_then(|()| w.flush())
        }
        None => Ok(()),
    };
    let status = child.wait().or_code(Code::TempFail, what.clone())?;
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Code::TempFail, what, e)),
        _ => Ok(status),
    }
}
