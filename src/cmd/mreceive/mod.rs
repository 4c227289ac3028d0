//! mreceive: the recipient's SMTP server. It accepts mail for its local domains (MX role) and,
//! from authenticated users, mail to anywhere (submission role), and hands each message on.
//!
//! Design: like qmail-smtpd, the default is one session on stdin/stdout, so inetd, tcpserver
//! or systemd own the sockets, the limits and the privileges; `--listen` runs the same session
//! in a thread per connection for a busy MX that should not pay for a process per message.
//! The protocol is [`crate::smtp::server`] on the project's one SMTP module; delivery is
//! [`crate::cmd::mreceive::handoff`] (built-in Maildirs through mdeliver's code, a delivery command, or the
//! outgoing queue). A 250 is sent only after the message is durable; every doubt is a 4xx.
//! What happened is logged by [`crate::cmd::mreceive::log`], a line per session event, message
//! and recipient, on stderr or to syslog.

pub mod handoff;
pub mod log;

use crate::cmd::mreceive::handoff::{Handoff, Local, names_recipient};
use crate::config::parse_size;
use crate::docs::Page;
use crate::exit::{Code, Error, Result};
use crate::net::conn::{Conn, FdIo};
use crate::net::listen;
use crate::passwd::Passwords;
use crate::smtp::policy::{Policy, Senders, load_users};
use crate::smtp::server::{self, Peer, Settings};
use crate::store::queue::Route;
use clap::{CommandFactory, Parser};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Receive mail over SMTP and deliver it into Maildirs or queue it for relaying.
///
/// mreceive is an SMTP server (RFC 5321). As an MX it accepts mail only for the local
/// domains given with --domain and delivers it into one Maildir per user (--maildir-base),
/// or hands it to a delivery command per recipient; it is never an open relay. Users
/// who authenticate (AUTH PLAIN or LOGIN, only over TLS) may send to any address: mail for
/// other domains goes into the outgoing queue shared with msubmit. Without --listen it serves
/// one session on standard input and output, for inetd, tcpserver or systemd socket
/// activation.
#[derive(Parser, Debug, Default)]
#[command(
    name = "mreceive",
    version,
    about = "receive mail over SMTP and deliver or queue it"
)]
pub struct Args {
    /// Listen on HOST:PORT instead of serving stdin/stdout (repeatable; [::1]:PORT for IPv6;
    /// a name such as localhost listens on each of its addresses)
    #[arg(short = 'l', long, value_name = "HOST:PORT")]
    pub listen: Vec<String>,

    /// Accept mail for DOMAIN (repeatable, or comma-separated)
    #[arg(
        short = 'd',
        long = "domain",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    pub domains: Vec<String>,

    /// Accept only these users: a file with one name a line, or a directory whose entries
    /// are the users
    #[arg(short = 'u', long, value_name = "FILE|DIR")]
    pub users: Option<PathBuf>,

    /// Deliver built in, into DIR/USER/Maildir (with --deliver-command: set MAILDIR to it)
    #[arg(short = 'm', long, value_name = "DIR")]
    pub maildir_base: Option<PathBuf>,

    /// Run COMMAND (words split as a shell would, but no shell) once per recipient with the
    /// message on stdin, ${user} and ${recipient} in it replaced (needs --maildir-base unless
    /// it names one of them)
    #[arg(short = 'c', long, value_name = "COMMAND")]
    pub deliver_command: Option<String>,

    /// The outgoing queue for authenticated mail [default: ~/.local/share/mailpipe/queue];
    /// given, local recipients that fail for now while others succeed wait there too
    #[arg(long, value_name = "DIR")]
    pub queue_dir: Option<PathBuf>,

    /// How authenticated mail for other domains leaves the queue: mx (mrelay looks the
    /// domains up) or account[:NAME] (msubmit --flush sends it through an account's server)
    #[arg(long, value_name = "mx|account[:NAME]", default_value = "mx", value_parser = parse_route)]
    pub route: Route,

    /// Submission role: MAIL requires AUTH first
    #[arg(long)]
    pub submission: bool,

    /// Password file for AUTH (user:$6$… lines; see FILES)
    #[arg(short = 'p', long, value_name = "FILE")]
    pub passwords: Option<PathBuf>,

    /// Which MAIL FROM addresses each login may use besides its own: ADDRESS
    /// LOGIN[,LOGIN...] lines, @DOMAIN for a whole domain (see FILES)
    #[arg(long, value_name = "FILE", requires = "passwords")]
    pub sender_login_map: Option<PathBuf>,

