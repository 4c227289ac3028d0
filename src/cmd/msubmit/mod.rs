//! msubmit: hand a message to the user's mail server over SMTP, with sendmail's interface.
//!
//! Design: the message is read whole first (memory, then an unlinked temporary file), its
//! header fixed as Postfix's cleanup would (`message.rs`), the envelope settled (recipients from
//! arguments and, with `-t`, the header), and only then is the server contacted, so nothing is
//! half sent because of a local problem. Recipients are all or nothing: when the server
//! refuses one, no DATA is sent to the others, so fixing the address and sending again
//! duplicates nothing (except past a server's recipient limit: see `deliver`). Exit 0 only
//! after the server's 250 for the message (or after it is durably queued); every doubt is 75,
//! so the caller keeps the mail. A message that was read but could be neither sent nor queued
//! goes to `~/dead.letter` (`dead_letter.rs`), since the caller may no longer have it.
//!
//! The queue ([`crate::store::queue`]) makes msubmit usable offline: `--queue` stores,
//! `--flush` hands the queue to the library's runner with a sender that sends each message
//! as above (all or nothing) over one connection per account, `--list` shows it.
//!
//! `--pretend` and `--serverinfo` (`info.rs`, msmtp's `-P` and `-S`) show the settings and
//! what the server offers, sending nothing.
//!
//! `-bs` (`bs.rs`) takes messages over SMTP on stdin/stdout instead, through mreceive's server
//! session, and sends each the same way (`send_or_queue`), one connection for the session.

mod bs;
mod dead_letter;
mod info;
mod log;
mod message;
mod route;
mod settings;

