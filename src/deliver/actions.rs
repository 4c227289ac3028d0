//! The rules' actions that hand the message to a program: `pipe` (a delivery: the command
//! has it), `filter` (maildrop's `xfilter`: the command's output is the message from then
//! on) and `forward` (the sendmail command sends it on). Each runs through
//! [`super::command`]: argv as the rule wrote it, never a shell, within a time limit, with
//! `SENDER` and `RECIPIENT` in the environment.
//!
//! All three fail the same way: temporarily (75), so the MTA keeps the message and the next
//! try runs the rules again. A failed filter is EX_TEMPFAIL in maildrop too; a forward that
//! failed is not a reason to bounce mail that reached its mailbox; and a failing command
//! is as likely a broken installation as a broken message.

use super::command::{run_captured, run_fed};
use crate::exit::{Code, Error, Result};
use crate::message::buffer::{self, Buffer};
use std::io::{self, Write};
use std::process::ExitStatus;
use std::time::Duration;

/// How long a command a rule runs (`pipe`, `filter`, `forward`) may take by default:
/// procmail's TIMEOUT (960 s), a little under Postfix's command_time_limit (1000 s) so that
/// we, not the MTA, say what hung.
pub const TIME_LIMIT: Duration = Duration::from_secs(900);

/// The envelope as a command's environment: `SENDER` and `RECIPIENT`, removed when unknown
/// (rather than inherited from whoever ran us).
pub type Env<'a> = [(&'a str, Option<&'a str>); 2];

/// The environment for `sender` and `recipient`.
pub fn env<'a>(sender: Option<&'a str>, recipient: Option<&'a str>) -> Env<'a> {
    [("SENDER", sender), ("RECIPIENT", recipient)]
}

/// Run `argv` with the message written by `write` on its standard input, standard output
/// discarded and standard error shared with ours. Success is exit status 0; anything else,
/// a failure to start it included, is a temporary failure, so the MTA keeps the message. A
/// command that exits 0 without reading all of its input (`head`, a spam check) succeeds. A
/// command still running after `limit` is killed (with its process group) and is a
/// temporary failure too.
pub fn pipe(
    argv: &[String],
    env: Env,
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let what = format!("pipe to {}", argv.first().map_or("", String::as_str));
    let status = run_fed(argv, &env, limit, write)?;
    succeeded(status, what)
}

/// Run the filter `argv` with `msg` on its standard input (as received: our trace fields
/// are added when it is stored) and return its standard output, read as mdeliver reads its
/// input (a leading mbox `From ` line dropped, CRLF to LF), as the new message. At most
/// `max_output` bytes: past that the filter is killed. Exit status 0 is needed, and a
/// message: empty output (or only white space) from a filter that "succeeded" is a failure,
/// not a message to store. Every failure is temporary.
pub fn filter(
    argv: &[String],
    env: Env,
    limit: Duration,
    max_output: u64,
    msg: &mut Buffer,
) -> Result<Buffer> {
    let what = format!("filter {}", argv.first().map_or("", String::as_str));
    let (status, output) = run_captured(
        argv,
        &env,
        limit,
        |w| msg.copy_to(w),
        |r| buffer::read_for_delivery(r, Some(max_output)),
    )
    .map_err(|e| Error::new(Code::TempFail, what.clone(), e.why()))?;
    let output = output.map_err(|e| match e.code() {
        Code::DataErr => Error::new(
            Code::TempFail,
            what.clone(),
            format!("its output is larger than {max_output} bytes; killed"),
        ),
        _ => Error::new(Code::TempFail, what.clone(), e.to_string()),
    })?;
    succeeded(status, what.clone())?;
    let blank = output.in_memory() && output.head().iter().all(u8::is_ascii_whitespace);
    if blank {
        return Err(Error::new(
            Code::TempFail,
            what,
            "its output is no message (empty, or only white space)",
        ));
    }
    Ok(output)
}

/// The most a filter may write for a message of `len` bytes: the delivery's size limit when
/// it has one, else twice the message and 1 MiB (room to add headers or re-encode a part;
/// none to fill the disk).
pub fn filter_limit(len: u64, max_size: Option<u64>) -> u64 {
    max_size.unwrap_or_else(|| len.saturating_mul(2).saturating_add(1 << 20))
}

/// Send the message written by `write` to `to` through `sendmail` (argv; empty for msubmit
/// beside the running program), from `sender` as the envelope sender, as Postfix's
/// `.forward` keeps it (`<>` for the null sender; the sendmail command's own default when
/// unknown). `-i`: a line with a lone dot is text to every sendmail (msubmit ignores it).
pub fn forward(
    sendmail: &[String],
    to: &[String],
    sender: Option<&str>,
    env: Env,
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let mut argv = if sendmail.is_empty() {
        vec![msubmit()?]
    } else {
        sendmail.to_vec()
    };
    argv.push("-i".into());
    // One word: `-f` `-x@y` would be two options to a parser like clap's, whatever
    // getopt(3) makes of it.
    if let Some(s) = sender {
        argv.push(format!("-f{}", if s.is_empty() { "<>" } else { s }));
    }
    // The addresses were checked when the rules were read: none looks like an option.
    argv.push("--".into());
    argv.extend(to.iter().cloned());
    let what = format!("forward to {} via {}", to.join(","), argv[0]);
    let status = run_fed(&argv, &env, limit, write)
        .map_err(|e| Error::new(Code::TempFail, what.clone(), e.why()))?;
    succeeded(status, what)
}

