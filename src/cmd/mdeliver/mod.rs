//! mdeliver: the local delivery agent. One message on stdin, one Maildir on disk.
//!
//! Design: the message is read whole before anything is written (into memory, or an unlinked
//! temporary file past 1 MiB), because every decision (loop, size, rules, dedupe) must be made
//! before the first byte becomes visible. This module turns flags, environment and
//! configuration into a [`crate::deliver::Pipeline`] (loop check, trace, rules, dedupe, store:
//! the delivery mreceive and the others share) and runs it. Exit 0 means every destination
//! has the message on disk. Anything we are unsure of exits 75, so the MTA that ran us keeps the mail and retries;
//! only faults of the message itself (a loop, over the size limit) are permanent.
//! `log.rs` writes `--log`'s line per message from what the pipeline reports.

mod log;

use crate::account;
use crate::config;
use crate::deliver::rules::Source;
use crate::deliver::{Event, Pipeline, actions};
use crate::docs::Page;
use crate::exit::{Code, Context, Error, Result};
use crate::message::buffer;
use crate::run;
use crate::store::dedupe;
use clap::{CommandFactory, Parser};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Deliver one message from standard input into a Maildir.
///
/// mdeliver reads one message on standard input and stores it in a Maildir with the Maildir
/// protocol (unique name in tmp/, write, fsync, rename into new/, fsync new/). It exits 0 only
/// when the message is on disk, so it can serve as Postfix's mailbox_command, Exim's pipe
/// transport, OpenSMTPD's mda, fetchmail's --mda and getmail's MDA_external.
#[derive(Parser, Debug, Default)]
#[command(
    name = "mdeliver",
    version,
    about = "deliver one message into a Maildir"
)]
pub struct Args {
    /// The Maildir to deliver into [default: $MAILDIR, else $HOME/Maildir]
    #[arg(value_name = "MAILDIR")]
    pub maildir: Option<PathBuf>,

    /// Envelope sender for the Return-Path: header [default: $SENDER]
    #[arg(short = 'f', long = "sender", value_name = "SENDER")]
    pub sender: Option<String>,

    /// Envelope recipient for the Delivered-To: header and loop detection
    /// [default: $RECIPIENT, else $ORIGINAL_RECIPIENT]
    #[arg(short = 'a', long = "recipient", value_name = "ADDRESS")]
    pub recipient: Option<String>,

    /// Deliver into the Maildir++ folder NAME (.NAME/) instead of the inbox
    #[arg(long, value_name = "NAME")]
    pub folder: Option<String>,

    /// Store the message in cur/ with these Maildir flags (e.g. S for seen)
    #[arg(long, value_name = "FLAGS")]
    pub flags: Option<String>,

    /// Refuse messages larger than SIZE bytes (suffixes k, M, G) permanently
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]
    #[arg(short = 'C', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Filter with the rules in FILE (see mailpipe-rules(5))
    /// [default: the config key rules, else ~/.config/mailpipe/rules]
    #[arg(short = 'r', long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Ignore every rules file: deliver to the inbox (or --folder)
    #[arg(long, conflicts_with = "rules")]
    pub no_rules: bool,

    /// Drop a message whose Message-ID was delivered before (exit 0, nothing stored)
    #[arg(short = 'D', long)]
    pub dedupe: bool,

    /// The Message-ID cache for --dedupe (implies --dedupe) [default: MAILDIR/mailpipe-dedupe]
    #[arg(long, value_name = "FILE")]
    pub dedupe_file: Option<PathBuf>,

    /// Print what would be done, one step a line, and deliver nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Print the path of each delivered file on standard output
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Append one line per message to FILE: which rules matched (file:line) and what was done
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Kill a command a rule runs (pipe, filter, forward) after SECS seconds [default: 900]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

pub use crate::config::parse_size;

/// What the environment and configuration resolve the flags to.
struct Settings {
    /// The delivery, all its steps as configured.
    pipeline: Pipeline,
    sender: Option<String>,
    recipient: Option<String>,
    max_size: Option<u64>,
    log: Option<PathBuf>,
}

/// An environment variable, when set and not empty. Not `std::env::var`, which calls a
/// value that is not UTF-8 unset: `$MAILDIR` is a path (any bytes), and an envelope address
/// with an 8-bit byte is still the address (for Return-Path: and the loop check).
fn env(name: &str) -> Option<String> {
    env_os(name).map(|v| v.to_string_lossy().into_owned())
}

