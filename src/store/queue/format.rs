//! The queue's two file formats, byte for byte: the entry file (what is to be sent, written
//! once) and its state file (what became of each recipient, replaced on every change).
//!
//! An entry file is `mailpipe-queue 2`, then `key value` lines (the route, the envelope, the
//! arrival), a blank line, and the message as given:
//!
//! ```text
//! mailpipe-queue 2
//! arrived 1767225600
//! route account
//! route.account work
//! from a@x.test
//! ret HDRS
//! envid 42
//! 8bit 1
//! size 1234
//! rcpt b@y.test
//! notify SUCCESS,FAILURE
//! orcpt rfc822;b@y.test
//! rcpt c@y.test
//!
//! From: a@x.test
//! ...
//! ```
//!
//! `notify` and `orcpt` belong to the `rcpt` line above them. The route is `route account`
//! (msubmit's), `route mx` (mrelay), or `route local` with `route.maildirs BASE` or
//! `route.command CMD` (both: the command, told `BASE/USER/Maildir` in `MAILDIR`). `requiretls 1` is the REQUIRETLS flag (RFC 8689 §4), kept with the
//! message until a sender honours it.
//!
//! An account route is the account (`route.account NAME`; none: the `defaults` section)
//! and the server flags msubmit was given when it queued the message, one line each, named
//! after the flag, its value as given (the flush checks it as it checks its own flags):
//!
//! ```text
//! route account
//! route.account work
//! route.host mail.example.net
//! route.port 2525
//! route.tls implicit,verify
//! route.ca-file /etc/ssl/example.pem
//! route.fingerprint 3F:1A:...
//! route.tls-server-name smtp.example.net
//! route.helo client.example.org
//! route.auth plain
//! route.user me@example.net
//! route.password-command pass show mail/example
//! route.timeout 30
//! route.tls-cert-file /home/me/client.pem
//! route.tls-key-file /home/me/client.key
//! route.source-ip 192.0.2.7
//! route.proxy-host proxy.example.net
//! route.proxy-port 1080
//! ```
//!
//! What has no line is the account's, read when the message is sent: so how the password is
//! obtained is either the command recorded here or the account's `passwordeval` or
//! `password`; the password itself is never written (msubmit takes none on its command line,
//! where ps(1) would show it). [`ServerFlags`] is the record, and has no place for one. An
//! account route without any flag line (queued through the account alone, by mreceive, or
//! before flags were recorded) takes the flags of the flush instead, as every entry did
//! before; one with any goes by its own alone (msubmit's `route.rs` says why). A reader of
//! format 2 follows each of these lines; a flag line it did not know would send the message
//! by another route than the one it was queued with, so a new one comes with a new version.
//!
//! A reader ignores keys it does not know, so a downgrade still sends. A key that must not
//! be ignored (one that makes sending stricter, or a route a reader cannot follow) comes
//! with a new version number instead: a reader refuses a version above its own, and the
//! entry stays in the queue, reported, until a newer mailpipe sends it. Version 1 (msubmit's
//! outbox before per-recipient state: `account NAME`, `queued TIME`, the same envelope keys)
//! is read as the account route.
//!
//! A state file holds one block per recipient of the entry, in the entry's order, the
//! address repeated as a check:
//!
//! ```text
//! mailpipe-queue-state 2
//! rcpt b@y.test
//! status delivered
//! attempts 1
//! next 0
//! last 1767225660
//! reply 250 2.0.0 Ok: queued as 4dQx
//! rcpt c@y.test
//! status pending
//! attempts 2
//! next 1767229200
//! last 1767225660
//! reply 451 4.2.1 mailbox busy
//! ```
//!
//! `last` is the time of the last attempt, from which a runner computes the next try with
//! its own retry settings (so changing them applies to mail already queued, OpenSMTPD#50);
//! `next` is what the writer's settings said, for a reader without `last`. `reported 1`
//! follows the status of a failed recipient whose failure report (a bounce) is queued: the
//! entry needs nothing more for it; `delayed 1` that of a pending recipient about which a
//! delay report (mrelay's delay warning) is queued, so it is sent once. Readers of an older
//! version ignore these keys (an older reader warns again at worst).
//!
//! Version 1's state file (`attempts N`, `next TIME`, `error TEXT`, for the whole message)
//! is read as that state for every recipient. A state file that is missing, unreadable or
//! does not match its entry reads as "every recipient pending": at worst a recipient is sent
//! to again, never dropped.

