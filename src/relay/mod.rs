//! The relay: mail on its way from the queue to its next hop, mrelay's work (RFC 5321 §5.1,
//! §6.1), as the queue runner's sender ([`Relay::send`]).
//!
//! For each queued message the runner hands over (its due recipients, locked):
//!
//! 1. **Route** each recipient by the entry's route: an account route goes through the
//!    account's server as msubmit sends ([`account`]); a local route through the delivery
//!    pipeline ([`local`]); the mx route by the configuration's static routes, first match
//!    wins, else the recipient domain's MX ([`routes`], [`crate::net::dns`]).
//! 2. **Group** the recipients per destination: one transaction each, at most
//!    [`Settings::max_rcpts`] recipients ([`remote`]); a connection is kept for the next
//!    message to the same destination, and a host found dead is skipped for the rest of the
//!    run. A queue run ([`Relay::run_parallel`]) sends [`Settings::lanes`] entries at once,
//!    a thread each, a destination's entries over at most `per_key` of them; the threads
//!    share what they learn of dead hosts.
//! 3. **Judge** each recipient: 2xx delivered; 4xx, a broken connection or a DNS failure
//!    waits (the runner's capped exponential backoff, [`Settings::retry`]); 5xx, a
//!    permanent DNS answer, or waiting past [`Settings::expire`] fails, and a report (a
//!    bounce) is queued about it before it is recorded ([`bounce`]).
//! 4. **Log** one key=value line per recipient and attempt ([`Line`]), as Postfix does.
//!    The caller writes it (stderr, syslog).
//!
//! The relay never prints: its lines and warnings go to the caller's functions.

pub mod account;
pub mod bounce;
pub mod dkim;
pub mod local;
pub mod policy;
pub mod remote;
pub mod routes;
pub mod sts;
pub mod tlsrpt;

use crate::config::Config;
use crate::envelope::Envelope;
use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::net::dns;
use crate::smtp::client::{Timeouts, Trace};
use crate::store::queue::{
    self, Attempt, Entry, Job, Lanes, Queue, Report, Retry, Route, Schedule, Verdict,
};
use remote::{Dest, Remote};
use routes::{Routes, Via, parse_duration};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// How the relay works: the configuration's keys (`route`, `relay_tls`,
/// `relay_tls_trust_file`, `relay_retry`,
/// `relay_retry_max`, `relay_expire`, `relay_delay_warning`, `relay_hostname`, `relay_connect_timeout`,
/// `relay_timeout`) with a tool's flags laid over them.
#[derive(Clone)]
pub struct Settings {
    /// This host's names: the first in EHLO and as the Reporting-MTA; all of them for the
    /// MX loop check (an MX host with one of these names is this host).
    pub hostnames: Vec<String>,
    /// Static routes and TLS policy.
    pub routes: Routes,
    /// The waits between attempts (default 5 minutes, doubling, at most 4 hours).
    pub retry: Retry,
    /// How long a recipient may wait before it fails (default 5 days).
    pub expire: Duration,
    /// After how long a recipient still waiting is reported delayed, once (off by
    /// default, as Postfix's delay_warning_time).
    pub delay_warning: Option<Duration>,
    /// After how long without a write an incomplete drop file in the maildrop is
    /// abandoned and removed (`relay_maildrop_timeout`, default 1 day).
    pub maildrop_timeout: Duration,
    /// How to reach the DNS.
    pub dns: dns::Options,
    /// The port of every MX connection, and of route hosts without one (25).
    pub mx_port: u16,
    /// MX and address-literal targets in loopback and private ranges are allowed.
    pub allow_private: bool,
    /// SMTP timeouts per phase; the connect timeout short, so a dead host costs seconds.
    pub timeouts: Timeouts,
    /// The most recipients in one transaction (RFC 5321 §4.5.3.1.8 requires servers to take
    /// 100).
    pub max_rcpts: usize,
    /// How many entries a queue run sends at once, in all and per destination
    /// (`relay_concurrency`, `relay_destination_concurrency`).
    pub lanes: Lanes,
    /// The SMTP dialogue, for `-v`.
    pub trace: Option<Trace>,
    /// The configuration, for account routes.
    pub config: Config,
    /// CA certificates for `verify` and MTA-STS (`relay_tls_trust_file`); `None`: the
    /// Mozilla roots.
    pub tls_trust_file: Option<std::path::PathBuf>,
    /// Where MTA-STS policies are fetched from and cached ([`sts`]); the tool sets the
    /// cache in the queue directory.
    pub sts: sts::Settings,
    /// `dkim` lines (value, origin) and `dkim_headers`: read by [`Settings::load_dkim`] when
    /// the tool is about to send, not before (a user's mrelay that only hands mail to mdrop
    /// need not read the service's key).
    pub dkim_specs: (Vec<(String, String)>, Vec<String>),
    /// Where TLS-RPT results are recorded ([`tlsrpt`]; the tool sets `QUEUE/tls-rpt`).
    pub tlsrpt: Option<std::path::PathBuf>,
    /// DKIM signers, one per signing domain ([`dkim`]).
    pub dkim: Vec<std::sync::Arc<crate::message::dkim::Signer>>,
}