    /// A login that may use any MAIL FROM address, such as a relay's account (repeatable)
    #[arg(long, value_name = "LOGIN", requires = "passwords")]
    pub trusted_sender_login: Vec<String>,

    /// TLS certificate chain (PEM) for STARTTLS
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Start TLS at once, before the greeting (port 465, RFC 8314)
    #[arg(long, requires = "tls_cert")]
    pub tls_on_connect: bool,

    /// Allow AUTH without TLS (for tests; passwords cross the network in the clear)
    #[arg(long)]
    pub insecure_auth: bool,

    /// Wait SECS seconds times the failures so far before answering a failed AUTH
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub auth_failure_delay: f64,

    /// Our host name for the greeting and Received: [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Refuse messages larger than SIZE bytes (suffixes k, M, G)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "25M")]
    pub max_size: u64,

    /// Accept at most N recipients per message
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_recipients: usize,

    /// Refuse a message with more than N Received: headers as a mail loop
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_received: usize,

    /// With --listen: serve at most N sessions at once (more get 421)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_sessions: usize,

    #[command(flatten)]
    pub limits: crate::cmd::limits::Flags,

    /// Give up on a client that sends nothing for SECONDS
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,

    /// Take bare CR and bare LF in messages as line ends instead of refusing the message
    #[arg(long)]
    pub normalize_line_ends: bool,

    /// Log to syslog (facility mail) instead of standard error
    #[arg(long)]
    pub syslog: bool,

    /// The syslog socket (implies --syslog) [default: /dev/log]
    #[arg(long, value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,

    /// Read a password on stdin and print its SHA512-CRYPT hash for the password file
    #[arg(long, exclusive = true)]
    pub hash_password: bool,
}

/// Run mreceive.
pub fn run(args: Args) -> Result<()> {
    if args.hash_password {
        return hash_password();
    }
    let listens = listen::resolve(&args.listen)?;
    // inetd hands the connection over as stdin, stdout *and* stderr: log lines written
    // there would be in the SMTP dialogue, so they go to syslog, the one place left.
    let stderr_is_the_socket = listens.is_empty() && listen::stderr_is_the_socket();
    let syslog = match (&args.syslog_socket, args.syslog || stderr_is_the_socket) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(crate::log::SYSLOG_SOCKET.into()),
        (None, false) => None,
    };
    let (settings, handoff) = configure(&args, Box::new(log::Logger::new(syslog)))?;
    let settings = Arc::new(settings);
    if !listens.is_empty() {
        let implicit_tls = args.tls_on_connect;
        let limits = args.limits.limits(args.max_sessions, settings.timeout);
        let refusals = listen::Refusals {
            // RFC 5321 §3.8: 421 closes; 4.3.2 "system not accepting network messages".
            busy: b"421 4.3.2 too many sessions, try again later\r\n",
            // 4.7.0: a policy refusal (Postfix's anvil answers the same).
            client: b"421 4.7.0 too many connections from your address, try again later\r\n",
        };
        return listen::serve(&listens, &limits, refusals, move |conn, addr| {
            let peer = Peer {
                ip: Some(addr.ip().to_canonical()),
            };
            // A session that failed (the client vanished, a TLS handshake) says so in
            // its disconnect line, in the log the operator chose: not again on stderr.
            let _ = server::serve(conn, &settings, &peer, &handoff, implicit_tls);
            Ok(())
        });
    }
    if stderr_is_the_socket {
        listen::quiet_stderr();
    }
    let peer = Peer {
        ip: listen::stdio_peer(),
    };
    let conn = Conn::new(Box::new(FdIo::stdio(settings.timeout)));
    server::serve(conn, &settings, &peer, &handoff, args.tls_on_connect).map(drop)
}

/// `--route`: `mx`, `account` or `account:NAME`.
fn parse_route(s: &str) -> std::result::Result<Route, String> {
    match s.split_once(':') {
        None if s == "mx" => Ok(Route::Mx),
        None if s == "account" => Ok(Route::account(None)),
        Some(("account", name)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
            Ok(Route::account(Some(name.to_string())))
        }
        _ => Err("give mx, account or account:NAME".into()),
    }
}

fn usage(what: &str, why: &str) -> Error {
    Error::new(Code::Usage, what, why)
}

