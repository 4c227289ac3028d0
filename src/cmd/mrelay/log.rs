//! mrelay's log: one [`Line`] per attempt and recipient, `mrelay[PID]: ` before it on standard
//! error, or to syslog (facility mail) with `--syslog`; warnings (a queue entry that cannot
//! be read, a report that could not be queued) always on standard error as `mrelay: …`.

use crate::log::{Severity, Syslog};
use crate::relay::Line;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the lines go.
pub struct Logger {
    syslog: Option<Syslog>,
    /// syslog failed and this was said on stderr; said again only after it worked.
    failing: AtomicBool,
}

impl Logger {
    /// A log on stderr, or to the syslog socket at `syslog` instead.
    pub fn new(syslog: Option<std::path::PathBuf>) -> Logger {
        Logger {
            syslog: syslog.map(|path| Syslog::new("mrelay", path)),
            failing: AtomicBool::new(false),
        }
    }

    /// Write one line. A line syslog does not take is lost, with one warning: mail is never
    /// held up by its log.
    pub fn line(&self, line: &Line) {
        let severity = match line.is_failure() {
            true => Severity::Warning,
            false => Severity::Info,
        };
        self.text(severity, &line.to_string());
    }

    /// Write one line of text already in key=value form (the maildrop's pickup lines).
    pub fn text(&self, severity: Severity, text: &str) {
        let Some(syslog) = &self.syslog else {
            let text = format!("{}[{}]: {text}\n", crate::run::tool(), std::process::id());
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            return;
        };
        match syslog.send(severity, text) {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    crate::run::warn(format_args!(
                        "syslog {}: {}",
                        syslog.path().display(),
                        crate::exit::describe_io(&e)
                    ));
                }
            }
        }
    }
}
