//! mrelay: the relay step of a mail system, sendmail's command line on the queue: a message
//! on stdin is queued (route mx) and tried at once; `-q` runs the queue, `--daemon` keeps
//! running it; `--list`, `--flush`, `--hold`, `--release`, `--delete` manage it.
//!
//! Design: the tool is thin. Where mail goes and what becomes of each recipient is the
//! library's [`crate::relay`] (routes, DNS MX, SMTP, local routes, bounces), run by the
//! queue's one runner ([`crate::store::queue`]); this module reads the flags and the
//! configuration into [`Settings`], prints the relay's log lines on stderr, and exits.
//! A message from stdin is durable in the queue before anything is tried, so the exit status
//! is 0 once it is queued whatever the attempt then does (every recipient delivered, bounced
//! or queued for later); 75 only when it could not even be queued.

mod check;
mod daemon;
mod list;
mod log;

use crate::config::Config;
use crate::docs::Page;
use crate::envelope::{Body, Envelope};
use crate::exit::{Code, Error, Result};
use crate::message::buffer;
use crate::relay::{Relay, Settings};
use crate::run;
use crate::smtp::client::{Direction, Trace};
use crate::store::queue::{self, Queue, Route, Schedule, maildrop};
use clap::{ArgAction, CommandFactory, Parser};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Relay mail: queue it, send it to the recipients' mail exchangers, retry, bounce.
///
/// mrelay is the step between a mail system's submission and the recipients' servers: it
/// looks each recipient's domain up in the DNS (MX, RFC 5321 section 5.1) or follows the
/// configured routes, sends over SMTP with opportunistic STARTTLS, retries what fails for
/// now and returns what fails for good to the sender as a delivery status notification. With
/// mreceive(1) it makes a complete MTA; it also drains the queue that msubmit --queue and
/// mreceive's submission role fill. Given recipients, it reads a message on standard input
/// as sendmail(8) does, queues it durably and tries it at once.
#[derive(Parser, Debug, Default)]
#[command(
    name = "mrelay",
    version,
    // -V is sendmail's ENVID.
    disable_version_flag = true,
    args_override_self = true,
    about = "relay mail to the recipients' mail exchangers, with a queue, retries and bounces"
)]
pub struct Args {
    /// Recipient addresses of the message on standard input (commas also separate)
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Envelope sender address; <> or an empty one for the null sender [default: the login
    /// name at this host's name]
    #[arg(
        short = 'f',
        short_alias = 'r',
        value_name = "SENDER",
        allow_hyphen_values = true
    )]
    pub sender: Option<String>,

    /// DSN: when the sender wants a report (never, or a list of success, failure, delay)
    #[arg(short = 'N', value_name = "NOTIFY")]
    pub notify: Option<String>,

    /// DSN: return the full message or only its headers in a report (full, hdrs)
    #[arg(short = 'R', value_name = "RET")]
    pub ret: Option<String>,

    /// DSN: envelope identifier for reports
    #[arg(short = 'V', value_name = "ENVID")]
    pub envid: Option<String>,

    /// Accepted and ignored (also -oi), for sendmail's callers: the message always ends at
    /// the end of input
    #[arg(short = 'i')]
    pub ignore_dots: bool,

    /// Queue the message without trying it (sendmail's -odq)
    #[arg(long, requires = "recipients")]
    pub queue_only: bool,

    /// Run the queue once: every entry that is due (for cron)
    #[arg(short = 'q', long, conflicts_with_all = ["recipients", "daemon", "list", "flush"])]
    pub queue_run: bool,

    /// Run the queue continuously, new entries at once, until SIGTERM
    #[arg(long, conflicts_with_all = ["recipients", "list", "flush"])]
    pub daemon: bool,

    /// List the queue (mailq): each entry, its recipients and what became of them
    #[arg(long, conflicts_with_all = ["recipients", "flush"])]
    pub list: bool,

    /// With --list: one JSON array, for scripts
    #[arg(long, requires = "list")]
    pub json: bool,

    /// Try every waiting entry now, due or not, or only entry ID
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "", conflicts_with = "recipients")]
    pub flush: Option<String>,

    /// Delete entry ID from the queue, for good (no report is sent)
    #[arg(long, value_name = "ID", conflicts_with_all = ["recipients", "hold", "release"])]
    pub delete: Option<String>,

    /// Put entry ID on hold: it is never tried until released
    #[arg(long, value_name = "ID", conflicts_with_all = ["recipients", "release"])]
    pub hold: Option<String>,

    /// Release entry ID from hold
    #[arg(long, value_name = "ID", conflicts_with = "recipients")]
    pub release: Option<String>,

    /// Print what would happen to mail for DOMAIN: its MX hosts, DNSSEC status, TLSA
    /// records, MTA-STS policy and the TLS each host requires; nothing is sent
    #[arg(long, value_name = "DOMAIN", conflicts_with_all = ["recipients", "queue_run", "daemon", "list", "flush"])]
    pub check: Option<String>,

    /// Sign mail from DOMAIN with the PEM key in KEYFILE, published at
    /// SELECTOR._domainkey.DOMAIN (DKIM, RFC 6376; repeatable; added to the configuration's
    /// dkim lines)
    #[arg(long, value_name = "DOMAIN:SELECTOR:KEYFILE")]
    pub dkim: Vec<String>,

    /// Print the DNS TXT record that publishes KEYFILE's public key for DOMAIN, first
    /// creating an Ed25519 key there when the file does not exist; nothing is sent
    #[arg(long, value_name = "DOMAIN:SELECTOR:KEYFILE", conflicts_with_all = ["recipients", "queue_run", "daemon", "list", "flush", "check"])]
    pub dkim_keygen: Option<String>,

    /// Write the TLS-RPT reports (RFC 8460 JSON, one line per recipient domain) of DATE
    /// (YYYY-MM-DD, UTC) [default: yesterday]; nothing is sent
    #[arg(long, value_name = "DATE", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["recipients", "queue_run", "daemon", "list", "flush", "check"])]
    pub tls_report: Option<String>,

    /// With --tls-report: queue each report to the mailto: addresses of its domain's
    /// _smtp._tls TXT record (RFC 8460 section 3) instead of writing it
    #[arg(long, requires = "tls_report")]
    pub send: bool,

    /// The queue directory [default: queue_dir in the configuration, else
    /// /var/spool/mailpipe/queue for root, ~/.local/share/mailpipe/queue for others]
    #[arg(long, value_name = "DIR")]
    pub queue_dir: Option<PathBuf>,

    /// Read configuration from FILE only [default: /etc/mailpipe/config, then
    /// ~/.config/mailpipe/config]
    #[arg(short = 'C', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// This host's name, for EHLO, reports and the MX loop check (repeatable: the others are
    /// more names of this host) [default: relay_hostname, else this host's FQDN]
    #[arg(long = "hostname", value_name = "NAME", value_delimiter = ',')]
    pub hostnames: Vec<String>,

    /// Ask this DNS server only (split horizon, tests) [default: the nameservers of
    /// /etc/resolv.conf]
    #[arg(long, value_name = "ADDR:PORT")]
    pub dns_server: Option<SocketAddr>,

    /// Connect to every mail exchanger on this port (and to route hosts without one)
    /// [default: 25]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub mx_port: Option<u16>,

    /// Report a recipient still waiting TIME after arrival to the sender as delayed, once
    /// (seconds, or a number with s, m, h or d; 0: never) [default: relay_delay_warning,
    /// else 0]
    #[arg(long, value_name = "TIME", value_parser = crate::relay::routes::parse_duration)]
    pub delay_warning: Option<std::time::Duration>,

    /// Allow mail exchangers and address literals in loopback and private ranges (tests,
    /// split horizon)
    #[arg(long)]
    pub allow_private_targets: bool,

    /// Log to syslog (facility mail) instead of standard error
    #[arg(long)]
    pub syslog: bool,

    /// The syslog socket (implies --syslog) [default: /dev/log]
    #[arg(long, value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,

    /// Print the SMTP dialogue on standard error
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Print version
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// The binary's entry point: sendmail's `-oi` and `-odq` rewritten, then parsed and run.
pub fn main() -> std::process::ExitCode {
    let args = std::env::args_os().map(|a| match a.to_str() {
        Some("-oi") => "-i".into(),
        Some("-odq") => "--queue-only".into(),
        _ => a,
    });
    run::main_from("mrelay", args.collect::<Vec<_>>(), run)
}

