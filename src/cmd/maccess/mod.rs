//! maccess: the POP3 server over the Maildirs mreceive writes, in qmail-pop3d's tradition:
//! small, inetd-friendly, strict.
//!
//! Design: like mreceive, one session on stdin/stdout by default (inetd, tcpserver, systemd
//! `Accept=yes` own the sockets and the privileges), `--listen` for a thread per connection
//! on mreceive's accept loop ([`crate::net::listen`]: the session limit, the graceful stop).
//! Accounts are mreceive's: the same password file ([`crate::passwd`]) and the same
//! `DIR/USER/Maildir` layout under `-m`, so one file serves SMTP AUTH and POP3. The protocol
//! is [`crate::pop3::server`]; this module turns flags into its settings and logs its lines.

use crate::docs::Page;
use crate::exit::{Code, Error, Result};
use crate::log::{Severity, Syslog};
use crate::net::conn::{Conn, FdIo};
use crate::net::listen;
use crate::passwd::Passwords;
use crate::pop3::server::{self, Peer, Settings};
use clap::{CommandFactory, Parser};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Serve users' Maildirs over POP3.
///
/// maccess is a POP3 server (RFC 1939) for the Maildirs that mreceive(1) delivers into:
/// DIR/USER/Maildir under --maildir-base, users and passwords from the same password file.
/// Passwords are taken only over TLS (STLS, or implicit TLS on port 995 with
/// --tls-on-connect). Without --listen it serves one session on standard input and output,
/// for inetd, tcpserver or systemd socket activation.
#[derive(Parser, Debug)]
#[command(name = "maccess", version, about = "serve Maildirs over POP3")]
pub struct Args {
    /// Listen on HOST:PORT instead of serving stdin/stdout (repeatable; [::1]:PORT for IPv6;
    /// a name such as localhost listens on each of its addresses)
    #[arg(short = 'l', long, value_name = "HOST:PORT")]
    pub listen: Vec<String>,

    /// Users' Maildirs are DIR/USER/Maildir (as mreceive -m delivers them)
    #[arg(short = 'm', long, value_name = "DIR")]
    pub maildir_base: PathBuf,

    /// Password file (user:$6$… lines, mreceive's; see FILES)
    #[arg(short = 'p', long, value_name = "FILE")]
    pub passwords: PathBuf,

    /// TLS certificate chain (PEM) for STLS and implicit TLS
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Start TLS at once, before the greeting (port 995, RFC 8314)
    #[arg(long, requires = "tls_cert")]
    pub tls_on_connect: bool,

    /// Allow USER/PASS and AUTH without TLS (for tests; passwords cross the network in the
    /// clear)
    #[arg(long)]
    pub insecure_auth: bool,

    /// Wait SECS seconds times the failures so far before answering a failed login
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub auth_failure_delay: f64,

    /// Our host name for the greeting [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// With --listen: serve at most N sessions at once (more get -ERR [SYS/TEMP])
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_sessions: usize,

    /// Give up on a client that sends nothing for SECONDS (RFC 1939 §3: at least 600)
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,

    #[command(flatten)]
    pub limits: crate::cmd::limits::Flags,

    /// Log to syslog (facility mail) instead of standard error
    #[arg(long)]
    pub syslog: bool,

    /// The syslog socket (implies --syslog) [default: /dev/log]
    #[arg(long, value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,
}

/// Run maccess.
pub fn run(args: Args) -> Result<()> {
    let listens = listen::resolve(&args.listen)?;
    // Under inetd stderr is the client's socket: log lines there would be in the dialogue.
    let stderr_is_the_socket = listens.is_empty() && listen::stderr_is_the_socket();
    let syslog = match (&args.syslog_socket, args.syslog || stderr_is_the_socket) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(crate::log::SYSLOG_SOCKET.into()),
        (None, false) => None,
    };
    let settings = Arc::new(configure(&args, syslog)?);
    if !listens.is_empty() {
        let implicit_tls = args.tls_on_connect;
        let limits = args.limits.limits(args.max_sessions, settings.timeout);
        let refusals = listen::Refusals {
            busy: b"-ERR [SYS/TEMP] too many sessions, try again later\r\n",
            // RFC 2449 §8.1.2's SYS/TEMP: the same refusal later would succeed.
            client: b"-ERR [SYS/TEMP] too many connections from your address, try again later\r\n",
        };
        return listen::serve(&listens, &limits, refusals, move |conn, addr| {
            let peer = Peer {
                ip: Some(addr.ip().to_canonical()),
            };
            // A failed session says so in its disconnect line.
            let _ = server::serve(conn, &settings, &peer, implicit_tls);
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
    server::serve(conn, &settings, &peer, args.tls_on_connect).map(drop)
}

fn usage(what: &str, why: &str) -> Error {
    Error::new(Code::Usage, what, why)
}

fn configure(args: &Args, syslog: Option<PathBuf>) -> Result<Settings> {
    if args.tls_cert.is_none() && !args.insecure_auth {
        return Err(usage(
            "no --tls-cert",
            "passwords are taken only over TLS: give --tls-cert and --tls-key (or --insecure-auth)",
        ));
    }
    if args.max_sessions == 0 || args.timeout == 0 || args.limits.stress_timeout == 0 {
        return Err(usage("limits", "must be at least 1"));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(crate::net::tls::server_config(c, k)?),
        _ => None,
    };
    Ok(Settings {
        hostname: args
            .hostname
            .clone()
            .unwrap_or_else(crate::message::stamp::fqdn),
        maildir_base: args.maildir_base.clone(),
        passwords: Arc::new(Passwords::load(&args.passwords)?),
        tls,
        insecure_auth: args.insecure_auth,
        auth_failure_delay: Duration::try_from_secs_f64(args.auth_failure_delay)
            .map_err(|_| usage("--auth-failure-delay", "not a number of seconds"))?,
        timeout: Duration::from_secs(args.timeout),
        log: logger(syslog),
    })
}

/// Session lines on stderr (`maccess[PID]: line`), or to syslog instead; a syslog that
/// fails is said once on stderr, and mail is never held up by its log.
fn logger(syslog: Option<PathBuf>) -> Box<dyn Fn(&str) + Send + Sync> {
    let Some(path) = syslog else {
        let pid = std::process::id();
        return Box::new(move |line: &str| {
            let _ = writeln!(std::io::stderr().lock(), "maccess[{pid}]: {line}");
        });
    };
    let syslog = Syslog::new("maccess", path);
    let failing = AtomicBool::new(false);
    Box::new(move |line: &str| match syslog.send(Severity::Info, line) {
        Ok(()) => failing.store(false, Ordering::Relaxed),
        Err(e) => {
            if !failing.swap(true, Ordering::Relaxed) {
                crate::run::warn(format_args!(
                    "syslog {}: {}",
                    syslog.path().display(),
                    crate::exit::describe_io(&e)
                ));
            }
        }
    })
}

/// maccess's documentation.
pub fn page() -> Page {
    Page {
        name: "maccess",
        command: Args::command(),
        description: include_str!("description.roff"),
        sections: include_str!("sections.roff"),
    }
}
