//! mfetch: mail from a POP3 server's maildrop into a Maildir (or an MDA), never twice,
//! never lost; for cron and people. The flags and accounts are read here, the work is the
//! fetch engine's ([`crate::fetch`]) over the POP3 client ([`crate::pop3::client`]).
//!
//! Cron manners: one lock per account (a second run leaves that account at once, quietly),
//! nothing printed when nothing arrived, and the exit status says what happened: 0 mail
//! was fetched, 1 there was nothing new (fetchmail's), else a sysexits code.

mod daemon;

use crate::account::{self, Account, Password, Protocol};
use crate::deliver::Pipeline;
use crate::docs::Page;
use crate::exit::{Code, Error, Result};
use crate::fetch::state::{self, State};
use crate::fetch::{self, Event, Settings, Target};
use crate::net::tls::{Level, Mode, Start, TlsOptions};
use crate::pop3::client::{Client, Credentials, Login, Options};
use crate::run;
use clap::{CommandFactory, Parser};
use std::io::IsTerminal;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod imap;

/// Fetch mail from a POP3 or IMAP server into a Maildir, never twice, never lost.
///
/// mfetch fetches the new messages of every account of the configuration that names a
/// server to fetch from (pop3_host, imap_host), of one account (-a), or of the server the
/// flags name (--pop3, --imap), into a Maildir through the delivery pipeline or to a
/// program per message. It remembers what it fetched (by UIDL; by folder, UIDVALIDITY and
/// UID) in its state directory, and deletes on the server only what is durable here
/// (unless --keep).
#[derive(Parser, Debug, Default)]
#[command(
    name = "mfetch",
    version,
    about = "fetch mail from a POP3 or IMAP server into a Maildir, never twice, never lost"
)]
pub struct Args {
    /// Fetch for this account of the configuration only [default: every account with a
    /// pop3_host or imap_host]
    #[arg(short = 'a', long, value_name = "NAME")]
    pub account: Option<String>,

    /// Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]
    #[arg(short = 'C', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Fetch from this POP3 server instead of the configuration's accounts [default port:
    /// 995 with implicit TLS, 110 otherwise]
    #[arg(long, value_name = "HOST[:PORT]")]
    pub pop3: Option<String>,

    /// Fetch from this IMAP server instead of the configuration's accounts [default port:
    /// 993 with implicit TLS, 143 otherwise]
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with = "pop3")]
    pub imap: Option<String>,

    /// IMAP: fetch this folder (repeatable) [default: the account's folders, else INBOX]
    #[arg(long, value_name = "NAME")]
    pub folder: Vec<String>,

    /// IMAP: move fetched mail to this folder on the server instead of deleting it
    #[arg(long, value_name = "NAME", conflicts_with = "keep")]
    pub move_to: Option<String>,

    /// TLS: how it starts (starttls, implicit) and how strict it is (none, encrypt,
    /// verify; may is taken as encrypt: a mailbox's password never goes in clear text by
    /// chance), one word or a start and a level joined by a comma [default: implicit]
    #[arg(long, value_name = "MODE", value_parser = tls_words)]
    pub tls: Option<String>,

    /// Trust the CA certificates in this PEM file instead of the built-in roots
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Accept only the server certificate with this SHA-256 fingerprint (hex, colons optional)
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,

    /// Verify the certificate for this name instead of HOST
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// Log in as this user [default: the account's fetch_user or user]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Run this command (by sh -c) and use the first line it prints as the password, or
    /// the token for xoauth2 and oauthbearer
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,

    /// How to log in: user (USER/PASS), plain, login, xoauth2, oauthbearer [default: plain
    /// when offered, else user]
    #[arg(long, value_name = "METHOD", value_parser = login_word)]
    pub auth: Option<String>,

    /// Deliver into this Maildir [default: $MAILDIR, else ~/Maildir]
    #[arg(long, value_name = "DIR")]
    pub maildir: Option<PathBuf>,

    /// Filtering rules for the delivery (as mdeliver's --rules)
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Deliver each message to this command instead (split into words without a shell;
    /// %F is the sender, %T the user, each one argument); at least once
    #[arg(long, value_name = "CMD", conflicts_with_all = ["maildir", "rules"])]
    pub mda: Option<String>,

    /// Leave fetched mail on the server
    #[arg(short = 'k', long)]
    pub keep: bool,

    /// List the new messages (date, from, subject, size) from their headers; fetch nothing
    #[arg(short = 's', long)]
    pub scan: bool,

    /// Ask this command about each new message, its header on standard input: exit 0
    /// fetch, 1 delete on the server unfetched, 2 leave it
    #[arg(long, value_name = "CMD")]
    pub filter: Option<String>,

    /// Leave messages larger than SIZE on the server (bytes, or with k, M, G)
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub max_size: Option<u64>,

    /// Leave messages dated before DATE (YYYY-MM-DD, UTC) on the server
    #[arg(long, value_name = "DATE", value_parser = date)]
    pub since: Option<i64>,

    /// Keep the state (what was fetched) in DIR [default: $XDG_STATE_HOME/mailpipe/mfetch,
    /// else ~/.local/state/mailpipe/mfetch]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Messages per batch: one sync round, one state write, one round of deletions
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub batch: usize,

    /// Seconds to wait for the server on each step
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,

    /// Keep running: fetch every account each --interval (after a failure, again after a
    /// backoff doubling up to an hour) until SIGTERM
    #[arg(long, conflicts_with = "scan")]
    pub daemon: bool,

    /// Seconds between polls of an account with --daemon
    #[arg(long, value_name = "SECS", default_value_t = 300, requires = "daemon")]
    pub interval: u64,
}

