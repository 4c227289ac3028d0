//! msubmit's settings: sendmail's legacy command line rewritten for clap, the account chosen
//! from the configuration, and command-line flags laid over it into client options.
//!
//! Configuration keys are msmtp's (host, port, tls, tls_starttls, tls_trust_file,
//! tls_fingerprint, tls_host_override, auth, user, password, passwordeval, from, domain,
//! timeout, logfile, syslog, dsn_notify, dsn_return) so an msmtp account block works as it
//! is, plus our queue_on_failure and `tls starttls|implicit|none` (the words of `--tls`), with
//! one deliberate difference: without `tls` or `--tls`, TLS is required (STARTTLS), not off.

use super::Args;
use crate::config::{Account, Config};
use crate::exit::{Code, Error, Result};
use crate::net::sasl::Mechanism;
use crate::net::tls::TlsOptions;
use crate::smtp::client::{Credentials, Options, Security, Timeouts};
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
    /// Client options.
    pub options: Options,
    /// The log file.
    pub log: Option<PathBuf>,
    /// Log to syslog too.
    pub syslog: bool,
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
            let acct = cfg.account(Some(name))?;
            if acct
                .get("from")
                .is_some_and(|f| f.eq_ignore_ascii_case(sender))
            {
                return Ok(Some(name.to_string()));
            }
        }
    }
    Ok(cfg
        .account_names()
        .any(|n| n == "default")
        .then(|| "default".to_string()))
}

fn config_error(acct: &Account, key: &str, why: impl std::fmt::Display) -> Error {
    let at = acct
        .value(key)
        .map_or_else(|| key.to_string(), |v| format!("{}: {key}", v.origin));
    Error::new(Code::Config, at, why)
}

/// The account's TLS mode: msmtp's `tls on|off` with `tls_starttls on|off`, or one of the
/// words of `--tls` (`tls starttls`, `tls implicit`, `tls none`), which mailpipe(7) shows and
/// users of our command line write. A word that `tls_starttls` contradicts is refused: which
/// one the user meant cannot be guessed, and a wrong guess sends in the clear or not at all.
fn config_security(acct: &Account) -> Result<Security> {
    let starttls = acct.flag("tls_starttls")?;
    let from_msmtp = |tls: Option<bool>| match (tls, starttls) {
        (Some(false), _) => Security::None,
        (_, Some(false)) => Security::Implicit,
        _ => Security::StartTls,
    };
    let Some(v) = acct.value("tls") else {
        return Ok(from_msmtp(None));
    };
    let word = match v.text.to_ascii_lowercase().as_str() {
        "starttls" => Security::StartTls,
        "implicit" => Security::Implicit,
        "none" => Security::None,
        _ => {
            let tls = acct.flag("tls").map_err(|_| {
                config_error(
                    acct,
                    "tls",
                    format!(
                        "expected on, off, starttls, implicit or none, got {:?}",
                        v.text
                    ),
                )
            })?;
            return Ok(from_msmtp(tls));
        }
    };
    match (word, starttls) {
        (Security::StartTls, Some(false)) | (Security::Implicit, Some(true)) => Err(config_error(
            acct,
            "tls_starttls",
            format!("contradicts tls {} ({})", v.text, v.origin),
        )),
        _ => Ok(word),
    }
}

