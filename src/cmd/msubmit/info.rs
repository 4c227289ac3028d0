//! What msubmit would do, and what the server offers, without sending: `--pretend` (msmtp's
//! `-P`: the settings a message would go out with, after the flags are laid over the
//! account; the password's source, never the password, whose command is not even run) and
//! `--serverinfo` (msmtp's `-S`: connect and say EHLO as a submission would, then print the
//! greeting, the TLS session and the server's certificate, and what the server offers;
//! nothing is sent and no login is tried).
//!
//! Both print `key = value` lines, msmtp's layout, on standard output; a configuration
//! error is the same error (78) a submission would meet, so `--pretend` checks a file.

use super::{Args, local_address, queue_dir, settings, trace};
use crate::account::{self, Account, Password};
use crate::exit::{Code, Error, Result};
use crate::net::tls::{Level, Start, fingerprint_hex};
use crate::relay::account::connect;
use crate::smtp::client::Session;
use std::fmt::Write as _;
use std::io::Write as _;

/// `--pretend`: the effective settings, as `key = value` lines.
pub(super) fn pretend(args: &Args) -> Result<()> {
    let cfg = account::load(args.config.as_deref())?;
    let name = settings::choose_account(&cfg, args.account.as_deref(), args.sender.as_deref())?;
    let acct = Account::resolve(&cfg, name.as_deref())?;
    let send = acct.send()?;
    let (server, login) = settings::unrevealed(args, &cfg, name.clone(), None)?;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key} = {value}");
    };
    let unset = "(not set)";
    let files: Vec<String> = cfg.files.iter().map(|f| f.display().to_string()).collect();
    line(
        "configuration",
        &match files.is_empty() {
            true => "(no file)".to_string(),
            false => files.join(", "),
        },
    );
    let chosen = match (&name, &args.account, &args.sender) {
        (None, _, _) => "(none: the defaults and the flags)".to_string(),
        (Some(n), Some(_), _) => format!("{n} (-a)"),
        (Some(n), None, Some(s))
            if acct
                .from
                .as_deref()
                .is_some_and(|f| f.eq_ignore_ascii_case(s)) =>
        {
            format!("{n} (its from is the sender)")
        }
        (Some(n), None, _) => format!("{n} (the account named default)"),
    };
    line("account", &chosen);
    line("host", &server.host);
    line("port", &server.port.to_string());
    let o = &server.options;
    let start = match o.tls.start {
        Start::StartTls => "STARTTLS",
        Start::Implicit => "implicit TLS",
    };
    let level = match o.tls.level {
        Level::None => "none: clear text".to_string(),
        Level::May => format!("{start} if offered, else clear text; the certificate not checked"),
        Level::Encrypt => format!("{start}, required; the certificate not checked"),
        Level::Verify => format!("{start}, required; the certificate verified"),
    };
    line("tls", &format!("{} ({level})", o.tls.name()));
    let verify = o.tls.level == Level::Verify;
    let trust = match (&o.trust.fingerprint, &o.trust.ca_file) {
        _ if !verify => "(not checked at this level)".to_string(),
        (Some(fp), _) => format!("only the certificate with SHA-256 {}", hex(fp)),
        (None, Some(f)) => f.display().to_string(),
        (None, None) => "(the built-in Mozilla roots)".to_string(),
    };
    line("tls_trust_file", &trust);
    line(
        "tls_host_override",
        o.trust.server_name.as_deref().unwrap_or(unset),
    );
    let cert = o.trust.client_cert.as_ref();
    line(
        "tls_cert_file",
        &cert.map_or(unset.into(), |c| c.cert.display().to_string()),
    );
    line(
        "tls_key_file",
        &cert.map_or(unset.into(), |c| c.key.display().to_string()),
    );
    line(
        "source_ip",
        &o.source.map_or(unset.into(), |s| s.to_string()),
    );
    let proxy = server.proxy.as_ref().map_or(unset.into(), |p| {
        let user = p.login.as_ref().map_or(String::new(), |(u, _)| {
            format!(" (user {u}, its password not shown)")
        });
        format!("{}:{}{user}", p.host, p.port)
    });
    line("proxy", &proxy);
    line("domain", &o.helo);
    let timeout = match args.timeout.or(send.timeout) {
        Some(t) => format!("{} s", t.max(1)),
        None => "RFC 5321's, 2 to 10 minutes a step".to_string(),
    };
    line("timeout", &timeout);
    let auth = match &login {
        None => "off".to_string(),
        Some(l) => match l.mechanism {
            Some(m) => m.name().to_string(),
            None => "on (PLAIN, else LOGIN)".to_string(),
        },
    };
    line("auth", &auth);
    line("user", login.as_ref().map_or(unset, |l| l.user.as_str()));
    let password = match &login {
        None => unset.to_string(),
        Some(l) => match (&l.password, l.password_flag) {
            (Password::Command(c), true) => format!("from --password-command {c:?} (not run)"),
            (Password::Command(c), false) => format!("from passwordeval {c:?} (not run)"),
            (Password::Text(_), _) => "in the configuration file (not shown)".to_string(),
        },
    };
    line("password", &password);
    // Without -f or the account's from, the message's From: decides, which is not read
    // here; its fallback gives the recipients their domain.
    let (from, sender) = match args.sender.as_deref().or(acct.from.as_deref()) {
        Some(f) => (f.to_string(), f.to_string()),
        None => {
            let local = local_address();
            (
                format!("(the message's From: address, else {local})"),
                local,
            )
        }
    };
    line("from", &from);
    let aliases = args
        .aliases
        .clone()
        .or(send.aliases.clone())
        .filter(|p| !p.as_os_str().is_empty());
    line(
        "aliases",
        &aliases
            .as_ref()
            .map_or(unset.into(), |p| p.display().to_string()),
    );
    let dsn =
        |v: Result<Option<String>>| -> Result<String> { Ok(v?.unwrap_or_else(|| unset.into())) };
    line(
        "dsn_notify",
        &dsn(settings::dsn_notify(&args.dsn_notify, &send))?,
    );
    line(
        "dsn_return",
        &dsn(settings::dsn_return(&args.dsn_return, &send))?,
    );
    line(
        "logfile",
        &server
            .log
            .as_ref()
            .map_or(unset.into(), |p| p.display().to_string()),
    );
    line("syslog", if server.syslog { "on" } else { "off" });
    line(
        "queue_on_failure",
        if server.queue_on_failure { "on" } else { "off" },
    );
    line(
        "queue_dir",
        &queue_dir(args, &cfg).map_or(unset.into(), |d| d.display().to_string()),
    );
    // The recipients of the arguments as they would be sent: aliases applied, completed
    // with the sender's domain. Those of -t are in the message, which is not read.
    let table = match &aliases {
        Some(p) => Some(crate::aliases::Aliases::read(p)?),
        None => None,
    };
    let domain = sender.rsplit_once('@').map(|(_, d)| d.to_string());
    let mut rcpts = Vec::new();
    for r in args
        .recipients
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
    {
        if !r.is_empty() {
            rcpts.extend(settings::recipients(
                r,
                table.as_ref(),
                domain.as_deref(),
                Code::Usage,
            )?);
        }
    }
    let mut said = rcpts.join(", ");
    if args.read_recipients {
        said += if rcpts.is_empty() { "" } else { ", " };
        said += "(with -t, those of the message's header, not read here)";
    }
    line("recipients", if said.is_empty() { unset } else { &said });
    print(&out)
}

