//! Sending through an account's server (SMTP submission): msubmit's way, shared by msubmit
//! (a message now, and `--flush`) and mrelay (`-q` runs the queue's account routes as
//! msubmit's `--flush` does, so a message queued by `msubmit --queue` goes the same way
//! whoever runs the queue).
//!
//! - [`server`]: an account's sending keys ([`crate::account::Send`]) with a tool's flags
//!   ([`Overrides`]) laid over them: where the server is (directly, from a source address,
//!   through a SOCKS5 proxy) and how to speak to it; [`unrevealed`] the same with the login
//!   apart, its password not yet read (msubmit's `--pretend` and `--serverinfo`).
//! - [`connect`]: the server's name resolved here, or by the proxy.
//! - [`deliver`]: one message over a session, all or nothing (a submission server refusing
//!   one recipient stops the message, so the user fixes the address and sends again without
//!   duplicates), except past the server's recipient limit (452): what the earlier
//!   transactions delivered stays delivered.
//! - [`Flush`]: the queue runner's sender for account routes: one connection per account,
//!   an account that cannot be reached deferred at once for the rest of its messages.

use crate::account::{self, Account, Auth, Password};
use crate::config::Config;
use crate::exit::{Code, Error, Result};
use crate::net::tls::{ClientCert, Level, Mode, Start, TlsOptions};
use crate::smtp::Reply;
use crate::smtp::client::{
    self, Content, Credentials, Envelope, Options, Partial, Refusal, Session, Timeouts, Trace,
};
use crate::store::queue::{self, Attempt, Route, ServerFlags, Verdict};
use std::path::PathBuf;
use std::time::Duration;

/// What a tool's command line says over an account's keys (`None`: the key decides).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// The server's host.
    pub host: Option<String>,
    /// Its port.
    pub port: Option<u16>,
    /// The TLS words ([`Mode::parse`]).
    pub tls: Option<String>,
    /// CA certificates to trust instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// The only certificate accepted, by SHA-256 fingerprint.
    pub fingerprint: Option<String>,
    /// The name the certificate is verified for.
    pub tls_server_name: Option<String>,
    /// The login.
    pub user: Option<String>,
    /// The command that prints the password.
    pub password_command: Option<String>,
    /// The AUTH mechanism word.
    pub auth: Option<String>,
    /// The EHLO name.
    pub helo: Option<String>,
    /// The client certificate and its key (both or neither).
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key.
    pub tls_key_file: Option<PathBuf>,
    /// The local address to connect from (empty: the system's choice).
    pub source_ip: Option<String>,
    /// The SOCKS5 proxy (empty: none).
    pub proxy_host: Option<String>,
    /// Its port.
    pub proxy_port: Option<u16>,
    /// Seconds to wait at each step.
    pub timeout: Option<u64>,
    /// The log file.
    pub log: Option<PathBuf>,
    /// Log to syslog too.
    pub syslog: bool,
    /// Queue a message the server refuses for now.
    pub queue_on_failure: bool,
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

impl Overrides {
    /// The overrides a queued message recorded (`store::queue::ServerFlags`): the server
    /// flags it was queued with, and nothing of the runner's own.
    pub fn from_flags(flags: &ServerFlags) -> Overrides {
        let f = flags.clone();
        Overrides {
            host: f.host,
            port: f.port,
            tls: f.tls,
            ca_file: f.ca_file,
            fingerprint: f.fingerprint,
            tls_server_name: f.tls_server_name,
            user: f.user,
            password_command: f.password_command,
            auth: f.auth,
            helo: f.helo,
            timeout: f.timeout,
            tls_cert_file: f.tls_cert_file,
            tls_key_file: f.tls_key_file,
            source_ip: f.source_ip,
            proxy_host: f.proxy_host,
            proxy_port: f.proxy_port,
            ..Overrides::default()
        }
    }
}

/// Where the server of `account` with `over` is, as `host:port`, without contacting it or
/// running a password command (for a queue listing).
pub fn address(cfg: &Config, account: Option<&str>, over: &Overrides) -> Result<String> {
    let send = Account::resolve(cfg, account)?.send()?;
    let (_, host, port) = endpoint(over, &send, account)?;
    Ok(match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    })
}

