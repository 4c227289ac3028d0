//! Delivery status notifications (bounces): the report a mail system sends back when it
//! could not deliver a message, is still trying, or delivered it and was asked to say so.
//!
//! The report is an RFC 6522 `multipart/report; report-type=delivery-status` of three parts:
//! a text for people, the RFC 3464 `message/delivery-status` for programs (per message:
//! Reporting-MTA, Original-Envelope-Id, Arrival-Date; per recipient: Original-Recipient,
//! Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
//! Will-Retry-Until), and the original: whole as `message/rfc822`, or its header as
//! `text/rfc822-headers` (RET=HDRS, RFC 3461 §4.3; or when it is too large, or cannot travel
//! unchanged). It comes from `<>` (RFC 5321 §4.5.5) and says `Auto-Submitted: auto-replied`
//! (RFC 3834 §5), so no well-behaved system answers it.
//!
//! Two halves:
//! - the policy: whether anybody gets a report ([`notice`]: the sender; the postmaster
//!   once for a message from `<>`, a "double bounce"; nobody when that report fails in
//!   turn, so reports never loop) and for which recipients ([`wanted`]: their NOTIFY,
//!   RFC 3461 §4.1). [`select`] applies both.
//! - the writer ([`write`]): reads the original once from any reader (the queue's file),
//!   into a [`Buffer`] that spills to an unlinked file past 1 MiB and never holds more than
//!   [`MAX_ORIGINAL`], and writes the report, LF line ends, to any writer. It returns the
//!   report's envelope (from `<>` to the sender or the postmaster, 8BITMIME when the report
//!   is 8-bit) for the caller to queue it like any other message.
//!
//! Pure: no queue, no network, no clock but the report's Date:. The relay decides when to
//! report (a failure when it gives up; a delay once) and what each recipient's outcome was.
//!
//! The original is never base64-encoded: RFC 2046 §5.2.1 allows only 7bit, 8bit or binary
//! for message/rfc822 (mime.rs's [`mime::message_part`] says why, and what readers do).
//! Its line ends are repaired as [`MessageLineEnds`] repairs a forwarded message's; one that
//! still cannot be 7bit or 8bit (a NUL, a line over 998 octets) is returned as its header,
//! which as text may be quoted-printable, and the report says so. An 8-bit original makes
//! the report 8bit (RFC 6152); a message sent with SMTPUTF8 gets the RFC 6533 types
//! (`message/global-delivery-status`, `message/global`, `message/global-headers`) and
//! `utf-8` addresses, as Postfix does. A message without SMTPUTF8 whose header has raw 8-bit
//! octets stays `message/rfc822` (8bit): strictly RFC 6532 §3.7 wants `message/global` for
//! a UTF-8 header, which Postfix guesses from the bytes, but such a report would then need
//! SMTPUTF8 to travel to a sender who never asked for it.

use crate::envelope::{Body, Envelope, Recipient, xtext};
use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::message::mime::{self, MessageLineEnds, QpWriter};
use crate::message::{fold, stamp};
use std::io::{self, Read, Write};

/// An original larger than this is returned as its header only (Postfix's
/// `bounce_size_limit` is 50 KB; a report should reach a mailbox that took the original).
pub const MAX_ORIGINAL: u64 = 10 << 20;

/// The longest header returned; a longer one is cut at a line end (Postfix's
/// `header_size_limit`, 100 KiB).
pub const MAX_HEADER: u64 = 100 << 10;

/// The longest diagnostic text written: a reply as long as a line may be still leaves room
/// for the field name (RFC 5322 §2.1.1: 998).
const MAX_DIAGNOSTIC: usize = 900;

/// What became of one recipient (RFC 3464 §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Refused for good, or given up on.
    Failed,
    /// Not yet delivered; still being tried.
    Delayed,
    /// Delivered to the mailbox.
    Delivered,
    /// Handed to a system that sends no reports of its own.
    Relayed,
    /// Delivered and passed on to the addresses it stands for (an alias, a list).
    Expanded,
}

impl Action {
    /// The Action field's value.
    pub fn name(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }

