//! Where mreceive hands accepted mail: local recipients into Maildirs (built in, through
//! [`crate::deliver`], the code mdeliver uses) or to a delivery command once per recipient;
//! recipients of other domains (only authenticated clients may have them) into the outgoing
//! spool ([`crate::store::queue`]), one entry per message, by route mx for mrelay (or an
//! account's, `--route`, for msubmit's `--flush`). With a queue given, local recipients
//! that fail for now while others succeed are queued too (route local), so the client's
//! retry does not give the others a duplicate.
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
use crate::relay::routes::join_words;
use crate::smtp::server::{Answer, Deliver, Transaction, verdict};
use crate::store::queue::{self, Queue, Route};
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
    /// The route of the authenticated mail queued (`--route`): mx for mrelay, an account
    /// for msubmit --flush.
    pub route: Route,
    /// Queue the local recipients that failed for now when others succeeded (a queue was
    /// given): see [`Handoff::answer`].
    pub retry_local: bool,
}

impl Deliver for Handoff {
    fn deliver(&self, tx: &Transaction, msg: &mut Buffer) -> Vec<Result<()>> {
        self.deliver_within(tx, msg, COMMAND_TIME_LIMIT).0
    }

    /// SMTP has one reply for all recipients (RFC 5321 §4.2.5 leaves LMTP's per-recipient
    /// replies out): a 451 when some local recipients failed for now and others got the
    /// message makes the client send it again to all of them, a duplicate for the ones that
    /// have it. With a queue, the ones that failed for now are queued instead (route local,
    /// with this delivery's settings, for mrelay -q) and the client hears 250; their log
    /// lines say queued, with the queue id and why they failed here. Only when every local
    /// recipient failed for now, or the queue cannot take them, does the client retry.
    fn answer(&self, tx: &Transaction, msg: &mut Buffer) -> Answer {
        let (mut results, remote_id) = self.deliver_within(tx, msg, COMMAND_TIME_LIMIT);
        // Another domain's recipients, queued (Postfix: `status=sent (queued as ID)`).
        let mut queued: Vec<Option<String>> = (tx.users.iter().zip(&results))
            .map(|(user, r)| remote_id.clone().filter(|_| user.is_none() && r.is_ok()))
            .collect();
        let temp = |r: &Result<()>| matches!(r, Err(e) if e.code().is_temporary());
        let local_temp: Vec<usize> = (tx.users.iter().zip(&results).enumerate())
            .filter(|(_, (user, r))| user.is_some() && temp(r))
            .map(|(i, _)| i)
            .collect();
        let some_ok = results.iter().any(Result::is_ok);
        if self.retry_local
            && some_ok
            && !local_temp.is_empty()
            && let Some(route) = self.local_route()
        {
            let later = tx.envelope.only(|i, _| local_temp.contains(&i));
            if let Ok(id) = self.store(route, &later, msg) {
                // The reply counts them done (they are durable in the queue); the log keeps
                // their failure and says where they wait.
                let answered: Vec<Result<()>> = (results.iter().enumerate())
                    .map(|(i, r)| match local_temp.contains(&i) {
                        true => Ok(()),
                        false => clone_result(r),
                    })
                    .collect();
                for &i in &local_temp {
                    queued[i] = Some(id.clone());
                    let why = results[i]
                        .as_ref()
                        .err()
                        .map(|e| e.why())
                        .unwrap_or_default();
                    results[i] = Err(Error::new(
                        Code::TempFail,
                        "deliver",
                        format!("{why}; queued as {id} for a retry"),
                    ));
                }
                return Answer {
                    reply: verdict(tx, &answered),
                    results,
                    queued,
                };
            }
        }
        Answer {
            reply: verdict(tx, &results),
            results,
            queued,
        }
    }
}

impl Handoff {
    /// [`Deliver::deliver`], the delivery commands of all recipients together given at most
    /// `limit`: the client waits for one reply to the whole message (10 minutes, RFC 5321
    /// §4.5.3.2.6), so a limit per command would let 100 slow recipients run for hours and
    /// the client give up and send it again anyway. With the results, the id of the queue
    /// entry of the other domains' recipients, when they were queued.
    fn deliver_within(
        &self,
        tx: &Transaction,
        msg: &mut Buffer,
        limit: Duration,
    ) -> (Vec<Result<()>>, Option<String>) {
        let deadline = Instant::now() + limit;
        let env = &tx.envelope;
        // Recipients of other domains (only authenticated clients have them): one queue entry.
        let remote = env.only(|i, _| tx.users[i].is_none());
        let queued = (!remote.rcpts.is_empty()).then(|| self.enqueue(&remote, msg));
        let results = tx
            .recipients()
            .map(|(rc, user)| {
                let Some(user) = user else {
                    return match &queued {
                        None | Some(Ok(_)) => Ok(()),
                        Some(Err(e)) => Err(Error::new(e.code(), e.what(), e.why())),
                    };
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
            .collect();
        (results, queued.and_then(Result::ok))
    }
}

fn clone_result(r: &Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::new(e.code(), e.what(), e.why())),
    }
}

impl Handoff {
    fn enqueue(&self, envelope: &Envelope, msg: &mut Buffer) -> Result<String> {
        self.store(self.route.clone(), envelope, msg)
    }

    /// The local route that delivers as this handoff does, for the queue.
    fn local_route(&self) -> Option<Route> {
        let local = match &self.local {
            Local::Maildirs(base) => queue::Local::Maildirs(base.clone()),
            Local::Command { argv, base: None } => queue::Local::Command(join_words(argv)),
            Local::Command {
                argv,
                base: Some(base),
            } => queue::Local::CommandMaildirs(join_words(argv), base.clone()),
            Local::Nowhere => return None,
        };
        Some(Route::Local(local))
    }

    /// Queue `msg` for `envelope` by `route`; the new entry's id.
    fn store(&self, route: Route, envelope: &Envelope, msg: &mut Buffer) -> Result<String> {
        let Some(dir) = &self.queue else {
            return Err(Error::new(Code::TempFail, "queue", "no queue directory"));
        };
        let queued = queue::Queued {
            route,
            envelope: Envelope {
                size: Some(msg.len()),
                ..envelope.clone()
            },
            queued: queue::now(),
        };
        Queue::open(dir)?.store(&queued, |w| msg.copy_to(w))
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
            route: Route::Mx,
            retry_local: false,
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
        let (results, _) = handoff.deliver_within(&env, &mut msg, Duration::from_secs(1));
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