/// Lay the flags over the account and build the client options.
pub fn server(
    args: &Args,
    cfg: &Config,
    account: Option<String>,
    trace: Option<crate::smtp::client::Trace>,
) -> Result<Server> {
    let acct = cfg.account(account.as_deref())?;
    let security = match args.tls.as_deref() {
        Some("starttls") => Security::StartTls,
        Some("implicit") => Security::Implicit,
        Some("none") => Security::None,
        Some(other) => {
            return Err(Error::new(
                Code::Usage,
                format!("--tls {other}"),
                "expected starttls, implicit or none",
            ));
        }
        None => config_security(&acct)?,
    };
    let host = pick(&args.host, &acct, "host").ok_or_else(|| {
        Error::new(
            Code::Config,
            "no server",
            format!(
                "give --host or a host in the configuration (account {})",
                account.as_deref().unwrap_or("defaults")
            ),
        )
    })?;
    let port = match (args.port, acct.get("port")) {
        (Some(p), _) => p,
        (None, Some(p)) => p
            .parse()
            .map_err(|_| config_error(&acct, "port", format!("bad port {p:?}")))?,
        (None, None) => match security {
            Security::Implicit => 465,
            Security::StartTls => 587,
            Security::None => 25,
        },
    };
    let fingerprint = match args.fingerprint.as_deref().or(acct.get("tls_fingerprint")) {
        Some(f) => Some(crate::net::tls::parse_fingerprint(f)?),
        None => None,
    };
    let tls = TlsOptions {
        ca_file: args
            .ca_file
            .clone()
            .or_else(|| acct.get("tls_trust_file").map(PathBuf::from)),
        fingerprint,
        server_name: pick(&args.tls_server_name, &acct, "tls_host_override"),
    };
    let timeouts = match args.timeout.or(acct
        .get("timeout")
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| config_error(&acct, "timeout", "expected seconds"))
        })
        .transpose()?)
    {
        Some(secs) => Timeouts::uniform(Duration::from_secs(secs.max(1))),
        None => Timeouts::default(),
    };
    let auth = credentials(args, &acct)?;
    let helo = match (&args.helo, acct.get("domain")) {
        (Some(h), _) => checked_helo(h).map_err(|why| usage_error("--helo", h, why))?,
        (None, Some(d)) => checked_helo(d).map_err(|why| config_error(&acct, "domain", why))?,
        (None, None) => crate::message::stamp::fqdn(),
    };
    Ok(Server {
        account,
        options: Options {
            host,
            port,
            security,
            tls,
            helo,
            auth,
            timeouts,
            trace,
        },
        log: args
            .log
            .clone()
            .or_else(|| acct.get("logfile").map(PathBuf::from)),
        // msmtp's `syslog` is on, off or a facility name (which we take as on, facility mail).
        syslog: args.syslog
            || acct.get("syslog").is_some_and(|v| {
                !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "off" | "no" | "false" | "0"
                )
            }),
    })
}

fn usage_error(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::new(Code::Usage, format!("{flag} {value:?}"), why)
}

/// The EHLO name goes onto the command line as is: a blank or a line break in it would add
/// words or whole commands of the caller's choosing (SMTP command injection), so it must be
/// one word of printable ASCII (RFC 5321 §4.1.1.1: a domain or an address literal).
fn checked_helo(name: &str) -> std::result::Result<String, &'static str> {
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("not a host name (one word of printable ASCII)");
    }
    Ok(name.to_string())
}

/// DSN NOTIFY (RFC 3461 §4.1): NEVER alone, or a comma list of SUCCESS, FAILURE and DELAY;
/// msmtp's `off` sends none. Checked, not passed through, because it goes onto every RCPT
/// line: a blank or line break would add parameters or commands.
pub fn dsn_notify(flag: &Option<String>, acct: &Account) -> Result<Option<String>> {
    let parse = |v: &str| -> std::result::Result<Option<String>, &'static str> {
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
    };
    match (flag, acct.get("dsn_notify")) {
        (Some(f), _) => parse(f).map_err(|why| usage_error("-N", f, why)),
        (None, Some(v)) => parse(v).map_err(|why| config_error(acct, "dsn_notify", why)),
        (None, None) => Ok(None),
    }
}

/// DSN RET (RFC 3461 §4.3): FULL or HDRS (msmtp's `headers`; `off` sends none).
pub fn dsn_return(flag: &Option<String>, acct: &Account) -> Result<Option<String>> {
    let parse = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(None),
        "full" => Ok(Some("FULL".to_string())),
        "hdrs" | "headers" => Ok(Some("HDRS".to_string())),
        _ => Err("expected full or hdrs"),
    };
    match (flag, acct.get("dsn_return")) {
        (Some(f), _) => parse(f).map_err(|why| usage_error("-R", f, why)),
        (None, Some(v)) => parse(v).map_err(|why| config_error(acct, "dsn_return", why)),
        (None, None) => Ok(None),
    }
}

