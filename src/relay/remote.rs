//! SMTP to a destination: its hosts in order, every address of each (RFC 5321 §5.1), a
//! connection kept for the next message to the same destination, and hosts found dead
//! remembered for the run, so the other messages to them do not each wait for the same
//! timeout, and across runs in the queue's hints ([`crate::store::queue::hosts`], Exim's
//! per-host retry hints): until a dead address's hint is due, no run dials it, and every
//! message for it waits at once.
//!
//! A destination's recipients go in transactions of at most [`super::Settings::max_rcpts`];
//! the client's [`Session::deliver`] sends those a server refuses as too many (452) in a
//! next one, and gives a verdict per recipient: accepted, refused (4xx later, 5xx a
//! bounce), or unsettled (the connection broke: later).
//!
//! What is checked before a message goes: an address that needs SMTPUTF8 towards a server
//! without it fails (5.6.7, RFC 6531 §3.2). An 8-bit body towards a server without
//! 8BITMIME is converted to 7 bits (RFC 6152 §3, [`crate::message::downgrade`]: its 8-bit
//! MIME leaves re-encoded, as Postfix and sendmail do), and fails with the converter's
//! reason only where that is impossible (8-bit in a header: 5.6.7; in a message/* part:
//! 5.6.3). Almost every server offers 8BITMIME.
//!
//! Connection-stage failures (a refused or silent connection, a 4xx or 5xx greeting, a failed
//! STARTTLS that the TLS level requires) move on to the next address and host, and make the
//! recipients wait when none is left: a greeting's 5xx is the host's problem, not the
//! recipient's (Postfix's `smtp_skip_5xx_greeting`).

use super::{Outcome, Settings};
use crate::exit::Error;
use crate::message::downgrade::Error as Downgrade;
use crate::net::dns::{Failure, Lookup, Resolver, Routing};
use crate::smtp::client::{self, Content, Envelope, Options, Partial, Session};
use crate::store::queue::hosts::Hosts;
use crate::store::queue::{Retry, Verdict};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// A destination: where one group of recipients goes, the key connections are kept by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dest {
    /// The recipient domain's MX.
    Mx(String),
    /// The hosts of static route `n`.
    Route(usize),
    /// The server of the account of static route `n`.
    Account(usize, String),
}

/// The hosts to try for a destination, and how to speak to them.
struct Plan {
    /// Each host's name (for the certificate and the log) and addresses, in order.
    hosts: Vec<(String, Vec<SocketAddr>)>,
    /// TLS, our name, login, timeouts.
    options: Options,
    /// MX delivery: each host's TLS as DANE, MTA-STS or `relay_tls` require it
    /// ([`super::policy`]); a host missing here uses `options`.
    tls: Option<super::policy::Plan>,
}

/// An open connection and what the log says of it.
struct Open {
    dest: Dest,
    session: Session,
    /// `host[address]:port`.
    relay: String,
    /// The server's name for Remote-MTA.
    host: String,
    used: Instant,
    /// Its TLS was authenticated (DANE, or a certificate verified for its name): what a
    /// REQUIRETLS message needs (RFC 8689 §4.2.1).
    verified: bool,
    /// Opened without DANE and MTA-STS, for a `TLS-Required: No` message: never reused for
    /// another.
    relaxed: bool,
    /// Kept from an earlier transaction (not opened for this one).
    reused: bool,
}

/// What a run knows of the addresses it connected to, shared by the threads of a parallel
/// run: an address one thread is connecting to for the first time is waited for by the
/// others, so a dead host costs one timeout in all; with the queue's hints, an address
/// found dead in an earlier run counts as dead until its hint is due.
///
/// What a connection came to depends on the TLS level asked as well as on the host: one
/// that does not offer STARTTLS fails a destination that requires TLS and serves one at
/// `may`. So addresses are known per level class ([`Strict`]: `encrypt` and `verify`, or
/// not), and only failures at `may` or `none`, the host's own, become hints (read at every
/// level: a host that cannot be reached in clear text cannot be reached with TLS either).
#[derive(Clone, Default)]
pub struct Dead(Arc<(Mutex<Known>, Condvar)>, Option<Arc<Hints>>);

/// The destination requires TLS (`encrypt`, `verify`): its failures may be its policy's.
type Strict = bool;

/// Each address's health in this run, per level class.
type Known = HashMap<(SocketAddr, Strict), Health>;