impl Settings {
    /// The settings of `cfg`, every key checked; `hostnames` empty: this host's FQDN.
    pub fn from_config(cfg: &Config) -> Result<Settings> {
        let key = |k: &str| {
            debug_assert!(
                crate::account::known(k).is_some(),
                "{k} is missing from KEYS"
            );
            cfg.all(k).last()
        };
        let duration = |k: &str, default: Duration| -> Result<Duration> {
            match key(k) {
                None => Ok(default),
                Some(v) => parse_duration(&v.text)
                    .map_err(|why| Error::new(Code::Config, &v.origin, format!("{k}: {why}"))),
            }
        };
        let count = |k: &str, default: usize| -> Result<usize> {
            match key(k) {
                None => Ok(default),
                Some(v) => match v.text.trim().parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => Ok(n),
                    _ => Err(Error::new(
                        Code::Config,
                        &v.origin,
                        format!("{k}: not a number from 1 to 1000: {:?}", v.text),
                    )),
                },
            }
        };
        let hostnames = match key("relay_hostname") {
            Some(v) => crate::config::words(&v.text)
                .map_err(|why| Error::new(Code::Config, &v.origin, why))?,
            None => Vec::new(),
        };
        let mut timeouts = Timeouts::default();
        if key("relay_timeout").is_some() {
            let t = duration("relay_timeout", Duration::ZERO)?.max(Duration::from_secs(1));
            timeouts = Timeouts::uniform(t);
        }
        timeouts.connect =
            duration("relay_connect_timeout", Duration::from_secs(10))?.max(Duration::from_secs(1));
        Ok(Settings {
            hostnames,
            routes: Routes::from_config(cfg)?,
            retry: Retry {
                first: duration("relay_retry", Duration::from_secs(300))?,
                max: duration("relay_retry_max", Duration::from_secs(4 * 3600))?,
            },
            expire: duration("relay_expire", Duration::from_secs(5 * 86400))?,
            delay_warning: Some(duration("relay_delay_warning", Duration::ZERO)?)
                .filter(|d| !d.is_zero()),
            maildrop_timeout: duration("relay_maildrop_timeout", Duration::from_secs(86400))?,
            dns: dns::Options::default(),
            mx_port: 25,
            allow_private: false,
            timeouts,
            max_rcpts: 100,
            lanes: Lanes {
                workers: count("relay_concurrency", 8)?,
                per_key: count("relay_destination_concurrency", 4)?,
            },
            trace: None,
            config: cfg.clone(),
            tls_trust_file: key("relay_tls_trust_file")
                .map(|v| crate::config::expand_tilde(v.text.trim())),
            sts: sts::Settings::default(),
            dkim_specs: (
                (cfg.all("dkim").iter())
                    .map(|v| (v.text.clone(), v.origin.clone()))
                    .collect(),
                key("dkim_headers")
                    .map(|v| crate::message::dkim::parse_headers(&v.text))
                    .unwrap_or_default(),
            ),
            dkim: Vec::new(),
            tlsrpt: None,
        })
    }

    /// Read the DKIM keys of `dkim_specs` (a bad line or key is a configuration error).
    pub fn load_dkim(&mut self) -> Result<()> {
        let (specs, headers) = &self.dkim_specs;
        let specs = specs.iter().map(|(t, o)| (t.as_str(), o.as_str()));
        self.dkim = crate::message::dkim::load_all(specs, headers)?
            .into_iter()
            .map(std::sync::Arc::new)
            .collect();
        Ok(())
    }

    /// This host's name: EHLO, Reporting-MTA, the postmaster's domain.
    pub fn hostname(&self) -> &str {
        self.hostnames.first().map_or("localhost", String::as_str)
    }

    /// Where double bounces go.
    pub fn postmaster(&self) -> String {
        format!("postmaster@{}", self.hostname())
    }
}

