//! Accounts: the configuration's `account` sections, typed.
//!
//! [`crate::config`] reads the file (msmtp's format: `defaults`, `account NAME : PARENT`) and
//! resolves an account's keys through its parents over the defaults, as text. This module
//! gives those keys their meaning and their types, in two blocks that share no server key, so
//! `host` is never ambiguous:
//!
//! - **Sending** ([`Send`], SMTP submission, read by msubmit): msmtp's keys with msmtp's
//!   meaning, so an msmtp account block works as it is — `host`, `port`, `tls`, `tls_starttls`,
//!   `tls_trust_file`, `tls_fingerprint`, `tls_host_override`, `auth`, `user`, `password`,
//!   `passwordeval`, `domain`, `timeout`, `dsn_notify`, `dsn_return` — plus our
//!   `queue_on_failure`. One deliberate difference from msmtp: without `tls`, TLS is required
//!   (STARTTLS), not off.
//! - **Fetching** ([`Fetch`], POP3 or IMAP, for mfetch: typed and checked here, read by
//!   mfetch). The server is named by the key that also says the protocol, `pop3_host` or
//!   `imap_host`: fetchmail's `poll HOST protocol P` in one key, mpop's `host` with the
//!   protocol it implies. Every other key of that server is the sending key's name after
//!   `fetch_` (`fetch_port`, `fetch_tls`, `fetch_tls_starttls`, `fetch_tls_trust_file`,
//!   `fetch_tls_fingerprint`, `fetch_tls_host_override`, `fetch_user`, `fetch_password`,
//!   `fetch_passwordeval`), so an mpop block becomes a fetching block by renaming. Only the
//!   login is shared: without `fetch_user` (or a `fetch_` password) the account's `user`
//!   (and `password`/`passwordeval`) log in to both servers, as most providers have one
//!   login for both. `folders` (IMAP: a comma list, default INBOX, fetchmail's `folder`) and
//!   `keep` (leave fetched mail on the server; default off, as fetchmail and mpop) are
//!   fetching's own.
//! - Around both: `from` (who the account is), `logfile` and `syslog` (msmtp's and mpop's).
//!   (mcompose still reads `from` and `domain` as text, through [`crate::config`].)
//!
//! ```text
//! account work
//! host smtp.example.org
//! user me@example.org
//! passwordeval "pass show mail/work"
//! imap_host imap.example.org
//! folders INBOX, Lists
//! keep on
//! ```
//!
//! sends through smtp.example.org (STARTTLS, port 587) and would fetch two folders from
//! imap.example.org (implicit TLS, port 993), both with the one login.
//!
//! [`KEYS`] lists every key any tool reads, with what it means, in one place, and [`check`]
//! holds every key line of the file to it as the file is read ([`load`]): a key no tool
//! reads is an error at its `file:line` (exit 78), with the known key it is one or two
//! typing mistakes from (`hots`: did you mean `host`?), because an ignored `proxy_host` or
//! `tls_trust_fiel` sends mail some other way than the user wrote. msmtp's keys that no tool
//! reads are in [`MSMTP`]: accepted where the value asks for what msubmit does anyway
//! (`protocol smtp`, `remove_bcc_headers on`), refused by name with the reason otherwise
//! (`protocol lmtp`: mailpipe speaks SMTP only).
//!
//! A tool types the block it uses, when it uses it ([`Account::send`], [`Account::fetch`]):
//! every key of that block at once, each error naming the key's `file:line`. So a mistake
//! among the fetching keys never stops msubmit, and mdeliver (which reads only its own keys
//! from `defaults`) types no account at all. Command-line flags are laid over the typed block
//! by the tool (msubmit's `settings.rs`): a flag replaces a key's value, not its check.
//!
//! TLS is the one vocabulary of every tool, [`crate::net::tls::Mode`]: how TLS starts
//! (starttls | implicit) and how strict the client is (none | may | encrypt | verify), with
//! msmtp's `tls on|off` and `tls_starttls on|off` as its aliases; [`tls`] is the only reader
//! of those keys and their `fetch_` twins.
//!
//! Layering: above `net/` and `smtp/` (it types their options), below `cmd/`.

use crate::config::{Config, Keys, Value};
use crate::exit::{Code, Error, Result};
use crate::net::sasl::Mechanism;
use crate::net::tls::{KeyError, Mode, Start, TlsOptions};
use std::path::{Path, PathBuf};

/// Which part of the house reads a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Who the account is: the tools that write or send mail.
    Identity,
    /// SMTP submission: [`Send`].
    Send,
    /// POP3 or IMAP: [`Fetch`] (mfetch).
    Fetch,
    /// The log of a sending or fetching tool.
    Log,
    /// One tool's own setting, read from `defaults` only (not per account).
    Tool(&'static str),
}

/// A configuration key: its name, who reads it, what it means.
#[derive(Debug)]
pub struct Key {
    /// The key as written in the file.
    pub name: &'static str,
    /// Who reads it.
    pub group: Group,
    /// What it means, for the reader of the file.
    pub means: &'static str,
}

const fn key(name: &'static str, group: Group, means: &'static str) -> Key {
    Key { name, group, means }
}

