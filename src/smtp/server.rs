//! The SMTP server session (RFC 5321 §4.1, §4.3): one state machine over any [`Conn`], so the
//! same code runs under inetd, behind `--listen`, and in tests and fuzzing on bytes in memory;
//! msubmit -bs runs it on a pipe for a trusted local user ([`Settings::local_user`]).
//!
//! The session decides what to accept; what happens to an accepted message is the caller's
//! [`Deliver`]. A 250 to the end of data is sent only after `Deliver` reported every recipient
//! done, and the session never answers before the data's real end (see
//! [`super::inbound`]; BDAT chunks, RFC 3030, go through the same decoder). Everything a
//! client controls is bounded: command lines (512 octets), text lines (1000), the message
//! size, the recipient count, the number of bad commands and failed AUTHs, and the time each
//! read or write may take. Any byte sequence gets an SMTP reply or a closed connection,
//! never a panic. What happened (connect, TLS, refusals, each message with each recipient's
//! outcome, disconnect) goes to the caller's [`Log`] as [`super::event`]s: this module never
//! prints.
//!
//! Several recipients and a delivery that fails for some: SMTP has one reply for the whole
//! DATA (LMTP's per-recipient replies are not available), so the worst outcome wins. Any
//! temporary failure answers 451, and the client retries for all recipients, which can give
//! the ones that already got it a duplicate (a duplicate, never a loss). Otherwise any
//! permanent failure answers 554 naming the failed recipients; the others have the message
//! although the client's bounce will say otherwise.

use super::command::{Command, MAX_COMMAND_LINE};
use super::ehlo::Capabilities;
use super::event::{Client, End, Event, Log};
use super::inbound::{Decoder, Fault, Limits};
use super::policy::Policy;
use super::reply::{EnhancedCode, Reply};
use crate::envelope::{Body, Envelope, Recipient};
use crate::exit::{Code, Error};
use crate::message::buffer::Buffer;
use crate::net::conn::{Conn, Line};
use crate::passwd::Passwords;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

/// How the server behaves; shared by all sessions.
pub struct Settings {
    /// Our host name, in the greeting, EHLO and Received:.
    pub hostname: String,
    /// The MX's recipient policy.
    pub policy: Policy,
    /// The largest message in octets (RFC 1870 SIZE).
    pub max_size: u64,
    /// The most recipients per message.
    pub max_recipients: usize,
    /// The most `Received:` headers before a message is taken for a loop.
    pub max_received: usize,
    /// The time any one read or write may take.
    pub timeout: Duration,
    /// Turn bare CR and LF in DATA into line ends instead of refusing the message.
    pub normalize: bool,
    /// TLS for STARTTLS (and implicit TLS).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Users who may AUTH; `None` offers no AUTH.
    pub passwords: Option<Arc<Passwords>>,
    /// Allow AUTH without TLS (tests only).
    pub insecure_auth: bool,
    /// How long to wait before answering a failed AUTH, times the failures so far: slows
    /// password guessing (Dovecot's auth_failure_delay, Postfix's smtpd_error_sleep_time).
    pub auth_failure_delay: Duration,
    /// Submission role: MAIL requires AUTH.
    pub submission: bool,
    /// A local user speaking SMTP on a pipe (msubmit -bs): trusted like an authenticated
    /// client (recipients anywhere, no AUTH needed), and named in the Received: header.
    pub local_user: Option<String>,
    /// What the `Received:` header names as the receiving software (`mailpipe mreceive`):
    /// the caller's to say, so the protocol module knows no tool by name.
    pub software: String,
    /// Where the session's events go (connect, TLS, refusals, each message and its
    /// recipients' outcomes, disconnect): the tool's log, so this module never prints.
    pub log: Box<dyn Log>,
}

/// One transaction: its envelope, and what the server learned that is not envelope.
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    /// The envelope (domains of local recipients normalized).
    pub envelope: Envelope,
    /// For each recipient, in order: the local user who gets the message here, or `None` for
    /// another domain (authenticated mail, to be relayed through the queue).
    pub users: Vec<Option<String>>,
    /// The authenticated user, if any (recipients of other domains are then allowed).
    pub auth: Option<String>,
}

impl Transaction {
    /// Each recipient with its local user (`None`: another domain's).
    pub fn recipients(&self) -> impl Iterator<Item = (&Recipient, Option<&str>)> {
        (self.envelope.rcpts.iter()).zip(self.users.iter().map(Option::as_deref))
    }
}

