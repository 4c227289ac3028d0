//! The POP3 server session (RFC 1939), maccess's protocol: one state machine over any
//! [`Conn`], so the same code runs under inetd, behind `--listen`, and in tests on bytes in
//! memory, as [`crate::smtp::server`] does for SMTP.
//!
//! States (RFC 1939 §3): AUTHORIZATION until USER/PASS or AUTH PLAIN (RFC 5034) succeeds and
//! the mailbox is locked; TRANSACTION over a snapshot of the Maildir taken then (mail that
//! arrives later waits for the next session, §8: the maildrop must not change under the
//! client's message numbers); UPDATE only on QUIT from TRANSACTION, which removes what DELE
//! marked and syncs the directories before `+OK`. A session that ends any other way (the
//! client vanished, a timeout, a shutdown) removes nothing.
//!
//! Passwords cross only TLS (STLS, RFC 2595, or implicit TLS on port 995) unless the
//! operator allowed otherwise; failed logins cost the delay and count toward the limit of
//! [`crate::passwd::Failures`], the same as mreceive's AUTH. Everything a client controls is
//! bounded: command lines (255 octets, RFC 2449 §4), SASL lines, bad commands, the time
//! each line may take. Messages go out as they are read, a buffer at a time, with LF made
//! CRLF and dot-stuffing (RFC 1939 §3), so a message of any size costs the same memory.
//! What happened goes to the caller's log closure: this module never prints.

use super::command::{self, Command, MAX_LINE, MAX_SASL_LINE};
use crate::net::conn::{Conn, Line, STOPPING};
use crate::passwd::{Failures, Passwords};
use crate::store::maildir::{Listed, Maildir};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How the server behaves; shared by all sessions.
pub struct Settings {
    /// Our host name, in the greeting.
    pub hostname: String,
    /// Users' Maildirs are `maildir_base/USER/Maildir`, as mreceive delivers them.
    pub maildir_base: PathBuf,
    /// Users and their password hashes.
    pub passwords: Arc<Passwords>,
    /// TLS for STLS and implicit TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Allow USER/PASS and AUTH without TLS.
    pub insecure_auth: bool,
    /// The wait before answering a failed login, times the failures so far.
    pub auth_failure_delay: Duration,
    /// The time any one read or write may take.
    pub timeout: Duration,
    /// Where the session's log lines go (`key=value` text, without the tool's name).
    pub log: Box<dyn Fn(&str) + Send + Sync>,
}

/// Where the client connects from.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The IP address, when known.
    pub ip: Option<std::net::IpAddr>,
}

/// How a session ended, for the caller and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ended {
    /// Messages sent whole with RETR.
    pub retrieved: usize,
    /// Messages removed in the UPDATE state.
    pub deleted: usize,
}

/// Bad commands tolerated before we hang up (as mreceive's SMTP limit).
const MAX_ERRORS: u32 = 20;

/// How much of a message is read from its file at a time.
const CHUNK: usize = 64 * 1024;

/// One message of the snapshot.
struct Msg {
    listed: Listed,
    /// Its size as sent: octets with CRLF line ends, before dot-stuffing (RFC 1939 §5 LIST).
    size: u64,
    /// The unique-id listing's id (RFC 1939 §7 UIDL: 1 to 70 printable characters).
    uid: String,
    deleted: bool,
}

/// The locked mailbox of the TRANSACTION state.
struct Mailbox {
    user: String,
    maildir: Maildir,
    msgs: Vec<Msg>,
    /// The reader's lock (flock on the Maildir): held until the session ends.
    _lock: File,
}

struct Session<'a> {
    conn: Conn,
    s: &'a Settings,
    peer: &'a Peer,
    /// The name given with USER, waiting for PASS.
    user: Option<String>,
    mailbox: Option<Mailbox>,
    errors: u32,
    failures: Failures,
    ended: Ended,
}

/// Why the loop ended, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Quit,
    Closed,
    Timeout,
    Errors,
    Auth,
    Tls,
    Shutdown,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Closed => "closed",
            End::Timeout => "timeout",
            End::Errors => "errors",
            End::Auth => "auth",
            End::Tls => "tls",
            End::Shutdown => "shutdown",
        }
    }
}