use crate::envelope::{Body, Envelope, Recipient};
use crate::exit::{Code, Context, Error, Result};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The name on an entry file's first line.
const MAGIC: &str = "mailpipe-queue";

/// The entry format this code writes, and the newest it reads.
pub const VERSION: u32 = 2;

/// The first line of a state file of this version.
const STATE_MAGIC: &str = "mailpipe-queue-state 2";

/// The longest envelope we read back (addresses are short; a huge one is a broken file).
const MAX_ENVELOPE: u64 = 1 << 20;

/// How an entry leaves: through which kind of next hop, with what it needs to get there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// To the server of a configuration account (msubmit's `--flush` sends it).
    Account {
        /// The account's name; `None` for the `defaults` section alone.
        name: Option<String>,
        /// The server flags msubmit was given over the account's keys when it queued the
        /// message; none (queued without, or before they were recorded): the flags of the
        /// flush, as before. Boxed: most routes have none.
        flags: Box<ServerFlags>,
    },
    /// To the recipients' domains' mail exchangers (mrelay).
    Mx,
    /// Delivered on this host.
    Local(Local),
}

impl Default for Route {
    fn default() -> Route {
        Route::account(None)
    }
}

/// msubmit's command-line settings of the server an account route goes to, as given (text
/// where the flag is text: the sender checks each as it checks its own flags). `None` where
/// the flag was not given, and the account's key applies.
///
/// A password has no place here: a route records how the password is obtained (a command),
/// never the password. A flag added to msubmit for the server (a source address, a proxy,
/// a client certificate) is recorded here, as one more `route.*` line, with a new format
/// version (the module header); the same settings as account keys need nothing here (the
/// account is read when the message is sent).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerFlags {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--tls`, its words.
    pub tls: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--fingerprint`, as given.
    pub fingerprint: Option<String>,
    /// `--tls-server-name`.
    pub tls_server_name: Option<String>,
    /// `--helo`.
    pub helo: Option<String>,
    /// `--auth`, its word.
    pub auth: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--password-command`: a command, not a secret (the command line showed it already).
    pub password_command: Option<String>,
    /// `--timeout`, in seconds.
    pub timeout: Option<u64>,
    /// `--tls-cert-file`: the client certificate (a path, not a secret).
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-key-file`: where its key is (a path; the key stays in its file).
    pub tls_key_file: Option<PathBuf>,
    /// `--source-ip`.
    pub source_ip: Option<String>,
    /// `--proxy-host` (SOCKS5).
    pub proxy_host: Option<String>,
    /// `--proxy-port`.
    pub proxy_port: Option<u16>,
}

impl ServerFlags {
    /// No flag given: the route is the account's alone.
    pub fn is_empty(&self) -> bool {
        *self == ServerFlags::default()
    }

    /// Each flag given, as its `route.*` key and value, in the order written.
    pub fn lines(&self) -> Result<Vec<(&'static str, String)>> {
        let ServerFlags {
            host,
            port,
            tls,
            ca_file,
            fingerprint,
            tls_server_name,
            helo,
            auth,
            user,
            password_command,
            timeout,
            tls_cert_file,
            tls_key_file,
            source_ip,
            proxy_host,
            proxy_port,
        } = self;
        let path = |key: &str, p: &Option<PathBuf>| -> Result<Option<String>> {
            match p {
                Some(p) => Ok(Some(p.to_str().map(str::to_string).ok_or_else(|| {
                    Error::new(
                        Code::DataErr,
                        format!("queue {key} {}", p.display()),
                        "not UTF-8",
                    )
                })?)),
                None => Ok(None),
            }
        };
        let ca_file = path("route.ca-file", ca_file)?;
        let tls_cert_file = path("route.tls-cert-file", tls_cert_file)?;
        let tls_key_file = path("route.tls-key-file", tls_key_file)?;
        let all = [
            ("route.host", host.clone()),
            ("route.port", port.map(|p| p.to_string())),
            ("route.tls", tls.clone()),
            ("route.ca-file", ca_file),
            ("route.fingerprint", fingerprint.clone()),
            ("route.tls-server-name", tls_server_name.clone()),
            ("route.helo", helo.clone()),
            ("route.auth", auth.clone()),
            ("route.user", user.clone()),
            ("route.password-command", password_command.clone()),
            ("route.timeout", timeout.map(|t| t.to_string())),
            ("route.tls-cert-file", tls_cert_file),
            ("route.tls-key-file", tls_key_file),
            ("route.source-ip", source_ip.clone()),
            ("route.proxy-host", proxy_host.clone()),
            ("route.proxy-port", proxy_port.map(|p| p.to_string())),
        ];
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// The flags of an account route's `route.*` lines; `Err` names a number that is none.
    fn parse(details: &BTreeMap<String, String>) -> std::result::Result<ServerFlags, String> {
        let get = |k: &str| details.get(k).cloned();
        fn num<T: std::str::FromStr>(
            k: &str,
            v: Option<String>,
        ) -> std::result::Result<Option<T>, String> {
            v.map(|v| v.parse().map_err(|_| format!("bad number in {k}")))
                .transpose()
        }
        Ok(ServerFlags {
            host: get("route.host"),
            port: num("route.port", get("route.port"))?,
            tls: get("route.tls"),
            ca_file: get("route.ca-file").map(PathBuf::from),
            fingerprint: get("route.fingerprint"),
            tls_server_name: get("route.tls-server-name"),
            helo: get("route.helo"),
            auth: get("route.auth"),
            user: get("route.user"),
            password_command: get("route.password-command"),
            timeout: num("route.timeout", get("route.timeout"))?,
            tls_cert_file: get("route.tls-cert-file").map(PathBuf::from),
            tls_key_file: get("route.tls-key-file").map(PathBuf::from),
            source_ip: get("route.source-ip"),
            proxy_host: get("route.proxy-host"),
            proxy_port: num("route.proxy-port", get("route.proxy-port"))?,
        })
    }
}

/// Where a local route delivers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Local {
    /// Into `BASE/<user>/Maildir`, as mreceive's built-in delivery does.
    Maildirs(PathBuf),
    /// Through this command line, as mreceive's `--deliver` does.
    Command(String),
    /// Through this command line, told `BASE/<user>/Maildir` in `MAILDIR` (mreceive's
    /// `--deliver-command` with `--maildir-base`). Both keys are written: a reader that
    /// knows only the two variants above refuses the entry instead of delivering it
    /// without `MAILDIR`.
    CommandMaildirs(String, PathBuf),
}

impl Route {
    /// The route through account `name` (`None`: the `defaults` section), no flags.
    pub fn account(name: Option<String>) -> Route {
        Route::Account {
            name,
            flags: Box::default(),
        }
    }

    /// The route's kind, as its `route` line says it: `account`, `mx` or `local`.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Account { .. } => "account",
            Route::Mx => "mx",
            Route::Local(_) => "local",
        }
    }

    /// The route's lines: `route KIND`, then its `route.*` details.
    fn lines(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(match self {
            Route::Account { name, flags } => {
                let mut v = vec![("route", self.kind().to_string())];
                v.extend(name.iter().map(|n| ("route.account", n.clone())));
                v.extend(flags.lines()?);
                v
            }
            Route::Mx => vec![("route", self.kind().to_string())],
            Route::Local(Local::Maildirs(base)) => {
                let base = base.to_str().ok_or_else(|| {
                    Error::new(
                        Code::DataErr,
                        format!("queue route {}", base.display()),
                        "not UTF-8",
                    )
                })?;
                vec![
                    ("route", self.kind().to_string()),
                    ("route.maildirs", base.to_string()),
                ]
            }
            Route::Local(Local::Command(cmd)) => vec![
                ("route", "local".to_string()),
                ("route.command", cmd.clone()),
            ],
            Route::Local(Local::CommandMaildirs(cmd, base)) => {
                let mut v = Route::Local(Local::Maildirs(base.clone())).lines()?;
                v.push(("route.command", cmd.clone()));
                v
            }
        })
    }

    /// The route of `kind` with its `route.*` details; `Err` says why a reader of this
    /// version cannot follow it.
    fn parse(kind: &str, details: &BTreeMap<String, String>) -> std::result::Result<Route, String> {
        let get = |k: &str| details.get(k).cloned();
        let cannot = || Err(format!("a route this mailpipe cannot follow: {kind}"));
        match kind {
            "account" => Ok(Route::Account {
                name: get("route.account"),
                flags: Box::new(ServerFlags::parse(details)?),
            }),
            "mx" => Ok(Route::Mx),
            "local" => match (get("route.maildirs"), get("route.command")) {
                (Some(base), None) => Ok(Route::Local(Local::Maildirs(base.into()))),
                (None, Some(cmd)) => Ok(Route::Local(Local::Command(cmd))),
                (Some(base), Some(cmd)) => {
                    Ok(Route::Local(Local::CommandMaildirs(cmd, base.into())))
                }
                (None, None) => cannot(),
            },
            _ => cannot(),
        }
    }
}

/// What an entry file holds besides the message: the route, the envelope, the arrival.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queued {
    /// How the message leaves.
    pub route: Route,
    /// The envelope.
    pub envelope: Envelope,
    /// When it arrived in the queue (seconds since the epoch).
    pub queued: u64,
}

/// What became of one recipient so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Still to be sent.
    #[default]
    Pending,
    /// A server took responsibility for it (or it was delivered locally).
    Delivered,
    /// Refused for good.
    Failed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

/// One recipient's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptState {
    /// Sent, refused, or still to go.
    pub status: Status,
    /// Attempts made for it so far.
    pub attempts: u32,
    /// Not before this time (seconds since the epoch); 0 for "now".
    pub next: u64,
    /// When it was last tried (seconds since the epoch); 0 before the first attempt or in a
    /// state written without it.
    pub last: u64,
    /// Failed, and a report about it (a bounce) is queued: nothing more is owed to it.
    pub reported: bool,
    /// Still pending after the delay warning time, and a delay report about it is queued
    /// (or nobody was to be told): it is warned about once.
    pub delayed: bool,
    /// The last reply or error, one line; empty before the first attempt.
    pub reply: String,
}

/// Refuse a value that would end its line (and start a key of its own).
fn check_value(key: &str, v: &str) -> Result<()> {
    if v.chars().any(char::is_control) {
        return Err(Error::new(
            Code::DataErr,
            format!("queue {key} {v:?}"),
            "contains a control character",
        ));
    }
    Ok(())
}

/// `s` with control characters (line ends) as spaces, for a one-line value.
pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Queued {
    /// The entry file's head: the magic line, the keys, the blank line.
    pub(super) fn to_bytes(&self) -> Result<Vec<u8>> {
        let env = &self.envelope;
        let mut s = format!("{MAGIC} {VERSION}\n");
        let mut line = |k: &str, v: &str| -> Result<()> {
            check_value(k, v)?;
            s.push_str(&format!("{k} {v}\n"));
            Ok(())
        };
        line("arrived", &self.queued.to_string())?;
        for (k, v) in self.route.lines()? {
            line(k, &v)?;
        }
        if self.envelope.requiretls {
            line("requiretls", "1")?;
        }
        line("from", &env.from)?;
        if let Some(r) = &env.ret {
            line("ret", r)?;
        }
        if let Some(e) = &env.envid {
            line("envid", e)?;
        }
        line("8bit", if env.body.is_eight_bit() { "1" } else { "0" })?;
        line("size", &env.size.unwrap_or(0).to_string())?;
        for r in &env.rcpts {
            line("rcpt", &r.addr)?;
            if let Some(n) = &r.notify {
                line("notify", n)?;
            }
            if let Some(o) = &r.orcpt {
                line("orcpt", o)?;
            }
        }
        s.push('\n');
        Ok(s.into_bytes())
    }

    /// Read the head of an entry file (version 1 or 2), leaving `r` at the message; also
    /// returns the head's length, where the message starts.
    pub(super) fn read_from(r: &mut dyn BufRead, path: &Path) -> Result<(Queued, u64)> {
        let bad = |why: &str| {
            Error::new(
                Code::DataErr,
                format!("queue file {}", path.display()),
                why.to_string(),
            )
        };
        let mut q = Queued::default();
        let env = &mut q.envelope;
        let mut version = None;
        let mut route: Option<String> = None;
        let mut details = BTreeMap::new();
        let mut total = 0u64;
        loop {
            let mut line = String::new();
            let n = r
                .read_line(&mut line)
                .or_code_with(Code::TempFail, || format!("read {}", path.display()))?;
            total += n as u64;
            if n == 0 || total > MAX_ENVELOPE {
                return Err(bad("truncated envelope"));
            }
            let line = line.strip_suffix('\n').unwrap_or(&line);
            let Some(v) = version else {
                let v = (line.strip_prefix(MAGIC))
                    .and_then(|v| v.strip_prefix(' '))
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| bad("not a mailpipe queue file"))?;
                if v > VERSION {
                    return Err(bad(&format!(
                        "written by a newer mailpipe (format {v}; this one reads up to {VERSION})"
                    )));
                }
                version = Some(v);
                continue;
            };
            if line.is_empty() {
                break;
            }
            let (k, val) = line.split_once(' ').unwrap_or((line, ""));
            let num = |v: &str| v.parse::<u64>().map_err(|_| bad("bad number"));
            match k {
                // Version 1's route and arrival.
                "account" if v == 1 => {
                    route = Some("account".into());
                    details.insert("route.account".to_string(), val.to_string());
                }
                "queued" if v == 1 => q.queued = num(val)?,
                "arrived" => q.queued = num(val)?,
                "route" => route = Some(val.to_string()),
                k if k.starts_with("route.") => {
                    details.insert(k.to_string(), val.to_string());
                }
                "requiretls" => env.requiretls = val == "1",
                "from" => env.from = val.to_string(),
                "rcpt" => env.rcpts.push(Recipient::new(val)),
                "notify" | "orcpt" => match env.rcpts.last_mut() {
                    Some(r) if k == "notify" => r.notify = Some(val.to_string()),
                    Some(r) => r.orcpt = Some(val.to_string()),
                    None => return Err(bad("recipient parameter before rcpt")),
                },
                "ret" => env.ret = Some(val.to_string()),
                "envid" => env.envid = Some(val.to_string()),
                "8bit" => env.body = Body::of(val == "1"),
                "size" => env.size = Some(num(val)?),
                // Keys from a newer version are ignored, so a downgrade still sends.
                _ => {}
            }
        }
        if env.rcpts.is_empty() {
            return Err(bad("no recipients"));
        }
        env.smtputf8 = env.needs_smtputf8();
        q.route = match route {
            None => Route::account(None),
            Some(kind) => Route::parse(&kind, &details).map_err(|why| bad(&why))?,
        };
        Ok((q, total))
    }
}

/// A state file's text for the recipients of `env`.
pub(super) fn state_to_bytes(env: &Envelope, states: &[RcptState]) -> Vec<u8> {
    let mut s = format!("{STATE_MAGIC}\n");
    for (r, st) in env.rcpts.iter().zip(states) {
        s.push_str(&format!(
            "rcpt {}\nstatus {}\nattempts {}\nnext {}\nlast {}\n",
            r.addr,
            st.status.name(),
            st.attempts,
            st.next,
            st.last,
        ));
        if st.reported {
            s.push_str("reported 1\n");
        }
        if st.delayed {
            s.push_str("delayed 1\n");
        }
        s.push_str(&format!("reply {}\n", one_line(&st.reply)));
    }
    s.into_bytes()
}

/// The state of each recipient of `env` from a state file's text (empty: none written yet).
/// Never fails: what cannot be read is "pending", sent again rather than lost.
pub(super) fn state_from(text: &str, env: &Envelope) -> Vec<RcptState> {
    let fresh = vec![RcptState::default(); env.rcpts.len()];
    let mut lines = text.lines();
    if text.lines().next() != Some(STATE_MAGIC) {
        // Version 1: one state for the whole message.
        let mut st = RcptState::default();
        for line in lines {
            match line.split_once(' ') {
                Some(("attempts", v)) => st.attempts = v.parse().unwrap_or(0),
                Some(("next", v)) => st.next = v.parse().unwrap_or(0),
                Some(("error", v)) => st.reply = v.to_string(),
                _ => {}
            }
        }
        return vec![st; env.rcpts.len()];
    }
    lines.next();
    let mut out: Vec<RcptState> = Vec::with_capacity(env.rcpts.len());
    for line in lines {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        if k == "rcpt" {
            match env.rcpts.get(out.len()) {
                Some(r) if r.addr == v => out.push(RcptState::default()),
                _ => return fresh,
            }
            continue;
        }
        let Some(st) = out.last_mut() else {
            continue;
        };
        match k {
            "status" => {
                st.status = match v {
                    "delivered" => Status::Delivered,
                    "failed" => Status::Failed,
                    _ => Status::Pending,
                }
            }
            "attempts" => st.attempts = v.parse().unwrap_or(0),
            "next" => st.next = v.parse().unwrap_or(0),
            "last" => st.last = v.parse().unwrap_or(0),
            "reported" => st.reported = v == "1",
            "delayed" => st.delayed = v == "1",
            "reply" => st.reply = v.to_string(),
            _ => {}
        }
    }
    if out.len() != env.rcpts.len() {
        return fresh;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    fn queued(route: Route) -> Queued {
        let mut b = Recipient::new("b@y.test");
        b.notify = Some("SUCCESS".into());
        b.orcpt = Some("rfc822;b@y.test".into());
        Queued {
            route,
            envelope: Envelope {
                from: "a@x.test".into(),
                rcpts: vec![b, Recipient::new("c@y.test")],
                ret: Some("HDRS".into()),
                envid: Some("42".into()),
                body: Body::EightBitMime,
                size: Some(12),
                ..Envelope::default()
            },
            queued: 5,
        }
    }

    fn round_trip(q: &Queued) -> Queued {
        let mut bytes = q.to_bytes().unwrap();
        let head = bytes.len() as u64;
        bytes.extend_from_slice(b"Subject: x\n\nbody\n");
        let mut r = BufReader::new(&bytes[..]);
        let (back, len) = Queued::read_from(&mut r, Path::new("x")).unwrap();
        assert_eq!(len, head);
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "Subject: x\n\nbody\n");
        back
    }

    /// An account route with every server flag given.
    fn every_flag() -> Route {
        Route::Account {
            name: Some("work".into()),
            flags: Box::new(ServerFlags {
                host: Some("mail.example.net".into()),
                port: Some(2525),
                tls: Some("implicit,verify".into()),
                ca_file: Some("/etc/ssl/example.pem".into()),
                fingerprint: Some("3F:1A".into()),
                tls_server_name: Some("smtp.example.net".into()),
                helo: Some("client.example.org".into()),
                auth: Some("plain".into()),
                user: Some("me@example.net".into()),
                password_command: Some("pass show mail/example".into()),
                timeout: Some(30),
                tls_cert_file: Some("/home/me/client.pem".into()),
                tls_key_file: Some("/home/me/client.key".into()),
                source_ip: Some("192.0.2.7".into()),
                proxy_host: Some("proxy.example.net".into()),
                proxy_port: Some(1080),
            }),
        }
    }

    #[test]
    fn every_route_and_requiretls_round_trip() {
        for route in [
            Route::account(None),
            Route::account(Some("work".into())),
            every_flag(),
            Route::Mx,
            Route::Local(Local::Maildirs("/var/mail".into())),
            Route::Local(Local::Command(
                "/usr/lib/dovecot/dovecot-lda -d ${user}".into(),
            )),
            Route::Local(Local::CommandMaildirs(
                "/usr/local/bin/mdeliver \"$MAILDIR\"".into(),
                "/var/mail".into(),
            )),
        ] {
            let q = queued(route);
            assert_eq!(round_trip(&q), q);
        }
        let mut q = queued(Route::Mx);
        q.envelope.requiretls = true;
        assert_eq!(round_trip(&q), q);
    }

    #[test]
    fn the_written_head_is_the_documented_one() {
        let text = String::from_utf8(
            queued(Route::account(Some("work".into())))
                .to_bytes()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            text,
            "mailpipe-queue 2\narrived 5\nroute account\nroute.account work\nfrom a@x.test\n\
             ret HDRS\nenvid 42\n8bit 1\nsize 12\nrcpt b@y.test\nnotify SUCCESS\n\
             orcpt rfc822;b@y.test\nrcpt c@y.test\n\n"
        );
        // The module header's account route, line for line.
        let text = String::from_utf8(queued(every_flag()).to_bytes().unwrap()).unwrap();
        let route: Vec<&str> = text.lines().filter(|l| l.starts_with("route")).collect();
        assert_eq!(
            route,
            [
                "route account",
                "route.account work",
                "route.host mail.example.net",
                "route.port 2525",
                "route.tls implicit,verify",
                "route.ca-file /etc/ssl/example.pem",
                "route.fingerprint 3F:1A",
                "route.tls-server-name smtp.example.net",
                "route.helo client.example.org",
                "route.auth plain",
                "route.user me@example.net",
                "route.password-command pass show mail/example",
                "route.timeout 30",
                "route.tls-cert-file /home/me/client.pem",
                "route.tls-key-file /home/me/client.key",
                "route.source-ip 192.0.2.7",
                "route.proxy-host proxy.example.net",
                "route.proxy-port 1080",
            ]
        );
    }

    #[test]
    fn version_1_heads_are_read_as_the_account_route() {
        // As msubmit wrote them before per-recipient state.
        let v1 = "mailpipe-queue 1\naccount work\nfrom a@x.test\nrcpt b@y.test\n\
                  notify SUCCESS\norcpt rfc822;b@y.test\nrcpt c@y.test\nret HDRS\nenvid 42\n\
                  8bit 1\nsize 12\nqueued 5\n\nbody";
        let (q, len) = Queued::read_from(&mut v1.as_bytes(), Path::new("x")).unwrap();
        assert_eq!(q, queued(Route::account(Some("work".into()))));
        assert_eq!(len as usize, v1.len() - 4);
        let v1 = "mailpipe-queue 1\nfrom a@x.test\nrcpt b@y.test\nqueued 5\n\n";
        let (q, _) = Queued::read_from(&mut v1.as_bytes(), Path::new("x")).unwrap();
        assert_eq!(q.route, Route::account(None));
    }

    #[test]
    fn newer_versions_unknown_routes_and_broken_heads_are_refused() {
        let read = |s: &str| Queued::read_from(&mut s.as_bytes(), Path::new("x")).map(|q| q.0);
        let err = |s: &str| read(s).unwrap_err().to_string();
        assert!(err("mailpipe-queue 3\nfrom a@x\nrcpt b@y\n\n").contains("newer mailpipe"));
        assert!(err("mailpipe-queue 2\nroute lmtp\nrcpt b@y\n\n").contains("cannot follow: lmtp"));
        assert!(err("mailpipe-queue 2\nroute local\nrcpt b@y\n\n").contains("cannot follow"));
        assert!(err("not a queue\n\n").contains("not a mailpipe queue file"));
        assert!(err("mailpipe-queue 2\nfrom a@x\nrcpt b@y\n").contains("truncated"));
        assert!(err("mailpipe-queue 2\nfrom a@x\n\n").contains("no recipients"));
        assert!(err("mailpipe-queue 2\nnotify NEVER\nrcpt b@y\n\n").contains("before rcpt"));
        // Keys of a newer minor addition are ignored: a downgrade still sends.
        let q = read("mailpipe-queue 2\nroute mx\nroute.mx-port 2525\nfuture 1\nrcpt b@y\n\n");
        assert_eq!(q.unwrap().route, Route::Mx);
        let mut bad = queued(Route::account(Some("a\nrcpt evil@x".into())));
        assert!(bad.to_bytes().is_err());
        let Route::Account { flags, .. } = &mut bad.route else {
            unreachable!()
        };
        flags.password_command = Some("true\nrcpt evil@x".into());
        assert!(bad.to_bytes().is_err());
        assert!(
            err("mailpipe-queue 2\nroute account\nroute.port 25x\nrcpt b@y\n\n")
                .contains("bad number in route.port")
        );
        bad.route = Route::account(None);
        bad.envelope.from = "a@x\nrcpt evil@x".into();
        assert!(bad.to_bytes().is_err());
    }

    #[test]
    fn state_round_trips_and_anything_unreadable_is_pending() {
        let env = queued(Route::Mx).envelope;
        let states = vec![
            RcptState {
                status: Status::Failed,
                attempts: 1,
                next: 0,
                last: 42,
                reported: true,
                delayed: false,
                reply: "550 5.1.1 no".into(),
            },
            RcptState {
                status: Status::Pending,
                attempts: 2,
                next: 99,
                last: 40,
                reported: false,
                delayed: true,
                reply: "451 4.2.1 busy\r\nnow".into(),
            },
        ];
        let text = String::from_utf8(state_to_bytes(&env, &states)).unwrap();
        let back = state_from(&text, &env);
        assert_eq!(back[0], states[0]);
        assert_eq!(back[1].reply, "451 4.2.1 busy  now");
        assert!(back[1].delayed);
        let fresh = vec![RcptState::default(); 2];
        assert_eq!(state_from("", &env), fresh);
        // Another entry's state, or a torn one, is no state.
        assert_eq!(
            state_from(&text.replace("c@y.test", "d@y.test"), &env),
            fresh
        );
        let torn = &text[..text.find("rcpt c@").unwrap()];
        assert_eq!(state_from(torn, &env), fresh);
        // Version 1: the message's state, for every recipient.
        let v1 = state_from("attempts 3\nnext 7\nerror 451 x\n", &env);
        assert!(v1.iter().all(|s| s.status == Status::Pending
            && s.attempts == 3
            && s.next == 7
            && s.reply == "451 x"));
    }
}