/// The queue's per-host hints as one run uses them.
pub struct Hints {
    /// Where they are kept.
    pub hosts: Hosts,
    /// The run's time.
    pub now: u64,
    /// The waits after failures in a row.
    pub retry: Retry,
    /// Read them (else only write them: a flush by hand tries every host).
    pub honour: bool,
}

/// One address's health in this run.
#[derive(Clone)]
enum Health {
    /// A connection to it worked.
    Alive,
    /// A thread is connecting to it for the first time.
    Trying,
    /// Connecting failed, for this reason.
    Dead(String),
}

impl Dead {
    /// Nothing known yet; hints read and written through `hints`, when given.
    pub fn new(hints: Option<Hints>) -> Dead {
        Dead(Default::default(), hints.map(Arc::new))
    }

    /// `Some(why)` when `addr` is dead; else `None`, and this thread may connect: it must
    /// then call [`Dead::found`] with the outcome.
    fn check(&self, addr: &SocketAddr, strict: Strict) -> Option<String> {
        let (map, cond) = &*self.0;
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (*addr, strict);
        loop {
            match m.get(&key) {
                Some(Health::Dead(why)) => return Some(why.clone()),
                Some(Health::Alive) => return None,
                Some(Health::Trying) => {
                    m = cond.wait(m).unwrap_or_else(|p| p.into_inner());
                }
                None => {
                    let hint = (self.1.as_deref())
                        .filter(|h| h.honour)
                        .and_then(|h| Some(h.hosts.get(addr)?).filter(|g| g.next > h.now));
                    if let Some(g) = hint {
                        let why = format!(
                            "down in an earlier run ({} failures in a row, not tried before {}): {}",
                            g.failures,
                            crate::message::stamp::local_time(g.next),
                            g.error
                        );
                        m.insert(key, Health::Dead(why.clone()));
                        return Some(why);
                    }
                    m.insert(key, Health::Trying);
                    return None;
                }
            }
        }
    }

    /// What connecting to `addr` of `host` came to: `Some(why)` when it failed; recorded in
    /// the hints (a failure) or cleared from them (a success), then told to the threads
    /// waiting for it.
    fn found(&self, host: &str, addr: &SocketAddr, strict: Strict, dead: Option<String>) {
        if let Some(h) = self.1.as_deref() {
            match &dead {
                Some(why) if !strict => h.hosts.down(host, addr, h.now, &h.retry, why),
                Some(_) => {}
                None => h.hosts.up(addr),
            }
        }
        let (map, cond) = &*self.0;
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let health = match dead {
            None => Health::Alive,
            Some(why) => Health::Dead(format!("down earlier in this run: {why}")),
        };
        m.insert((*addr, strict), health);
        cond.notify_all();
    }
}

/// How many connections are kept open between messages.
const KEEP: usize = 16;

/// SMTP towards every destination of a run.
pub struct Remote {
    resolver: Option<Resolver>,
    /// Open connections, most recently used last.
    open: Vec<Open>,
    /// Addresses that failed at connection time in this run, with why; shared by the
    /// threads of a parallel run, so a dead host costs one timeout, not one per thread.
    dead: Dead,
}

impl Remote {
    /// No connection yet; the resolver is made when first needed.
    pub fn new() -> Remote {
        Remote {
            resolver: None,
            open: Vec::new(),
            dead: Dead::default(),
        }
    }

    /// No connection yet; the dead hosts shared with other threads' `Remote`s.
    pub fn sharing(dead: Dead) -> Remote {
        Remote {
            resolver: None,
            open: Vec::new(),
            dead,
        }
    }

    /// Close every connection (QUIT).
    pub fn close(&mut self) {
        for o in self.open.drain(..) {
            o.session.quit();
        }
    }

    /// From now on know of dead hosts what `dead` knows (a new run's, with its hints).
    pub fn use_dead(&mut self, dead: Dead) {
        self.dead = dead;
    }

