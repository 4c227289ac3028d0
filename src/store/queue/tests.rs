//! The queue's tests: storing and listing, the runner's per-recipient bookkeeping, entries
//! of format 1, per-entry locking between two runners, parallel runs bounded in all and per
//! destination, states synced a batch at a time, and a crash at every step of every state
//! change (the failpoint below) losing no recipient.

use super::run::{LANE_MIN, SYNC_EVERY};
use super::*;
use crate::envelope::{Body, Envelope};
use std::cell::{Cell, RefCell};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

thread_local! {
    /// Steps left before the simulated crash; `None`: no crash.
    static CRASH_IN: Cell<Option<usize>> = const { Cell::new(None) };
}

/// [`super::crash_point`] in tests: fail once when the countdown reaches 0.
pub(super) fn crash_point() -> io::Result<()> {
    CRASH_IN.with(|c| match c.get() {
        Some(0) => {
            c.set(None);
            Err(io::Error::other("simulated crash"))
        }
        Some(n) => {
            c.set(Some(n - 1));
            Ok(())
        }
        None => Ok(()),
    })
}

thread_local! {
    /// fsyncs of `state/` in this thread.
    static STATE_SYNCS: Cell<usize> = const { Cell::new(0) };
}

/// [`super::note_state_sync`] in tests.
pub(super) fn note_state_sync() {
    STATE_SYNCS.with(|c| c.set(c.get() + 1));
}

fn queued(rcpts: &[&str], at: u64) -> Queued {
    let mut env = Envelope::new("a@x.test", rcpts.iter().copied());
    env.rcpts[0].notify = Some("SUCCESS".into());
    env.ret = Some("HDRS".into());
    env.body = Body::EightBitMime;
    env.size = Some(12);
    Queued {
        route: Route::account(Some("work".into())),
        envelope: env,
        queued: at,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A sender by address: `ok…` is delivered, `perm…` refused for good, `temp…` deferred on
/// its first attempt and delivered after; each delivery is logged.
fn by_address(log: &RefCell<Vec<String>>) -> impl FnMut(&Job<'_>) -> Option<Vec<Attempt>> + '_ {
    move |job| {
        let env = job.envelope();
        let out = (env.rcpts.iter().zip(job.rcpts()))
            .map(|(r, &i)| {
                let first = job.entry().rcpts[i].attempts == 0;
                if r.addr.starts_with("perm") {
                    Attempt::new(Verdict::Failed, "550 5.1.1 no such user")
                } else if r.addr.starts_with("temp") && first {
                    Attempt::new(Verdict::Deferred, "451 4.2.1 busy")
                } else {
                    log.borrow_mut().push(r.addr.clone());
                    Attempt::new(Verdict::Delivered, "250 2.0.0 ok")
                }
            })
            .collect();
        Some(out)
    }
}

#[test]
fn stores_lists_and_reads_back_the_message_for_each_transaction() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(&t.path().join("q")).unwrap();
    let id = q
        .store(&queued(&["b@y.test", "c@y.test"], 5), |w| {
            w.write_all(b"Subject: x\n\nbody\n")
        })
        .unwrap();
    let (entries, errors) = q.list().unwrap();
    assert!(errors.is_empty());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, id);
    assert_eq!(entries[0].queued, queued(&["b@y.test", "c@y.test"], 5));
    assert_eq!(entries[0].rcpts, vec![RcptState::default(); 2]);
    let file = fs::read(t.path().join("q/new").join(&id)).unwrap();
    assert!(file.starts_with(b"mailpipe-queue 2\n"));
    let mut seen = 0;
    q.run(now(), |job| {
        for _ in 0..2 {
            let mut body = Vec::new();
            job.message().read_to_end(&mut body).unwrap();
            assert_eq!(body, b"Subject: x\n\nbody\n");
        }
        seen += 1;
        Some(vec![Attempt::new(Verdict::Delivered, "250 ok"); 2])
    })
    .unwrap();
    assert_eq!(seen, 1);
    assert!(q.list().unwrap().0.is_empty());
    assert!(names(&t.path().join("q/tmp")).is_empty());
}

#[test]
fn each_recipient_keeps_its_own_state_until_all_are_done() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    let id = q
        .store(&queued(&["ok@y", "temp@y", "perm@y"], 5), |w| {
            w.write_all(b"x")
        })
        .unwrap();
    let log = RefCell::new(Vec::new());
    let t0 = 1_000;
    let r = q.run(t0, by_address(&log)).unwrap();
    assert_eq!((r.sent, r.deferred, r.failed), (0, 1, 0));
    let e = &q.list().unwrap().0[0];
    let st: Vec<(Status, u32, u64)> = e
        .rcpts
        .iter()
        .map(|s| (s.status, s.attempts, s.next))
        .collect();
    assert_eq!(
        st,
        [
            (Status::Delivered, 1, 0),
            (Status::Pending, 1, t0 + 60),
            (Status::Failed, 1, 0)
        ]
    );
    assert_eq!(e.rcpts[1].reply, "451 4.2.1 busy");
    assert_eq!(e.next_try(), Some(t0 + 60));
    assert_eq!(e.attempts(), 1);
    assert_eq!(e.last_error(), "451 4.2.1 busy; 550 5.1.1 no such user");
    // Not due yet: nothing is tried.
    let r = q.run(t0 + 59, |_| panic!("not due")).unwrap();
    assert_eq!((r.sent, r.deferred, r.failed, r.busy), (0, 0, 0, 0));
    // Due: only the pending recipient is tried; all done, one failed: to failed/.
    let mut tried = Vec::new();
    let r = q
        .run(t0 + 60, |job| {
            tried = job
                .envelope()
                .rcpts
                .iter()
                .map(|r| r.addr.clone())
                .collect();
            by_address(&log)(job)
        })
        .unwrap();
    assert_eq!(tried, ["temp@y"]);
    assert_eq!((r.sent, r.deferred, r.failed), (0, 0, 1));
    assert_eq!(*log.borrow(), ["ok@y", "temp@y"]);
    assert!(q.list().unwrap().0.is_empty());
    let (failed, _) = q.failed().unwrap();
    assert_eq!(failed[0].id, id);
    let st: Vec<Status> = failed[0].rcpts.iter().map(|s| s.status).collect();
    assert_eq!(st, [Status::Delivered, Status::Delivered, Status::Failed]);
    assert_eq!(failed[0].last_error(), "550 5.1.1 no such user");
    // A failed entry is never tried again.
    q.run(u64::MAX / 2, |_| panic!("failed entries stay"))
        .unwrap();
}