/// The TLS mode, host and port: the overrides over the account's keys, else the defaults
/// (STARTTLS, required; the port of the mode).
fn endpoint(
    over: &Overrides,
    send: &account::Send,
    account: Option<&str>,
) -> Result<(Mode, String, u16)> {
    let security = match over.tls.as_deref() {
        Some(words) => Mode::parse(words)
            .map_err(|why| Error::new(Code::Usage, format!("--tls {words}"), why))?,
        // Without tls or --tls, TLS is required (account.rs).
        None => send.tls.mode.unwrap_or(Mode::STARTTLS),
    };
    let host = over.host.clone().or(send.host.clone()).ok_or_else(|| {
        Error::new(
            Code::Config,
            "no server",
            format!(
                "give --host or a host in the configuration (account {})",
                account.unwrap_or("defaults")
            ),
        )
    })?;
    let port = over
        .port
        .or(send.port)
        .unwrap_or(match (security.level, security.start) {
            (Level::None, _) => 25,
            (_, Start::Implicit) => 465,
            (_, Start::StartTls) => 587,
        });
    Ok((security, host, port))
}

/// Lay `over` over the sending keys of `account` and build the client options, the login's
/// password revealed (its command run).
pub fn server(
    cfg: &Config,
    account: Option<String>,
    over: &Overrides,
    trace: Option<Trace>,
) -> Result<Server> {
    let (mut server, login) = unrevealed(cfg, account, over, trace)?;
    server.options.auth = login.map(Login::reveal).transpose()?;
    Ok(server)
}

/// A login, its password not yet revealed.
pub struct Login {
    /// The user name.
    pub user: String,
    /// Where the password comes from.
    pub password: Password,
    /// The tool's password command gave it, not the account.
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

/// [`server`] with the login apart and its password not revealed; the options carry no
/// credentials.
pub fn unrevealed(
    cfg: &Config,
    account: Option<String>,
    over: &Overrides,
    trace: Option<Trace>,
) -> Result<(Server, Option<Login>)> {
    let acct = Account::resolve(cfg, account.as_deref())?;
    let send = acct.send()?;
    let (security, host, port) = endpoint(over, &send, account.as_deref())?;
    let fingerprint = match over.fingerprint.as_deref() {
        Some(f) => Some(crate::net::tls::parse_fingerprint(f)?),
        None => send.tls.options.fingerprint,
    };
    let tls = TlsOptions {
        ca_file: over.ca_file.clone().or(send.tls.options.ca_file.clone()),
        fingerprint,
        server_name: (over.tls_server_name.clone()).or(send.tls.options.server_name.clone()),
        client_cert: client_cert(over, &send)?,
        dane: None,
    };
    // An empty flag unsets the key, as msmtp's `--proxy-host=` does.
    let source = match over.source_ip.as_deref() {
        Some("") => None,
        Some(ip) => Some(
            ip.parse()
                .map_err(|_| usage_error("--source-ip", ip, "not an IP address"))?,
        ),
        None => send.source_ip,
    };
    let proxy = match (over.proxy_host.as_deref(), send.proxy.clone()) {
        (Some(""), _) => None,
        (Some(host), p) => Some(account::Proxy {
            host: host.to_string(),
            port: (over.proxy_port)
                .or(p.as_ref().map(|p| p.port))
                .unwrap_or(1080),
            login: p.and_then(|p| p.login),
        }),
        (None, Some(p)) => Some(account::Proxy {
            port: over.proxy_port.unwrap_or(p.port),
            ..p
        }),
        (None, None) => None,
    };
    let timeouts = match over.timeout.or(send.timeout) {
        Some(secs) => Timeouts::uniform(Duration::from_secs(secs.max(1))),
        None => Timeouts::default(),
    };
    let login = login(over, &send)?;
    let helo = match (&over.helo, &send.domain) {
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
        log: over.log.clone().or(acct.logfile),
        syslog: over.syslog || acct.syslog,
        queue_on_failure: over.queue_on_failure || send.queue_on_failure,
        proxy,
    };
    Ok((server, login))
}

/// The client certificate: the overrides' over the account's `tls_cert_file` and
/// `tls_key_file`; both or neither.
fn client_cert(over: &Overrides, send: &account::Send) -> Result<Option<ClientCert>> {
    let key = send.tls.options.client_cert.as_ref();
    let cert_file = over.tls_cert_file.clone().or(key.map(|c| c.cert.clone()));
    let key_file = over.tls_key_file.clone().or(key.map(|c| c.key.clone()));
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

/// `flag value: why`, a usage error.
pub fn usage_error(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::new(Code::Usage, format!("{flag} {value:?}"), why)
}

/// The login: the overrides' `auth`, `user` and password command over the account's keys.
/// A user means AUTH unless `auth off`; `auth` without a user is an error, not a silent
/// no-login.
fn login(over: &Overrides, send: &account::Send) -> Result<Option<Login>> {
    let auth = match over.auth.as_deref() {
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
    let Some(user) = over.user.clone().or(send.user.clone()) else {
        if auth.is_some() {
            return Err(Error::new(
                Code::Config,
                "auth",
                "needs a user (--user or user in the configuration)",
            ));
        }
        return Ok(None);
    };
    let password = match (&over.password_command, &send.password) {
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
        password_flag: over.password_command.is_some(),
        mechanism,
    }))
}

/// Connect to the account's server: its host name resolved here, the client takes
/// addresses; through a proxy, the proxy's name is resolved here and the server's by the
/// proxy (no DNS query for it leaves this host).
pub fn connect(server: &Server) -> Result<Session> {
    let host = server.host.as_str();
    // The connect timeout covers the name's lookup too (getaddrinfo has none of its own).
    let deadline = server.options.timeouts.connect;
    let resolve = |host: &str, port: u16| -> Result<Vec<std::net::SocketAddr>> {
        crate::net::dns::resolve_host(host, port, deadline)
            .map_err(|e| Error::io(Code::TempFail, format!("resolve {host}"), e))
    };
    match &server.proxy {
        Some(p) => {
            let proxy = crate::net::dial::Proxy {
                name: format!("{}:{}", p.host, p.port),
                addrs: resolve(&p.host, p.port).map_err(|e| e.context("proxy"))?,
                login: p.login.clone(),
            };
            Session::connect_via(&proxy, host, server.port, &server.options)
        }
        None => Session::connect(&resolve(host, server.port)?, host, &server.options),
    }
}

/// RFC 8689 §4.2.1: a REQUIRETLS message goes only over verified TLS (the account's `tls`
/// at `verify`, msubmit's default) to a server that offers REQUIRETLS; else it is not sent,
/// for good (the sender asked for that rather than a weaker path).
pub fn requiretls(server: &Server, session: &Session, env: &Envelope) -> Result<()> {
    if !env.requiretls {
        return Ok(());
    }
    let verified = server.options.tls.level == crate::net::tls::Level::Verify;
    if !verified || !session.is_tls() {
        let why = "REQUIRETLS needs TLS with the certificate verified (tls verify): not sent";
        return Err(Error::new(Code::Unavailable, "REQUIRETLS", why));
    }
    if !session.capabilities().requiretls {
        let why = format!(
            "{} does not offer REQUIRETLS (RFC 8689), which the message requires: not sent",
            server.host
        );
        return Err(Error::new(Code::Unavailable, "REQUIRETLS", why));
    }
    Ok(())
}

/// A message in the queue, locked by the runner.
pub struct Queued<'a, 'q>(pub &'a queue::Job<'q>);

impl Content for Queued<'_, '_> {
    fn open(&mut self) -> Result<Box<dyn std::io::Read + '_>> {
        Ok(Box::new(self.0.message()))
    }
}

