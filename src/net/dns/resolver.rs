//! The real DNS behind [`super::Lookup`]: hickory-resolver on a runtime of its own.
//!
//! hickory is async only; the relay is not. A [`Resolver`] owns a current-thread tokio
//! runtime and blocks on it for each batch of questions, which it asks in parallel (the MX
//! hosts' A and AAAA at once, so a slow server costs one timeout, not one per host).
//! `block_on` may be called from several threads at once (tokio lets the others wait their
//! turn to drive the runtime), so one resolver, and its cache, serves a whole relay.
//!
//! Configuration is ours, not the system's: one server given (`--dns-server ADDR:PORT`) or
//! the `nameserver` lines of /etc/resolv.conf, and nothing else from it. Names are always
//! asked as absolute names: an MTA never applies `search` domains (Postfix turns off
//! RES_DEFNAMES and RES_DNSRCH), and /etc/hosts is never read (mail routing is DNS's, as
//! Postfix's `smtp_host_lookup = dns`). Timeouts are short: a dead server costs seconds.

use super::records::{rcode_name, record_type, records, type_name};
use super::{Answer, DNS_TEMPFAIL, Failure, Lookup, Type};
use crate::exit::{Code, Error};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::Name;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// How to reach the DNS.
#[derive(Clone, Debug)]
pub struct Options {
    /// The one server to ask (`--dns-server ADDR:PORT`); `None`: the `nameserver` lines of
    /// /etc/resolv.conf (port 53).
    pub server: Option<SocketAddr>,
    /// How long one try of a query waits for its answer.
    pub timeout: Duration,
    /// How many times a query is sent (to each server) before it counts as timed out: 1 or
    /// more (hickory's `attempts` counts the retries after the first).
    pub attempts: usize,
}

impl Default for Options {
    /// 2 s and 2 tries: a dead server costs about 4 s (glibc's default is 5 s and 2 tries).
    fn default() -> Options {
        Options {
            server: None,
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }
}

/// A DNS client for the routing: see [`super::Lookup`] for what it answers.
pub struct Resolver {
    runtime: tokio::runtime::Runtime,
    inner: TokioResolver,
    /// The most a batch of questions may take, whatever hickory does inside.
    deadline: Duration,
    /// The server whose AD bit is believed: the configured one when every configured
    /// server is on loopback (`ad.rs`); `None`: every answer is insecure.
    validator: Option<SocketAddr>,
    /// One try's wait and the tries, for the validated questions.
    timeout: Duration,
    attempts: usize,
}

impl Resolver {
    /// A resolver asking `opts.server`, or the servers of /etc/resolv.conf.
    pub fn new(opts: &Options) -> crate::Result<Resolver> {
        let servers: Vec<SocketAddr> = match opts.server {
            Some(s) => vec![s],
            None => resolv_conf(Path::new("/etc/resolv.conf"))?,
        };
        let mut config = ResolverConfig::from_name_servers(Vec::new());
        for s in &servers {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            config.add_name_server(NameServerConfig::new(s.ip(), true, vec![udp, tcp]));
        }
        let mut o = ResolverOpts::default();
        o.timeout = opts.timeout;
        o.attempts = opts.attempts.max(1) - 1;
        o.use_hosts_file = ResolveHosts::Never;
        // Absolute names only (see the header); ndots would otherwise try search domains.
        o.ndots = 0;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io(Code::OsErr, "dns: starting the resolver", e))?;
        // Building spawns nothing, but hickory's provider wants to be inside its runtime.
        let _inside = runtime.enter();
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(o)
            .build()
            .map_err(|e| Error::new(Code::Config, "dns: resolver configuration", e))?;
        drop(_inside);
        let tries = u32::try_from(opts.attempts.max(1)).unwrap_or(u32::MAX);
        let per_server = opts.timeout.saturating_mul(tries);
        let list = servers.clone();
        let servers = u32::try_from(servers.len().max(1)).unwrap_or(u32::MAX);
        Ok(Resolver {
            runtime,
            inner,
            deadline: per_server.saturating_mul(servers) + Duration::from_secs(1),
            validator: validator(&list),
            timeout: opts.timeout,
            attempts: opts.attempts.max(1),
        })
    }
}

