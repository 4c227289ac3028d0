//! The IMAP client (mfetch): one blocking session over any transport. It greets, secures
//! (implicit TLS or STARTTLS), authenticates (LOGIN, AUTHENTICATE PLAIN, XOAUTH2,
//! OAUTHBEARER), selects a mailbox and learns its UIDVALIDITY, lists UIDs with sizes, reads
//! headers, streams whole messages to a sink, deletes (`\Deleted` + UID EXPUNGE) or moves,
//! and waits in IDLE.
//!
//! Safety, as the SMTP client's: credentials never go in clear text unless the caller chose
//! [`Level::None`]; bytes the server sent between its STARTTLS reply and the handshake are
//! refused (CVE-2011-0411 class); a PREAUTH greeting in clear text is refused when TLS is
//! required, since no STARTTLS is possible in the authenticated state (RFC 3501 §6.2.1,
//! fetchmail CVE-2021-39272's neighbour). Every read has a timeout and every line a length
//! limit; a message body is never held in memory (`BODY[]` goes to the caller's reader).
//! Network trouble is [`Code::TempFail`]; a server that breaks the grammar or sends a UID
//! twice, one not asked for, or data before the STARTTLS handshake is [`Code::Protocol`]
//! (mfetch's 76, as for POP3). Either way nothing was deleted, the next run tries again.

pub use super::command::{mailbox_name, uid_sets};
use super::command::{parse_set, quote};
use super::response::{self, Response, Status, Value, Wire};
use crate::exit::{Code, Error, Result};
use crate::net::conn::{Io, TcpIo};
use crate::net::dial;
use crate::net::tls::{self, Level, Mode, Start, TlsOptions, TlsStream};
use reader::Reader;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// LOGIN (RFC 3501 §6.2.3), the default when the server does not forbid it.
    Login,
    /// AUTHENTICATE PLAIN (RFC 4616), with SASL-IR (RFC 4959) when offered.
    Plain,
    /// AUTHENTICATE XOAUTH2: the secret is an OAuth 2.0 token (Google, Microsoft).
    XOAuth2,
    /// AUTHENTICATE OAUTHBEARER (RFC 7628): the secret is an OAuth 2.0 token.
    OAuthBearer,
}

impl Method {
    /// Parse an account's `auth` value (any case).
    pub fn from_name(s: &str) -> Option<Method> {
        match s.to_ascii_lowercase().as_str() {
            "login" => Some(Method::Login),
            "plain" => Some(Method::Plain),
            "xoauth2" => Some(Method::XOAuth2),
            "oauthbearer" => Some(Method::OAuthBearer),
            _ => None,
        }
    }
}

/// Who we are.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    /// The password, or the OAuth token for the OAuth methods.
    pub secret: String,
    /// `None`: LOGIN unless the server says LOGINDISABLED, then PLAIN.
    pub method: Option<Method>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ user: {:?}, .. }}", self.user)
    }
}

/// A callback that sees the dialogue line by line (secrets masked, literals summarised).
pub type Trace = Arc<dyn Fn(bool, &str) + Send + Sync>;

/// How to speak to the server.
#[derive(Clone)]
pub struct Options {
    /// How TLS starts and how strict we are.
    pub tls: Mode,
    /// How the certificate is checked.
    pub trust: TlsOptions,
    pub auth: Option<Credentials>,
    /// Connecting, and each command's responses (between two reads of a message, too).
    pub timeout: Duration,
    /// The largest literal held in memory (a header block); a message body is streamed.
    pub max_literal: usize,
    /// Dialogue trace: `true` for what we sent.
    pub trace: Option<Trace>,
}

impl Options {
    /// Defaults for `tls`: two minutes per command, header literals up to 1 MiB.
    pub fn new(tls: Mode) -> Options {
        Options {
            tls,
            trust: TlsOptions::default(),
            auth: None,
            timeout: Duration::from_secs(120),
            max_literal: 1 << 20,
            trace: None,
        }
    }
}

