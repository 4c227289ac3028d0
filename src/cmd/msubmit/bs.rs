//! msubmit -bs: sendmail's "SMTP on standard input", which Alpine and other MUAs speak to
//! their sendmail over a pipe.
//!
//! Design: no second SMTP server. The session is mreceive's ([`crate::smtp::server`]) on
//! stdin/stdout with all its protections (DATA ends only at CRLF.CRLF and a bare CR or LF
//! refuses the message, so nothing can be smuggled; line, size and recipient limits; a
//! timeout on every read). The client is the local user, trusted as sendmail trusts its
//! caller: any recipient domain, no AUTH. Each message accepted goes the way of a message on
//! stdin without -bs: header fixes (Bcc removed, From/Date/Message-ID added), the account by
//! its sender, then the server (one connection kept for the session's messages) or the queue.
//! Our reply is the server's verdict: 250 only after its 250 for every recipient, or once the
//! message is durably queued (`--queue`, `--queue-on-failure`); its own 5xx reply and text
//! when it refused; 451 for a 4xx or network trouble, so the MUA keeps the message. Hence no
//! `dead.letter` here: the client has the message and our reply says it was not sent.

use super::{Args, Fate, QueueDir, Upstream, account, fix, header_from, queue_envelope};
use super::{message, send_or_queue};
use crate::config::Config;
use crate::envelope::Envelope;
use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::net::conn::{Conn, FdIo};
use crate::smtp::event::{Client, Event};
use crate::smtp::policy::Policy;
use crate::smtp::server::{self, Answer, Deliver, Peer, Settings, Transaction};
use crate::smtp::{EnhancedCode, Reply};
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

/// The largest message taken from the client; the server's own SIZE limit applies after.
const MAX_SIZE: u64 = 100 * 1024 * 1024;
/// Recipients per message; a server's lower limit is met with further transactions.
const MAX_RECIPIENTS: usize = 1000;
/// How long the client may keep us waiting (RFC 5321 §4.5.3.2.7: 5 minutes).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Serve one SMTP session on stdin/stdout. Ok when it ended with QUIT or at the end of input
/// between messages, whatever the replies to the messages said: the client has read them.
pub fn run(args: &Args, cfg: &Config, queue_dir: &QueueDir) -> Result<()> {
    let user = super::local_address();
    let user = user.rsplit_once('@').map_or(user.as_str(), |(u, _)| u);
    let settings = Settings {
        hostname: crate::message::stamp::fqdn(),
        // No local domains: every recipient is another domain's, allowed for `local_user`.
        policy: Policy::default(),
        max_size: MAX_SIZE,
        max_recipients: MAX_RECIPIENTS,
        max_received: 100,
        timeout: CLIENT_TIMEOUT,
        normalize: false,
        tls: None,
        passwords: None,
        insecure_auth: false,
        auth_failure_delay: Duration::ZERO,
        submission: false,
        local_user: Some(user.to_string()),
        software: "mailpipe msubmit".into(),
        // The MUA has the replies; the messages passed on are in msubmit's own --log.
        log: Box::new(|_: &Client<'_>, _: &Event<'_>| {}),
    };
    let relay = Relay {
        args,
        cfg,
        queue_dir,
        upstream: Mutex::new(Upstream::default()),
    };
    let conn = Conn::new(Box::new(FdIo::stdio(settings.timeout)));
    let ended = server::serve(conn, &settings, &Peer::default(), &relay, false);
    relay.upstream().quit();
    if ended?.clean {
        return Ok(());
    }
    Err(Error::new(
        Code::TempFail,
        "smtp session",
        "ended without QUIT (a timeout, too many errors, or the input ended inside a transaction)",
    ))
}

/// The [`Deliver`] that passes each message on to the server.
struct Relay<'a> {
    args: &'a Args,
    cfg: &'a Config,
    queue_dir: &'a QueueDir<'a>,
    upstream: Mutex<Upstream>,
}

