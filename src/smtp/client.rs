//! The SMTP client: one blocking session over TCP or TLS, for msubmit and mrelay.
//!
//! `Session::connect(&options)` connects (TCP_NODELAY, a timeout on every connect, read and
//! write), reads the greeting, says EHLO (HELO when EHLO is refused), upgrades with STARTTLS or
//! starts in TLS, and authenticates. `session.send(&envelope, &mut message, policy)` then sends
//! one message and returns every reply: MAIL, each RCPT, DATA; call it again for the next
//! message on the same connection, and `quit()` at the end.
//!
//! Speed: with PIPELINING (RFC 2920) the MAIL, all RCPTs and DATA go out in one write, and the
//! message with its terminator in as few large writes as the encoder's buffer allows; with
//! TCP_NODELAY nothing waits for a delayed ACK (msmtp's line-by-line writes with Nagle cost
//! ~40 ms per message). Safety: a reply we cannot read, a dropped connection or a timeout is a
//! temporary failure ([`Code::TempFail`]), never success; credentials go only over TLS unless
//! the caller chose [`Security::None`] explicitly; anything the server sends between its
//! STARTTLS reply and the handshake is refused (response injection, CVE-2011-0411 class).

use super::command::{Command, Param, xtext};
use super::data::DataEncoder;
use super::ehlo::Capabilities;
pub use super::envelope::{
    Body, Envelope, Outcome, Partial, Recipient, Refusal, Stage, reply_code, reply_error, too_many,
};
use super::reply::{MAX_LINE, Reply, ReplyParser};
use crate::exit::{Code, Error, Result};
use crate::net::sasl::{self as auth, Mechanism};
use crate::net::tls::{self, TlsOptions, TlsStream};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP, chosen explicitly; the only mode in which AUTH may go in clear text.
    None,
    /// STARTTLS required (RFC 3207): no TLS, no mail.
    StartTls,
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit,
}

impl Security {
    /// The name used in logs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::StartTls => "starttls",
            Security::Implicit => "implicit",
        }
    }
}

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

/// Where and how to connect.
#[derive(Clone)]
pub struct Options {
    /// Host name or IP address of the server.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS mode.
    pub security: Security,
    /// How the certificate is checked.
    pub tls: TlsOptions,
    /// Our name for EHLO/HELO.
    pub helo: String,
    /// Log in with these, if set.
    pub auth: Option<Credentials>,
    /// Timeouts per phase.
    pub timeouts: Timeouts,
    /// Dialogue trace.
    pub trace: Option<Trace>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connected, greeted (and, if asked, encrypted and authenticated) SMTP session.
pub struct Session {
    conn: BufReader<Stream>,
    caps: Capabilities,
    greeting: Reply,
    tls: bool,
    authenticated: Option<String>,
    /// A transaction failed half way: RSET before the next one.
    needs_rset: bool,
    /// The connection is out of step or gone: no further command may be sent.
    broken: bool,
    opts: Options,
}

fn net_error(what: &str, e: io::Error) -> Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        Error::new(Code::TempFail, what, "timed out")
    } else {
        Error::io(Code::TempFail, what, e)
    }
}