/// Run mrelay.
pub fn run(args: Args) -> Result<()> {
    let cfg = crate::account::load(args.config.as_deref())?;
    let mut settings = settings(&args, &cfg)?;
    let dir = queue_dir(&args, &cfg)?;
    // RFC 8461 §5.1: the MTA-STS policies seen, kept beside the queue so a restart keeps them.
    settings.sts.cache = Some(dir.join("mta-sts"));
    // RFC 8460: the TLS results of each day, beside the queue.
    settings.tlsrpt = Some(dir.join("tls-rpt"));
    if let Some(date) = &args.tls_report {
        return tls_report(&settings, date, args.send.then_some(dir.as_path()));
    }
    if let Some(domain) = &args.check {
        return check::run(&settings, domain);
    }
    if let Some(spec) = &args.dkim_keygen {
        return dkim_keygen(spec);
    }
    let syslog = match (&args.syslog_socket, args.syslog) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(crate::log::SYSLOG_SOCKET.into()),
        (None, false) => None,
    };
    let logger = log::Logger::new(syslog);
    if !args.recipients.is_empty() {
        return submit(&args, settings, &dir, &logger);
    }
    let q = Queue::open(&dir)?;
    if args.list {
        return list::list(&q, &settings, args.json);
    }
    if let Some(id) = &args.hold {
        return q.hold(id);
    }
    if let Some(id) = &args.release {
        return q.release(id);
    }
    if let Some(id) = &args.delete {
        return q.delete(id);
    }
    if args.daemon || args.queue_run || args.flush.is_some() {
        settings.load_dkim()?;
    }
    if args.daemon {
        return daemon::run(&q, settings, &logger);
    }
    let mut schedule = Schedule::new(queue::now(), settings.retry);
    if let Some(id) = &args.flush {
        schedule.force = true;
        schedule.only = (!id.is_empty()).then(|| id.clone());
        if let Some(id) = &schedule.only
            && !q.list()?.0.iter().any(|e| e.id == *id)
        {
            return Err(Error::new(
                Code::NoInput,
                format!("entry {id}"),
                "not waiting in the queue",
            ));
        }
    } else if !args.queue_run {
        return Err(Error::new(
            Code::Usage,
            "nothing to do",
            "give recipients (a message on stdin), -q, --daemon, --list, --flush, --hold, \
             --release or --delete",
        ));
    }
    run_queue(&q, settings, &schedule, &logger)
}