/// Every key the tools read, one a line. A key missing here is read by no tool (a debug
/// assertion in the readers says so).
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key("from", Group::Identity,
        "the address: msubmit's envelope sender and account choice; mcompose's From:"),
    key("host", Group::Send,
        "the SMTP server mail is submitted to"),
    key("port", Group::Send,
        "its port [587 with STARTTLS, 465 with implicit TLS, 25 without TLS]"),
    key("tls", Group::Send,
        "on or off (msmtp), or how TLS starts (starttls, implicit) and how strict it is \
         (none, may, encrypt, verify), one word or both joined by a comma [starttls: \
         required, verified]"),
    key("tls_starttls", Group::Send,
        "STARTTLS (on) or implicit TLS (off), for tls on or a level word"),
    key("tls_trust_file", Group::Send,
        "a PEM file of CA certificates trusted instead of the built-in roots"),
    key("tls_fingerprint", Group::Send,
        "the SHA-256 fingerprint of the only server certificate accepted"),
    key("tls_host_override", Group::Send,
        "the name the certificate is verified for, instead of host"),
    key("auth", Group::Send,
        "on (PLAIN, else LOGIN), off, plain, login or xoauth2 [on when user is set]"),
    key("user", Group::Send,
        "the login name (fetching's too, without fetch_user)"),
    key("password", Group::Send,
        "the password, written in the file (fetching's too, without a fetch_ one)"),
    key("passwordeval", Group::Send,
        "a command whose first output line is the password; wins over password"),
    key("domain", Group::Send,
        "the name given in EHLO [this host's]; mcompose: the Message-ID's right-hand side"),
    key("timeout", Group::Send,
        "seconds to wait for the server at each step [RFC 5321's, 2 to 10 minutes]"),
    key("dsn_notify", Group::Send,
        "DSN: never, or a comma list of success, failure, delay; off sends none"),
    key("dsn_return", Group::Send,
        "DSN: full or headers; off sends none"),
    key("queue_on_failure", Group::Send,
        "msubmit: queue a message the server refuses for now, instead of failing"),
    key("aliases", Group::Send,
        "a file of `local: address, address` lines (msmtp's, as /etc/aliases): \
         recipients without a domain are replaced; `default:` catches the rest"),
    key("source_ip", Group::Send,
        "the local address connections are made from [the system's choice]"),
    key("proxy_host", Group::Send,
        "a SOCKS5 proxy every connection goes through; it resolves the server's name"),
    key("proxy_port", Group::Send,
        "its port [1080]"),
    key("proxy_user", Group::Send,
        "a login for the proxy (RFC 1929; not msmtp's) [none]"),
    key("proxy_password", Group::Send,
        "its password"),
    key("tls_cert_file", Group::Send,
        "a PEM client certificate (with its chain) sent to the server, with tls_key_file"),
    key("tls_key_file", Group::Send,
        "the PEM private key of tls_cert_file"),
    key("dkim", Group::Send,
        "DOMAIN SELECTOR KEYFILE: sign mail whose From: is at DOMAIN with the PEM key \
         (RSA or Ed25519) published at SELECTOR._domainkey.DOMAIN; one a line (msubmit: \
         per account; mrelay: mail it sends by MX)"),
    key("dkim_headers", Group::Send,
        "the header fields DKIM signs, separated by colons [From twice, Reply-To, Subject, \
         Date, To, Cc, Message-ID, In-Reply-To, References and the MIME fields]"),
    key("logfile", Group::Log,
        "append one key=value line per message to this file"),
    key("syslog", Group::Log,
        "on (facility mail) or off; a facility name means on"),
    key("pop3_host", Group::Fetch,
        "fetch mail from this POP3 server (not with imap_host)"),
    key("imap_host", Group::Fetch,
        "fetch mail from this IMAP server (not with pop3_host)"),
    key("fetch_port", Group::Fetch,
        "its port [995 POP3, 993 IMAP with implicit TLS; else 110, 143]"),
    key("fetch_tls", Group::Fetch,
        "tls for the fetching server [implicit TLS: RFC 8314 §3]"),
    key("fetch_tls_starttls", Group::Fetch,
        "tls_starttls for it"),
    key("fetch_tls_trust_file", Group::Fetch,
        "tls_trust_file for it"),
    key("fetch_tls_fingerprint", Group::Fetch,
        "tls_fingerprint for it"),
    key("fetch_tls_host_override", Group::Fetch,
        "tls_host_override for it"),
    key("fetch_user", Group::Fetch,
        "its login name [user]"),
    key("fetch_password", Group::Fetch,
        "its password [password]"),
    key("fetch_passwordeval", Group::Fetch,
        "its password command [passwordeval]"),
    key("folders", Group::Fetch,
        "IMAP: the folders to fetch, a comma list [INBOX]"),
    key("keep", Group::Fetch,
        "on: leave fetched mail on the server [off: delete it once stored]"),
    key("queue_dir", Group::Tool("msubmit"),
        "the queue directory, mrelay's too [~/.local/share/mailpipe/queue]"),
    key("route", Group::Tool("mrelay"),
        "DOMAIN HOST[:PORT]..., [HOST], account NAME, local DIR or pipe COMMAND: where mail \
         for DOMAIN (.DOMAIN: its subdomains; *: all) goes; one a line, the first match wins"),
    key("relay_tls", Group::Tool("mrelay"),
        "DOMAIN LEVEL: TLS towards DOMAIN's mail: auto (DANE, else MTA-STS, else may), \
         none, may, encrypt, verify or dane-only [auto]"),
    key("relay_tls_trust_file", Group::Tool("mrelay"),
        "CA certificates (PEM) for verify and MTA-STS, its policy fetch included \
         [the Mozilla roots]"),
    key("relay_retry", Group::Tool("mrelay"),
        "the wait after a first failed attempt, doubling after each [5m]"),
    key("relay_retry_max", Group::Tool("mrelay"),
        "the longest wait between attempts [4h]"),
    key("relay_expire", Group::Tool("mrelay"),
        "how long a recipient may wait before it is bounced [5d]"),
    key("relay_delay_warning", Group::Tool("mrelay"),
        "report a recipient still waiting this long as delayed, once [0: never]"),
    key("relay_maildrop_timeout", Group::Tool("mrelay"),
        "remove a drop file left incomplete this long (its writer died) [1d]"),
    key("relay_hostname", Group::Tool("mrelay"),
        "this host's names: EHLO, reports, the MX loop check [its FQDN]"),
    key("relay_connect_timeout", Group::Tool("mrelay"),
        "how long a connection may take to open [10s]"),
    key("relay_timeout", Group::Tool("mrelay"),
        "how long to wait for a server at each step [RFC 5321's]"),
    key("relay_concurrency", Group::Tool("mrelay"),
        "the most messages a queue run sends at once [8]"),
    key("relay_destination_concurrency", Group::Tool("mrelay"),
        "the most messages a queue run sends at once to one destination [4]"),
    key("maildir", Group::Tool("mdeliver"),
        "the Maildir [~/Maildir]"),
    key("max_size", Group::Tool("mdeliver"),
        "refuse larger messages, as 25M"),
    key("rules", Group::Tool("mdeliver"),
        "the rules file [~/.config/mailpipe/rules]"),
    key("dedupe", Group::Tool("mdeliver"),
        "on: drop a message whose Message-ID was delivered before"),
    key("dedupe_file", Group::Tool("mdeliver"),
        "where delivered Message-IDs are kept [in the Maildir]"),
    key("sendmail", Group::Tool("mdeliver"),
        "the command a rule's forward runs, as /usr/sbin/sendmail [msubmit beside mdeliver]"),
];

/// The key called `name`, if any tool reads it.
pub fn known(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// One of msmtp's keys that no tool reads: the values that ask for what mailpipe does
/// anyway (accepted, so an msmtp file works as it is), and why any other is refused.
#[derive(Debug)]
pub struct Msmtp {
    /// The key, as msmtp(1) names it.
    pub name: &'static str,
    /// Values that agree with what the tools do (compared without case).
    pub agrees: &'static [&'static str],
    /// Why another value (or any, without `agrees`) is refused.
    pub why: &'static str,
}

const fn msmtp(name: &'static str, agrees: &'static [&'static str], why: &'static str) -> Msmtp {
    Msmtp { name, agrees, why }
}

/// msmtp's keys (msmtp 1.8, msmtp(1) "Commands") that no tool reads: never ignored in
/// silence, since each changes where or how mail goes in msmtp.
#[rustfmt::skip]
pub const MSMTP: &[Msmtp] = &[
    msmtp("protocol", &["smtp"],
        "mailpipe speaks SMTP only (for LMTP delivery into a local store, run mdeliver)"),
    msmtp("socket", &[],
        "msubmit connects over TCP only: give host and port"),
    msmtp("ntlmdomain", &[],
        "NTLM authentication is not supported (msmtp calls it obsolete)"),
    msmtp("tls_certcheck", &["on", ""],
        "to skip the certificate check write tls encrypt; better, pin the certificate \
         with tls_fingerprint"),
    msmtp("tls_crl_file", &[""],
        "certificate revocation lists are not supported (msmtp calls it deprecated)"),
    msmtp("tls_priorities", &[""],
        "rustls chooses the protocol versions and cipher suites (all current, none weak)"),
    msmtp("tls_min_dh_prime_bits", &[""],
        "rustls offers no finite-field Diffie-Hellman to set a minimum for"),
    msmtp("allow_from_override", &["on"],
        "-f always sets the envelope sender"),
    msmtp("set_from_header", &["auto"],
        "msubmit adds From: when the message has none, and only then"),
    msmtp("set_date_header", &["auto"],
        "msubmit adds Date: when the message has none, and only then"),
    msmtp("set_msgid_header", &["auto"],
        "msubmit adds Message-ID: when the message has none, and only then"),
    msmtp("remove_bcc_headers", &["on", ""],
        "msubmit always removes Bcc: (as Postfix does)"),
    msmtp("undisclosed_recipients", &["off"],
        "not supported: msubmit leaves To: and Cc: as written"),
    msmtp("from_full_name", &[],
        "not supported: give the name with -F"),
    msmtp("logfile_time_format", &[],
        "not supported: the log line's time is ISO 8601"),
    msmtp("eval", &[],
        "not supported: use passwordeval for a secret, or write the line"),
    msmtp("auto_from", &["off"],
        "obsolete in msmtp: set from, or give -f"),
    msmtp("maildomain", &[""],
        "obsolete in msmtp: set from, or give -f"),
];

/// The configuration, read as [`Config::load`] reads it, every key line held to [`check`].
/// The tools load through here.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    Config::load(explicit, check)
}