fn configure(args: &Args, log: Box<dyn crate::smtp::event::Log>) -> Result<(Settings, Handoff)> {
    if args.domains.is_empty() && !args.submission {
        return Err(usage(
            "no --domain",
            "an MX needs its local domains (or use --submission)",
        ));
    }
    if args.submission && args.passwords.is_none() {
        return Err(usage("--submission", "needs --passwords"));
    }
    if args.passwords.is_some() && args.tls_cert.is_none() && !args.insecure_auth {
        return Err(usage(
            "--passwords",
            "AUTH is offered only after TLS: give --tls-cert and --tls-key",
        ));
    }
    if args.max_recipients == 0
        || args.max_sessions == 0
        || args.timeout == 0
        || args.limits.stress_timeout == 0
    {
        return Err(usage("limits", "must be at least 1"));
    }
    let local = local_delivery(args)?;
    let users = args.users.as_deref().map(load_users).transpose()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(crate::net::tls::server_config(c, k)?),
        _ => None,
    };
    let passwords = args
        .passwords
        .as_deref()
        .map(Passwords::load)
        .transpose()?
        .map(Arc::new);
    let queue = args
        .queue_dir
        .clone()
        .or_else(crate::store::queue::default_dir);
    let settings = Settings {
        hostname: args
            .hostname
            .clone()
            .unwrap_or_else(crate::message::stamp::fqdn),
        policy: Policy::new(&args.domains, users).with_senders(Senders::load(
            args.sender_login_map.as_deref(),
            &args.trusted_sender_login,
        )?),
        max_size: args.max_size,
        max_recipients: args.max_recipients,
        max_received: args.max_received,
        timeout: Duration::from_secs(args.timeout),
        normalize: args.normalize_line_ends,
        tls,
        passwords,
        insecure_auth: args.insecure_auth,
        auth_failure_delay: Duration::try_from_secs_f64(args.auth_failure_delay)
            .map_err(|_| usage("--auth-failure-delay", "not a number of seconds"))?,
        submission: args.submission,
        local_user: None,
        software: "mailpipe mreceive".into(),
        log,
    };
    Ok((
        settings,
        Handoff {
            local,
            queue,
            route: args.route.clone(),
            retry_local: args.queue_dir.is_some(),
        },
    ))
}

/// How mail for the local domains is delivered. mreceive does not change users, so a
/// delivery that does not know each recipient's mailbox would put every user's mail into one
/// (the daemon user's ~/Maildir, where mdeliver goes without MAILDIR): that is refused at
/// start with 78, never found out from a user's complaint.
fn local_delivery(args: &Args) -> Result<Local> {
    let one_mailbox = |what: &str| {
        Error::new(
            Code::Config,
            what,
            "every user's mail would go into one mailbox: give --maildir-base DIR \
             (for DIR/USER/Maildir), or a --deliver-command that names ${user} or ${recipient}",
        )
    };
    let Some(command) = &args.deliver_command else {
        return match &args.maildir_base {
            Some(base) => Ok(Local::Maildirs(base.clone())),
            // A submission server without local domains delivers nothing here.
            None if args.domains.is_empty() => Ok(Local::Nowhere),
            None => Err(one_mailbox("no --maildir-base")),
        };
    };
    let argv = crate::config::words(command).map_err(|why| usage("--deliver-command", &why))?;
    if argv.is_empty() {
        return Err(usage("--deliver-command", "empty"));
    }
    let named = names_recipient(&argv).map_err(|why| usage("--deliver-command", &why))?;
    if !named && args.maildir_base.is_none() && !args.domains.is_empty() {
        return Err(one_mailbox("--deliver-command without --maildir-base"));
    }
    Ok(Local::Command {
        argv,
        base: args.maildir_base.clone(),
    })
}

fn hash_password() -> Result<()> {
    let mut line = String::new();
    // On a terminal: a prompt on stderr, and no echo (restored afterwards).
    // SAFETY: an all-zero termios is a valid out buffer.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: isatty only asks; tcgetattr writes into `saved`, which outlives the call.
    let tty = unsafe { libc::isatty(0) == 1 && libc::tcgetattr(0, &mut saved) == 0 };
    if tty {
        eprint!("Password: ");
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: quiet is a valid termios copied from the terminal's own.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    }
    let read = std::io::stdin().lock().read_line(&mut line);
    if tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        eprintln!();
    }
    read.map_err(|e| Error::io(Code::IoErr, "read password", e))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(usage("password", "empty"));
    }
    let hash = crate::passwd::hash(password)?;
    writeln!(std::io::stdout(), "{hash}").map_err(|e| Error::io(Code::IoErr, "stdout", e))
}

/// mreceive's documentation.
pub fn page() -> Page {
    Page {
        name: "mreceive",
        command: Args::command(),
        description: DESCRIPTION,
        sections: SECTIONS,
    }
}

const DESCRIPTION: &str = include_str!("description.roff");
const SECTIONS: &str = include_str!("sections.roff");