/// Serve one POP3 session on `conn` until QUIT, end of input, a timeout or too many errors.
/// With `implicit_tls`, the TLS handshake comes first (port 995, RFC 8314).
pub fn serve(conn: Conn, s: &Settings, peer: &Peer, implicit_tls: bool) -> crate::Result<Ended> {
    let mut ses = Session {
        conn,
        s,
        peer,
        user: None,
        mailbox: None,
        errors: 0,
        failures: Failures::new(s.auth_failure_delay),
        ended: Ended::default(),
    };
    ses.conn.set_timeout(s.timeout);
    let result = ses.run(implicit_tls);
    ses.conn.close();
    let mut line = String::from("disconnect");
    ses.client_pairs(&mut line);
    match &result {
        Ok(end) => crate::log::pair(&mut line, "end", end.name()),
        Err(e) => {
            crate::log::pair(&mut line, "end", "io");
            crate::log::pair(&mut line, "reason", crate::exit::describe_io(e));
        }
    }
    crate::log::pair(&mut line, "retrieved", ses.ended.retrieved);
    crate::log::pair(&mut line, "deleted", ses.ended.deleted);
    (s.log)(&line);
    result
        .map(|_| ses.ended)
        .map_err(|e| crate::Error::io(crate::Code::IoErr, "session", e))
}

enum Next {
    Go,
    Quit(End),
}

