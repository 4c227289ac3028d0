//! mreceive's log: the server's events ([`crate::smtp::event`]) as one `key=value` line each,
//! in Postfix's manner (`mreceive[PID]: SESSION: …`, one line per transaction and one per
//! recipient's outcome), on standard error or to syslog.
//!
//! An operator must be able to answer "did bob's mail arrive, and if not, why?" from the log
//! alone, so a failed delivery always carries its reason (the command's exit status and the
//! last line it wrote on stderr, the Maildir's I/O error), and every line of a session starts
//! with the session's id, every line of a message names the message's id (the one in its
//! `Received:` header). Values a client chose (HELO name, addresses, AUTH user) are quoted
//! ([`crate::log::quote`]): they can neither start a line nor add a key.

use crate::log::{Severity, Syslog, pair};
use crate::smtp::Reply;
use crate::smtp::event::{Client, End, Event, Log};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the lines go.
pub struct Logger {
    /// To standard error (the default: a daemon's stderr goes to journald, multilog or a
    /// file).
    stderr: bool,
    /// To syslog, facility mail.
    syslog: Option<Syslog>,
    /// syslog failed, and this was said on stderr; said again only after it worked.
    syslog_failing: AtomicBool,
}

impl Logger {
    /// A log on stderr, or to the syslog socket at `syslog` instead.
    pub fn new(syslog: Option<std::path::PathBuf>) -> Logger {
        Logger {
            stderr: syslog.is_none(),
            syslog: syslog.map(|path| Syslog::new("mreceive", path)),
            syslog_failing: AtomicBool::new(false),
        }
    }