fn env_os(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// An envelope address from an argument or the environment must not be able to add header
/// lines: refuse control characters outright.
fn check_envelope(kind: &str, v: Option<String>) -> Result<Option<String>> {
    match v {
        Some(a) if a.chars().any(char::is_control) => Err(Error::new(
            Code::Usage,
            format!("{kind} {a:?}"),
            "contains a control character",
        )),
        v => Ok(v),
    }
}

fn settings(args: Args) -> Result<Settings> {
    // Configuration errors are Code::Config here; `run` defers the mail for them.
    let cfg = account::load(args.config.as_deref())?;
    let defaults = cfg.account(None)?;
    let from_env = env_os("MAILDIR").map(PathBuf::from);
    let maildir_from_env = args.maildir.is_none() && from_env.is_some();
    let maildir = args
        .maildir
        .or(from_env)
        .or_else(|| defaults.get("maildir").map(config::expand_tilde))
        .or_else(|| config::home().map(|h| h.join("Maildir")))
        .ok_or_else(|| {
            Error::new(
                Code::TempFail,
                "no maildir",
                "give one, or set MAILDIR or HOME",
            )
        })?;
    // Where a key is wrong: `file:line: key`.
    let at = |key: &str| match defaults.value(key) {
        Some(v) => format!("{}: {key}", v.origin),
        None => key.to_string(),
    };
    let max_size = match (args.max_size, defaults.get("max_size")) {
        (Some(m), _) => Some(m),
        (None, Some(s)) => {
            Some(parse_size(s).map_err(|why| Error::new(Code::Config, at("max_size"), why))?)
        }
        (None, None) => None,
    };
    let rules = match (args.no_rules, args.rules, defaults.get("rules")) {
        (true, _, _) => Source::Off,
        (false, Some(p), _) => Source::Named(p),
        (false, None, Some(p)) => Source::Named(config::expand_tilde(p)),
        (false, None, None) => match config::config_dir() {
            Some(d) => Source::Default(d.join("rules")),
            None => Source::Off,
        },
    };
    let dedupe_on =
        args.dedupe || args.dedupe_file.is_some() || defaults.flag("dedupe")?.unwrap_or(false);
    let dedupe = dedupe_on.then(|| {
        args.dedupe_file
            .or_else(|| defaults.get("dedupe_file").map(config::expand_tilde))
            .unwrap_or_else(|| maildir.join(dedupe::DEFAULT_NAME))
    });
    let sendmail = match defaults.get("sendmail") {
        Some(cmd) => {
            let argv =
                config::words(cmd).map_err(|why| Error::new(Code::Config, at("sendmail"), why))?;
            if argv.is_empty() {
                return Err(Error::new(Code::Config, at("sendmail"), "no command"));
            }
            argv
        }
        None => Vec::new(),
    };
    Ok(Settings {
        pipeline: Pipeline {
            // $MAILDIR's agent owns the layout (mreceive's BASE/USER/Maildir): its missing
            // parents are created; a Maildir the user names must have its parent.
            create_parents: maildir_from_env,
            rules,
            dedupe,
            folder: args.folder.unwrap_or_else(|| "INBOX".to_string()),
            flags: args.flags.unwrap_or_default(),
            time_limit: args
                .timeout
                .map_or(actions::TIME_LIMIT, Duration::from_secs),
            max_size,
            sendmail,
            ..Pipeline::new(maildir)
        },
        sender: check_envelope("sender", args.sender.or_else(|| env("SENDER")))?,
        recipient: check_envelope(
            "recipient",
            args.recipient
                .or_else(|| env("RECIPIENT"))
                .or_else(|| env("ORIGINAL_RECIPIENT")),
        )?,
        max_size,
        log: args.log,
    })
}

/// Run mdeliver.
/// A configuration error, as a delivery agent must report it: temporary (75), so the MTA
/// keeps every message until the file is fixed, never a bounce (one typo would bounce every
/// incoming message; Postfix's pipe(8) reads EX_CONFIG, 78, as permanent), and loud about it.
fn deferred(e: Error) -> Error {
    match e.code() {
        Code::Config => e
            .context("configuration error (mail deferred, exit 75, until it is fixed)")
            .with_code(Code::TempFail),
        _ => e,
    }
}

pub fn run(args: Args) -> Result<()> {
    let (verbose, dry_run) = (args.verbose, args.dry_run);
    let s = settings(args).map_err(deferred)?;
    let folder = &s.pipeline.folder;
    if !folder.eq_ignore_ascii_case("inbox") {
        crate::store::maildir::check_folder_name(folder)?;
    }
    let mut record = log::Record {
        from: s.sender.clone(),
        to: s.recipient.clone(),
        ..log::Record::default()
    };
    let result = deliver(&s, verbose, dry_run, &mut record);
    if let Some(path) = s.log.as_deref().filter(|_| !dry_run) {
        super::append_log(path, &record.line(&result));
    }
    result
}

/// Read the message and deliver it (or show the plan), noting in `record` what was done.
fn deliver(s: &Settings, verbose: bool, dry_run: bool, record: &mut log::Record) -> Result<()> {
    let mut msg = buffer::read_for_delivery(&mut std::io::stdin().lock(), s.max_size)?;
    record.size = msg.len();
    record.message_id = dedupe::message_id(crate::message::header::block(msg.head()));
    if is_blank(&mut msg)? {
        // What a failed command before us in a pipeline leaves (`mcompose … | mdeliver`
        // with mcompose refusing an address): storing it would turn that failure into an
        // empty "delivered" message and a pipeline that exits 0.
        return Err(Error::new(
            Code::DataErr,
            "standard input",
            "no message (empty, or only white space); nothing stored",
        ));
    }
    let (sender, recipient) = (s.sender.as_deref(), s.recipient.as_deref());
    let mut report = |e: Event| match e {
        Event::Stored(d) if verbose => run::print_committed(&format!("{}\n", d.path.display())),
        Event::Stored(_) => {}
        Event::Done(p) => record.done(p),
        Event::Warning(e) => run::warn(e),
    };
    if dry_run {
        let steps = s.pipeline.plan(&msg, sender, recipient, &mut report)?;
        let mut out = std::io::stdout().lock();
        for step in &steps {
            writeln!(out, "{step}").map_err(|e| Error::io(Code::IoErr, "stdout", e))?;
        }
        return Ok(());
    }
    // A duplicate is dropped quietly (formail -D): exit 0.
    let done = s
        .pipeline
        .deliver(&mut msg, sender, recipient, &mut report)?;
    record.duplicate = done.duplicate;
    Ok(())
}

/// True when the message (after its mbox `From ` line) holds nothing but white space.
fn is_blank(msg: &mut buffer::Buffer) -> Result<bool> {
    let blank = |b: &[u8]| b.iter().all(u8::is_ascii_whitespace);
    if !blank(msg.head()) {
        return Ok(false);
    }
    if msg.in_memory() {
        return Ok(true);
    }
    // Past 1 MiB of white space: look at the rest on disk before deciding.
    let mut r = msg.reader().or_code(Code::TempFail, "read message")?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) if !blank(&buf[..n]) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(Code::TempFail, "read message", e)),
        }
    }
}