    /// The NOTIFY keyword that asks for a report of this action (RFC 3461 §4.1; relayed
    /// and expanded are kinds of success, §6.2.2).
    fn keyword(self) -> &'static str {
        match self {
            Action::Failed => "FAILURE",
            Action::Delayed => "DELAY",
            Action::Delivered | Action::Relayed | Action::Expanded => "SUCCESS",
        }
    }

    /// The status class that goes with it when none is known (RFC 3463 §3.1).
    fn class(self) -> char {
        match self {
            Action::Failed => '5',
            Action::Delayed => '4',
            _ => '2',
        }
    }
}

/// Why a recipient's delivery ended as it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diagnostic {
    /// A server's SMTP reply, code first: `550 5.1.1 no such user` (type `smtp`).
    Smtp(String),
    /// What this system found itself: a DNS answer, a timeout, a loop (type `X-mailpipe`).
    Local(String),
}

/// The outcome for one recipient, to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptReport {
    /// The recipient as the original's envelope had it: Final-Recipient, and its ORCPT the
    /// Original-Recipient; its NOTIFY decides whether it is reported.
    pub rcpt: Recipient,
    /// What became of it.
    pub action: Action,
    /// The status code `class.subject.detail` (RFC 3463).
    pub status: String,
    /// The server that answered, for Remote-MTA.
    pub remote_mta: Option<String>,
    /// Why.
    pub diagnostic: Option<Diagnostic>,
    /// The last attempt (seconds since the epoch).
    pub last_attempt: Option<u64>,
    /// For a delay: the time after which the system gives up (Will-Retry-Until).
    pub will_retry_until: Option<u64>,
}

impl RcptReport {
    /// A report for `rcpt` with `action`, its status the class's generic one (5.0.0, 4.0.0,
    /// 2.0.0) until a reply says more.
    pub fn new(rcpt: Recipient, action: Action) -> RcptReport {
        RcptReport {
            rcpt,
            status: format!("{}.0.0", action.class()),
            action,
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
        }
    }

    /// The same report with the reply `server` gave: the diagnostic, and the status the
    /// reply carries (its enhanced code, RFC 2034, else its class).
    pub fn with_reply(mut self, server: Option<&str>, reply: &str) -> RcptReport {
        if let Some(s) = status_of(reply) {
            self.status = s;
        }
        self.remote_mta = server.map(str::to_string);
        self.diagnostic = Some(Diagnostic::Smtp(reply.to_string()));
        self
    }

    /// The status to write: the one given when it is a status code, else the generic one
    /// of the action's class.
    fn status(&self) -> String {
        if is_status(&self.status) {
            self.status.clone()
        } else {
            format!("{}.0.0", self.action.class())
        }
    }
}

/// The status code an SMTP reply carries: its enhanced status code when it has one of its
/// own class (RFC 2034 §4: `550 5.1.1 ...`), else the class of its reply code (`550` →
/// `5.0.0`). `None` when `reply` does not start with a 2, 4 or 5 reply code.
pub fn status_of(reply: &str) -> Option<String> {
    let b = reply.trim_start().as_bytes();
    let class = *b.first()?;
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !b"245".contains(&class) {
        return None;
    }
    let rest = std::str::from_utf8(&b[3..]).ok()?;
    let rest = rest.strip_prefix([' ', '-']).unwrap_or(rest);
    let code = rest.split_whitespace().next().unwrap_or("");
    if is_status(code) && code.as_bytes()[0] == class {
        Some(code.to_string())
    } else {
        Some(format!("{}.0.0", class as char))
    }
}

/// RFC 3463 §2: `class "." subject "." detail`, class 2, 4 or 5, subject and detail of one
/// to three digits.
fn is_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let digits = |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3 && matches!(parts[0], "2" | "4" | "5") && digits(parts[1]) && digits(parts[2])
}

/// Who gets a report about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Nobody.
    None,
    /// The envelope sender.
    ToSender,
    /// The postmaster: the message came from `<>` (a report itself, or another automatic
    /// message), so its sender cannot be told (RFC 5321 §4.5.5, §6.1).
    ToPostmaster,
}

/// Who gets a report about `original`: its sender; for a message from `<>` the postmaster
/// (a "double bounce", sent once, for failures only, see [`wanted`]); nobody when the
/// message is from `<>` to the postmaster alone, as this system's own double-bounce report
/// is, so a report about a report about a report is never made.
pub fn notice(original: &Envelope, postmaster: &str) -> Notice {
    if !original.from.is_empty() {
        Notice::ToSender
    } else if !original.rcpts.is_empty()
        && original
            .rcpts
            .iter()
            .all(|r| r.addr.eq_ignore_ascii_case(postmaster))
    {
        Notice::None
    } else {
        Notice::ToPostmaster
    }
}

