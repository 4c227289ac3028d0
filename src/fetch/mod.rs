//! The fetch engine: mail on a server's mailbox brought into a local Maildir (or an MDA),
//! mfetch's work, protocol-neutral so POP3 ([`crate::pop3::client`]) and IMAP plug into it
//! through one trait, [`Source`].
//!
//! Why a layer of its own beside `relay/`: the engine's promises (never twice, never lost)
//! are the same whatever protocol lists and reads the messages, so they are written once:
//!
//! 1. **List** the mailbox (ids and sizes); drop what the account's state has already seen.
//! 2. **Choose**: size and date rules, a filter on the headers (mpop's 0/1/2 contract).
//! 3. **Fetch** a batch, each message into the Maildir through the `deliver` pipeline with
//!    the sync of `new/` shared by the batch (one directory fsync), or to an MDA each.
//! 4. **Record** the batch in the state (durably), only after the batch is durable.
//! 5. **Delete** on the server (unless kept), only after both; then finish the session.

pub mod imap;
pub mod pop3;
pub mod state;

use crate::deliver::{Event as Delivered, Pipeline, command};
use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::store::maildir::{Batch, tagged};
use state::State;
use std::collections::HashSet;
use std::io::Read;
use std::time::Duration;

/// One message as a mailbox lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The session's handle for it: POP3's message number, IMAP's UID.
    pub number: u32,
    /// The stable identity kept in the state: POP3's UIDL, IMAP's UID in decimal.
    pub id: String,
    /// Its size in octets as the server says it (RFC 1939 LIST, IMAP RFC822.SIZE).
    pub size: u64,
}