/// mdeliver's documentation.
pub fn page() -> Page {
    Page {
        name: "mdeliver",
        command: Args::command(),
        description: DESCRIPTION,
        sections: SECTIONS,
    }
}

const DESCRIPTION: &str = r#"
.PP
The message is read completely before anything is written: up to 1 MiB in memory, the rest in
an unlinked temporary file, so a message of any size is delivered with flat memory use.
A leading mbox
.B From\~
line is dropped, CRLF line ends become LF (the Maildir convention), and every other byte,
8-bit or not valid UTF-8, is stored unchanged.
Input with nothing but white space (or nothing at all) is no message: it is refused with 65
and nothing is stored, so a pipeline whose first command failed does not deliver an empty
message.
.PP
.B Return-Path:
(from the envelope sender) and
.B Delivered-To:
(from the envelope recipient) are prepended; a
.B Return-Path:
or
.B Delivered-To:
that the MTA's own stamp on top of the message already gives for the same address is not
repeated (Postfix's local(8) and pipe(8) with
.B flags=DR
write both).
A command that a rule pipes the message into gets the
.B Delivered-To:
all the same, so that a command delivering it into mdeliver again ends as a loop.
A message whose first line begins with white space gets an empty line after them, so that it
cannot continue them: it has no header of its own and is stored as all body.
A message that already carries a
.B Delivered-To:
header for the same recipient is refused as a mail loop, as qmail-local does; except the one
that the agent running mdeliver prepends for this very delivery (Postfix's local(8) for
.BR mailbox_command ,
pipe(8) with
.BR flags=RD ,
OpenSMTPD, getmail), in the run of
.BR Return\-Path: ,
.B X\-Original\-To:
and
.B Delivered\-To:
fields at the top of the message (they check for loops themselves).
.PP
A missing Maildir is created with its tmp, new and cur directories, but never a missing
parent directory: that exits 73 naming it, so a mistyped path does not grow a new tree
(make a new user's directory first).
Only a Maildir from
.BR $MAILDIR ,
the layout of the agent that sets it (mreceive's
.IR BASE/USER/Maildir ),
is created with its parents.
Messages are stored with mode 0600 and the directories mdeliver creates get 0700, whatever
the umask (as maildrop and dovecot\-lda do); a directory that already exists keeps its mode.
Maildir++ folders are created with their
.B maildirfolder
marker; folder names may not contain a slash, start or end with a dot, or contain "..".
.PP
Before delivery the message goes through the filtering rules of
.BR mailpipe\-rules (5)
(from
.BR \-\-rules ,
the
.B rules
configuration key, or
.IR ~/.config/mailpipe/rules ):
tests on headers, the recipient fields, the body, the envelope and the size choose folders
(named after what a regular expression found, if need be), copies, flags, a filter to pass
the message through first (such as
.BR spamc ),
a command to pipe it into, addresses to forward it to (through
.BR msubmit (1),
keeping the envelope sender), or to discard it; every command is run directly, never through
a shell, and killed after
.B \-\-timeout
seconds (900 by default).
Without a matching rule the message goes to the inbox, or to
.BR \-\-folder .
A rules file that cannot be read or has an error is reported on standard error and the
message is delivered as if there were no rules: a broken filter never loses mail.
.B \-n
shows what the rules decide and delivers nothing (it runs no filter or command).
.PP
With
.BR \-\-log ,
each message adds one line to the file (created with mode 0600, appended to with
.BR O_APPEND ,
so the lines of concurrent deliveries stay whole), in the
.I key=value
form of
.BR msubmit (1)'s
log:
.B time=
(local time, ISO 8601),
.B from=
and
.B to=
(the envelope,
.B \-
when unknown),
.BR message_id= ,
.B size=
(as read),
.B rules=
(the
.I file:line
of each rule that chose a step done, comma-separated;
.B \-
when the default delivery alone was done),
.B done=
(each step done, as
.B \-n
prints it, separated by "; "; or
.B duplicate
for a message dropped by
.BR \-\-dedupe ),
.B exitcode=
and, when it is not 0,
.BR reason= .
Values with blanks or quotes are quoted, with their escapes, so a line is always one line.
A log that cannot be written is warned about and changes nothing else: the message is
delivered all the same.
.PP
With
.B \-\-dedupe
(or
.B dedupe on
in the configuration) a message whose Message-ID was delivered before is dropped, like
.B formail \-D
does: exit 0, nothing stored.
The cache remembers at least the last 5000 ids; it is locked from the check until the new id
is recorded, so concurrent deliveries of one message store it exactly once, and an id is
recorded only after a successful delivery.
Messages without a Message-ID (or with one that is not UTF-8 text) are never dropped.
"#;

const SECTIONS: &str = r#"
.SH EXIT STATUS
.TP
.B 0
The message is on disk in every destination chosen (and any pipe command exited 0), or it was
discarded by a rule or dropped as a duplicate.
.TP
.B 64
Usage error: an unknown option, a bad folder name, or an envelope address with control
characters.
.TP
.B 65
The message was refused permanently: a mail loop, larger than
.BR \-\-max\-size ,
or no message at all (empty input, or only white space, as a failed command before mdeliver
in a pipeline leaves): nothing is stored.
.TP
.B 73
The Maildir's parent directory does not exist (nothing was created).
.TP
.B 75
Temporary failure: the disk is full, a directory is not writable, the configuration is
broken (an unknown key or a bad value: the diagnostic names its file:line and says the mail
is deferred; never a bounce, so one typo does not return every incoming message), a rule's pipe, filter or forward failed (or ran out of time), the dedupe cache cannot
be locked, or anything else that
is not the message's fault. Nothing partial is left in new/ or cur/; the caller should keep
the message and try again. (Copies stored by rules before a failing step stay.)
.SH ENVIRONMENT
.TP
.B MAILDIR
The Maildir to deliver into when none is given.
.TP
.B HOME
$HOME/Maildir is the default Maildir; $HOME/.config/mailpipe holds the configuration.
.TP
.B SENDER
The envelope sender, as Postfix's local(8) and pipe(8) and Exim set it.
.TP
.BR RECIPIENT ", " ORIGINAL_RECIPIENT
The envelope recipient, as Postfix sets them.
.TP
.B MAILPIPE_CONFIG
A configuration file to read instead of the default ones.
.SH FILES
.TP
.I ~/.config/mailpipe/config
User configuration (keys maildir, max_size, rules, dedupe, dedupe_file, and sendmail: the
command a rule's forward runs instead of msubmit, in the defaults section); see
.BR mailpipe (7).
.TP
.I ~/.config/mailpipe/rules
The default filtering rules; see
.BR mailpipe\-rules (5).
.TP
.I MAILDIR/mailpipe\-dedupe
The default Message-ID cache of
.BR \-\-dedupe ,
with its lock file
.IR mailpipe\-dedupe.lock .
.TP
.I /etc/mailpipe/config
System configuration, read before the user's.
.SH CAVEATS
Debian's
.B mblaze
package installs a different program as
.IR /usr/bin/mdeliver ,
and cron and Postfix run commands with a PATH of only /usr/bin and /bin: there a bare
.B mdeliver
is mblaze's, which takes other options.
Call this one by its absolute path, as the examples do
.RI ( /usr/local/bin/mdeliver
after
.BR "make install" );
.BR mreceive (1)
by default runs the mdeliver installed beside it.
.SH EXAMPLES
Deliver a composed message to a local user:
.PP
.nf
.RS
mcompose \-t bob@localhost \-s hello </tmp/body | /usr/local/bin/mdeliver /home/bob/Maildir
.RE
.fi
.PP
As Postfix's local delivery agent, in main.cf:
.PP
.nf
.RS
mailbox_command = /usr/local/bin/mdeliver
.RE
.fi
.PP
Check what a rules file does with a message, then deliver it, dropping duplicates:
.PP
.nf
.RS
/usr/local/bin/mdeliver \-n \-\-rules ~/rules ~/Maildir < msg.eml
/usr/local/bin/mdeliver \-\-rules ~/rules \-\-dedupe ~/Maildir < msg.eml
.RE
.fi
.PP
Keep a record of where each message went:
.PP
.nf
.RS
/usr/local/bin/mdeliver \-\-log ~/deliveries.log ~/Maildir < msg.eml
.RE
.fi
.PP
As Postfix's pipe(8) transport in master.cf, with
.B mdeliver_destination_recipient_limit = 1
in main.cf (each user's directory under /var/mail must exist: mdeliver creates only the
Maildir):
.PP
.nf
.RS
mdeliver unix \- n n \- \- pipe
  user=vmail argv=/usr/local/bin/mdeliver \-f ${sender} \-a ${recipient} /var/mail/${user}/Maildir
.RE
.fi
.PP
As Exim's local delivery, a router (before Debian's local_user) and a pipe transport; Exim
takes exit 75 as temporary:
.PP
.nf
.RS
begin routers
mdeliver_user:
  driver = accept
  domains = +local_domains
  check_local_user
  transport = mdeliver_pipe
begin transports
mdeliver_pipe:
  driver = pipe
  command = /usr/local/bin/mdeliver \-f $sender_address \-a $local_part@$domain $home/Maildir
  return_fail_output
.RE
.fi
.PP
As OpenSMTPD's mda, in smtpd.conf (run as the recipient, through /bin/sh \-c):
.PP
.nf
.RS
action "local" mda "/usr/local/bin/mdeliver \-f %{sender} \-a %{rcpt} %{user.directory}/Maildir"
match from any for domain "example.org" action "local"
.RE
.fi
.PP
As fetchmail's MDA, into a folder:
.PP
.nf
.RS
fetchmail \-\-mda "/usr/local/bin/mdeliver \-\-folder Lists \-f %F"
.RE
.fi
.SH SEE ALSO
.BR mailpipe (7),
.BR mailpipe\-rules (5),
.BR mcompose (1),
.BR mreceive (1),
.BR maildir (5),
.BR postconf (5),
.BR smtpd.conf (5)
"#;