impl Session {
    /// Connect, greet, secure and authenticate as `opts` says.
    pub fn connect(opts: &Options) -> Result<Session> {
        let target = format!("{}:{}", opts.host, opts.port);
        let addrs = (opts.host.as_str(), opts.port)
            .to_socket_addrs()
            .map_err(|e| Error::io(Code::TempFail, format!("resolve {}", opts.host), e))?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, opts.timeouts.connect) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(t), _) => t,
            (None, Some(e)) => return Err(net_error(&format!("connect to {target}"), e)),
            (None, None) => {
                return Err(Error::new(
                    Code::TempFail,
                    format!("resolve {}", opts.host),
                    "no addresses",
                ));
            }
        };
        // Whole batches are written at once; Nagle would only hold the last segment back.
        tcp.set_nodelay(true)
            .map_err(|e| net_error(&format!("connect to {target}"), e))?;
        let tls_config = match opts.security {
            Security::None => None,
            _ => Some(tls::client_config(&opts.tls)?),
        };
        let tls_name = opts
            .tls
            .server_name
            .clone()
            .unwrap_or_else(|| opts.host.clone());
        let stream = match (&tls_config, opts.security) {
            (Some(cfg), Security::Implicit) => {
                set_timeouts(&tcp, opts.timeouts.command)?;
                Stream::Tls(Box::new(tls::connect(tcp, cfg.clone(), &tls_name)?))
            }
            _ => {
                await_greeting(&tcp, &target, opts)?;
                Stream::Plain(tcp)
            }
        };
        let tls_info = match &stream {
            Stream::Tls(t) => Some(tls::describe(t)),
            Stream::Plain(_) => None,
        };
        let mut s = Session {
            tls: matches!(stream, Stream::Tls(_)),
            conn: BufReader::with_capacity(16 * 1024, stream),
            caps: Capabilities::default(),
            greeting: Reply::new(220, None, ""),
            authenticated: None,
            needs_rset: false,
            broken: false,
            opts: opts.clone(),
        };
        if let Some(info) = tls_info {
            s.trace(Direction::Received, &info);
        }
        let greeting = s.read_reply(opts.timeouts.command, "greeting")?;
        if greeting.code != 220 {
            s.broken = true;
            return Err(reply_error(
                Stage::Connect,
                &format!("greeting from {target}"),
                &greeting,
            ));
        }
        s.greeting = greeting;
        s.hello()?;
        if opts.security == Security::StartTls
            && let Some(cfg) = tls_config
        {
            s.starttls(cfg, &tls_name)?;
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
        self.tls
    }

    /// The user we authenticated as.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// False once the connection broke or got out of step; connect again.
    pub fn is_usable(&self) -> bool {
        !self.broken
    }

    fn trace(&self, dir: Direction, line: &str) {
        if let Some(t) = &self.opts.trace {
            t(dir, line.trim_end_matches(['\r', '\n']));
        }
    }

    fn write_all(&mut self, bytes: &[u8], timeout: Duration, what: &str) -> Result<()> {
        let r = set_timeouts(self.conn.get_ref().tcp(), timeout).and_then(|_| {
            let s = self.conn.get_mut();
            s.write_all(bytes)
                .and_then(|_| s.flush())
                .map_err(|e| net_error(what, e))
        });
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
        let r = self.read_reply_inner(timeout, what);
        match &r {
            Err(_) => self.broken = true,
            // 421: the server is closing the connection (RFC 5321 §3.8).
            Ok(reply) if reply.code == 421 => self.broken = true,
            Ok(_) => {}
        }
        r
    }

    fn read_reply_inner(&mut self, timeout: Duration, what: &str) -> Result<Reply> {
        // The limit is for the whole reply, not for each read: a server that drips a byte
        // now and then would otherwise hold us for up to MAX_LINES × MAX_LINE timeouts.
        // (No deadline for a timeout too large to add: --timeout 18446744073709551615.)
        let deadline = std::time::Instant::now().checked_add(timeout);
        let mut parser = ReplyParser::new();
        let mut line = Vec::with_capacity(128);
        loop {
            line.clear();
            loop {
                if self.conn.buffer().is_empty() {
                    let now = std::time::Instant::now();
                    let left = deadline.map_or(timeout, |d| d.saturating_duration_since(now));
                    if left.is_zero() {
                        return Err(Error::new(Code::TempFail, what, "timed out"));
                    }
                    set_timeouts(self.conn.get_ref().tcp(), left)?;
                }
                let buf = self.conn.fill_buf().map_err(|e| net_error(what, e))?;
                if buf.is_empty() {
                    return Err(Error::new(
                        Code::TempFail,
                        what,
                        "connection closed by the server",
                    ));
                }
                let (take, done) = match buf.iter().position(|&b| b == b'\n') {
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

    fn starttls(&mut self, config: Arc<rustls::ClientConfig>, name: &str) -> Result<()> {
        if !self.caps.starttls {
            return Err(Error::new(
                Code::Unavailable,
                format!("{}:{}", self.opts.host, self.opts.port),
                "server does not offer STARTTLS, and TLS is required (--tls none to send in clear)",
            ));
        }
        let t = self.opts.timeouts.command;
        self.send_commands(&[Command::StartTls], t)?;
        let reply = self.read_reply(t, "STARTTLS")?;
        if reply.code != 220 {
            return Err(reply_error(Stage::Connect, "STARTTLS", &reply));
        }
        // RFC 3207 §4.2 / CVE-2011-0411: bytes already here were sent before the handshake
        // and could be an attacker's, injected to be read as if they came over TLS.
        if !self.conn.buffer().is_empty() || bytes_waiting(self.conn.get_ref().tcp()) {
            self.broken = true;
            return Err(Error::new(
                Code::Unavailable,
                "STARTTLS",
                "server sent data after its 220 reply before the TLS handshake (response injection?)",
            ));
        }
        let placeholder = BufReader::new(Stream::Plain(
            self.conn
                .get_ref()
                .tcp()
                .try_clone()
                .map_err(|e| net_error("STARTTLS", e))?,
        ));
        let old = std::mem::replace(&mut self.conn, placeholder);
        let tcp = match old.into_inner() {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(_) => return Err(Error::new(Code::Software, "STARTTLS", "already in TLS")),
        };
        let stream = match tls::upgrade(tcp, config, name) {
            Ok(s) => s,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        };
        self.trace(Direction::Received, &tls::describe(&stream));
        self.conn = BufReader::with_capacity(16 * 1024, Stream::Tls(Box::new(stream)));
        self.tls = true;
        // RFC 3207 §4.2: forget what was learnt before TLS and ask again.
        self.caps = Capabilities::default();
        self.hello()
    }

    fn authenticate(&mut self, cred: &Credentials) -> Result<()> {
        if !self.tls && self.opts.security != Security::None {
            return Err(Error::new(
                Code::Config,
                "AUTH",
                "refusing to send credentials without TLS",
            ));
        }
        if self.caps.auth.is_empty() {
            return Err(Error::new(
                Code::Unavailable,
                format!("{}:{}", self.opts.host, self.opts.port),
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
                self.broken = true;
                let _ = self.conn.get_ref().tcp().shutdown(std::net::Shutdown::Both);
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
        self.send_content(message)?;
        let reply = self.read_reply(
            t.data_term,
            "end of data (the message may have been delivered)",
        )?;
        if !reply.is_positive() {
            self.needs_rset = true;
        }
        outcome.data = Some(reply);
        Ok(outcome)
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
        let rcpts = env
            .rcpts
            .iter()
            .map(|r| {
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
            })
            .collect();
        (mail, rcpts)
    }

    /// Stream the message through the DATA encoder onto the connection.
    fn send_content(&mut self, message: &mut dyn Read) -> Result<()> {
        self.trace(Direction::Sent, "(message content)");
        let timeout = self.opts.timeouts.data_block;
        set_timeouts(self.conn.get_ref().tcp(), timeout)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut enc = DataEncoder::new(self.conn.get_mut());
        loop {
            let n = match message.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Without an end-of-data the server discards what it got: close.
                    self.broken = true;
                    return Err(Error::io(Code::TempFail, "read message", e));
                }
            };
            if let Err(e) = enc.write_all(&buf[..n]) {
                self.broken = true;
                return Err(net_error("sending message data", e));
            }
        }
        if let Err(e) = enc.finish() {
            self.broken = true;
            return Err(net_error("sending message data", e));
        }
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

/// True when the kernel holds unread bytes for `tcp` (a peek that does not block).
fn bytes_waiting(tcp: &TcpStream) -> bool {
    if tcp.set_nonblocking(true).is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    let waiting = matches!(tcp.peek(&mut b), Ok(n) if n > 0);
    let _ = tcp.set_nonblocking(false);
    waiting
}

/// How long a server may stay silent before we ask whether it waits for a TLS handshake.
const SILENT_PROBE: Duration = Duration::from_secs(3);

/// Wait for the server to start its greeting over plain TCP. A server that stays silent
/// for [`SILENT_PROBE`] is asked, on a second connection, whether it answers a TLS
/// ClientHello: if it does, the port is for implicit TLS (RFC 8314 §3.3) and our settings
/// are wrong, which is [`Code::Config`] (EX_CONFIG), not the timeout's 75 that a queue or an
/// MTA would retry for ever. A server merely slow to greet keeps this connection and its
/// whole greeting timeout (the probe's seconds come on top).
fn await_greeting(tcp: &TcpStream, target: &str, opts: &Options) -> Result<()> {
    let what = || format!("greeting from {target}");
    let wait = SILENT_PROBE.min(opts.timeouts.command);
    set_timeouts(tcp, wait)?;
    match tcp.peek(&mut [0u8; 1]) {
        // Data, or the end of it: the greeting's reader says which.
        Ok(_) => return Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        Err(e) => return Err(net_error(&what(), e)),
    }
    let addr = tcp.peer_addr().map_err(|e| net_error(&what(), e))?;
    if tls::answers_tls(addr, wait) {
        let fix = match opts.security {
            Security::None => "--tls implicit, or tls on with tls_starttls off",
            _ => "--tls implicit, or tls_starttls off",
        };
        return Err(Error::new(
            Code::Config,
            what(),
            format!(
                "the server sends none but answers in TLS: the port is for implicit TLS \
                 (use {fix})"
            ),
        ));
    }
    Ok(())
}

fn set_timeouts(tcp: &TcpStream, t: Duration) -> Result<()> {
    // A zero duration would mean "block forever" to the socket API: never allow that.
    let t = t.max(Duration::from_millis(1));
    tcp.set_read_timeout(Some(t))
        .and_then(|_| tcp.set_write_timeout(Some(t)))
        .map_err(|e| net_error("set socket timeout", e))
}