/// What happens to accepted messages.
pub trait Deliver: Sync {
    /// Hand over the message (its `Received:` header first); one result per recipient, in
    /// order. A result is `Ok` only when the message is durably handed over.
    fn deliver(&self, tx: &Transaction, msg: &mut Buffer) -> Vec<crate::Result<()>>;

    /// Hand over the message and choose the reply to its end of data: by default
    /// [`verdict`] on [`Deliver::deliver`]'s results, which come along for the log. A
    /// `Deliver` that passes the message on to another server (msubmit -bs) answers with
    /// that server's refusal instead of a summary.
    fn answer(&self, tx: &Transaction, msg: &mut Buffer) -> Answer {
        let results = self.deliver(tx, msg);
        Answer {
            reply: verdict(tx, &results),
            results,
            queued: Vec::new(),
        }
    }
}

/// What [`Deliver::answer`] did with a message: the reply, and for the log each
/// recipient's result and the queue entry it now waits in.
pub struct Answer {
    /// The reply to the end of data.
    pub reply: Reply,
    /// One result per recipient, in order.
    pub results: Vec<crate::Result<()>>,
    /// Per recipient, the id of the queue entry that holds it now (for mrelay or msubmit
    /// to send on); empty or `None` where it was not queued.
    pub queued: Vec<Option<String>>,
}

/// How a session ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ended {
    /// The messages accepted (250 to their end of data).
    pub accepted: usize,
    /// The client said QUIT, or closed its side with no transaction open; false after a
    /// timeout, too many errors, or the end of input inside a transaction.
    pub clean: bool,
}

/// Where the client connects from.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The IP address, when known.
    pub ip: Option<std::net::IpAddr>,
}

/// Bad commands tolerated before we hang up (Postfix's smtpd_hard_error_limit is 20).
const MAX_ERRORS: u32 = 20;

fn r(code: u16, e: (u8, u16, u16), text: impl Into<String>) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(e.0, e.1, e.2)), text)
}

struct Session<'a> {
    conn: Conn,
    s: &'a Settings,
    peer: &'a Peer,
    deliver: &'a dyn Deliver,
    /// The id in every log line of the session.
    id: String,
    /// The id of the message being received (its `Received:` header's).
    message_id: String,
    helo: Option<(String, bool)>,
    tx: Option<Transaction>,
    /// A BDAT transfer in progress: the content so far and its envelope.
    bdat: Option<(Decoder<Buffer>, Transaction)>,
    auth: Option<String>,
    errors: u32,
    auth_failures: crate::passwd::Failures,
    /// Command lines read, for the log.
    commands: u32,
    /// Messages accepted.
    accepted: usize,
    /// Why the session ends when the connection fails ([`End::Tls`] during a handshake).
    io_end: End,
    /// When the session last got somewhere: its start, or its last accepted message.
    progress: std::time::Instant,
}

/// Serve one SMTP session on `conn` until QUIT, end of input, a timeout or too many errors.
/// With `implicit_tls`, the TLS handshake comes first (submissions on port 465, RFC 8314).
/// Returns how the session ended.
pub fn serve(
    conn: Conn,
    s: &Settings,
    peer: &Peer,
    deliver: &dyn Deliver,
    implicit_tls: bool,
) -> crate::Result<Ended> {
    let mut ses = Session {
        conn,
        s,
        peer,
        deliver,
        id: random_id(6).to_ascii_uppercase(),
        message_id: String::new(),
        helo: None,
        tx: None,
        bdat: None,
        auth: None,
        errors: 0,
        auth_failures: crate::passwd::Failures::new(s.auth_failure_delay),
        commands: 0,
        accepted: 0,
        io_end: End::Io,
        progress: std::time::Instant::now(),
    };
    ses.conn.set_timeout(s.timeout);
    ses.log(&Event::Connect);
    let result = ses.run(implicit_tls);
    ses.conn.close();
    let (end, error) = match &result {
        Ok((_, end)) => (*end, None),
        Err(e) => (ses.io_end, Some(e)),
    };
    ses.log(&Event::Disconnect {
        end,
        error,
        commands: ses.commands,
        errors: ses.errors,
        accepted: ses.accepted,
    });
    result
        .map(|(ended, _)| ended)
        .map_err(|e| Error::io(Code::IoErr, "session", e))
}