use crate::account::Account;
use crate::config::Config;
use crate::docs::Page;
use crate::exit::{Code, Error, Result};
use crate::relay::account::{self, connect, deliver};
use crate::run;
use crate::smtp::Reply;
use crate::smtp::client::{Body, Content, Direction, Envelope, Refusal, Session, Trace};
use crate::store::queue::{self, Queue, Route, Status};
use clap::{ArgAction, CommandFactory, Parser};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Submit a message to a mail server over SMTP.
///
/// msubmit reads a message on standard input and submits it to the configured mail server
/// (SMTP submission with STARTTLS or implicit TLS, and SASL AUTH), like msmtp, with the
/// command line of sendmail(8), so cron, git send-email, mutt, mailx and PHP's mail() can use
/// it as /usr/sbin/sendmail.
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "msubmit",
    version,
    disable_version_flag = true,
    // sendmail takes an option twice (`-i -oi`, as callers add theirs to a configured
    // command line); clap would refuse it, so a repeated option overrides itself.
    args_override_self = true,
    about = "submit a message to a mail server over SMTP (sendmail interface)"
)]
pub struct Args {
    /// Recipient addresses (commas also separate)
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Also send to the To, Cc and Bcc addresses of the header (the Resent-To, Resent-Cc
    /// and Resent-Bcc ones when any is present); added to the RECIPIENT arguments
    #[arg(short = 't')]
    pub read_recipients: bool,

    /// Accepted and ignored (also -oi), for sendmail's callers: the message always ends at the
    /// end of input, never at a line holding a single dot
    #[arg(short = 'i')]
    pub ignore_dots: bool,

    /// Envelope sender address (also -r) [default: from in the account, else the From: address]
    #[arg(short = 'f', short_alias = 'r', value_name = "SENDER")]
    pub sender: Option<String>,

    /// Full name for the From: header when the message has none
    #[arg(short = 'F', value_name = "NAME")]
    pub full_name: Option<String>,

    /// Print the SMTP dialogue on standard error (passwords masked)
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// DSN: when the server should report (never, or a list of success, failure, delay)
    #[arg(short = 'N', value_name = "NOTIFY")]
    pub dsn_notify: Option<String>,

    /// DSN: return the full message or only its headers in a report (full, hdrs)
    #[arg(short = 'R', value_name = "RET")]
    pub dsn_return: Option<String>,

    /// DSN: envelope identifier for reports
    #[arg(short = 'V', value_name = "ENVID")]
    pub envid: Option<String>,

    /// Use this account of the configuration [default: by the sender address, else "default"]
    #[arg(short = 'a', long, value_name = "NAME")]
    pub account: Option<String>,

    /// Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]
    #[arg(short = 'C', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Server host name or address
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Server port [default: 587 for starttls, 465 for implicit, 25 for none]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// TLS: how it starts (starttls, implicit) and how strict it is (none, may, encrypt,
    /// verify), one word or a start and a level joined by a comma [default: starttls]
    #[arg(long, value_name = "MODE", value_parser = TlsWords)]
    pub tls: Option<String>,

    /// Trust the CA certificates in this PEM file instead of the built-in roots (a server's
    /// own self-signed certificate too)
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Accept only the server certificate with this SHA-256 fingerprint (hex, colons optional)
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,

    /// Verify the certificate for this name instead of HOST
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// Present this client certificate (PEM, with its chain) when the server asks for one
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// The private key of the client certificate (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// REQUIRETLS (RFC 8689): send only over verified TLS to a server that offers
    /// REQUIRETLS, and ask every later hop for the same; else fail (69)
    #[arg(long)]
    pub requiretls: bool,

    /// Sign the message with DKIM when its From: is at DOMAIN, with the PEM key in KEYFILE
    /// published at SELECTOR._domainkey.DOMAIN (instead of the account's dkim)
    #[arg(long, value_name = "DOMAIN:SELECTOR:KEYFILE")]
    pub dkim: Option<String>,

    /// Replace recipients without a domain by the addresses this aliases file gives them
    /// (msmtp's format; empty: none)
    #[arg(long, value_name = "FILE")]
    pub aliases: Option<PathBuf>,

    /// Connect from this local address (empty: the system's choice)
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<String>,

    /// Connect through this SOCKS5 proxy, which resolves the server's name (empty: directly)
    #[arg(long, value_name = "HOST")]
    pub proxy_host: Option<String>,

    /// The proxy's port [default: 1080]
    #[arg(long, value_name = "PORT")]
    pub proxy_port: Option<u16>,

    /// Log in as USER
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Command whose first output line is the password (or XOAUTH2 token)
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,

    /// AUTH mechanism: on (PLAIN, else LOGIN), plain, login, xoauth2, off
    #[arg(long, value_name = "MECH")]
    pub auth: Option<String>,

    /// Name to give in EHLO [default: domain in the account, else this host's name]
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,

    /// Seconds to wait for the server at each step [default: RFC 5321's, 2 to 10 minutes]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,

    /// Append one key=value line per message to FILE
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Also send the log line to syslog (facility mail)
    #[arg(long)]
    pub syslog: bool,

    /// Store the message in the queue instead of sending it (also -odq)
    #[arg(long, conflicts_with_all = ["flush", "list"])]
    pub queue: bool,

    /// When sending fails temporarily (server unreachable, 4xx), queue the message instead
    /// and exit 0
    #[arg(long, conflicts_with_all = ["queue", "flush", "list"])]
    pub queue_on_failure: bool,

    /// Send every queued message that is due (also -q)
    #[arg(long, conflicts_with = "list")]
    pub flush: bool,

    /// List the queue (also -bp)
    #[arg(long)]
    pub list: bool,

    /// The queue directory [default: queue_dir in the configuration, else ~/.local/share/mailpipe/queue]
    #[arg(long, value_name = "DIR")]
    pub queue_dir: Option<PathBuf>,

    /// Speak SMTP on standard input and output and send each message accepted, as sendmail
    /// -bs does for MUAs such as Alpine (also -bs)
    #[arg(long, conflicts_with_all = ["recipients", "read_recipients", "sender", "flush", "list"])]
    pub smtp_stdio: bool,

    /// Print the settings a message would be sent with (account, server, TLS, login, where
    /// the password comes from but never the password) and the recipients of the arguments
    /// after aliases, then exit without reading or sending anything (msmtp's -P)
    #[arg(short = 'P', long, conflicts_with_all = ["queue", "flush", "list", "smtp_stdio"])]
    pub pretend: bool,

    /// Connect to the server and say EHLO, print its greeting, the TLS session and its
    /// certificate (subject, issuer, validity, SHA-256 fingerprint) and what it offers
    /// (AUTH methods, SIZE, ...), then quit: no login, nothing sent (msmtp's -S)
    #[arg(short = 'S', long, conflicts_with_all = [
        "recipients", "read_recipients", "queue", "queue_on_failure", "flush", "list",
        "smtp_stdio", "pretend",
    ])]
    pub serverinfo: bool,

    /// Print version
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,

    /// A sendmail option we do not support (set by the legacy option rewriting)
    #[arg(long, hide = true, value_name = "OPT")]
    pub refused: Vec<String>,

    /// Rebuild the alias database: newaliases, -bi, -I (set by the legacy option rewriting)
    #[arg(long, hide = true)]
    pub newaliases: bool,
}

