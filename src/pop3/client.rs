//! The POP3 client (mfetch): list, scan headers with TOP, fetch, delete.
//!
//! One blocking session over any [`Io`]: the greeting, CAPA (RFC 2449), STLS (RFC 2595),
//! the login (USER/PASS, RFC 1939 §7; SASL, RFC 5034: PLAIN, LOGIN, XOAUTH2, OAUTHBEARER),
//! then the transaction commands: UIDL and LIST (a message is known again at the next
//! session by its UIDL, RFC 1939 §7), TOP n 0 reads a header, RETR a message, dot-unstuffed
//! as it streams, DELE marks, QUIT commits. The fetch engine sees it as a `Source` through
//! `fetch::pop3`, above this layer.
//!
//! Safety, as the SMTP client's: every read has a timeout and a line limit; a status line
//! has a deadline as a whole; credentials go only over TLS unless TLS was turned off
//! explicitly; when TLS was asked, nothing goes on in clear text (fetchmail's
//! CVE-2021-39272: a server that refuses STLS is an error, not a downgrade); bytes the
//! server sent after its +OK to STLS and before the handshake are refused (RFC 2595 §4,
//! the CVE-2011-0411 class of response injection). Commands are pipelined only where CAPA
//! says PIPELINING (RFC 2449 §6.6), in windows, so neither side's buffers fill up.

use crate::exit::{Code, Error, Result};
use crate::net::conn::{Io, TcpIo};
use crate::net::sasl;
use crate::net::tls::{self, ClientStream as Stream, Level, Mode, Start, TlsOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest status or listing line we read (RFC 2449 §4: 512 octets with the CRLF;
/// some servers' greetings are longer, so some room).
const MAX_LINE: usize = 4096;

/// The most messages a listing may name: a server sending listing lines for ever would
/// otherwise have us hold them all (a million UIDLs take about 100 MB).
const MAX_MESSAGES: usize = 1_000_000;

/// How many commands go out before their replies are read, with PIPELINING.
const WINDOW: usize = 64;

/// How a client logs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    /// USER and PASS (RFC 1939 §7).
    UserPass,
    /// AUTH PLAIN (RFC 4616) with its initial response (RFC 5034 §4).
    Plain,
    /// AUTH LOGIN: the user name and password after a challenge each.
    Login,
    /// AUTH XOAUTH2: a bearer token (Google, Microsoft).
    XOAuth2,
    /// AUTH OAUTHBEARER (RFC 7628): a bearer token.
    OAuthBearer,
}

impl Login {
    /// Parse `user`, `plain`, `login`, `xoauth2` or `oauthbearer` (any case).
    pub fn parse(word: &str) -> Option<Login> {
        Some(match word.to_ascii_lowercase().as_str() {
            "user" => Login::UserPass,
            "plain" => Login::Plain,
            "login" => Login::Login,
            "xoauth2" => Login::XOAuth2,
            "oauthbearer" => Login::OAuthBearer,
            _ => return None,
        })
    }

    fn sasl_name(self) -> &'static str {
        match self {
            Login::UserPass => "USER",
            Login::Plain => "PLAIN",
            Login::Login => "LOGIN",
            Login::XOAuth2 => "XOAUTH2",
            Login::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// Who we log in as.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password, or the token for XOAUTH2 and OAUTHBEARER.
    pub secret: String,
    /// How; `None` picks SASL PLAIN when offered, else USER/PASS, else LOGIN.
    pub login: Option<Login>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ user: {:?}, .. }}", self.user)
    }
}

/// How to speak to the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// How TLS starts and how strict we are (`may` is taken as `encrypt`: a mailbox's
    /// password never goes in clear text by chance).
    pub tls: Mode,
    /// How the certificate is checked at [`Level::Verify`].
    pub trust: TlsOptions,
    /// Log in with these.
    pub auth: Credentials,
    /// Each read and write, and each status line as a whole.
    pub timeout: Duration,
}

