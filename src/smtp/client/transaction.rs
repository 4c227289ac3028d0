//! The client's transactions: one message, MAIL, the RCPTs and DATA ([`Session::send`]), and
//! one message to every recipient of an envelope over as many transactions as the server's
//! recipient limit needs ([`Session::deliver`]), with a [`Verdict`] per recipient, which is
//! what a queue with per-recipient state records.

use super::{Session, net_error};
use crate::envelope::{Envelope, Recipient};
use crate::exit::{Code, Error, Result};
use crate::smtp::command::{Command, Param, xtext};
use crate::smtp::data::DataEncoder;
use crate::smtp::envelope::{Outcome, Partial, Refusal, Stage, reply_error, too_many};
use crate::smtp::reply::Reply;
use std::io::{self, Read, Write};
use std::time::Duration;

/// Where a message's bytes come from, anew for each transaction ([`Session::deliver`] may
/// send the message more than once).
pub trait Content {
    /// The message from its first byte.
    fn open(&mut self) -> Result<Box<dyn Read + '_>>;
}

/// What became of one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The server took the message for it: its reply to the end of data.
    Accepted(Reply),
    /// Refused: the reply to MAIL, to its RCPT, to DATA or to the end of data; temporary
    /// (4xx) or permanent (5xx) as the reply says.
    Refused(Reply),
    /// Not settled: held back by the [`Partial`] policy (another recipient was refused), or
    /// the transaction broke off ([`Delivery::error`]; after the end of data was sent the
    /// server may have it, RFC 1047). Send again.
    Unsettled,
}

/// One message sent to an envelope's recipients.
#[derive(Debug)]
pub struct Delivery {
    /// A verdict per recipient of the envelope, in its order.
    pub rcpts: Vec<Verdict>,
    /// Every failure as a tool reports it, in transaction order ([`Outcome::refusals`]).
    pub refusals: Vec<Refusal>,
    /// The reply to the last end of data (or the refusal of the last DATA).
    pub data: Option<Reply>,
    /// Why it stopped before every recipient was settled: the connection failed, a timeout,
    /// a reply that could not be read, the message could not be read. The recipients still
    /// [`Verdict::Unsettled`] are the ones it left.
    pub error: Option<Error>,
    /// It failed before the server answered anything (not even MAIL FROM or RSET): the
    /// message cannot have been taken, since its body goes only after the 354. On a kept
    /// connection that the server had closed meanwhile, a caller may connect again and try
    /// at once, with no risk of a duplicate.
    pub unanswered: bool,
}

impl Delivery {
    /// True when the server took the message for every recipient.
    pub fn all_accepted(&self) -> bool {
        self.error.is_none() && self.rcpts.iter().all(|v| matches!(v, Verdict::Accepted(_)))
    }
}

