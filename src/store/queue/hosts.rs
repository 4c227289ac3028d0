//! Per-host retry hints: which addresses of the next hops were found dead, and when they
//! may be tried again, kept across runs (Exim's hints database, `retry` records). Without
//! them each run, and so each daemon wake-up, pays a dead host's connect timeout again for
//! the first message to it; with them a run defers every message to that host at once,
//! without dialing, until the hint is due.
//!
//! One small file per address, `QUEUE/hosts/ADDRESS:PORT`, of `key value` lines (the host's
//! name, failures in a row, the last failure's time, the next try, the last error),
//! replaced whole (a temporary file, then a rename), never fsynced as a directory: hints are
//! an optimisation. A file that is missing, torn or unreadable reads as "no hint" (the host
//! is tried), so a hint can delay mail by at most its backoff but never lose or bounce it.

use super::{Queue, Retry};
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// What is known of one address found dead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The host's name, as the route or MX gave it.
    pub host: String,
    /// The address and port.
    pub addr: SocketAddr,
    /// Failed connections in a row.
    pub failures: u32,
    /// When the last one failed, in seconds since the epoch.
    pub last: u64,
    /// When it may be tried again.
    pub next: u64,
    /// Why the last one failed.
    pub error: String,
}

impl Hint {
    fn to_text(&self) -> String {
        let error: String = (self.error.chars())
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(500)
            .collect();
        format!(
            "host {}\naddr {}\nfailures {}\nlast {}\nnext {}\nerror {}\n",
            self.host, self.addr, self.failures, self.last, self.next, error
        )
    }

    fn parse(text: &str) -> Option<Hint> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
                .map(str::to_string)
        };
        Some(Hint {
            host: get("host")?,
            addr: get("addr")?.parse().ok()?,
            failures: get("failures")?.parse().ok()?,
            last: get("last")?.parse().ok()?,
            next: get("next")?.parse().ok()?,
            error: get("error")?,
        })
    }
}

/// The hints of one queue.
#[derive(Clone, Debug)]
pub struct Hosts {
    dir: PathBuf,
}

/// A counter for unique temporary names within this process.
static SEQ: AtomicU64 = AtomicU64::new(0);

impl Hosts {
    fn path(&self, addr: &SocketAddr) -> PathBuf {
        self.dir.join(addr.to_string())
    }

    /// The hint for `addr`, if a readable one exists.
    pub fn get(&self, addr: &SocketAddr) -> Option<Hint> {
        let text = fs::read_to_string(self.path(addr)).ok()?;
        Hint::parse(&text).filter(|h| h.addr == *addr)
    }

    /// Record a failed connection to `addr` of `host` at `now`: one more failure in a row,
    /// the next try after `retry`'s wait for that many (capped). A hint that cannot be
    /// written is not one: the host is tried at the next run, as without hints. A hint due
    /// for longer than the longest wait was not tried since (no mail for that host): the
    /// count starts again, as Exim lets old retry records lapse.
    pub fn down(&self, host: &str, addr: &SocketAddr, now: u64, retry: &Retry, error: &str) {
        let stale = |h: &Hint| now > h.next.saturating_add(retry.max.as_secs());
        let failures = (self.get(addr).filter(|h| !stale(h)))
            .map_or(0, |h| h.failures)
            .saturating_add(1);
        let hint = Hint {
            host: host.to_string(),
            addr: *addr,
            failures,
            last: now,
            next: now.saturating_add(retry.delay(failures).as_secs()),
            error: error.to_string(),
        };
        let _ = self.write(&hint);
    }

    /// A connection to `addr` worked: its hint, if any, is gone.
    pub fn up(&self, addr: &SocketAddr) {
        let _ = fs::remove_file(self.path(addr));
    }

    /// Every readable hint, by address.
    pub fn all(&self) -> Vec<Hint> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut hints: Vec<Hint> = dir
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Hint::parse(&fs::read_to_string(e.path()).ok()?))
            .collect();
        hints.sort_by_key(|h| h.addr);
        hints
    }

    /// Remove the temporary files of writers that died (a SIGKILL between create and
    /// rename) once they are an hour old.
    pub(super) fn sweep(&self) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let hour = std::time::Duration::from_secs(3600);
        for e in dir.flatten() {
            let old = (e.metadata().ok())
                .and_then(|m| m.modified().ok())
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > hour);
            if old && e.file_name().to_string_lossy().starts_with('.') {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    fn write(&self, hint: &Hint) -> std::io::Result<()> {
        super::make_private_dir(&self.dir)?;
        let tmp = self.dir.join(format!(
            ".{}.{}.{}",
            hint.addr,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(hint.to_text().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, self.path(&hint.addr))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl Queue {
    /// The per-host retry hints kept in this queue (`QUEUE/hosts/`).
    pub fn hosts(&self) -> Hosts {
        Hosts {
            dir: self.dir().join("hosts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_hint_backs_off_is_cleared_and_a_corrupt_one_is_none() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(&d.path().join("q")).unwrap();
        let h = q.hosts();
        let addr: SocketAddr = "192.0.2.1:25".parse().unwrap();
        let retry = Retry {
            first: Duration::from_secs(300),
            max: Duration::from_secs(500),
        };
        assert_eq!(h.get(&addr), None);
        h.down("mx.test", &addr, 1000, &retry, "connection refused\r\nx");
        let one = h.get(&addr).unwrap();
        assert_eq!((one.failures, one.next), (1, 1300));
        assert_eq!(one.error, "connection refused  x");
        h.down("mx.test", &addr, 1300, &retry, "timed out");
        h.down("mx.test", &addr, 1900, &retry, "timed out");
        let three = h.get(&addr).unwrap();
        // 300, then 600 and 1200 capped at 500.
        assert_eq!((three.failures, three.next), (3, 2400));
        assert_eq!(h.all(), vec![three]);
        h.up(&addr);
        assert_eq!(h.get(&addr), None);
        fs::write(
            d.path().join("q/hosts").join(addr.to_string()),
            "host x\nnext y\n",
        )
        .unwrap();
        assert_eq!(h.get(&addr), None);
        assert!(h.all().is_empty());
        // A hint long due and not tried since starts the count again.
        h.down("mx.test", &addr, 1000, &retry, "refused");
        h.down("mx.test", &addr, 1300, &retry, "refused");
        assert_eq!(h.get(&addr).unwrap().failures, 2);
        h.down("mx.test", &addr, 100_000, &retry, "refused");
        assert_eq!(h.get(&addr).unwrap().failures, 1);
        // A dead writer's temporary file goes once an hour old; a young one stays.
        let dir = d.path().join("q/hosts");
        for name in [".old", ".young"] {
            fs::write(dir.join(name), "x").unwrap();
        }
        let f = fs::File::options()
            .write(true)
            .open(dir.join(".old"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        h.sweep();
        assert!(!dir.join(".old").exists() && dir.join(".young").exists());
        assert!(h.get(&addr).is_some());
    }
}