/// What SELECT or EXAMINE said of the mailbox (RFC 3501 §6.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// UIDs are valid only with this value; a new one means the old UIDs mean nothing.
    pub uidvalidity: u32,
    pub uidnext: Option<u32>,
    pub exists: u32,
}

/// A message as listed: its UID and RFC822.SIZE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Listed {
    pub uid: u32,
    pub size: u64,
}

/// How an IDLE ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// The server reported new messages (EXISTS grew, or RECENT).
    Changed,
    /// The wait ran out with nothing new.
    Quiet,
}

/// The transport under the session.
enum Stream {
    Plain(Box<dyn Io>),
    Tls(Box<TlsStream>),
    Closed,
}

impl Stream {
    fn io(&mut self) -> Option<&mut dyn Io> {
        match self {
            Stream::Plain(s) => Some(s.as_mut()),
            Stream::Tls(s) => Some(s.sock.as_mut()),
            Stream::Closed => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// A sink for message bodies: the UID, the literal's length, its bytes.
pub type BodySink<'a> = dyn FnMut(Listed, &mut dyn Read) -> Result<()> + 'a;

/// A connected, greeted, secured and authenticated IMAP session.
pub struct Client {
    wire: Wire<Stream>,
    caps: Vec<String>,
    tag: u32,
    /// The selected mailbox's message count, kept up to date by EXISTS and EXPUNGE.
    exists: u32,
    /// Sequence number → UID, from the last listing (a FETCH whose UID comes after the
    /// body is matched by its sequence number).
    seq_uid: HashMap<u32, u32>,
    broken: bool,
    peer: String,
    opts: Options,
}

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
        io::ErrorKind::InvalidData => {
            Error::new(Code::Protocol, what, format!("bad response: {e}"))
        }
        _ => Error::io(Code::TempFail, what, e),
    }
}

/// What a FETCH response item list says: UID, RFC822.SIZE and the values after other keys.
fn items(list: &[Value]) -> HashMap<String, &Value> {
    let mut out = HashMap::new();
    for pair in list.chunks(2) {
        if let [k, v] = pair
            && let Some(k) = k.atom()
        {
            out.insert(k.to_ascii_uppercase(), v);
        }
    }
    out
}

fn uid_of(v: &Value) -> Option<u32> {
    v.number()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)
}

impl Client {
    /// Connect to the first of `addrs` that answers, then greet, secure and authenticate as
    /// `opts` says. `name` is the server's name for messages and the certificate.
    pub fn connect(addrs: &[SocketAddr], name: &str, opts: &Options) -> Result<Client> {
        let (tcp, addr) = dial::first(addrs, name, None, opts.timeout)?;
        let _ = tcp.set_nodelay(true);
        let peer = format!("{name}:{}", addr.port());
        Client::setup(Box::new(TcpIo::new(tcp, opts.timeout)), name, peer, opts)
    }

    /// The same over a transport the caller connected (tests drive it in memory).
    pub fn over(io: Box<dyn Io>, name: &str, opts: &Options) -> Result<Client> {
        Client::setup(io, name, name.to_string(), opts)
    }