/// The binary's entry point: sendmail's options rewritten, then parsed and run. Run as
/// `mailq` or `newaliases` (a link), diagnostics carry that name, as sendmail's do.
pub fn main() -> std::process::ExitCode {
    let name = settings::invoked_as(std::env::args_os().next().as_deref());
    run::main_from(name, settings::legacy_args(std::env::args_os()), run)
}

/// Run msubmit.
pub fn run(args: Args) -> Result<()> {
    // newaliases: msubmit keeps no alias database (an aliases file, like msmtp's, is read as
    // it stands for each message), so there is nothing to rebuild: exit 0 quietly, as
    // Postfix's newaliases does after a rebuild. Whatever else the caller (a package's
    // install script) put on the line changes nothing.
    if args.newaliases {
        return Ok(());
    }
    if let Some(r) = args.refused.first() {
        return Err(settings::refusal(r));
    }
    if args.pretend {
        return info::pretend(&args);
    }
    if args.serverinfo {
        return info::serverinfo(&args);
    }
    if !(args.list || args.flush || args.smtp_stdio) {
        return submit(&args);
    }
    let cfg = crate::account::load(args.config.as_deref())?;
    let queue_dir = || queue_dir(&args, &cfg);
    if args.list {
        return list(&args, &cfg, &queue_dir()?);
    }
    if args.flush {
        return flush(&args, &cfg, &queue_dir()?);
    }
    bs::run(&args, &cfg, &queue_dir)
}

/// The queue directory: the flag, the configuration, else the default. Found only when
/// needed: plain sending must work without HOME (daemons, PHP).
fn queue_dir(args: &Args, cfg: &Config) -> Result<PathBuf> {
    args.queue_dir
        .clone()
        .or_else(|| cfg.get("queue_dir").map(crate::config::expand_tilde))
        .or_else(default_queue_dir)
        .ok_or_else(|| {
            Error::new(
                Code::Config,
                "no queue directory",
                "give --queue-dir, or set HOME",
            )
        })
}

fn default_queue_dir() -> Option<PathBuf> {
    queue::default_dir()
}

fn trace(verbose: bool) -> Option<Trace> {
    verbose.then(|| -> Trace {
        Arc::new(|dir, line| {
            let arrow = if dir == Direction::Sent { "-->" } else { "<--" };
            run::warn(format_args!("{arrow} {}", line.escape_debug()));
        })
    })
}