/// Set when every account ran and none had new mail: exit 1.
static NOTHING_NEW: AtomicBool = AtomicBool::new(false);

/// The binary's entry point.
pub fn main() -> ExitCode {
    // Files of ours are created 0600 whatever the caller's umask says.
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o077) };
    let code = run::main("mfetch", run);
    if code == ExitCode::SUCCESS && NOTHING_NEW.load(Ordering::Relaxed) {
        return ExitCode::from(1);
    }
    code
}

/// One mailbox to fetch: where, how, as whom, and the state's key.
struct Job {
    name: String,
    host: String,
    port: u16,
    opts: Options,
    keep: bool,
    /// IMAP: the folder (the name is the account's and the folder's); POP3: none.
    folder: Option<String>,
}

/// Run mfetch.
pub fn run(args: Args) -> Result<()> {
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => state::default_dir().ok_or_else(|| {
            Error::new(
                Code::Config,
                "state directory",
                "neither XDG_STATE_HOME nor HOME is set (give --state-dir)",
            )
        })?,
    };
    if args.daemon {
        return daemon::run(&args, &state_dir);
    }
    let mut errors: Vec<Error> = Vec::new();
    let mut fetched = 0;
    for job in jobs(&args)? {
        match one(&args, &job, &state_dir) {
            Ok(n) => fetched += n,
            Err(e) => errors.push(e.context(&job.name)),
        }
    }
    // Each account's failure is said; the exit status is the most telling one: a
    // temporary code only when nothing needs a person.
    let worst = errors
        .iter()
        .position(|e| !e.code().is_temporary())
        .or((!errors.is_empty()).then_some(0));
    if let Some(i) = worst {
        let e = errors.remove(i);
        for other in &errors {
            run::warn(other);
        }
        return Err(e);
    }
    if fetched == 0 {
        NOTHING_NEW.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// One mailbox, under its lock; the number of messages fetched (or scanned).
fn one(args: &Args, job: &Job, dir: &std::path::Path) -> Result<usize> {
    let Some(mut state) = State::open(dir, &job.name)? else {
        // Another run has it: cron's next tick overlapping a long fetch. Quietly.
        return Ok(0);
    };
    let settings = settings(args, job)?;
    let addrs: Vec<_> = (job.host.as_str(), job.port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(
                Code::TempFail,
                format!("{}:{}", job.host, job.port),
                format!("cannot resolve: {e}"),
            )
        })?
        .collect();
    let source: Box<dyn fetch::Source> = match &job.folder {
        Some(folder) => imap::source(args, job, folder, &addrs, dir)?,
        None => Box::new(fetch::pop3::Pop3(Client::connect(
            &addrs, &job.host, &job.opts,
        )?)),
    };
    let tty = std::io::stderr().is_terminal();
    let mut failed = Vec::new();
    let outcome = fetch::run(source, &mut state, &settings, &mut |e| match e {
        Event::Scanned(_, line) => println!("{line}"),
        Event::Failed(m, err) => {
            run::warn(format_args!("message {}: {err}", m.id));
            failed.push(err.code());
        }
        Event::Warning(w) => run::warn(w),
        Event::Recovered(n) if n > 0 => run::warn(format_args!(
            "{}: the last run was cut off mid-batch; {n} of its messages had arrived",
            job.name
        )),
        Event::Progress(done, total) if tty && total > 0 => {
            eprint!("\r{}: {done}/{total}", job.name);
            if done == total {
                eprintln!();
            }
        }
        _ => {}
    })?;
    if let Some(code) = failed.first() {
        return Err(Error::new(
            *code,
            "mda",
            format!(
                "{} messages not delivered, left on the server",
                failed.len()
            ),
        ));
    }
    Ok(outcome.fetched + outcome.scanned)
}