impl Deliver for Relay<'_> {
    fn deliver(&self, tx: &Transaction, msg: &mut Buffer) -> Vec<Result<()>> {
        self.answer(tx, msg).results
    }

    /// All or nothing, as msubmit sends (past a server's recipient limit the recipients of
    /// earlier transactions may have it: see msubmit(1)).
    fn answer(&self, tx: &Transaction, msg: &mut Buffer) -> Answer {
        let reply = self.reply(tx, msg);
        let result = |_| match reply.is_positive() {
            true => Ok(()),
            false => Err(Error::new(
                if reply.is_transient() {
                    Code::TempFail
                } else {
                    Code::Unavailable
                },
                "send",
                &reply,
            )),
        };
        let results = tx.envelope.rcpts.iter().map(result).collect();
        Answer {
            reply,
            results,
            queued: Vec::new(),
        }
    }
}

impl Relay<'_> {
    /// The reply to the end of data: the server's verdict on the message.
    fn reply(&self, tx: &Transaction, msg: &mut Buffer) -> Reply {
        match self.pass_on(&tx.envelope, msg) {
            Ok(Fate::Sent(data)) => {
                let text = data.map(|d| d.text()).unwrap_or_default();
                r(250, (2, 0, 0), format!("sent: {text}"))
            }
            Ok(Fate::Queued(id, None)) => r(250, (2, 0, 0), format!("queued as {id}")),
            Ok(Fate::Queued(id, Some(f))) => r(
                250,
                (2, 0, 0),
                format!("queued as {id} ({})", f.chosen.error),
            ),
            Ok(Fate::Refused(f)) => match f.chosen.reply {
                // The server's refusal, with what it refused: `RCPT TO:<x>: unknown user`.
                Some(reply) if reply.is_permanent() => Reply::new(
                    reply.code,
                    reply.enhanced,
                    format!("{}: {} (not sent)", f.chosen.error.what(), reply.text()),
                ),
                reply => error_reply(&f.chosen.error, reply.and_then(|r| r.enhanced)),
            },
            Err(e) => error_reply(&e, None),
        }
    }

    fn upstream(&self) -> std::sync::MutexGuard<'_, Upstream> {
        self.upstream.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prepare the message as without -bs, then send or queue it.
    fn pass_on(&self, env: &Envelope, msg: &mut Buffer) -> Result<Fate> {
        let stats = message::Stats {
            eight_bit: env.body.is_eight_bit(),
            // The server stores LF line ends; each becomes CRLF on the wire (for SIZE=).
            bare_lf: line_ends(msg)?,
        };
        let hint = match env.from.is_empty() {
            true => header_from(msg.head()),
            false => Some(env.from.clone()),
        };
        let acct = account(self.args, self.cfg, hint.as_deref())?;
        let (mut prepared, _) = fix(self.args, msg, stats, &env.from)?;
        super::sign(self.args, &acct, &mut prepared)?;
        let rcpts = env.rcpts.iter().map(|rc| rc.addr.clone()).collect();
        let queued = queue_envelope(self.args, &acct, env.from.clone(), rcpts, &prepared)?;
        let mut upstream = self.upstream();
        send_or_queue(
            self.args,
            self.cfg,
            self.queue_dir,
            &queued,
            &mut prepared,
            &mut upstream,
        )
    }
}

/// The number of LFs in the spooled message.
fn line_ends(spool: &mut Buffer) -> Result<u64> {
    let mut r = spool
        .reader()
        .map_err(|e| Error::io(Code::TempFail, "read spooled message", e))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += memchr::memchr_iter(b'\n', &buf[..k]).count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(Code::TempFail, "read spooled message", e)),
        }
    }
}

fn r(code: u16, e: (u8, u16, u16), text: impl Into<String>) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(e.0, e.1, e.2)), text)
}

/// The reply for a failure that is not a server's permanent refusal: 451 when a retry may
/// work (a 4xx, network trouble, a local problem such as the configuration), else 554.
fn error_reply(e: &Error, enhanced: Option<EnhancedCode>) -> Reply {
    match e.code() {
        c if c.is_temporary() => Reply::new(
            451,
            Some(
                enhanced
                    .filter(|x| x.class == 4)
                    .unwrap_or(EnhancedCode::new(4, 3, 0)),
            ),
            e.to_string(),
        ),
        // RFC 3463 X.3.5: system incorrectly configured; the MUA keeps the message.
        Code::Config => r(451, (4, 3, 5), e.to_string()),
        _ => r(554, (5, 3, 0), e.to_string()),
    }
}
