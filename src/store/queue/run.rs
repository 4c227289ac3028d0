//! The queue runner: the one loop that takes due entries, locks each, hands it to a sender,
//! and records what the sender says of each recipient.
//!
//! The runner knows nothing of SMTP: the sender is a callback (msubmit's `--flush` sends
//! through an account's server; mrelay's queue run and the local route will bring theirs),
//! so the locking, the state changes and their order, on which the queue's crash safety
//! rests (the module header of [`super`]), are written once.

use super::format::{RcptState, one_line};
use super::{Entry, Locked, Queue, Queued, Status, crash_point};
use crate::envelope::Envelope;
use crate::exit::{Code, Context, Error, Result};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// What one attempt came to for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Taken: the next hop has it now.
    Delivered,
    /// Not now: try again later (after the backoff).
    Deferred,
    /// Refused for good.
    Failed,
    /// Refused for good, and the sender has durably queued a report about it (a bounce):
    /// nothing more is owed to this recipient, and an entry whose recipients are all
    /// delivered or bounced is removed instead of kept in `failed/`.
    Bounced,
}

/// How long a deferred recipient waits: `first` after its first attempt, doubling after each
/// further one, never more than `max`. A runner applies its own when it decides what is due,
/// from the time of the last attempt, so new settings apply to mail already queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The wait after the first attempt.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Retry {
    /// msubmit's: 1 minute, doubling, at most 1 hour (a user's outbox, tried often).
    fn default() -> Retry {
        Retry {
            first: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        }
    }
}

impl Retry {
    /// The wait before attempt `attempts + 1`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        let d = self.first.saturating_mul(1u32 << doublings.min(31));
        d.min(self.max)
    }

    /// When recipient `st` is next due: its last attempt plus [`Retry::delay`], or the next
    /// try its writer recorded when the state has no last attempt.
    pub fn next_try(&self, st: &RcptState) -> u64 {
        match st.last {
            0 => st.next,
            last => last.saturating_add(self.delay(st.attempts).as_secs()),
        }
    }
}

/// Which entries a run takes, and when it is.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Now, in seconds since the epoch: what is due, and the time recorded for attempts.
    pub now: u64,
    /// The waits between attempts.
    pub retry: Retry,
    /// Only this entry.
    pub only: Option<String>,
    /// Every pending recipient, due or not (a flush by hand).
    pub force: bool,
}

impl Schedule {
    /// Every due entry at `now`, with `retry`.
    pub fn new(now: u64, retry: Retry) -> Schedule {
        Schedule {
            now,
            retry,
            only: None,
            force: false,
        }
    }

    /// The recipients of `entry` this run tries: pending and due (or pending, forced).
    pub fn due(&self, entry: &Entry) -> Vec<usize> {
        entry
            .pending()
            .filter(|&i| self.force || self.retry.next_try(&entry.rcpts[i]) <= self.now)
            .collect()
    }
}

/// A sender's result for one recipient: the verdict and the reply (or error) behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// What became of it.
    pub verdict: Verdict,
    /// The server's reply or the local error, as one line for the state file.
    pub reply: String,
}

impl Attempt {
    /// An attempt with this verdict and reply.
    pub fn new(verdict: Verdict, reply: impl ToString) -> Attempt {
        Attempt {
            verdict,
            reply: reply.to_string(),
        }
    }
}

/// One entry handed to the sender, locked: its message, and the recipients to try now.
pub struct Job<'a> {
    locked: &'a Locked,
    rcpts: Vec<usize>,
}

impl Job<'_> {
    /// The entry, as read under the lock.
    pub fn entry(&self) -> &Entry {
        &self.locked.entry
    }

    /// The entry's id.
    pub fn id(&self) -> &str {
        &self.locked.entry.id
    }

    /// The entry's route, whole envelope and arrival.
    pub fn queued(&self) -> &Queued {
        &self.locked.entry.queued
    }

    /// The recipients to try now (indexes into the whole envelope): pending and due.
    pub fn rcpts(&self) -> &[usize] {
        &self.rcpts
    }

    /// The envelope to send: the entry's, with only the recipients to try now, in the
    /// order of [`Job::rcpts`], which the sender's results follow.
    pub fn envelope(&self) -> Envelope {
        self.queued()
            .envelope
            .only(|i, _| self.rcpts.binary_search(&i).is_ok())
    }

    /// The message, from its first byte; each call reads it anew (one per transaction).
    pub fn message(&self) -> Message<'_> {
        Message {
            file: &self.locked.file,
            pos: self.locked.body,
        }
    }
}

/// A reader of an entry's message, at its own offset in the locked file.
pub struct Message<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for Message<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// What one run did, counted in entries.
#[derive(Debug, Default)]
pub struct Report {
    /// Every recipient now delivered: removed.
    pub sent: usize,
    /// Some recipient still pending after this attempt.
    pub deferred: usize,
    /// Every recipient done, some refused for good: moved to `failed/`, or removed when
    /// every failure was reported ([`Verdict::Bounced`]).
    pub failed: usize,
    /// Handed to the sender, which did not try them (its settings failed, a route it does
    /// not serve): left as they were, no attempt counted.
    pub untried: usize,
    /// Another runner had them (or finished them since the listing).
    pub busy: usize,
    /// Files in `new/` that cannot be read as entries: never sent, kept, reported here.
    pub unreadable: Vec<Error>,
}