/// Whether a key line may stand: a key in [`KEYS`]; one of msmtp's in [`MSMTP`] with a value
/// that agrees with what the tools do; nothing else. An unknown key is named with the known
/// one it most likely misspells.
pub fn check(key: &str, value: &str) -> std::result::Result<(), String> {
    if known(key).is_some() {
        return Ok(());
    }
    if let Some(m) = MSMTP.iter().find(|m| m.name == key) {
        let v = value.trim();
        return match m.agrees.iter().any(|a| a.eq_ignore_ascii_case(v)) {
            true => Ok(()),
            false if v.is_empty() => Err(format!("msmtp's {key} is not supported: {}", m.why)),
            false => Err(format!("msmtp's {key} {v} is not supported: {}", m.why)),
        };
    }
    let names = KEYS
        .iter()
        .map(|k| k.name)
        .chain(MSMTP.iter().map(|m| m.name));
    let near = names
        .map(|n| (distance(key, n), n))
        .filter(|&(d, n)| d <= 2 && d < n.len().min(key.len()))
        .min_by_key(|&(d, _)| d);
    match near {
        Some((_, n)) => Err(format!("unknown key {key:?} (did you mean {n:?}?)")),
        None => Err(format!("unknown key {key:?}")),
    }
}

/// The optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbours, the typing mistakes (`hots`, `tls_trust_fiel` are one swap away).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// One account, resolved through its parents over the defaults. The keys around both blocks
/// are here; [`Account::send`] and [`Account::fetch`] type the blocks.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account's name; `None` for the defaults alone (no account chosen).
    pub name: Option<String>,
    /// `from`: the account's address, as written.
    pub from: Option<String>,
    /// `logfile`.
    pub logfile: Option<PathBuf>,
    /// `syslog`: msmtp's on, off or a facility name (taken as on, facility mail).
    pub syslog: bool,
    keys: Keys,
}

impl Account {
    /// The account `name` (`None`: the defaults alone), which must be defined.
    pub fn resolve(cfg: &Config, name: Option<&str>) -> Result<Account> {
        let keys = cfg.account(name)?;
        let get = |k: &str| text(&keys, k).map(str::to_string);
        Ok(Account {
            name: name.map(str::to_string),
            from: get("from"),
            logfile: get("logfile").map(PathBuf::from),
            syslog: get("syslog").is_some_and(|v| {
                !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "off" | "no" | "false" | "0"
                )
            }),
            keys,
        })
    }

    /// The sending block, every key checked. Without any, all is unset: a tool's flags may
    /// say everything.
    pub fn send(&self) -> Result<Send> {
        let k = &self.keys;
        let mut tls = tls(k, "")?;
        tls.options.client_cert = client_cert(k)?;
        Ok(Send {
            // msmtp(1): `host hostname`, never empty. A bare `host` is a mistake to say at
            // its line, not a name to resolve and fail on as a network error (75) that a
            // queue would retry for ever.
            host: typed(k, "host", |h| match h.is_empty() {
                true => Err("needs the server's name or address"),
                false => Ok(h.to_string()),
            })?,
            port: typed(k, "port", |p| {
                p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))
            })?,
            tls,
            auth: typed(k, "auth", |a| {
                Auth::parse(a).ok_or("supported: on, off, plain, login, xoauth2")
            })?,
            user: set(k, "user").map(str::to_string),
            password: password(k, "")?,
            domain: typed(k, "domain", ehlo_name)?,
            timeout: typed(k, "timeout", |t| {
                t.parse::<u64>().map_err(|_| "expected seconds")
            })?,
            dsn_notify: typed(k, "dsn_notify", dsn_notify)?.flatten(),
            dsn_return: typed(k, "dsn_return", dsn_return)?.flatten(),
            queue_on_failure: flag(k, "queue_on_failure")?.unwrap_or(false),
            // msmtp(1): an empty value disables each of these.
            aliases: set(k, "aliases").map(PathBuf::from),
            source_ip: typed_set(k, "source_ip", |a| {
                a.parse::<std::net::IpAddr>()
                    .map_err(|_| format!("not an IP address: {a:?}"))
            })?,
            proxy: proxy(k)?,
            dkim: value(k, "dkim").filter(|v| !v.text.is_empty()).cloned(),
            dkim_headers: set(k, "dkim_headers").map(str::to_string),
        })
    }

    /// The fetching block, every key checked; `None` when the account names no server to
    /// fetch from (`pop3_host` or `imap_host`), whatever other fetching keys it inherits.
    pub fn fetch(&self) -> Result<Option<Fetch>> {
        let k = &self.keys;
        // An empty value unsets an inherited server: `account pop : imap` says `imap_host`
        // and `pop3_host HOST`.
        let server = |key| value(k, key).filter(|v| !v.text.is_empty());
        let (protocol, host) = match (server("pop3_host"), server("imap_host")) {
            (None, None) => return Ok(None),
            (Some(p), Some(_)) => {
                return Err(config_error(
                    k,
                    "imap_host",
                    format!(
                        "and pop3_host ({}) both set: fetch by one protocol",
                        p.origin
                    ),
                ));
            }
            (Some(p), None) => (Protocol::Pop3, p),
            (None, Some(i)) => (Protocol::Imap, i),
        };
        let folders = match (text(k, "folders").filter(|f| !f.is_empty()), protocol) {
            (None, _) => vec!["INBOX".to_string()],
            // RFC 1939 §1: a POP3 server offers one mailbox.
            (Some(_), Protocol::Pop3) => {
                return Err(config_error(
                    k,
                    "folders",
                    "POP3 has no folders: fetch them with imap_host",
                ));
            }
            (Some(f), Protocol::Imap) => {
                let list: Vec<String> = f
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect();
                if list.is_empty() {
                    return Err(config_error(k, "folders", "names no folder"));
                }
                list
            }
        };
        // The login is shared unless the fetching server has its own (module header).
        let own = ["fetch_user", "fetch_password", "fetch_passwordeval"]
            .iter()
            .any(|key| value(k, key).is_some());
        let prefix = if own { "fetch_" } else { "" };
        Ok(Some(Fetch {
            protocol,
            host: host.text.clone(),
            port: typed(k, "fetch_port", |p| {
                p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))
            })?,
            tls: tls(k, "fetch_")?,
            user: set(k, &format!("{prefix}user")).map(str::to_string),
            password: password(k, prefix)?,
            folders,
            keep: flag(k, "keep")?.unwrap_or(false),
        }))
    }
}