    /// Send one message to the recipients `rcpts` (indexes into `env`, all for `dest`); one
    /// outcome per recipient of `rcpts`, in order. `relax`: the message says `TLS-Required:
    /// No` (RFC 8689 §5), so DANE and MTA-STS are not applied to it.
    pub fn send(
        &mut self,
        s: &Settings,
        dest: &Dest,
        env: &Envelope,
        rcpts: &[usize],
        relax: bool,
        content: &mut dyn Content,
    ) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = vec![None; rcpts.len()];
        for chunk in (0..rcpts.len())
            .collect::<Vec<_>>()
            .chunks(s.max_rcpts.max(1))
        {
            let mut group = env.only(|i, _| chunk.iter().any(|&k| rcpts[k] == i));
            group.smtputf8 = group.needs_smtputf8();
            let results = self.transaction(s, dest, &group, relax, content);
            for (&k, o) in chunk.iter().zip(results) {
                out[k] = Some(o);
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::deferred("not sent", "4.3.0", "none")))
            .collect()
    }

    /// One transaction (and its 452 rounds) to `env`'s recipients.
    fn transaction(
        &mut self,
        s: &Settings,
        dest: &Dest,
        env: &Envelope,
        relax: bool,
        content: &mut dyn Content,
    ) -> Vec<Outcome> {
        let n = env.rcpts.len();
        let open = match self.session(s, dest, env.requiretls, relax) {
            Ok(o) => o,
            Err(o) => return vec![o; n],
        };
        let caps = open.session.capabilities();
        // RFC 8689 §4.2.1: only to a server that offers REQUIRETLS, over verified TLS (the
        // session was opened so); else the message is returned, 5.7.30 (RFC 8689 §5).
        if env.requiretls && !(caps.requiretls && open.verified) {
            let why = format!(
                "{} does not support REQUIRETLS, which the sender asked for (RFC 8689)",
                open.host
            );
            return vec![Outcome::failed(&why, "5.7.30", &open.relay, Some(&open.host)); n];
        }
        // RFC 3461 §6.2.2: a server that takes DSN got the NOTIFY and reports; to one that
        // does not, this host reports success itself, as `relayed`.
        let success = (!caps.dsn).then_some(crate::message::dsn::Action::Relayed);
        // RFC 6531 §3.2: without SMTPUTF8 a non-ASCII address cannot be sent.
        if env.smtputf8 && !caps.smtputf8 {
            let why = format!(
                "{} does not support SMTPUTF8, which the non-ASCII addresses need \
                 (RFC 6531 3.2)",
                open.host
            );
            return vec![Outcome::failed(&why, "5.6.7", &open.relay, Some(&open.host)); n];
        }
        let mut seven;
        let mut env7;
        let (env, content): (&Envelope, &mut dyn Content) =
            if env.body.is_eight_bit() && !caps.eightbitmime {
                // RFC 6152 §3: converted to 7 bits, or returned with the reason.
                match SevenBit::of(content) {
                    Ok(s) => seven = s,
                    Err(Downgrade::Refused(r)) => {
                        let why = format!(
                            "{} does not support 8BITMIME (RFC 6152) and the message cannot \
                             be converted to 7 bits: {}",
                            open.host, r.why
                        );
                        let (relay, host) = (&open.relay, Some(open.host.as_str()));
                        return vec![Outcome::failed(&why, r.status, relay, host); n];
                    }
                    Err(Downgrade::Io(e)) => {
                        let why = format!("read the queued message: {e}");
                        return vec![Outcome::deferred(&why, "4.3.0", &open.relay); n];
                    }
                }
                env7 = env.clone();
                env7.body = crate::envelope::Body::SevenBit;
                (&env7, &mut seven)
            } else {
                (env, content)
            };
        let done = open.session.deliver(env, content, Partial::SendToAccepted);
        open.used = Instant::now();
        let (relay, host) = (open.relay.clone(), open.host.clone());
        let reused = open.reused;
        let broken = !open.session.is_usable();
        if broken {
            self.drop_session(dest);
        }
        // A kept connection the server closed while it waited (its idle timeout) can look
        // alive until the first command fails: nothing was answered, so nothing was taken,
        // and the message goes at once on a new connection instead of waiting for a retry.
        // Only once: a new connection is not reused, so this cannot loop.
        if broken && reused && done.unanswered {
            return self.transaction(s, dest, env, relax, content);
        }
        let why = done.error.as_ref().map(Error::to_string);
        done.rcpts
            .into_iter()
            .map(|v| match v {
                client::Verdict::Accepted(r) => Outcome {
                    verdict: Verdict::Delivered,
                    status: crate::message::dsn::status_of(&r.to_string())
                        .unwrap_or_else(|| "2.0.0".into()),
                    reply: r.to_string(),
                    relay: relay.clone(),
                    remote_mta: Some(host.clone()),
                    smtp: true,
                    success,
                },
                client::Verdict::Refused(r) => {
                    let text = r.to_string();
                    let status =
                        crate::message::dsn::status_of(&text).unwrap_or_else(|| "4.0.0".into());
                    let verdict = match r.code >= 500 {
                        true => Verdict::Failed,
                        false => Verdict::Deferred,
                    };
                    Outcome {
                        verdict,
                        reply: text,
                        status,
                        relay: relay.clone(),
                        remote_mta: Some(host.clone()),
                        smtp: true,
                        success: None,
                    }
                }
                client::Verdict::Unsettled => {
                    Outcome::deferred(why.as_deref().unwrap_or("not sent"), "4.4.2", &relay)
                }
            })
            .collect()
    }

    fn drop_session(&mut self, dest: &Dest) {
        if let Some(i) = self.open.iter().position(|o| o.dest == *dest) {
            self.open.remove(i).session.quit();
        }
    }

    /// The open connection to `dest`, or a new one; or the outcome for its recipients
    /// when no host can be reached.
    /// With `requiretls`, only over authenticated TLS: each host at least `verify` unless
    /// DANE authenticates it (RFC 8689 §4.2.1: DANE, MTA-STS or a verified certificate).
    fn session(
        &mut self,
        s: &Settings,
        dest: &Dest,
        requiretls: bool,
        relax: bool,
    ) -> std::result::Result<&mut Open, Outcome> {
        // Only the automatic policy is relaxed: a level the administrator fixed stays.
        let relax = relax
            && matches!(dest, Dest::Mx(d)
                if matches!(s.routes.policy_for(d), super::routes::TlsPolicy::Auto));
        if let Some(i) = self.open.iter().position(|o| o.dest == *dest) {
            let o = &mut self.open[i];
            if o.session.is_reusable() && (o.verified || !requiretls) && (!o.relaxed || relax) {
                let mut o = self.open.remove(i);
                o.reused = true;
                self.open.push(o);
                return Ok(self.open.last_mut().expect("just pushed"));
            }
            self.open.remove(i).session.quit();
        }
        let plan = self.plan(s, dest)?;
        let mut tried = Vec::new();
        let mut skipped = Vec::new();
        let mut ruled_out = None;
        for (name, addrs) in &plan.hosts {
            let mut options = plan.options.clone();
            // TLS-RPT (RFC 8460): the MX route's sessions, by the policy this host is held to.
            let policy = match dest {
                Dest::Mx(domain) => Some((
                    domain.as_str(),
                    (plan.tls.as_ref())
                        .filter(|_| !relax)
                        .and_then(|p| p.host(name))
                        .map_or("no-policy-found", |h| super::tlsrpt::policy_type(&h.by)),
                )),
                _ => None,
            };
            if let Some(h) = (plan.tls.as_ref())
                .filter(|_| !relax)
                .and_then(|p| p.host(name))
            {
                match &h.tls {
                    Ok((mode, trust)) => (options.tls, options.trust) = (*mode, trust.clone()),
                    Err(why) => {
                        ruled_out.get_or_insert_with(|| why.clone());
                        continue;
                    }
                }
            }
            if requiretls && options.trust.dane.is_none() {
                options.tls.level = options.tls.level.max(crate::net::tls::Level::Verify);
            }
            let verified =
                options.tls.level == crate::net::tls::Level::Verify || options.trust.dane.is_some();
            let testing = !relax
                && (plan.tls.as_ref().and_then(|p| p.host(name)))
                    .is_some_and(|h| h.by.starts_with("mta-sts testing"));
            // Per host: DANE or MTA-STS may require TLS of one host and not another.
            let strict = options.tls.level >= crate::net::tls::Level::Encrypt;
            for addr in addrs {
                if let Some(why) = self.dead.check(addr, strict) {
                    skipped.push(format!("{name}[{}]: {why}", addr.ip()));
                    continue;
                }
                let record = |result: &str| {
                    if let (Some((domain, policy)), Some(dir)) = (policy, &s.tlsrpt) {
                        let now = crate::store::queue::now();
                        let ip = addr.ip().to_string();
                        // Statistics: a line that cannot be written costs a count, not mail.
                        let _ = super::tlsrpt::record(dir, now, domain, policy, result, name, &ip);
                    }
                };
                let connected = match testing && s.tlsrpt.is_some() {
                    // RFC 8461 §5 and RFC 8460: a testing policy delivers as without one but
                    // reports what enforce would have refused, so try as enforce first and
                    // fall back (a second connection only when that fails for TLS).
                    true => {
                        let mut strict = options.clone();
                        strict.tls.level = crate::net::tls::Level::Verify;
                        match Session::connect(&[*addr], name, &strict) {
                            Ok(session) => {
                                record("success");
                                Ok(session)
                            }
                            Err(e) => match super::tlsrpt::result_type(&e.to_string()) {
                                Some(result) => {
                                    record(result);
                                    Session::connect(&[*addr], name, &options)
                                }
                                None => Err(e),
                            },
                        }
                    }
                    false => {
                        let connected = Session::connect(&[*addr], name, &options);
                        let result = match &connected {
                            Ok(_) => Some("success"),
                            Err(e) => super::tlsrpt::result_type(&e.to_string()),
                        };
                        if let Some(result) = result {
                            record(result);
                        }
                        connected
                    }
                };
                match connected {
                    Ok(session) => {
                        self.dead.found(name, addr, strict, None);
                        if self.open.len() >= KEEP {
                            self.open.remove(0).session.quit();
                        }
                        self.open.push(Open {
                            dest: dest.clone(),
                            session,
                            relay: format!("{name}[{}]:{}", addr.ip(), addr.port()),
                            host: name.clone(),
                            used: Instant::now(),
                            verified,
                            relaxed: relax,
                            reused: false,
                        });
                        return Ok(self.open.last_mut().expect("just pushed"));
                    }
                    Err(e) => {
                        let why = e.to_string();
                        tried.push(why.clone());
                        self.dead.found(name, addr, strict, Some(why));
                    }
                }
            }
        }
        let why = match (tried.last(), skipped.first(), ruled_out) {
            (Some(last), _, _) => last.clone(),
            (None, Some(first), _) => format!("host not tried: {first}"),
            // DANE or MTA-STS ruled every host out: wait (never send unprotected instead).
            (None, None, Some(why)) => {
                return Err(Outcome::deferred(&why, super::policy::STATUS, "none"));
            }
            (None, None, None) => "no address to connect to".into(),
        };
        Err(Outcome::deferred(&why, "4.4.1", "none"))
    }

    /// Where `dest` is and how to speak to it, or why its recipients cannot go now (a DNS
    /// failure: temporary, or permanent with its status).
    fn plan(&mut self, s: &Settings, dest: &Dest) -> std::result::Result<Plan, Outcome> {
        let mut options = Options {
            tls: crate::net::tls::Mode::MAY,
            trust: crate::net::tls::TlsOptions {
                ca_file: s.tls_trust_file.clone(),
                ..Default::default()
            },
            helo: s.hostname().to_string(),
            auth: None,
            timeouts: s.timeouts,
            trace: s.trace.clone(),
            source: None,
        };
        let mut tls = None;
        let hosts = match dest {
            Dest::Mx(domain) => {
                options.tls = s.routes.tls_for(domain);
                let routing = Routing {
                    my_names: s.hostnames.clone(),
                    allow_private: s.allow_private,
                };
                let targets = self.lookup(s)?.targets(domain, &routing);
                let targets = targets.map_err(|f| dns_outcome(&f))?;
                let now = crate::store::queue::now();
                tls = Some(super::policy::mx(s, self.lookup(s)?, domain, &targets, now));
                targets
                    .into_iter()
                    .map(|t| {
                        let addrs = t.addrs.iter().map(|a| SocketAddr::new(*a, s.mx_port));
                        (t.host, addrs.collect())
                    })
                    .collect()
            }
            Dest::Route(n) => {
                let Some(super::routes::Route {
                    via: super::routes::Via::Hosts(hops),
                    pattern,
                    ..
                }) = s.routes.routes.get(*n)
                else {
                    return Err(Outcome::deferred("no such route", "4.3.5", "none"));
                };
                options.tls = s.routes.tls_for(&pattern.to_string());
                // The administrator's hosts: trusted, private addresses and all.
                let routing = Routing {
                    my_names: Vec::new(),
                    allow_private: true,
                };
                let mut hosts = Vec::new();
                let mut failure = None;
                for hop in hops {
                    let port = hop.port.unwrap_or(s.mx_port);
                    let found = match hop.host.parse::<IpAddr>() {
                        Ok(ip) => Ok(vec![(hop.host.clone(), vec![ip])]),
                        Err(_) if hop.mx => self
                            .lookup(s)?
                            .targets(&hop.host, &routing)
                            .map(|ts| ts.into_iter().map(|t| (t.host, t.addrs)).collect()),
                        Err(_) => (self.lookup(s)?.addresses(&hop.host))
                            .map(|a| vec![(hop.host.clone(), a)]),
                    };
                    match found {
                        Ok(list) => hosts.extend(list.into_iter().map(|(h, addrs)| {
                            (
                                h,
                                addrs
                                    .into_iter()
                                    .map(|a| SocketAddr::new(a, port))
                                    .collect(),
                            )
                        })),
                        Err(f) => {
                            failure.get_or_insert(f);
                        }
                    }
                }
                hosts.retain(|(_, a): &(String, Vec<SocketAddr>)| !a.is_empty());
                if hosts.is_empty() {
                    // A route's host that is not found is the administrator's mistake, not
                    // the recipient's: wait for it to be fixed.
                    let why = failure.map_or("no address for the route's hosts".into(), |f| {
                        f.text().to_string()
                    });
                    return Err(Outcome::deferred(&why, "4.4.4", "none"));
                }
                hosts
            }
            Dest::Account(_, name) => {
                let server = super::account::server(
                    &s.config,
                    Some(name.clone()),
                    &Default::default(),
                    s.trace.clone(),
                )
                .map_err(|e| Outcome::deferred(&e.to_string(), "4.3.5", "none"))?;
                // This route resolves the account's server itself: a proxy ignored would
                // send the mail direct, where the account says it must not go.
                if let Some(p) = &server.proxy {
                    let why = format!(
                        "account {name}: its proxy_host {} is not supported on mrelay's \
                         account routes: send its queue with msubmit --flush",
                        p.host
                    );
                    return Err(Outcome::deferred(&why, "4.3.5", "none"));
                }
                let host = server.host.clone();
                let deadline = server.options.timeouts.connect;
                let addrs: Vec<SocketAddr> =
                    crate::net::dns::resolve_host(&host, server.port, deadline).map_err(|e| {
                        let e =
                            Error::io(crate::exit::Code::TempFail, format!("resolve {host}"), e);
                        Outcome::deferred(&e.to_string(), "4.4.3", "none")
                    })?;
                options = server.options;
                vec![(host, addrs)]
            }
        };
        Ok(Plan {
            hosts,
            options,
            tls,
        })
    }

    fn lookup(&mut self, s: &Settings) -> std::result::Result<&dyn Lookup, Outcome> {
        if self.resolver.is_none() {
            let r = Resolver::new(&s.dns)
                .map_err(|e| Outcome::deferred(&e.to_string(), "4.4.3", "none"))?;
            self.resolver = Some(r);
        }
        Ok(self.resolver.as_ref().expect("set above"))
    }
}