/// The first author in the message's From: that its authenticated sender does not own
/// (by the rule MAIL FROM is judged by, [`Policy::check_sender`]): a password is no licence
/// to write in another's name either. `None` without AUTH or when every author is the
/// login's. (Only the header in memory is read: a From: past the first megabytes of header
/// is not looked for.)
fn foreign_author(s: &Settings, tx: &Transaction, spool: &Buffer) -> Option<String> {
    use crate::message::{address, header};
    let login = tx.auth.as_deref()?;
    let block = header::block(spool.head());
    header::fields(block)
        .iter()
        .filter(|f| f.is("from"))
        .flat_map(|f| address::parse_list_lenient(&f.value_raw()))
        .map(|m| format!("{}@{}", m.addr.local, m.addr.domain))
        .find(|a| s.policy.check_sender(login, a).is_err())
}

/// `bytes` random bytes in hex.
fn random_id(bytes: usize) -> String {
    let mut id = vec![0u8; bytes];
    crate::message::stamp::fill_random(&mut id);
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session<'_> {
    fn send(&mut self, reply: Reply) {
        self.conn.send(&reply.to_bytes());
    }

    /// Tell the log about `event`, with who the client is now.
    fn log(&self, event: &Event<'_>) {
        let tls = self.conn.tls_summary();
        let client = Client {
            session: &self.id,
            ip: self.peer.ip,
            helo: self.helo.as_ref().map(|h| h.0.as_str()),
            auth: self.auth.as_deref(),
            tls: tls.as_deref(),
        };
        self.s.log.log(&client, event);
    }

    /// Start TLS on the connection; a failed handshake is logged (the operator may have to
    /// act: an expired certificate fails every client).
    fn start_tls(&mut self, tls: Arc<rustls::ServerConfig>) -> io::Result<()> {
        match self.conn.start_tls(tls) {
            Ok(()) => {
                self.log(&Event::Tls);
                Ok(())
            }
            Err(error) => {
                self.log(&Event::TlsFailed { error: &error });
                Err(error)
            }
        }
    }

    /// The session: how it ended, and why.
    fn run(&mut self, implicit_tls: bool) -> io::Result<(Ended, End)> {
        if implicit_tls {
            let Some(tls) = self.s.tls.clone() else {
                return Err(io::Error::other("implicit TLS without a certificate"));
            };
            self.io_end = End::Tls;
            self.start_tls(tls)?;
            self.io_end = End::Io;
        }
        // RFC 5321 §4.3.1: the greeting names us.
        self.send(Reply::new(
            220,
            None,
            format!("{} ESMTP mailpipe", self.s.hostname),
        ));
        let ended = |ses: &Self, clean, end| {
            let accepted = ses.accepted;
            Ok((Ended { accepted, clean }, end))
        };
        let mut accepted = self.accepted;
        loop {
            if accepted != self.accepted {
                (accepted, self.progress) = (self.accepted, std::time::Instant::now());
            }
            // Postfix's stress mode, and more: while the server's sessions are near their
            // limit, a session that accepted no message for the short timeout gives its
            // place up, so clients that hold sessions sending NOOP now and then cannot keep
            // one that has mail out for longer than that.
            if let Some(short) = self.conn.stressed()
                && self.progress.elapsed() >= short
            {
                self.send(r(
                    421,
                    (4, 7, 0),
                    format!("{} busy, try again later", self.s.hostname),
                ));
                let _ = self.conn.flush();
                return ended(self, false, End::Timeout);
            }
            // Between transactions a server shutdown may end the session (see below).
            let idle = self.tx.is_none() && self.bdat.is_none();
            self.conn.set_interruptible(idle);
            // Also when the next command is already here (pipelined after the end of data):
            // else a client that starts one transaction after another keeps a stopping
            // server running for ever.
            let read = if idle && self.conn.stopping() {
                Err(io::Error::new(crate::net::conn::STOPPING, "shutting down"))
            } else {
                self.conn.read_line(MAX_COMMAND_LINE)
            };
            self.conn.set_interruptible(false);
            let line = match read {
                Ok(Line::Text(l)) => l,
                Ok(Line::TooLong) => {
                    self.commands += 1;
                    self.send(r(500, (5, 5, 2), "line too long"));
                    if self.error() {
                        return ended(self, false, End::Errors);
                    }
                    continue;
                }
                Ok(Line::Eof) => {
                    let open = self.tx.is_some() || self.bdat.is_some();
                    return ended(self, !open, End::Closed);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.send(r(421, (4, 4, 2), format!("{} timeout", self.s.hostname)));
                    let _ = self.conn.flush();
                    return ended(self, false, End::Timeout);
                }
                // RFC 5321 §3.8: a server going down answers 421 to what comes next.
                Err(e) if e.kind() == crate::net::conn::STOPPING => {
                    self.send(r(
                        421,
                        (4, 3, 2),
                        format!("{} shutting down", self.s.hostname),
                    ));
                    let _ = self.conn.flush();
                    return ended(self, false, End::Shutdown);
                }
                Err(e) => return Err(e),
            };
            self.commands += 1;
            let cmd = match Command::parse(&line) {
                Ok(c) => c,
                Err(e) => {
                    self.send(e.reply());
                    if self.error() {
                        return ended(self, false, End::Errors);
                    }
                    continue;
                }
            };
            let next = match self.command(cmd) {
                Ok(next) => next,
                // A client that stalls inside a command (an AUTH exchange) is told, like an
                // idle one.
                Err(e) => self.read_failed(e)?,
            };
            if let Next::Quit(end) = next {
                self.conn.flush()?;
                return ended(self, end == End::Quit, end);
            }
        }
    }

    /// Send `reply` refusing `command` for policy, and log it.
    fn reject(
        &mut self,
        command: &'static str,
        from: Option<&str>,
        to: Option<&str>,
        user: Option<&str>,
        reply: Reply,
    ) {
        self.log(&Event::Reject {
            command,
            from,
            to,
            user,
            reply: &reply,
        });
        self.send(reply);
    }

    /// Count a bad command; true when it was one too many (then 421 is queued).
    fn error(&mut self) -> bool {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.send(r(421, (4, 7, 0), "too many errors, closing"));
            return true;
        }
        false
    }

    fn command(&mut self, cmd: Command) -> io::Result<Next> {
        let s = self.s;
        match cmd {
            Command::Ehlo(domain) => {
                let caps = self.capabilities();
                self.helo = Some((domain, true));
                self.tx = None;
                self.bdat = None;
                self.send(caps.to_reply("hello"));
            }
            Command::Helo(domain) => {
                self.helo = Some((domain, false));
                self.tx = None;
                self.bdat = None;
                self.send(Reply::new(250, None, s.hostname.clone()));
            }
            Command::Mail { from, params } => self.mail(from, &params),
            // RFC 5321 §4.1.1.11: 555 for parameters we do not implement (we offer no RCPT
            // extension; a NOTIFY=NEVER silently ignored would still bounce).
            Command::Rcpt { params, .. } if !params.is_empty() => {
                self.send(r(555, (5, 5, 4), "unsupported parameter"));
            }
            Command::Rcpt { to, .. } => return Ok(self.rcpt(&to)),
            Command::Data => return self.data(),
            Command::Rset => {
                self.tx = None;
                self.bdat = None;
                self.send(r(250, (2, 0, 0), "ok"));
            }
            Command::Noop => self.send(r(250, (2, 0, 0), "ok")),
            Command::Help => self.send(r(214, (2, 0, 0), "see RFC 5321")),
            // RFC 5321 §3.5.3: 252 when we will not say.
            Command::Vrfy(_) => self.send(r(252, (2, 5, 0), "send some mail, I'll try my best")),
            Command::Quit => {
                self.send(r(221, (2, 0, 0), "bye"));
                return Ok(Next::Quit(End::Quit));
            }
            Command::StartTls => return self.starttls(),
            Command::Auth { mechanism, initial } => return self.auth(&mechanism, initial),
            Command::Bdat { size, last } => return self.bdat(size, last),
        }
        Ok(Next::Go)
    }

    fn capabilities(&self) -> Capabilities {
        let s = self.s;
        let auth_ok = s.passwords.is_some() && (self.conn.is_tls() || s.insecure_auth);
        Capabilities {
            domain: s.hostname.clone(),
            pipelining: true,
            size: Some(s.max_size),
            eightbitmime: true,
            smtputf8: true,
            // RFC 8689 §3: offered in the EHLO response that follows TLS, never before.
            requiretls: self.conn.is_tls(),
            starttls: s.tls.is_some() && !self.conn.is_tls(),
            enhanced_status_codes: true,
            chunking: true,
            auth: if auth_ok {
                vec!["PLAIN".into(), "LOGIN".into()]
            } else {
                Vec::new()
            },
            ..Capabilities::default()
        }
    }

    fn mail(&mut self, from: String, params: &[super::Param]) {
        if self.helo.is_none() {
            return self.send(r(503, (5, 5, 1), "send EHLO or HELO first"));
        }
        if self.tx.is_some() || self.bdat.is_some() {
            return self.send(r(503, (5, 5, 1), "nested MAIL command"));
        }
        let refuse = |ses: &mut Self, reply: Reply| {
            ses.reject("MAIL", Some(&from), None, None, reply);
        };
        if self.s.submission && self.auth.is_none() {
            return refuse(self, r(530, (5, 7, 0), "authentication required"));
        }
        // Postfix's reject_sender_login_mismatch: a password is not a licence to send as
        // anyone.
        if let Some(login) = &self.auth
            && let Err(reply) = self.s.policy.check_sender(login, &from)
        {
            return refuse(self, reply);
        }
        let smtputf8 = params
            .iter()
            .any(|p| p.keyword == "SMTPUTF8" && p.value.is_none());
        if !smtputf8 && !from.is_ascii() {
            return refuse(self, not_ascii());
        }
        let mut requiretls = false;
        for p in params {
            let v = p.value.as_deref().unwrap_or("");
            match p.keyword.as_str() {
                // RFC 8689 §4.1: only on a TLS session (where it was offered).
                "REQUIRETLS" if p.value.is_none() => match self.conn.is_tls() {
                    true => requiretls = true,
                    false => {
                        let plain = r(530, (5, 7, 10), "REQUIRETLS needs a TLS session");
                        return refuse(self, plain);
                    }
                },
                // RFC 1870 §6: refuse at once what will be too big.
                "SIZE" => match v.parse::<u64>() {
                    Ok(n) if n > self.s.max_size => {
                        let too_big = r(552, (5, 3, 4), "message size exceeds fixed limit");
                        return refuse(self, too_big);
                    }
                    Ok(_) => {}
                    Err(_) => return self.send(r(501, (5, 5, 4), "bad SIZE value")),
                },
                "BODY" if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
                "SMTPUTF8" if p.value.is_none() => {}
                // RFC 4954 §5: AUTH=<> or an identity; we rely on our own AUTH only.
                "AUTH" => {}
                _ => return refuse(self, r(555, (5, 5, 4), "unsupported parameter")),
            }
        }
        self.tx = Some(Transaction {
            envelope: Envelope {
                from,
                smtputf8,
                requiretls,
                ..Envelope::default()
            },
            users: Vec::new(),
            auth: self.auth.clone(),
        });
        self.send(r(250, (2, 1, 0), "sender ok"));
    }

    fn rcpt(&mut self, to: &str) -> Next {
        let Some(tx) = &self.tx else {
            self.send(r(503, (5, 5, 1), "need MAIL first"));
            return Next::Go;
        };
        let from = tx.envelope.from.clone();
        let refuse = |ses: &mut Self, reply: Reply| {
            ses.reject("RCPT", Some(&from), Some(to), None, reply);
        };
        if tx.envelope.rcpts.len() >= self.s.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452, the client sends the rest in another transaction.
            refuse(self, r(452, (4, 5, 3), "too many recipients"));
            return Next::Go;
        }
        if !tx.envelope.smtputf8 && !to.is_ascii() {
            refuse(self, not_ascii());
            return if self.error() {
                Next::Quit(End::Errors)
            } else {
                Next::Go
            };
        }
        let (address, user) = match self.s.policy.check(to) {
            Ok(l) => (l.address, Some(l.user)),
            // An authenticated client (or the trusted local user) may send anywhere: other
            // domains go to the outgoing queue. Our own domains are judged as for anyone
            // (unknown users stay unknown).
            Err(_)
                if (tx.auth.is_some() || self.s.local_user.is_some())
                    && !self.s.policy.is_local_address(to) =>
            {
                (to.to_string(), None)
            }
            // A refused recipient counts as a bad command (as in Postfix's hard error
            // limit): else one session could probe user names (with --users) or relay
            // tricks without end.
            Err(reply) => {
                refuse(self, reply);
                return if self.error() {
                    Next::Quit(End::Errors)
                } else {
                    Next::Go
                };
            }
        };
        if let Some(tx) = &mut self.tx {
            // The same recipient again gets the message once, not once per RCPT: else one
            // message of --max-size, repeated --max-recipients times, is stored that often.
            // (Local parts of our own users compare without case, as their mailbox does.)
            let same = |(a, u): (&Recipient, Option<&str>)| match (u, &user) {
                (Some(_), Some(_)) => a.addr.eq_ignore_ascii_case(&address),
                (None, None) => a.addr == address,
                _ => false,
            };
            if !tx.recipients().any(same) {
                tx.envelope.rcpts.push(Recipient::new(address));
                tx.users.push(user);
            }
        }
        self.send(r(250, (2, 1, 5), "recipient ok"));
        Next::Go
    }

    /// The transaction ready for content, or the reply why not.
    fn take_tx(&mut self) -> Option<Transaction> {
        if self.bdat.is_some() {
            self.send(r(503, (5, 5, 1), "BDAT transfer in progress"));
            return None;
        }
        match self.tx.take() {
            None => self.send(r(503, (5, 5, 1), "need MAIL first")),
            // RFC 5321 §3.3: the transaction stays; only this command fails.
            Some(tx) if tx.envelope.rcpts.is_empty() => {
                self.tx = Some(tx);
                self.send(r(554, (5, 5, 1), "no valid recipients"));
            }
            Some(tx) => return Some(tx),
        }
        None
    }

    fn decoder(&mut self, tx: &Transaction, chunked: bool) -> Decoder<Buffer> {
        self.message_id = random_id(8);
        let mut spool = Buffer::new();
        let _ = spool.write_all(self.received(tx).as_bytes());
        let limits = Limits {
            max_size: self.s.max_size,
            max_received: self.s.max_received,
            normalize: self.s.normalize,
        };
        if chunked {
            Decoder::chunked(spool, limits)
        } else {
            Decoder::new(spool, limits)
        }
    }

    /// What to do when reading content failed: 421 on a timeout, end the session either way.
    fn read_failed(&mut self, e: io::Error) -> io::Result<Next> {
        if e.kind() == io::ErrorKind::TimedOut {
            self.send(r(421, (4, 4, 2), format!("{} timeout", self.s.hostname)));
            return Ok(Next::Quit(End::Timeout));
        }
        Err(e)
    }

    fn data(&mut self) -> io::Result<Next> {
        let Some(tx) = self.take_tx() else {
            return Ok(Next::Go);
        };
        self.send(Reply::new(354, None, "end data with <CR><LF>.<CR><LF>"));
        let mut decoder = self.decoder(&tx, false);
        match self.conn.read_data(&mut decoder) {
            Ok(true) => Ok(self.finish(tx, decoder)),
            // The client left before the end: nothing was accepted, nothing is kept.
            Ok(false) => Ok(Next::Quit(End::Closed)),
            Err(e) => self.read_failed(e),
        }
    }

    /// BDAT (RFC 3030): the chunk's octets follow the command and are always read, whatever
    /// the reply; the last chunk's reply is the message's.
    fn bdat(&mut self, size: u64, last: bool) -> io::Result<Next> {
        let mut bdat = match self.bdat.take() {
            Some(b) => Some(b),
            None => self.take_tx().map(|tx| (self.decoder(&tx, true), tx)),
        };
        let complete = match &mut bdat {
            Some((decoder, _)) => self.conn.read_exact_with(size, |c| decoder.chunk(c)),
            None => self.conn.read_exact_with(size, |_| {}),
        };
        match complete {
            Ok(true) => {}
            Ok(false) => return Ok(Next::Quit(End::Closed)),
            Err(e) => return self.read_failed(e),
        }
        let Some((mut decoder, tx)) = bdat else {
            return Ok(Next::Go); // refused above, octets consumed
        };
        if last {
            decoder.finish();
            return Ok(self.finish(tx, decoder));
        }
        if let Some(f) = decoder.fault() {
            // RFC 3030 §2: a failed chunk fails the transaction; the client stops sending.
            let mut tx = tx;
            tx.envelope.size = Some(decoder.size());
            self.refuse_content(&tx, fault_reply(f));
            return Ok(Next::Go);
        }
        self.send(r(250, (2, 0, 0), format!("{size} octets received")));
        self.bdat = Some((decoder, tx));
        Ok(Next::Go)
    }

    /// The end of a message: refuse it for what the decoder found, or deliver it.
    fn finish(&mut self, mut tx: Transaction, decoder: Decoder<Buffer>) -> Next {
        tx.envelope.size = Some(decoder.size());
        if let Some(f) = decoder.fault() {
            self.refuse_content(&tx, fault_reply(f));
            return Next::Go;
        }
        tx.envelope.body = Body::of(decoder.eight_bit());
        let mut spool = decoder.into_inner();
        if let (Some(login), Some(author)) = (&tx.auth, foreign_author(self.s, &tx, &spool)) {
            let why = format!("From: {author} not owned by user {login}");
            self.refuse_content(&tx, r(550, (5, 7, 1), why));
            return Next::Go;
        }
        let start = std::time::Instant::now();
        let Answer {
            reply,
            results,
            queued,
        } = self.deliver.answer(&tx, &mut spool);
        self.log(&Event::Message {
            id: &self.message_id,
            envelope: &tx.envelope,
            users: &tx.users,
            reply: &reply,
            results: Some(&results),
            queued: &queued,
            delay: start.elapsed(),
        });
        if reply.is_positive() {
            self.accepted += 1;
        }
        self.send(reply);
        Next::Go
    }

    /// Refuse a message for its content (what the decoder found), and log it.
    fn refuse_content(&mut self, tx: &Transaction, reply: Reply) {
        self.log(&Event::Message {
            id: &self.message_id,
            envelope: &tx.envelope,
            users: &tx.users,
            reply: &reply,
            results: None,
            queued: &[],
            delay: Duration::ZERO,
        });
        self.send(reply);
    }

    /// The trace header, RFC 5321 §4.4, with RFC 3848's protocol names.
    fn received(&self, tx: &Transaction) -> String {
        let helo = self
            .helo
            .as_ref()
            .map(|h| h.0.as_str())
            .unwrap_or("unknown");
        let helo = comment_safe(helo, 128);
        let ip = match self.peer.ip {
            Some(std::net::IpAddr::V6(ip)) => format!(" ([IPv6:{ip}])"),
            Some(ip) => format!(" ([{ip}])"),
            None => String::new(),
        };
        let esmtp = self.helo.as_ref().is_some_and(|h| h.1);
        let with = match (esmtp, self.conn.is_tls(), tx.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let tls = self
            .conn
            .tls_summary()
            .map(|t| format!("\n\t(using {t})"))
            .unwrap_or_default();
        let id = &self.message_id;
        // The recipient only when there is one: more would disclose the Bcc list.
        let rcpt = match tx.envelope.rcpts.as_slice() {
            [one] => format!("\n\tfor <{}>", one.addr),
            _ => String::new(),
        };
        // Postfix's sendmail says `from userid N`; the name is as safe as the HELO above.
        let software = match &self.s.local_user {
            Some(u) => format!("{}, from user {}", self.s.software, comment_safe(u, 64)),
            None => self.s.software.clone(),
        };
        format!(
            "Received: from {helo}{ip}\n\tby {} ({software}) with {with} id {id}{tls}{rcpt};\n\t{}\n",
            self.s.hostname,
            crate::message::stamp::date_now()
        )
    }

    fn starttls(&mut self) -> io::Result<Next> {
        let Some(tls) = self.s.tls.clone() else {
            self.send(r(502, (5, 5, 1), "STARTTLS not offered"));
            return Ok(Next::Go);
        };
        if self.conn.is_tls() {
            self.send(r(503, (5, 5, 1), "TLS already active"));
            return Ok(Next::Go);
        }
        self.send(r(220, (2, 0, 0), "ready to start TLS"));
        // Conn::start_tls drops whatever was pipelined after STARTTLS (CVE-2011-0411).
        if self.start_tls(tls).is_err() {
            return Ok(Next::Quit(End::Tls));
        }
        // RFC 3207 §4.2: forget everything learned before TLS.
        self.helo = None;
        self.tx = None;
        self.bdat = None;
        self.auth = None;
        Ok(Next::Go)
    }

    fn auth(&mut self, mechanism: &str, initial: Option<String>) -> io::Result<Next> {
        let Some(passwords) = self.s.passwords.clone() else {
            self.send(r(502, (5, 5, 1), "AUTH not offered"));
            return Ok(Next::Go);
        };
        if !self.conn.is_tls() && !self.s.insecure_auth {
            // RFC 4954 §6: 538 when the mechanism needs encryption first.
            self.send(r(
                538,
                (5, 7, 11),
                "encryption required: use STARTTLS first",
            ));
            return Ok(Next::Go);
        }
        if self.helo.is_none() || self.auth.is_some() || self.tx.is_some() || self.bdat.is_some() {
            self.send(r(503, (5, 5, 1), "AUTH not allowed now"));
            return Ok(Next::Go);
        }
        let creds = match mechanism {
            "PLAIN" => {
                let response = match initial {
                    Some(i) => Some(i),
                    None => self.challenge("")?,
                };
                response.map(|resp| {
                    crate::net::sasl::decode_plain(&resp).and_then(|c| {
                        // An authorization identity other than the user is not supported.
                        (c.authzid.is_empty() || c.authzid == c.user)
                            .then_some((c.user, c.password))
                    })
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => Some(i),
                    None => self.challenge("VXNlcm5hbWU6")?,
                };
                match user {
                    None => None,
                    Some(u) => self.challenge("UGFzc3dvcmQ6")?.map(|p| {
                        let text = |b64: &str| {
                            crate::net::sasl::decode(b64).and_then(|v| String::from_utf8(v).ok())
                        };
                        text(&u).zip(text(&p))
                    }),
                }
            }
            _ => {
                self.send(r(504, (5, 5, 4), "mechanism not supported"));
                return Ok(Next::Go);
            }
        };
        match creds {
            // The client cancelled with "*" or left.
            None => {
                self.send(r(501, (5, 7, 0), "authentication cancelled"));
            }
            Some(Some((user, password))) if passwords.verify(&user, &password) => {
                self.auth = Some(user);
                self.send(r(235, (2, 7, 0), "authentication successful"));
            }
            Some(tried) => {
                let last = self.auth_failures.fail();
                // Logged with the user tried (fail2ban's smtp filters read these lines).
                let user = tried.as_ref().map(|(u, _)| u.as_str());
                let invalid = r(535, (5, 7, 8), "authentication credentials invalid");
                self.reject("AUTH", None, None, user, invalid);
                if last {
                    self.send(r(421, (4, 7, 0), "too many failed authentications"));
                    return Ok(Next::Quit(End::Auth));
                }
            }
        }
        Ok(Next::Go)
    }

    /// Send a 334 challenge and read the response; `None` when cancelled ("*") or gone.
    fn challenge(&mut self, text: &str) -> io::Result<Option<String>> {
        self.conn.send(format!("334 {text}\r\n").as_bytes());
        // RFC 4954 §4: responses may be longer than a command line.
        match self.conn.read_line(12288)? {
            Line::Text(l) => {
                let l = String::from_utf8_lossy(&l).trim_end().to_string();
                Ok((l != "*").then_some(l))
            }
            _ => Ok(None),
        }
    }
}

/// `text` as printable ASCII without parentheses and backslash (safe in a header comment, a
/// `\` would quote our closing parenthesis) and without `;` (which ends the Received: tokens
/// before the date, RFC 5322 §3.6.7), cut at `max`.
fn comment_safe(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\' | ';') {
                c
            } else {
                '?'
            }
        })
        .take(max)
        .collect()
}