/// What one attempt came to for one recipient, with what its log line and a bounce need.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Delivered, deferred or failed (the relay makes a failure bounced once reported).
    pub verdict: Verdict,
    /// The server's reply or our own reason, one line.
    pub reply: String,
    /// Its RFC 3463 status.
    pub status: String,
    /// Where it went, for the log: `host[address]:port`, `local:BASE`, `none`.
    pub relay: String,
    /// The server that answered (a report's Remote-MTA).
    pub remote_mta: Option<String>,
    /// `reply` is an SMTP reply (a report's Diagnostic-Code type `smtp`).
    pub smtp: bool,
    /// Delivered, and this host owes the sender the success report NOTIFY=SUCCESS asks for
    /// (RFC 3461 §4.1), with this action: `delivered` by a local route, `relayed` to a
    /// server that does not take DSN (one that does was given the NOTIFY and reports
    /// itself, §6.2.2). `None` otherwise.
    pub success: Option<crate::message::dsn::Action>,
}

impl Outcome {
    /// Try later, for `why`.
    pub fn deferred(why: &str, status: &str, relay: &str) -> Outcome {
        Outcome {
            verdict: Verdict::Deferred,
            reply: why.to_string(),
            status: status.to_string(),
            relay: relay.to_string(),
            remote_mta: None,
            smtp: false,
            success: None,
        }
    }

    /// Failed for good, for `why` (our own finding, not a server's reply).
    pub fn failed(why: &str, status: &str, relay: &str, remote: Option<&str>) -> Outcome {
        Outcome {
            verdict: Verdict::Failed,
            reply: why.to_string(),
            status: status.to_string(),
            relay: relay.to_string(),
            remote_mta: remote.map(str::to_string),
            smtp: false,
            success: None,
        }
    }
}

/// One log line: what one attempt did for one recipient, in key=value form as Postfix's
/// and mreceive's (`ID: delivery to= relay= delay= attempts= dsn= status=sent|deferred|bounced
/// reply=`), the queue id first as Postfix puts it. Values are quoted by [`crate::log::quote`]:
/// a server's reply can neither end the line nor add a key of its own.
#[derive(Clone, Debug)]
pub struct Line {
    /// The queue id.
    pub id: String,
    /// The recipient.
    pub to: String,
    /// Where it went.
    pub relay: String,
    /// Seconds since the message arrived.
    pub delay: u64,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The RFC 3463 status.
    pub dsn: String,
    /// `sent`, `deferred`, `bounced`, or `failed` (refused for good, nobody to tell).
    pub status: &'static str,
    /// The reply or reason.
    pub reply: String,
    /// The queue id of the report about it, when one was queued.
    pub bounce: Option<String>,
}