/// A flag's value, else the account's `key`.
pub fn pick(flag: &Option<String>, acct: &Account, key: &str) -> Option<String> {
    flag.clone().or_else(|| acct.get(key).map(str::to_string))
}

fn credentials(args: &Args, acct: &Account) -> Result<Option<Credentials>> {
    let auth = pick(&args.auth, acct, "auth");
    let user = pick(&args.user, acct, "user");
    let mechanism = match auth.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("off") => return Ok(None),
        None | Some("on") => None,
        Some(m) => Some(Mechanism::from_name(m).ok_or_else(|| {
            Error::new(
                Code::Config,
                format!("auth {m}"),
                "supported: on, off, plain, login, xoauth2",
            )
        })?),
    };
    let Some(user) = user else {
        if auth.as_deref().is_some_and(|a| a != "off") {
            return Err(Error::new(
                Code::Config,
                "auth",
                "needs a user (--user or user in the configuration)",
            ));
        }
        return Ok(None);
    };
    let secret = match (
        &args.password_command,
        acct.get("passwordeval"),
        acct.get("password"),
    ) {
        (Some(cmd), _, _) => password_command(cmd)?,
        (None, Some(cmd), _) => password_command(cmd)?,
        (None, None, Some(p)) => p.to_string(),
        (None, None, None) => {
            return Err(Error::new(
                Code::Config,
                format!("user {user}"),
                "no password: give --password-command, or passwordeval in the configuration",
            ));
        }
    };
    Ok(Some(Credentials {
        user,
        secret,
        mechanism,
    }))
}

/// Run the password command (through `sh -c`, as msmtp's passwordeval) and take the first
/// line of its output.
fn password_command(cmd: &str) -> Result<String> {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::io(Code::Config, "password command", e))?;
    if !out.status.success() {
        return Err(Error::new(
            Code::Config,
            "password command",
            format!("failed ({})", out.status),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Check an envelope address given by the user: not an option, no control characters,
/// valid per RFC 5321; an address without a domain is completed with `domain`.
pub fn envelope_address(kind: &str, addr: &str, domain: Option<&str>) -> Result<String> {
    // `Name <addr>` as sendmail accepts it: the address is inside the last angle brackets.
    let addr = addr.trim();
    if addr.chars().any(char::is_control) {
        return Err(Error::new(
            Code::Usage,
            format!("{kind} {addr:?}"),
            "contains a control character",
        ));
    }
    let a = match (addr.rfind('<'), addr.ends_with('>')) {
        (Some(i), true) => &addr[i + 1..addr.len() - 1],
        _ => crate::message::header::bare_addr(addr),
    };
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

    fn security(text: &str) -> Result<Security> {
        let mut cfg = Config::default();
        cfg.parse(text, "c")?;
        config_security(&cfg.account(None)?)
    }

    #[test]
    fn tls_takes_msmtp_flags_and_the_words_of_the_flag() {
        // mailpipe(7) documents `tls starttls`; msmtp users write `tls on` + `tls_starttls`.
        assert_eq!(security("tls starttls").unwrap(), Security::StartTls);
        assert_eq!(security("tls Implicit").unwrap(), Security::Implicit);
        assert_eq!(security("tls none").unwrap(), Security::None);
        assert_eq!(security("").unwrap(), Security::StartTls);
        assert_eq!(security("tls on").unwrap(), Security::StartTls);
        assert_eq!(
            security("tls on\ntls_starttls off").unwrap(),
            Security::Implicit
        );
        assert_eq!(security("tls off").unwrap(), Security::None);
        assert_eq!(
            security("tls implicit\ntls_starttls off").unwrap(),
            Security::Implicit
        );
        let e = security("tls implicit\ntls_starttls on").unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert_eq!(
            e.to_string(),
            "c:2: tls_starttls: contradicts tls implicit (c:1)"
        );
        let e = security("tls startls").unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert!(
            e.to_string()
                .starts_with("c:1: tls: expected on, off, starttls"),
            "{e}"
        );
    }
}