/// What CAPA said (RFC 2449 §6).
#[derive(Debug, Default, Clone)]
struct Caps {
    known: bool,
    stls: bool,
    user: bool,
    top: bool,
    uidl: bool,
    pipelining: bool,
    sasl: Vec<String>,
}

/// A logged-in POP3 session (the TRANSACTION state, RFC 1939 §5).
pub struct Client {
    conn: BufReader<Stream>,
    caps: Caps,
    peer: String,
    timeout: Duration,
    /// Out of step or gone: nothing more may be sent.
    broken: bool,
    /// The status line that ended a SASL exchange ([`Client::sasl_step`]).
    last: Option<std::result::Result<String, String>>,
}

/// A network failure as an error: temporary, with the words a user reads.
fn net_error(what: &str, e: io::Error) -> Error {
    if let Some(refused) = tls::alert_error(what, &e) {
        return refused;
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Error::new(Code::TempFail, what, "timed out")
        }
        io::ErrorKind::UnexpectedEof => {
            Error::new(Code::TempFail, what, "connection closed by the server")
        }
        _ => Error::io(Code::TempFail, what, e),
    }
}

/// A `-ERR` as an error: RFC 2449 §8 and RFC 3206's response codes say whether it is worth
/// trying again ([IN-USE], [SYS/TEMP], [LOGIN-DELAY]) or a refused login ([AUTH]).
fn refusal(what: &str, text: &str, login: bool) -> Error {
    let upper = text.to_ascii_uppercase();
    let code = if ["[IN-USE]", "[SYS/TEMP]", "[LOGIN-DELAY]"]
        .iter()
        .any(|c| upper.starts_with(c))
    {
        Code::TempFail
    } else if login {
        Code::NoPerm
    } else {
        Code::Protocol
    };
    let text = text.trim();
    let why = if text.is_empty() {
        "refused (-ERR)".to_string()
    } else {
        format!("refused: {}", text.escape_debug())
    };
    Error::new(code, what, why)
}

impl Client {
    /// Connect to the first of `addrs` that takes a TCP connection, then greet, start TLS and
    /// log in as `opts` says. `name` is the server's name, for messages and the certificate.
    pub fn connect(addrs: &[SocketAddr], name: &str, opts: &Options) -> Result<Client> {
        let (tcp, addr) = crate::net::dial::first(addrs, name, None, opts.timeout)?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = Box::new(TcpIo::new(tcp, opts.timeout));
        Client::over(io, name, &format!("{name}:{}", addr.port()), opts)
    }

    /// [`Client::connect`] over a stream the caller connected.
    pub fn over(io: Box<dyn Io>, name: &str, peer: &str, opts: &Options) -> Result<Client> {
        let config = match opts.tls.level {
            Level::None => None,
            level => Some(tls::client_config_for(level, &opts.trust)?),
        };
        let tls_name = opts.trust.server_name.clone().unwrap_or(name.to_string());
        let stream = match (&config, opts.tls.start) {
            (Some(cfg), Start::Implicit) => {
                let mut io = io;
                io.set_timeout(opts.timeout.max(Duration::from_millis(1)));
                io.set_deadline(Instant::now().checked_add(opts.timeout));
                let mut s = tls::connect(io, cfg.clone(), &tls_name)?;
                s.sock.set_deadline(None);
                Stream::Tls(Box::new(s))
            }
            _ => Stream::Plain(io),
        };
        let mut c = Client {
            conn: BufReader::with_capacity(64 * 1024, stream),
            caps: Caps::default(),
            peer: peer.to_string(),
            timeout: opts.timeout,
            broken: false,
            last: None,
        };
        let what = format!("greeting from {}", c.peer);
        let greeting = c.status(&what)?;
        if let Err(text) = greeting {
            c.broken = true;
            return Err(refusal(&what, &text, false).with_code(Code::TempFail));
        }
        c.capa()?;
        if let Some(cfg) = config
            && !c.is_tls()
        {
            c.stls(cfg, &tls_name)?;
        }
        c.login(&opts.auth, opts.tls.level)?;
        Ok(c)
    }