/// msubmit in the directory of the running program (where `make install` puts the tools
/// together), never one found on PATH.
fn msubmit() -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io(Code::TempFail, "forward: find msubmit", e))?;
    let path = exe.with_file_name("msubmit");
    path.into_os_string().into_string().map_err(|_| {
        Error::new(
            Code::TempFail,
            "forward",
            "the path of msubmit is not UTF-8",
        )
    })
}

/// Exit status 0, or a temporary failure saying what the status was.
fn succeeded(status: ExitStatus, what: String) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    let why = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    Err(Error::new(Code::TempFail, what, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: Env = [("SENDER", None), ("RECIPIENT", None)];

    #[test]
    fn a_pipe_command_that_hangs_is_killed_with_what_it_started() {
        // It never reads and never exits, and a grandchild holds its standard input: the
        // 1 MiB write would block for ever without the limit.
        let argv: Vec<String> = ["sh", "-c", "sleep 60 & sleep 60"]
            .map(String::from)
            .to_vec();
        let start = std::time::Instant::now();
        let limit = Duration::from_millis(300);
        let e = pipe(&argv, ENV, limit, |w| w.write_all(&[b'x'; 1 << 20])).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(e.code(), Code::TempFail);
        assert!(e.to_string().contains("killed after"), "{e}");
        // A quick command is untouched by the limit.
        let cat = vec!["cat".to_string()];
        assert!(pipe(&cat, ENV, limit, |w| w.write_all(b"x")).is_ok());
    }

    fn message(text: &[u8]) -> Buffer {
        let mut msg = Buffer::new();
        msg.write_all(text).unwrap();
        msg
    }

    fn sh(script: &str) -> Vec<String> {
        ["sh", "-c", script].map(String::from).to_vec()
    }

    fn all(mut b: Buffer) -> Vec<u8> {
        let mut v = Vec::new();
        b.copy_to(&mut v).unwrap();
        v
    }

    #[test]
    fn a_filter_output_is_the_new_message() {
        let mut msg = message(b"Subject: s\n\nbody\n");
        let argv = sh("printf 'X-Spam: yes\\r\\n'; cat");
        let out = filter(&argv, ENV, TIME_LIMIT, 1000, &mut msg).unwrap();
        assert_eq!(all(out), b"X-Spam: yes\nSubject: s\n\nbody\n");
        // The environment is the envelope.
        let argv = sh("cat >/dev/null; printf 'S: %s %s\\n\\nx\\n' \"$SENDER\" \"$RECIPIENT\"");
        let env = env(Some("a@x"), Some("b@y"));
        let out = filter(&argv, env, TIME_LIMIT, 1000, &mut msg).unwrap();
        assert_eq!(all(out), b"S: a@x b@y\n\nx\n");
    }

    #[test]
    fn a_filter_fails_temporarily_and_never_hangs() {
        let mut msg = message(b"Subject: s\n\nbody\n");
        let limit = Duration::from_millis(300);
        for (script, why) in [
            ("cat; exit 1", "exited with status 1"),
            ("cat >/dev/null", "no message"),
            ("yes", "larger than 5000 bytes"),
            ("sleep 60", "killed after"),
            // It exits, leaving a child that holds its output open.
            ("sleep 60 & echo x", "killed after"),
        ] {
            let start = std::time::Instant::now();
            let e = filter(&sh(script), ENV, limit, 5000, &mut msg).unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(20), "{script}");
            assert_eq!(e.code(), Code::TempFail, "{script}");
            assert!(e.to_string().starts_with("filter sh: "), "{script}: {e}");
            assert!(e.to_string().contains(why), "{script}: {e}");
        }
        let missing = vec!["/nonexistent/filter".to_string()];
        let e = filter(&missing, ENV, limit, 5000, &mut msg).unwrap_err();
        assert_eq!(e.code(), Code::TempFail);
    }

    #[test]
    fn filter_limits() {
        assert_eq!(filter_limit(100, Some(50)), 50);
        assert_eq!(filter_limit(100, None), 200 + (1 << 20));
        assert_eq!(filter_limit(u64::MAX, None), u64::MAX);
    }

    #[test]
    fn forward_runs_the_sendmail_command_with_the_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "printf '%s|' \"$@\" > '{}'; cat >> '{}'",
            out.display(),
            out.display()
        );
        let sendmail = vec!["sh".into(), "-c".into(), script, "sendmail".into()];
        let to = vec!["a@x.test".to_string(), "b@y.test".to_string()];
        forward(&sendmail, &to, Some(""), ENV, TIME_LIMIT, |w| {
            w.write_all(b"M\n")
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"-i|-f<>|--|a@x.test|b@y.test|M\n"
        );
        forward(&sendmail, &to[..1], None, ENV, TIME_LIMIT, |w| {
            w.write_all(b"M\n")
        })
        .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"-i|--|a@x.test|M\n");
        let failing = sh("exit 67");
        let e = forward(&failing, &to, Some("s@x"), ENV, TIME_LIMIT, |_| Ok(())).unwrap_err();
        assert_eq!(e.code(), Code::TempFail);
        assert_eq!(
            e.to_string(),
            "forward to a@x.test,b@y.test via sh: exited with status 67"
        );
    }
}
