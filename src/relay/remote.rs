//! SMTP to a destination: its hosts in order, every address of each (RFC 5321 §5.1), a
//! connection kept for the next message to the same destination, and hosts found dead
//! remembered for the run, so the other messages to them do not each wait for the same
//! timeout (Exim's per-host hints, in memory).
//!
//! A destination's recipients go in transactions of at most [`super::Settings::max_rcpts`];
//! the client's [`Session::deliver`] sends those a server refuses as too many (452) in a
//! next one, and gives a verdict per recipient: accepted, refused (4xx later, 5xx a
//! bounce), or unsettled (the connection broke: later).
//!
//! What is checked before a message goes: an address that needs SMTPUTF8 towards a server
//! without it fails (5.6.7, RFC 6531 §3.2), and so does an 8-bit body towards a server
//! without 8BITMIME (5.6.3): RFC 6152 §3 allows converting it to 7 bits, but rewriting the
//! MIME structure of a message in transit is where relays break signatures and messages;
//! this relay returns it with a reason instead, as Postfix does with
//! `disable_mime_output_conversion`. Almost every server offers 8BITMIME.
//!
//! Connection-stage failures (a refused or silent connection, a 4xx or 5xx greeting, a failed
//! STARTTLS that the TLS level requires) move on to the next address and host, and make the
//! recipients wait when none is left: a greeting's 5xx is the host's problem, not the
//! recipient's (Postfix's `smtp_skip_5xx_greeting`).

use super::{Outcome, Settings};
use crate::exit::Error;
use crate::net::dns::{Failure, Lookup, Resolver, Routing};
use crate::smtp::client::{self, Content, Envelope, Options, Partial, Session};
use crate::store::queue::Verdict;
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
}

