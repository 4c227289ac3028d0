//! mcompose: write one RFC 5322 / MIME message, ready for msubmit or mdeliver.
//!
//! Design: everything the user gives (options, a draft file, the message replied to) first
//! fills one [`Draft`]; with `--edit` that draft goes through the user's editor and comes
//! back. Only then is it validated and encoded ([`compose::header_block`]), and every input
//! file is opened and every text scanned before the first byte is written, so a bad address
//! or a missing attachment leaves no half message behind. Bodies stream (see
//! [`crate::message::mime`]): memory stays flat whatever the size of the attachments.
//!
//! lettre's message builder is not used: [`crate::message::fold`] and [`crate::message::mime`] say where it
//! falls short (folding past 998, raw control characters, whole bodies in memory, CRLF,
//! base64 for short text, a Message-ID from the short host name).

use crate::docs::Page;
use crate::exit::{Code, Context, Error, Result};
use crate::message::address::{self, Mailbox};
use crate::message::compose::{self, Draft, Stamp};
use crate::message::mime::{self, Content};
use crate::message::stamp;
use clap::{CommandFactory, Parser};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Compose a message and write it to standard output.
///
/// mcompose writes one Internet message (RFC 5322, MIME) built from its options, a body on
/// standard input, and attachments: with valid addresses, encoded headers, Date and
/// Message-ID, ready to pipe into msubmit -t or mdeliver.
#[derive(Parser, Debug, Default)]
#[command(
    name = "mcompose",
    version,
    about = "compose an RFC 5322 / MIME message"
)]
pub struct Args {
    /// Recipients, as with --to
    #[arg(value_name = "TO")]
    pub recipients: Vec<String>,

    /// The author [default: config from, else $EMAIL, else $USER at the host name]
    #[arg(short = 'f', long, value_name = "ADDRESS")]
    pub from: Option<String>,

    /// Add To: recipients (an address list; repeatable)
    #[arg(short = 't', long, value_name = "ADDRESSES")]
    pub to: Vec<String>,

    /// Add Cc: recipients (repeatable)
    #[arg(short = 'c', long, value_name = "ADDRESSES")]
    pub cc: Vec<String>,

    /// Add Bcc: recipients, kept in the output for msubmit -t to use and remove (repeatable)
    #[arg(short = 'b', long, value_name = "ADDRESSES")]
    pub bcc: Vec<String>,

    /// The subject
    #[arg(short = 's', long, value_name = "TEXT")]
    pub subject: Option<String>,

    /// Add Reply-To: addresses (repeatable)
    #[arg(long, value_name = "ADDRESSES")]
    pub reply_to: Vec<String>,

    /// The message-id this message replies to
    #[arg(long, value_name = "MSGID")]
    pub in_reply_to: Option<String>,

    /// Message-ids for References: (repeatable)
    #[arg(long, value_name = "MSGIDS")]
    pub references: Vec<String>,

    /// Add a header field (repeatable)
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Read the body from FILE instead of standard input
    #[arg(long, value_name = "FILE", conflicts_with = "draft")]
    pub body: Option<PathBuf>,

    /// Send non-ASCII text as 8bit instead of quoted-printable
    #[arg(long = "8bit")]
    pub eight_bit: bool,

    /// Attach FILE, with its media type detected or given (repeatable)
    #[arg(short = 'a', long = "attach", value_name = "FILE[:TYPE/SUBTYPE]")]
    pub attach: Vec<String>,

    /// Add FILE as the HTML alternative of the text (multipart/alternative)
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Mark attachments for inline display (Content-Disposition: inline)
    #[arg(long)]
    pub inline: bool,

    /// Reply to the message in MSGFILE ("-" for standard input)
    #[arg(long, value_name = "MSGFILE", conflicts_with = "forward")]
    pub reply: Option<PathBuf>,

    /// With --reply: reply to all recipients, minus yourself
    #[arg(long, requires = "reply")]
    pub all: bool,