    /// True when the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.conn.get_ref(), Stream::Tls(_))
    }

    fn set_timing(&mut self, deadline: Option<Instant>) {
        let t = self.timeout.max(Duration::from_millis(1));
        if let Some(io) = self.conn.get_mut().io() {
            io.set_timeout(t);
            io.set_deadline(deadline);
        }
    }

    /// Send command lines in one write. A value with a line break would be a command of
    /// its own on the wire: refused.
    fn send(&mut self, lines: &[String]) -> Result<()> {
        let mut batch = String::new();
        for l in lines {
            if l.contains(['\r', '\n', '\0']) {
                return Err(Error::new(
                    Code::Software,
                    "pop3",
                    "refusing to send a command with a line break or NUL in it",
                ));
            }
            batch.push_str(l);
            batch.push_str("\r\n");
        }
        if self.broken {
            return Err(Error::new(Code::TempFail, &self.peer, "connection lost"));
        }
        self.set_timing(None);
        let s = self.conn.get_mut();
        let r = s.write_all(batch.as_bytes()).and_then(|()| s.flush());
        if let Err(e) = r {
            self.broken = true;
            let what = lines
                .first()
                .map_or("", |l| l.split(' ').next().unwrap_or(""));
            return Err(net_error(what, e));
        }
        Ok(())
    }

    /// One line, at most [`MAX_LINE`] octets, without its CRLF.
    fn line(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut line = Vec::with_capacity(128);
        loop {
            let buf = match self.conn.fill_buf() {
                Ok(b) => b,
                Err(e) => {
                    self.broken = true;
                    return Err(net_error(what, e));
                }
            };
            if buf.is_empty() {
                self.broken = true;
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
                self.broken = true;
                return Err(Error::new(Code::Protocol, what, "line too long"));
            }
            if done {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }

    /// A status line: `Ok(text)` after +OK, `Err(text)` after -ERR, within one timeout as a
    /// whole (a server dripping a byte at a time does not hold us).
    fn status(&mut self, what: &str) -> Result<std::result::Result<String, String>> {
        self.set_timing(Instant::now().checked_add(self.timeout));
        let line = self.line(what);
        self.set_timing(None);
        let line = String::from_utf8_lossy(&line?).into_owned();
        if let Some(rest) = line.strip_prefix("+OK") {
            return Ok(Ok(rest.trim_start().to_string()));
        }
        if let Some(rest) = line.strip_prefix("-ERR") {
            return Ok(Err(rest.trim_start().to_string()));
        }
        self.broken = true;
        Err(Error::new(
            Code::Protocol,
            what,
            format!("not a POP3 reply: {:?}", truncate(&line)),
        ))
    }

    /// A command's +OK, or its -ERR as an error.
    fn expect_ok(&mut self, what: &str) -> Result<String> {
        self.status(what)?.map_err(|t| refusal(what, &t, false))
    }

    /// The lines of a multi-line reply up to the lone dot (RFC 1939 §3), unstuffed, each
    /// handed to `each`; the whole within a deadline of its own.
    fn multiline(&mut self, what: &str, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        // Ten timeouts for a listing as a whole: a server dripping lines does not hold us.
        self.set_timing(Instant::now().checked_add(self.timeout.saturating_mul(10)));
        let r = (|| loop {
            let line = self.line(what)?;
            if line == b"." {
                return Ok(());
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            each(line)?;
        })();
        self.set_timing(None);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    /// One step of a SASL exchange (RFC 5034 §4): `Some(challenge)` after `+ `, or `None`
    /// with the status line that ended it kept in `last`.
    fn sasl_step(&mut self, what: &str) -> Result<Option<String>> {
        self.set_timing(Instant::now().checked_add(self.timeout));
        let line = self.line(what);
        self.set_timing(None);
        let line = String::from_utf8_lossy(&line?).into_owned();
        if line.starts_with("+OK") || line.starts_with("-ERR") {
            let ok = line.starts_with("+OK");
            let rest = line.trim_start_matches("+OK").trim_start_matches("-ERR");
            let rest = rest.trim_start().to_string();
            self.last = Some(if ok { Ok(rest) } else { Err(rest) });
            return Ok(None);
        }
        if let Some(c) = line.strip_prefix('+') {
            return Ok(Some(c.trim_start().to_string()));
        }
        self.broken = true;
        Err(Error::new(
            Code::Protocol,
            what,
            format!("not a POP3 reply: {:?}", truncate(&line)),
        ))
    }

    /// CAPA (RFC 2449 §5); a server without it gets RFC 1939's commands tried as they come.
    fn capa(&mut self) -> Result<()> {
        self.send(&["CAPA".into()])?;
        let mut caps = Caps::default();
        if self.status("CAPA")?.is_ok() {
            caps.known = true;
            self.multiline("CAPA", |l| {
                let l = String::from_utf8_lossy(l).to_ascii_uppercase();
                let mut w = l.split_ascii_whitespace();
                match w.next() {
                    Some("STLS") => caps.stls = true,
                    Some("USER") => caps.user = true,
                    Some("TOP") => caps.top = true,
                    Some("UIDL") => caps.uidl = true,
                    Some("PIPELINING") => caps.pipelining = true,
                    Some("SASL") => caps.sasl = w.map(str::to_string).collect(),
                    _ => {}
                }
                Ok(())
            })?;
        }
        self.caps = caps;
        Ok(())
    }

    /// STLS (RFC 2595 §4). Never a fall back to clear text: TLS was asked.
    fn stls(&mut self, config: Arc<rustls::ClientConfig>, name: &str) -> Result<()> {
        if self.caps.known && !self.caps.stls {
            return Err(Error::new(
                Code::Unavailable,
                &self.peer,
                "server does not offer STLS, and TLS is required (--tls none to fetch in clear)",
            ));
        }
        self.send(&["STLS".into()])?;
        if let Err(text) = self.status("STLS")? {
            return Err(Error::new(
                Code::Unavailable,
                "STLS",
                format!(
                    "refused ({}), and TLS is required: not going on in clear text",
                    truncate(&text)
                ),
            ));
        }
        // Bytes already here came before the handshake: an attacker's, to be read as if
        // they came over TLS (RFC 2595 §4 has the client discard them; we stop instead).
        let waiting = self.conn.get_mut().io().is_some_and(|io| io.has_input());
        if !self.conn.buffer().is_empty() || waiting {
            self.broken = true;
            *self.conn.get_mut() = Stream::Closed;
            return Err(Error::new(
                Code::Protocol,
                "STLS",
                "server sent data after its +OK before the TLS handshake (response injection?)",
            ));
        }
        let Stream::Plain(mut io) = std::mem::replace(self.conn.get_mut(), Stream::Closed) else {
            return Err(Error::new(Code::Software, "STLS", "already in TLS"));
        };
        self.broken = true;
        io.set_timeout(self.timeout.max(Duration::from_millis(1)));
        io.set_deadline(Instant::now().checked_add(self.timeout));
        let mut stream = tls::upgrade(io, config, name)?;
        stream.sock.set_deadline(None);
        self.conn = BufReader::with_capacity(64 * 1024, Stream::Tls(Box::new(stream)));
        self.broken = false;
        // RFC 2595 §4: what CAPA said before TLS is forgotten; ask again.
        self.capa()
    }

    fn login(&mut self, cred: &Credentials, level: Level) -> Result<()> {
        if !self.is_tls() && level != Level::None {
            return Err(Error::new(
                Code::Config,
                "login",
                "refusing to send credentials without TLS",
            ));
        }
        let offers = |m: &str| self.caps.sasl.iter().any(|s| s.eq_ignore_ascii_case(m));
        let how = match cred.login {
            Some(l) => l,
            None if offers("PLAIN") => Login::Plain,
            None if self.caps.user || !self.caps.known || self.caps.sasl.is_empty() => {
                Login::UserPass
            }
            None if offers("LOGIN") => Login::Login,
            None => Login::UserPass,
        };
        if how != Login::UserPass && self.caps.known && !offers(how.sasl_name()) {
            return Err(Error::new(
                Code::Unavailable,
                format!("AUTH {}", how.sasl_name()),
                format!("not offered (server offers {})", self.caps.sasl.join(" ")),
            ));
        }
        let what = match how {
            Login::UserPass => "USER/PASS".to_string(),
            m => format!("AUTH {}", m.sasl_name()),
        };
        let reply = match how {
            Login::UserPass => {
                self.send(&[format!("USER {}", cred.user)])?;
                match self.status(&what)? {
                    Ok(_) => {
                        self.send(&[format!("PASS {}", cred.secret)])?;
                        self.status(&what)?
                    }
                    e => e,
                }
            }
            Login::Login => {
                self.send(&["AUTH LOGIN".into()])?;
                let mut r = self.sasl_step(&what)?;
                for secret in [&cred.user, &cred.secret] {
                    if r.is_some() {
                        self.send(&[sasl::encode(secret.as_bytes())])?;
                        r = self.sasl_step(&what)?;
                    }
                }
                match r {
                    None => self.last.take().unwrap_or(Ok(String::new())),
                    Some(_) => {
                        self.broken = true;
                        Err("unexpected challenge".into())
                    }
                }
            }
            m => {
                let initial = match m {
                    Login::Plain => sasl::plain(&cred.user, &cred.secret),
                    Login::XOAuth2 => sasl::xoauth2(&cred.user, &cred.secret),
                    _ => sasl::oauthbearer(&cred.user, &cred.secret),
                };
                self.send(&[format!("AUTH {} {initial}", m.sasl_name())])?;
                // An OAuth error comes as a challenge (RFC 7628 §3.2.3): answered with the
                // empty response (XOAUTH2) or %x01 (OAUTHBEARER), then the -ERR.
                if self.sasl_step(&what)?.is_some() {
                    let answer = if m == Login::OAuthBearer { "AQ==" } else { "" };
                    self.send(&[answer.to_string()])?;
                    if self.sasl_step(&what)?.is_some() {
                        self.broken = true;
                    }
                }
                self.last
                    .take()
                    .unwrap_or(Err("unexpected challenge".into()))
            }
        };
        reply.map(|_| ()).map_err(|t| refusal(&what, &t, true))
    }
}

/// A line cut for a message.
fn truncate(s: &str) -> String {
    s.chars()
        .take(120)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

/// A UIDL as RFC 1939 §7 allows it: 1 to 70 characters from 0x21 to 0x7E.
fn valid_uidl(id: &str) -> bool {
    (1..=70).contains(&id.len()) && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// `n rest` of a listing line.
fn numbered(line: &[u8], what: &str) -> Result<(u32, String)> {
    let text = std::str::from_utf8(line)
        .map_err(|_| Error::new(Code::Protocol, what, "listing line is not text"))?;
    let mut w = text.split_ascii_whitespace();
    let n = w
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|&n| n > 0);
    match (n, w.next()) {
        (Some(n), Some(rest)) => Ok((n, rest.to_string())),
        _ => Err(Error::new(
            Code::Protocol,
            what,
            format!("bad listing line {:?}", truncate(text)),
        )),
    }
}

impl Client {
    /// Commands for `which`, in windows when the server pipelines, each reply read with
    /// `read` in order.
    fn each_command<T>(
        &mut self,
        which: &[T],
        command: impl Fn(&T) -> String,
        mut read: impl FnMut(&mut Client, usize, &T) -> Result<()>,
    ) -> Result<()> {
        let window = if self.caps.pipelining { WINDOW } else { 1 };
        for (g, group) in which.chunks(window).enumerate() {
            let lines: Vec<String> = group.iter().map(&command).collect();
            self.send(&lines)?;
            for (k, m) in group.iter().enumerate() {
                if let Err(e) = read(self, g * window + k, m) {
                    // Replies still on their way: the session is out of step.
                    if group.len() > 1 {
                        self.broken = true;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// A multi-line content streamed to `each` as it comes, dot-unstuffed with LF line ends
    /// (the Maildir convention), at most `limit` octets, then read to its end whatever `each`
    /// took of it.
    fn content(
        &mut self,
        what: &str,
        limit: u64,
        each: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        // The whole content within the timeout plus a second per 1000 octets it may have:
        // a server dripping a byte at a time does not hold us for ever.
        let allow = self
            .timeout
            .saturating_add(Duration::from_secs(limit / 1000));
        self.set_timing(Instant::now().checked_add(allow));
        let mut body = Body {
            conn: &mut self.conn,
            state: State::Bol,
            done: false,
            left: limit,
            carry: Vec::new(),
        };
        let r = each(&mut body).and_then(|()| {
            io::copy(&mut body, &mut io::sink())
                .map(|_| ())
                .map_err(|e| net_error(what, e))
        });
        let done = body.done;
        self.set_timing(None);
        if r.is_err() || !done {
            self.broken = true;
        }
        r.map_err(|e| match e.why().contains("larger than") {
            true => e.with_code(Code::Protocol),
            false => e,
        })
    }
}

/// One message as UIDL and LIST give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its number in this session (RFC 1939 §5).
    pub number: u32,
    /// Its UIDL: the same in every session (RFC 1939 §7).
    pub uidl: String,
    /// Its size in octets, as LIST says.
    pub size: u64,
}

impl Client {
    /// Every message: UIDL and LIST (RFC 1939 §7, §5). A maildrop with an invalid or a
    /// repeated UIDL is refused whole ([`Code::Protocol`]).
    pub fn list(&mut self) -> Result<Vec<Entry>> {
        if self.caps.known && !self.caps.uidl {
            return Err(Error::new(
                Code::Unavailable,
                &self.peer,
                "server does not offer UIDL: cannot tell new mail from old",
            ));
        }
        let pipelined = self.caps.pipelining;
        if pipelined {
            self.send(&["UIDL".into(), "LIST".into()])?;
        } else {
            self.send(&["UIDL".into()])?;
        }
        self.expect_ok("UIDL")?;
        let mut ids: Vec<(u32, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut bad = None;
        self.multiline("UIDL", |l| {
            if ids.len() >= MAX_MESSAGES {
                return Err(Error::new(
                    Code::Protocol,
                    "UIDL",
                    format!("more than {MAX_MESSAGES} messages listed"),
                ));
            }
            let (n, id) = numbered(l, "UIDL")?;
            if bad.is_none() && !valid_uidl(&id) {
                bad = Some(format!(
                    "message {n} has an invalid UIDL {:?}",
                    truncate(&id)
                ));
            }
            if bad.is_none() && !seen.insert(id.clone()) {
                bad = Some(format!("two messages have the UIDL {:?}", truncate(&id)));
            }
            ids.push((n, id));
            Ok(())
        })?;
        if !pipelined {
            self.send(&["LIST".into()])?;
        }
        self.expect_ok("LIST")?;
        let mut sizes = std::collections::HashMap::new();
        self.multiline("LIST", |l| {
            if sizes.len() >= MAX_MESSAGES {
                return Err(Error::new(
                    Code::Protocol,
                    "LIST",
                    format!("more than {MAX_MESSAGES} messages listed"),
                ));
            }
            let (n, size) = numbered(l, "LIST")?;
            let size = size
                .parse::<u64>()
                .map_err(|_| Error::new(Code::Protocol, "LIST", "bad size"))?;
            sizes.insert(n, size);
            Ok(())
        })?;
        if let Some(why) = bad {
            // Ids that do not tell messages apart could fetch one twice or delete one
            // never fetched: nothing is done with such a maildrop.
            return Err(Error::new(Code::Protocol, "UIDL", why));
        }
        ids.into_iter()
            .map(|(number, id)| match sizes.get(&number) {
                Some(&size) => Ok(Entry {
                    number,
                    uidl: id,
                    size,
                }),
                None => Err(Error::new(
                    Code::Protocol,
                    "LIST",
                    format!("message {number} is in UIDL but not in LIST"),
                )),
            })
            .collect()
    }

    /// The header of each of `which` (TOP n 0, RFC 1939 §7), pipelined when offered, handed
    /// to `each` with its index in `which`.
    pub fn top(
        &mut self,
        which: &[u32],
        each: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        if self.caps.known && !self.caps.top {
            return Err(Error::new(
                Code::Unavailable,
                &self.peer,
                "server does not offer TOP: cannot read headers alone",
            ));
        }
        self.each_command(
            which,
            |n| format!("TOP {n} 0"),
            |c, i, n| {
                let what = format!("TOP {n}");
                c.expect_ok(&what)?;
                // A header of up to 1 MiB; more is a server's attack, not mail.
                let mut head = Vec::new();
                c.content(&what, 1 << 20, &mut |r| {
                    r.read_to_end(&mut head)
                        .map(|_| ())
                        .map_err(|e| net_error(&what, e))
                })?;
                each(i, &head)
            },
        )
    }

    /// Each of `which` (number and listed size) whole (RETR), pipelined when offered,
    /// streamed to `each` with its index in `which`: dot-unstuffed, LF line ends, at most
    /// twice the listed size and 64 KiB.
    pub fn retr(
        &mut self,
        which: &[(u32, u64)],
        each: &mut dyn FnMut(usize, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        self.each_command(
            which,
            |(n, _)| format!("RETR {n}"),
            |c, i, &(n, size)| {
                let what = format!("RETR {n}");
                c.expect_ok(&what)?;
                // The size LIST gave, with room for servers that count LF line ends or add
                // a header; never unbounded.
                let limit = size.saturating_mul(2).saturating_add(64 * 1024);
                c.content(&what, limit, &mut |r| each(i, r))
            },
        )
    }

    /// Mark `which` deleted (DELE); QUIT deletes them.
    pub fn dele(&mut self, which: &[u32]) -> Result<()> {
        self.each_command(
            which,
            |n| format!("DELE {n}"),
            |c, _, n| c.expect_ok(&format!("DELE {n}")).map(|_| ()),
        )
    }

    /// QUIT: the deletions are made (RFC 1939 §6), the session ends.
    pub fn quit(mut self) -> Result<()> {
        // RFC 1939 §6: the deletions are done at QUIT, in the UPDATE state; its -ERR says
        // some were not.
        self.send(&["QUIT".into()])?;
        let r = self.expect_ok("QUIT");
        if let Stream::Tls(s) = self.conn.get_mut() {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        r.map(|_| ())
    }
}

/// Put `bytes` into `out` at `n`, what does not fit into `carry`.
fn emit(out: &mut [u8], bytes: &[u8], n: &mut usize, carry: &mut Vec<u8>) {
    for &b in bytes {
        if *n < out.len() {
            out[*n] = b;
            *n += 1;
        } else {
            carry.push(b);
        }
    }
}

/// Where the unstuffing reader is in a line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    Bol,
    /// Inside a line.
    Mid,
    /// A dot at the start of a line: stuffing, or the end mark.
    Dot,
    /// A dot and CR at the start of a line.
    DotCr,
    /// A CR: a line end when LF follows.
    Cr,
}

/// A multi-line content as a reader: dot-unstuffed (RFC 1939 §3), CRLF as LF, ending at
/// the lone dot; an end of input before it is an error, never a short message.
struct Body<'a> {
    conn: &'a mut BufReader<Stream>,
    state: State,
    done: bool,
    left: u64,
    carry: Vec<u8>,
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        // What did not fit last time (a CR given back with the byte after it).
        while n < out.len() && !self.carry.is_empty() {
            out[n] = self.carry.remove(0);
            n += 1;
        }
        while !self.done && n < out.len() {
            let buf = self.conn.fill_buf()?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the server",
                ));
            }
            let mut used = 0;
            let room = out.len();
            for &b in buf {
                if n >= room || self.done {
                    break;
                }
                used += 1;
                let carry = &mut self.carry;
                self.state = match (self.state, b) {
                    (State::Dot, b'\r') => State::DotCr,
                    (State::Dot, b'\n') | (State::DotCr, b'\n') => {
                        self.done = true;
                        State::Bol
                    }
                    // A CR not before LF is data (so is a stuffed dot's).
                    (State::DotCr | State::Cr, b) if b != b'\n' => {
                        emit(out, b"\r", &mut n, carry);
                        match b {
                            b'\r' => State::Cr,
                            b => {
                                emit(out, &[b], &mut n, carry);
                                State::Mid
                            }
                        }
                    }
                    (_, b'\r') => State::Cr,
                    (_, b'\n') => {
                        emit(out, b"\n", &mut n, carry);
                        State::Bol
                    }
                    (State::Bol, b'.') => State::Dot,
                    (_, b) => {
                        emit(out, &[b], &mut n, carry);
                        State::Mid
                    }
                };
            }
            self.conn.consume(used);
        }
        let got = n as u64;
        if got > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message larger than the server listed it",
            ));
        }
        self.left -= got;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::conn::MemIo;

    /// The content of `wire` as the reader gives it, read `step` octets at a time through a
    /// buffer of `cap` (so lines and CRLFs split across reads).
    fn unstuff(wire: &[u8], cap: usize, step: usize) -> io::Result<(Vec<u8>, bool)> {
        let (io, _) = MemIo::new(wire.to_vec());
        let mut conn = BufReader::with_capacity(cap, Stream::Plain(Box::new(io)));
        let mut body = Body {
            conn: &mut conn,
            state: State::Bol,
            done: false,
            left: 1 << 20,
            carry: Vec::new(),
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok((out, body.done))
    }

    #[test]
    fn content_is_unstuffed_with_lf_ends_however_it_is_split() {
        let wire = b"Subject: x\r\n\r\n..leading dot\r\n.\r\n";
        let wire2 = b"a\rb\r\n.x\r\n\r\nlast\r\n.\r\nNEXT REPLY\r\n";
        for cap in [1, 2, 3, 7, 64] {
            for step in [1, 2, 5, 4096] {
                let (out, done) = unstuff(wire, cap, step).unwrap();
                assert_eq!(
                    out, b"Subject: x\n\n.leading dot\n",
                    "cap {cap} step {step}"
                );
                assert!(done);
                // A lone CR is data; a stuffed dot before a letter goes; the end mark ends it
                // and what follows is the next reply's.
                let (out, done) = unstuff(wire2, cap, step).unwrap();
                assert_eq!(out, b"a\rb\nx\n\nlast\n", "cap {cap} step {step}");
                assert!(done);
            }
        }
    }

    #[test]
    fn content_cut_before_its_end_mark_is_an_error_never_a_short_message() {
        let e = unstuff(b"Subject: x\r\n\r\nhalf", 16, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn uidls_are_checked_as_rfc_1939_allows_them() {
        assert!(valid_uidl("000000016b0f04ec") && valid_uidl("a/b:c.~"));
        assert!(!valid_uidl("") && !valid_uidl(&"x".repeat(71)) && !valid_uidl("a b"));
        assert_eq!(numbered(b"3 abc", "UIDL").unwrap(), (3, "abc".to_string()));
        assert!(numbered(b"0 abc", "UIDL").is_err() && numbered(b"x", "UIDL").is_err());
    }
}