/// How many removals one fsync of `new/` makes durable.
const SYNC_EVERY: usize = 100;

impl Queue {
    /// Send every due entry: in the order of their route, then arrival (so a sender keeps
    /// one connection per route), each locked, handed to `send` with its due recipients,
    /// and its state recorded. `send` returns one [`Attempt`] per recipient of
    /// [`Job::rcpts`] (a missing one counts as deferred), or `None` when it did not try.
    ///
    /// An entry whose recipients are all delivered is removed; all done, some failed, it
    /// moves to `failed/`; otherwise each recipient's next try is set by its own backoff.
    /// `Err` is a state that could not be written (the run stops there, as a crash would,
    /// and loses nothing) or a queue that cannot be read at all.
    pub fn run(
        &self,
        now: u64,
        send: impl FnMut(&Job<'_>) -> Option<Vec<Attempt>>,
    ) -> Result<Report> {
        self.run_with(&Schedule::new(now, Retry::default()), send)
    }

    /// [`Queue::run`] with the waits, and the choice of entries, of `schedule`.
    pub fn run_with(
        &self,
        schedule: &Schedule,
        mut send: impl FnMut(&Job<'_>) -> Option<Vec<Attempt>>,
    ) -> Result<Report> {
        let _shared = self.lock_shared()?;
        self.sweep()?;
        let (entries, unreadable) = self.list()?;
        let mut report = Report {
            unreadable,
            ..Report::default()
        };
        // Also the entries with nothing pending: a crash left them finished but not moved.
        let mut todo: Vec<Entry> = (entries.into_iter())
            .filter(|e| schedule.only.as_ref().is_none_or(|id| *id == e.id))
            .filter(|e| !schedule.due(e).is_empty() || e.pending().next().is_none())
            .collect();
        todo.sort_by(|a, b| {
            (&a.queued.route, a.queued.queued, &a.id).cmp(&(
                &b.queued.route,
                b.queued.queued,
                &b.id,
            ))
        });
        let mut removed = 0usize;
        for listed in todo {
            let mut locked = match self.lock_entry(&listed.id) {
                Ok(Some(l)) => l,
                Ok(None) => {
                    report.busy += 1;
                    continue;
                }
                Err(e) => {
                    report.unreadable.push(e);
                    continue;
                }
            };
            let due = schedule.due(&locked.entry);
            let tried = !due.is_empty();
            if tried {
                let job = Job {
                    locked: &locked,
                    rcpts: due,
                };
                let Some(attempts) = send(&job) else {
                    report.untried += 1;
                    continue;
                };
                let rcpts = job.rcpts;
                // The window for a duplicate opens here: the next hop has the message, the
                // state does not say so yet.
                crash_point().or_code(Code::TempFail, "queue run")?;
                record(&mut locked.entry, &rcpts, attempts, schedule);
            } else if locked.entry.pending().next().is_some() {
                // Not due after all: another runner tried it since the listing.
                continue;
            }
            let entry = &locked.entry;
            if entry.pending().next().is_some() {
                self.write_state(entry)?;
                report.deferred += 1;
            } else if (entry.rcpts.iter()).any(|s| s.status == Status::Failed && !s.reported) {
                self.fail(entry)?;
                report.failed += usize::from(tried);
            } else {
                self.remove(entry)?;
                match entry.rcpts.iter().any(|s| s.status == Status::Failed) {
                    true => report.failed += usize::from(tried),
                    false => report.sent += usize::from(tried),
                }
                removed += 1;
                // Bound what a power loss could send twice.
                if removed.is_multiple_of(SYNC_EVERY) {
                    self.sync()?;
                }
            }
        }
        if !removed.is_multiple_of(SYNC_EVERY) {
            self.sync()?;
        }
        Ok(report)
    }
}

/// Record the sender's `attempts` for the recipients `rcpts` of `entry`.
fn record(entry: &mut Entry, rcpts: &[usize], attempts: Vec<Attempt>, schedule: &Schedule) {
    let now = schedule.now;
    let mut attempts = attempts.into_iter();
    for &i in rcpts {
        let (verdict, reply) = match attempts.next() {
            Some(a) => (a.verdict, a.reply),
            None => (
                Verdict::Deferred,
                "no result from the sender for this recipient".to_string(),
            ),
        };
        let st = &mut entry.rcpts[i];
        st.attempts = st.attempts.saturating_add(1);
        st.reply = one_line(&reply);
        st.last = now;
        st.reported = verdict == Verdict::Bounced;
        (st.status, st.next) = match verdict {
            Verdict::Delivered => (Status::Delivered, 0),
            Verdict::Failed | Verdict::Bounced => (Status::Failed, 0),
            Verdict::Deferred => (
                Status::Pending,
                now + schedule.retry.delay(st.attempts).as_secs(),
            ),
        };
    }
}
