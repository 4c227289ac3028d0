//! `mfetch --daemon`: every account in one process, each polled every `--interval`, an
//! account that failed tried again after a backoff that doubles up to an hour (a server
//! down is not hammered, a password refused is not retried every minute), until SIGTERM,
//! SIGINT or SIGHUP, which stop it between fetches: a batch under way is finished, so the
//! stop loses nothing and leaves nothing to recover. An IMAP folder whose server offers IDLE
//! is watched by a thread of its own (`imap::watch`), which makes it due the moment new mail
//! arrives; the poll stays, for servers without IDLE and as a safety net.

use super::{Args, jobs, one};
use crate::exit::Result;
use crate::run;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The longest wait after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How often a sleep looks at the stop flag.
const TICK: Duration = Duration::from_millis(200);

/// Poll every account until a signal says stop.
pub fn run(args: &Args, state_dir: &Path) -> Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    let interval = Duration::from_secs(args.interval.max(1));
    // Per account: when it is due, and the backoff after its last failure.
    let mut due: HashMap<String, (Instant, Option<Duration>)> = HashMap::new();
    // IMAP folders watched in IDLE: a job named here is due at once.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut watched: HashSet<String> = HashSet::new();
    while !STOP.load(Ordering::SeqCst) {
        // Read again each round: a password command's token may have changed (OAuth).
        let round = match jobs(args) {
            Ok(j) => j,
            Err(e) => {
                run::warn(&e);
                Vec::new()
            }
        };
        let now = Instant::now();
        for job in &round {
            if STOP.load(Ordering::SeqCst) {
                break;
            }
            if job.folder.is_some() && watched.insert(job.name.clone()) {
                super::imap::watch(job, tx.clone());
            }
            let (at, backoff) = due.get(&job.name).copied().unwrap_or((now, None));
            if at > now {
                continue;
            }
            let next = match one(args, job, state_dir) {
                Ok(_) => (Instant::now() + interval, None),
                Err(e) => {
                    let b = backoff.map_or(interval, |b| (b * 2).min(MAX_BACKOFF));
                    run::warn(format_args!(
                        "{}; trying again in {} s",
                        e.context(&job.name),
                        b.as_secs()
                    ));
                    (Instant::now() + b, Some(b))
                }
            };
            due.insert(job.name.clone(), next);
        }
        let wake = due
            .values()
            .map(|(at, _)| *at)
            .min()
            .unwrap_or_else(|| Instant::now() + interval);
        while !STOP.load(Ordering::SeqCst) && Instant::now() < wake {
            let tick = TICK.min(wake.saturating_duration_since(Instant::now()));
            if let Ok(name) = rx.recv_timeout(tick) {
                if let Some(d) = due.get_mut(&name) {
                    d.0 = Instant::now();
                }
                break;
            }
        }
    }
    Ok(())
}