/// True when a report of `action` for `rcpt` goes to whom `notice` names (RFC 3461 §4.1).
/// To the sender: as the recipient's NOTIFY asks: NEVER is never; a list names FAILURE,
/// DELAY or SUCCESS (relayed and expanded count as success); without NOTIFY, failures, and
/// delays when `delay_notices` (the "NOTIFY=FAILURE or NOTIFY=FAILURE,DELAY" choice §4.1
/// leaves to the system). To the postmaster: failures only, NOTIFY=NEVER still honoured.
pub fn wanted(rcpt: &Recipient, action: Action, notice: Notice, delay_notices: bool) -> bool {
    let words: Option<Vec<String>> = rcpt.notify.as_deref().map(|n| {
        n.split(',')
            .map(|w| w.trim().to_ascii_uppercase())
            .collect()
    });
    let never = words
        .as_ref()
        .is_some_and(|w| w.iter().any(|w| w == "NEVER"));
    match notice {
        Notice::None => false,
        Notice::ToPostmaster => action == Action::Failed && !never,
        Notice::ToSender => match &words {
            _ if never => false,
            Some(w) => w.iter().any(|w| w == action.keyword()),
            None => match action {
                Action::Failed => true,
                Action::Delayed => delay_notices,
                _ => false,
            },
        },
    }
}

/// Who gets a report about `original` and on which of `reports`: [`notice`], then the
/// reports [`wanted`] keeps; [`Notice::None`] with nothing when none is left.
pub fn select(
    original: &Envelope,
    reports: Vec<RcptReport>,
    postmaster: &str,
    delay_notices: bool,
) -> (Notice, Vec<RcptReport>) {
    let n = notice(original, postmaster);
    let kept: Vec<RcptReport> = reports
        .into_iter()
        .filter(|r| wanted(&r.rcpt, r.action, n, delay_notices))
        .collect();
    if kept.is_empty() {
        (Notice::None, kept)
    } else {
        (n, kept)
    }
}

/// One report to write.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    /// This host's name: Reporting-MTA, the domain of From: and of the Message-ID.
    pub host: String,
    /// The original message's envelope.
    pub original: &'a Envelope,
    /// When the original arrived (seconds since the epoch): Arrival-Date.
    pub arrival: u64,
    /// The queue's id of the original, given as X-Mailpipe-Queue-ID when known.
    pub queue_id: Option<String>,
    /// Who gets the report (never [`Notice::None`]).
    pub notice: Notice,
    /// The postmaster's address: the recipient of [`Notice::ToPostmaster`] reports.
    pub postmaster: String,
    /// The recipients reported on, in order.
    pub rcpts: &'a [RcptReport],
    /// An original larger than this is returned as its header.
    pub max_original: u64,
}

impl<'a> Report<'a> {
    /// A report to the sender of `original` about `rcpts`, from `host`, with the
    /// postmaster at `postmaster@host` and the defaults.
    pub fn new(
        host: &str,
        original: &'a Envelope,
        arrival: u64,
        rcpts: &'a [RcptReport],
    ) -> Report<'a> {
        Report {
            host: host.to_string(),
            original,
            arrival,
            queue_id: None,
            notice: Notice::ToSender,
            postmaster: format!("postmaster@{host}"),
            rcpts,
            max_original: MAX_ORIGINAL,
        }
    }

    /// The worst action reported: a failure report, a delay report or a success report.
    fn kind(&self) -> Action {
        let has = |a: Action| self.rcpts.iter().any(|r| r.action == a);
        if has(Action::Failed) {
            Action::Failed
        } else if has(Action::Delayed) {
            Action::Delayed
        } else {
            Action::Delivered
        }
    }

    /// True when the whole original is asked for: RET=FULL, or no RET on a failure report
    /// (RFC 3461 §4.3 leaves the default to us; a delay or success report, whose sender
    /// still has or will get the message, carries the header as Postfix's do). The
    /// postmaster gets headers only: the message is someone else's mail.
    fn wants_full(&self) -> bool {
        if self.notice == Notice::ToPostmaster {
            return false;
        }
        match self.original.ret.as_deref() {
            Some(r) if r.eq_ignore_ascii_case("HDRS") => false,
            Some(r) if r.eq_ignore_ascii_case("FULL") => true,
            _ => self.kind() == Action::Failed,
        }
    }

    /// The report's recipient.
    fn to(&self) -> &str {
        match self.notice {
            Notice::ToPostmaster => &self.postmaster,
            _ => &self.original.from,
        }
    }
}