/// `--serverinfo`: connect and say EHLO as a submission would (TLS as set, no login), then
/// print what the server said and offers.
pub(super) fn serverinfo(args: &Args) -> Result<()> {
    let cfg = account::load(args.config.as_deref())?;
    let name = settings::choose_account(&cfg, args.account.as_deref(), args.sender.as_deref())?;
    // The login is left out: its password is not needed, and its command is not run.
    let (server, _login) = settings::unrevealed(args, &cfg, name, trace(args.verbose))?;
    let session = connect(&server)?;
    let text = describe(&server, &session);
    session.quit();
    print(&text)
}

/// The report on a session, msmtp's layout.
fn describe(server: &crate::relay::account::Server, s: &Session) -> String {
    let mut out = String::new();
    let mut w = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let via = server.proxy.as_ref().map_or(String::new(), |p| {
        format!(" (through the SOCKS5 proxy {}:{})", p.host, p.port)
    });
    w(format!(
        "SMTP server at {}, port {}{via}:",
        server.host, server.port
    ));
    for l in &s.greeting().lines {
        w(format!("    {}", l.escape_debug()));
    }
    match s.tls() {
        None => {
            w("TLS:".into());
            let why = match s.tls_failure() {
                Some(e) => format!("    not used: {e}"),
                None if server.options.tls.level == Level::None => "    not used (tls none)".into(),
                None => "    not used: the server offers no STARTTLS".into(),
            };
            w(why);
        }
        Some(t) => {
            w("TLS session:".into());
            let group = t
                .group
                .map_or(String::new(), |g| format!(", key exchange {g}"));
            w(format!(
                "    protocol {}, cipher suite {}{group}",
                t.protocol, t.cipher
            ));
            let how = match server.options.tls.level {
                Level::Verify => "verified",
                _ => "not verified (tls may or encrypt)",
            };
            w(format!("    the certificate {how}"));
            if let Some(own) = t.chain.first() {
                w("TLS certificate:".into());
                match crate::net::x509::summary(own) {
                    Some(c) => {
                        w(format!("    subject: {}", c.subject));
                        w(format!("    issuer: {}", c.issuer));
                        w(format!("    valid from: {}", c.not_before));
                        w(format!("    valid until: {}", c.not_after));
                        if !c.names.is_empty() {
                            w(format!("    names: {}", c.names.join(", ")));
                        }
                    }
                    None => w("    (not an X.509 certificate we can read)".into()),
                }
                w(format!("    SHA-256 fingerprint: {}", fingerprint_hex(own)));
                for (i, c) in t.chain.iter().enumerate().skip(1) {
                    let subject = crate::net::x509::summary(c).map_or("?".into(), |c| c.subject);
                    w(format!("    chain {i}: {subject}"));
                }
            }
        }
    }
    let caps = s.capabilities();
    w("Capabilities:".into());
    let mut cap = |name: String, means: String| {
        w(format!("    {name}:"));
        w(format!("        {means}"));
    };
    match caps.size {
        Some(0) => cap("SIZE".into(), "No maximum message size".into()),
        Some(n) => cap(
            format!("SIZE {n}"),
            format!(
                "Maximum message size is {n} bytes = {:.2} MiB",
                n as f64 / (1024.0 * 1024.0)
            ),
        ),
        None => {}
    }
    let flags = [
        (
            caps.pipelining,
            "PIPELINING",
            "Support for command grouping for faster transmission (RFC 2920)",
        ),
        (
            caps.starttls,
            "STARTTLS",
            "Support for TLS encryption via the STARTTLS command (RFC 3207)",
        ),
        (
            caps.eightbitmime,
            "8BITMIME",
            "Support for 8-bit message bodies (RFC 6152)",
        ),
        (
            caps.smtputf8,
            "SMTPUTF8",
            "Support for addresses and header fields in UTF-8 (RFC 6531)",
        ),
        (
            caps.dsn,
            "DSN",
            "Support for delivery status notifications (RFC 3461)",
        ),
        (
            caps.enhanced_status_codes,
            "ENHANCEDSTATUSCODES",
            "Enhanced status codes in replies (RFC 2034)",
        ),
        (
            caps.chunking,
            "CHUNKING",
            "Support for BDAT, message data in chunks (RFC 3030)",
        ),
    ];
    for (on, name, means) in flags {
        if on {
            cap(name.into(), means.into());
        }
    }
    match caps.auth.is_empty() {
        true => cap("AUTH".into(), "Not offered: no login possible here".into()),
        false => cap(
            "AUTH".into(),
            format!("Supported authentication methods: {}", caps.auth.join(" ")),
        ),
    }
    for other in &caps.other {
        w(format!("    {}", other.escape_debug()));
    }
    if s.is_tls() && server.options.tls.start == Start::StartTls {
        w("This server might advertise more or other properties when not using TLS.".into());
    }
    out
}

/// Colon hex of a pinned digest.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io(Code::IoErr, "stdout", e))
}
