//! One SMTP transaction's results: every reply coming back for an envelope
//! ([`crate::envelope`], re-exported here), and what the replies mean as sysexits codes.
//! Shared by the client (msubmit, mrelay) and those that act on its results.

pub use crate::envelope::{Body, Envelope, Recipient};

use super::reply::Reply;
use crate::exit::{Code, Error};

/// What to do when some recipients were refused and others accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partial {
    /// Send nothing (submission: the user fixes the address and sends again, without
    /// duplicates to the others).
    Abort,
    /// Send to the accepted ones (relaying: the refused ones are bounced or retried).
    SendToAccepted,
    /// Like `Abort`, except that recipients refused only for being too many (452, RFC 5321
    /// §4.5.3.1.10) do not stop the others: the caller sends to them in a next transaction.
    AbortUnlessTooMany,
}

impl Partial {
    /// Whether to send the message when `rcpts` are the replies to the RCPTs.
    pub fn proceed(self, rcpts: &[Reply]) -> bool {
        let accepted = rcpts.iter().filter(|r| r.is_positive()).count();
        accepted > 0
            && match self {
                Partial::Abort => accepted == rcpts.len(),
                Partial::SendToAccepted => true,
                Partial::AbortUnlessTooMany => rcpts.iter().all(|r| r.is_positive() || too_many(r)),
            }
    }
}

/// True for the reply a server gives when its recipients-per-message limit is reached:
/// 452 (RFC 5321 §4.5.3.1.10), with 4.5.3 when it sends enhanced codes (RFC 3463).
pub fn too_many(reply: &Reply) -> bool {
    reply.code == 452
        && reply
            .enhanced
            .is_none_or(|e| (e.subject, e.detail) == (5, 3))
}

/// Every reply of one transaction.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The reply to MAIL.
    pub mail: Reply,
    /// The reply to each RCPT, in envelope order; empty when MAIL was refused without
    /// pipelining.
    pub rcpts: Vec<Reply>,
    /// The final reply to the message (after end of data), or the refusal of DATA itself;
    /// `None` when no DATA was attempted.
    pub data: Option<Reply>,
}

impl Outcome {
    /// True when the server took responsibility for the message for every recipient.
    pub fn all_accepted(&self, envelope: &Envelope) -> bool {
        self.mail.is_positive()
            && self.rcpts.len() == envelope.rcpts.len()
            && self.rcpts.iter().all(Reply::is_positive)
            && self.data.as_ref().is_some_and(Reply::is_positive)
    }

    /// The failures, each an error with its exit code and a diagnostic like
    /// `RCPT TO:<x@y>: 550 5.1.1 ...`, and the reply behind it. Empty when everything was
    /// accepted.
    pub fn refusals(&self, envelope: &Envelope) -> Vec<Refusal> {
        let refused = |stage, what: &str, reply: &Reply| Refusal {
            error: reply_error(stage, what, reply),
            reply: Some(reply.clone()),
        };
        let mut out = Vec::new();
        if !self.mail.is_positive() {
            let what = format!("MAIL FROM:<{}>", envelope.from);
            out.push(refused(Stage::Mail, &what, &self.mail));
            return out;
        }
        for (r, reply) in envelope.rcpts.iter().zip(&self.rcpts) {
            if !reply.is_positive() {
                let what = format!("RCPT TO:<{}>", r.addr);
                out.push(refused(Stage::Rcpt, &what, reply));
            }
        }
        let none_accepted = !self.rcpts.iter().any(Reply::is_positive);
        match &self.data {
            // A pipelined DATA refused because no recipient was accepted says nothing new.
            Some(_) if none_accepted && !out.is_empty() => {}
            Some(d) if !d.is_positive() => out.push(refused(Stage::Data, "DATA", d)),
            None if out.is_empty() => out.push(Refusal {
                error: Error::new(Code::TempFail, "DATA", "not sent"),
                reply: None,
            }),
            _ => {}
        }
        out
    }
}

/// One failure of a transaction: the error (exit code, diagnostic) and the server's reply
/// behind it, when there was one (msubmit -bs passes it on to its own client).
#[derive(Debug)]
pub struct Refusal {
    /// The error, as a tool reports it.
    pub error: Error,
    /// The server's reply.
    pub reply: Option<Reply>,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Refusal {
        Refusal { error, reply: None }
    }
}

/// Which command a reply answered, for choosing an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Greeting, EHLO, STARTTLS.
    Connect,
    /// AUTH.
    Auth,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA and end of data.
    Data,
}

/// The sysexits code for a failure reply, as sendmail and msmtp use them: 4xx is 75; a
/// refused address 67 (recipient) or 65 (sender); content and size 65; policy and
/// authentication 77; anything else permanent 69.
pub fn reply_code(stage: Stage, reply: &Reply) -> Code {
    if !reply.is_permanent() {
        return Code::TempFail;
    }
    let subject = reply.enhanced.map(|e| e.subject);
    match (stage, subject, reply.code) {
        (Stage::Auth, _, _) => Code::NoPerm,
        (_, Some(7), _) => Code::NoPerm,
        (Stage::Rcpt, Some(1), _) | (Stage::Rcpt, None, 550 | 551 | 553) => Code::NoUser,
        (Stage::Mail, Some(1), _) | (Stage::Mail, None, 553) => Code::DataErr,
        (Stage::Mail | Stage::Data, Some(3 | 6), _) | (Stage::Mail | Stage::Data, None, 552) => {
            Code::DataErr
        }
        _ => Code::Unavailable,
    }
}

/// An error for a failure reply: `what: reply`.
pub fn reply_error(stage: Stage, what: &str, reply: &Reply) -> Error {
    Error::new(reply_code(stage, reply), what, reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::EnhancedCode;

    #[test]
    fn partial_policies() {
        let ok = Reply::new(250, None, "ok");
        let full = Reply::new(452, Some(EnhancedCode::new(4, 5, 3)), "too many");
        let storage = Reply::new(452, Some(EnhancedCode::new(4, 3, 1)), "no space");
        let gone = Reply::new(550, None, "no");
        let all = [ok.clone(), full.clone()];
        assert!(!Partial::Abort.proceed(&all));
        assert!(Partial::AbortUnlessTooMany.proceed(&all));
        assert!(!Partial::AbortUnlessTooMany.proceed(&[ok.clone(), storage]));
        assert!(!Partial::AbortUnlessTooMany.proceed(&[ok.clone(), gone.clone()]));
        assert!(Partial::SendToAccepted.proceed(&[ok.clone(), gone.clone()]));
        assert!(!Partial::SendToAccepted.proceed(&[gone, full]));
        assert!(Partial::Abort.proceed(&[ok]));
    }
}