/// What of the original a report carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    /// The whole message (message/rfc822).
    Message,
    /// Its header, as asked (RET=HDRS, or a delay or success report).
    Headers,
    /// Its header: the message is larger than [`Report::max_original`].
    HeadersTooLarge,
    /// Its header: the message holds a NUL or a line over 998 octets, which a
    /// message/rfc822 part cannot carry unchanged (RFC 2045 §2.8, RFC 2046 §5.2.1).
    HeadersUnfit,
    /// Its header: the report goes to the postmaster.
    HeadersForPostmaster,
}

/// What [`write`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The report's envelope: from `<>` to the sender (or the postmaster), 8BITMIME when the
    /// report is 8-bit, SMTPUTF8 when the original had it, its size.
    pub envelope: Envelope,
    /// What of the original it carries.
    pub returned: Returned,
    /// The original's header was longer than [`MAX_HEADER`] and was cut at a line end.
    pub header_cut: bool,
}

/// Write the report `report` about the message read from `original` to `out`, LF line
/// ends. Reads at most [`Report::max_original`] (and at least [`MAX_HEADER`]) bytes of the
/// original, in bounded memory. Errors are temporary ([`Code::TempFail`]): the caller keeps
/// the original and tries again.
pub fn write(report: &Report, original: &mut dyn Read, out: &mut dyn Write) -> Result<Written> {
    write_with(report, original, out, &mut mime::boundary)
}