/// The relay's settings: the configuration's keys, the flags over them.
fn settings(args: &Args, cfg: &Config) -> Result<Settings> {
    let mut s = Settings::from_config(cfg)?;
    if !args.hostnames.is_empty() {
        s.hostnames = args.hostnames.clone();
    }
    if s.hostnames.is_empty() {
        s.hostnames = vec![crate::message::stamp::fqdn()];
    }
    for name in &s.hostnames {
        crate::account::ehlo_name(name)
            .map_err(|why| crate::relay::account::usage_error("--hostname", name, why))?;
    }
    s.dns.server = args.dns_server;
    if let Some(p) = args.mx_port {
        s.mx_port = p;
    }
    s.allow_private = args.allow_private_targets;
    s.sts.allow_private = args.allow_private_targets;
    s.sts.fetch.trust.ca_file = s.tls_trust_file.clone();
    s.sts.fetch.timeout = s.timeouts.connect;
    if let Some(d) = args.delay_warning {
        s.delay_warning = Some(d).filter(|d| !d.is_zero());
    }
    s.trace = trace(args.verbose);
    s.dkim_specs
        .0
        .extend(args.dkim.iter().map(|d| (d.clone(), "--dkim".to_string())));
    Ok(s)
}

/// `--tls-report`: the day's reports on stdout, a JSON document a line; with `--send`, into
/// the queue at `send` for each domain's rua instead (a domain without one is skipped, a
/// DNS failure named and the others sent).
fn tls_report(settings: &Settings, date: &str, send: Option<&std::path::Path>) -> Result<()> {
    let date = match date.is_empty() {
        true => crate::relay::tlsrpt::day(queue::now().saturating_sub(86400)),
        false => date.to_string(),
    };
    let Some(dir) = &settings.tlsrpt else {
        return Ok(());
    };
    let reports =
        crate::relay::tlsrpt::reports(dir, &date, settings.hostname(), &settings.postmaster())?;
    let Some(queue_dir) = send else {
        let mut out = std::io::stdout().lock();
        for (_, json) in reports {
            writeln!(out, "{json}").map_err(|e| Error::io(Code::IoErr, "stdout", e))?;
        }
        return Ok(());
    };
    use crate::net::dns::Lookup;
    let dns = crate::net::dns::Resolver::new(&settings.dns)?;
    let q = Queue::open(queue_dir)?;
    let mut failed = None;
    for (domain, json) in reports {
        let rua = match dns.txt(&format!("_smtp._tls.{domain}")) {
            Ok(t) => crate::relay::tlsrpt::rua(&t),
            Err(f) => {
                let e = Error::new(Code::TempFail, format!("_smtp._tls.{domain}"), f.text());
                run::warn(&e);
                failed = Some(e);
                continue;
            }
        };
        if rua.is_empty() {
            continue;
        }
        let host = settings.hostname();
        let msg = crate::relay::tlsrpt::message(&domain, host, &date, &json, &rua);
        // The null sender: a report that cannot be delivered is not reported back.
        let queued = queue::Queued {
            route: Route::Mx,
            envelope: Envelope {
                size: Some(msg.len() as u64),
                ..Envelope::new("", rua)
            },
            queued: queue::now(),
        };
        q.store(&queued, |w| w.write_all(&msg))?;
    }
    failed.map_or(Ok(()), Err)
}

