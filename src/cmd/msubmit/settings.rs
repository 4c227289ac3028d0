//! msubmit's settings: sendmail's legacy command line rewritten for clap, the account chosen
//! from the configuration, and command-line flags laid over its sending keys into client
//! options (through [`crate::relay::account`], which mrelay shares).
//!
//! Which keys an account has, what they mean and their types are [`crate::account`]'s (msmtp's
//! keys, so an msmtp account block works as it is); what is msubmit's here is which account a
//! message goes through, and the order flag, then key, then default.

use super::Args;
use crate::account::{self, Account, Send};
use crate::aliases::{Aliases, Expanded};
use crate::config::Config;
use crate::exit::{Code, Error, Result};
use crate::relay::{
    self,
    account::{Login, Overrides, Server, usage_error},
};
use std::ffi::OsString;

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

/// Lay the flags over the account's sending keys and build the client options.
pub fn server(
    args: &Args,
    cfg: &Config,
    account: Option<String>,
    trace: Option<crate::smtp::client::Trace>,
) -> Result<Server> {
    relay::account::server(cfg, account, &overrides(args), trace)
}

/// Where the server of `account` with the flags `args` is, as `host:port`, without
/// contacting it or running a password command (for `--list`).
pub fn address(args: &Args, cfg: &Config, account: Option<&str>) -> Result<String> {
    relay::account::address(cfg, account, &overrides(args))
}

/// [`server`] without the login's password revealed (its command is not run): the server,
/// its options without credentials, and the login apart (`--pretend` shows it,
/// `--serverinfo` does not log in).
pub fn unrevealed(
    args: &Args,
    cfg: &Config,
    account: Option<String>,
    trace: Option<crate::smtp::client::Trace>,
) -> Result<(Server, Option<Login>)> {
    relay::account::unrevealed(cfg, account, &overrides(args), trace)
}

/// msubmit's flags that override an account's sending keys.
fn overrides(args: &Args) -> Overrides {
    Overrides {
        host: args.host.clone(),
        port: args.port,
        tls: args.tls.clone(),
        ca_file: args.ca_file.clone(),
        fingerprint: args.fingerprint.clone(),
        tls_server_name: args.tls_server_name.clone(),
        user: args.user.clone(),
        password_command: args.password_command.clone(),
        auth: args.auth.clone(),
        helo: args.helo.clone(),
        tls_cert_file: args.tls_cert_file.clone(),
        tls_key_file: args.tls_key_file.clone(),
        source_ip: args.source_ip.clone(),
        proxy_host: args.proxy_host.clone(),
        proxy_port: args.proxy_port,
        timeout: args.timeout,
        log: args.log.clone(),
        syslog: args.syslog,
        queue_on_failure: args.queue_on_failure,
    }
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