/// [`write`] with the boundaries from `boundary` (a test makes one collide).
fn write_with(
    report: &Report,
    original: &mut dyn Read,
    out: &mut dyn Write,
    next_boundary: &mut dyn FnMut() -> String,
) -> Result<Written> {
    if report.notice == Notice::None || report.rcpts.is_empty() {
        return Err(Error::new(
            Code::Software,
            "delivery report",
            "nobody to send it to or nothing to report",
        ));
    }
    let global = report.original.smtputf8 || report.original.needs_smtputf8();
    let mut boundary = next_boundary();
    let full = report.wants_full();
    let limit = if full {
        report.max_original.saturating_add(1)
    } else {
        0
    }
    .max(MAX_HEADER + 1);
    let (mut spool, scan) = spool(original, limit, &boundary)?;
    let mut collides = scan.collides;
    while collides {
        // A line of the original starts like our delimiter (RFC 2046 §5.1.1 forbids it):
        // take another.
        boundary = next_boundary();
        let mut again = Scan::new(io::sink(), &boundary);
        copy_spool(&mut spool, &mut again)?;
        collides = again.collides;
    }
    let returned = if report.notice == Notice::ToPostmaster {
        Returned::HeadersForPostmaster
    } else if !full {
        Returned::Headers
    } else if scan.len > report.max_original {
        Returned::HeadersTooLarge
    } else if scan.nul || scan.longest() > fold::HARD_LIMIT as u64 {
        Returned::HeadersUnfit
    } else {
        Returned::Message
    };
    let header_cut = scan.header_len > MAX_HEADER;

    let text = human_text(report, returned, header_cut, global);
    let status = delivery_status(report, global);
    let (orig_type, orig_cte, orig_len) = if returned == Returned::Message {
        let t = if global {
            "message/global"
        } else {
            "message/rfc822"
        };
        let cte = if scan.ascii {
            mime::Cte::SevenBit
        } else {
            mime::Cte::EightBit
        };
        (t, cte, scan.len)
    } else {
        let t = if global {
            "message/global-headers"
        } else {
            "text/rfc822-headers"
        };
        // A header with a NUL or an overlong line is text still: quoted-printable carries
        // it (RFC 2045 §6.7); message/global-headers may be encoded too (RFC 6533 §6.3).
        let cte = if scan.header_nul || scan.header_longest() > fold::HARD_LIMIT as u64 {
            mime::Cte::QuotedPrintable
        } else if scan.header_ascii {
            mime::Cte::SevenBit
        } else {
            mime::Cte::EightBit
        };
        (t, cte, scan.header_part_len())
    };
    let eight_bit = !text.is_ascii() || !status.is_ascii() || orig_cte == mime::Cte::EightBit;

    let mut w = Counting { inner: out, n: 0 };
    let head = report_header(report, &boundary, eight_bit, global);
    put(&mut w, head.as_bytes())?;
    let part_cte = |s: &str| if s.is_ascii() { "7bit" } else { "8bit" };
    let text_part = format!(
        "\n--{boundary}\nContent-Description: Notification\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: {}\n\n{text}",
        part_cte(&text)
    );
    put(&mut w, text_part.as_bytes())?;
    let ds_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    let status_part = format!(
        "\n--{boundary}\nContent-Description: Delivery report\n\
         Content-Type: {ds_type}\nContent-Transfer-Encoding: {}\n\n{status}",
        part_cte(&status)
    );
    put(&mut w, status_part.as_bytes())?;
    let description = match report.kind() {
        Action::Failed => "Undelivered Message",
        Action::Delayed => "Delayed Message",
        _ => "Delivered Message",
    };
    let headers = if returned == Returned::Message {
        ""
    } else {
        " Headers"
    };
    let orig_head = format!(
        "\n--{boundary}\nContent-Description: {description}{headers}\n\
         Content-Type: {orig_type}\nContent-Transfer-Encoding: {}\n\n",
        orig_cte.name()
    );
    put(&mut w, orig_head.as_bytes())?;
    let mut r = spool
        .reader()
        .map_err(|e| Error::io(Code::TempFail, "read spooled message", e))?;
    let mut r = (&mut r).take(orig_len);
    if orig_cte == mime::Cte::QuotedPrintable {
        let mut qp = QpWriter::new(&mut w);
        io::copy(&mut r, &mut qp).map_err(write_error)?;
        qp.finish().map_err(write_error)?;
    } else {
        io::copy(&mut r, &mut w).map_err(write_error)?;
    }
    // The line end before the delimiter belongs to it (RFC 2046 §5.1.1): what was
    // copied is the part's content byte for byte, with or without its own last line end.
    put(&mut w, format!("\n--{boundary}--\n").as_bytes())?;
    w.inner.flush().map_err(write_error)?;

    let mut to = Recipient::new(report.to());
    to.notify = None;
    let envelope = Envelope {
        from: String::new(),
        rcpts: vec![to],
        body: Body::of(eight_bit),
        smtputf8: global || !report.to().is_ascii(),
        ret: None,
        envid: None,
        size: Some(w.n),
        // RFC 8689 §5: a report about a REQUIRETLS message is not itself sent REQUIRETLS.
        requiretls: false,
    };
    Ok(Written {
        envelope,
        returned,
        header_cut,
    })
}

fn write_error(e: io::Error) -> Error {
    Error::io(Code::TempFail, "write delivery report", e)
}

fn put(w: &mut dyn Write, b: &[u8]) -> Result<()> {
    w.write_all(b).map_err(write_error)
}

/// A writer that counts what passes: the report's size for SIZE= (RFC 1870).
struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Read up to `limit` bytes (or a little more) of the original, line ends repaired, into
/// a spool, scanning as it goes.
fn spool(original: &mut dyn Read, limit: u64, boundary: &str) -> Result<(Buffer, Scan<Buffer>)> {
    let read_error = |e| Error::io(Code::TempFail, "read the original message", e);
    let mut lf = MessageLineEnds::new(Scan::new(Buffer::new(), boundary));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match original.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        lf.write_all(&buf[..n]).map_err(spool_error)?;
        if lf.get_ref().len > limit {
            break;
        }
    }
    let mut scan = lf.finish().map_err(spool_error)?;
    let spool = std::mem::take(&mut scan.inner);
    Ok((spool, scan))
}

fn spool_error(e: io::Error) -> Error {
    Error::io(Code::TempFail, "spool the original message", e)
}

