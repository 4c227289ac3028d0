//! `mrelay --list` (mailq): every entry, waiting, held or failed, with each recipient's
//! status, attempts, next try (by this relay's retry settings) and last reply; `--json` the
//! same as one JSON array for scripts (times in seconds since the epoch, `null` when none).
//! The text listing ends with the per-host retry hints: the hosts found dead, and when a run
//! dials them again.

use crate::exit::{Code, Error, Result};
use crate::message::stamp::local_time;
use crate::relay::Settings;
use crate::run;
use crate::store::queue::{Entry, Queue, Status};
use std::fmt::Write as _;
use std::io::Write;

/// Which part of the queue an entry is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Waiting,
    Held,
    Failed,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Waiting => "waiting",
            Place::Held => "held",
            Place::Failed => "failed",
        }
    }
}

/// Print the queue on stdout; entries that cannot be read are warned about after the
/// listing, and the exit status is their error's.
pub fn list(q: &Queue, settings: &Settings, json: bool) -> Result<()> {
    let mut all: Vec<(Entry, Place)> = Vec::new();
    let mut errors = Vec::new();
    for (place, (entries, errs)) in [
        (Place::Waiting, q.list()?),
        (Place::Held, q.held()?),
        (Place::Failed, q.failed()?),
    ] {
        all.extend(entries.into_iter().map(|e| (e, place)));
        errors.extend(errs);
    }
    let text = match json {
        true => to_json(&all, settings),
        false => to_text(&all, settings) + &hosts_text(q),
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io(Code::IoErr, "stdout", e))?;
    for e in &errors {
        run::warn(e);
    }
    match errors.first() {
        None => Ok(()),
        Some(e) => Err(Error::new(
            e.code(),
            "list",
            format!("{} entries cannot be read", errors.len()),
        )),
    }
}

fn status_name(s: Status, reported: bool) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Delivered => "delivered",
        Status::Failed if reported => "bounced",
        Status::Failed => "failed",
    }
}

/// When a pending recipient is next tried.
fn next_try(e: &Entry, i: usize, settings: &Settings) -> Option<u64> {
    (e.rcpts[i].status == Status::Pending).then(|| settings.retry.next_try(&e.rcpts[i]))
}

fn to_text(all: &[(Entry, Place)], settings: &Settings) -> String {
    let mut out = String::new();
    if all.is_empty() {
        out.push_str("Mail queue is empty\n");
    }
    for (e, place) in all {
        let q = &e.queued;
        let mark = match place {
            Place::Waiting => "",
            Place::Held => "  HELD",
            Place::Failed => "  FAILED",
        };
        let _ = writeln!(
            out,
            "{}  {} bytes  arrived {}  route {}{mark}\n  from: <{}>",
            e.id,
            q.envelope.size.unwrap_or(0),
            local_time(q.queued),
            q.route.kind(),
            q.envelope.from,
        );
        for (i, (r, st)) in q.envelope.rcpts.iter().zip(&e.rcpts).enumerate() {
            let _ = write!(
                out,
                "  to: <{}>  {}, {} attempts",
                r.addr,
                status_name(st.status, st.reported),
                st.attempts
            );
            if let Some(t) = next_try(e, i, settings).filter(|_| *place == Place::Waiting) {
                let _ = write!(out, ", next {}", local_time(t));
            }
            if !st.reply.is_empty() {
                let _ = write!(out, ": {}", st.reply);
            }
            out.push('\n');
        }
    }
    out
}

/// The hosts found dead, for the text listing; empty when there are none.
fn hosts_text(q: &Queue) -> String {
    let hints = q.hosts().all();
    let mut out = String::new();
    if !hints.is_empty() {
        out.push_str("Hosts found dead (no run dials them before their next try):\n");
    }
    for h in hints {
        let _ = writeln!(
            out,
            "  {} ({})  {} failures, next {}: {}",
            h.addr,
            h.host,
            h.failures,
            local_time(h.next),
            h.error
        );
    }
    out
}

fn to_json(all: &[(Entry, Place)], settings: &Settings) -> String {
    let mut out = String::from("[");
    for (n, (e, place)) in all.iter().enumerate() {
        let q = &e.queued;
        if n > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "\n{{\"id\":{},\"queue\":\"{}\",\"route\":\"{}\",\"size\":{},\"arrived\":{},\
             \"sender\":{},\"envid\":{},\"recipients\":[",
            string(&e.id),
            place.name(),
            q.route.kind(),
            q.envelope.size.unwrap_or(0),
            q.queued,
            string(&q.envelope.from),
            q.envelope.envid.as_deref().map_or("null".into(), string),
        );
        for (i, (r, st)) in q.envelope.rcpts.iter().zip(&e.rcpts).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let next = next_try(e, i, settings)
                .filter(|_| *place == Place::Waiting)
                .map_or("null".into(), |t| t.to_string());
            let last = match st.last {
                0 => "null".to_string(),
                t => t.to_string(),
            };
            let _ = write!(
                out,
                "{{\"address\":{},\"status\":\"{}\",\"attempts\":{},\"last_try\":{last},\
                 \"next_try\":{next},\"last_reply\":{}}}",
                string(&r.addr),
                status_name(st.status, st.reported),
                st.attempts,
                string(&st.reply),
            );
        }
        out.push_str("]}");
    }
    out.push_str("\n]\n");
    out
}

/// `s` as a JSON string (RFC 8259 §7).
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_escape_what_they_must() {
        assert_eq!(
            super::string("a\"b\\c\nd\u{1}é"),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
    }
}