enum Next {
    Go,
    /// End the session, for this reason.
    Quit(End),
}

/// RFC 6531 (553, X.6.7 "non-ASCII addresses not permitted"): a UTF-8 address only in a
/// transaction that said SMTPUTF8 (else it would reach the Received: and Delivered-To:
/// headers of a message not marked as needing UTF-8).
fn not_ascii() -> Reply {
    r(553, (5, 6, 7), "non-ASCII address without SMTPUTF8")
}

/// The reply refusing a message for what was found in it.
fn fault_reply(f: Fault) -> Reply {
    match f {
        Fault::BareLineEnd => r(
            550,
            (5, 6, 11),
            "bare CR or LF in message; lines must end with CRLF",
        ),
        Fault::Nul => r(554, (5, 6, 0), "NUL byte in message"),
        Fault::LineTooLong => r(554, (5, 6, 0), "line longer than 1000 octets"),
        Fault::TooBig => r(552, (5, 3, 4), "message size exceeds fixed limit"),
        Fault::Loop => r(554, (5, 4, 6), "too many Received: headers, mail loop"),
        Fault::Sink => r(451, (4, 3, 0), "local error while receiving, try later"),
    }
}

/// One reply for the whole DATA from the per-recipient results (the module comment says why
/// the worst outcome wins).
pub fn verdict(tx: &Transaction, results: &[crate::Result<()>]) -> Reply {
    let rcpts = &tx.envelope.rcpts;
    let failed = |temp: bool| -> Vec<String> {
        rcpts
            .iter()
            .zip(results)
            .filter_map(|(rc, res)| match res {
                Err(e) if e.code().is_temporary() == temp => Some(rc.addr.clone()),
                _ => None,
            })
            .collect()
    };
    if results.len() != rcpts.len() {
        return r(451, (4, 3, 0), "local delivery error, try again later");
    }
    let temp = failed(true);
    if !temp.is_empty() {
        return r(
            451,
            (4, 3, 0),
            format!(
                "delivery failed for <{}>, try again later",
                temp.join(">, <")
            ),
        );
    }
    let perm = failed(false);
    if !perm.is_empty() {
        let loops = results
            .iter()
            .any(|res| matches!(res, Err(e) if e.code() == Code::DataErr));
        let e = if loops { (5, 4, 6) } else { (5, 3, 0) };
        return r(
            554,
            e,
            format!("delivery failed for <{}>", perm.join(">, <")),
        );
    }
    let local = tx.users.iter().filter(|u| u.is_some()).count();
    let what = match local {
        0 => "queued",
        n if n == rcpts.len() => "delivered",
        _ => "delivered and queued",
    };
    r(250, (2, 0, 0), format!("ok, {what}"))
}
