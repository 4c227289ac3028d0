//! Bounces: a failure report about a queued message, written by [`crate::message::dsn`]
//! and queued in the same queue as any message (route mx, from `<>`), so it goes out by
//! the same routes and retries.
//!
//! Who is told is [`dsn::select`]'s: the sender, as each recipient's NOTIFY asks; for a
//! message from `<>` the postmaster, once; nobody about a report to the postmaster, so
//! reports never loop. The report is queued before the recipients are recorded as failed:
//! a crash between the two sends a second report, never none.
//!
//! A delay report ([`delay`], RFC 3464 §2.3.3 `Action: delayed` with Will-Retry-Until) is
//! the optional warning about recipients still waiting after `relay_delay_warning`, queued
//! the same way, once per recipient (the state's `delayed` records it).

use super::{Outcome, Settings};
use crate::exit::{Code, Context, Error, Result};
use crate::message::dsn::{self, Action, Diagnostic, Notice, RcptReport};
use crate::store::queue::{self, Job, Queue, Route};
use std::io::{Seek, SeekFrom};

/// Queue a report about the recipients `failed` of `job` (indexes into its envelope, with
/// what became of each). `Ok(None)` when nobody is to be told; `Ok(Some(id))` the report's
/// queue id; `Err` a report that could not be written or queued (the caller keeps the
/// recipients waiting, to report them later).
pub fn queue(
    q: &Queue,
    s: &Settings,
    job: &Job<'_>,
    failed: &[(usize, &Outcome)],
    now: u64,
) -> Result<Option<String>> {
    let reports = rcpt_reports(job, failed, |_| Action::Failed, None, now);
    queue_reports(q, s, job, reports, false, now)
}

/// Queue a delay report about the recipients `delayed` of `job`, still waiting: the
/// sender is told as NOTIFY asks, and without NOTIFY too (whoever set the warning wants
/// it, as Postfix's delay_warning_time). Results as [`queue`]'s.
pub fn delay(
    q: &Queue,
    s: &Settings,
    job: &Job<'_>,
    delayed: &[(usize, &Outcome)],
    now: u64,
) -> Result<Option<String>> {
    let until = job.queued().queued.saturating_add(s.expire.as_secs());
    let reports = rcpt_reports(job, delayed, |_| Action::Delayed, Some(until), now);
    queue_reports(q, s, job, reports, true, now)
}

/// Queue a success report about the recipients `done` of `job`, delivered, each with the
/// action of its [`Outcome::success`] (RFC 3461 §4.1: only where NOTIFY asks for SUCCESS).
/// Results as [`queue`]'s.
pub fn success(
    q: &Queue,
    s: &Settings,
    job: &Job<'_>,
    done: &[(usize, &Outcome)],
    now: u64,
) -> Result<Option<String>> {
    let reports = rcpt_reports(
        job,
        done,
        |o| o.success.unwrap_or(Action::Relayed),
        None,
        now,
    );
    queue_reports(q, s, job, reports, false, now)
}

/// One recipient report per outcome of `rcpts`.
fn rcpt_reports(
    job: &Job<'_>,
    rcpts: &[(usize, &Outcome)],
    action: impl Fn(&Outcome) -> Action,
    will_retry_until: Option<u64>,
    now: u64,
) -> Vec<RcptReport> {
    let original = &job.queued().envelope;
    rcpts
        .iter()
        .map(|(i, o)| {
            let mut r = RcptReport::new(original.rcpts[*i].clone(), action(o));
            r.status = o.status.clone();
            r.remote_mta = o.remote_mta.clone();
            r.diagnostic = Some(match o.smtp {
                true => Diagnostic::Smtp(o.reply.clone()),
                false => Diagnostic::Local(o.reply.clone()),
            });
            r.last_attempt = Some(now);
            r.will_retry_until = will_retry_until;
            r
        })
        .collect()
}

/// Queue a report with `reports` to whom [`dsn::select`] says.
fn queue_reports(
    q: &Queue,
    s: &Settings,
    job: &Job<'_>,
    reports: Vec<RcptReport>,
    delay_notices: bool,
    now: u64,
) -> Result<Option<String>> {
    let original = &job.queued().envelope;
    let postmaster = s.postmaster();
    let (notice, reports) = dsn::select(original, reports, &postmaster, delay_notices);
    if notice == Notice::None {
        return Ok(None);
    }
    let mut report = dsn::Report::new(s.hostname(), original, job.queued().queued, &reports);
    report.notice = notice;
    report.postmaster = postmaster;
    report.queue_id = Some(job.id().to_string());
    // Written to a spool first: the report's envelope (its size, 8BITMIME) is known only
    // once it is written, and the queue's entry starts with it.
    let mut spool = tempfile::tempfile_in(q.dir()).or_code(Code::TempFail, "bounce spool")?;
    let written = {
        let mut w = std::io::BufWriter::new(&mut spool);
        let written = dsn::write(&report, &mut job.message(), &mut w)?;
        std::io::Write::flush(&mut w).or_code(Code::TempFail, "bounce spool")?;
        written
    };
    spool
        .seek(SeekFrom::Start(0))
        .or_code(Code::TempFail, "bounce spool")?;
    let queued = queue::Queued {
        route: Route::Mx,
        envelope: written.envelope,
        queued: now,
    };
    q.store(&queued, |w| std::io::copy(&mut spool, w).map(drop))
        .map(Some)
        .map_err(|e| Error::new(e.code(), "queue bounce", e.why()))
}