/// What sending one message came to: the last reply to the end of data, every failure
/// (none when the server accepted it for every recipient), and for each recipient the reply
/// to the end of data that delivered to it.
pub struct Sent {
    /// The reply to the last end of data.
    pub data: Option<Reply>,
    /// Every failure, in transaction order.
    pub refusals: Vec<Refusal>,
    /// Per recipient of the envelope: the reply that delivered to it.
    pub delivered: Vec<Option<Reply>>,
}

/// Send one message over `session`, all or nothing; except that when the server limits the
/// recipients per message (452, RFC 5321 §4.5.3.1.10), the rest go in further transactions
/// ([`Session::deliver`]), and what the earlier ones delivered stays delivered whatever
/// becomes of the later ones.
pub fn deliver(session: &mut Session, env: &Envelope, source: &mut dyn Content) -> Result<Sent> {
    let done = session.deliver(env, source, Partial::AbortUnlessTooMany);
    let delivered: Vec<Option<Reply>> = (done.rcpts.iter())
        .map(|v| match v {
            client::Verdict::Accepted(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    match done.error {
        Some(e) if delivered.iter().all(Option::is_none) => Err(e),
        Some(e) => {
            let mut refusals = done.refusals;
            refusals.push(e.into());
            Ok(Sent {
                data: None,
                refusals,
                delivered,
            })
        }
        None => Ok(Sent {
            refusals: done.refusals,
            data: done.data,
            delivered,
        }),
    }
}

/// What the caller does with the result of each message (its log).
type Logged<'a> = dyn FnMut(&Server, &Envelope, &Result<Sent>) + 'a;

/// How a [`Flush`] finds the server of an account route: its account (`None`: the
/// defaults) and the server flags it was queued with.
type ServerFor<'a> = dyn FnMut(Option<String>, &ServerFlags) -> Result<Server> + 'a;

/// The queue runner's sender for account routes: each message as one submission, all or
/// nothing, over one connection per account (the runner hands over an account's messages
/// in a row). What it has to say goes to its caller's functions: the server of an account
/// (the caller's flags over the keys), the log of each message, a warning.
pub struct Flush<'a> {
    /// The server of an account route (`None`: the defaults) with the server flags it was
    /// queued with.
    server_for: Box<ServerFor<'a>>,
    /// Called after each message with its result (the tool's log).
    logged: Box<Logged<'a>>,
    /// A diagnostic for the user.
    warn: Box<dyn Fn(&str) + 'a>,
    /// The route of the messages in hand: the account and the flags they were queued with.
    account: Option<(Option<String>, ServerFlags)>,
    /// Its server settings; `None` when they failed (its messages are not tried).
    server: Option<Server>,
    /// The connection to it.
    session: Option<Session>,
    /// Why it cannot be reached: its other messages are deferred without a new try.
    down: Option<String>,
    /// The exit codes of every failure, in order.
    codes: Vec<Code>,
}

impl<'a> Flush<'a> {
    /// A sender with these functions.
    pub fn new(
        server_for: impl FnMut(Option<String>, &ServerFlags) -> Result<Server> + 'a,
        logged: impl FnMut(&Server, &Envelope, &Result<Sent>) + 'a,
        warn: impl Fn(&str) + 'a,
    ) -> Flush<'a> {
        Flush {
            server_for: Box::new(server_for),
            logged: Box::new(logged),
            warn: Box::new(warn),
            account: None,
            server: None,
            session: None,
            down: None,
            codes: Vec::new(),
        }
    }

    /// The exit codes of the failures so far, in order.
    pub fn codes(&self) -> &[Code] {
        &self.codes
    }

    /// Close the connection, if one is open.
    pub fn quit(&mut self) {
        if let Some(s) = self.session.take() {
            s.quit();
        }
    }

    /// Close the connection and forget what this run learnt (an account's settings, that
    /// its server is down): a daemon's next run reads and tries them again.
    pub fn reset(&mut self) {
        self.quit();
        self.account = None;
        self.server = None;
        self.down = None;
    }

    /// Send one job of an account route; `None` (untried) for any other route, or when the
    /// account's settings fail.
    pub fn send(&mut self, job: &queue::Job<'_>) -> Option<Vec<Attempt>> {
        let Route::Account { name, flags } = &job.queued().route else {
            return None;
        };
        let route = (name.clone(), (**flags).clone());
        if self.account.as_ref() != Some(&route) {
            self.quit();
            self.account = Some(route);
            self.down = None;
            self.server = match (self.server_for)(name.clone(), flags) {
                Ok(s) => Some(s),
                Err(e) => {
                    (self.warn)(&e.to_string());
                    self.codes.push(e.code());
                    None
                }
            };
        }
        let server = self.server.as_ref()?;
        let n = job.rcpts().len();
        let all = |verdict, why: &str| Some(vec![Attempt::new(verdict, why); n]);
        if let Some(why) = &self.down {
            return all(Verdict::Deferred, why);
        }
        // A kept session the server has closed since (an idle timeout) is replaced, not
        // tried and failed at MAIL FROM.
        if self.session.as_mut().is_none_or(|s| !s.is_reusable()) {
            match connect(server) {
                Ok(s) => self.session = Some(s),
                Err(e) => {
                    // The server is unreachable for the rest of this account too. The
                    // messages stay queued whatever the reason (a corrected setting sends
                    // them), but the exit status says which it was: a setting that does
                    // not fit the server (78, e.g. the TLS mode) or a refused certificate
                    // (69) is no 75, which says "retry later" for ever.
                    (self.warn)(&e.to_string());
                    self.codes.push(e.code());
                    self.session = None;
                    let why = self.down.insert(e.to_string());
                    return all(Verdict::Deferred, why);
                }
            }
        }
        let session = self.session.as_mut()?;
        let env = job.envelope();
        let result = requiretls(server, session, &env)
            .and_then(|()| deliver(session, &env, &mut Queued(job)));
        (self.logged)(server, &env, &result);
        let (delivered, errs) = match result {
            Ok(sent) => (
                sent.delivered,
                sent.refusals.into_iter().map(|r| r.error).collect(),
            ),
            Err(e) => (vec![None; n], vec![e]),
        };
        // All or nothing: a message refused for one recipient is not sent to the others,
        // and fails (or waits) with that recipient.
        let verdict = match errs.iter().any(|e| !e.code().is_temporary()) {
            true => Verdict::Failed,
            false => Verdict::Deferred,
        };
        let text = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if !errs.is_empty() {
            (self.warn)(&format!("{}: {text}", job.id()));
        }
        self.codes.extend(errs.iter().map(Error::code));
        let attempts = delivered.into_iter().map(|d| match d {
            Some(reply) => Attempt::new(Verdict::Delivered, reply),
            None if errs.is_empty() => Attempt::new(Verdict::Deferred, "not sent"),
            None => Attempt::new(verdict, &text),
        });
        Some(attempts.collect())
    }
}

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        self.quit();
    }
}