fn copy_spool(spool: &mut Buffer, to: &mut dyn Write) -> Result<()> {
    let mut r = spool.reader().map_err(spool_error)?;
    io::copy(&mut r, to).map_err(spool_error)?;
    Ok(())
}

/// What a pass over the original (LF line ends) found.
struct Scan<W: Write> {
    inner: W,
    /// Bytes seen.
    len: u64,
    ascii: bool,
    nul: bool,
    longest: u64,
    /// Length of the current line so far.
    line: u64,
    /// Still in the header block (no empty line yet).
    in_header: bool,
    /// Bytes of the header block: its fields with their line ends, without the empty line.
    header_len: u64,
    /// The longest prefix of the header block ending at a line end within [`MAX_HEADER`].
    header_cut: u64,
    header_ascii: bool,
    header_nul: bool,
    header_longest: u64,
    /// `--` and the boundary: no line may start with it.
    delimiter: Vec<u8>,
    /// How much of the delimiter the current line matched so far; `None` once it differs.
    matched: Option<usize>,
    collides: bool,
}

impl<W: Write> Scan<W> {
    fn new(inner: W, boundary: &str) -> Self {
        Scan {
            inner,
            len: 0,
            ascii: true,
            nul: false,
            longest: 0,
            line: 0,
            in_header: true,
            header_len: 0,
            header_cut: 0,
            header_ascii: true,
            header_nul: false,
            header_longest: 0,
            delimiter: format!("--{boundary}").into_bytes(),
            matched: Some(0),
            collides: false,
        }
    }

    fn byte(&mut self, b: u8) {
        if self.in_header {
            if b == b'\n' && self.line == 0 {
                // RFC 5322 §2.1: the empty line ends the header.
                self.in_header = false;
            } else {
                self.header_len += 1;
                self.header_ascii &= b.is_ascii();
                self.header_nul |= b == 0;
                if b == b'\n' {
                    self.header_longest = self.header_longest.max(self.line);
                    if self.header_len <= MAX_HEADER {
                        self.header_cut = self.header_len;
                    }
                }
            }
        }
        if let Some(k) = self.matched {
            self.matched = (self.delimiter.get(k) == Some(&b)).then_some(k + 1);
            self.collides |= self.matched == Some(self.delimiter.len());
        }
        if b == b'\n' {
            self.longest = self.longest.max(self.line);
            self.line = 0;
            self.matched = Some(0);
        } else {
            self.line += 1;
        }
        self.ascii &= b.is_ascii();
        self.nul |= b == 0;
        self.len += 1;
    }

    fn longest(&self) -> u64 {
        self.longest.max(self.line)
    }

    fn header_longest(&self) -> u64 {
        if self.in_header {
            self.header_longest.max(self.line)
        } else {
            self.header_longest
        }
    }

    /// How much of the original the header part copies.
    fn header_part_len(&self) -> u64 {
        if self.header_len <= MAX_HEADER {
            self.header_len
        } else {
            self.header_cut
        }
    }
}

impl<W: Write> Write for Scan<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(buf)?;
        for &b in buf {
            self.byte(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The report's own header fields and the multipart preamble.
fn report_header(report: &Report, boundary: &str, eight_bit: bool, global: bool) -> String {
    let subject = match (report.notice, report.kind()) {
        (Notice::ToPostmaster, _) => "Postmaster Copy: Undelivered Mail",
        (_, Action::Failed) => "Undelivered Mail Returned to Sender",
        (_, Action::Delayed) => "Delayed Mail (still being retried)",
        _ => "Successful Mail Delivery Report",
    };
    let host = clean(&report.host, false);
    let mut h = String::new();
    h.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\n"
    ));
    h.push_str(&format!("To: <{}>\n", clean(report.to(), global)));
    h.push_str(&format!("Subject: {subject}\n"));
    h.push_str(&format!("Date: {}\n", stamp::date_now()));
    h.push_str(&format!("Message-ID: {}\n", stamp::message_id(&host)));
    // RFC 3834 §5: a response made by a program; nobody should answer it automatically.
    h.push_str("Auto-Submitted: auto-replied\n");
    h.push_str("MIME-Version: 1.0\n");
    h.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\n boundary=\"{boundary}\"\n"
    ));
    if eight_bit {
        // RFC 2045 §6.4: a multipart's encoding is the widest of its parts'.
        h.push_str("Content-Transfer-Encoding: 8bit\n");
    }
    h.push_str("\nThis is a MIME-encapsulated message: a delivery status report.\n");
    h
}