/// The sending keys of an account, typed; `None` where the key is unset (or, for the DSN
/// keys, `off`). Defaults that depend on other settings (the port, on the TLS mode after
/// the flags) are the tool's to apply.
#[derive(Debug, Clone, Default)]
pub struct Send {
    /// `host`.
    pub host: Option<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `tls`, `tls_starttls`, `tls_trust_file`, `tls_fingerprint`, `tls_host_override`.
    pub tls: Tls,
    /// `auth`.
    pub auth: Option<Auth>,
    /// `user`.
    pub user: Option<String>,
    /// `passwordeval`, else `password`.
    pub password: Option<Password>,
    /// `domain`, checked as an EHLO name ([`ehlo_name`]).
    pub domain: Option<String>,
    /// `timeout`, in seconds.
    pub timeout: Option<u64>,
    /// `dsn_notify` as sent ([`dsn_notify`]).
    pub dsn_notify: Option<String>,
    /// `dsn_return` as sent ([`dsn_return`]).
    pub dsn_return: Option<String>,
    /// `queue_on_failure`.
    pub queue_on_failure: bool,
    /// `aliases`: the file that maps local recipients to addresses.
    pub aliases: Option<PathBuf>,
    /// `source_ip`: connections are made from this address.
    pub source_ip: Option<std::net::IpAddr>,
    /// `proxy_host` and the other `proxy_` keys.
    pub proxy: Option<Proxy>,
    /// `dkim` (DOMAIN SELECTOR KEYFILE, with its origin) and `dkim_headers`: the key is read
    /// by `message::dkim` when a message is signed; an empty value unsets an inherited one.
    pub dkim: Option<crate::config::Value>,
    /// `dkim_headers`.
    pub dkim_headers: Option<String>,
}

/// A SOCKS5 proxy (RFC 1928), msmtp's `proxy_host` and `proxy_port`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `proxy_host`: its name or address.
    pub host: String,
    /// `proxy_port`, 1080 by default (msmtp's, and RFC 1928 §3's).
    pub port: u16,
    /// `proxy_user` and `proxy_password`, for RFC 1929's username/password.
    pub login: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.login.as_ref().map(|(u, _)| u);
        write!(f, "Proxy {{ {}:{}, user: {user:?} }}", self.host, self.port)
    }
}

/// The proxy keys: none without `proxy_host` (or with it empty), whatever else is set.
fn proxy(k: &Keys) -> Result<Option<Proxy>> {
    let Some(host) = set(k, "proxy_host") else {
        return Ok(None);
    };
    let port = typed_set(k, "proxy_port", |p| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port {p:?}"))
    })?
    .unwrap_or(1080);
    // RFC 1929 §2: each 1 to 255 octets.
    let field = |key: &str| {
        typed(k, key, |v| match v.len() {
            1..=255 => Ok(v.to_string()),
            _ => Err("must be 1 to 255 bytes (RFC 1929)"),
        })
    };
    let login = match (field("proxy_user")?, field("proxy_password")?) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        (Some(_), None) => return Err(config_error(k, "proxy_user", "needs proxy_password")),
        (None, Some(_)) => return Err(config_error(k, "proxy_password", "needs proxy_user")),
    };
    Ok(Some(Proxy {
        host: host.to_string(),
        port,
        login,
    }))
}

/// `tls_cert_file` with `tls_key_file`: both or neither (msmtp(1) uses them together).
fn client_cert(k: &Keys) -> Result<Option<crate::net::tls::ClientCert>> {
    match (set(k, "tls_cert_file"), set(k, "tls_key_file")) {
        (Some(cert), Some(key)) => Ok(Some(crate::net::tls::ClientCert {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(config_error(k, "tls_cert_file", "needs tls_key_file")),
        (None, Some(_)) => Err(config_error(k, "tls_key_file", "needs tls_cert_file")),
    }
}

/// The fetching keys of an account, typed: mfetch's.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// Which key named the server: `pop3_host` or `imap_host`.
    pub protocol: Protocol,
    /// The server.
    pub host: String,
    /// `fetch_port`; [`Fetch::port`] gives the default.
    pub port: Option<u16>,
    /// `fetch_tls` and the other `fetch_tls_` keys; [`Fetch::mode`] gives the default.
    pub tls: Tls,
    /// `fetch_user`, else `user`.
    pub user: Option<String>,
    /// `fetch_passwordeval` or `fetch_password`, else `passwordeval` or `password`.
    pub password: Option<Password>,
    /// `folders` (IMAP), `INBOX` by default.
    pub folders: Vec<String>,
    /// `keep`: leave fetched mail on the server.
    pub keep: bool,
}

/// The protocol mail is fetched by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// POP3 (RFC 1939).
    Pop3,
    /// IMAP (RFC 9051).
    Imap,
}

impl Fetch {
    /// The TLS mode: the account's, else implicit TLS, which RFC 8314 §3 prefers for mail
    /// access.
    pub fn mode(&self) -> Mode {
        self.tls.mode.unwrap_or(Mode::IMPLICIT)
    }

    /// The port: the account's, else the protocol's for the TLS mode (RFC 8314 §3.1, §3.2:
    /// POP3 995 and IMAP 993 with implicit TLS; RFC 1939 110 and RFC 9051 143 otherwise).
    pub fn port(&self) -> u16 {
        let mode = self.mode();
        let implicit = mode.start == Start::Implicit && mode != Mode::NONE;
        self.port.unwrap_or(match (self.protocol, implicit) {
            (Protocol::Pop3, true) => 995,
            (Protocol::Pop3, false) => 110,
            (Protocol::Imap, true) => 993,
            (Protocol::Imap, false) => 143,
        })
    }
}

/// How one server is reached over TLS.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// `tls` with `tls_starttls`; `None` when neither is set (each block has its default).
    pub mode: Option<Mode>,
    /// `tls_trust_file` (`ca_file`), `tls_fingerprint`, `tls_host_override` (`server_name`).
    pub options: TlsOptions,
}

/// The TLS keys after `prefix` (`""` for sending, `"fetch_"` for fetching).
///
/// The mode ([`Mode::from_keys`]): msmtp's `tls on|off` with `tls_starttls on|off`, or the
/// words of msubmit's `--tls` (`tls starttls`, `tls may`, `tls implicit,encrypt`), which
/// mailpipe(7) shows and users of our command line write. A word that `tls_starttls`
/// contradicts is refused: which one the user meant cannot be guessed, and a wrong guess
/// sends in the clear or not at all.
pub fn tls(keys: &Keys, prefix: &str) -> Result<Tls> {
    let (tls_key, starttls_key) = (format!("{prefix}tls"), format!("{prefix}tls_starttls"));
    let starttls = flag(keys, &starttls_key)?;
    let tls = value(keys, &tls_key);
    let mode = Mode::from_keys(tls.map(|v| v.text.as_str()), starttls).map_err(|e| match e {
        KeyError::Tls(why) => config_error(keys, &tls_key, why),
        KeyError::Contradiction => {
            let (text, origin) = tls.map_or(("", ""), |v| (v.text.as_str(), v.origin.as_str()));
            config_error(
                keys,
                &starttls_key,
                format!("contradicts {tls_key} {text} ({origin})"),
            )
        }
    })?;
    let fingerprint_key = format!("{prefix}tls_fingerprint");
    let fingerprint = typed(keys, &fingerprint_key, |f| {
        crate::net::tls::parse_fingerprint(f).map_err(|e| e.why().to_string())
    })?;
    Ok(Tls {
        mode,
        options: TlsOptions {
            // msmtp's `system` is its default: the system's roots (ours: Mozilla's).
            ca_file: text(keys, &format!("{prefix}tls_trust_file"))
                .filter(|f| !f.eq_ignore_ascii_case("system"))
                .map(PathBuf::from),
            fingerprint,
            server_name: text(keys, &format!("{prefix}tls_host_override")).map(str::to_string),
            client_cert: None,
            dane: None,
        },
    })
}