/// The address of the first mailbox in the From: field.
fn header_from(head: &[u8]) -> Option<String> {
    let block = crate::message::header::block(head);
    let field = crate::message::header::fields(block)
        .into_iter()
        .find(|f| f.is("From"))?;
    let mut line = b"From:".to_vec();
    line.extend_from_slice(field.raw);
    let (h, _) = mailparse::parse_header(&line).ok()?;
    match mailparse::addrparse_header(&h).ok()?.iter().next()? {
        mailparse::MailAddr::Single(s) => Some(s.addr.clone()),
        mailparse::MailAddr::Group(g) => g.addrs.first().map(|s| s.addr.clone()),
    }
}

/// Send the message on stdin now, or store it in the queue (`--queue`, or
/// `--queue-on-failure` after a temporary failure); one that can be neither is saved to
/// `~/dead.letter`, and the exit status stays the failure's.
fn submit(args: &Args) -> Result<()> {
    // Read before anything can fail, the configuration included: after a failure the
    // message must still be there to save (`mcompose --edit | msubmit -t` has removed its
    // draft once the pipe took the message).
    let (mut spool, stats) = message::read(&mut std::io::stdin().lock())?;
    send_message(args, &mut spool, stats).map_err(|e| {
        let sender = (args.sender.clone())
            .or_else(|| header_from(spool.head()))
            .unwrap_or_else(local_address);
        dead_letter::keep(e, &mut spool, &sender)
    })
}

/// Send or queue the message read into `spool`.
fn send_message(
    args: &Args,
    spool: &mut crate::message::buffer::Buffer,
    stats: message::Stats,
) -> Result<()> {
    let cfg = &crate::account::load(args.config.as_deref())?;
    let queue_dir = &|| queue_dir(args, cfg);
    let from_header = header_from(spool.head());
    let hint = args.sender.clone().or_else(|| from_header.clone());
    let acct = account(args, cfg, hint.as_deref())?;
    let sender = match args.sender.as_deref().or(acct.from.as_deref()) {
        Some(s) => s.to_string(),
        None => match from_header {
            Some(f) => f,
            None => local_address(),
        },
    };
    // A bare login name (`-f root`, `-f www-data`) is completed with this host's name, as
    // sendmail and Postfix ($myorigin) do, not refused.
    let sender =
        settings::envelope_address("sender", &sender, Some(&crate::message::stamp::fqdn()))?;
    let domain = sender.rsplit_once('@').map(|(_, d)| d.to_string());
    let resent = crate::message::header::fields(crate::message::header::block(spool.head()))
        .iter()
        .any(|f| f.is("Resent-To") || f.is("Resent-Cc") || f.is("Resent-Bcc"));
    let (mut prepared, header_rcpts) = fix(args, spool, stats, &sender)?;
    sign(args, &acct, &mut prepared)?;
    let mut rcpts: Vec<String> = Vec::new();
    let given = args
        .recipients
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let from_header = if args.read_recipients {
        header_rcpts
    } else {
        Vec::new()
    };
    // A bad argument is the caller's usage (64); a bad address in the header is the
    // message's data (65), as sendmail -t reports it.
    let given = given.map(|r| (r.to_string(), Code::Usage));
    // msmtp's aliases: cron's `root` becomes the addresses the file gives it (the envelope
    // only; To: and Cc: stay as written).
    let aliases = match args.aliases.clone().or(acct.send()?.aliases) {
        Some(path) if !path.as_os_str().is_empty() => Some(crate::aliases::Aliases::read(&path)?),
        _ => None,
    };
    for (r, code) in given.chain(from_header.into_iter().map(|r| (r, Code::DataErr))) {
        for r in settings::recipients(&r, aliases.as_ref(), domain.as_deref(), code)? {
            if !rcpts.iter().any(|x| x.eq_ignore_ascii_case(&r)) {
                rcpts.push(r);
            }
        }
    }
    if rcpts.is_empty() {
        // With -t the message is at fault (65, like an invalid address in its header);
        // without, the command line (64). Postfix's sendmail exits 64 for both: no caller
        // tells the two apart, both are permanent.
        return Err(match (args.read_recipients, resent) {
            (true, false) => Error::new(
                Code::DataErr,
                "no recipients",
                "the message has no To:, Cc: or Bcc: address",
            ),
            (true, true) => Error::new(
                Code::DataErr,
                "no recipients",
                "the message has no Resent-To:, Resent-Cc: or Resent-Bcc: address",
            ),
            (false, _) => Error::new(
                Code::Usage,
                "no recipients",
                "give addresses, or -t to read them from the header",
            ),
        });
    }
    let queued = queue_envelope(args, &acct, sender, rcpts, &prepared)?;
    let mut upstream = Upstream::default();
    let fate = send_or_queue(args, cfg, queue_dir, &queued, &mut prepared, &mut upstream);
    upstream.quit();
    match fate? {
        Fate::Sent(_) => Ok(()),
        // Nothing was delivered (or, after a lost end-of-data reply, maybe it was: then
        // the flush may send it twice, as documented).
        Fate::Queued(id, failure) => {
            if let Some(f) = failure {
                for e in &f.others {
                    run::warn(&e.error);
                }
                run::warn(format_args!(
                    "{}; queued as {id}, send it with --flush",
                    f.chosen.error
                ));
            }
            Ok(())
        }
        Fate::Refused(f) => {
            for e in &f.others {
                run::warn(&e.error);
            }
            Err(f.chosen.error)
        }
    }
}