    /// Forward the message in MSGFILE (a file, not "-") as a message/rfc822 attachment
    #[arg(long, value_name = "MSGFILE")]
    pub forward: Option<PathBuf>,

    /// Read header fields, Attach: lines and body from the draft FILE
    #[arg(long, value_name = "FILE")]
    pub draft: Option<PathBuf>,

    /// Edit the draft with $VISUAL or $EDITOR before building the message
    #[arg(short = 'e', long)]
    pub edit: bool,

    /// Write the message to FILE (which must not exist; - is standard output) instead of
    /// standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The right-hand side of the Message-ID [default: config domain, else the sender's domain]
    #[arg(long, value_name = "DOMAIN")]
    pub message_id_domain: Option<String>,

    /// Use this account of the configuration
    #[arg(short = 'A', long, value_name = "NAME")]
    pub account: Option<String>,

    /// Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]
    #[arg(short = 'C', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// No option value may carry a line break (or NUL) into a header field.
fn check_options(a: &Args) -> Result<()> {
    let singles = [
        ("--from", &a.from),
        ("--subject", &a.subject),
        ("--in-reply-to", &a.in_reply_to),
        ("--message-id-domain", &a.message_id_domain),
        ("--account", &a.account),
    ];
    let lists = [
        ("--to", &a.to),
        ("TO", &a.recipients),
        ("--cc", &a.cc),
        ("--bcc", &a.bcc),
        ("--reply-to", &a.reply_to),
        ("--references", &a.references),
        ("--header", &a.headers),
        ("--attach", &a.attach),
    ];
    let values = singles
        .iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| (*n, v)))
        .chain(
            lists
                .iter()
                .flat_map(|(n, vs)| vs.iter().map(move |v| (*n, v))),
        );
    for (name, v) in values {
        if v.contains(['\r', '\n', '\0']) {
            return Err(Error::new(
                Code::Usage,
                format!("{name} {v:?}"),
                "contains a line break",
            ));
        }
    }
    Ok(())
}

/// Put the options into `d`: single fields replace, lists add.
fn apply_options(d: &mut Draft, a: &Args) -> Result<()> {
    if a.from.is_some() {
        d.from.clone_from(&a.from);
    }
    d.to.extend(a.to.iter().chain(&a.recipients).cloned());
    d.cc.extend(a.cc.iter().cloned());
    d.bcc.extend(a.bcc.iter().cloned());
    d.reply_to.extend(a.reply_to.iter().cloned());
    if a.subject.is_some() {
        d.subject.clone_from(&a.subject);
    }
    if a.in_reply_to.is_some() {
        d.in_reply_to.clone_from(&a.in_reply_to);
    }
    d.references.extend(a.references.iter().cloned());
    for h in &a.headers {
        let Some((name, value)) = h.split_once(':') else {
            return Err(Error::new(
                Code::Usage,
                format!("--header {h:?}"),
                "expected NAME: VALUE",
            ));
        };
        compose::check_header_name(name.trim())?;
        d.headers
            .push((name.trim().to_string(), value.trim().to_string()));
    }
    d.attach.extend(a.attach.iter().cloned());
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The login name: $USER, $LOGNAME, else the password database.
fn login() -> String {
    if let Some(u) = env("USER").or_else(|| env("LOGNAME")) {
        return u;
    }
    // SAFETY: getpwuid returns a pointer into static storage or NULL; we copy at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    "nobody".into()
}

/// The default author: the account's `from`, else $EMAIL, else login@fqdn.
fn default_from(cfg_from: Option<&str>) -> String {
    cfg_from
        .map(str::to_string)
        .or_else(|| env("EMAIL"))
        .unwrap_or_else(|| format!("{}@{}", login(), stamp::fqdn()))
}

/// The Message-ID's right-hand side: the flag, the config, else the author's domain; a
/// dotless name is never used bare (RFC 5322 §3.6.4 wants a globally unique id).
fn id_domain(flag: Option<&str>, cfg: Option<&str>, from: &Mailbox) -> Result<String> {
    if let Some(d) = flag.or(cfg) {
        address::check_domain(d)
            .map_err(|why| Error::new(Code::Usage, format!("message-id domain {d:?}"), why))?;
        return Ok(d.to_string());
    }
    let d = &from.addr.domain;
    if d.contains('.') {
        return Ok(d.clone());
    }
    let host = stamp::fqdn();
    Ok(if host.contains('.') {
        host
    } else {
        format!("{d}.invalid")
    })
}

/// Run the editor on `path`: `$VISUAL`, else `$EDITOR`, else vi, through sh so that an
/// editor with arguments works; the path goes as "$1", never into the command text. The
/// editor gets the terminal, not our standard output (which is the message).
fn edit(path: &Path) -> Result<()> {
    let editor = env("VISUAL")
        .or_else(|| env("EDITOR"))
        .unwrap_or_else(|| "vi".into());
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path);
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(tty) => {
            let out = tty.try_clone().or_code(Code::OsErr, "/dev/tty")?;
            cmd.stdin(tty).stdout(out);
        }
        Err(_) => {
            cmd.stdout(std::io::stderr());
        }
    }
    let status = cmd
        .status()
        .map_err(|e| Error::io(Code::Unavailable, format!("editor {editor:?}"), e))?;
    if !status.success() {
        return Err(Error::new(
            Code::Unavailable,
            format!("editor {editor:?}"),
            format!("exited with {status}"),
        ));
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    crate::message::buffer::open(path)?
        .read_to_end(&mut data)
        .or_code_with(Code::IoErr, || path.display().to_string())?;
    Ok(data)
}