/// `auth`: whether and how to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `off`: never, even with a user.
    Off,
    /// `on` (the best mechanism the server offers: PLAIN, else LOGIN) or one mechanism.
    On(Option<Mechanism>),
}

impl Auth {
    /// `on`, `off` or a mechanism's name, in any case.
    pub fn parse(word: &str) -> Option<Auth> {
        match word.to_ascii_lowercase().as_str() {
            "off" => Some(Auth::Off),
            "on" => Some(Auth::On(None)),
            m => Mechanism::from_name(m).map(|m| Auth::On(Some(m))),
        }
    }
}

/// Where the password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// `passwordeval`: a command, run by `sh -c` as msmtp runs it, whose first line of output
    /// is the password (or an XOAUTH2 token).
    Command(String),
    /// `password`: the password itself, written in the file.
    Text(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Command(c) => f.debug_tuple("Command").field(c).finish(),
            Password::Text(_) => f.write_str("Text(..)"),
        }
    }
}

/// How long a password command may run: long enough for a person to answer a pinentry
/// prompt (`pass`, `gpg`), not for ever (a hung command would hold the queue runner).
const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The most a password command may print: a password or an OAuth2 access token (a few KiB)
/// fits many times; a command printing without end is not read into memory.
const COMMAND_OUTPUT: u64 = 64 * 1024;

impl Password {
    /// The password: the text, or the first line the command prints (within
    /// [`COMMAND_LIMIT`] and [`COMMAND_OUTPUT`], else it is killed with its process group).
    pub fn reveal(&self) -> Result<String> {
        self.reveal_within(COMMAND_LIMIT)
    }

    fn reveal_within(&self, limit: std::time::Duration) -> Result<String> {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        use std::sync::atomic::Ordering;
        use std::time::{Duration, Instant};
        let cmd = match self {
            Password::Text(p) => return Ok(p.clone()),
            Password::Command(cmd) => cmd,
        };
        let what = "password command";
        let mut child = std::process::Command::new("sh")
            .args(["-c", cmd])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            // Its own process group, so a time-out stops what it started too.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io(Code::Config, what, e))?;
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) has no memory effects; the group is the child's (see below).
        let kill_group = || unsafe { libc::kill(-pid, libc::SIGKILL) };
        let Some(out) = child.stdout.take() else {
            kill_group();
            let _ = child.wait();
            return Err(Error::new(Code::Config, what, "no output pipe"));
        };
        let too_much = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&too_much);
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let r = out.take(COMMAND_OUTPUT + 1).read_to_end(&mut buf);
            flag.store(buf.len() as u64 > COMMAND_OUTPUT, Ordering::SeqCst);
            (r, buf)
        });
        let deadline = Instant::now() + limit;
        // The group is killed before the child is reaped (its id cannot be reused while it
        // is a zombie), or after, while a member it left behind holds the pipe open (the
        // group's id is in use then): that one gets a second after the command exited.
        let mut status = None;
        let mut exited = None;
        let mut overdue = false;
        while !(reader.is_finished() && status.is_some()) {
            if status.is_none() {
                status = child
                    .try_wait()
                    .map_err(|e| Error::io(Code::Config, what, e))?;
                if status.is_some() {
                    exited = Some(Instant::now());
                }
            }
            let lingering = exited.is_some_and(|t| t.elapsed() >= Duration::from_secs(1));
            overdue = Instant::now() >= deadline;
            if overdue || lingering || too_much.load(Ordering::SeqCst) {
                kill_group();
                if status.is_none() {
                    status = child.wait().ok();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (read, buf) = reader
            .join()
            .map_err(|_| Error::new(Code::Config, what, "its output was lost"))?;
        if overdue {
            let secs = limit.as_secs_f32();
            return Err(Error::new(
                Code::TempFail,
                what,
                format!("killed after {secs} seconds"),
            ));
        }
        if buf.len() as u64 > COMMAND_OUTPUT {
            return Err(Error::new(
                Code::Config,
                what,
                format!("printed more than {} KiB", COMMAND_OUTPUT / 1024),
            ));
        }
        read.map_err(|e| Error::io(Code::Config, what, e))?;
        match status {
            Some(s) if s.success() => {}
            Some(s) => return Err(Error::new(Code::Config, what, format!("failed ({s})"))),
            None => return Err(Error::new(Code::Config, what, "lost")),
        }
        let text = String::from_utf8_lossy(&buf);
        Ok(text.lines().next().unwrap_or("").to_string())
    }
}

/// msmtp(1): an empty `user`, `password` or `passwordeval` unsets it (an account that
/// inherits a login and needs none), never an empty name or a command of nothing.
fn password(keys: &Keys, prefix: &str) -> Result<Option<Password>> {
    let eval = set(keys, &format!("{prefix}passwordeval"));
    let plain = set(keys, &format!("{prefix}password"));
    Ok(match (eval, plain) {
        (Some(cmd), _) => Some(Password::Command(cmd.to_string())),
        (None, Some(p)) => Some(Password::Text(p.to_string())),
        (None, None) => None,
    })
}

/// The EHLO name goes onto the command line as is: a blank or a line break in it would add
/// words or whole commands of the writer's choosing (SMTP command injection), so it must be
/// one word of printable ASCII (RFC 5321 §4.1.1.1: a domain or an address literal).
pub fn ehlo_name(name: &str) -> std::result::Result<String, &'static str> {
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("not a host name (one word of printable ASCII)");
    }
    Ok(name.to_string())
}

/// DSN NOTIFY (RFC 3461 §4.1) as sent: NEVER alone, or a comma list of SUCCESS, FAILURE and
/// DELAY; msmtp's `off` (`None`) sends none. Checked, not passed through, because it goes
/// onto every RCPT line: a blank or line break would add parameters or commands.
pub fn dsn_notify(v: &str) -> std::result::Result<Option<String>, &'static str> {
    let v = v.trim().to_ascii_uppercase();
    if v == "OFF" {
        return Ok(None);
    }
    let words: Vec<&str> = v.split(',').map(str::trim).collect();
    let ok = v == "NEVER"
        || words
            .iter()
            .all(|w| matches!(*w, "SUCCESS" | "FAILURE" | "DELAY"));
    match ok {
        true => Ok(Some(words.join(","))),
        false => Err("expected never, or a comma list of success, failure, delay"),
    }
}