impl Line {
    /// True for a line about mail that did not go (a warning in syslog's terms).
    pub fn is_failure(&self) -> bool {
        self.status != "sent"
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::log::pair;
        let mut l = format!("{}: delivery", self.id);
        pair(&mut l, "to", format_args!("<{}>", self.to));
        pair(&mut l, "relay", &self.relay);
        pair(&mut l, "delay", self.delay);
        pair(&mut l, "attempts", self.attempts);
        pair(&mut l, "dsn", &self.dsn);
        pair(&mut l, "status", self.status);
        if let Some(b) = &self.bounce {
            pair(&mut l, "bounce", b);
        }
        pair(&mut l, "reply", &self.reply);
        f.write_str(&l)
    }
}

/// Where a group of a message's recipients goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    /// By SMTP.
    Smtp(Dest),
    /// Delivered here.
    Local(queue::Local),
}

/// The queue runner's sender for every route: see the module header.
pub struct Relay<'a> {
    /// How it works.
    pub settings: Settings,
    queue: &'a Queue,
    remote: Remote,
    account: account::Flush<'a>,
    log: Box<dyn FnMut(&Line) + 'a>,
    warn: Rc<dyn Fn(&str) + 'a>,
    /// The run's time.
    now: u64,
}

impl<'a> Relay<'a> {
    /// A relay for the queue `queue`, its log lines to `log`, its warnings to `warn`.
    pub fn new(
        settings: Settings,
        queue: &'a Queue,
        log: impl FnMut(&Line) + 'a,
        warn: impl Fn(&str) + 'a,
    ) -> Relay<'a> {
        let warn: Rc<dyn Fn(&str) + 'a> = Rc::new(warn);
        let cfg = settings.config.clone();
        let trace = settings.trace.clone();
        let w = warn.clone();
        let account = account::Flush::new(
            move |name, flags| {
                account::server(
                    &cfg,
                    name,
                    &account::Overrides::from_flags(flags),
                    trace.clone(),
                )
            },
            |_, _, _| {},
            move |text| w(text),
        );
        Relay {
            settings,
            queue,
            remote: Remote::new(),
            account,
            log: Box::new(log),
            warn,
            now: queue::now(),
        }
    }

    /// Run the queue once as `schedule` says; `stop` is asked before each entry, and once it
    /// says yes the rest are left as they are (a daemon's SIGTERM: the transaction in
    /// flight finishes first). Connections are closed at the end.
    pub fn run(&mut self, schedule: &Schedule, stop: &dyn Fn() -> bool) -> Result<Report> {
        self.now = schedule.now;
        let q = self.queue;
        let dead = remote::Dead::new(Some(hints(&self.settings, q, schedule)));
        self.remote.use_dead(dead);
        let report = q.run_with(schedule, |job| match stop() {
            true => None,
            false => self.send(job),
        });
        self.remote.close();
        self.account.reset();
        report
    }

    /// Run the queue once as `schedule` says, [`Settings::lanes`] entries at once: a
    /// thread per lane, each with a relay (its connections, its dead hosts) of its own,
    /// entries grouped by destination ([`dest_key`]). Log lines and warnings go to `log` and
    /// `warn` from every thread. `stop` is asked before each entry, as by [`Relay::run`]:
    /// once it says yes every thread finishes the transaction in flight and stops.
    pub fn run_parallel(
        settings: &Settings,
        queue: &Queue,
        schedule: &Schedule,
        log: &(dyn Fn(&Line) + Sync),
        warn: &(dyn Fn(&str) + Sync),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Report> {
        let dead = remote::Dead::new(Some(hints(settings, queue, schedule)));
        let make = || {
            let mut relay = Relay::new(settings.clone(), queue, log, warn);
            relay.now = schedule.now;
            relay.remote = Remote::sharing(dead.clone());
            move |job: &Job<'_>| relay.send(job)
        };
        let key = |e: &Entry| dest_key(settings, e);
        queue.run_parallel(schedule, settings.lanes, key, make, stop)
    }

    /// Send one job: every due recipient routed, grouped, sent and judged; a report queued
    /// about those that failed. One attempt per recipient of [`Job::rcpts`]; `None` (left
    /// untried) only when an account route's settings fail.
    pub fn send(&mut self, job: &Job<'_>) -> Option<Vec<Attempt>> {
        let queued = job.queued();
        let env = &queued.envelope;
        let rcpts = job.rcpts();
        let outcomes: Vec<Outcome> = match &queued.route {
            Route::Account { name, .. } => {
                let relay = format!("account:{}", name.as_deref().unwrap_or("default"));
                let attempts = self.account.send(job)?;
                attempts
                    .into_iter()
                    .map(|a| from_attempt(a, &relay))
                    .collect()
            }
            Route::Local(local) => match Buffer::read_from(&mut job.message(), None) {
                Ok(mut msg) => local::send(local, env, rcpts, &mut msg),
                Err(e) => vec![Outcome::deferred(&e.to_string(), "4.3.0", "local"); rcpts.len()],
            },
            Route::Mx => self.send_mx(job, env, rcpts),
        };
        Some(self.judge(job, outcomes))
    }

    /// The mx route: each recipient by the static routes, else its domain's MX, grouped.
    fn send_mx(&mut self, job: &Job<'_>, env: &Envelope, rcpts: &[usize]) -> Vec<Outcome> {
        let mut groups: BTreeMap<Group, Vec<usize>> = BTreeMap::new();
        for (k, &i) in rcpts.iter().enumerate() {
            let addr = &env.rcpts[i].addr;
            let domain = addr
                .rsplit_once('@')
                .map_or("", |(_, d)| d)
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let group = match self.settings.routes.find(&domain) {
                None => Group::Smtp(Dest::Mx(domain)),
                Some((n, r)) => match &r.via {
                    Via::Hosts(_) => Group::Smtp(Dest::Route(n)),
                    Via::Account(name) => Group::Smtp(Dest::Account(n, name.clone())),
                    Via::Local(l) => Group::Local(l.clone()),
                },
            };
            groups.entry(group).or_default().push(k);
        }
        let mut out: Vec<Option<Outcome>> = vec![None; rcpts.len()];
        let relax = !env.requiretls && tls_optional(job);
        let signed = match groups.keys().any(|g| matches!(g, Group::Smtp(_))) {
            true => dkim::field(&self.settings.dkim, job).unwrap_or_else(|why| {
                (self.warn)(&format!("{}: sent unsigned: {why}", job.id()));
                None
            }),
            false => None,
        };
        for (group, ks) in groups {
            let idx: Vec<usize> = ks.iter().map(|&k| rcpts[k]).collect();
            let results = match &group {
                Group::Smtp(dest) => match &signed {
                    Some(field) => {
                        let content = &mut dkim::Signed {
                            field,
                            inner: account::Queued(job),
                        };
                        self.remote
                            .send(&self.settings, dest, env, &idx, relax, content)
                    }
                    None => {
                        let content = &mut account::Queued(job);
                        self.remote
                            .send(&self.settings, dest, env, &idx, relax, content)
                    }
                },
                Group::Local(l) => match Buffer::read_from(&mut job.message(), None) {
                    Ok(mut msg) => local::send(l, env, &idx, &mut msg),
                    Err(e) => vec![Outcome::deferred(&e.to_string(), "4.3.0", "local"); idx.len()],
                },
            };
            for (&k, o) in ks.iter().zip(results) {
                out[k] = Some(o);
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::deferred("not sent", "4.3.0", "none")))
            .collect()
    }

    /// Expiry, the bounce, the log lines, and the attempts for the runner.
    fn judge(&mut self, job: &Job<'_>, mut outcomes: Vec<Outcome>) -> Vec<Attempt> {
        let queued = job.queued();
        let now = self.now;
        let expired = now >= queued.queued.saturating_add(self.settings.expire.as_secs());
        for o in &mut outcomes {
            if o.verdict == Verdict::Deferred && expired {
                // RFC 5321 §4.5.4.1: give up after a time, and say so.
                o.verdict = Verdict::Failed;
                o.reply = format!(
                    "delivery time expired after {}: {}",
                    days(self.settings.expire),
                    o.reply
                );
                o.status = "4.4.7".into();
            }
        }
        let failed: Vec<(usize, &Outcome)> = (job.rcpts().iter().copied())
            .zip(&outcomes)
            .filter(|(_, o)| o.verdict == Verdict::Failed)
            .collect();
        // msubmit's account routes keep their failures in failed/ when msubmit runs them;
        // run here, they are reported like any other (nobody reads failed/ of a daemon).
        let bounce = match failed.is_empty() {
            true => Ok(None),
            false => bounce::queue(self.queue, &self.settings, job, &failed, now),
        };
        let reported = match &bounce {
            Ok(_) => true,
            Err(e) => {
                (self.warn)(&format!(
                    "{}: failure report not queued, recipients kept: {e}",
                    job.id()
                ));
                false
            }
        };
        let bounce_id = bounce.ok().flatten();
        let warned = self.warn_delayed(job, &outcomes, now);
        self.report_success(job, &outcomes, now);
        let delay = now.saturating_sub(queued.queued);
        let mut attempts = Vec::with_capacity(outcomes.len());
        for (&i, o) in job.rcpts().iter().zip(outcomes) {
            let verdict = match o.verdict {
                Verdict::Failed if reported => Verdict::Bounced,
                // Not reported: kept waiting, to be reported at the next attempt.
                Verdict::Failed => Verdict::Deferred,
                Verdict::Deferred if warned.contains(&i) => Verdict::Delayed,
                v => v,
            };
            let status = match (verdict, o.verdict) {
                (Verdict::Delivered, _) => "sent",
                (Verdict::Bounced, _) if bounce_id.is_some() => "bounced",
                (Verdict::Bounced, _) => "failed",
                _ => "deferred",
            };
            (self.log)(&Line {
                id: job.id().to_string(),
                to: queued.envelope.rcpts[i].addr.clone(),
                relay: o.relay.clone(),
                delay,
                attempts: job.entry().rcpts[i].attempts.saturating_add(1),
                dsn: o.status.clone(),
                status,
                reply: o.reply.clone(),
                bounce: bounce_id.clone().filter(|_| verdict == Verdict::Bounced),
            });
            let text = match (&o.remote_mta, o.smtp) {
                (Some(host), true) if verdict != Verdict::Delivered => {
                    format!("{} (from {host})", o.reply)
                }
                _ => o.reply,
            };
            attempts.push(Attempt::new(verdict, text));
        }
        attempts
    }

    /// The delay warning: a report queued about the recipients of `job` still waiting
    /// ([`Verdict::Deferred`] in `outcomes`) after [`Settings::delay_warning`] since
    /// arrival and not warned about before. Returns those it is done for (queued, or
    /// nobody to tell); a report that cannot be queued is warned about and tried again at
    /// the next attempt.
    fn warn_delayed(&mut self, job: &Job<'_>, outcomes: &[Outcome], now: u64) -> Vec<usize> {
        let Some(after) = self.settings.delay_warning else {
            return Vec::new();
        };
        if now < job.queued().queued.saturating_add(after.as_secs()) {
            return Vec::new();
        }
        let delayed: Vec<(usize, &Outcome)> = (job.rcpts().iter().copied())
            .zip(outcomes)
            .filter(|(i, o)| o.verdict == Verdict::Deferred && !job.entry().rcpts[*i].delayed)
            .collect();
        if delayed.is_empty() {
            return Vec::new();
        }
        match bounce::delay(self.queue, &self.settings, job, &delayed, now) {
            Ok(_) => delayed.iter().map(|(i, _)| *i).collect(),
            Err(e) => {
                (self.warn)(&format!("{}: delay report not queued: {e}", job.id()));
                Vec::new()
            }
        }
    }

    /// The success report (RFC 3461 §4.1): queued about the recipients of `job` delivered
    /// with an [`Outcome::success`] whose NOTIFY asks for SUCCESS ([`bounce::success`]
    /// chooses). The mail is delivered whatever becomes of it: one that cannot be queued
    /// is warned about, and not tried again.
    fn report_success(&mut self, job: &Job<'_>, outcomes: &[Outcome], now: u64) {
        let done: Vec<(usize, &Outcome)> = (job.rcpts().iter().copied())
            .zip(outcomes)
            .filter(|(_, o)| o.verdict == Verdict::Delivered && o.success.is_some())
            .collect();
        if done.is_empty() {
            return;
        }
        if let Err(e) = bounce::success(self.queue, &self.settings, job, &done, now) {
            (self.warn)(&format!("{}: success report not queued: {e}", job.id()));
        }
    }

    /// Close every connection.
    pub fn close(&mut self) {
        self.remote.close();
        self.account.quit();
    }
}