    fn setup(mut io: Box<dyn Io>, name: &str, peer: String, opts: &Options) -> Result<Client> {
        let config = match opts.tls.level {
            Level::None => None,
            level => Some(tls::client_config_for(level, &opts.trust)?),
        };
        let tls_name = opts
            .trust
            .server_name
            .clone()
            .unwrap_or_else(|| name.to_string());
        let stream = match (&config, opts.tls.start) {
            (Some(cfg), Start::Implicit) => {
                io.set_timeout(opts.timeout.max(Duration::from_millis(1)));
                io.set_deadline(Instant::now().checked_add(opts.timeout));
                let mut s = tls::connect(io, cfg.clone(), &tls_name)?;
                s.sock.set_deadline(None);
                Stream::Tls(Box::new(s))
            }
            _ => Stream::Plain(io),
        };
        let mut c = Client {
            wire: Wire::new(stream),
            caps: Vec::new(),
            tag: 0,
            exists: 0,
            seq_uid: HashMap::new(),
            broken: false,
            peer,
            opts: opts.clone(),
        };
        // RFC 3501 §7.1.4-5: the greeting is OK, PREAUTH or BYE.
        let what = format!("greeting from {}", c.peer);
        let greeting = c.read(&what)?;
        let Response::Status {
            tag: None,
            status,
            code,
            text,
        } = greeting
        else {
            return Err(Error::new(Code::Protocol, what, "not an IMAP greeting"));
        };
        if let Some(("CAPABILITY", list)) = code.as_ref().map(|(c, a)| (c.as_str(), a.as_str())) {
            c.caps = list
                .split_whitespace()
                .map(str::to_ascii_uppercase)
                .collect();
        }
        let preauth = match status {
            Status::Ok => false,
            Status::PreAuth => true,
            _ => {
                return Err(Error::new(
                    Code::TempFail,
                    what,
                    format!("server said: {text}"),
                ));
            }
        };
        if preauth && config.is_some() && !c.is_tls() {
            // No STARTTLS in the authenticated state: going on would be clear text.
            return Err(Error::new(
                Code::Unavailable,
                what,
                "PREAUTH greeting in clear text, and TLS is required (refusing to continue \
                 without it)",
            ));
        }
        if c.caps.is_empty() {
            c.capability()?;
        }
        if let Some(cfg) = config
            && !c.is_tls()
        {
            c.starttls(cfg, &tls_name)?;
        }
        if !preauth && let Some(cred) = opts.auth.clone() {
            c.authenticate(&cred)?;
        }
        if c.has("IMAP4REV2") {
            // RFC 9051 §6.3.1: rev2 only once asked for.
            c.simple("ENABLE IMAP4rev2", "ENABLE")?;
        }
        Ok(c)
    }

