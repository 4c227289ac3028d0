//! The SMTP client: one blocking session over any transport, for msubmit and mrelay.
//!
//! Three parts, as qmail-remote's job splits: a *connection* ([`connect`]: socket addresses
//! the caller resolved, TCP, implicit TLS, and `may`'s fall back to clear text), a *session*
//! (this file: the greeting, EHLO, or HELO when EHLO is refused, STARTTLS, AUTH, QUIT) and a
//! *transaction* ([`transaction`]: MAIL, the RCPTs, DATA; a message to every recipient,
//! over as many transactions as the server's recipient limit needs, with one verdict per
//! recipient). The session runs over any [`Io`], so [`Session::over`] takes a stream a
//! caller connected, and the tests drive the state machine in memory as the server's are.
//!
//! The client resolves no names: msubmit resolves its `host:port`, mrelay the MX records,
//! and each hands the addresses over with the name the certificate must bear. TLS is
//! [`crate::net::tls`]'s vocabulary: how it starts (STARTTLS, implicit) and how strict it is
//! (none, may, encrypt, verify).
//!
//! Speed: with PIPELINING (RFC 2920) the MAIL, all RCPTs and DATA go out in one write, and the
//! message with its terminator in as few large writes as the encoder's buffer allows; with
//! TCP_NODELAY nothing waits for a delayed ACK (msmtp's line-by-line writes with Nagle cost
//! ~40 ms per message). Safety: a reply we cannot read, a dropped connection or a timeout is a
//! temporary failure ([`Code::TempFail`]), never success; credentials go only over TLS unless
//! the caller chose [`Level::None`] explicitly; anything the server sends between its
//! STARTTLS reply and the handshake is refused (response injection, CVE-2011-0411 class).

mod connect;
#[cfg(test)]
mod tests;
mod transaction;

use super::command::Command;
use super::ehlo::Capabilities;
pub use super::envelope::{
    Body, Envelope, Outcome, Partial, Recipient, Refusal, Stage, reply_code, reply_error, too_many,
};
use super::reply::{MAX_LINE, Reply, ReplyParser};
use crate::exit::{Code, Error, Result};
use crate::net::conn::Io;
use crate::net::sasl::{self as auth, Mechanism};
use crate::net::tls::{self, ClientStream as Stream, Level, Mode, Start, TlsOptions, TlsStream};
use std::io::{self, BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use transaction::{Content, Delivery, Verdict};

/// Timeouts per phase. The defaults are RFC 5321 §4.5.3.2's minimums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection (not in the RFC).
    pub connect: Duration,
    /// The 220 greeting, EHLO, STARTTLS, AUTH, RSET and QUIT (§4.5.3.2.1: 5 minutes).
    pub command: Duration,
    /// MAIL and RCPT replies (§4.5.3.2.2–3: 5 minutes).
    pub mail: Duration,
    /// The 354 after DATA (§4.5.3.2.4: 2 minutes).
    pub data_init: Duration,
    /// Each write of message data (§4.5.3.2.5: 3 minutes).
    pub data_block: Duration,
    /// The reply after end of data (§4.5.3.2.6: 10 minutes).
    pub data_term: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let min = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            connect: Duration::from_secs(30),
            command: min(5),
            mail: min(5),
            data_init: min(2),
            data_block: min(3),
            data_term: min(10),
        }
    }
}

impl Timeouts {
    /// The same limit for every phase (msmtp's `timeout`).
    pub fn uniform(d: Duration) -> Timeouts {
        Timeouts {
            connect: d,
            command: d,
            mail: d,
            data_init: d,
            data_block: d,
            data_term: d,
        }
    }
}

/// Who we log in as.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password, or the OAuth2 token for XOAUTH2.
    pub secret: String,
    /// The mechanism; `None` picks PLAIN, else LOGIN, from what the server offers.
    pub mechanism: Option<Mechanism>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ user: {:?}, .. }}", self.user)
    }
}

/// Which way a traced line went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Sent,
    /// Server to client.
    Received,
}

/// A callback that sees the dialogue line by line (credentials are masked), for `-v`.
pub type Trace = Arc<dyn Fn(Direction, &str) + Send + Sync>;