/// The queue's per-host hints as a run at `schedule` uses them: a forced run (a flush by
/// hand) dials every host, and still records what it finds.
fn hints(settings: &Settings, queue: &Queue, schedule: &Schedule) -> remote::Hints {
    remote::Hints {
        hosts: queue.hosts(),
        now: schedule.now,
        retry: settings.retry,
        honour: !schedule.force,
    }
}

/// An account route's attempt as an outcome (its reply, when an SMTP one, says its status).
fn from_attempt(a: Attempt, relay: &str) -> Outcome {
    let smtp = crate::message::dsn::status_of(&a.reply);
    let status = smtp.clone().unwrap_or_else(|| {
        match a.verdict {
            Verdict::Delivered => "2.0.0",
            Verdict::Deferred => "4.0.0",
            _ => "5.0.0",
        }
        .into()
    });
    Outcome {
        verdict: a.verdict,
        smtp: smtp.is_some(),
        status,
        reply: a.reply,
        relay: relay.to_string(),
        remote_mta: None,
        // msubmit's client passes NOTIFY on where the server takes DSN; where it does not,
        // the account's server is the user's own relay: no report is made for it here.
        success: None,
    }
}

/// A duration as people say it: `5 days`, `4 hours`, `1 second`.
fn days(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        _ if s >= 86400 && s.is_multiple_of(86400) => (s / 86400, "day"),
        _ if s >= 3600 && s.is_multiple_of(3600) => (s / 3600, "hour"),
        _ if s >= 60 && s.is_multiple_of(60) => (s / 60, "minute"),
        _ => (s, "second"),
    };
    match n {
        1 => format!("1 {unit}"),
        _ => format!("{n} {unit}s"),
    }
}