/// DKIM (RFC 6376): the account's `dkim`, or `--dkim`, signs a message whose From: is at
/// its domain; a key that cannot be read stops the message (78) rather than send it
/// unsigned.
fn sign(args: &Args, acct: &Account, prepared: &mut message::Prepared<'_>) -> Result<()> {
    let send = acct.send()?;
    let (spec, origin) = match (&args.dkim, &send.dkim) {
        (Some(d), _) => (d.clone(), "--dkim".to_string()),
        (None, Some(v)) => (v.text.clone(), v.origin.clone()),
        (None, None) => return Ok(()),
    };
    let headers = (send.dkim_headers.as_deref())
        .map(crate::message::dkim::parse_headers)
        .unwrap_or_default();
    let signer = crate::message::dkim::Signer::load(&spec, &headers, &origin)?;
    prepared.sign(&signer)
}

/// The queue directory, found only when needed.
type QueueDir<'a> = dyn Fn() -> Result<PathBuf> + Sync + 'a;

/// The account for a message: `-a`, else by the sender (or From:) address, else the default.
fn account(args: &Args, cfg: &Config, hint: Option<&str>) -> Result<Account> {
    let name = settings::choose_account(cfg, args.account.as_deref(), hint)?;
    Account::resolve(cfg, name.as_deref())
}

/// Fix the header as Postfix's cleanup does (`message::prepare`) for a message from `sender`.
fn fix<'a>(
    args: &Args,
    spool: &'a mut crate::message::buffer::Buffer,
    stats: message::Stats,
    sender: &str,
) -> Result<(message::Prepared<'a>, Vec<String>)> {
    // The null sender `<>` still needs a From: address.
    // Checked like any sender: $LOGNAME with a line break would otherwise write header
    // fields of its own into the From: we add.
    let author = match sender.is_empty() {
        true => settings::envelope_address("author", &local_address(), None)?,
        false => sender.to_string(),
    };
    let fixes = message::Fixes {
        sender: &author,
        full_name: args.full_name.as_deref(),
    };
    message::prepare(spool, stats, &fixes)
}