impl Session<'_> {
    fn ok(&mut self, text: &str) {
        let sep = if text.is_empty() { "" } else { " " };
        self.conn.send(format!("+OK{sep}{text}\r\n").as_bytes());
    }

    fn err(&mut self, text: &str) {
        self.conn.send(format!("-ERR {text}\r\n").as_bytes());
    }

    fn client_pairs(&self, line: &mut String) {
        let ip = self
            .peer
            .ip
            .map_or("unknown".to_string(), |ip| ip.to_string());
        crate::log::pair(line, "client", ip);
        if let Some(m) = &self.mailbox {
            crate::log::pair(line, "user", &m.user);
        }
        if let Some(t) = self.conn.tls_summary() {
            crate::log::pair(line, "tls", t);
        }
    }

    fn log(&self, what: &str, pairs: &[(&str, &str)]) {
        let mut line = what.to_string();
        self.client_pairs(&mut line);
        for (k, v) in pairs {
            crate::log::pair(&mut line, k, v);
        }
        (self.s.log)(&line);
    }

    /// Passwords may be sent now: over TLS, or where the operator allowed it without.
    fn may_login(&self) -> bool {
        self.conn.is_tls() || self.s.insecure_auth
    }

    fn run(&mut self, implicit_tls: bool) -> io::Result<End> {
        if implicit_tls {
            let Some(tls) = self.s.tls.clone() else {
                return Err(io::Error::other("implicit TLS without a certificate"));
            };
            if let Err(e) = self.conn.start_tls(tls) {
                self.log("tls", &[("status", "failed"), ("reason", &e.to_string())]);
                return Ok(End::Tls);
            }
        }
        self.ok(&format!("{} POP3 mailpipe maccess ready", self.s.hostname));
        loop {
            self.conn.set_interruptible(true);
            let read = if self.conn.stopping() {
                Err(io::Error::new(STOPPING, "shutting down"))
            } else {
                self.conn.read_line(MAX_LINE)
            };
            self.conn.set_interruptible(false);
            let line = match read {
                Ok(Line::Text(l)) => l,
                Ok(Line::TooLong) => {
                    self.err("line too long");
                    if self.error() {
                        return Ok(End::Errors);
                    }
                    continue;
                }
                Ok(Line::Eof) => return Ok(End::Closed),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.err("timeout, closing");
                    let _ = self.conn.flush();
                    return Ok(End::Timeout);
                }
                // Nothing is removed: the client did not ask for UPDATE.
                Err(e) if e.kind() == STOPPING => {
                    self.err("[SYS/TEMP] server shutting down, nothing deleted");
                    let _ = self.conn.flush();
                    return Ok(End::Shutdown);
                }
                Err(e) => return Err(e),
            };
            let cmd = match command::parse(&line) {
                Ok(c) => c,
                Err(why) => {
                    self.err(why);
                    if self.error() {
                        return Ok(End::Errors);
                    }
                    continue;
                }
            };
            let next = match self.command(cmd) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.err("timeout, closing");
                    let _ = self.conn.flush();
                    return Ok(End::Timeout);
                }
                Err(e) => return Err(e),
            };
            if let Next::Quit(end) = next {
                self.conn.flush()?;
                return Ok(end);
            }
        }
    }

    /// Count a bad command; true when it was one too many (then the -ERR is queued).
    fn error(&mut self) -> bool {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.err("too many errors, closing");
            return true;
        }
        false
    }

    /// A command given in the wrong state: counted like a bad one.
    fn refuse(&mut self, text: &str) -> Next {
        self.err(text);
        if self.error() {
            Next::Quit(End::Errors)
        } else {
            Next::Go
        }
    }

    fn command(&mut self, cmd: Command) -> io::Result<Next> {
        match cmd {
            Command::Capa => self.capa(),
            Command::Noop if self.mailbox.is_some() => self.ok(""),
            Command::Quit => return Ok(Next::Quit(self.quit())),
            Command::Stls => return self.stls(),
            Command::User(_) | Command::Pass(_) | Command::Auth { .. } | Command::Apop
                if self.mailbox.is_some() =>
            {
                return Ok(self.refuse("already logged in"));
            }
            Command::Apop => return Ok(self.refuse("APOP not supported: use USER/PASS or AUTH")),
            Command::User(_) | Command::Pass(_) | Command::Auth { .. } if !self.may_login() => {
                return Ok(self.refuse("use STLS first: no passwords in the clear"));
            }
            Command::User(name) => {
                self.user = Some(name);
                self.ok("send PASS");
            }
            Command::Pass(password) => {
                let Some(user) = self.user.take() else {
                    return Ok(self.refuse("USER first"));
                };
                return Ok(self.login(&user, &password));
            }
            Command::Auth {
                mechanism: None, ..
            } => {
                // RFC 1734's listing form, which some clients still send.
                self.conn.send(b"+OK mechanisms follow\r\nPLAIN\r\n.\r\n");
            }
            Command::Auth {
                mechanism: Some(m),
                initial,
            } => return self.auth(&m, initial),
            _ if self.mailbox.is_none() => return Ok(self.refuse("log in first")),
            Command::Stat => {
                let (n, size) = self
                    .live()
                    .fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size));
                self.ok(&format!("{n} {size}"));
            }
            Command::List(None) => self.listing(|m| m.size.to_string()),
            Command::Uidl(None) => self.listing(|m| m.uid.clone()),
            Command::List(Some(n)) => {
                if let Some(m) = self.msg(n) {
                    let size = m.size;
                    self.ok(&format!("{n} {size}"));
                }
            }
            Command::Uidl(Some(n)) => {
                if let Some(m) = self.msg(n) {
                    let uid = m.uid.clone();
                    self.ok(&format!("{n} {uid}"));
                }
            }
            Command::Retr(n) => self.retr(n, None)?,
            Command::Top(n, lines) => self.retr(n, Some(lines))?,
            Command::Dele(n) => {
                if let Some(m) = self.msg_mut(n) {
                    m.deleted = true;
                    self.ok(&format!("message {n} deleted"));
                }
            }
            Command::Rset => {
                if let Some(mb) = &mut self.mailbox {
                    mb.msgs.iter_mut().for_each(|m| m.deleted = false);
                }
                self.ok("");
            }
            Command::Noop => self.ok(""),
        }
        Ok(Next::Go)
    }

    /// RFC 2449 §5: what we offer now (USER and SASL only where a password may be sent).
    fn capa(&mut self) {
        let mut caps = String::from("+OK capability list follows\r\n");
        caps.push_str("TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
        if self.mailbox.is_none() && self.may_login() {
            caps.push_str("USER\r\nSASL PLAIN\r\n");
        }
        if self.mailbox.is_none() && self.s.tls.is_some() && !self.conn.is_tls() {
            caps.push_str("STLS\r\n");
        }
        // Nothing is ever removed but by the client's own DELE.
        caps.push_str("EXPIRE NEVER\r\nIMPLEMENTATION mailpipe-maccess\r\n.\r\n");
        self.conn.send(caps.as_bytes());
    }

    fn stls(&mut self) -> io::Result<Next> {
        let Some(tls) = self.s.tls.clone() else {
            return Ok(self.refuse("STLS not offered"));
        };
        if self.conn.is_tls() || self.mailbox.is_some() {
            return Ok(self.refuse("STLS not allowed now"));
        }
        self.ok("begin TLS negotiation");
        // Conn::start_tls drops whatever was pipelined after STLS (RFC 2595 §4, like
        // STARTTLS's CVE-2011-0411): those commands came in the clear.
        if let Err(e) = self.conn.start_tls(tls) {
            self.log("tls", &[("status", "failed"), ("reason", &e.to_string())]);
            return Ok(Next::Quit(End::Tls));
        }
        self.user = None;
        Ok(Next::Go)
    }

    /// AUTH (RFC 5034): PLAIN only (RFC 4616), with or without an initial response.
    fn auth(&mut self, mechanism: &str, initial: Option<String>) -> io::Result<Next> {
        if mechanism != "PLAIN" {
            return Ok(self.refuse("mechanism not supported"));
        }
        let response = match initial {
            Some(i) => i,
            None => {
                self.conn.send(b"+ \r\n");
                match self.conn.read_line(MAX_SASL_LINE)? {
                    Line::Text(l) => String::from_utf8_lossy(&l).trim_end().to_string(),
                    Line::TooLong => return Ok(self.refuse("response too long")),
                    Line::Eof => return Ok(Next::Quit(End::Closed)),
                }
            }
        };
        // RFC 5034 §4: "*" cancels.
        if response == "*" {
            self.err("authentication cancelled");
            return Ok(Next::Go);
        }
        // RFC 5034 §4: "=" is the empty initial response.
        let response = if response == "=" { "" } else { &response };
        match crate::net::sasl::decode_plain(response) {
            // An authorization identity other than the user is not supported.
            Some(c) if c.authzid.is_empty() || c.authzid == c.user => {
                Ok(self.login(&c.user, &c.password))
            }
            _ => Ok(self.login_failed(None)),
        }
    }

    /// Check the password, then lock and list the mailbox.
    fn login(&mut self, user: &str, password: &str) -> Next {
        if !self.s.passwords.verify(user, password) {
            return self.login_failed(Some(user));
        }
        // The name becomes a path: a user of the file with a `/` or a leading dot in it
        // would read someone else's mail.
        if user.is_empty() || user.starts_with('.') || user.contains(['/', '\0']) {
            self.err("[SYS/PERM] this user has no mailbox here");
            return Next::Go;
        }
        let root = self.s.maildir_base.join(user).join("Maildir");
        match open_mailbox(user, &root) {
            Ok(Some(mb)) => {
                let n = mb.msgs.len();
                let size: u64 = mb.msgs.iter().map(|m| m.size).sum();
                self.mailbox = Some(mb);
                self.log("login", &[("messages", &n.to_string())]);
                self.ok(&format!("{user} has {n} messages ({size} octets)"));
            }
            // RFC 2449 §8.1.1: another session holds the maildrop.
            Ok(None) => self.err("[IN-USE] mailbox in use by another session"),
            Err(e) => {
                self.log("login", &[("status", "failed"), ("reason", e.why())]);
                self.err("[SYS/TEMP] cannot open the mailbox, try again later");
            }
        }
        Next::Go
    }

    fn login_failed(&mut self, user: Option<&str>) -> Next {
        let last = self.failures.fail();
        // Logged with the user tried (fail2ban reads these lines).
        self.log(
            "login",
            &[("status", "failed"), ("tried", user.unwrap_or(""))],
        );
        // RFC 3206 §4: [AUTH] says the credentials were wrong, not the server.
        self.err("[AUTH] authentication failed");
        if last {
            self.err("[AUTH] too many failed logins, closing");
            return Next::Quit(End::Auth);
        }
        Next::Go
    }

    /// The messages not marked deleted, with their numbers.
    fn live(&self) -> impl Iterator<Item = (usize, &Msg)> {
        let msgs = self.mailbox.as_ref().map_or(&[][..], |m| &m.msgs[..]);
        msgs.iter()
            .enumerate()
            .filter(|(_, m)| !m.deleted)
            .map(|(i, m)| (i + 1, m))
    }

    /// The multi-line listing of every live message.
    fn listing(&mut self, value: impl Fn(&Msg) -> String) {
        let mut out = String::from("+OK listing follows\r\n");
        for (n, m) in self.live() {
            out.push_str(&format!("{n} {}\r\n", value(m)));
        }
        out.push_str(".\r\n");
        self.conn.send(out.as_bytes());
    }

    /// Message `n`, or `None` after queueing the -ERR (no such message, or deleted).
    fn msg_mut(&mut self, n: u64) -> Option<&mut Msg> {
        let found = self.mailbox.as_mut().and_then(|mb| {
            let i = usize::try_from(n).ok()?.checked_sub(1)?;
            mb.msgs.get_mut(i).filter(|m| !m.deleted)
        });
        if found.is_none() {
            self.conn.send(b"-ERR no such message\r\n");
        }
        found
    }

    fn msg(&mut self, n: u64) -> Option<&Msg> {
        self.msg_mut(n).map(|m| &*m)
    }

    /// RETR (whole) or TOP (the header and `top` lines of the body).
    fn retr(&mut self, n: u64, top: Option<u64>) -> io::Result<()> {
        let Some(m) = self.msg(n) else {
            return Ok(());
        };
        let (path, size) = (m.listed.path.clone(), m.size);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let why = crate::exit::describe_io(&e);
                self.log("retrieve", &[("status", "failed"), ("reason", &why)]);
                self.err("[SYS/TEMP] message unreadable now");
                return Ok(());
            }
        };
        match top {
            None => self.ok(&format!("{size} octets")),
            Some(_) => self.ok("top of message follows"),
        }
        let conn = &mut self.conn;
        let mut enc = Encoder::new(true, top);
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 2);
        loop {
            let k = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The +OK is out: the only honest end now is to hang up, so the client
                // does not take half a message for the whole.
                Err(e) => return Err(e),
            };
            out.clear();
            let more = enc.feed(&buf[..k], &mut out);
            conn.send(&out);
            // A big message goes out as it is read; a small one waits in the batch.
            if k == CHUNK {
                conn.flush()?;
            }
            if !more {
                break;
            }
        }
        out.clear();
        enc.finish(&mut out);
        out.extend_from_slice(b".\r\n");
        conn.send(&out);
        if top.is_none() {
            self.ended.retrieved += 1;
            self.seen(n);
        }
        Ok(())
    }

    /// Mark message `n` seen in the Maildir (new/ to cur/ with S). A failure only loses the
    /// flag, which is not worth the client's message: it is logged.
    fn seen(&mut self, n: u64) {
        let Some(mb) = &mut self.mailbox else { return };
        let Some(m) = usize::try_from(n - 1).ok().and_then(|i| mb.msgs.get_mut(i)) else {
            return;
        };
        match mb.maildir.mark_seen(&m.listed) {
            Ok(p) => {
                m.listed.path = p;
                m.listed.new = false;
            }
            Err(e) => {
                let why = crate::exit::describe_io(&e);
                self.log("seen", &[("status", "failed"), ("reason", &why)]);
            }
        }
    }

    /// QUIT: in TRANSACTION, the UPDATE state (RFC 1939 §6): remove what was marked, sync,
    /// and only then `+OK`.
    fn quit(&mut self) -> End {
        let Some(mb) = self.mailbox.take() else {
            self.ok("bye");
            return End::Quit;
        };
        let gone: Vec<PathBuf> = mb
            .msgs
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.listed.path.clone())
            .collect();
        let result = if gone.is_empty() {
            Ok(())
        } else {
            mb.maildir.remove(&gone)
        };
        let n = gone.len();
        // Kept for the disconnect line's user=.
        self.mailbox = Some(Mailbox {
            msgs: Vec::new(),
            ..mb
        });
        match result {
            Ok(()) => {
                self.ended.deleted = n;
                self.ok(&format!("{n} messages deleted, bye"));
            }
            Err(e) => {
                self.log("update", &[("status", "failed"), ("reason", e.why())]);
                // RFC 1939 §6: -ERR when some deleted messages were not removed.
                self.err("[SYS/TEMP] some deleted messages not removed");
            }
        }
        End::Quit
    }
}

