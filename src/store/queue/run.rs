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
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Not now, as [`Verdict::Deferred`], and the sender has durably queued a report that
    /// it is delayed (or found nobody to tell): recorded, so it is warned about once.
    Delayed,
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

/// The fewest entries of one key for which a parallel run opens a further lane.
pub(super) const LANE_MIN: usize = 16;

/// How many removals one fsync of `new/` makes durable.
pub(super) const SYNC_EVERY: usize = 100;

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
        let (todo, mut report) = self.todo(schedule)?;
        let mut unsynced = Unsynced::default();
        for listed in todo {
            self.step(&listed, schedule, &mut send, &mut report, &mut unsynced)?;
        }
        unsynced.sync(self)?;
        Ok(report)
    }

    /// [`Queue::run_with`] with up to `lanes.workers` entries sent at once, each by a thread
    /// of its own with its own sender (`make` is called once in each thread, so a sender
    /// need not cross threads). Entries are grouped by `key` (their destination), and one
    /// key's entries are spread over at most `lanes.per_key` lanes; a lane's entries are
    /// sent in order by one thread, so no destination sees more than `per_key` of them at
    /// once and a sender keeps its connection for the lane's next entry.
    ///
    /// Every thread records outcomes as [`Queue::run_with`] does (the same steps, in the
    /// same order per entry: the crash safety is the same); removals are made durable by a
    /// fsync of `new/` per [`SYNC_EVERY`] removals of a thread and at its end. The first
    /// state that cannot be written stops every thread before its next entry, and so does
    /// `stop` once it says yes (a daemon's SIGTERM): each thread finishes the entry in
    /// hand, records it, and leaves the rest as they are.
    pub fn run_parallel<S>(
        &self,
        schedule: &Schedule,
        lanes: Lanes,
        key: impl Fn(&Entry) -> String,
        make: impl Fn() -> S + Sync,
        stop_when: &(dyn Fn() -> bool + Sync),
    ) -> Result<Report>
    where
        S: FnMut(&Job<'_>) -> Option<Vec<Attempt>>,
    {
        let _shared = self.lock_shared()?;
        let (todo, mut report) = self.todo(schedule)?;
        // Lanes: a key's entries dealt over up to per_key lanes, arrival order kept in each.
        // A key gets a second lane only for more than LANE_MIN entries (a few messages go
        // over one connection, as a sequential run sends them).
        let keys: Vec<String> = todo.iter().map(&key).collect();
        let mut total: HashMap<&str, usize> = HashMap::new();
        for k in &keys {
            *total.entry(k).or_default() += 1;
        }
        let count: HashMap<String, usize> = (total.into_iter())
            .map(|(k, n)| {
                (
                    k.to_string(),
                    n.div_ceil(LANE_MIN).clamp(1, lanes.per_key.max(1)),
                )
            })
            .collect();
        let mut by_lane: BTreeMap<(String, usize), Vec<Entry>> = BTreeMap::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (e, k) in todo.into_iter().zip(keys) {
            let n = seen.entry(k.clone()).or_default();
            let lane = *n % count.get(&k).copied().unwrap_or(1);
            *n += 1;
            by_lane.entry((k, lane)).or_default().push(e);
        }
        // Longest lanes first, so the last to finish is a short one.
        let mut work: Vec<Vec<Entry>> = by_lane.into_values().collect();
        work.sort_by_key(|l| std::cmp::Reverse(l.len()));
        work.reverse();
        let work = Mutex::new(work);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        let threads = lanes.workers.max(1);
        let reports: Vec<Report> = std::thread::scope(|scope| {
            let worker = || {
                let mut send = make();
                let mut report = Report::default();
                let mut unsynced = Unsynced::default();
                let mut result = Ok(());
                'lanes: while let Some(lane) = pop(&work) {
                    for listed in &lane {
                        if stop.load(Ordering::Relaxed) || stop_when() {
                            break 'lanes;
                        }
                        result = self.step(listed, schedule, &mut send, &mut report, &mut unsynced);
                        if result.is_err() {
                            break 'lanes;
                        }
                    }
                }
                if result.is_ok() {
                    result = unsynced.sync(self);
                }
                if let Err(e) = result {
                    stop.store(true, Ordering::Relaxed);
                    let mut first = failed.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert(e);
                }
                report
            };
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        for r in reports {
            report.sent += r.sent;
            report.deferred += r.deferred;
            report.failed += r.failed;
            report.untried += r.untried;
            report.busy += r.busy;
            report.unreadable.extend(r.unreadable);
        }
        Ok(report)
    }

    /// The entries a run takes, in the order it takes them (route, then arrival), and a
    /// report with the unreadable ones.
    fn todo(&self, schedule: &Schedule) -> Result<(Vec<Entry>, Report)> {
        // A run of one entry (mrelay's attempt of what it just queued, a flush of one id)
        // reads that entry only; the sweep is left to the next full run.
        let (entries, unreadable) = match &schedule.only {
            Some(id) => self.list_one(id)?,
            None => {
                self.sweep()?;
                self.list()?
            }
        };
        let report = Report {
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
        Ok((todo, report))
    }

    /// One listed entry: locked, sent, its outcome recorded. `Err` only for a state that
    /// could not be written.
    fn step(
        &self,
        listed: &Entry,
        schedule: &Schedule,
        send: &mut dyn FnMut(&Job<'_>) -> Option<Vec<Attempt>>,
        report: &mut Report,
        unsynced: &mut Unsynced,
    ) -> Result<()> {
        let mut locked = match self.lock_entry(&listed.id) {
            Ok(Some(l)) => l,
            Ok(None) => {
                report.busy += 1;
                return Ok(());
            }
            Err(e) => {
                report.unreadable.push(e);
                return Ok(());
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
                return Ok(());
            };
            let rcpts = job.rcpts;
            // The window for a duplicate opens here: the next hop has the message, the
            // state does not say so yet.
            crash_point().or_code(Code::TempFail, "queue run")?;
            record(&mut locked.entry, &rcpts, attempts, schedule);
        } else if locked.entry.pending().next().is_some() {
            // Not due after all: another runner tried it since the listing.
            return Ok(());
        }
        let entry = &locked.entry;
        if entry.pending().next().is_some() {
            // Its rename made durable with the batch's fsync of state/ (below).
            self.write_state(entry, false)?;
            report.deferred += 1;
            unsynced.states += 1;
            if unsynced.states >= SYNC_EVERY {
                unsynced.sync(self)?;
            }
        } else if (entry.rcpts.iter()).any(|s| s.status == Status::Failed && !s.reported) {
            self.fail(entry)?;
            report.failed += usize::from(tried);
        } else {
            self.remove(entry)?;
            match entry.rcpts.iter().any(|s| s.status == Status::Failed) {
                true => report.failed += usize::from(tried),
                false => report.sent += usize::from(tried),
            }
            unsynced.removed += 1;
            // Bound what a power loss could send twice.
            if unsynced.removed >= SYNC_EVERY {
                unsynced.sync(self)?;
            }
        }
        Ok(())
    }
}

/// The changes of a runner (a thread) not yet made durable by a directory fsync: one
/// fsync of `new/` for a batch of removals, one of `state/` for a batch of deferred
/// entries' new states (each state file itself is fsynced before its rename, so a power
/// loss leaves the old state or the new one whole). What a power loss can undo is at most
/// a batch: removals (sent again) and new states (an entry tried again sooner, or a
/// recipient delivered since sent again), never a recipient lost.
#[derive(Default)]
struct Unsynced {
    removed: usize,
    states: usize,
}

impl Unsynced {
    /// Make every change so far durable.
    fn sync(&mut self, q: &Queue) -> Result<()> {
        if self.removed > 0 {
            q.sync()?;
        }
        if self.states > 0 {
            q.sync_states()?;
        }
        *self = Unsynced::default();
        Ok(())
    }
}

/// How a parallel run ([`Queue::run_parallel`]) spreads its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lanes {
    /// The most entries sent at once (threads).
    pub workers: usize,
    /// The most entries of one key (destination) sent at once.
    pub per_key: usize,
}

/// The next lane to send, if any is left.
fn pop(work: &Mutex<Vec<Vec<Entry>>>) -> Option<Vec<Entry>> {
    work.lock().unwrap_or_else(|p| p.into_inner()).pop()
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
        st.delayed |= verdict == Verdict::Delayed;
        (st.status, st.next) = match verdict {
            Verdict::Delivered => (Status::Delivered, 0),
            Verdict::Failed | Verdict::Bounced => (Status::Failed, 0),
            Verdict::Deferred | Verdict::Delayed => (
                Status::Pending,
                now + schedule.retry.delay(st.attempts).as_secs(),
            ),
        };
    }
}