/// The first [`crate::message::buffer::MEMORY_LIMIT`] bytes of `path`: room for any header block.
fn read_head(path: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    crate::message::buffer::open(path)?
        .take(crate::message::buffer::MEMORY_LIMIT as u64)
        .read_to_end(&mut data)
        .or_code_with(Code::IoErr, || path.display().to_string())?;
    Ok(data)
}

/// Run mcompose.
pub fn run(args: Args) -> Result<()> {
    check_options(&args)?;
    let cfg = crate::account::load(args.config.as_deref())?;
    let account = cfg.account(args.account.as_deref())?;

    let mut d = Draft::default();
    let mut body: Vec<u8> = Vec::new();
    let mut from_draft = false;
    if let Some(path) = &args.draft {
        if args.edit {
            edit(path).map_err(|e| e.context(format!("draft {}", path.display())))?;
        }
        let (dd, b) = Draft::parse(&read_file(path)?)?;
        d = dd;
        body = b;
        from_draft = true;
    }
    apply_options(&mut d, &args)?;
    let cfg_from = account.get("from");
    if d.from.is_none() {
        d.from = Some(default_from(cfg_from));
    }
    let me = address::parse_mailbox(d.from.as_deref().unwrap_or_default())
        .map_err(|e| e.context("From"))?;

    let mut quote = String::new();
    if let Some(path) = &args.reply {
        let orig = read_file(path)?;
        quote = compose::reply(&mut d, &orig, args.all, &me)?;
    }
    if let Some(path) = &args.forward {
        // The original is read twice (its subject here, the attachment later, by path): a
        // pipe cannot be, and "-" would attach a file of that name instead.
        if path.as_os_str() == "-" {
            return Err(Error::new(
                Code::Usage,
                "--forward -",
                "the original must be a file (it is read twice); save it first",
            ));
        }
        // Only the header is needed here (for the subject); the message itself is attached
        // as it streams, so a forward of any size costs no more memory than `-a`.
        let head = read_head(path)?;
        compose::forward(&mut d, path, &head);
    }

    // The body: a draft's own, or the quote followed by --body FILE or standard input.
    let mut kept_draft: Option<PathBuf> = None;
    if !from_draft {
        let mut text = quote.into_bytes();
        if args.edit {
            if let Some(p) = &args.body {
                text.extend(read_file(p)?);
            }
            let draft = new_draft_file(&d.render(&text))?;
            edit(&draft).map_err(|e| keep_note(e, &draft))?;
            let edited = read_file(&draft).map_err(|e| keep_note(e, &draft))?;
            if edited.iter().all(u8::is_ascii_whitespace) {
                // An emptied draft means "don't" (as in mutt): nothing to keep either.
                let _ = std::fs::remove_file(&draft);
                return Err(Error::new(
                    Code::DataErr,
                    "draft",
                    "empty: no message composed",
                ));
            }
            let (dd, b) = Draft::parse(&edited).map_err(|e| keep_note(e, &draft))?;
            d = dd;
            if d.from.is_none() {
                d.from = Some(default_from(cfg_from));
            }
            body = b;
            kept_draft = Some(draft);
        } else {
            // The quote (if any), then --body FILE or standard input, streamed into the
            // spool as they are read: a body of any size costs flat memory.
            if !text.is_empty() {
                text.push(b'\n');
            }
            let src = args.body.clone().unwrap_or_else(|| PathBuf::from("-"));
            let input = crate::message::buffer::open(&src)?;
            return finish(
                &args,
                &account_domain(&account),
                d,
                &mut text.as_slice().chain(input),
            );
        }
    }
    let result = finish(&args, &account_domain(&account), d, &mut body.as_slice());
    match (&result, kept_draft) {
        (Ok(()), Some(p)) => {
            let _ = std::fs::remove_file(p);
        }
        (Err(_), Some(p)) => return result.map_err(|e| keep_note(e, &p)),
        _ => {}
    }
    result
}

