//! msubmit's settings: sendmail's legacy command line rewritten for clap, the account chosen
//! from the configuration, and command-line flags laid over its sending keys into client
//! options.
//!
//! Which keys an account has, what they mean and their types are [`crate::account`]'s (msmtp's
//! keys, so an msmtp account block works as it is); what is msubmit's here is which account a
//! message goes through, and the order flag, then key, then default.

use super::Args;
use crate::account::{self, Account, Auth, Password, Send};
use crate::aliases::{Aliases, Expanded};
use crate::config::Config;
use crate::exit::{Code, Error, Result};
use crate::net::tls::{ClientCert, Level, Mode, Start, TlsOptions};
use crate::smtp::client::{Credentials, Options, Timeouts};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Short options that take a separate value: their next argument is never rewritten.
const SHORT_WITH_VALUE: &[&str] = &["-f", "-r", "-F", "-N", "-R", "-V", "-a", "-C"];

/// The name msubmit was run by: sendmail's other names are links to it (Postfix, sendmail
/// and ssmtp install `mailq` and `newaliases` so), and mean `-bp` and `-bi`.
pub fn invoked_as(argv0: Option<&std::ffi::OsStr>) -> &'static str {
    let name = argv0
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .and_then(|n| n.to_str());
    match name {
        Some("mailq") => "mailq",
        Some("newaliases") => "newaliases",
        _ => "msubmit",
    }
}

/// Rewrite sendmail's legacy options into what clap parses. Options sendmail callers pass
/// that mean nothing here are dropped; ones we cannot honour become `--refused=OPT`, which
/// `run` reports as a usage error naming the option. Run as `mailq` or `newaliases`, the
/// command line starts as `-bp` or `-bi` would.
pub fn legacy_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut it = args.into_iter().peekable();
    if let Some(argv0) = it.next() {
        let mode = match invoked_as(Some(&argv0)) {
            "mailq" => Some("--list"),
            "newaliases" => Some("--newaliases"),
            _ => None,
        };
        out.push(argv0);
        out.extend(mode.map(OsString::from));
    }
    let mut rest_verbatim = false;
    let mut value_next = false;
    let mut drop_next = false;
    while let Some(arg) = it.next() {
        if rest_verbatim || value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        if drop_next {
            drop_next = false;
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        let keep = |out: &mut Vec<OsString>, a: &str| out.push(a.into());
        match s {
            "--" => {
                rest_verbatim = true;
                keep(&mut out, s);
            }
            // -i: a lone dot does not end the input; it never does here, so -i is a no-op.
            "-oi" | "-oitrue" => keep(&mut out, "-i"),
            // Deliver in the background / interactively: we always deliver now.
            "-odb" | "-odi" | "-bm" | "-U" | "-Am" | "-Ac" | "-n" | "-m" | "-om" | "-G" => {}
            // Queue only (sendmail's deferred mode), list the queue (mailq), SMTP on stdin,
            // run the queue.
            "-odq" => keep(&mut out, "--queue"),
            "-bp" => keep(&mut out, "--list"),
            // Rebuild the alias database (newaliases; Postfix also takes -I): there is
            // none to build.
            "-bi" | "-I" => keep(&mut out, "--newaliases"),
            "-bs" => keep(&mut out, "--smtp-stdio"),
            "-q" => keep(&mut out, "--flush"),
            // Options with a separate value we ignore: body type, syslog tag, hop count.
            "-B" | "-L" => drop_next = true,
            // -h N (hop count) is dropped; a plain -h stays clap's help.
            "-h" if it
                .peek()
                .and_then(|a| a.to_str())
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                drop_next = true
            }
            _ if SHORT_WITH_VALUE.contains(&s) => {
                value_next = true;
                keep(&mut out, s);
            }
            _ if s.starts_with("-oe") || s.starts_with("-oo") || s.starts_with("-os") => {}
            _ if s.starts_with("-B") || s.starts_with("-L") => {}
            _ if s.starts_with("-o") || s.starts_with("-b") || s.starts_with("-q") || s == "-X" => {
                keep(&mut out, &format!("--refused={s}"));
            }
            _ => out.push(arg),
        }
    }
    out
}

/// Why a legacy option is refused.
pub fn refusal(opt: &str) -> Error {
    let why = match opt {
        _ if opt.starts_with("-b") => "this sendmail mode is not supported",
        _ if opt.starts_with("-q") => "only a plain -q (flush the queue) is supported",
        _ => "this sendmail option is not supported",
    };
    Error::new(Code::Usage, format!("option {opt}"), why)
}