    /// True when the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.wire.get_ref(), Stream::Tls(_))
    }

    /// The server's capabilities, upper case.
    pub fn capabilities(&self) -> &[String] {
        &self.caps
    }

    /// True when the server announced `cap` (upper case).
    pub fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    fn trace(&self, sent: bool, line: &str) {
        if let Some(t) = &self.opts.trace {
            t(sent, line);
        }
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("a{}", self.tag)
    }

    fn write(&mut self, bytes: &[u8], what: &str) -> Result<()> {
        if self.broken {
            return Err(Error::new(Code::TempFail, what, "connection lost earlier"));
        }
        let t = self.opts.timeout.max(Duration::from_millis(1));
        if let Some(io) = self.wire.get_mut().io() {
            io.set_timeout(t);
        }
        let s = self.wire.get_mut();
        let r = s.write_all(bytes).and_then(|()| s.flush());
        r.map_err(|e| {
            self.broken = true;
            net_error(what, e)
        })
    }

    /// Send `tag text`; `shown` is what the trace sees (secrets masked).
    fn send(&mut self, text: &str, shown: Option<&str>) -> Result<String> {
        if text.contains(['\r', '\n', '\0']) {
            return Err(Error::new(
                Code::Software,
                text.split(' ').next().unwrap_or_default().to_string(),
                "refusing to send a command with a line break or NUL in it",
            ));
        }
        let tag = self.next_tag();
        self.trace(true, &format!("{tag} {}", shown.unwrap_or(text)));
        let line = format!("{tag} {text}\r\n");
        let what = text.split(' ').next().unwrap_or_default().to_string();
        self.write(line.as_bytes(), &what)?;
        Ok(tag)
    }

    /// Read one response (no body sink).
    fn read(&mut self, what: &str) -> Result<Response> {
        let mut seen = HashSet::new();
        self.read_with(what, None, &mut seen)
    }

    fn read_with(
        &mut self,
        what: &str,
        body: Option<&mut BodySink<'_>>,
        seen: &mut HashSet<u32>,
    ) -> Result<Response> {
        if self.broken {
            return Err(Error::new(Code::TempFail, what, "connection lost earlier"));
        }
        let mut reader = Reader {
            wire: &mut self.wire,
            timeout: self.opts.timeout,
            max_literal: self.opts.max_literal,
            body,
            seq_uid: &self.seq_uid,
            seen,
            sink_error: None,
        };
        let r = reader.line().and_then(|line| {
            let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
            response::parse(&line, &mut reader).map(|r| (r, shown))
        });
        let sink_error = reader.sink_error.take();
        match r {
            Ok((resp, shown)) => {
                self.trace(false, &shown);
                self.note(&resp);
                if let Response::Status {
                    tag: None,
                    status: Status::Bye,
                    text,
                    ..
                } = &resp
                {
                    self.broken = true;
                    return Err(Error::new(
                        Code::TempFail,
                        what,
                        format!("server closed the connection: {text}"),
                    ));
                }
                Ok(resp)
            }
            Err(e) => {
                self.broken = true;
                Err(sink_error.unwrap_or_else(|| net_error(what, e)))
            }
        }
    }

    /// Keep what untagged data tells us of the session (capabilities, the message count).
    fn note(&mut self, resp: &Response) {
        match resp {
            Response::Status {
                code: Some((c, list)),
                ..
            } if c == "CAPABILITY" => {
                self.caps = list
                    .split_whitespace()
                    .map(str::to_ascii_uppercase)
                    .collect();
            }
            Response::Data(v) => match (v.first(), v.get(1).and_then(Value::atom)) {
                (Some(Value::Atom(a)), _) if a.eq_ignore_ascii_case("CAPABILITY") => {
                    self.caps = v[1..]
                        .iter()
                        .filter_map(Value::atom)
                        .map(str::to_ascii_uppercase)
                        .collect();
                }
                (Some(n), Some(w)) if w.eq_ignore_ascii_case("EXISTS") => {
                    if let Some(n) = n.number().and_then(|n| u32::try_from(n).ok()) {
                        self.exists = n;
                    }
                }
                (Some(_), Some(w)) if w.eq_ignore_ascii_case("EXPUNGE") => {
                    self.exists = self.exists.saturating_sub(1);
                    // Sequence numbers above it moved down: the map is stale.
                    self.seq_uid.clear();
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Read responses to `tag` until its completion; untagged data goes to `each`.
    fn complete(
        &mut self,
        tag: &str,
        what: &str,
        mut each: impl FnMut(&mut Client, &Response) -> Result<()>,
    ) -> Result<(Option<(String, String)>, String)> {
        loop {
            let r = self.read(what)?;
            match &r {
                Response::Status {
                    tag: Some(t),
                    status,
                    code,
                    text,
                } if t == tag => {
                    return match status {
                        Status::Ok => Ok((code.clone(), text.clone())),
                        _ => Err(Error::new(
                            Code::TempFail,
                            what,
                            format!("server said: {text}"),
                        )),
                    };
                }
                Response::Status { tag: Some(t), .. } => {
                    self.broken = true;
                    return Err(Error::new(
                        Code::TempFail,
                        what,
                        format!("completion for unknown tag {t}"),
                    ));
                }
                Response::Continue(_) => {
                    self.broken = true;
                    return Err(Error::new(
                        Code::TempFail,
                        what,
                        "server asked for more where it should not",
                    ));
                }
                _ => each(self, &r)?,
            }
        }
    }

    /// A command whose untagged data only [`Client::note`] needs.
    fn simple(&mut self, text: &str, what: &str) -> Result<()> {
        let tag = self.send(text, None)?;
        self.complete(&tag, what, |_, _| Ok(())).map(|_| ())
    }

    fn capability(&mut self) -> Result<()> {
        self.simple("CAPABILITY", "CAPABILITY")
    }

    /// SELECT `folder` (EXAMINE when `read_only`: nothing will be deleted, RFC 3501 §6.3.2).
    pub fn select(&mut self, folder: &str, read_only: bool) -> Result<Mailbox> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let name = self.astring(mailbox_name(folder).as_bytes(), verb)?;
        let what = format!("{verb} {folder}");
        self.seq_uid.clear();
        self.exists = 0;
        let tag = self.send(&format!("{verb} {name}"), None)?;
        let mut uidvalidity = None;
        let mut uidnext = None;
        self.complete(&tag, &what, |_, r| {
            if let Response::Status {
                tag: None,
                code: Some((c, arg)),
                ..
            } = r
            {
                let n = arg.trim().parse::<u32>().ok();
                match c.as_str() {
                    "UIDVALIDITY" => uidvalidity = n,
                    "UIDNEXT" => uidnext = n,
                    _ => {}
                }
            }
            Ok(())
        })
        .map_err(|e| {
            if e.code() == Code::TempFail && !self.broken {
                Error::new(Code::Unavailable, e.what(), e.why())
            } else {
                e
            }
        })?;
        let Some(uidvalidity) = uidvalidity.filter(|&v| v > 0) else {
            return Err(Error::new(
                Code::TempFail,
                what,
                "server gave no UIDVALIDITY (without it no UID can be trusted)",
            ));
        };
        Ok(Mailbox {
            uidvalidity,
            uidnext,
            exists: self.exists,
        })
    }

    /// Every message of the selected mailbox: UID and size, in UID order. A UID listed
    /// twice, a UID of 0, or one without a size is an error: a server that says so cannot
    /// be trusted with deletions.
    pub fn list(&mut self) -> Result<Vec<Listed>> {
        self.seq_uid.clear();
        if self.exists == 0 {
            return Ok(Vec::new());
        }
        let tag = self.send("UID FETCH 1:* (UID RFC822.SIZE)", None)?;
        let mut out = Vec::new();
        let mut seqs = HashMap::new();
        let mut seen = HashSet::new();
        self.complete(&tag, "UID FETCH", |_, r| {
            let Some((seq, list)) = fetch_data(r) else {
                return Ok(());
            };
            let it = items(list);
            let (Some(uid), Some(size)) = (
                it.get("UID").and_then(|v| uid_of(v)),
                it.get("RFC822.SIZE").and_then(|v| v.number()),
            ) else {
                if it.contains_key("RFC822.SIZE") || it.contains_key("UID") {
                    return Err(bad_server("a FETCH without a valid UID or size"));
                }
                return Ok(()); // a flag update
            };
            if !seen.insert(uid) {
                return Err(bad_server(&format!("UID {uid} listed twice")));
            }
            seqs.insert(seq, uid);
            out.push(Listed { uid, size });
            Ok(())
        })?;
        self.seq_uid = seqs;
        out.sort_by_key(|l| l.uid);
        Ok(out)
    }

    /// UID SEARCH `criteria` (RFC 3501 §6.4.4; ESEARCH's ALL under IMAP4rev2).
    pub fn search(&mut self, criteria: &str) -> Result<Vec<u32>> {
        let tag = self.send(&format!("UID SEARCH {criteria}"), None)?;
        let mut out = Vec::new();
        self.complete(&tag, "UID SEARCH", |_, r| {
            let Response::Data(v) = r else { return Ok(()) };
            match v
                .first()
                .and_then(Value::atom)
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                Some("SEARCH") => {
                    for n in &v[1..] {
                        out.push(uid_of(n).ok_or_else(|| bad_server("a bad UID in SEARCH"))?);
                    }
                }
                Some("ESEARCH") => {
                    let mut it = v[1..].iter();
                    while let Some(k) = it.next() {
                        if k.atom().is_some_and(|a| a.eq_ignore_ascii_case("ALL")) {
                            let set = it.next().and_then(Value::atom).unwrap_or_default();
                            out.extend(parse_set(set).ok_or_else(|| bad_server("a bad UID set"))?);
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The header of each of `uids` (all of it, or only `fields`), to `each` with its UID.
    pub fn headers(
        &mut self,
        uids: &[u32],
        fields: Option<&[&str]>,
        each: &mut dyn FnMut(u32, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let section = match fields {
            Some(f) => format!("HEADER.FIELDS ({})", f.join(" ")),
            None => "HEADER".to_string(),
        };
        let key = format!("BODY[{section}]");
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        for set in uid_sets(uids) {
            let tag = self.send(&format!("UID FETCH {set} (UID BODY.PEEK[{section}])"), None)?;
            self.complete(&tag, "UID FETCH", |_, r| {
                let Some((_, list)) = fetch_data(r) else {
                    return Ok(());
                };
                let it = items(list);
                let Some(head) = it.get(key.as_str()) else {
                    return Ok(());
                };
                let uid = it
                    .get("UID")
                    .and_then(|v| uid_of(v))
                    .filter(|u| wanted.contains(u))
                    .ok_or_else(|| bad_server("a header without a UID we asked for"))?;
                each(uid, head.bytes().unwrap_or_default())
            })?;
        }
        Ok(())
    }

    /// Each of `uids` whole (BODY.PEEK[]: the \Seen flag is left alone), streamed to `each`
    /// with its UID and length. A UID sent twice or one not asked for is an error.
    pub fn fetch(&mut self, uids: &[u32], each: &mut BodySink<'_>) -> Result<()> {
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let mut seen = HashSet::new();
        for set in uid_sets(uids) {
            let tag = self.send(
                &format!("UID FETCH {set} (UID RFC822.SIZE BODY.PEEK[])"),
                None,
            )?;
            loop {
                let mut check = |l: Listed, r: &mut dyn Read| -> Result<()> {
                    if !wanted.contains(&l.uid) {
                        return Err(bad_server(&format!("UID {} was not asked for", l.uid)));
                    }
                    each(l, r)
                };
                let r = self.read_with("UID FETCH", Some(&mut check), &mut seen)?;
                match r {
                    Response::Status {
                        tag: Some(t),
                        status,
                        text,
                        ..
                    } if t == tag => {
                        if status != Status::Ok {
                            return Err(Error::new(
                                Code::TempFail,
                                "UID FETCH",
                                format!("server said: {text}"),
                            ));
                        }
                        break;
                    }
                    Response::Status { tag: Some(_), .. } | Response::Continue(_) => {
                        self.broken = true;
                        return Err(bad_server("an unexpected response to FETCH"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Mark `uids` \Deleted and expunge them: UID EXPUNGE with UIDPLUS (RFC 4315), which
    /// touches no other message; without it EXPUNGE, which also removes messages another
    /// client marked \Deleted (as every client without UIDPLUS does).
    pub fn delete(&mut self, uids: &[u32]) -> Result<()> {
        for set in uid_sets(uids) {
            self.simple(
                &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
                "UID STORE",
            )?;
            if self.has("UIDPLUS") || self.has("IMAP4REV2") {
                self.simple(&format!("UID EXPUNGE {set}"), "UID EXPUNGE")?;
            }
        }
        let uidplus = self.has("UIDPLUS") || self.has("IMAP4REV2");
        if !uidplus && !uids.is_empty() {
            self.simple("EXPUNGE", "EXPUNGE")?;
        }
        Ok(())
    }

    /// Move `uids` to `folder`: UID MOVE (RFC 6851), else UID COPY and [`Client::delete`].
    pub fn move_to(&mut self, uids: &[u32], folder: &str) -> Result<()> {
        let name = self.astring(mailbox_name(folder).as_bytes(), "MOVE")?;
        if self.has("MOVE") || self.has("IMAP4REV2") {
            for set in uid_sets(uids) {
                self.simple(&format!("UID MOVE {set} {name}"), "UID MOVE")?;
            }
            return Ok(());
        }
        for set in uid_sets(uids) {
            self.simple(&format!("UID COPY {set} {name}"), "UID COPY")?;
        }
        self.delete(uids)
    }

    /// IDLE (RFC 2177) for at most `wait` (servers drop an idle client after 30 minutes,
    /// so callers wait less), then DONE. A server that closes meanwhile is an error.
    pub fn idle(&mut self, wait: Duration) -> Result<Idle> {
        if !self.has("IDLE") && !self.has("IMAP4REV2") {
            return Err(Error::new(Code::Unavailable, "IDLE", "not offered"));
        }
        let tag = self.send("IDLE", None)?;
        match self.read("IDLE")? {
            Response::Continue(_) => {}
            Response::Status {
                tag: Some(t), text, ..
            } if t == tag => {
                return Err(Error::new(
                    Code::TempFail,
                    "IDLE",
                    format!("server said: {text}"),
                ));
            }
            other => self.note(&other),
        }
        let end = Instant::now() + wait;
        let mut changed = false;
        let keep = self.opts.timeout;
        while !changed {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.opts.timeout = left;
            // Compared with the count just before each response: an EXPUNGE (ours, from
            // another session) lowers it, the EXISTS of new mail raises it from there.
            let prev = self.exists;
            let r = self.read("IDLE");
            self.opts.timeout = keep;
            match r {
                Ok(Response::Data(v)) => {
                    let w = v.get(1).and_then(Value::atom).unwrap_or_default();
                    let n = v.first().and_then(Value::number).unwrap_or(0);
                    if (w.eq_ignore_ascii_case("RECENT") && n > 0)
                        || (w.eq_ignore_ascii_case("EXISTS") && self.exists > prev)
                    {
                        changed = true;
                    }
                }
                Ok(Response::Status {
                    tag: Some(_), text, ..
                }) => {
                    self.broken = true;
                    return Err(Error::new(Code::TempFail, "IDLE", format!("ended: {text}")));
                }
                Ok(_) => {}
                Err(e) if e.why() == "timed out" && !self.wire.has_buffered() => {
                    // A quiet wait is what IDLE is for; the connection is still in step.
                    self.broken = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        self.trace(true, "DONE");
        self.write(b"DONE\r\n", "IDLE")?;
        self.complete(&tag, "IDLE", |_, _| Ok(()))?;
        Ok(if changed { Idle::Changed } else { Idle::Quiet })
    }

    /// LOGOUT and close; errors are ignored, everything is already decided.
    pub fn logout(mut self) {
        if self.broken {
            return;
        }
        let keep = self.opts.timeout;
        self.opts.timeout = keep.min(Duration::from_secs(10));
        if let Ok(tag) = self.send("LOGOUT", None) {
            // The BYE first (read as an error), then the OK.
            let _ = self.complete(&tag, "LOGOUT", |_, _| Ok(()));
        }
        if let Stream::Tls(s) = self.wire.get_mut() {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

fn bad_server(why: &str) -> Error {
    Error::new(Code::Protocol, "UID FETCH", format!("bad response: {why}"))
}

/// `* n FETCH (list)` → n and the list.
fn fetch_data(r: &Response) -> Option<(u32, &[Value])> {
    let Response::Data(v) = r else { return None };
    match v.as_slice() {
        [n, Value::Atom(w), Value::List(list), ..] if w.eq_ignore_ascii_case("FETCH") => {
            Some((u32::try_from(n.number()?).ok()?, list))
        }
        _ => None,
    }
}

mod auth;
mod reader;
#[cfg(test)]
mod tests;
