//! `mrelay --daemon`: run the queue continuously. A new entry (a rename into `new/`, which
//! is how every entry arrives, a released one too) wakes it at once through inotify(7) on
//! that directory; otherwise it sleeps until the earliest next try. Nothing polls the disk
//! in a loop: without inotify (an old kernel, a full watch table) it looks once a second.
//!
//! Each wake-up is one parallel queue run, the same as `-q`'s ([`Relay::run_parallel`]:
//! `relay_concurrency` entries at once, at most `relay_destination_concurrency` per
//! destination), so a backlog drains as fast under the daemon as by hand.
//!
//! SIGTERM, SIGINT or SIGHUP stop it cleanly: the handler sets a flag, every thread's
//! transaction in flight runs to its end and is recorded (the handler is installed with
//! SA_RESTART semantics, so no read or write is cut short), the entries not yet begun are
//! left as they are, and mrelay exits 0.

use crate::exit::Result;
use crate::relay::{Relay, Settings};
use crate::run;
use crate::store::queue::{self, Queue, Schedule};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The longest sleep between looks at the stop flag, and between runs without inotify.
const TICK: Duration = Duration::from_secs(1);

/// The longest sleep between runs with inotify: a clock change or an entry whose time came
/// without a new file is still seen within it.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Run the queue until a signal says stop.
pub fn run(q: &Queue, settings: Settings, logger: &super::log::Logger) -> Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; glibc's
        // signal(2) installs it with SA_RESTART.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    let drop_dir = crate::store::queue::maildrop::beside(q.dir()).filter(|d| d.is_dir());
    let watch = Watch::new(&q.dir().join("new"), drop_dir.as_deref());
    if watch.is_none() {
        run::warn("inotify unavailable: looking at the queue once a second");
    }
    let retry = settings.retry;
    let log = |l: &crate::relay::Line| logger.line(l);
    let warn = |w: &str| run::warn(w);
    while !stopping() {
        if let Some(w) = &watch {
            w.drain();
        }
        super::pickup(q, &settings, logger);
        let schedule = Schedule::new(queue::now(), retry);
        // Each run's relays close their connections at its end: an idle daemon holds none.
        match Relay::run_parallel(&settings, q, &schedule, &log, &warn, &stopping) {
            Ok(report) => {
                for e in &report.unreadable {
                    run::warn(e);
                }
            }
            // A queue that cannot be read now (a full disk, a lock held by an old flush)
            // may be readable later: the daemon goes on.
            Err(e) => run::warn(e),
        }
        let next = q
            .list()
            .map(|(entries, _)| entries.iter().filter_map(|e| e.next_try_with(&retry)).min())
            .unwrap_or(None);
        let now = queue::now();
        // Still due after the run: another runner holds it, or it was not tried (an
        // account whose settings fail): not a reason to run again at once, and again.
        let sleep = match next {
            Some(t) if t > now => Duration::from_secs(t - now),
            _ => MAX_SLEEP,
        };
        let mut left = sleep.clamp(TICK, MAX_SLEEP);
        while !stopping() && !left.is_zero() {
            let step = left.min(TICK);
            let woken = match &watch {
                Some(w) => w.wait(step),
                None => {
                    std::thread::sleep(step);
                    false
                }
            };
            if woken {
                break;
            }
            left = left.saturating_sub(step);
        }
    }
    Ok(())
}

/// An inotify watch for entries arriving in a directory.
struct Watch {
    fd: OwnedFd,
}

impl Watch {
    /// Watch `dir` and, when given, the maildrop (a drop file is complete when its mode
    /// changes: IN_ATTRIB).
    fn new(dir: &std::path::Path, maildrop: Option<&std::path::Path>) -> Option<Watch> {
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: inotify_init1 has no memory preconditions; a negative result is an error.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: raw is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: path is a valid NUL-terminated string for the duration of the call.
        let wd = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                path.as_ptr(),
                libc::IN_MOVED_TO | libc::IN_CREATE,
            )
        };
        if let Some(m) = maildrop
            && let Ok(m) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes())
        {
            // SAFETY: m is a valid NUL-terminated string for the duration of the call.
            // A maildrop that cannot be watched is still picked up at every run.
            unsafe { libc::inotify_add_watch(fd.as_raw_fd(), m.as_ptr(), libc::IN_ATTRIB) };
        }
        (wd >= 0).then_some(Watch { fd })
    }

    /// Wait up to `limit` for an event; true when one came (a signal ends the wait too).
    fn wait(&self, limit: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        n > 0
    }

    /// Read every pending event: the next run looks at the whole directory anyway.
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is writable for its length; the descriptor is non-blocking.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
        }
    }
}