/// `--dkim-keygen`: the key made if missing, its record printed.
fn dkim_keygen(spec: &str) -> Result<()> {
    let (_, _, file) = crate::message::dkim::parse_spec(spec)
        .map_err(|why| Error::new(Code::Usage, "--dkim-keygen", why))?;
    if !file.exists() {
        crate::message::dkim::keygen(&file)?;
    }
    let signer = crate::message::dkim::Signer::load(spec, &[], "--dkim-keygen")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", signer.record()).map_err(|e| Error::io(Code::IoErr, "stdout", e))
}

/// The queue directory: the flag, the configuration's `queue_dir`, else the system queue
/// for root and the user's own for others (msubmit's).
fn queue_dir(args: &Args, cfg: &Config) -> Result<PathBuf> {
    if let Some(d) = args.queue_dir.clone() {
        return Ok(d);
    }
    if let Some(d) = cfg.get("queue_dir") {
        return Ok(crate::config::expand_tilde(d));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from(SYSTEM_QUEUE));
    }
    queue::default_dir().ok_or_else(|| {
        Error::new(
            Code::Config,
            "no queue directory",
            "give --queue-dir, or set HOME",
        )
    })
}

/// The system queue, root's default.
const SYSTEM_QUEUE: &str = "/var/spool/mailpipe/queue";

fn trace(verbose: bool) -> Option<Trace> {
    verbose.then(|| -> Trace {
        Arc::new(|dir, line| {
            let arrow = if dir == Direction::Sent { "-->" } else { "<--" };
            run::warn(format_args!("{arrow} {}", line.escape_debug()));
        })
    })
}

/// Run the queue once as `schedule` says; the exit status says whether the queue could be
/// read whole, not what became of the mail (that is in the log and the queue).
fn run_queue(
    q: &Queue,
    settings: Settings,
    schedule: &Schedule,
    logger: &log::Logger,
) -> Result<()> {
    pickup(q, &settings, logger);
    let log = |l: &crate::relay::Line| logger.line(l);
    let report = Relay::run_parallel(&settings, q, schedule, &log, &|w| run::warn(w), &|| false)?;
    for e in &report.unreadable {
        run::warn(e);
    }
    match report.unreadable.first() {
        None => Ok(()),
        Some(e) => Err(Error::new(
            e.code(),
            "queue run",
            format!("{} entries cannot be read", report.unreadable.len()),
        )),
    }
}