#[test]
fn untried_entries_and_short_answers_lose_nothing() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    q.store(&queued(&["a@y", "b@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    let r = q.run(1_000, |_| None).unwrap();
    assert_eq!((r.untried, r.deferred), (1, 0));
    assert_eq!(q.list().unwrap().0[0].rcpts, vec![RcptState::default(); 2]);
    // A sender that answers for one recipient only: the other is deferred, not dropped.
    let r = q
        .run(1_000, |_| {
            Some(vec![Attempt::new(Verdict::Delivered, "250")])
        })
        .unwrap();
    assert_eq!(r.deferred, 1);
    let e = &q.list().unwrap().0[0];
    assert_eq!(e.rcpts[0].status, Status::Delivered);
    assert_eq!(e.rcpts[1].status, Status::Pending);
    assert_eq!(e.rcpts[1].attempts, 1);
}

#[test]
fn entries_of_format_1_are_read_and_sent() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    // Byte for byte what msubmit wrote before per-recipient state (`Queued::to_bytes` and
    // `Queue::write_state` of format 1), with one failed attempt.
    let v1 = "mailpipe-queue 1\naccount work\nfrom a@x.test\nrcpt ok@y.test\nnotify SUCCESS\n\
              rcpt temp@y.test\nret HDRS\n8bit 1\nsize 12\nqueued 5\n\nSubject: old\n\nbody\n";
    let id = "1700000000.#0M1P2V3I4.host,S=120";
    fs::write(t.path().join("new").join(id), v1).unwrap();
    fs::write(
        t.path().join("state").join(id),
        "attempts 2\nnext 0\nerror 451 4.3.0 later\n",
    )
    .unwrap();
    let fid = "1700000001.#0M1P2V3I5.host,S=120";
    fs::write(t.path().join("failed").join(fid), v1).unwrap();
    fs::write(
        t.path().join("state").join(fid),
        "attempts 1\nnext 0\nerror RCPT TO:<x@y>: 550 5.1.1 no\n",
    )
    .unwrap();

    let (entries, errors) = q.list().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let e = &entries[0];
    assert_eq!(e.queued.route, Route::account(Some("work".into())));
    assert_eq!(e.queued.queued, 5);
    assert_eq!(
        e.queued.envelope.rcpts[0].notify.as_deref(),
        Some("SUCCESS")
    );
    assert_eq!((e.attempts(), e.next_try()), (2, Some(0)));
    assert_eq!(e.last_error(), "451 4.3.0 later");
    let (failed, _) = q.failed().unwrap();
    assert_eq!(failed[0].last_error(), "RCPT TO:<x@y>: 550 5.1.1 no");

    let log = RefCell::new(Vec::new());
    let mut body = Vec::new();
    q.run(1_000, |job| {
        job.message().read_to_end(&mut body).unwrap();
        log.borrow_mut().push(job.envelope().rcpts[0].addr.clone());
        Some(vec![
            Attempt::new(Verdict::Delivered, "250 ok"),
            Attempt::new(Verdict::Deferred, "451 again"),
        ])
    })
    .unwrap();
    assert_eq!(body, b"Subject: old\n\nbody\n");
    // The entry file stays as written; its state is now per recipient.
    assert_eq!(
        fs::read_to_string(t.path().join("new").join(id)).unwrap(),
        v1
    );
    let state = fs::read_to_string(t.path().join("state").join(id)).unwrap();
    assert!(state.starts_with("mailpipe-queue-state 2\n"), "{state}");
    let e = &q.list().unwrap().0[0];
    assert_eq!(e.rcpts[0].status, Status::Delivered);
    assert_eq!(
        (e.rcpts[1].status, e.rcpts[1].attempts),
        (Status::Pending, 3)
    );
    q.run(u64::MAX / 2, by_address(&log)).unwrap();
    assert!(q.list().unwrap().0.is_empty());
    assert_eq!(names(&t.path().join("state")), [fid]);
    assert_eq!(*log.borrow(), ["ok@y.test", "temp@y.test"]);
}

#[test]
fn a_locked_entry_is_left_to_its_runner() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    let id = q
        .store(&queued(&["a@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    let held = File::open(t.path().join("new").join(&id)).unwrap();
    held.try_lock().unwrap();
    let r = q.run(now(), |_| panic!("locked")).unwrap();
    assert_eq!(r.busy, 1);
    drop(held);
    let r = q
        .run(now(), |_| {
            Some(vec![Attempt::new(Verdict::Delivered, "250")])
        })
        .unwrap();
    assert_eq!(r.sent, 1);
    // An older mailpipe's flush holds the queue lock exclusively: no runner beside it.
    let old = File::options()
        .write(true)
        .open(t.path().join("lock"))
        .unwrap();
    old.try_lock().unwrap();
    assert_eq!(
        q.run(now(), |_| None).err().map(|e| e.code()),
        Some(Code::TempFail)
    );
}

#[test]
fn two_runners_work_side_by_side_and_never_send_an_entry_twice() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let q = Queue::open(&dir).unwrap();
    let n = 40;
    for i in 0..n {
        let a = format!("r{i}@y");
        q.store(&queued(&[a.as_str()], i), |w| w.write_all(b"x"))
            .unwrap();
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let (flying, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let start = Arc::new(Barrier::new(2));
    let runners: Vec<_> = (0..2)
        .map(|me| {
            let (dir, log, start) = (dir.clone(), log.clone(), start.clone());
            let (flying, most) = (flying.clone(), most.clone());
            std::thread::spawn(move || {
                let q = Queue::open(&dir).unwrap();
                start.wait();
                q.run(now(), |job| {
                    let f = flying.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(f, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    log.lock()
                        .unwrap()
                        .push((me, job.envelope().rcpts[0].addr.clone()));
                    flying.fetch_sub(1, Ordering::SeqCst);
                    Some(vec![Attempt::new(Verdict::Delivered, "250")])
                })
                .unwrap()
            })
        })
        .collect();
    let reports: Vec<Report> = runners.into_iter().map(|r| r.join().unwrap()).collect();
    let log = log.lock().unwrap();
    let mut sent: Vec<&str> = log.iter().map(|(_, a)| a.as_str()).collect();
    sent.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("r{i}@y")).collect();
    want.sort();
    assert_eq!(sent, want, "each entry exactly once");
    assert_eq!(reports[0].sent + reports[1].sent, n as usize);
    for me in 0..2 {
        assert!(
            log.iter().any(|(who, _)| *who == me),
            "runner {me} sent nothing"
        );
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "the runners never overlapped"
    );
    assert!(q.list().unwrap().0.is_empty());
}

#[test]
fn a_crash_at_any_step_loses_no_recipient() {
    let rcpts: [&[&str]; 5] = [
        &["ok1@y", "ok2@y"],
        &["ok3@y", "temp1@y"],
        &["ok4@y", "perm1@y"],
        &["temp2@y"],
        &["ok5@y"],
    ];
    let want: Vec<&str> = rcpts
        .iter()
        .flat_map(|r| r.iter().copied())
        .filter(|a| !a.starts_with("perm"))
        .collect();
    let mut crashes = 0;
    for k in 0.. {
        let t = tempfile::tempdir().unwrap();
        let q = Queue::open(t.path()).unwrap();
        let mut failing = String::new();
        for (i, r) in rcpts.iter().enumerate() {
            let id = q
                .store(&queued(r, i as u64), |w| w.write_all(b"x"))
                .unwrap();
            if r.iter().any(|a| a.starts_with("perm")) {
                failing = id;
            }
        }
        let log = RefCell::new(Vec::new());
        // Two passes under the countdown: the second rewrites states that already record
        // deliveries.
        CRASH_IN.with(|c| c.set(Some(k)));
        let crashed =
            q.run(1_000, by_address(&log)).is_err() || q.run(2_000, by_address(&log)).is_err();
        CRASH_IN.with(|c| c.set(None));
        // After the "reboot": runs until nothing is pending, then one more (its sweep).
        for round in 1..=4 {
            q.run(1_000_000 * round, by_address(&log)).unwrap();
        }
        let log = log.into_inner();
        for a in &want {
            assert!(
                log.contains(&a.to_string()),
                "crash at step {k}: {a} lost: {log:?}"
            );
        }
        assert!(!log.iter().any(|a| a.starts_with("perm")));
        // Only the recipients of the entry in hand at the crash may go twice.
        let dups = log.len() - want.len();
        assert!(
            dups <= 2 && (crashed || dups == 0),
            "crash at step {k}: {log:?}"
        );
        assert!(names(&t.path().join("new")).is_empty(), "crash at step {k}");
        assert_eq!(names(&t.path().join("failed")), [failing.clone()]);
        assert_eq!(names(&t.path().join("state")), [failing.clone()]);
        let (failed, _) = q.failed().unwrap();
        let st: Vec<Status> = failed[0].rcpts.iter().map(|s| s.status).collect();
        assert_eq!(st, [Status::Delivered, Status::Failed], "crash at step {k}");
        if !crashed {
            break;
        }
        crashes += 1;
    }
    // Every step of every state change of both passes: the sends, the state writes, the
    // removals and the move to failed/.
    assert!(crashes >= 30, "only {crashes} crash points");
}

#[test]
fn refuses_newlines_in_the_envelope_and_reports_broken_files() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    let mut bad = queued(&["b@y"], 5);
    bad.envelope.from = "a@x\nrcpt evil@x".into();
    assert!(q.store(&bad, |w| w.write_all(b"x")).is_err());
    fs::write(t.path().join("new/junk"), b"not a queue file\n").unwrap();
    let (entries, errors) = q.list().unwrap();
    assert!(entries.is_empty());
    assert_eq!(errors.len(), 1);
    let r = q.run(now(), |_| panic!("nothing to send")).unwrap();
    assert_eq!(r.unreadable.len(), 1);
    assert!(t.path().join("new/junk").exists());
    assert_eq!(backoff(1), Duration::from_secs(60));
    assert_eq!(backoff(30), Duration::from_secs(3600));
}

#[test]
fn state_files_without_an_entry_are_swept() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    let id = q
        .store(&queued(&["temp@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    let log = RefCell::new(Vec::new());
    q.run(1_000, by_address(&log)).unwrap();
    fs::write(t.path().join("state/gone"), "x").unwrap();
    fs::write(t.path().join("state/.gone.tmp"), "x").unwrap();
    q.run(1_000, by_address(&log)).unwrap();
    assert_eq!(names(&t.path().join("state")), [id]);
}

#[test]
fn the_runners_retry_settings_apply_to_mail_already_queued() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    q.store(&queued(&["temp@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    let log = RefCell::new(Vec::new());
    let t0 = 1_000;
    let slow = Retry {
        first: Duration::from_secs(300),
        max: Duration::from_secs(4 * 3600),
    };
    q.run_with(&Schedule::new(t0, slow), by_address(&log))
        .unwrap();
    let e = &q.list().unwrap().0[0];
    assert_eq!((e.rcpts[0].last, e.rcpts[0].next), (t0, t0 + 300));
    assert_eq!(e.next_try_with(&slow), Some(t0 + 300));
    // Not due with the settings it was deferred under...
    let r = q
        .run_with(&Schedule::new(t0 + 10, slow), |_| panic!("not due"))
        .unwrap();
    assert_eq!(r.deferred, 0);
    // ...due with shorter ones, from the time of the last attempt.
    let fast = Retry {
        first: Duration::from_secs(10),
        ..slow
    };
    let r = q
        .run_with(&Schedule::new(t0 + 10, fast), by_address(&log))
        .unwrap();
    assert_eq!(r.sent, 1);
    assert_eq!(*log.borrow(), ["temp@y"]);
    // The waits double and stop at the longest.
    assert_eq!(slow.delay(1), Duration::from_secs(300));
    assert_eq!(slow.delay(2), Duration::from_secs(600));
    assert_eq!(slow.delay(7), Duration::from_secs(4 * 3600));
    assert_eq!(slow.delay(u32::MAX), Duration::from_secs(4 * 3600));
}

#[test]
fn a_forced_run_of_one_entry_takes_it_whether_due_or_not() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    let a = q
        .store(&queued(&["temp@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    let b = q
        .store(&queued(&["temp@z"], 6), |w| w.write_all(b"x"))
        .unwrap();
    let log = RefCell::new(Vec::new());
    q.run(1_000, by_address(&log)).unwrap();
    let mut s = Schedule::new(1_001, Retry::default());
    s.only = Some(b.clone());
    s.force = true;
    let r = q.run_with(&s, by_address(&log)).unwrap();
    assert_eq!(r.sent, 1);
    assert_eq!(*log.borrow(), ["temp@z"]);
    assert_eq!(q.list().unwrap().0[0].id, a);
}

#[test]
fn reported_failures_remove_the_entry_and_unreported_ones_keep_it() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    q.store(&queued(&["ok@y", "perm@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    let r = q
        .run(1_000, |_| {
            Some(vec![
                Attempt::new(Verdict::Delivered, "250 ok"),
                Attempt::new(Verdict::Bounced, "550 5.1.1 no such user"),
            ])
        })
        .unwrap();
    assert_eq!((r.sent, r.failed), (0, 1));
    assert!(q.list().unwrap().0.is_empty());
    assert!(q.failed().unwrap().0.is_empty());
    assert!(names(&t.path().join("state")).is_empty());
    // A bounced recipient among pending ones stays recorded as reported.
    q.store(&queued(&["temp@y", "perm@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    q.run(1_000, |_| {
        Some(vec![
            Attempt::new(Verdict::Deferred, "451 busy"),
            Attempt::new(Verdict::Bounced, "550 no"),
        ])
    })
    .unwrap();
    let e = &q.list().unwrap().0[0];
    assert!(e.rcpts[1].reported && e.rcpts[1].status == Status::Failed);
    assert!(!e.rcpts[0].reported);
}

#[test]
fn held_entries_are_never_run_until_released_and_delete_removes_any() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(t.path()).unwrap();
    let id = q
        .store(&queued(&["ok@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    q.hold(&id).unwrap();
    assert!(q.list().unwrap().0.is_empty());
    assert_eq!(q.held().unwrap().0[0].id, id);
    q.run(u64::MAX / 2, |_| panic!("held")).unwrap();
    assert!(q.hold(&id).is_err(), "not waiting any more");
    q.release(&id).unwrap();
    assert!(q.release(&id).is_err());
    assert_eq!(q.list().unwrap().0[0].id, id);
    // A runner has it: hold and delete wait for it to finish.
    let locked = q.lock_entry(&id).unwrap().unwrap();
    assert_eq!(q.hold(&id).unwrap_err().code(), Code::TempFail);
    assert_eq!(q.delete(&id).unwrap_err().code(), Code::TempFail);
    drop(locked);
    q.hold(&id).unwrap();
    q.delete(&id).unwrap();
    assert!(q.held().unwrap().0.is_empty());
    assert_eq!(q.delete(&id).unwrap_err().code(), Code::NoInput);
    assert_eq!(q.delete("../x").unwrap_err().code(), Code::Usage);
    // A failed one too, with its state.
    let f = q
        .store(&queued(&["perm@y"], 5), |w| w.write_all(b"x"))
        .unwrap();
    let log = RefCell::new(Vec::new());
    q.run(1_000, by_address(&log)).unwrap();
    assert_eq!(q.failed().unwrap().0.len(), 1);
    q.delete(&f).unwrap();
    assert!(q.failed().unwrap().0.is_empty());
    assert!(names(&t.path().join("state")).is_empty());
}

/// Entries to `n` keys, `per` each, sent by [`Queue::run_parallel`] with `lanes`: the most
/// sent at once in all and to one key, and what is left in the queue.
fn parallel_run(keys: usize, per: usize, lanes: Lanes) -> (usize, usize, Vec<String>) {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(&t.path().join("q")).unwrap();
    for k in 0..keys {
        for _ in 0..per {
            let to = format!("ok@k{k}.test");
            q.store(&queued(&[&to], 1), |w| w.write_all(b"hi\n"))
                .unwrap();
        }
    }
    let in_flight = Mutex::new((0usize, std::collections::HashMap::<String, usize>::new()));
    let (most, most_key) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let key = |e: &Entry| e.queued.envelope.rcpts[0].addr.clone();
    let make = || {
        |job: &Job<'_>| {
            let k = job.envelope().rcpts[0].addr.clone();
            {
                let mut f = in_flight.lock().unwrap();
                f.0 += 1;
                let n = f.1.entry(k.clone()).or_default();
                *n += 1;
                most_key.fetch_max(*n, Ordering::SeqCst);
                most.fetch_max(f.0, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(3));
            let mut f = in_flight.lock().unwrap();
            f.0 -= 1;
            *f.1.get_mut(&k).unwrap() -= 1;
            Some(vec![Attempt::new(Verdict::Delivered, "250 ok")])
        }
    };
    let report = q.run_parallel(
        &Schedule::new(10, Retry::default()),
        lanes,
        key,
        make,
        &|| false,
    );
    assert_eq!(report.unwrap().sent, keys * per);
    let left = names(&t.path().join("q/new"));
    (most.into_inner(), most_key.into_inner(), left)
}

#[test]
fn a_parallel_run_is_bounded_in_all_and_per_destination() {
    // One destination with many entries: never more than per_key at once, and that many.
    let lanes = Lanes {
        workers: 6,
        per_key: 2,
    };
    let (most, most_key, left) = parallel_run(1, 4 * LANE_MIN, lanes);
    assert_eq!((most, most_key), (2, 2));
    assert!(left.is_empty(), "{left:?}");
    // Many destinations: never more than the workers at once, and that many.
    let lanes = Lanes {
        workers: 3,
        per_key: 4,
    };
    let (most, most_key, left) = parallel_run(12, 4, lanes);
    assert_eq!(most, 3);
    assert_eq!(most_key, 1, "a few entries of a key share one lane");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_parallel_run_stops_at_a_state_it_cannot_write_and_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(&t.path().join("q")).unwrap();
    for k in 0..4 {
        let to = format!("temp@k{k}.test");
        let id = q
            .store(&queued(&[&to], 1), |w| w.write_all(b"hi\n"))
            .unwrap();
        // Deferred entries need their state written: a directory where its temporary
        // file goes makes every such write fail, in whichever thread.
        fs::create_dir(t.path().join(format!("q/state/.{id}.tmp"))).unwrap();
    }
    let lanes = Lanes {
        workers: 2,
        per_key: 1,
    };
    let key = |e: &Entry| e.queued.envelope.rcpts[0].addr.clone();
    let sent = AtomicUsize::new(0);
    let make = || {
        |_: &Job<'_>| {
            sent.fetch_add(1, Ordering::SeqCst);
            Some(vec![Attempt::new(Verdict::Deferred, "451 busy")])
        }
    };
    let run = q.run_parallel(
        &Schedule::new(10, Retry::default()),
        lanes,
        key,
        make,
        &|| false,
    );
    assert_eq!(run.unwrap_err().code(), Code::TempFail);
    // Each thread stopped at its first failed write (or before it began).
    assert!((1..=2).contains(&sent.into_inner()));
    assert_eq!(
        names(&t.path().join("q/new")).len(),
        4,
        "every entry still waits"
    );
}

#[test]
fn deferred_entries_states_are_made_durable_a_batch_at_a_time() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(&t.path().join("q")).unwrap();
    let n = 2 * SYNC_EVERY + 5;
    for _ in 0..n {
        q.store(&queued(&["temp@y.test"], 1), |w| w.write_all(b"hi\n"))
            .unwrap();
    }
    STATE_SYNCS.with(|c| c.set(0));
    let log = RefCell::new(Vec::new());
    let report = q.run(10, by_address(&log)).unwrap();
    assert_eq!(report.deferred, n);
    // Two full batches and the rest at the end: 3 fsyncs of state/, not one per entry.
    assert_eq!(STATE_SYNCS.with(Cell::get), 3);
    // Every state written whole and read back: one attempt, deferred.
    let (entries, errors) = q.list().unwrap();
    assert!(errors.is_empty());
    assert_eq!(entries.len(), n);
    for e in &entries {
        assert_eq!(
            (e.rcpts[0].status, e.rcpts[0].attempts),
            (Status::Pending, 1)
        );
    }
}

#[test]
fn a_run_of_one_entry_reads_that_entry_only() {
    let t = tempfile::tempdir().unwrap();
    let q = Queue::open(&t.path().join("q")).unwrap();
    let id = q
        .store(&queued(&["ok@y.test"], 1), |w| w.write_all(b"hi\n"))
        .unwrap();
    q.store(&queued(&["ok@z.test"], 1), |w| w.write_all(b"hi\n"))
        .unwrap();
    // A broken file a full run reports: a run of `id` never opens it.
    fs::write(t.path().join("q/new/broken"), b"not an entry").unwrap();
    let mut schedule = Schedule::new(10, Retry::default());
    schedule.only = Some(id.clone());
    let log = RefCell::new(Vec::new());
    let report = q.run_with(&schedule, by_address(&log)).unwrap();
    assert_eq!(report.sent, 1);
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
    assert_eq!(*log.borrow(), ["ok@y.test"]);
    assert!(!names(&t.path().join("q/new")).contains(&id));
    // An id that is not waiting: nothing sent, nothing read.
    schedule.only = Some(id);
    let report = q.run_with(&schedule, by_address(&log)).unwrap();
    assert_eq!((report.sent, report.unreadable.len()), (0, 0));
    // The full run reads everything, the broken file too.
    let report = q.run(10, by_address(&log)).unwrap();
    assert_eq!((report.sent, report.unreadable.len()), (1, 1));
}