/// The envelope as queued (and sent): the DSN settings of the flags or the account.
fn queue_envelope(
    args: &Args,
    acct: &Account,
    from: String,
    rcpts: Vec<String>,
    prepared: &message::Prepared<'_>,
) -> Result<queue::Queued> {
    let send = acct.send()?;
    let notify = settings::dsn_notify(&args.dsn_notify, &send)?;
    let mut envelope = Envelope::new(from, rcpts);
    for r in &mut envelope.rcpts {
        r.notify = notify.clone();
    }
    envelope.ret = settings::dsn_return(&args.dsn_return, &send)?;
    envelope.envid = args.envid.clone();
    envelope.requiretls = args.requiretls;
    envelope.body = Body::of(prepared.eight_bit());
    envelope.size = Some(prepared.size_estimate());
    Ok(queue::Queued {
        route: route::record(args, acct.name.clone()),
        envelope,
        queued: queue::now(),
    })
}

/// The account an entry goes through (`None`: the defaults and the command line). msubmit
/// queues only account routes; [`Flush`] leaves the others alone.
fn route_account(queued: &queue::Queued) -> Option<String> {
    match &queued.route {
        Route::Account { name, .. } => name.clone(),
        _ => None,
    }
}

/// What became of a message that was read and prepared.
enum Fate {
    /// The server accepted it for every recipient: its reply to the end of data.
    Sent(Option<Reply>),
    /// Stored in the queue under this id (after this temporary failure, with
    /// `--queue-on-failure`).
    Queued(String, Option<Failure>),
    /// Not sent, or not to every recipient.
    Refused(Failure),
}

/// Why a message was not sent: the refusal that decides, and the others.
struct Failure {
    chosen: Refusal,
    others: Vec<Refusal>,
}

/// Send the message over `upstream`, or store it in the queue (`--queue`, or
/// `--queue-on-failure` after a temporary failure). `Err` is a local problem (the
/// configuration, the queue), before or instead of sending.
fn send_or_queue(
    args: &Args,
    cfg: &Config,
    queue_dir: &QueueDir,
    queued: &queue::Queued,
    prepared: &mut message::Prepared<'_>,
    upstream: &mut Upstream,
) -> Result<Fate> {
    let store = |prepared: &mut message::Prepared<'_>| -> Result<String> {
        let q = Queue::open(&queue_dir()?)?;
        let id = q.store(queued, |w| prepared.write_to(w))?;
        if args.verbose {
            run::warn(format_args!("queued as {id} in {}", q.dir().display()));
        }
        Ok(id)
    };
    if args.queue {
        return store(prepared).map(|id| Fate::Queued(id, None));
    }
    let server = settings::server(args, cfg, route_account(queued), trace(args.verbose))?;
    let env = &queued.envelope;
    let result = upstream.session(&server).and_then(|session| {
        account::requiretls(&server, session, env)?;
        deliver(session, env, prepared)
    });
    log::log(&server, env, &result);
    let failure = match result {
        Ok(sent) => match worst(sent.refusals) {
            None => return Ok(Fate::Sent(sent.data)),
            Some(f) => f,
        },
        Err(e) => Failure {
            chosen: e.into(),
            others: Vec::new(),
        },
    };
    if server.queue_on_failure && failure.chosen.error.code().is_temporary() {
        let id = store(prepared)?;
        return Ok(Fate::Queued(id, Some(failure)));
    }
    Ok(Fate::Refused(failure))
}

/// The connection to the server of one account, opened when first needed and kept for the
/// next message (msubmit -bs sends several).
#[derive(Default)]
struct Upstream {
    open: Option<(Option<String>, Session, Instant)>,
}

/// How long an idle connection is kept: servers may drop one idle for 5 minutes (RFC 5321
/// §4.5.3.2.7), and a connection found dead only when the next message goes out would fail
/// that message.
const KEEP_IDLE: Duration = Duration::from_secs(60);

impl Upstream {
    fn session(&mut self, server: &account::Server) -> Result<&mut Session> {
        // Not a connection the server closed while idle (or spoke on unasked): the next
        // message would fail at its MAIL FROM instead of going over a new one.
        let keep = self.open.as_mut().is_some_and(|(account, s, used)| {
            *account == server.account && used.elapsed() < KEEP_IDLE && s.is_reusable()
        });
        if !keep {
            self.quit();
        }
        let (_, session, used) = match self.open.take() {
            Some(open) => self.open.insert(open),
            None => self
                .open
                .insert((server.account.clone(), connect(server)?, Instant::now())),
        };
        *used = Instant::now();
        Ok(session)
    }