/// DSN RET (RFC 3461 §4.3) as sent: FULL or HDRS (msmtp's `headers`); `off` (`None`) sends
/// none.
pub fn dsn_return(v: &str) -> std::result::Result<Option<String>, &'static str> {
    match v.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(None),
        "full" => Ok(Some("FULL".to_string())),
        "hdrs" | "headers" => Ok(Some("HDRS".to_string())),
        _ => Err("expected full or hdrs"),
    }
}

/// A key's text. Every key is read through here, [`value`], [`flag`] or [`typed`], which
/// keep [`KEYS`] whole: the tests read every block and would trip the assertion.
fn text<'a>(keys: &'a Keys, key: &str) -> Option<&'a str> {
    debug_assert!(known(key).is_some(), "{key} is missing from KEYS");
    keys.get(key)
}

/// A key's value with its origin; see [`text`].
fn value<'a>(keys: &'a Keys, key: &str) -> Option<&'a Value> {
    debug_assert!(known(key).is_some(), "{key} is missing from KEYS");
    keys.value(key)
}

/// A boolean key (on/off, yes/no, true/false, 1/0); see [`text`].
fn flag(keys: &Keys, key: &str) -> Result<Option<bool>> {
    debug_assert!(known(key).is_some(), "{key} is missing from KEYS");
    keys.flag(key)
}

/// A key's value through `parse`, its error at the key's `file:line`.
fn typed<T, E: std::fmt::Display>(
    keys: &Keys,
    key: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<Option<T>> {
    text(keys, key)
        .map(|v| parse(v).map_err(|why| config_error(keys, key, why)))
        .transpose()
}

/// A key that an empty value unsets (msmtp's `source_ip`, `proxy_host`, `aliases`…): its
/// text, `None` when empty; see [`text`].
fn set<'a>(keys: &'a Keys, key: &str) -> Option<&'a str> {
    text(keys, key).filter(|v| !v.is_empty())
}