/// A mailbox on a server as the engine sees it: POP3's maildrop or one IMAP folder.
pub trait Source {
    /// What numbers the ids: None for POP3 (UIDLs are the ids); IMAP's UIDVALIDITY.
    fn epoch(&self) -> Option<u32>;
    /// Every message now in the mailbox: a stable id (POP3 UIDL, IMAP UID) and its size.
    fn list(&mut self) -> Result<Vec<Listed>>;
    /// The header of each, pipelined where the server allows (TOP n 0 / BODY.PEEK[HEADER]).
    fn headers(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &[u8]) -> Result<()>,
    ) -> Result<()>;
    /// Each whole message, streamed to `each` in bounded memory (dot-unstuffed / literal read).
    fn fetch(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &mut dyn std::io::Read) -> Result<()>,
    ) -> Result<()>;
    /// Delete these on the server (DELE; IMAP \Deleted + UID EXPUNGE or MOVE).
    fn delete(&mut self, which: &[Listed]) -> Result<()>;
    /// End the session (QUIT commits POP3's deletions; LOGOUT).
    fn finish(self: Box<Self>) -> Result<()>;
    /// After the epoch changed from `old` (IMAP's UIDVALIDITY): the ids, of `listed`, of
    /// the messages already durable here under `old` (whose old ids `seen` knows), found
    /// again by what else identifies them (Message-ID and size). None for POP3.
    fn carried(
        &mut self,
        _listed: &[Listed],
        _old: u32,
        _seen: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Where fetched mail goes.
#[derive(Debug)]
pub enum Target {
    /// Into a Maildir through the delivery pipeline, a batch at a time, exactly once.
    Maildir(Pipeline),
    /// To a program per message (`--mda`): its words, `%F` and `%T` replaced by the sender
    /// and the recipient, each as one argument. At least once: the program cannot tell us
    /// what it did before it was killed.
    Mda {
        /// The command's words.
        argv: Vec<String>,
        /// What `%T` becomes: the account's user.
        recipient: String,
    },
}

/// What to fetch and how.
#[derive(Debug)]
pub struct Settings {
    /// Where it goes.
    pub target: Target,
    /// Leave fetched mail on the server.
    pub keep: bool,
    /// Only list the new messages' headers (one [`Event::Scanned`] each); fetch nothing.
    pub scan: bool,
    /// Ask this program about each new message, its header on standard input: exit 0
    /// fetch, 1 delete on the server unfetched, 2 leave it (mpop's contract).
    pub filter: Option<Vec<String>>,
    /// Leave messages larger than this on the server.
    pub max_size: Option<u64>,
    /// Leave messages whose `Date:` is before this (seconds since the epoch).
    pub since: Option<i64>,
    /// Messages per batch: one sync round, one state write, one round of deletions.
    pub batch: usize,
    /// How long a filter or MDA may take.
    pub time_limit: Duration,
}

/// What a run tells its caller as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A new message's line for `--scan`: date, from, subject, size.
    Scanned(&'a Listed, String),
    /// A message is durable here.
    Fetched(&'a Listed),
    /// A message was left on the server, and why.
    Left(&'a Listed, &'a str),
    /// A message failed (an MDA's refusal); it stays on the server.
    Failed(&'a Listed, &'a Error),
    /// A run that died mid-batch was recovered: so many of its messages had arrived.
    Recovered(usize),
    /// So many of so many new messages are done (for a progress bar).
    Progress(usize, usize),
    /// A note that fails nothing (a filter's odd answer).
    Warning(&'a Error),
}

/// What a run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// New messages on the server.
    pub new: usize,
    /// Fetched and durable here.
    pub fetched: usize,
    /// Deleted on the server.
    pub deleted: usize,
    /// Failed (an MDA's refusal other than 75): the caller's exit code should say so.
    pub failed: usize,
    /// Scanned (`--scan`).
    pub scanned: usize,
}

/// Run one mailbox: recover a crashed batch, list, choose, fetch in batches (each durable,
/// then recorded, then deleted), finish the session. Errors end the run; what was done
/// before them stays done and recorded.
pub fn run(
    mut source: Box<dyn Source>,
    state: &mut State,
    s: &Settings,
    report: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    let epoch = source.epoch();
    recover(state, s, epoch, report)?;
    let listed = source.list()?;
    let present: HashSet<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    // A new epoch (UIDVALIDITY, RFC 3501 §2.3.1.1): the recorded ids mean nothing now;
    // what was durable here is found again by the source, the rest is new.
    let changed = match (state.epoch(), epoch) {
        (Some(was), Some(now)) if was != now && !state.is_empty() => Some((was, now)),
        _ => None,
    };
    let carried: HashSet<String> = match changed {
        Some((was, now)) => {
            let c = source.carried(&listed, was, &|id| state.seen(id))?;
            report(Event::Warning(&Error::new(
                Code::TempFail,
                format!("{}: UIDVALIDITY", state.key()),
                format!(
                    "changed from {was} to {now}: {} of {} messages found here already by \
                     Message-ID and size, not fetched again",
                    c.len(),
                    listed.len()
                ),
            )));
            c.into_iter().collect()
        }
        None => HashSet::new(),
    };
    let (old, new): (Vec<&Listed>, Vec<&Listed>) = listed
        .iter()
        .partition(|m| (state.epoch() == epoch && state.seen(&m.id)) || carried.contains(&m.id));
    let mut out = Outcome {
        new: new.len(),
        ..Outcome::default()
    };
    if changed.is_some() {
        // The old ids are dropped whole: a new UID equal to an old one is another message.
        let none = HashSet::new();
        state.record(carried.iter().map(String::as_str), Some(&none), epoch)?;
    } else {
        // What is no longer on the server is forgotten now (the new ones come per batch).
        state.record(std::iter::empty(), Some(&present), epoch)?;
    }
    if s.scan {
        let new: Vec<Listed> = new.into_iter().cloned().collect();
        source.headers(&new, &mut |m, head| {
            report(Event::Scanned(m, scan_line(m, head)));
            Ok(())
        })?;
        out.scanned = new.len();
        source.finish()?;
        return Ok(out);
    }
    // Fetched in an earlier run, still there: deleted now, as they are durable here.
    let mut doomed: Vec<Listed> = Vec::new();
    if !s.keep {
        doomed.extend(old.iter().map(|m| (*m).clone()));
    }
    let mut wanted: Vec<Listed> = Vec::new();
    let mut asked: Vec<Listed> = Vec::new();
    for m in new {
        match s.max_size {
            Some(max) if m.size > max => report(Event::Left(m, "larger than --max-size")),
            _ if s.filter.is_some() || s.since.is_some() => asked.push(m.clone()),
            _ => wanted.push(m.clone()),
        }
    }
    if !asked.is_empty() {
        let mut unwanted = Vec::new();
        source.headers(&asked, &mut |m, head| {
            match choose(m, head, s, report)? {
                Choice::Fetch => wanted.push(m.clone()),
                Choice::Delete => unwanted.push(m.clone()),
                Choice::Leave => {}
            }
            Ok(())
        })?;
        // Deleted unfetched: recorded, so a --keep run does not ask about them again.
        if !unwanted.is_empty() {
            state.record(unwanted.iter().map(|m| m.id.as_str()), None, epoch)?;
            doomed.extend(unwanted);
        }
        wanted.sort_by_key(|m| m.number);
    }
    if !doomed.is_empty() {
        source.delete(&doomed)?;
        out.deleted += doomed.len();
    }
    let total = wanted.len();
    for chunk in wanted.chunks(s.batch.max(1)) {
        let got = batch(source.as_mut(), state, s, epoch, chunk, &mut out, report)?;
        if !s.keep && !got.is_empty() {
            source.delete(&got)?;
            out.deleted += got.len();
        }
        report(Event::Progress(out.fetched + out.failed, total));
    }
    source.finish()?;
    Ok(out)
}

/// One batch: the intent logged, each message fetched into the batch (or to the MDA), the
/// batch made durable, then recorded. Returns the messages durable here, which may now be
/// deleted. A fetch that breaks off mid-batch still commits and records what arrived
/// whole, then fails.
fn batch(
    source: &mut dyn Source,
    state: &mut State,
    s: &Settings,
    epoch: Option<u32>,
    chunk: &[Listed],
    out: &mut Outcome,
    report: &mut dyn FnMut(Event),
) -> Result<Vec<Listed>> {
    let mut got: Vec<Listed> = Vec::new();
    let key = state.key().to_string();
    let fetched = match &s.target {
        Target::Maildir(pipeline) => {
            state.intend(chunk.iter().map(|m| m.id.as_str()))?;
            let b = Batch::new();
            let r = source.fetch(chunk, &mut |m, r| {
                let mut msg = read(r, s.max_size)?;
                b.tag(Some(&state::tag(&key, epoch, &m.id)));
                pipeline.deliver_in(&mut msg, None, None, Some(&b), &mut |e| {
                    if let Delivered::Warning(w) = e {
                        report(Event::Warning(w));
                    }
                })?;
                got.push(m.clone());
                Ok(())
            });
            b.commit()?;
            r
        }
        Target::Mda { argv, recipient } => source.fetch(chunk, &mut |m, r| {
            let mut msg = read(r, s.max_size)?;
            let sender = envelope_sender(msg.head());
            let argv: Vec<String> = argv
                .iter()
                .map(|w| w.replace("%F", &sender).replace("%T", recipient))
                .collect();
            let vars = [
                ("SENDER", Some(sender.as_str())),
                ("RECIPIENT", Some(recipient.as_str())),
            ];
            match command::deliver(&argv, &vars, s.time_limit, &mut msg) {
                Ok(()) => got.push(m.clone()),
                // 75: left for the next run, unrecorded and undeleted.
                Err(e) if e.code() == Code::TempFail => report(Event::Left(m, e.why())),
                Err(e) => {
                    out.failed += 1;
                    report(Event::Failed(m, &e));
                }
            }
            Ok(())
        }),
    };
    state.record(got.iter().map(|m| m.id.as_str()), None, epoch)?;
    out.fetched += got.len();
    for m in &got {
        report(Event::Fetched(m));
    }
    fetched.map(|()| got)
}

/// A message from the server into a buffer, refused past `max`.
fn read(r: &mut dyn Read, max: Option<u64>) -> Result<Buffer> {
    Buffer::read_from(r, max)
}

/// After a run died between its mail and its state: the pending batch's messages found in
/// the Maildir by their tags are recorded as here, the others will be fetched again.
fn recover(
    state: &mut State,
    s: &Settings,
    epoch: Option<u32>,
    report: &mut dyn FnMut(Event),
) -> Result<()> {
    let pending = state.pending()?;
    if pending.is_empty() {
        return Ok(());
    }
    let Target::Maildir(p) = &s.target else {
        return state.record(std::iter::empty(), None, state.epoch());
    };
    let found = match tagged(&p.maildir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(e) => {
            return Err(Error::io(
                Code::TempFail,
                p.maildir.display().to_string(),
                e,
            ));
        }
    };
    let key = state.key().to_string();
    let arrived: Vec<&String> = pending
        .iter()
        // Tagged under the epoch the state had when the batch was written (a run records its
        // epoch before its first batch): after a new UIDVALIDITY the current one would find
        // none of them, and they would come again.
        .filter(|id| found.contains(&state::tag(&key, state.epoch().or(epoch), id)))
        .collect();
    report(Event::Recovered(arrived.len()));
    let keep_epoch = state.epoch().or(epoch);
    state.record(arrived.into_iter().map(String::as_str), None, keep_epoch)
}

enum Choice {
    Fetch,
    Delete,
    Leave,
}

/// The size, date and filter rules on a message's header.
fn choose(m: &Listed, head: &[u8], s: &Settings, report: &mut dyn FnMut(Event)) -> Result<Choice> {
    if let Some(since) = s.since {
        let date = field(head, "Date").and_then(|d| mailparse::dateparse(&d).ok());
        if date.is_some_and(|d| d < since) {
            report(Event::Left(m, "older than --since"));
            return Ok(Choice::Leave);
        }
    }
    let Some(argv) = &s.filter else {
        return Ok(Choice::Fetch);
    };
    let size = m.size.to_string();
    let vars = [
        ("MFETCH_SIZE", Some(size.as_str())),
        ("MFETCH_ID", Some(m.id.as_str())),
    ];
    let status = command::run_fed(argv, &vars, s.time_limit, |w| w.write_all(head))?;
    Ok(match status.code() {
        Some(0) => Choice::Fetch,
        Some(1) => Choice::Delete,
        Some(2) => {
            report(Event::Left(m, "the filter said leave it"));
            Choice::Leave
        }
        _ => {
            let e = Error::new(
                Code::TempFail,
                format!("filter {}", argv[0]),
                format!("answered {status} for message {}, leaving it", m.id),
            );
            report(Event::Warning(&e));
            Choice::Leave
        }
    })
}

/// A header field's value, decoded (RFC 2047), when present.
fn field(head: &[u8], name: &str) -> Option<String> {
    let (headers, _) = mailparse::parse_headers(head).ok()?;
    use mailparse::MailHeaderMap;
    headers.get_first_value(name)
}

/// The envelope sender for `%F`: the Return-Path the server kept, else the From address.
fn envelope_sender(head: &[u8]) -> String {
    let from = field(head, "Return-Path").or_else(|| {
        let f = field(head, "From")?;
        mailparse::addrparse(&f).ok().and_then(|list| {
            list.iter().find_map(|a| match a {
                mailparse::MailAddr::Single(s) => Some(s.addr.clone()),
                mailparse::MailAddr::Group(g) => g.addrs.first().map(|s| s.addr.clone()),
            })
        })
    });
    let from = from.unwrap_or_default();
    from.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// `--scan`'s line: date, from, subject, size.
fn scan_line(m: &Listed, head: &[u8]) -> String {
    let clean = |s: String| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let date = field(head, "Date")
        .and_then(|d| mailparse::dateparse(&d).ok())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "????-??-?? ??:??".to_string());
    let from = clean(field(head, "From").unwrap_or_default());
    let subject = clean(field(head, "Subject").unwrap_or_default());
    format!("{date}  {from}  {subject}  ({})", m.size)
}