    fn quit(&mut self) {
        if let Some((_, s, _)) = self.open.take() {
            s.quit();
        }
    }
}

/// `user@host` for this user and host, sendmail's sender when nothing else names one.
fn local_address() -> String {
    let user = ["LOGNAME", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "root".into());
    format!("{user}@{}", crate::message::stamp::fqdn())
}

impl Content for message::Prepared<'_> {
    fn open(&mut self) -> Result<Box<dyn std::io::Read + '_>> {
        let r = self
            .reader()
            .map_err(|e| Error::io(Code::TempFail, "read spooled message", e))?;
        Ok(Box::new(r))
    }
}

/// The refusal that decides, with the others: the first permanent one when there is one (a
/// retry would fail again), else the first. `None` when there is none.
fn worst(mut refusals: Vec<Refusal>) -> Option<Failure> {
    if refusals.is_empty() {
        return None;
    }
    let pick = refusals
        .iter()
        .position(|r| !r.error.code().is_temporary())
        .unwrap_or(0);
    let chosen = refusals.remove(pick);
    Some(Failure {
        chosen,
        others: refusals,
    })
}

/// List the queue: each message with its envelope, its route (where a flush run with
/// `args` sends it, [`route`]) and what became of its recipients.
fn list(args: &Args, cfg: &Config, dir: &Path) -> Result<()> {
    let q = Queue::open(dir)?;
    let (entries, errors) = q.list()?;
    let (failed, failed_errors) = q.failed()?;
    for e in errors.iter().chain(&failed_errors) {
        run::warn(e);
    }
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| Error::io(Code::IoErr, "stdout", e);
    if entries.is_empty() && failed.is_empty() {
        writeln!(out, "Mail queue is empty").map_err(w)?;
    }
    let time = crate::message::stamp::local_time;
    for (e, is_failed) in entries
        .iter()
        .map(|e| (e, false))
        .chain(failed.iter().map(|e| (e, true)))
    {
        let v = &e.queued;
        let rcpts: Vec<&str> = v.envelope.rcpts.iter().map(|r| r.addr.as_str()).collect();
        let route = match &v.route {
            Route::Account { name, .. } => format!("account {}", name.as_deref().unwrap_or("-")),
            other => format!("route {}", other.kind()),
        };
        writeln!(
            out,
            "{}  {} bytes  queued {}  {route}{}\n  from: <{}>\n  to: {}",
            e.id,
            v.envelope.size.unwrap_or(0),
            time(v.queued),
            if is_failed { "  FAILED" } else { "" },
            v.envelope.from,
            rcpts.join(", ")
        )
        .map_err(w)?;
        if let Route::Account { name, flags } = &v.route {
            // Where it goes, and the flags it was queued with (what it goes by besides its
            // account); a server that cannot be told (the account is gone) says why.
            let via = route::args_for(args, flags);
            let server = match settings::address(&via, cfg, name.as_deref()) {
                Ok(address) => address,
                Err(e) => format!("unknown ({e})"),
            };
            let queued_with = match flags.is_empty() {
                true => String::new(),
                false => format!(", queued with {}", route::describe(flags)),
            };
            writeln!(out, "  route: {server}{queued_with}").map_err(w)?;
        }
        // Recipients done while others are not (the rest of a split transaction).
        for (addr, st) in rcpts.iter().zip(&e.rcpts) {
            match st.status {
                Status::Delivered => writeln!(out, "  delivered: {addr}"),
                Status::Failed if !is_failed => writeln!(out, "  failed: {addr}: {}", st.reply),
                _ => Ok(()),
            }
            .map_err(w)?;
        }
        if e.attempts() > 0 {
            let next = match e.next_try() {
                Some(t) if !is_failed => format!(", next {}", time(t)),
                _ => String::new(),
            };
            writeln!(
                out,
                "  attempts: {}{next}, last error: {}",
                e.attempts(),
                e.last_error()
            )
            .map_err(w)?;
        }
    }
    Ok(())
}