fn account_domain(a: &crate::config::Keys) -> Option<String> {
    a.get("domain").map(str::to_string)
}

/// Add "draft kept in PATH" to an error, so the user knows where the work is.
fn keep_note(e: Error, path: &Path) -> Error {
    let why = format!("{} (draft kept in {})", e.why(), path.display());
    Error::new(e.code(), e.what().to_string(), why)
}

/// A new draft file in $TMPDIR, created exclusively and kept (it is removed only after the
/// message was written).
fn new_draft_file(text: &[u8]) -> Result<PathBuf> {
    let mut f = tempfile::Builder::new()
        .prefix("mcompose-draft.")
        .suffix(".eml")
        .tempfile()
        .or_code(Code::CantCreat, "draft file")?;
    f.write_all(text).or_code(Code::IoErr, "write draft file")?;
    let (_, path) = f
        .keep()
        .map_err(|e| Error::io(Code::CantCreat, "draft file", e.error))?;
    Ok(path)
}

/// Validate and build the message from the draft `d` and the body `body`, and write it.
fn finish(args: &Args, cfg_domain: &Option<String>, d: Draft, body: &mut dyn Read) -> Result<()> {
    let from = address::parse_mailbox(d.from.as_deref().unwrap_or_default())
        .map_err(|e| e.context("From"))?;
    let domain = id_domain(
        args.message_id_domain.as_deref(),
        cfg_domain.as_deref(),
        &from,
    )?;
    let stamp = Stamp {
        date: stamp::date_now(),
        message_id: stamp::message_id(&domain),
    };
    let head = compose::header_block(&d, &from, &stamp)?;
    let attachments = d
        .attach
        .iter()
        .map(|a| compose::attachment(a, args.inline))
        .collect::<Result<Vec<Content>>>()?;
    let html = match &args.html {
        Some(p) => Some(compose::text(
            &mut crate::message::buffer::open(p)?,
            &p.display().to_string(),
            "html",
        )?),
        None => None,
    };
    let text = compose::text(body, "body", "plain")?;
    let mut msg = compose::structure(text, html, attachments);
    write_out(args.output.as_deref(), |w| {
        w.write_all(head.as_bytes()).map_err(mime::write_error)?;
        mime::write(&mut msg, args.eight_bit, w)
    })
}