/// Lock the Maildir at `root` (creating it when missing, as mreceive would on the first
/// delivery) and take its snapshot; `None` when another session holds it.
fn open_mailbox(user: &str, root: &Path) -> crate::Result<Option<Mailbox>> {
    let maildir = Maildir::open(root)?;
    let what = || format!("lock {}", root.display());
    let lock = match maildir.lock_reader() {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(None),
        Err(e) => return Err(crate::Error::io(crate::Code::TempFail, what(), e)),
    };
    let mut msgs = Vec::new();
    for listed in maildir.list()? {
        // A file removed since the listing (by a local reader) is just not in the snapshot.
        let Some(size) = size_in_name(&listed.unique).or_else(|| sent_size(&listed.path).ok())
        else {
            continue;
        };
        let uid = uidl(&listed.unique);
        msgs.push(Msg {
            listed,
            size,
            uid,
            deleted: false,
        });
    }
    Ok(Some(Mailbox {
        user: user.to_string(),
        maildir,
        msgs,
        _lock: lock,
    }))
}

/// The size with CRLF line ends when the name says it: `,W=` (Dovecot's and Courier's
/// "virtual size", what POP3 reports), so a login need not read every file of a Maildir they
/// filled. Our own names carry only `,S=` (the file's size), and those files are read.
fn size_in_name(unique: &str) -> Option<u64> {
    let at = unique.find(",W=")? + 3;
    let digits = unique[at..].split(',').next()?;
    digits.parse().ok()
}