impl Session {
    /// Send one message to every recipient of `env`. When the server limits the recipients
    /// per message (452, RFC 5321 §4.5.3.1.10, which says to send to them later), those
    /// refused only for that go in a next transaction on this connection, as long as the
    /// last one delivered (so each round settles at least one recipient, and this ends).
    /// `partial` decides, in each transaction, whether refused recipients stop the others.
    pub fn deliver(
        &mut self,
        env: &Envelope,
        content: &mut dyn Content,
        partial: Partial,
    ) -> Delivery {
        let mut d = Delivery {
            rcpts: vec![Verdict::Unsettled; env.rcpts.len()],
            refusals: Vec::new(),
            data: None,
            error: None,
            unanswered: false,
        };
        let replies = self.replies;
        if env.rcpts.is_empty() {
            d.error = Some(Error::new(Code::Usage, "send", "no recipients"));
        }
        // The recipients of the next transaction, as indexes into `env.rcpts`.
        let mut pending: Vec<usize> = (0..env.rcpts.len()).collect();
        while !pending.is_empty() {
            // The whole envelope in the first round, a copy for fewer recipients after.
            let round = match pending.len() == env.rcpts.len() {
                true => std::borrow::Cow::Borrowed(env),
                false => std::borrow::Cow::Owned(env.only(|i, _| pending.contains(&i))),
            };
            self.interrupted = None;
            let outcome = content
                .open()
                .and_then(|mut reader| self.send(&round, &mut reader, partial));
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    // A refusal read before the server's 354 stands whatever became of the
                    // rest: a 5xx to RCPT is that recipient's answer, not to be tried again
                    // because the connection broke in the data (Postfix records each RCPT
                    // reply as it comes).
                    if let Some(o) = self.interrupted.take() {
                        for (k, &i) in pending.iter().enumerate() {
                            let reply = match o.mail.is_positive() {
                                false => Some(&o.mail),
                                true => o.rcpts.get(k),
                            };
                            if let Some(r) = reply.filter(|r| r.code >= 400 && !too_many(r)) {
                                d.rcpts[i] = Verdict::Refused(r.clone());
                            }
                        }
                        let refused = o.refusals(&round).into_iter();
                        d.refusals.extend(refused.filter(|r| r.reply.is_some()));
                    }
                    d.error = Some(e);
                    break;
                }
            };
            let delivered = outcome.data.as_ref().is_some_and(Reply::is_positive);
            let mut later = Vec::new();
            for (k, &i) in pending.iter().enumerate() {
                let reply = match outcome.mail.is_positive() {
                    false => Some(&outcome.mail),
                    true => outcome.rcpts.get(k),
                };
                d.rcpts[i] = match (reply, &outcome.data) {
                    (Some(r), _) if delivered && too_many(r) => {
                        later.push(i);
                        Verdict::Unsettled
                    }
                    (Some(r), _) if !r.is_positive() => Verdict::Refused(r.clone()),
                    (Some(_), Some(data)) if data.is_positive() => Verdict::Accepted(data.clone()),
                    (Some(_), Some(data)) => Verdict::Refused(data.clone()),
                    _ => Verdict::Unsettled,
                };
            }
            if later.is_empty() {
                d.refusals.extend(outcome.refusals(&round));
            } else {
                // The recipients sent again are not refused: their next round says.
                let settled = |k: usize| !later.contains(&pending[k]);
                let rest = Outcome {
                    rcpts: (outcome.rcpts.iter().enumerate())
                        .filter(|(k, _)| settled(*k))
                        .map(|(_, r)| r.clone())
                        .collect(),
                    ..outcome.clone()
                };
                d.refusals
                    .extend(rest.refusals(&round.only(|k, _| settled(k))));
            }
            d.data = outcome.data;
            pending = later;
        }
        d.unanswered = d.error.is_some() && self.replies == replies;
        d
    }

    /// Send one message. `Err` means the transaction could not be completed and whether the
    /// message was delivered is unknown or no (always [`Code::TempFail`] for network trouble);
    /// otherwise the [`Outcome`] has every reply, refusals included.
    pub fn send(
        &mut self,
        env: &Envelope,
        message: &mut dyn Read,
        partial: Partial,
    ) -> Result<Outcome> {
        if self.broken {
            return Err(Error::new(
                Code::TempFail,
                "send",
                "connection is no longer usable",
            ));
        }
        if env.rcpts.is_empty() {
            return Err(Error::new(Code::Usage, "send", "no recipients"));
        }
        let t = self.opts.timeouts;
        if self.needs_rset {
            self.send_commands(&[Command::Rset], t.command)?;
            let r = self.read_reply(t.command, "RSET")?;
            if !r.is_positive() {
                self.broken = true;
                return Err(reply_error(Stage::Connect, "RSET", &r));
            }
            self.needs_rset = false;
        }
        if let (Some(limit), Some(size)) = (self.caps.size, env.size)
            && limit > 0
            && size > limit
        {
            return Err(Error::new(
                Code::DataErr,
                "message",
                format!("{size} bytes is over the server's limit of {limit} (SIZE)"),
            ));
        }
        if env.smtputf8 && !self.caps.smtputf8 {
            return Err(Error::new(
                Code::Unavailable,
                "message",
                "non-ASCII addresses need SMTPUTF8, which the server does not offer",
            ));
        }
        let (mail, rcpts) = self.envelope_commands(env);
        let n = rcpts.len();
        let mut outcome;
        if self.caps.pipelining {
            // RFC 2920 §3.1: MAIL, the RCPTs and DATA in one group, replies read after.
            let mut batch = vec![mail];
            batch.extend(rcpts);
            batch.push(Command::Data);
            self.send_commands(&batch, t.mail)?;
            outcome = Outcome {
                mail: self.read_reply(t.mail, "MAIL FROM")?,
                rcpts: Vec::with_capacity(n),
                data: None,
            };
            for _ in 0..n {
                let r = self.read_reply(t.mail, "RCPT TO")?;
                outcome.rcpts.push(r);
            }
            let data = self.read_data_reply(t.data_init)?;
            let go = outcome.mail.is_positive() && partial.proceed(&outcome.rcpts);
            if data.code != 354 {
                outcome.data = Some(data);
                self.needs_rset = true;
                return Ok(outcome);
            }
            if !go {
                // The server opened DATA although we must not send: the only way out that
                // delivers nothing is to drop the connection (RFC 5321 §4.1.1.4: no
                // end-of-data, no transaction).
                self.close();
                return Ok(outcome);
            }
        } else {
            self.send_commands(&[mail], t.mail)?;
            outcome = Outcome {
                mail: self.read_reply(t.mail, "MAIL FROM")?,
                rcpts: Vec::with_capacity(n),
                data: None,
            };
            if !outcome.mail.is_positive() {
                self.needs_rset = true;
                return Ok(outcome);
            }
            for r in rcpts {
                self.send_commands(&[r], t.mail)?;
                let reply = self.read_reply(t.mail, "RCPT TO")?;
                outcome.rcpts.push(reply);
            }
            if !partial.proceed(&outcome.rcpts) {
                self.needs_rset = true;
                return Ok(outcome);
            }
            self.send_commands(&[Command::Data], t.data_init)?;
            let data = self.read_data_reply(t.data_init)?;
            if data.code != 354 {
                outcome.data = Some(data);
                self.needs_rset = true;
                return Ok(outcome);
            }
        }
        // The server was in step up to its 354, so its replies so far are its answers: kept
        // when the rest breaks off. (Replies read before a failure there may be out of step
        // and are not trusted.)
        let reply = self.send_content(message, t.data_block).and_then(|()| {
            self.read_reply(
                t.data_term,
                "end of data (the message may have been delivered)",
            )
        });
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return Err(self.interrupt(outcome, e)),
        };
        if !reply.is_positive() {
            self.needs_rset = true;
        }
        outcome.data = Some(reply);
        Ok(outcome)
    }

    /// Keep the replies read so far for [`Session::deliver`], and pass the error on.
    fn interrupt(&mut self, outcome: Outcome, e: Error) -> Error {
        self.interrupted = Some(outcome);
        e
    }

    /// The reply to DATA. Only 354 opens the message (RFC 5321 §4.1.1.4); a 2xx there is a
    /// server out of step, or a reply meant for another command, and taking it as the final
    /// "accepted" would report a message as sent that never was.
    fn read_data_reply(&mut self, t: Duration) -> Result<Reply> {
        let data = self.read_reply(t, "DATA")?;
        if data.is_positive() {
            self.broken = true;
            return Err(Error::new(
                Code::TempFail,
                "DATA",
                format!("server answered {data} instead of 354; message not sent"),
            ));
        }
        Ok(data)
    }

    fn envelope_commands(&self, env: &Envelope) -> (Command, Vec<Command>) {
        let mut params = Vec::new();
        if let (Some(_), Some(size)) = (self.caps.size, env.size) {
            params.push(Param::new("SIZE", size.to_string()));
        }
        if env.body.is_eight_bit() && self.caps.eightbitmime {
            params.push(Param::new("BODY", "8BITMIME"));
        }
        if env.smtputf8 && self.caps.smtputf8 {
            params.push(Param::flag("SMTPUTF8"));
        }
        // RFC 8689 §4.2.1: the next hop is told, so it holds itself to it too (the relay
        // checked that the server offers it).
        if env.requiretls && self.caps.requiretls {
            params.push(Param::flag("REQUIRETLS"));
        }
        if self.caps.dsn {
            if let Some(ret) = &env.ret {
                params.push(Param::new("RET", ret.to_ascii_uppercase()));
            }
            if let Some(id) = &env.envid {
                params.push(Param::new("ENVID", xtext(id)));
            }
        }
        let mail = Command::Mail {
            from: env.from.clone(),
            params,
        };
        let rcpts = env.rcpts.iter().map(|r| self.rcpt_command(r)).collect();
        (mail, rcpts)
    }

    fn rcpt_command(&self, r: &Recipient) -> Command {
        let mut params = Vec::new();
        if self.caps.dsn {
            if let Some(n) = &r.notify {
                params.push(Param::new("NOTIFY", n.to_ascii_uppercase()));
            }
            // RFC 3461 §4.2: the original recipient as it came to us, else this one.
            match r.orcpt.as_deref().and_then(|o| o.split_once(';')) {
                Some((kind, orig)) if kind.is_ascii() && orig.is_ascii() => {
                    params.push(Param::new("ORCPT", format!("{kind};{}", xtext(orig))));
                }
                _ if r.addr.is_ascii() => {
                    params.push(Param::new("ORCPT", format!("rfc822;{}", xtext(&r.addr))));
                }
                _ => {}
            }
        }
        Command::Rcpt {
            to: r.addr.clone(),
            params,
        }
    }

    /// Stream the message through the DATA encoder onto the connection.
    fn send_content(&mut self, message: &mut dyn Read, timeout: Duration) -> Result<()> {
        self.trace(super::Direction::Sent, "(message content)");
        self.set_timing(timeout, None);
        let mut buf = vec![0u8; 64 * 1024];
        let mut enc = DataEncoder::new(self.conn.get_mut());
        let r = loop {
            let n = match message.read(&mut buf) {
                Ok(0) => {
                    break enc
                        .finish()
                        .map(drop)
                        .map_err(|e| net_error("sending message data", e));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Without an end-of-data the server discards what it got: close.
                Err(e) => break Err(Error::io(Code::TempFail, "read message", e)),
            };
            if let Err(e) = enc.write_all(&buf[..n]) {
                break Err(net_error("sending message data", e));
            }
        };
        if r.is_err() {
            self.close();
        }
        r
    }
}