/// Run `body` on standard output or on a new FILE; a FILE left half written is removed.
fn write_out(path: Option<&Path>, body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    // `-o -` is standard output, as `-` is standard input everywhere else; not a file
    // called "-" in the current directory.
    let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        body(&mut out)?;
        return out.flush().map_err(mime::write_error);
    };
    let what = path.display().to_string();
    // Written under a temporary name beside FILE and linked into place only when whole and
    // on disk (fsync, link, fsync the directory), as Maildir delivery does: a run killed half
    // way (Ctrl-C, the OOM killer) must not leave half a message under the name that a later
    // `msubmit < FILE` sends. This early check reports an existing FILE before any work; the
    // link, which never replaces a file, is the one that counts.
    if std::fs::symlink_metadata(path).is_ok() {
        let exists = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        return Err(Error::io(Code::CantCreat, &what, exists));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".mcompose.")
        .tempfile_in(dir)
        .map_err(|e| Error::io(Code::CantCreat, &what, e))?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, tmp);
    // On any error the temporary file is dropped, and so removed.
    body(&mut out)?;
    let tmp = out
        .into_inner()
        .map_err(|e| Error::io(Code::IoErr, &what, e.into_error()))?;
    tmp.as_file().sync_all().or_code(Code::IoErr, &what)?;
    tmp.persist_noclobber(path)
        .map_err(|e| Error::io(Code::CantCreat, &what, e.error))?;
    crate::store::maildir::sync_dir(dir).or_code(Code::IoErr, &what)
}

/// mcompose's documentation.
pub fn page() -> Page {
    Page {
        name: "mcompose",
        command: Args::command(),
        description: DESCRIPTION,
        sections: SECTIONS,
    }
}