/// How to speak to the server; where it is, the caller says ([`Session::connect`],
/// [`Session::over`]).
#[derive(Clone)]
pub struct Options {
    /// How TLS starts and how strict we are.
    pub tls: Mode,
    /// How the certificate is checked at [`Level::Verify`], and the name it must bear when
    /// not the one we connect by.
    pub trust: TlsOptions,
    /// Our name for EHLO/HELO.
    pub helo: String,
    /// Log in with these, if set.
    pub auth: Option<Credentials>,
    /// Timeouts per phase.
    pub timeouts: Timeouts,
    /// Dialogue trace.
    pub trace: Option<Trace>,
    /// Connect from this local address (msmtp's `source_ip`).
    pub source: Option<std::net::IpAddr>,
}

/// A connected, greeted (and, as asked, encrypted and authenticated) SMTP session.
pub struct Session {
    conn: BufReader<Stream>,
    caps: Capabilities,
    greeting: Reply,
    authenticated: Option<String>,
    /// A transaction failed half way: RSET before the next one.
    needs_rset: bool,
    /// The connection is out of step or gone: no further command may be sent.
    broken: bool,
    /// The replies a transaction had read when it broke off (see `Session::deliver`).
    interrupted: Option<crate::smtp::envelope::Outcome>,
    /// Why TLS was tried and not used, at [`Level::May`].
    tls_failure: Option<Error>,
    /// Replies read so far in the session: a transaction that read none cannot have been
    /// taken ([`transaction::Delivery::unanswered`]).
    replies: u64,
    /// The server as messages name it: `name:port`, or the name alone.
    peer: String,
    opts: Options,
}

/// The reason of a failure to set a session up, and whether it happened while starting TLS
/// (the STARTTLS reply, the handshake, the EHLO after it), which `may` answers with clear
/// text ([`connect`]).
struct SetupError {
    error: Error,
    at_tls: bool,
}

impl From<Error> for SetupError {
    fn from(error: Error) -> SetupError {
        SetupError {
            error,
            at_tls: false,
        }
    }
}

fn net_error(what: &str, e: io::Error) -> Error {
    if let Some(refused) = tls::alert_error(what, &e) {
        return refused;
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Error::new(Code::TempFail, what, "timed out")
        }
        // A TLS peer that drops the connection without close_notify is just gone.
        io::ErrorKind::UnexpectedEof => {
            Error::new(Code::TempFail, what, "connection closed by the server")
        }
        _ => Error::io(Code::TempFail, what, e),
    }
}

impl Session {
    /// Run a session over `io`, connected by the caller: read the greeting, say EHLO, start
    /// TLS and authenticate as `opts` says. `name` is the server's name, for messages and for
    /// the certificate (unless `opts.trust.server_name` names another). With
    /// [`Start::Implicit`], TLS starts at once. A failed handshake at [`Level::May`] is an
    /// error here: going on in clear text needs a new connection, which only
    /// [`Session::connect`] can make.
    pub fn over(io: Box<dyn Io>, name: &str, opts: &Options) -> Result<Session> {
        let config = tls_config(opts)?;
        let stream = match (&config, opts.tls.start) {
            (Some(cfg), Start::Implicit) => Stream::Tls(Box::new(implicit(io, cfg, name, opts)?)),
            _ => Stream::Plain(io),
        };
        Session::setup(stream, name, name.to_string(), opts, config.as_ref()).map_err(|e| e.error)
    }

    /// Greet, say EHLO, secure and authenticate over `stream`: plain text, or TLS already.
    /// `config` is `None` when TLS is not to be started (level none, or clear text after a
    /// failed handshake at `may`).
    fn setup(
        stream: Stream,
        name: &str,
        peer: String,
        opts: &Options,
        config: Option<&Arc<rustls::ClientConfig>>,
    ) -> std::result::Result<Session, SetupError> {
        let tls_info = match &stream {
            Stream::Tls(t) => Some(tls::describe(t)),
            _ => None,
        };
        let mut s = Session {
            conn: BufReader::with_capacity(16 * 1024, stream),
            caps: Capabilities::default(),
            greeting: Reply::new(220, None, ""),
            authenticated: None,
            needs_rset: false,
            broken: false,
            interrupted: None,
            replies: 0,
            tls_failure: None,
            peer,
            opts: opts.clone(),
        };
        if let Some(info) = tls_info {
            s.trace(Direction::Received, &info);
        }
        let greeting = s.read_reply(opts.timeouts.command, "greeting")?;
        if greeting.code != 220 {
            s.broken = true;
            let what = format!("greeting from {}", s.peer);
            return Err(reply_error(Stage::Connect, &what, &greeting).into());
        }
        s.greeting = greeting;
        s.hello()?;
        if let Some(cfg) = config
            && !s.is_tls()
        {
            s.starttls(cfg.clone(), &tls_name(name, opts))?;
        }
        if let Some(cred) = opts.auth.clone() {
            s.authenticate(&cred)?;
        }
        Ok(s)
    }