/// The size of the message as RETR sends it, before dot-stuffing: its file's octets with
/// every bare LF counted as CRLF, and a CRLF after a last line without one.
fn sent_size(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut enc = Encoder::new(false, None);
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::new();
    let mut size = 0u64;
    loop {
        let k = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        enc.feed(&buf[..k], &mut out);
        size += out.len() as u64;
    }
    out.clear();
    enc.finish(&mut out);
    Ok(size + out.len() as u64)
}

/// The UIDL id of a Maildir name's unique part: itself when RFC 1939 §7 allows it (1 to 70
/// characters 0x21 to 0x7E), else a digest of it, stable all the same.
fn uidl(unique: &str) -> String {
    let fits =
        (1..=70).contains(&unique.len()) && unique.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if fits {
        return unique.to_string();
    }
    let d = ring::digest::digest(&ring::digest::SHA256, unique.as_bytes());
    d.as_ref()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A message file as POP3 sends it (RFC 1939 §3): lines end in CRLF (a Maildir file's LF
/// becomes CRLF, a CRLF stays), a line starting with `.` gets another in front, and the
/// last line is ended if the file did not end it. With `top`, only the header, the empty
/// line and that many body lines (RFC 1939 §7 TOP). Fed a buffer at a time: the state is
/// a few flags, so memory does not grow with the message or its line lengths.
struct Encoder {
    stuff: bool,
    top: Option<u64>,
    /// At the start of a line.
    bol: bool,
    /// The previous octet was CR.
    cr: bool,
    /// Still in the header (for TOP).
    header: bool,
    /// The current line is empty so far (an empty line ends the header).
    empty: bool,
    /// Body lines sent whole (for TOP).
    body_lines: u64,
    /// Nothing more to send (TOP's count reached).
    done: bool,
}

impl Encoder {
    fn new(stuff: bool, top: Option<u64>) -> Encoder {
        Encoder {
            stuff,
            top,
            bol: true,
            cr: false,
            header: true,
            empty: true,
            body_lines: 0,
            done: false,
        }
    }

    /// Encode `input` onto `out`; false once TOP has all it wants.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let mut i = 0;
        while i < input.len() && !self.done {
            if self.bol {
                if self.top.is_some() && !self.header && self.top <= Some(self.body_lines) {
                    self.done = true;
                    break;
                }
                if self.stuff && input[i] == b'.' {
                    out.push(b'.');
                }
                self.bol = false;
                self.empty = true;
            }
            // Copy up to the next LF in one go.
            let rest = &input[i..];
            let (j, lf) = match memchr::memchr(b'\n', rest) {
                Some(j) => (j, true),
                None => (rest.len(), false),
            };
            let text = &rest[..j];
            if !text.is_empty() {
                out.extend_from_slice(text);
                self.cr = text[text.len() - 1] == b'\r';
                // A line of just CR before its LF is still the empty line.
                self.empty = self.empty && text == b"\r";
            }
            i += j;
            if lf {
                if !self.cr {
                    out.push(b'\r');
                }
                out.push(b'\n');
                self.cr = false;
                i += 1;
                self.end_line();
            }
        }
        !self.done
    }

    fn end_line(&mut self) {
        if self.header {
            if self.empty {
                self.header = false;
            }
        } else {
            self.body_lines += 1;
        }
        self.bol = true;
    }

    /// End a last line that had no line end.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.bol && !self.done {
            if !self.cr {
                out.push(b'\r');
            }
            out.push(b'\n');
            self.bol = true;
        }
    }
}

#[cfg(test)]
mod tests;