const DESCRIPTION: &str = r#"
.PP
The output is one message with LF line ends (the Unix convention, as Maildir stores it;
.BR msubmit (1)
converts to CRLF for SMTP), ready to pipe into
.B msubmit \-t
or
.BR mdeliver (1).
Nothing is written until every address was checked, every input file opened and every text
read, so a failure never leaves half a message behind.
.PP
.B Header fields.
.BR Date:
(RFC 5322 \(sc3.3, local time and offset),
.BR From: ,
.BR Reply\-To: ,
.BR To: ,
.BR Cc: ,
.BR Bcc: ,
.BR Subject: ,
.BR Message\-ID: ,
.BR In\-Reply\-To: ,
.BR References: ,
the
.B \-H
fields, then
.BR "MIME\-Version: 1.0" .
.B Bcc:
is kept, so that
.B msubmit \-t
can send to it and remove it.
The Message-ID's right-hand side is
.BR \-\-message\-id\-domain ,
else the configured
.BR domain ,
else the author's domain; a domain without a dot is never used bare (the host's
fully qualified name, else
.IR name .invalid,
takes its place).
.PP
.B Addresses.
Every option taking addresses takes an RFC 5322 address list, such as
.PP
.nf
.RS
\(dqDoe, Jane\(dq <jane@example.org>, bob@example.org, team: a@example.org, b@example.org;
.RE
.fi
.PP
Display names are written as atoms, a quoted string, or RFC 2047 encoded-words as needed;
internationalized addresses (RFC 6532) are accepted and written as UTF-8.
An invalid address (no @, an empty or malformed domain, a local part over 64 octets,
unbalanced quotes or brackets) exits 65 naming it.
Recipients without a domain are not completed: give full addresses.
.PP
.B Encoding.
Header text that is not printable ASCII becomes RFC 2047 encoded-words (UTF-8, Q or B,
whichever is shorter); header lines are folded at 78 characters and never exceed 998.
A CR, LF or NUL in the value of an option that becomes header text (addresses, subject,
message-ids,
.BR \-H ,
.BR \-a )
is refused (exit 64), and file names are written as RFC 2231 parameters, so no option can
start a header field of its own.
.PP
.B Body.
The body is read from standard input (or
.BR \-\-body ),
must be UTF-8, and may have LF or CRLF line ends. ASCII text with lines of at most 998
octets is sent as 7bit; other text as quoted-printable, or as 8bit with
.BR \-\-8bit ;
lines over 998 octets, bare CRs and NULs are always quoted-printable. A 7bit or 8bit body
gets a final line end if it lacks one.
.B Content\-Type: text/plain; charset=utf\-8
is always present.
Standard input is not read with
.BR \-\-draft " or " \-\-edit ;
after
.BR "\-\-reply \-" ,
which reads the original from it, the new text must come from
.BR \-\-body " or " \-\-edit .
.PP
.B Attachments.
Each
.B \-a
adds a part in base64, read as it is written, so memory use stays flat for files of any
size; a pipe
.RB ( "\-a <(gzip \-c log)" )
is copied to an unlinked temporary file first, so that it too is read before anything is
written. The media type comes from the file name and its first bytes (a PDF named
.I report
is application/pdf; a .txt file that holds binary is not text), or is given after a colon:
.BR "\-a scan.raw:image/x\-raw" .
File names are written as RFC 2231 parameters when they are not short ASCII.
.B :message/rfc822
attaches a file as a message.
.B \-\-html
makes the text and the HTML file the two parts of a multipart/alternative.
.PP
.B Replies and forwards.
.B \-\-reply MSGFILE
addresses the message to the original's Reply-To: (else From:), adds
.B Re:
to its subject unless there is one (Re:, AW:, SV:, Re[2]: count),
sets In-Reply-To: and References: (RFC 5322 \(sc3.6.4), and starts the body with an
attribution line and the original's text quoted with "> ", followed by the new text.
The original's address fields are read as mutt reads them: two mailboxes without a comma
between them are both taken, and what does not parse is skipped. An original with no usable
Reply-To: or From: (a cron mail) is answered to the recipients given with
.BR \-t ;
without them it is refused (exit 65).
.B \-\-all
puts the original's other To: and Cc: recipients in Cc:, without the author's own address
and without duplicates.
.B \-\-forward MSGFILE
adds
.B Fwd:
to the subject and attaches the original as message/rfc822: as 7bit, or as 8bit when it
holds 8-bit bytes (RFC 2046 \(sc5.2.1 allows no other encoding there, so
.B \-\-8bit
does not matter). Its line ends become LF like every line end mcompose writes, and a stray
bare CR (saved mail sometimes ends in one) becomes a line end too, as RFC 5321
\(sc2.3.8 has a CR travel only as a line terminator and as mail readers already show it;
CRs right before a line end are part of it. An original that cannot travel as 7bit or 8bit,
because it holds a NUL or a line over 998 octets, is attached instead as
application/octet-stream in base64, byte for byte as saved, with its file name ending in
.BR .eml ,
so that the recipient's mail program can still open it as a message.
The same holds for
.BR "\-a FILE:message/rfc822" .
Options given beside them win: an explicit
.B \-s
replaces the derived subject, and
.BR \-t / \-c
add recipients.
.PP
.B Drafts.
A draft is a text file of header lines, an empty line, and the body, as
.B mutt \-H
and mblaze's
.B mcom
use: From:, To:, Cc:, Bcc:, Reply-To:, Subject:, In-Reply-To:, References: and other
fields, written plainly in UTF-8, and
.B Attach: PATH[:TYPE]
lines for attachments. Date:, Message-ID: and the MIME fields of a draft are ignored and
made anew. A line before the empty line that is not a header field is refused (exit 65),
so body text typed without the empty line is never lost. Options given with
.B \-\-draft
replace its single fields and add to its recipients and attachments.
.PP
.B \-\-edit
writes the draft (from the options, the reply quote and
.BR \-\-body )
to a new file in $TMPDIR and runs
.B $VISUAL
(else
.BR $EDITOR ,
else vi) on it, as
.B sh \-c '$EDITOR \(dq$1\(dq' sh FILE
does: the editor setting may hold arguments, the file name is never part of the command
text. The editor gets /dev/tty, not the standard output. The message is built when the
editor exits 0; the draft is removed once the message was written whole (standard output
flushed without error, or the
.B \-o
file on disk), and kept, its path printed, when anything fails: the editor, a bad address, a
write error, a broken pipe (exit 74). Emptying the draft in the editor cancels: nothing is written, and the exit
status is 65. In
.BR "mcompose \-\-edit | msubmit \-t" ,
the draft is gone once the pipe took the whole message; when sending then fails, msubmit
appends the message to
.I ~/dead.letter
and says so (see
.BR msubmit (1)).
With
.BR \-\-draft ,
that file is edited in place and never removed.
"#;

const SECTIONS: &str = r#"
.SH EXIT STATUS
.TP
.B 0
The message was written.
.TP
.B 64
Usage error: an unknown or conflicting option, a line break in an option value, a
.B \-H
field that is not NAME: VALUE or names a field mcompose writes itself.
.TP
.B 65
Bad data: an invalid address (named in the message), an invalid message-id, a body or
HTML file that is not UTF-8.
.TP
.B 66
An input file (body, attachment, HTML, draft, message replied to or forwarded) does not
exist or cannot be opened.
.TP
.B 69
The editor failed or was aborted; the draft is kept.
.TP
.B 73
The
.B \-o
file exists or cannot be created.
.TP
.B 74
Reading an input or writing the message failed.
.TP
.B 78
The configuration file is broken (a key no tool reads, or a bad value: the diagnostic names
its file:line) or the account is not defined.
.SH ENVIRONMENT
.TP
.B EMAIL
The author when neither
.B \-f
nor the configuration says: an address, or a name and an address.
.TP
.BR USER ", " LOGNAME
The login name for the last-resort author, login@host.
.TP
.BR VISUAL ", " EDITOR
The editor for
.BR \-\-edit .
.TP
.B TMPDIR
Where
.B \-\-edit
creates its draft (default /tmp).
.TP
.B MAILPIPE_CONFIG
A configuration file to read instead of the default ones.
.SH FILES
.TP
.I ~/.config/mailpipe/config
User configuration; mcompose reads the keys
.B from
(the default author) and
.B domain
(the Message-ID domain) of the chosen account; see
.BR mailpipe (7).
.TP
.I /etc/mailpipe/config
System configuration, read before the user's.
.TP
.I $TMPDIR/mcompose\-draft.*.eml
The draft of
.BR \-\-edit ,
kept when the message was not written whole.
.TP
.I ~/dead.letter
Not written by mcompose: where msubmit saves a message it could neither send nor queue,
so the text of an edited draft survives a failed
.BR "mcompose \-\-edit | msubmit \-t" .
.SH EXAMPLES
Send a short note:
.PP
.nf
.RS
mcompose \-t bob@example.org \-s hi < body.txt | msubmit \-t
.RE
.fi
.PP
A report with attachments, to two people and a blind copy:
.PP
.nf
.RS
mcompose \-t 'Ann <ann@example.org>, bob@example.org' \-b archive@example.org \e
    \-s 'Q3 report' \-a q3.pdf \-a data.csv:text/csv < note.txt | msubmit \-t
.RE
.fi
.PP
Reply to all from a Maildir message, writing the answer in the editor:
.PP
.nf
.RS
mcompose \-\-reply ~/Maildir/cur/1700000000.x:2,S \-\-all \-\-edit | msubmit \-t
.RE
.fi
.PP
Forward a message, and keep a copy in the Sent folder:
.PP
.nf
.RS
mcompose \-t carol@example.org \-\-forward msg.eml \-o out.eml < fyi.txt
msubmit \-t < out.eml && /usr/local/bin/mdeliver \-\-folder Sent < out.eml
.RE
.fi
.PP
Deliver a composed message locally:
.PP
.nf
.RS
echo hello | mcompose \-t me@localhost \-s test | /usr/local/bin/mdeliver ~/Maildir
.RE
.fi
.SH SEE ALSO
.BR msubmit (1),
.BR mdeliver (1),
.BR mailpipe (7),
.BR mutt (1),
.BR mblaze (7)
.PP
RFC 5322 (message format), RFC 2045\(en2047 and 2231 (MIME), RFC 6532 (UTF-8 headers).
"#;