    /// What the server offered in its (last) EHLO reply.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The server's 220 greeting.
    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// True when the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.conn.get_ref(), Stream::Tls(_))
    }

    /// What TLS negotiated, when the session runs over TLS.
    pub fn tls(&self) -> Option<tls::Negotiated> {
        match self.conn.get_ref() {
            Stream::Tls(t) => Some(tls::negotiated(t)),
            _ => None,
        }
    }

    /// Why the session runs in clear text although TLS was tried (level `may`: STARTTLS was
    /// refused, or its handshake failed and [`Session::connect`] connected again without).
    pub fn tls_failure(&self) -> Option<&Error> {
        self.tls_failure.as_ref()
    }

    /// The user we authenticated as.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// False once the connection broke or got out of step; connect again.
    pub fn is_usable(&self) -> bool {
        !self.broken
    }

    /// For a kept connection before its next transaction: usable, and the server has not
    /// closed it or spoken unasked since (an idle timeout, its 421) — else connect again
    /// rather than fail the next message at its MAIL FROM.
    pub fn is_reusable(&mut self) -> bool {
        !self.broken
            && self.conn.buffer().is_empty()
            && self.conn.get_mut().io().is_some_and(|io| io.is_quiet())
    }

    fn trace(&self, dir: Direction, line: &str) {
        if let Some(t) = &self.opts.trace {
            t(dir, line.trim_end_matches(['\r', '\n']));
        }
    }

    /// Drop the transport: nothing more goes to the server, and it sees the connection end.
    fn close(&mut self) {
        self.broken = true;
        *self.conn.get_mut() = Stream::Closed;
    }

    /// Every read and write waits at most `timeout`; reads end at `deadline` as well.
    fn set_timing(&mut self, timeout: Duration, deadline: Option<Instant>) {
        // A zero duration would mean "block forever" to a socket: never allow that.
        let timeout = timeout.max(Duration::from_millis(1));
        if let Some(io) = self.conn.get_mut().io() {
            io.set_timeout(timeout);
            io.set_deadline(deadline);
        }
    }

    fn write_all(&mut self, bytes: &[u8], timeout: Duration, what: &str) -> Result<()> {
        self.set_timing(timeout, None);
        let s = self.conn.get_mut();
        let r = s
            .write_all(bytes)
            .and_then(|_| s.flush())
            .map_err(|e| net_error(what, e));
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    /// Send commands (one batch, one write) and trace them.
    fn send_commands(&mut self, cmds: &[Command], timeout: Duration) -> Result<()> {
        let mut batch = String::new();
        for c in cmds {
            let line = c.to_line();
            // Every value on a command line comes from a caller; one line break in any of
            // them would be a command of its own on the wire (SMTP command injection).
            if line[..line.len() - 2].contains(['\r', '\n', '\0']) {
                return Err(Error::new(
                    Code::Software,
                    c.summary().escape_debug().to_string(),
                    "refusing to send a command with a line break or NUL in it",
                ));
            }
            match c {
                Command::Auth { mechanism, .. } => {
                    self.trace(Direction::Sent, &format!("AUTH {mechanism} ***"))
                }
                _ => self.trace(Direction::Sent, &line),
            }
            batch.push_str(&line);
        }
        let what = cmds.first().map(Command::summary).unwrap_or_default();
        self.write_all(batch.as_bytes(), timeout, &what)
    }

    /// Send a secret line (AUTH continuation), traced masked.
    fn send_secret(&mut self, line: &str) -> Result<()> {
        self.trace(Direction::Sent, "***");
        let t = self.opts.timeouts.command;
        self.write_all(format!("{line}\r\n").as_bytes(), t, "AUTH")
    }

    fn read_reply(&mut self, timeout: Duration, what: &str) -> Result<Reply> {
        // The limit is for the whole reply, not for each read: a server that drips a byte
        // now and then would otherwise hold us for up to MAX_LINES × MAX_LINE timeouts.
        // (No deadline for a timeout too large to add: --timeout 18446744073709551615.)
        self.set_timing(timeout, Instant::now().checked_add(timeout));
        let r = self.read_reply_now(what);
        self.set_timing(timeout, None);
        match &r {
            Err(_) => self.broken = true,
            // 421: the server is closing the connection (RFC 5321 §3.8).
            Ok(reply) if reply.code == 421 => {
                self.replies += 1;
                self.broken = true;
            }
            Ok(_) => self.replies += 1,
        }
        r
    }

    fn read_reply_now(&mut self, what: &str) -> Result<Reply> {
        let mut parser = ReplyParser::new();
        let mut line = Vec::with_capacity(128);
        loop {
            line.clear();
            loop {
                let buf = self.conn.fill_buf().map_err(|e| net_error(what, e))?;
                if buf.is_empty() {
                    return Err(Error::new(
                        Code::TempFail,
                        what,
                        "connection closed by the server",
                    ));
                }
                let (take, done) = match memchr::memchr(b'\n', buf) {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                line.extend_from_slice(&buf[..take]);
                self.conn.consume(take);
                if line.len() > MAX_LINE {
                    return Err(Error::new(Code::TempFail, what, "reply line too long"));
                }
                if done {
                    break;
                }
            }
            self.trace(Direction::Received, &String::from_utf8_lossy(&line));
            match parser.feed(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => return Err(Error::new(Code::TempFail, what, e)),
            }
        }
    }

    /// EHLO, or HELO when the server does not know EHLO (RFC 5321 §4.1.4).
    fn hello(&mut self) -> Result<()> {
        let t = self.opts.timeouts.command;
        self.send_commands(&[Command::Ehlo(self.opts.helo.clone())], t)?;
        let reply = self.read_reply(t, "EHLO")?;
        if reply.is_positive() {
            self.caps = Capabilities::from_reply(&reply);
            return Ok(());
        }
        if reply.is_permanent() {
            self.send_commands(&[Command::Helo(self.opts.helo.clone())], t)?;
            let helo = self.read_reply(t, "HELO")?;
            if helo.is_positive() {
                self.caps = Capabilities::helo(helo.lines.first().map_or("", |l| l.as_str()));
                return Ok(());
            }
            return Err(reply_error(Stage::Connect, "HELO", &helo));
        }
        Err(reply_error(Stage::Connect, "EHLO", &reply))
    }

    /// STARTTLS (RFC 3207) when offered. Not offered, or refused with the connection still in
    /// step, is clear text at `may` and a failure above it. Errors after the server agreed
    /// are marked `at_tls`, for `may`'s retry in clear text.
    fn starttls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> std::result::Result<(), SetupError> {
        let may = self.opts.tls.level == Level::May;
        if !self.caps.starttls {
            if may {
                return Ok(());
            }
            return Err(Error::new(
                Code::Unavailable,
                &self.peer,
                "server does not offer STARTTLS, and TLS is required (--tls none to send in clear)",
            )
            .into());
        }
        let t = self.opts.timeouts.command;
        self.send_commands(&[Command::StartTls], t)?;
        let reply = self.read_reply(t, "STARTTLS")?;
        if reply.code != 220 {
            let e = reply_error(Stage::Connect, "STARTTLS", &reply);
            // RFC 3207 §4: after a refusal the session goes on as it was; at `may` in clear.
            if may && !self.broken {
                self.tls_failure = Some(e);
                return Ok(());
            }
            return Err(e.into());
        }
        let at_tls = |error: Error| SetupError {
            error,
            at_tls: true,
        };
        // RFC 3207 §4.2 / CVE-2011-0411: bytes already here were sent before the handshake
        // and could be an attacker's, injected to be read as if they came over TLS.
        let waiting = self.conn.get_mut().io().is_some_and(|io| io.has_input());
        if !self.conn.buffer().is_empty() || waiting {
            self.close();
            return Err(at_tls(Error::new(
                Code::Unavailable,
                "STARTTLS",
                "server sent data after its 220 reply before the TLS handshake (response injection?)",
            )));
        }
        let Stream::Plain(io) = std::mem::replace(self.conn.get_mut(), Stream::Closed) else {
            return Err(Error::new(Code::Software, "STARTTLS", "already in TLS").into());
        };
        // The whole handshake within one command timeout.
        self.broken = true;
        let mut io = io;
        io.set_timeout(t.max(Duration::from_millis(1)));
        io.set_deadline(Instant::now().checked_add(t));
        let mut stream = tls::upgrade(io, config, name).map_err(at_tls)?;
        stream.sock.set_deadline(None);
        self.trace(Direction::Received, &tls::describe(&stream));
        self.conn = BufReader::with_capacity(16 * 1024, Stream::Tls(Box::new(stream)));
        self.broken = false;
        // RFC 3207 §4.2: forget what was learnt before TLS and ask again.
        self.caps = Capabilities::default();
        self.hello().map_err(at_tls)
    }

    fn authenticate(&mut self, cred: &Credentials) -> Result<()> {
        if !self.is_tls() && self.opts.tls.level != Level::None {
            return Err(Error::new(
                Code::Config,
                "AUTH",
                "refusing to send credentials without TLS",
            ));
        }
        if self.caps.auth.is_empty() {
            return Err(Error::new(
                Code::Unavailable,
                &self.peer,
                "server offers no AUTH, but credentials are configured",
            ));
        }
        let mech = match cred.mechanism {
            Some(m) => m,
            None => [Mechanism::Plain, Mechanism::Login]
                .into_iter()
                .find(|m| self.caps.offers_auth(m.name()))
                .ok_or_else(|| {
                    Error::new(
                        Code::Unavailable,
                        "AUTH",
                        format!("server offers only {}", self.caps.auth.join(" ")),
                    )
                })?,
        };
        if !self.caps.offers_auth(mech.name()) {
            return Err(Error::new(
                Code::Unavailable,
                format!("AUTH {}", mech.name()),
                format!("not offered (server offers {})", self.caps.auth.join(" ")),
            ));
        }
        let what = format!("AUTH {}", mech.name());
        let t = self.opts.timeouts.command;
        let initial = match mech {
            Mechanism::Plain => Some(auth::plain(&cred.user, &cred.secret)),
            Mechanism::XOAuth2 => Some(auth::xoauth2(&cred.user, &cred.secret)),
            Mechanism::Login => None,
        };
        self.send_commands(
            &[Command::Auth {
                mechanism: mech.name().into(),
                initial,
            }],
            t,
        )?;
        let mut reply = self.read_reply(t, &what)?;
        if mech == Mechanism::Login {
            for secret in [&cred.user, &cred.secret] {
                if reply.code != 334 {
                    break;
                }
                self.send_secret(&auth::encode(secret.as_bytes()))?;
                reply = self.read_reply(t, &what)?;
            }
        } else if reply.code == 334 {
            // XOAUTH2 error details come as a 334 challenge; an empty line gets the verdict.
            self.send_secret("")?;
            reply = self.read_reply(t, &what)?;
        }
        if reply.code != 235 {
            if reply.is_intermediate() {
                self.broken = true;
            }
            return Err(reply_error(Stage::Auth, &what, &reply));
        }
        self.authenticated = Some(cred.user.clone());
        Ok(())
    }

    /// Say QUIT and close; errors are ignored, the mail is already decided.
    pub fn quit(mut self) {
        if self.broken {
            return;
        }
        let t = self.opts.timeouts.command.min(Duration::from_secs(10));
        if self.send_commands(&[Command::Quit], t).is_ok() {
            let _ = self.read_reply(t, "QUIT");
        }
        if let Stream::Tls(s) = self.conn.get_mut() {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

/// The client configuration TLS needs in `opts`, `None` at level none.
fn tls_config(opts: &Options) -> Result<Option<Arc<rustls::ClientConfig>>> {
    match opts.tls.level {
        Level::None => Ok(None),
        level => tls::client_config_for(level, &opts.trust).map(Some),
    }
}

/// The name the certificate must bear.
fn tls_name(name: &str, opts: &Options) -> String {
    opts.trust
        .server_name
        .clone()
        .unwrap_or_else(|| name.to_string())
}

/// The implicit-TLS handshake over `io`, within one command timeout.
fn implicit(
    mut io: Box<dyn Io>,
    config: &Arc<rustls::ClientConfig>,
    name: &str,
    opts: &Options,
) -> Result<TlsStream> {
    let t = opts.timeouts.command;
    io.set_timeout(t.max(Duration::from_millis(1)));
    io.set_deadline(Instant::now().checked_add(t));
    let mut stream = tls::connect(io, config.clone(), &tls_name(name, opts))?;
    stream.sock.set_deadline(None);
    Ok(stream)
}