/// Everything needed to reach the server of one account.
pub struct Server {
    /// The account name (`None`: defaults and flags only).
    pub account: Option<String>,
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Client options.
    pub options: Options,
    /// The log file.
    pub log: Option<PathBuf>,
    /// Log to syslog too.
    pub syslog: bool,
    /// Queue the message when the server refuses it for now.
    pub queue_on_failure: bool,
    /// The SOCKS5 proxy connections go through.
    pub proxy: Option<account::Proxy>,
}

/// Choose the account: `-a NAME`; else the account whose `from` is the sender; else an
/// account called `default`; else none (the `defaults` section and the flags).
pub fn choose_account(
    cfg: &Config,
    named: Option<&str>,
    sender: Option<&str>,
) -> Result<Option<String>> {
    if let Some(n) = named {
        cfg.account(Some(n))?;
        return Ok(Some(n.to_string()));
    }
    if let Some(sender) = sender {
        for name in cfg.account_names() {
            let acct = Account::resolve(cfg, Some(name))?;
            if acct.from.is_some_and(|f| f.eq_ignore_ascii_case(sender)) {
                return Ok(Some(name.to_string()));
            }
        }
    }
    Ok(cfg
        .account_names()
        .any(|n| n == "default")
        .then(|| "default".to_string()))
}

/// Lay the flags over the account's sending keys and build the client options, the
/// password revealed (its command run) when there is a login.
pub fn server(
    args: &Args,
    cfg: &Config,
    account: Option<String>,
    trace: Option<crate::smtp::client::Trace>,
) -> Result<Server> {
    let (mut server, login) = unrevealed(args, cfg, account, trace)?;
    server.options.auth = login.map(|l| l.reveal()).transpose()?;
    Ok(server)
}

/// A login, its password not yet revealed.
pub struct Login {
    /// The user name.
    pub user: String,
    /// Where the password comes from.
    pub password: Password,
    /// `--password-command` gave it, not the account.
    pub password_flag: bool,
    /// The mechanism; `None` picks PLAIN, else LOGIN.
    pub mechanism: Option<crate::net::sasl::Mechanism>,
}

impl Login {
    /// The credentials: the password command run, or the password read.
    pub fn reveal(self) -> Result<Credentials> {
        Ok(Credentials {
            secret: self.password.reveal()?,
            user: self.user,
            mechanism: self.mechanism,
        })
    }
}

/// [`server`] without the login's password: the server's options without credentials, and
/// the login apart (`--pretend` shows it, `--serverinfo` does not log in).
pub fn unrevealed(
    args: &Args,
    cfg: &Config,
    account: Option<String>,
    trace: Option<crate::smtp::client::Trace>,
) -> Result<(Server, Option<Login>)> {
    let acct = Account::resolve(cfg, account.as_deref())?;
    let send = acct.send()?;
    let security = match args.tls.as_deref() {
        Some(words) => Mode::parse(words)
            .map_err(|why| Error::new(Code::Usage, format!("--tls {words}"), why))?,
        // Without tls or --tls, TLS is required (account.rs).
        None => send.tls.mode.unwrap_or(Mode::STARTTLS),
    };
    let host = args.host.clone().or(send.host.clone()).ok_or_else(|| {
        Error::new(
            Code::Config,
            "no server",
            format!(
                "give --host or a host in the configuration (account {})",
                account.as_deref().unwrap_or("defaults")
            ),
        )
    })?;
    let port = args
        .port
        .or(send.port)
        .unwrap_or(match (security.level, security.start) {
            (Level::None, _) => 25,
            (_, Start::Implicit) => 465,
            (_, Start::StartTls) => 587,
        });
    let fingerprint = match args.fingerprint.as_deref() {
        Some(f) => Some(crate::net::tls::parse_fingerprint(f)?),
        None => send.tls.options.fingerprint,
    };
    let tls = TlsOptions {
        ca_file: args.ca_file.clone().or(send.tls.options.ca_file.clone()),
        fingerprint,
        server_name: (args.tls_server_name.clone()).or(send.tls.options.server_name.clone()),
        client_cert: client_cert(args, &send)?,
    };
    // An empty flag unsets the key, as msmtp's `--proxy-host=` does.
    let source = match args.source_ip.as_deref() {
        Some("") => None,
        Some(ip) => Some(
            ip.parse()
                .map_err(|_| usage_error("--source-ip", ip, "not an IP address"))?,
        ),
        None => send.source_ip,
    };
    let proxy = match (args.proxy_host.as_deref(), send.proxy.clone()) {
        (Some(""), _) => None,
        (Some(host), p) => Some(account::Proxy {
            host: host.to_string(),
            port: args
                .proxy_port
                .or(p.as_ref().map(|p| p.port))
                .unwrap_or(1080),
            login: p.and_then(|p| p.login),
        }),
        (None, Some(p)) => Some(account::Proxy {
            port: args.proxy_port.unwrap_or(p.port),
            ..p
        }),
        (None, None) => None,
    };
    let timeouts = match args.timeout.or(send.timeout) {
        Some(secs) => Timeouts::uniform(Duration::from_secs(secs.max(1))),
        None => Timeouts::default(),
    };
    let login = login(args, &send)?;
    let helo = match (&args.helo, &send.domain) {
        (Some(h), _) => account::ehlo_name(h).map_err(|why| usage_error("--helo", h, why))?,
        (None, Some(d)) => d.clone(),
        (None, None) => crate::message::stamp::fqdn(),
    };
    let server = Server {
        account,
        host,
        port,
        options: Options {
            tls: security,
            trust: tls,
            helo,
            auth: None,
            timeouts,
            trace,
            source,
        },
        log: args.log.clone().or(acct.logfile),
        syslog: args.syslog || acct.syslog,
        queue_on_failure: args.queue_on_failure || send.queue_on_failure,
        proxy,
    };
    Ok((server, login))
}

