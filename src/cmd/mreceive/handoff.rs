//! Where mreceive hands accepted mail: local recipients into Maildirs (built in, through
//! [`crate::deliver`], the code mdeliver uses) or to a delivery command once per recipient;
//! recipients of other domains (only authenticated clients may have them) into the outgoing
//! spool ([`crate::store::queue`]), one entry per message, for msubmit's `--flush` and mrelay.
//!
//! Every path reports success only when the message is durable: the Maildir protocol with the
//! directory fsync, the queue's same protocol, or the command's exit 0 (its promise, as with
//! Postfix's pipe(8)). A command's exit 75 (EX_TEMPFAIL) is temporary, any other failure
//! permanent (the msmtpd contract); a command that cannot be started or dies by a signal is
//! our problem and temporary.

use crate::deliver::local::{self, Mailbox};
use crate::envelope::Envelope;
use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::smtp::server::{Deliver, Transaction};
use crate::store::queue::{self, Queue};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How local recipients get their mail.
#[derive(Clone, Debug)]
pub enum Local {
    /// Built-in: `BASE/<user>/Maildir`.
    Maildirs(PathBuf),
    /// Run `argv` once per recipient, the message on stdin, its [`PLACEHOLDERS`] replaced by
    /// the recipient's; with a base, `MAILDIR` is set to `BASE/<user>/Maildir` for it.
    Command {
        /// The program and its arguments (never through a shell).
        argv: Vec<String>,
        /// The Maildir base to tell the command about.
        base: Option<PathBuf>,
    },
    /// No local domains (a submission server): no recipient is ever local.
    Nowhere,
}

pub use crate::deliver::local::{PLACEHOLDERS, maildir_of, names_recipient};

/// mreceive's [`Deliver`].
#[derive(Clone, Debug)]
pub struct Handoff {
    /// Local delivery.
    pub local: Local,
    /// The outgoing queue for authenticated mail; `None` refuses it (temporarily).
    pub queue: Option<PathBuf>,
}

impl Deliver for Handoff {
    fn deliver(&self, tx: &Transaction, msg: &mut Buffer) -> Vec<Result<()>> {
        self.deliver_within(tx, msg, COMMAND_TIME_LIMIT)
    }
}

impl Handoff {
    /// [`Deliver::deliver`], the delivery commands of all recipients together given at most
    /// `limit`: the client waits for one reply to the whole message (10 minutes, RFC 5321
    /// §4.5.3.2.6), so a limit per command would let 100 slow recipients run for hours and
    /// the client give up and send it again anyway.
    fn deliver_within(
        &self,
        tx: &Transaction,
        msg: &mut Buffer,
        limit: Duration,
    ) -> Vec<Result<()>> {
        let deadline = Instant::now() + limit;
        let env = &tx.envelope;
        // Recipients of other domains (only authenticated clients have them): one queue entry.
        let remote = env.only(|i, _| tx.users[i].is_none());
        let queued = (!remote.rcpts.is_empty()).then(|| self.enqueue(&remote, msg));
        tx.recipients()
            .map(|(rc, user)| {
                let Some(user) = user else {
                    return queued.as_ref().map_or(Ok(()), clone_result);
                };
                let left = deadline.saturating_duration_since(Instant::now());
                let mailbox = match &self.local {
                    Local::Maildirs(base) => Mailbox::Maildirs(base),
                    Local::Command { argv, base } => Mailbox::Command {
                        argv,
                        base: base.as_deref(),
                    },
                    Local::Nowhere => {
                        return Err(Error::new(
                            Code::TempFail,
                            "deliver",
                            format!("no local delivery for {}", rc.addr),
                        ));
                    }
                };
                local::deliver(mailbox, &env.from, &rc.addr, user, msg, left)
            })
            .collect()
    }
}

fn clone_result(r: &Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::new(e.code(), e.what(), e.why())),
    }
}

impl Handoff {
    fn enqueue(&self, envelope: &Envelope, msg: &mut Buffer) -> Result<()> {
        let Some(dir) = &self.queue else {
            return Err(Error::new(Code::TempFail, "queue", "no queue directory"));
        };
        let queued = queue::Queued {
            route: queue::Route::Account(None),
            envelope: Envelope {
                size: Some(msg.len()),
                ..envelope.clone()
            },
            queued: queue::now(),
            requiretls: false,
        };
        Queue::open(dir)?
            .store(&queued, |w| msg.copy_to(w))
            .map(drop)
    }
}

/// How long mreceive lets the delivery commands of one message run: under the 10 minutes an SMTP client waits
/// for the reply to the end of data (RFC 5321 §4.5.3.2.6), so the client hears our 451
/// instead of timing out and sending the message again anyway.
const COMMAND_TIME_LIMIT: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_time_limit_is_for_all_recipients_together() {
        let handoff = Handoff {
            local: Local::Command {
                argv: ["sh", "-c", "cat >/dev/null; sleep 0.6"]
                    .map(String::from)
                    .to_vec(),
                base: None,
            },
            queue: None,
        };
        let users = ["a", "b", "c", "d"];
        let env = Transaction {
            envelope: Envelope::new("a@remote.test", users.map(|u| format!("{u}@local.test"))),
            users: users.map(|u| Some(u.to_string())).to_vec(),
            auth: None,
        };
        let mut msg = Buffer::new();
        msg.write_all(b"Subject: x\n\nhi\n").unwrap();
        let start = Instant::now();
        let results = handoff.deliver_within(&env, &mut msg, Duration::from_secs(1));
        assert!(
            start.elapsed() < Duration::from_millis(1800),
            "{:?}",
            start.elapsed()
        );
        assert!(results[0].is_ok());
        for r in &results[1..] {
            let e = r.as_ref().expect_err("past the limit");
            assert_eq!(e.code(), Code::TempFail);
        }
    }
}