/// Move what users dropped into the maildrop beside the queue into it (only when the
/// maildrop is ours: the service's queue run), a log line for each file.
pub(crate) fn pickup(q: &Queue, settings: &Settings, logger: &log::Logger) {
    let Some(dir) = maildrop::beside(q.dir()) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let ours = std::fs::symlink_metadata(&dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == unsafe { libc::geteuid() });
    if !ours {
        return;
    }
    let check = |a: &str| crate::smtp::command::check_mailbox(a).map_err(|e| e.to_string());
    let limit = settings.maildrop_timeout;
    let picked = match maildrop::pickup(q, &dir, settings.hostname(), &check, limit) {
        Ok(p) => p,
        Err(e) => return run::warn(e),
    };
    for p in picked {
        use crate::log::{Severity, quote};
        match p {
            maildrop::Picked::Queued { name, id, uid } => logger.text(
                Severity::Info,
                &format!("{id}: pickup uid={uid} maildrop={}", quote(&name)),
            ),
            maildrop::Picked::Abandoned { name, uid, age } => logger.text(
                Severity::Warning,
                &format!(
                    "pickup maildrop={} uid={uid} status=removed reason={}",
                    quote(&name),
                    quote(&format!(
                        "incomplete and not written for {age} s: its writer died"
                    ))
                ),
            ),
            maildrop::Picked::Rejected { name, why } => logger.text(
                Severity::Warning,
                &format!(
                    "pickup maildrop={} status=rejected reason={}",
                    quote(&name),
                    quote(&why)
                ),
            ),
        }
    }
}

/// mdrop, installed beside mrelay.
fn mdrop() -> Result<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("mdrop")))
        .ok_or_else(|| {
            Error::new(
                Code::Software,
                "mdrop",
                "cannot find mrelay's own directory",
            )
        })
}

/// True when this process may not write `dir` (access(2) with the real ids: mrelay is
/// never setuid).
fn cannot_write(dir: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) != 0 }
}

/// Queue the message on stdin for the recipients given, then try it (unless
/// `--queue-only`). 0 once it is queued; the attempt's outcome is in the log.
fn submit(
    args: &Args,
    settings: Settings,
    dir: &std::path::Path,
    logger: &log::Logger,
) -> Result<()> {
    let mut msg = buffer::read_for_delivery(&mut std::io::stdin().lock(), None)
        .map_err(|e| Error::new(Code::TempFail, "read message", e.why()))?;
    let env = envelope(args, &settings, &mut msg)?;
    let queued = queue::Queued {
        route: Route::Mx,
        envelope: env,
        queued: queue::now(),
    };
    // The system queue, which this user may not write: through mdrop into the maildrop,
    // for the service's next queue run (its daemon picks it up at once).
    if let Some(drop_dir) = maildrop::beside(dir)
        && dir.is_dir()
        && cannot_write(dir)
        && drop_dir.is_dir()
    {
        maildrop::hand_to(&mdrop()?, &drop_dir, &queued, |w| msg.copy_to(w))?;
        if args.verbose {
            run::warn(format_args!("dropped into {}", drop_dir.display()));
        }
        return Ok(());
    }
    let mut settings = settings;
    if !args.queue_only {
        // Before the message is queued: a key that cannot be read is the caller's to fix now.
        settings.load_dkim()?;
    }
    let q = Queue::open(dir)?;
    let id = q.store(&queued, |w| msg.copy_to(w))?;
    if args.verbose {
        run::warn(format_args!("queued as {id} in {}", q.dir().display()));
    }
    if args.queue_only {
        return Ok(());
    }
    let mut schedule = Schedule::new(queue::now(), settings.retry);
    schedule.only = Some(id);
    // Queued: whatever the attempt does, the message is safe, and the exit status says so.
    let mut relay = Relay::new(settings, &q, |l| logger.line(l), |w| run::warn(w));
    if let Err(e) = relay.run(&schedule, &|| false) {
        run::warn(format_args!("{e} (the message stays queued)"));
    }
    Ok(())
}