/// The client certificate: `--tls-cert-file` and `--tls-key-file` over the account's
/// `tls_cert_file` and `tls_key_file`; both or neither.
fn client_cert(args: &Args, send: &Send) -> Result<Option<ClientCert>> {
    let key = send.tls.options.client_cert.as_ref();
    let cert_file = args.tls_cert_file.clone().or(key.map(|c| c.cert.clone()));
    let key_file = args.tls_key_file.clone().or(key.map(|c| c.key.clone()));
    match (cert_file, key_file) {
        (Some(cert), Some(key)) => Ok(Some(ClientCert { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::new(
            Code::Usage,
            "--tls-cert-file",
            "needs --tls-key-file",
        )),
        (None, Some(_)) => Err(Error::new(
            Code::Usage,
            "--tls-key-file",
            "needs --tls-cert-file",
        )),
    }
}

fn usage_error(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::new(Code::Usage, format!("{flag} {value:?}"), why)
}

/// DSN NOTIFY: `-N`, else the account's `dsn_notify` ([`account::dsn_notify`]).
pub fn dsn_notify(flag: &Option<String>, send: &Send) -> Result<Option<String>> {
    match flag {
        Some(f) => account::dsn_notify(f).map_err(|why| usage_error("-N", f, why)),
        None => Ok(send.dsn_notify.clone()),
    }
}

/// DSN RET: `-R`, else the account's `dsn_return` ([`account::dsn_return`]).
pub fn dsn_return(flag: &Option<String>, send: &Send) -> Result<Option<String>> {
    match flag {
        Some(f) => account::dsn_return(f).map_err(|why| usage_error("-R", f, why)),
        None => Ok(send.dsn_return.clone()),
    }
}

/// The login: `--auth`, `--user` and `--password-command` over the account's keys. A user
/// means AUTH unless `auth off`; `auth` without a user is an error, not a silent no-login.
fn login(args: &Args, send: &Send) -> Result<Option<Login>> {
    let auth = match args.auth.as_deref() {
        Some(a) => Some(Auth::parse(a).ok_or_else(|| {
            Error::new(
                Code::Config,
                format!("auth {}", a.to_ascii_lowercase()),
                "supported: on, off, plain, login, xoauth2",
            )
        })?),
        None => send.auth,
    };
    let mechanism = match auth {
        Some(Auth::Off) => return Ok(None),
        Some(Auth::On(m)) => m,
        None => None,
    };
    let Some(user) = args.user.clone().or(send.user.clone()) else {
        if auth.is_some() {
            return Err(Error::new(
                Code::Config,
                "auth",
                "needs a user (--user or user in the configuration)",
            ));
        }
        return Ok(None);
    };
    let password = match (&args.password_command, &send.password) {
        (Some(cmd), _) => Password::Command(cmd.clone()),
        (None, Some(p)) => p.clone(),
        (None, None) => {
            return Err(Error::new(
                Code::Config,
                format!("user {user}"),
                "no password: give --password-command, or passwordeval in the configuration",
            ));
        }
    };
    Ok(Some(Login {
        user,
        password,
        password_flag: args.password_command.is_some(),
        mechanism,
    }))
}

/// The address of `Name <addr>` (inside the last angle brackets, as sendmail accepts it) or
/// of a bare address.
pub fn bare(addr: &str) -> &str {
    let addr = addr.trim();
    match (addr.rfind('<'), addr.ends_with('>')) {
        (Some(i), true) => &addr[i + 1..addr.len() - 1],
        _ => crate::message::header::bare_addr(addr),
    }
}

/// The recipients `rcpt` stands for, each checked ([`envelope_address`]) and completed with
/// `domain`: a local name through the account's `aliases` file first (msmtp's key; see
/// [`crate::aliases`]). An address from the file that is no address is the file's error
/// (78) at its line; one from the caller fails with `code`.
pub fn recipients(
    rcpt: &str,
    aliases: Option<&Aliases>,
    domain: Option<&str>,
    code: Code,
) -> Result<Vec<String>> {
    let expanded = match aliases {
        Some(a) if !rcpt.chars().any(char::is_control) => a.expand(bare(rcpt))?,
        _ => vec![Expanded {
            addr: rcpt.to_string(),
            origin: None,
        }],
    };
    let check = |e: Expanded| match e.origin {
        None => envelope_address("recipient", &e.addr, domain).map_err(|err| err.with_code(code)),
        Some(at) => envelope_address("recipient", &e.addr, domain)
            .map_err(|err| err.context(format!("aliases {at}")).with_code(Code::Config)),
    };
    expanded.into_iter().map(check).collect()
}

/// Check an envelope address given by the user: not an option, no control characters,
/// valid per RFC 5321; an address without a domain is completed with `domain`.
pub fn envelope_address(kind: &str, addr: &str, domain: Option<&str>) -> Result<String> {
    let addr = addr.trim();
    if addr.chars().any(char::is_control) {
        return Err(Error::new(
            Code::Usage,
            format!("{kind} {addr:?}"),
            "contains a control character",
        ));
    }
    let a = bare(addr);
    if a.starts_with('-') {
        return Err(Error::new(
            Code::Usage,
            format!("{kind} {a:?}"),
            "looks like an option, not an address",
        ));
    }
    let a = match (a.contains('@'), domain) {
        (false, Some(d)) if !a.is_empty() && !a.eq_ignore_ascii_case("postmaster") => {
            format!("{a}@{d}")
        }
        _ => a.to_string(),
    };
    if a.is_empty() && kind == "sender" {
        return Ok(a);
    }
    crate::smtp::command::check_mailbox(&a)
        .map_err(|e| Error::new(Code::Usage, format!("{kind} {a:?}"), e))?;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(args: &[&str]) -> Vec<String> {
        legacy_args(
            std::iter::once("msubmit")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
        .into_iter()
        .skip(1)
        .map(|a| a.into_string().unwrap())
        .collect()
    }

    #[test]
    fn rewrites_sendmail_options() {
        assert_eq!(rw(&["-oi", "-oem", "-t"]), vec!["-i", "-t"]);
        assert_eq!(rw(&["-odq", "-bm", "a@b"]), vec!["--queue", "a@b"]);
        assert_eq!(rw(&["-bs", "-oi"]), vec!["--smtp-stdio", "-i"]);
        assert_eq!(rw(&["-bd"]), vec!["--refused=-bd"]);
        assert_eq!(rw(&["-oQ/x"]), vec!["--refused=-oQ/x"]);
        assert_eq!(
            rw(&["-f", "-oi", "-B", "8BITMIME", "x@y"]),
            vec!["-f", "-oi", "x@y"]
        );
        assert_eq!(rw(&["--", "-oi"]), vec!["--", "-oi"]);
        assert_eq!(rw(&["-bp"]), vec!["--list"]);
        assert_eq!(rw(&["-bi"]), vec!["--newaliases"]);
        assert_eq!(rw(&["-I"]), vec!["--newaliases"]);
        assert_eq!(rw(&["-q"]), vec!["--flush"]);
        assert_eq!(rw(&["-h", "17", "-h"]), vec!["-h"]);
    }

    #[test]
    fn sendmails_other_names_choose_a_mode() {
        let rw0 = |argv: &[&str]| -> Vec<String> {
            legacy_args(argv.iter().map(OsString::from))
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            rw0(&["/usr/bin/mailq", "-v"]),
            ["/usr/bin/mailq", "--list", "-v"]
        );
        assert_eq!(rw0(&["newaliases"]), ["newaliases", "--newaliases"]);
        assert_eq!(
            rw0(&["/usr/sbin/sendmail", "-t"]),
            ["/usr/sbin/sendmail", "-t"]
        );
        assert_eq!(invoked_as(Some("x/mailq".as_ref())), "mailq");
        assert_eq!(invoked_as(Some("mailq.old".as_ref())), "msubmit");
    }

    #[test]
    fn checks_envelope_addresses() {
        assert_eq!(
            envelope_address("recipient", "<a@b.test>", None).unwrap(),
            "a@b.test"
        );
        assert_eq!(
            envelope_address("recipient", "root", Some("h.test")).unwrap(),
            "root@h.test"
        );
        assert!(envelope_address("recipient", "-oQ", None).is_err());
        assert!(envelope_address("recipient", "a@b\r\nRCPT TO:<c@d>", None).is_err());
        assert!(envelope_address("recipient", "a b@c", None).is_err());
        assert_eq!(envelope_address("sender", "<>", None).unwrap(), "");
        assert_eq!(
            envelope_address("recipient", "Bob <b@x.test>", None).unwrap(),
            "b@x.test"
        );
    }
}