/// The server whose AD bit DANE may believe: the first, when every server is on loopback
/// (RFC 4035 §4.9.3: a secure channel to the validator; loopback is the one we can know).
pub(super) fn validator(servers: &[SocketAddr]) -> Option<SocketAddr> {
    let all_local = servers.iter().all(|s| s.ip().is_loopback());
    servers.first().copied().filter(|_| all_local)
}

impl Lookup for Resolver {
    fn validated(&self, questions: &[(&str, Type)]) -> Vec<Result<super::Checked, Failure>> {
        match self.validator {
            Some(server) => questions
                .iter()
                .map(|&(name, kind)| {
                    super::ad::ask(server, name, kind, self.timeout, self.attempts)
                })
                .collect(),
            None => self
                .query(questions)
                .into_iter()
                .map(|a| a.map(super::Checked::Insecure))
                .collect(),
        }
    }

    fn query(&self, questions: &[(&str, Type)]) -> Vec<Result<Answer, Failure>> {
        let deadline = self.deadline;
        self.runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, &(name, kind)) in questions.iter().enumerate() {
                let resolver = self.inner.clone();
                let name = name.to_string();
                set.spawn(async move {
                    let answer = tokio::time::timeout(deadline, ask(&resolver, &name, kind))
                        .await
                        .unwrap_or_else(|_| Err(timed_out(&name, kind)));
                    (i, answer)
                });
            }
            let mut answers: Vec<Result<Answer, Failure>> = questions
                .iter()
                .map(|&(name, kind)| Err(timed_out(name, kind)))
                .collect();
            while let Some(done) = set.join_next().await {
                // A task that panicked keeps its "timed out": temporary, retried later.
                if let Ok((i, answer)) = done {
                    answers[i] = answer;
                }
            }
            answers
        })
    }
}

/// One question to hickory, its outcome in the routing's terms.
async fn ask(resolver: &TokioResolver, name: &str, kind: Type) -> Result<Answer, Failure> {
    let mut fqdn = Name::from_str_relaxed(name).map_err(|_| {
        Failure::Permanent(super::BAD_SYNTAX, format!("{name} is not a domain name"))
    })?;
    // Absolute: never a search domain appended (see the header).
    fqdn.set_fqdn(true);
    match resolver.lookup(fqdn, record_type(kind)).await {
        Ok(lookup) => Ok(records(kind, lookup.answers())),
        Err(e) => classify(name, kind, e),
    }
}

/// A failed lookup: NXDOMAIN and NODATA are answers, everything else is temporary.
fn classify(name: &str, kind: Type, e: NetError) -> Result<Answer, Failure> {
    let what = format!("{} lookup for {name}", type_name(kind));
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => {
            if no.response_code == ResponseCode::NXDomain {
                Ok(Answer::NxDomain)
            } else {
                Ok(Answer::NoData)
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => Err(Failure::Temporary(
            DNS_TEMPFAIL,
            format!("{what}: the server answered {}", rcode_name(code)),
        )),
        NetError::Timeout => Err(timed_out(name, kind)),
        other => Err(Failure::Temporary(
            DNS_TEMPFAIL,
            format!("{what}: {}", other.to_string().to_lowercase()),
        )),
    }
}

fn timed_out(name: &str, kind: Type) -> Failure {
    Failure::Temporary(
        DNS_TEMPFAIL,
        format!(
            "{} lookup for {name}: no answer from the DNS server (timed out)",
            type_name(kind)
        ),
    )
}

/// The servers of a resolv.conf(5), port 53; its default, the local host, when it names
/// none or does not exist.
fn resolv_conf(path: &Path) -> crate::Result<Vec<SocketAddr>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(Code::OsErr, path.display().to_string(), e)),
    };
    let mut servers = nameservers(&text);
    if servers.is_empty() {
        servers.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Ok(servers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect())
}

/// The `nameserver` addresses of a resolv.conf text, at most three as glibc (MAXNS).
/// A scoped IPv6 address (`fe80::1%eth0`) is skipped: a bare address cannot carry the scope.
pub(super) fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => words.next()?.parse::<IpAddr>().ok(),
                _ => None,
            }
        })
        .take(3)
        .collect()
}