/// The envelope of the message on stdin: the sender, the recipients, the DSN parameters,
/// its body type and size.
fn envelope(args: &Args, settings: &Settings, msg: &mut buffer::Buffer) -> Result<Envelope> {
    let host = settings.hostname();
    let sender = match args.sender.as_deref().map(str::trim) {
        Some("<>" | "") => String::new(),
        Some(s) => address("sender", s, host)?,
        None => {
            let user = ["LOGNAME", "USER"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
                .unwrap_or_else(|| "root".into());
            address("sender", &user, host)?
        }
    };
    let mut rcpts: Vec<String> = Vec::new();
    for r in args.recipients.iter().flat_map(|r| r.split(',')) {
        let r = r.trim();
        if r.is_empty() {
            continue;
        }
        let r = address("recipient", r, host)?;
        if !rcpts.iter().any(|x| x.eq_ignore_ascii_case(&r)) {
            rcpts.push(r);
        }
    }
    if rcpts.is_empty() {
        return Err(Error::new(Code::Usage, "no recipients", "give addresses"));
    }
    let mut env = Envelope::new(sender, rcpts);
    let notify = match &args.notify {
        Some(n) => crate::account::dsn_notify(n)
            .map_err(|why| crate::relay::account::usage_error("-N", n, why))?,
        None => None,
    };
    for r in &mut env.rcpts {
        r.notify = notify.clone();
    }
    env.ret = match &args.ret {
        Some(r) => crate::account::dsn_return(r)
            .map_err(|why| crate::relay::account::usage_error("-R", r, why))?,
        None => None,
    };
    if let Some(id) = &args.envid {
        if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::new(
                Code::Usage,
                format!("-V {id:?}"),
                "an ENVID is 1 to 100 printable ASCII characters (RFC 3461 4.4)",
            ));
        }
        env.envid = Some(id.clone());
    }
    env.body = Body::of(eight_bit(msg)?);
    env.size = Some(msg.len());
    Ok(env)
}

/// An address from the command line: `Name <addr>` and bare `addr` as sendmail takes them,
/// checked (RFC 5321 §4.1.2); a login name alone gets this host's name (sendmail's and
/// Postfix's `$myorigin`).
fn address(kind: &str, given: &str, host: &str) -> Result<String> {
    if given.chars().any(char::is_control) {
        return Err(Error::new(
            Code::Usage,
            format!("{kind} {given:?}"),
            "contains a control character",
        ));
    }
    let a = match (given.rfind('<'), given.ends_with('>')) {
        (Some(i), true) => &given[i + 1..given.len() - 1],
        _ => given,
    };
    if a.starts_with('-') {
        return Err(Error::new(
            Code::Usage,
            format!("{kind} {a:?}"),
            "looks like an option, not an address",
        ));
    }
    let a = match a.contains('@') {
        false if !a.eq_ignore_ascii_case("postmaster") => format!("{a}@{host}"),
        _ => a.to_string(),
    };
    crate::smtp::command::check_mailbox(&a)
        .map_err(|e| Error::new(Code::Usage, format!("{kind} {a:?}"), e))?;
    Ok(a)
}

/// True when the message has octets over 127 (it needs 8BITMIME, RFC 6152).
fn eight_bit(msg: &mut buffer::Buffer) -> Result<bool> {
    let mut msg = msg
        .reader()
        .map_err(|e| Error::io(Code::TempFail, "read message", e))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = msg
            .read(&mut buf)
            .map_err(|e| Error::io(Code::TempFail, "read message", e))?;
        if n == 0 {
            return Ok(false);
        }
        if buf[..n].iter().any(|b| *b > 127) {
            return Ok(true);
        }
    }
}

/// mrelay's documentation.
pub fn page() -> Page {
    Page {
        name: "mrelay",
        command: Args::command(),
        description: DESCRIPTION,
        sections: SECTIONS,
    }
}

const DESCRIPTION: &str = include_str!("description.roff");
const SECTIONS: &str = include_str!("sections.roff");