/// `s` as one line of header or report text: control characters as spaces; outside
/// UTF-8 (`utf8` false) non-ASCII as `?`; at most [`MAX_DIAGNOSTIC`] characters.
fn clean(s: &str, utf8: bool) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if !c.is_ascii() && !utf8 => '?',
            c => c,
        })
        .collect();
    if out.chars().count() > MAX_DIAGNOSTIC {
        out = out.chars().take(MAX_DIAGNOSTIC).collect();
        out.push_str("...");
    }
    out.trim().to_string()
}

/// An address for Final-Recipient or Original-Recipient: `type; address` (RFC 3464
/// §2.3.1-2). ASCII addresses are `rfc822`; a UTF-8 one is `utf-8` (RFC 6533 §3), raw in
/// a global report, else as utf-8-addr-xtext.
fn address_field(kind: &str, addr: &str, global: bool) -> String {
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if printable(addr) {
        return format!("{kind}; {addr}");
    }
    if global && !addr.chars().any(|c| c.is_control() || c == ' ') {
        return format!("utf-8; {addr}");
    }
    // RFC 6533 §3: utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar), QCHAR being
    // printable ASCII but "+", "=" and "\".
    let mut x = String::new();
    for c in addr.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            x.push(c);
        } else {
            x.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }
    format!("utf-8; {x}")
}

/// The `message/delivery-status` content: the per-message block, then one block per
/// recipient (RFC 3464 §2.1), each ending in an empty line but the last.
fn delivery_status(report: &Report, global: bool) -> String {
    let mut s = String::new();
    // RFC 3464 §2.2.1: the ENVID as given, case and all; xtext where it is not text.
    if let Some(id) = &report.original.envid {
        let id = if id.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            id.clone()
        } else {
            xtext(id)
        };
        s.push_str(&format!("Original-Envelope-Id: {id}\n"));
    }
    s.push_str(&format!(
        "Reporting-MTA: dns; {}\n",
        clean(&report.host, false)
    ));
    s.push_str(&format!("Arrival-Date: {}\n", stamp::date(report.arrival)));
    // Extension fields come last (RFC 3464 §2.2), as Postfix's X-Postfix-Queue-ID.
    if let Some(id) = &report.queue_id {
        s.push_str(&format!("X-Mailpipe-Queue-ID: {}\n", clean(id, false)));
    }
    if !report.original.from.is_empty() {
        s.push_str(&format!(
            "X-Mailpipe-Sender: {}\n",
            address_field("rfc822", &report.original.from, global)
        ));
    }
    for r in report.rcpts {
        s.push('\n');
        if let Some(o) = &r.rcpt.orcpt {
            // RFC 3461 §4.2: ORCPT is `addr-type ";" xtext`, kept decoded in the envelope.
            let (kind, addr) = match o.split_once(';') {
                Some((k, a)) if fold::is_token(k.trim()) => (k.trim(), a.trim()),
                _ => ("rfc822", o.trim()),
            };
            s.push_str(&format!(
                "Original-Recipient: {}\n",
                address_field(kind, addr, global)
            ));
        }
        s.push_str(&format!(
            "Final-Recipient: {}\n",
            address_field("rfc822", &r.rcpt.addr, global)
        ));
        s.push_str(&format!("Action: {}\n", r.action.name()));
        s.push_str(&format!("Status: {}\n", r.status()));
        if let Some(m) = &r.remote_mta {
            s.push_str(&format!("Remote-MTA: dns; {}\n", clean(m, false)));
        }
        if let Some(d) = &r.diagnostic {
            let (kind, text) = match d {
                Diagnostic::Smtp(t) => ("smtp;", t),
                Diagnostic::Local(t) => ("X-mailpipe;", t),
            };
            let mut words = vec![kind.to_string()];
            words.extend(clean(text, global).split_whitespace().map(str::to_string));
            s.push_str(&fold::field("Diagnostic-Code", &words));
        }
        if let Some(t) = r.last_attempt {
            s.push_str(&format!("Last-Attempt-Date: {}\n", stamp::date(t)));
        }
        if let Some(t) = r.will_retry_until.filter(|_| r.action == Action::Delayed) {
            s.push_str(&format!("Will-Retry-Until: {}\n", stamp::date(t)));
        }
    }
    s
}