/// What a run knows of the addresses it connected to, shared by the threads of a parallel
/// run: an address one thread is connecting to for the first time is waited for by the
/// others, so a dead host costs one timeout in all (Exim's per-host hints, for one run).
#[derive(Clone, Default)]
pub struct Dead(Arc<(Mutex<HashMap<SocketAddr, Health>>, Condvar)>);

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
    /// `Some(why)` when `addr` is dead; else `None`, and this thread may connect: it must
    /// then call [`Dead::found`] with the outcome.
    fn check(&self, addr: &SocketAddr) -> Option<String> {
        let (map, cond) = &*self.0;
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match m.get(addr) {
                Some(Health::Dead(why)) => return Some(why.clone()),
                Some(Health::Alive) => return None,
                Some(Health::Trying) => {
                    m = cond.wait(m).unwrap_or_else(|p| p.into_inner());
                }
                None => {
                    m.insert(*addr, Health::Trying);
                    return None;
                }
            }
        }
    }

    /// What connecting to `addr` came to: `Some(why)` when it failed.
    fn found(&self, addr: &SocketAddr, dead: Option<String>) {
        let (map, cond) = &*self.0;
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(*addr, dead.map_or(Health::Alive, Health::Dead));
        cond.notify_all();
    }

    fn clear(&self) {
        let (map, cond) = &*self.0;
        map.lock().unwrap_or_else(|p| p.into_inner()).clear();
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

    /// Forget the dead hosts (a daemon's next run tries them again).
    pub fn forget_dead(&mut self) {
        self.dead.clear();
    }

    /// Send one message to the recipients `rcpts` (indexes into `env`, all for `dest`); one
    /// outcome per recipient of `rcpts`, in order.
    pub fn send(
        &mut self,
        s: &Settings,
        dest: &Dest,
        env: &Envelope,
        rcpts: &[usize],
        content: &mut dyn Content,
    ) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = vec![None; rcpts.len()];
        for chunk in (0..rcpts.len())
            .collect::<Vec<_>>()
            .chunks(s.max_rcpts.max(1))
        {
            let mut group = env.only(|i, _| chunk.iter().any(|&k| rcpts[k] == i));
            group.smtputf8 = group.needs_smtputf8();
            let results = self.transaction(s, dest, &group, content);
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
        content: &mut dyn Content,
    ) -> Vec<Outcome> {
        let n = env.rcpts.len();
        let open = match self.session(s, dest) {
            Ok(o) => o,
            Err(o) => return vec![o; n],
        };
        let caps = open.session.capabilities();
        // RFC 6531 §3.2: without SMTPUTF8 a non-ASCII address cannot be sent.
        if env.smtputf8 && !caps.smtputf8 {
            let why = format!(
                "{} does not support SMTPUTF8, which the non-ASCII addresses need \
                 (RFC 6531 3.2)",
                open.host
            );
            return vec![Outcome::failed(&why, "5.6.7", &open.relay, Some(&open.host)); n];
        }
        if env.body.is_eight_bit() && !caps.eightbitmime {
            let why = format!(
                "the message has 8-bit content and {} does not support 8BITMIME \
                 (RFC 6152); it was not converted to 7 bits",
                open.host
            );
            return vec![Outcome::failed(&why, "5.6.3", &open.relay, Some(&open.host)); n];
        }
        let done = open.session.deliver(env, content, Partial::SendToAccepted);
        open.used = Instant::now();
        let (relay, host) = (open.relay.clone(), open.host.clone());
        let broken = !open.session.is_usable();
        if broken {
            self.drop_session(dest);
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
    fn session(&mut self, s: &Settings, dest: &Dest) -> std::result::Result<&mut Open, Outcome> {
        if let Some(i) = self.open.iter().position(|o| o.dest == *dest) {
            if self.open[i].session.is_reusable() {
                let o = self.open.remove(i);
                self.open.push(o);
                return Ok(self.open.last_mut().expect("just pushed"));
            }
            self.open.remove(i).session.quit();
        }
        let plan = self.plan(s, dest)?;
        let mut tried = Vec::new();
        let mut skipped = Vec::new();
        for (name, addrs) in &plan.hosts {
            for addr in addrs {
                if let Some(why) = self.dead.check(addr) {
                    skipped.push(format!("{name}[{}]: {why}", addr.ip()));
                    continue;
                }
                match Session::connect(&[*addr], name, &plan.options) {
                    Ok(session) => {
                        self.dead.found(addr, None);
                        if self.open.len() >= KEEP {
                            self.open.remove(0).session.quit();
                        }
                        self.open.push(Open {
                            dest: dest.clone(),
                            session,
                            relay: format!("{name}[{}]:{}", addr.ip(), addr.port()),
                            host: name.clone(),
                            used: Instant::now(),
                        });
                        return Ok(self.open.last_mut().expect("just pushed"));
                    }
                    Err(e) => {
                        let why = e.to_string();
                        tried.push(why.clone());
                        self.dead.found(addr, Some(why));
                    }
                }
            }
        }
        let why = match (tried.last(), skipped.first()) {
            (Some(last), _) => last.clone(),
            (None, Some(first)) => format!("host down earlier in this run: {first}"),
            (None, None) => "no address to connect to".into(),
        };
        Err(Outcome::deferred(&why, "4.4.1", "none"))
    }

    /// Where `dest` is and how to speak to it, or why its recipients cannot go now (a DNS
    /// failure: temporary, or permanent with its status).
    fn plan(&mut self, s: &Settings, dest: &Dest) -> std::result::Result<Plan, Outcome> {
        let mut options = Options {
            tls: crate::net::tls::Mode::MAY,
            trust: Default::default(),
            helo: s.hostname().to_string(),
            auth: None,
            timeouts: s.timeouts,
            trace: s.trace.clone(),
            source: None,
        };
        let hosts = match dest {
            Dest::Mx(domain) => {
                options.tls = s.routes.tls_for(domain);
                let routing = Routing {
                    my_names: s.hostnames.clone(),
                    allow_private: s.allow_private,
                };
                let targets = self.lookup(s)?.targets(domain, &routing);
                let targets = targets.map_err(|f| dns_outcome(&f))?;
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
        Ok(Plan { hosts, options })
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
    }
}