/// Where an entry goes, as a parallel run groups entries: the static route or MX domain of
/// its first due recipient (most messages have one destination; one with several is sent
/// whole by the lane of its first), its account, or local.
pub fn dest_key(s: &Settings, e: &Entry) -> String {
    match &e.queued.route {
        Route::Mx => {
            let first = e
                .pending()
                .next()
                .map(|i| e.queued.envelope.rcpts[i].addr.as_str());
            let domain = (first.unwrap_or("").rsplit_once('@'))
                .map_or("", |(_, d)| d)
                .trim_end_matches('.')
                .to_ascii_lowercase();
            match s.routes.find(&domain) {
                Some((n, _)) => format!("route {n}"),
                None => format!("mx {domain}"),
            }
        }
        other => format!("{other:?}"),
    }
}

/// `TLS-Required: No` (RFC 8689 §5) in the message's header: the sender prefers delivery to
/// the recipient domain's TLS policy, so DANE and MTA-STS are not applied (a `relay_tls`
/// level the administrator fixed still is). Ignored with REQUIRETLS (the caller checks).
fn tls_optional(job: &Job<'_>) -> bool {
    use std::io::Read;
    // The header block is all that is read: at most 64 KiB of it.
    let mut head = Vec::new();
    if job
        .message()
        .take(64 * 1024)
        .read_to_end(&mut head)
        .is_err()
    {
        return false;
    }
    let block = crate::message::header::block(&head);
    crate::message::header::first(block, "TLS-Required")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
}