/// The part for people: what happened, what is attached, then each recipient.
fn human_text(report: &Report, returned: Returned, header_cut: bool, global: bool) -> String {
    let host = clean(&report.host, false);
    let mut s = format!("This is the mail system at host {host}.\n\n");
    let intro = match (report.notice, report.kind()) {
        (Notice::ToPostmaster, _) => {
            "A message from the null sender <> (a delivery report or another automatic \
             message) could not be delivered to the recipients below. Its sender cannot be \
             told, so this report comes to you, the postmaster."
                .to_string()
        }
        (_, Action::Failed) => {
            "I'm sorry to say that your message could not be delivered to one or more of \
             its recipients. The mail system has given up on them and will not try again. \
             Each address below says what became of it, and why."
                .to_string()
        }
        (_, Action::Delayed) => {
            let until = report
                .rcpts
                .iter()
                .filter_map(|r| r.will_retry_until)
                .max()
                .map(|t| format!(" until {}", stamp::date(t)))
                .unwrap_or_default();
            format!(
                "Your message has not yet reached the recipients listed below. The mail \
                 system keeps trying{until}; you need not send it again. If it gives up, \
                 you will get another report."
            )
        }
        _ => "Your message reached the recipients listed below; you asked to be told.".to_string(),
    };
    s.push_str(&wrap(&intro, "", ""));
    s.push('\n');
    let attached = match returned {
        Returned::Message => "The message is attached below, as it was sent.",
        Returned::Headers | Returned::HeadersForPostmaster => {
            "The header of the message is attached below."
        }
        Returned::HeadersTooLarge => {
            "Only the header of the message is attached below: the whole message is larger \
             than the limit for returning it."
        }
        Returned::HeadersUnfit => {
            "Only the header of the message is attached below: the message holds a NUL byte \
             or a line longer than 998 octets, which mail cannot carry unchanged."
        }
    };
    let mut attached = attached.to_string();
    if header_cut {
        attached.push_str(" The header is longer than 100 KiB and was cut short.");
    }
    s.push_str(&wrap(&attached, "", ""));
    s.push('\n');
    if report.notice == Notice::ToSender {
        s.push_str(&wrap(
            &format!(
                "If you need help, write to the postmaster <{}> and include this report.",
                clean(&report.postmaster, global)
            ),
            "",
            "",
        ));
        s.push('\n');
    }
    s.push_str("                   The mail system\n");
    for r in report.rcpts {
        s.push('\n');
        let what = match r.action {
            Action::Failed => "could not be delivered".to_string(),
            Action::Delayed => match r.will_retry_until {
                Some(t) => format!("not delivered yet; trying until {}", stamp::date(t)),
                None => "not delivered yet; still trying".to_string(),
            },
            Action::Delivered => "delivered".to_string(),
            Action::Relayed => {
                "handed on to a mail system that sends no delivery reports".to_string()
            }
            Action::Expanded => "delivered, and passed on to the addresses it stands for".into(),
        };
        s.push_str(&wrap(
            &format!("<{}> ({}): {what}", clean(&r.rcpt.addr, global), r.status()),
            "",
            "    ",
        ));
        let why = match (&r.diagnostic, &r.remote_mta) {
            (Some(Diagnostic::Smtp(t)), Some(m)) => {
                Some(format!("{} said: {}", clean(m, false), clean(t, global)))
            }
            (Some(Diagnostic::Smtp(t)), None) => {
                Some(format!("The server said: {}", clean(t, global)))
            }
            (Some(Diagnostic::Local(t)), _) => Some(clean(t, global)),
            (None, Some(m)) => Some(format!("Server: {}", clean(m, false))),
            (None, None) => None,
        };
        if let Some(why) = why {
            s.push_str(&wrap(&why, "    ", "    "));
        }
    }
    s
}

/// `text` as lines of at most 76 characters where words allow, the first after `first`,
/// the others after `rest`. A word is never split (it is at most [`MAX_DIAGNOSTIC`] long,
/// far within 998).
fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    let mut indent = first;
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > 76 {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
            indent = rest;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