/// What to fetch and how, from the flags.
fn settings(args: &Args, job: &Job) -> Result<Settings> {
    let words = |what: &str, cmd: &str| -> Result<Vec<String>> {
        let w = crate::config::words(cmd).map_err(|e| Error::new(Code::Usage, what, e))?;
        if w.is_empty() {
            return Err(Error::new(Code::Usage, what, "no command"));
        }
        Ok(w)
    };
    let target = match &args.mda {
        Some(cmd) => Target::Mda {
            argv: words("--mda", cmd)?,
            recipient: job.opts.auth.user.clone(),
        },
        None => {
            let maildir = match &args.maildir {
                Some(d) => d.clone(),
                None => std::env::var_os("MAILDIR")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| crate::config::home().map(|h| h.join("Maildir")))
                    .ok_or_else(|| {
                        Error::new(Code::Config, "maildir", "no --maildir, $MAILDIR or $HOME")
                    })?,
            };
            let mut p = Pipeline::new(maildir);
            // Fetched mail carries the server's trace fields already; stored byte for byte.
            p.trace = false;
            p.loop_check = false;
            p.create_parents = false;
            p.max_size = args.max_size;
            if let Some(r) = &args.rules {
                p.rules = crate::deliver::rules::Source::Named(r.clone());
            }
            Target::Maildir(p)
        }
    };
    Ok(Settings {
        target,
        keep: args.keep || job.keep,
        scan: args.scan,
        filter: args
            .filter
            .as_deref()
            .map(|f| words("--filter", f))
            .transpose()?,
        max_size: args.max_size,
        since: args.since,
        batch: args.batch,
        time_limit: crate::deliver::actions::TIME_LIMIT,
    })
}