    /// Write the lines of one event: to stderr in one write (so the lines of concurrent
    /// sessions never mix, and a message's lines stay together), to syslog one datagram each.
    fn write(&self, session: &str, lines: &[(Severity, String)]) {
        if self.stderr {
            let (tool, pid) = (crate::run::tool(), std::process::id());
            let text: String = lines
                .iter()
                .map(|(_, l)| format!("{tool}[{pid}]: {session}: {l}\n"))
                .collect();
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
        let Some(syslog) = &self.syslog else { return };
        for (severity, text) in lines {
            match syslog.send(*severity, &format!("{session}: {text}")) {
                Ok(()) => self.syslog_failing.store(false, Ordering::Relaxed),
                Err(e) => {
                    if !self.syslog_failing.swap(true, Ordering::Relaxed) {
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
}

impl Log for Logger {
    fn log(&self, client: &Client<'_>, event: &Event<'_>) {
        self.write(client.session, &lines(client, event));
    }
}

/// The lines for one event, without the `ident[pid]: SESSION: ` prefix.
pub fn lines(c: &Client<'_>, event: &Event<'_>) -> Vec<(Severity, String)> {
    use Severity::{Info, Warning};
    let ip = c.ip.map_or("unknown".to_string(), |ip| ip.to_string());
    // The kind of line, the message's id if any, then who the client is.
    let who = |kind: &str, id: Option<&str>| {
        let mut l = kind.to_string();
        if let Some(id) = id {
            pair(&mut l, "id", id);
        }
        pair(&mut l, "client", &ip);
        if let Some(h) = c.helo {
            pair(&mut l, "helo", h);
        }
        if let Some(a) = c.auth {
            pair(&mut l, "auth", a);
        }
        l
    };
    let path = |a: &str| format!("<{a}>");
    match event {
        Event::Connect => vec![(Info, who("connect", None))],
        Event::Tls => {
            let mut l = who("tls", None);
            pair(&mut l, "tls", c.tls.unwrap_or("-"));
            vec![(Info, l)]
        }
        Event::TlsFailed { error } => {
            let mut l = who("tls", None);
            pair(&mut l, "status", "failed");
            pair(&mut l, "reason", crate::exit::describe_io(error));
            vec![(Warning, l)]
        }
        Event::Reject {
            command,
            from,
            to,
            user,
            reply,
        } => {
            let mut l = who("reject", None);
            pair(&mut l, "cmd", command);
            if let Some(f) = from {
                pair(&mut l, "from", path(f));
            }
            if let Some(t) = to {
                pair(&mut l, "to", path(t));
            }
            if let Some(u) = user {
                pair(&mut l, "user", u);
            }
            dsn_and_reply(&mut l, reply);
            vec![(Info, l)]
        }
        Event::Message {
            id,
            envelope,
            users,
            reply,
            results,
            queued,
            delay,
        } => {
            let mut l = who("message", Some(id));
            if let Some(t) = c.tls {
                pair(&mut l, "tls", t);
            }
            pair(&mut l, "from", path(&envelope.from));
            pair(&mut l, "size", envelope.size.unwrap_or(0));
            pair(&mut l, "nrcpt", envelope.rcpts.len());
            let status = match reply.class() {
                2 => "accepted",
                4 => "deferred",
                _ => "rejected",
            };
            pair(&mut l, "status", status);
            dsn_and_reply(&mut l, reply);
            pair(&mut l, "delay", format!("{:.2}", delay.as_secs_f64()));
            let mut out = vec![(if status == "accepted" { Info } else { Warning }, l)];
            let Some(results) = results else {
                return out;
            };
            for (i, rcpt) in envelope.rcpts.iter().enumerate() {
                let user = users.get(i).and_then(Option::as_deref);
                let mut l = "delivery".to_string();
                pair(&mut l, "id", id);
                pair(&mut l, "from", path(&envelope.from));
                pair(&mut l, "to", path(&rcpt.addr));
                if let Some(u) = user {
                    pair(&mut l, "user", u);
                }
                let queued_as = queued.get(i).cloned().flatten();
                let (severity, status, dsn, reason) = match results.get(i) {
                    // Postfix's `status=sent (queued as ID)`: in the queue, durably, for
                    // mrelay or msubmit --flush to send on; a local recipient that failed
                    // here for now says why.
                    Some(Ok(())) if queued_as.is_some() => (Info, "queued", "2.0.0", None),
                    Some(Err(e)) if queued_as.is_some() => {
                        (Warning, "queued", "4.3.0", Some(e.to_string()))
                    }
                    Some(Ok(())) if user.is_some() => (Info, "sent", "2.0.0", None),
                    // Another domain's recipient: in the queue, for msubmit --flush or mrelay.
                    Some(Ok(())) => (Info, "queued", "2.0.0", None),
                    Some(Err(e)) if e.code().is_temporary() => {
                        (Warning, "deferred", "4.3.0", Some(e.to_string()))
                    }
                    // The same enhanced codes as the reply's (smtp::server::verdict).
                    Some(Err(e)) if e.code() == crate::Code::DataErr => {
                        (Warning, "bounced", "5.4.6", Some(e.to_string()))
                    }
                    Some(Err(e)) => (Warning, "bounced", "5.3.0", Some(e.to_string())),
                    None => (
                        Warning,
                        "deferred",
                        "4.3.0",
                        Some("no result from the delivery".to_string()),
                    ),
                };
                pair(&mut l, "status", status);
                if let Some(q) = &queued_as {
                    pair(&mut l, "queued_as", q);
                }
                pair(&mut l, "dsn", dsn);
                if let Some(r) = reason {
                    pair(&mut l, "reason", r);
                }
                out.push((severity, l));
            }
            out
        }
        Event::Disconnect {
            end,
            error,
            commands,
            errors,
            accepted,
        } => {
            let mut l = who("disconnect", None);
            pair(&mut l, "end", end.name());
            pair(&mut l, "commands", commands);
            pair(&mut l, "errors", errors);
            pair(&mut l, "accepted", accepted);
            if let Some(e) = error {
                pair(&mut l, "reason", crate::exit::describe_io(e));
            }
            let severity = match end {
                End::Io | End::Tls => Warning,
                _ => Info,
            };
            vec![(severity, l)]
        }
    }
}

/// `dsn=` (when the reply has an enhanced code) and `reply=`, the whole reply as sent.
fn dsn_and_reply(l: &mut String, reply: &Reply) {
    if let Some(e) = reply.enhanced {
        pair(l, "dsn", e);
    }
    pair(l, "reply", reply);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::exit::{Code, Error};
    use crate::smtp::EnhancedCode;
    use std::time::Duration;

    fn client<'a>(helo: Option<&'a str>) -> Client<'a> {
        Client {
            session: "4F1C2A9B0D3E",
            ip: Some("192.0.2.7".parse().unwrap()),
            helo,
            auth: None,
            tls: None,
        }
    }

    fn text(lines: Vec<(Severity, String)>) -> Vec<String> {
        lines.into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn a_message_and_each_recipient() {
        let mut envelope = Envelope::new(
            "ann@example.net",
            ["bob@example.org", "carol@example.org", "dan@elsewhere.test"],
        );
        envelope.size = Some(412);
        let users = [Some("bob".to_string()), Some("carol".to_string()), None];
        let results = [
            Ok(()),
            Err(Error::new(
                Code::TempFail,
                "deliver via /usr/bin/mdeliver",
                "exited with status 75: mdeliver: disk full",
            )),
            Ok(()),
        ];
        let reply = Reply::new(
            451,
            Some(EnhancedCode::new(4, 3, 0)),
            "delivery failed for <carol@example.org>, try again later",
        );
        let event = Event::Message {
            id: "0123456789abcdef",
            envelope: &envelope,
            users: &users,
            reply: &reply,
            results: Some(&results),
            queued: &[],
            delay: Duration::from_millis(30),
        };
        let got = text(lines(&client(Some("client.example.net")), &event));
        assert_eq!(
            got,
            [
                "message id=0123456789abcdef client=192.0.2.7 helo=client.example.net \
                 from=<ann@example.net> size=412 nrcpt=3 status=deferred dsn=4.3.0 \
                 reply=\"451 4.3.0 delivery failed for <carol@example.org>, try again later\" \
                 delay=0.03",
                "delivery id=0123456789abcdef from=<ann@example.net> to=<bob@example.org> \
                 user=bob status=sent dsn=2.0.0",
                "delivery id=0123456789abcdef from=<ann@example.net> to=<carol@example.org> \
                 user=carol status=deferred dsn=4.3.0 reason=\"deliver via /usr/bin/mdeliver: \
                 exited with status 75: mdeliver: disk full\"",
                "delivery id=0123456789abcdef from=<ann@example.net> to=<dan@elsewhere.test> \
                 status=queued dsn=2.0.0",
            ]
        );
    }

    #[test]
    fn client_text_cannot_forge_a_line_or_a_key() {
        let helo = "x\rmreceive[1]: 0: delivery status=sent to=<eve@example.org>";
        let reply = Reply::new(550, Some(EnhancedCode::new(5, 7, 1)), "relay access denied");
        let event = Event::Reject {
            command: "RCPT",
            from: Some("a=b c@example.net"),
            to: Some("eve@elsewhere.test"),
            user: None,
            reply: &reply,
        };
        let got = text(lines(&client(Some(helo)), &event));
        assert_eq!(
            got,
            ["reject client=192.0.2.7 \
                 helo=\"x\\rmreceive[1]: 0: delivery status=sent to=<eve@example.org>\" \
                 cmd=RCPT from=\"<a=b c@example.net>\" to=<eve@elsewhere.test> dsn=5.7.1 \
                 reply=\"550 5.7.1 relay access denied\"",]
        );
    }

    #[test]
    fn queued_recipients_say_queued_with_the_entry_id() {
        let envelope = Envelope::new("ann@example.net", ["carol@example.org", "dan@else.test"]);
        let users = [Some("carol".to_string()), None];
        let results = [
            Err(Error::new(
                Code::TempFail,
                "deliver",
                "disk full; queued as Q1 for a retry",
            )),
            Ok(()),
        ];
        let reply = Reply::new(250, Some(EnhancedCode::new(2, 0, 0)), "ok");
        let queued = [Some("Q1".to_string()), Some("Q2".to_string())];
        let event = Event::Message {
            id: "0123456789abcdef",
            envelope: &envelope,
            users: &users,
            reply: &reply,
            results: Some(&results),
            queued: &queued,
            delay: Duration::ZERO,
        };
        let got = text(lines(&client(None), &event));
        assert_eq!(
            got[1..],
            [
                "delivery id=0123456789abcdef from=<ann@example.net> to=<carol@example.org> \
                 user=carol status=queued queued_as=Q1 dsn=4.3.0 \
                 reason=\"deliver: disk full; queued as Q1 for a retry\"",
                "delivery id=0123456789abcdef from=<ann@example.net> to=<dan@else.test> \
                 status=queued queued_as=Q2 dsn=2.0.0",
            ]
        );
    }
}
