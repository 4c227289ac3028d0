//! mdeliver's log (`--log FILE`): one key=value line per message saying which rules matched
//! (`file:line`) and what was done, as procmail's LOGFILE and maildrop's `logfile` tell a
//! user where a message went, in the form of msubmit's log and Postfix's (`key=value`, one
//! line, so `grep` finds a message by its Message-ID).
//!
//! The log is a record, not a step of delivery: a log that cannot be written is warned
//! about, and the exit status stays the delivery's (the message is on disk; failing now
//! would have the MTA deliver it again).

use crate::deliver::rules::Planned;
use crate::exit::{Error, Result};

/// What the line of one message says, gathered as the delivery goes.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// The envelope sender as given (`<>` for the null sender); `None` when unknown.
    pub from: Option<String>,
    /// The envelope recipient as given.
    pub to: Option<String>,
    /// The message's Message-ID, when it has one.
    pub message_id: Option<String>,
    /// The size of the message as read (0 when it could not be read).
    pub size: u64,
    /// Each rule that chose a step done, in order, once.
    pub rules: Vec<String>,
    /// Each step done, as `mdeliver -n` shows it.
    pub done: Vec<String>,
    /// Dropped as a duplicate.
    pub duplicate: bool,
}

impl Record {
    /// Note a step done.
    pub fn done(&mut self, p: &Planned) {
        if let Some(r) = &p.rule
            && !self.rules.contains(r)
        {
            self.rules.push(r.clone());
        }
        self.done.push(p.step.to_string());
    }

    /// The line for the delivery's `result`.
    pub fn line(&self, result: &Result<()>) -> String {
        let list = |v: &[String], sep: &str| match v {
            [] => "-".to_string(),
            v => v.join(sep),
        };
        let done = if self.duplicate {
            "duplicate".to_string()
        } else {
            list(&self.done, "; ")
        };
        let mut line = format!(
            "time={} from={} to={} message_id={} size={} rules={} done={} exitcode={}",
            chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%z"),
            q(self
                .from
                .as_deref()
                .map(|f| if f.is_empty() { "<>" } else { f })),
            q(self.to.as_deref()),
            q(self.message_id.as_deref()),
            self.size,
            q(Some(&list(&self.rules, ","))),
            q(Some(&done)),
            result
                .as_ref()
                .map_or_else(Error::code, |()| crate::exit::Code::Ok)
                .as_i32(),
        );
        if let Err(e) = result {
            line.push_str(&format!(" reason={}", q(Some(&e.to_string()))));
        }
        line.push('\n');
        line
    }
}

/// A value as written in the line: bare when it is plain printable ASCII, else quoted with
/// its escapes (never a line break or a `=` that would split it); `-` when unknown.
fn q(v: Option<&str>) -> String {
    match v {
        None | Some("") => "-".to_string(),
        Some(s)
            if s.chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '=') =>
        {
            s.to_string()
        }
        Some(s) => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::rules::Step;
    use crate::exit::Code;

    #[test]
    fn one_line_with_what_was_done() {
        let mut r = Record {
            from: Some(String::new()),
            to: Some("me@x".into()),
            message_id: Some("<a b@x>".into()),
            size: 12,
            ..Record::default()
        };
        for (folder, rule) in [("A", Some("f:3")), ("B", Some("f:3")), ("INBOX", None)] {
            r.done(&Planned {
                step: Step::Store {
                    folder: folder.into(),
                    flags: String::new(),
                },
                rule: rule.map(String::from),
            });
        }
        let line = r.line(&Ok(()));
        let rest = line.split_once(' ').unwrap().1;
        assert_eq!(
            rest,
            "from=<> to=me@x message_id=\"<a b@x>\" size=12 rules=f:3 \
             done=\"store A; store B; store INBOX\" exitcode=0\n"
        );
        let e = Error::new(Code::TempFail, "pipe to x", "exited with status 1\nevil=1");
        let line = Record::default().line(&Err(e));
        assert!(
            line.ends_with(
                "from=- to=- message_id=- size=0 rules=- done=- exitcode=75 \
                 reason=\"pipe to x: exited with status 1\\nevil=1\"\n"
            ),
            "{line}"
        );
        assert_eq!(line.matches('\n').count(), 1);
    }
}