/// [`typed`] for a key that an empty value unsets.
fn typed_set<T, E: std::fmt::Display>(
    keys: &Keys,
    key: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<Option<T>> {
    set(keys, key)
        .map(|v| parse(v).map_err(|why| config_error(keys, key, why)))
        .transpose()
}

/// A configuration error at `file:line: key`, or at the key's name when it is not set.
fn config_error(keys: &Keys, key: &str, why: impl std::fmt::Display) -> Error {
    let at = keys.value(key).map_or_else(
        || key.to_string(),
        |v: &Value| format!("{}: {key}", v.origin),
    );
    Error::new(Code::Config, at, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_command_is_bounded_in_time_and_output() {
        use std::time::{Duration, Instant};
        let run = |cmd: &str, limit| Password::Command(cmd.into()).reveal_within(limit);
        assert_eq!(
            run("printf 'pw\\nrest'", Duration::from_secs(5)).unwrap(),
            "pw"
        );
        // It exits, but what it left running holds its output open: a second, then killed.
        let t0 = Instant::now();
        assert_eq!(
            run("echo pw; sleep 30 &", Duration::from_secs(20)).unwrap(),
            "pw"
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        // Hung: killed at the limit, with what it started.
        let t0 = Instant::now();
        let e = run("sleep 30; echo late", Duration::from_millis(300)).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(e.code(), Code::TempFail);
        assert!(e.to_string().contains("killed after"), "{e}");
        // Printing without end: refused, not read into memory.
        let t0 = Instant::now();
        let e = run("yes", Duration::from_secs(20)).unwrap_err();
        assert!(e.to_string().contains("more than 64 KiB"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(run("exit 3", Duration::from_secs(5)).is_err());
    }

    fn config(text: &str) -> Config {
        let mut cfg = Config::default();
        cfg.parse(text, "c").unwrap();
        cfg
    }

    fn account(text: &str, name: Option<&str>) -> Account {
        Account::resolve(&config(text), name).unwrap()
    }

    fn mode(text: &str) -> Result<Option<Mode>> {
        Ok(account(text, None).send()?.tls.mode)
    }

    #[test]
    fn tls_takes_msmtp_flags_and_the_words_of_the_flag() {
        // mailpipe(7) documents `tls starttls`; msmtp users write `tls on` + `tls_starttls`.
        assert_eq!(mode("tls starttls").unwrap(), Some(Mode::STARTTLS));
        assert_eq!(mode("tls Implicit").unwrap(), Some(Mode::IMPLICIT));
        assert_eq!(mode("tls none").unwrap(), Some(Mode::NONE));
        assert_eq!(mode("").unwrap(), None);
        assert_eq!(mode("tls on").unwrap(), Some(Mode::STARTTLS));
        assert_eq!(
            mode("tls on\ntls_starttls off").unwrap(),
            Some(Mode::IMPLICIT)
        );
        assert_eq!(mode("tls_starttls off").unwrap(), Some(Mode::IMPLICIT));
        assert_eq!(mode("tls off").unwrap(), Some(Mode::NONE));
        assert_eq!(
            mode("tls implicit\ntls_starttls off").unwrap(),
            Some(Mode::IMPLICIT)
        );
        let e = mode("tls implicit\ntls_starttls on").unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert_eq!(
            e.to_string(),
            "c:2: tls_starttls: contradicts tls implicit (c:1)"
        );
        // The levels, with msmtp's tls_starttls giving a level its start.
        assert_eq!(mode("tls may").unwrap(), Some(Mode::MAY));
        assert_eq!(
            mode("tls encrypt\ntls_starttls off")
                .unwrap()
                .map(Mode::name),
            Some("implicit,encrypt")
        );
        let e = mode("tls may\ntls_starttls off").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c:2: tls_starttls: contradicts tls may (c:1)"
        );
        let e = mode("tls startls").unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert!(
            e.to_string()
                .starts_with("c:1: tls: expected on, off, starttls"),
            "{e}"
        );
    }

    #[test]
    fn sending_keys_are_typed_through_inheritance() {
        let text = "tls_trust_file /ca.pem\ntimeout 30\n\
                    account base\nhost smtp.a.test\nport 465\ntls on\ntls_starttls off\n\
                    user me\npassword secret\nfrom me@a.test\n\
                    account work : base\nauth LOGIN\npasswordeval \"pass show x\"\n\
                    dsn_notify failure,delay\ndsn_return headers\ndomain h.a.test\n\
                    queue_on_failure on\nlogfile /log\nsyslog LOG_MAIL\n";
        let a = account(text, Some("work"));
        assert_eq!(a.name.as_deref(), Some("work"));
        assert_eq!(a.from.as_deref(), Some("me@a.test"));
        assert_eq!(a.logfile, Some(PathBuf::from("/log")));
        assert!(a.syslog);
        let s = a.send().unwrap();
        assert_eq!(s.host.as_deref(), Some("smtp.a.test"));
        assert_eq!(s.port, Some(465));
        assert_eq!(s.tls.mode, Some(Mode::IMPLICIT));
        assert_eq!(s.tls.options.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(s.auth, Some(Auth::On(Some(Mechanism::Login))));
        assert_eq!(s.user.as_deref(), Some("me"));
        // passwordeval wins over an inherited password, as in msmtp.
        assert_eq!(s.password, Some(Password::Command("pass show x".into())));
        assert_eq!(s.domain.as_deref(), Some("h.a.test"));
        assert_eq!(s.timeout, Some(30));
        assert_eq!(s.dsn_notify.as_deref(), Some("FAILURE,DELAY"));
        assert_eq!(s.dsn_return.as_deref(), Some("HDRS"));
        assert!(s.queue_on_failure);
        // The parent keeps its own, and the defaults alone have none of the accounts'.
        let base = account(text, Some("base")).send().unwrap();
        assert_eq!(base.password, Some(Password::Text("secret".into())));
        assert_eq!(base.auth, None);
        let none = account(text, None);
        assert_eq!(none.name, None);
        assert!(!none.syslog);
        assert_eq!(none.send().unwrap().host, None);
        assert!(none.fetch().unwrap().is_none());
        assert_eq!(format!("{:?}", base.password), "Some(Text(..))");
    }

    #[test]
    fn host_sends_and_only_pop3_host_or_imap_host_fetches() {
        let text = "account both\nhost smtp.a.test\nimap_host imap.a.test\n\
                    user me\npasswordeval \"pass x\"\nfolders INBOX, Lists/rust ,\nkeep on\n\
                    account send\nhost smtp.a.test\nport 587\nfetch_port 1\n\
                    account pop : both\nimap_host\npop3_host pop.a.test\nfolders\n\
                    fetch_user other\nfetch_password pw\nfetch_tls starttls\n\
                    account two : both\npop3_host pop.a.test\n";
        let cfg = config(text);
        let fetch = |name| {
            Account::resolve(&cfg, Some(name))
                .unwrap()
                .fetch()
                .map(Option::unwrap)
        };
        let both = Account::resolve(&cfg, Some("both")).unwrap();
        assert_eq!(both.send().unwrap().host.as_deref(), Some("smtp.a.test"));
        let f = fetch("both").unwrap();
        assert_eq!(
            (f.protocol, f.host.as_str()),
            (Protocol::Imap, "imap.a.test")
        );
        assert_eq!(f.folders, ["INBOX", "Lists/rust"]);
        assert!(f.keep);
        // The login is shared; TLS is implicit, on IMAP's port for it.
        assert_eq!(f.user.as_deref(), Some("me"));
        assert_eq!(f.password, Some(Password::Command("pass x".into())));
        assert_eq!((f.mode(), f.port()), (Mode::IMPLICIT, 993));
        // `host` alone never fetches, whatever fetching keys come with it.
        let send = Account::resolve(&cfg, Some("send")).unwrap();
        assert!(send.fetch().unwrap().is_none());
        assert_eq!(send.send().unwrap().port, Some(587));
        // An empty value unsets the parent's server and folders; the child's login and TLS
        // replace the parent's, and keep is inherited.
        let f = fetch("pop").unwrap();
        assert_eq!(
            (f.protocol, f.host.as_str()),
            (Protocol::Pop3, "pop.a.test")
        );
        assert_eq!(f.folders, ["INBOX"]);
        assert_eq!(f.user.as_deref(), Some("other"));
        assert_eq!(f.password, Some(Password::Text("pw".into())));
        assert_eq!((f.mode(), f.port(), f.keep), (Mode::STARTTLS, 110, true));
        let e = fetch("two").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c:3: imap_host: and pop3_host (c:20) both set: fetch by one protocol"
        );
    }

    #[test]
    fn the_example_of_the_header_does_what_it_says() {
        let text = "account work\nhost smtp.example.org\nuser me@example.org\n\
                    passwordeval \"pass show mail/work\"\nimap_host imap.example.org\n\
                    folders INBOX, Lists\nkeep on\n";
        let a = account(text, Some("work"));
        let (s, f) = (a.send().unwrap(), a.fetch().unwrap().unwrap());
        assert_eq!(s.host.as_deref(), Some("smtp.example.org"));
        assert_eq!(s.tls.mode, None, "msubmit's default: STARTTLS on 587");
        assert_eq!(
            (f.host.as_str(), f.mode(), f.port()),
            ("imap.example.org", Mode::IMPLICIT, 993)
        );
        assert_eq!((f.folders.len(), f.keep), (2, true));
        assert_eq!((&s.user, &s.password), (&f.user, &f.password));
    }

    #[test]
    fn a_fetching_server_has_its_own_login_and_tls() {
        let text = "host smtp.a.test\nuser me\npassword p\ntls off\n\
                    account pop\npop3_host pop.a.test\nfetch_user other\n\
                    fetch_passwordeval \"echo x\"\nfetch_tls starttls\n\
                    account plain\npop3_host pop.a.test\nfetch_tls off\nfetch_port 1110\n";
        let cfg = config(text);
        let f = Account::resolve(&cfg, Some("pop"))
            .unwrap()
            .fetch()
            .unwrap()
            .unwrap();
        assert_eq!(f.protocol, Protocol::Pop3);
        assert_eq!(f.user.as_deref(), Some("other"));
        assert_eq!(f.password, Some(Password::Command("echo x".into())));
        assert_eq!(f.password.as_ref().unwrap().reveal().unwrap(), "x");
        // The sending server's `tls off` is not the fetching server's.
        assert_eq!((f.mode(), f.port()), (Mode::STARTTLS, 110));
        assert_eq!(f.folders, ["INBOX"]);
        assert!(!f.keep);
        let f = Account::resolve(&cfg, Some("plain"))
            .unwrap()
            .fetch()
            .unwrap()
            .unwrap();
        assert_eq!((f.mode(), f.port()), (Mode::NONE, 1110));
        // Without a fetch_ login of its own, the account's is used.
        assert_eq!(f.user.as_deref(), Some("me"));
        assert_eq!(f.password, Some(Password::Text("p".into())));
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let err = |text: &str, fetch: bool| -> String {
            let a = account(text, Some("a"));
            let e = match fetch {
                false => a.send().unwrap_err(),
                true => a.fetch().unwrap_err(),
            };
            assert_eq!(e.code(), Code::Config, "{e}");
            e.to_string()
        };
        let cases = [
            (
                "account a\nport 99999\n",
                false,
                "c:2: port: bad port \"99999\"",
            ),
            (
                "account a\n\nauth cram-md5\n",
                false,
                "c:3: auth: supported: on",
            ),
            (
                "account a\ntimeout soon\n",
                false,
                "c:2: timeout: expected seconds",
            ),
            (
                "account a\ndomain \"a b\"\n",
                false,
                "c:2: domain: not a host name",
            ),
            (
                "dsn_notify \"success ORCPT=x\"\naccount a\n",
                false,
                "c:1: dsn_notify:",
            ),
            (
                "account a\ndsn_return body\n",
                false,
                "c:2: dsn_return: expected full",
            ),
            (
                "account a\ntls_fingerprint ab:cd\n",
                false,
                "c:2: tls_fingerprint: expected",
            ),
            (
                "account a\nqueue_on_failure maybe\n",
                false,
                "c:2: queue_on_failure:",
            ),
            (
                "account a\npop3_host p\nfolders x\n",
                true,
                "c:3: folders: POP3 has no",
            ),
            (
                "account a\nimap_host i\nfolders ,\n",
                true,
                "c:3: folders: names no folder",
            ),
            (
                "account a\nimap_host i\nkeep maybe\n",
                true,
                "c:3: keep: expected on or off",
            ),
            (
                "account a\nimap_host i\nfetch_port x\n",
                true,
                "c:3: fetch_port: bad port",
            ),
            (
                "account a\nimap_host i\nfetch_tls implicit\nfetch_tls_starttls on\n",
                true,
                "c:4: fetch_tls_starttls: contradicts fetch_tls implicit (c:3)",
            ),
        ];
        for (text, fetch, want) in cases {
            let got = err(text, fetch);
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
        // A mistake in one block stops only the tools that read it.
        let a = account(
            "account a\nhost h\nimap_host i\nkeep maybe\nport x\n",
            Some("a"),
        );
        assert!(a.send().is_err() && a.fetch().is_err());
        let a = account("account a\nhost h\nkeep maybe\n", Some("a"));
        assert_eq!(a.send().unwrap().host.as_deref(), Some("h"));
        let a = account("account a\nimap_host i\nport x\n", Some("a"));
        assert!(a.fetch().unwrap().is_some());
        assert!(Account::resolve(&config(""), Some("missing")).is_err());
    }

    #[test]
    fn the_key_table_names_each_key_once() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                KEYS[i + 1..].iter().all(|o| o.name != k.name),
                "{} twice",
                k.name
            );
            assert!(!k.means.is_empty());
        }
        assert_eq!(known("host").map(|k| k.group), Some(Group::Send));
        assert_eq!(known("imap_host").map(|k| k.group), Some(Group::Fetch));
        assert_eq!(
            known("maildir").map(|k| k.group),
            Some(Group::Tool("mdeliver"))
        );
        assert!(known("hots").is_none());
        // msmtp's keys are either read or listed with why not, never both.
        for m in MSMTP {
            assert!(known(m.name).is_none(), "{} twice", m.name);
            assert!(!m.why.is_empty());
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_the_near_one() {
        assert_eq!(check("host", "h"), Ok(()));
        let e = check("hots", "smtp.a.test").unwrap_err();
        assert_eq!(e, "unknown key \"hots\" (did you mean \"host\"?)");
        let e = check("tls_trust_fiel", "/ca").unwrap_err();
        assert!(e.ends_with("(did you mean \"tls_trust_file\"?)"), "{e}");
        let e = check("proxy_hots", "p").unwrap_err();
        assert!(e.ends_with("(did you mean \"proxy_host\"?)"), "{e}");
        assert_eq!(
            check("colour", "red").unwrap_err(),
            "unknown key \"colour\""
        );
        // Too short to guess from: `x` is two edits from every two-letter key.
        assert_eq!(check("x", "1").unwrap_err(), "unknown key \"x\"");
        // msmtp's keys: what we do anyway passes, the rest is refused by name.
        assert_eq!(check("protocol", "SMTP"), Ok(()));
        let e = check("protocol", "lmtp").unwrap_err();
        assert!(
            e.starts_with("msmtp's protocol lmtp is not supported: mailpipe speaks SMTP only"),
            "{e}"
        );
        assert_eq!(check("tls_certcheck", "on"), Ok(()));
        assert!(
            check("tls_certcheck", "off")
                .unwrap_err()
                .contains("tls encrypt")
        );
        let e = check("socket", "/run/smtp").unwrap_err();
        assert!(
            e.starts_with("msmtp's socket /run/smtp is not supported"),
            "{e}"
        );
        assert_eq!(check("tls_crl_file", ""), Ok(()));
        assert_eq!(distance("hots", "host"), 1);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn the_loader_refuses_an_unknown_key_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "defaults\nport 25\n\naccount a\nhots smtp.a.test\n").unwrap();
        let e = load(Some(&path)).unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert_eq!(
            e.to_string(),
            format!(
                "{}:5: unknown key \"hots\" (did you mean \"host\"?)",
                path.display()
            )
        );
        std::fs::write(&path, "protocol lmtp\n").unwrap();
        let e = load(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("config:1: msmtp's protocol lmtp"), "{e}");
    }

    #[test]
    fn msmtps_network_keys_are_typed() {
        let text = "account a\nhost h\nsource_ip 192.0.2.7\nproxy_host 127.0.0.1\n\
                    tls_cert_file /c.pem\ntls_key_file /k.pem\naliases /etc/aliases\n\
                    account b : a\nproxy_port 9050\nproxy_user u\nproxy_password p\n\
                    account off : b\nproxy_host\nsource_ip\naliases\n";
        let s = account(text, Some("a")).send().unwrap();
        assert_eq!(s.source_ip, Some("192.0.2.7".parse().unwrap()));
        let p = s.proxy.unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.login),
            ("127.0.0.1", 1080, None)
        );
        let c = s.tls.options.client_cert.unwrap();
        assert_eq!(
            (c.cert.to_str(), c.key.to_str()),
            (Some("/c.pem"), Some("/k.pem"))
        );
        assert_eq!(s.aliases, Some(PathBuf::from("/etc/aliases")));
        let p = account(text, Some("b")).send().unwrap().proxy.unwrap();
        assert_eq!(p.port, 9050);
        assert_eq!(p.login, Some(("u".into(), "p".into())));
        assert!(
            !format!("{p:?}").contains("\"p\""),
            "the password is not shown"
        );
        // An empty value unsets, as in msmtp.
        let s = account(text, Some("off")).send().unwrap();
        let unset = "user me\npassword p\naccount a\nuser\npassword\npasswordeval\n";
        let a = account(unset, Some("a")).send().unwrap();
        assert_eq!((a.user, a.password), (None, None));
        assert!(s.proxy.is_none() && s.source_ip.is_none() && s.aliases.is_none());
        let err = |text: &str| account(text, Some("a")).send().unwrap_err().to_string();
        assert_eq!(
            err("account a\nhost\n"),
            "c:2: host: needs the server's name or address"
        );
        assert_eq!(
            err("account a\nsource_ip me\n"),
            "c:2: source_ip: not an IP address: \"me\""
        );
        assert_eq!(
            err("account a\nproxy_host p\nproxy_port 0\n"),
            "c:3: proxy_port: bad port \"0\""
        );
        assert_eq!(
            err("account a\nproxy_host p\nproxy_user u\n"),
            "c:3: proxy_user: needs proxy_password"
        );
        assert_eq!(
            err("account a\ntls_key_file /k\n"),
            "c:2: tls_key_file: needs tls_cert_file"
        );
        // msmtp's `tls_trust_file system` is the built-in roots.
        let s = account("account a\ntls_trust_file system\n", Some("a"))
            .send()
            .unwrap();
        assert_eq!(s.tls.options.ca_file, None);
    }

    #[test]
    fn dsn_and_ehlo_values_are_checked() {
        assert_eq!(dsn_notify(" never ").unwrap().as_deref(), Some("NEVER"));
        assert_eq!(dsn_notify("off").unwrap(), None);
        assert!(dsn_notify("never,success").is_err());
        assert!(dsn_notify("success\r\nRCPT TO:<x@y>").is_err());
        assert_eq!(dsn_return("Full").unwrap().as_deref(), Some("FULL"));
        assert!(dsn_return("hdrs x").is_err());
        assert!(ehlo_name("h.test\r\nRSET").is_err() && ehlo_name("").is_err());
        assert_eq!(ehlo_name("[127.0.0.1]").unwrap(), "[127.0.0.1]");
        assert_eq!(Auth::parse("OFF"), Some(Auth::Off));
        assert_eq!(
            Auth::parse("xoauth2"),
            Some(Auth::On(Some(Mechanism::XOAuth2)))
        );
        assert_eq!(Auth::parse("gssapi"), None);
    }
}