impl Default for Remote {
    fn default() -> Remote {
        Remote::new()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.close();
    }
}

/// A message converted to 7 bits for a server without 8BITMIME, held for the transaction
/// (in memory up to the buffer's limit, the rest in a temporary file).
struct SevenBit(crate::message::buffer::Buffer);

impl SevenBit {
    /// `content` read whole and converted.
    fn of(content: &mut dyn Content) -> std::result::Result<SevenBit, Downgrade> {
        let mut msg = Vec::new();
        let mut r = content
            .open()
            .map_err(|e| Downgrade::Io(std::io::Error::other(e.to_string())))?;
        std::io::Read::read_to_end(&mut r, &mut msg)?;
        drop(r);
        let mut out = crate::message::buffer::Buffer::new();
        crate::message::downgrade::seven_bit(&msg, &mut out)?;
        Ok(SevenBit(out))
    }
}

impl Content for SevenBit {
    fn open(&mut self) -> crate::exit::Result<Box<dyn std::io::Read + '_>> {
        let r = self
            .0
            .reader()
            .map_err(|e| Error::io(crate::exit::Code::TempFail, "read the converted message", e))?;
        Ok(Box::new(r))
    }
}

/// The outcome of a DNS answer that leaves nowhere to go.
fn dns_outcome(f: &Failure) -> Outcome {
    let verdict = match f.is_temporary() {
        true => Verdict::Deferred,
        false => Verdict::Failed,
    };
    Outcome {
        verdict,
        reply: f.text().to_string(),
        status: f.status().to_string(),
        relay: "none".into(),
        remote_mta: None,
        smtp: false,
        success: None,
    }
}