/// The mailboxes the flags and the configuration name.
fn jobs(args: &Args) -> Result<Vec<Job>> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let cfg = account::load(args.config.as_deref())?;
    let login = args.auth.as_deref().and_then(Login::parse);
    let flag_mode = args.tls.as_deref().map(Mode::parse).transpose();
    let flag_mode = flag_mode.map_err(|e| Error::new(Code::Usage, "--tls", e))?;
    let fingerprint = args
        .fingerprint
        .as_deref()
        .map(crate::net::tls::parse_fingerprint)
        .transpose()?;
    let secret = |pw: Option<Password>, name: &str| -> Result<String> {
        match args.password_command.clone().map(Password::Command).or(pw) {
            Some(p) => p.reveal(),
            None => Err(Error::new(
                Code::Config,
                name,
                "no password (--password-command, or fetch_passwordeval in the account)",
            )),
        }
    };
    let trust = |mut t: TlsOptions| {
        if args.ca_file.is_some() {
            t.ca_file = args.ca_file.clone();
        }
        if fingerprint.is_some() {
            t.fingerprint = fingerprint;
        }
        if args.tls_server_name.is_some() {
            t.server_name = args.tls_server_name.clone();
        }
        t
    };
    if let Some(server) = args.pop3.as_ref().or(args.imap.as_ref()) {
        let is_imap = args.imap.is_some();
        // The fetch_tls keys of the account (or of the defaults) still apply: a trust file
        // set once for every account, as msubmit --host keeps the defaults' tls_trust_file.
        let keys = cfg.account(args.account.as_deref())?;
        let tls = account::tls(&keys, "fetch_")?;
        let mode = flag_mode.or(tls.mode).unwrap_or(Mode::IMPLICIT);
        let port = match is_imap {
            true => imap::default_port(mode),
            false => default_port(mode),
        };
        let (host, port) = host_port(server, port)?;
        let user = args
            .user
            .clone()
            .ok_or_else(|| Error::new(Code::Usage, "--pop3", "needs --user"))?;
        let name = format!("{user}@{host}:{port}");
        let secret = secret(None, &name)?;
        let job = Job {
            name,
            host,
            port,
            keep: false,
            opts: Options {
                tls: mode,
                trust: trust(tls.options),
                auth: Credentials {
                    user,
                    secret,
                    login,
                },
                timeout,
            },
            folder: None,
        };
        if is_imap {
            return Ok(imap::per_folder(job, &args.folder, &[]));
        }
        return Ok(vec![job]);
    }
    let names: Vec<String> = match &args.account {
        Some(a) => vec![a.clone()],
        None => cfg.account_names().map(str::to_string).collect(),
    };
    let mut jobs = Vec::new();
    for name in names {
        let acct = Account::resolve(&cfg, Some(&name))?;
        let Some(f) = acct.fetch()? else {
            if args.account.is_some() {
                return Err(Error::new(
                    Code::Config,
                    format!("account {name}"),
                    "names no server to fetch from (pop3_host)",
                ));
            }
            continue;
        };
        let mode = flag_mode.unwrap_or(f.mode());
        let port = f.port.unwrap_or(match f.protocol {
            Protocol::Imap => imap::default_port(mode),
            Protocol::Pop3 => default_port(mode),
        });
        let user = args.user.clone().or(f.user.clone()).ok_or_else(|| {
            Error::new(
                Code::Config,
                format!("account {name}"),
                "no fetch_user or user",
            )
        })?;
        let secret = secret(f.password.clone(), &format!("account {name}"))?;
        let job = Job {
            name: name.clone(),
            host: f.host.clone(),
            port,
            keep: f.keep,
            opts: Options {
                tls: mode,
                trust: trust(f.tls.options.clone()),
                auth: Credentials {
                    user,
                    secret,
                    login,
                },
                timeout,
            },
            folder: None,
        };
        match f.protocol {
            Protocol::Imap => jobs.extend(imap::per_folder(job, &args.folder, &f.folders)),
            Protocol::Pop3 => jobs.push(job),
        }
    }
    if jobs.is_empty() {
        return Err(Error::new(
            Code::Config,
            "mfetch",
            "no account names a server to fetch from (pop3_host, imap_host), and no --pop3 or --imap",
        ));
    }
    Ok(jobs)
}

/// RFC 8314 §3.2 (995) with implicit TLS, RFC 1939 (110) otherwise.
fn default_port(mode: Mode) -> u16 {
    if mode.start == Start::Implicit && mode.level != Level::None {
        995
    } else {
        110
    }
}

/// `host`, `host:port` or `[v6]:port`.
fn host_port(s: &str, default: u16) -> Result<(String, u16)> {
    let bad = || Error::new(Code::Usage, "--pop3", format!("bad HOST[:PORT] {s:?}"));
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((h.to_string(), p.parse().map_err(|_| bad())?)),
        _ if s.is_empty() => Err(bad()),
        _ => Ok((s.to_string(), default)),
    }
}

fn tls_words(s: &str) -> std::result::Result<String, String> {
    Mode::parse(s).map(|_| s.to_string())
}

fn login_word(s: &str) -> std::result::Result<String, String> {
    Login::parse(s)
        .map(|_| s.to_string())
        .ok_or_else(|| "expected user, plain, login, xoauth2 or oauthbearer".to_string())
}

fn size(s: &str) -> std::result::Result<u64, String> {
    crate::config::parse_size(s)
}

fn date(s: &str) -> std::result::Result<i64, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .ok_or_else(|| format!("expected YYYY-MM-DD, got {s:?}"))
}

/// mfetch's documentation.
pub fn page() -> Page {
    Page {
        name: "mfetch",
        command: Args::command(),
        description: include_str!("description.roff"),
        sections: include_str!("sections.roff"),
    }
}