/// Send every due message of the queue: the library's runner picks, locks and records;
/// [`Flush`] sends.
fn flush(args: &Args, cfg: &Config, dir: &Path) -> Result<()> {
    let q = Queue::open(dir)?;
    let overruled = std::cell::Cell::new(false);
    let given = route::flags(args);
    let mut f = account::Flush::new(
        // Each message by its own route (route.rs): the flags it was queued with, if any.
        |name, flags: &queue::ServerFlags| {
            if !(flags.is_empty() || given.is_empty() || overruled.replace(true)) {
                run::warn(format_args!(
                    "flush: {} not used for messages queued with server flags of their own \
                     (they go by those; --list shows them)",
                    route::describe(&given)
                ));
            }
            let args = route::args_for(args, flags);
            settings::server(&args, cfg, name, trace(args.verbose))
        },
        log::log,
        |text| run::warn(text),
    );
    let report = q.run(queue::now(), |job| {
        if !matches!(job.queued().route, Route::Account { .. }) {
            run::warn(format_args!(
                "{}: a message for route {}, not msubmit's: left in the queue",
                job.id(),
                job.queued().route.kind()
            ));
            return None;
        }
        f.send(job)
    });
    f.quit();
    let report = report?;
    for e in &report.unreadable {
        run::warn(e);
    }
    let (sent, failed, unreadable) = (report.sent, report.failed, report.unreadable.len());
    // Untried: the account's settings failed (said once, in the exit status too).
    let deferred = report.deferred + report.untried;
    // A queue file we cannot read is a message we cannot send: the exit status must say
    // so, or cron's `msubmit -q` reports success while it sits in the queue for ever.
    let codes = (report.unreadable.iter().map(Error::code)).chain(f.codes().iter().copied());
    // The first permanent failure, else the first: a retry cannot fix a permanent one.
    let worst = codes.fold(None, |worst: Option<Code>, code| match worst {
        Some(w) if !w.is_temporary() || code.is_temporary() => Some(w),
        _ => Some(code),
    });
    if args.verbose || worst.is_some() {
        run::warn(format_args!(
            "flush: {sent} sent, {deferred} deferred, {failed} failed, {unreadable} unreadable"
        ));
    }
    match worst {
        None => Ok(()),
        Some(code) => Err(Error::new(
            code,
            "flush",
            format!("{deferred} deferred, {failed} failed, {unreadable} unreadable"),
        )),
    }
}

/// `--tls`: the words of [`crate::net::tls::Mode::parse`], checked as clap parses them; the
/// one word for each mode is what completions offer and the man page lists.
#[derive(Clone)]
struct TlsWords;

impl clap::builder::TypedValueParser for TlsWords {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<String, clap::Error> {
        let parse = |words: &str| -> std::result::Result<String, String> {
            crate::net::tls::Mode::parse(words).map(|_| words.to_string())
        };
        clap::builder::TypedValueParser::parse_ref(&parse, cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        let words = crate::net::tls::Mode::WORDS.iter();
        Some(Box::new(words.map(|(w, help)| {
            clap::builder::PossibleValue::new(w).help(help)
        })))
    }
}

/// msubmit's documentation.
pub fn page() -> Page {
    Page {
        name: "msubmit",
        command: Args::command(),
        description: DESCRIPTION,
        sections: SECTIONS,
    }
}

const DESCRIPTION: &str = include_str!("description.roff");
const SECTIONS: &str = include_str!("sections.roff");
