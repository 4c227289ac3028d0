//! DNS for mail routing: where the mail for a domain goes (RFC 5321 §5.1).
//!
//! The relay asks one question, [`Lookup::targets`]: which hosts, in which order, at which
//! addresses. The answer turns every DNS outcome into one of three things, because each
//! leads to a different action and confusing them loses or bounces mail:
//!
//! - targets to try: MX hosts by preference (equal preferences shuffled), or the domain's own
//!   addresses when it has no MX (the implicit MX);
//! - [`Failure::Permanent`]: the domain does not exist (5.1.2), accepts no mail (null MX,
//!   5.1.10), or its mail would loop back to this host (5.4.6): bounce now;
//! - [`Failure::Temporary`]: the DNS did not answer (SERVFAIL, REFUSED, timeout): try later.
//!   Never a bounce and never a fall-back to the domain's A record, which dma#30 and
//!   postal#2833 did, bouncing or misdirecting mail whenever a resolver hiccupped.
//!
//! The logic sits on one primitive, [`Lookup::query`], so it is tested with a table of
//! answers (`tests.rs`); [`Resolver`] answers it from the real DNS with hickory-resolver
//! (`resolver.rs`), and tests/dns.rs asks a real dnsmasq. A client's server name (msubmit's
//! host, an account's) is [`resolve_host`]'s: the system's resolver, within a deadline.
//!
//! DANE (RFC 7672) needs one more thing of each answer: whether DNSSEC validated it.
//! [`Lookup::validated`] asks that; the [`Resolver`] trusts the AD bit of a validating
//! resolver on loopback (`ad.rs` says why), and [`Lookup::dane`] (`tlsa.rs`) turns the MX
//! set's, the hosts' and their TLSA records' statuses into what each host requires.

mod ad;
mod host;
mod records;
mod resolver;
mod tlsa;

pub use host::resolve_host;
pub use resolver::{Options, Resolver};
pub use tlsa::{Dane, HostDane, Security};

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why mail for a destination cannot go now, or ever: its RFC 3463 status for the DSN and
/// the log line (`dsn=`), and a text for the Diagnostic-Code and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Fails for good: bounce (a 5.x.x status).
    Permanent(&'static str, String),
    /// Try again later (a 4.x.x status).
    Temporary(&'static str, String),
}

impl Failure {
    /// The RFC 3463 status, e.g. `5.1.2`.
    pub fn status(&self) -> &'static str {
        match self {
            Failure::Permanent(s, _) | Failure::Temporary(s, _) => s,
        }
    }

    /// What happened, for the log and the bounce.
    pub fn text(&self) -> &str {
        match self {
            Failure::Permanent(_, t) | Failure::Temporary(_, t) => t,
        }
    }

    /// True when retrying later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Failure::Temporary(..))
    }

    /// The same failure, saying which host it concerns when the text does not.
    fn context(self, host: &str) -> Failure {
        let add = |t: String| {
            if t.contains(host) {
                t
            } else {
                format!("{host}: {t}")
            }
        };
        match self {
            Failure::Permanent(s, t) => Failure::Permanent(s, add(t)),
            Failure::Temporary(s, t) => Failure::Temporary(s, add(t)),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for Failure {}

impl From<Failure> for crate::Error {
    /// As an exit: 75 (try later) or 68 (EX_NOHOST: host name unknown).
    fn from(f: Failure) -> crate::Error {
        let code = if f.is_temporary() {
            crate::Code::TempFail
        } else {
            crate::Code::NoHost
        };
        crate::Error::new(code, "dns", f.text())
    }
}

// RFC 3463 statuses used here.
/// X.1.2: the destination domain does not exist or has no mail host.
const NO_DOMAIN: &str = "5.1.2";
/// X.1.3: the address's domain part is not a domain (a malformed address literal).
const BAD_SYNTAX: &str = "5.1.3";
/// X.1.10: the domain says it accepts no mail (RFC 7505 §4.2: a null MX).
const NULL_MX: &str = "5.1.10";
/// X.4.3: the directory server (the DNS) failed; Postfix uses it for the same.
const DNS_TEMPFAIL: &str = "4.4.3";
/// X.4.4: no usable route: every host named is unusable (nonexistent, or refused).
const NO_ROUTE: &str = "5.4.4";
/// X.4.6: a routing loop: this host is the domain's best MX.
const LOOP: &str = "5.4.6";

/// A record type the routing asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// MX: a domain's mail exchangers.
    Mx,
    /// A: IPv4 addresses.
    A,
    /// AAAA: IPv6 addresses.
    Aaaa,
    /// TLSA: a TLS service's certificate associations (RFC 6698), for DANE.
    Tlsa,
    /// TXT: text, for MTA-STS's `_mta-sts` record (RFC 8461 §3.1).
    Txt,
}

/// What the DNS said to one question, temporary failures aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// MX records: preference and exchange, the exchange without its final dot (the root,
    /// a null MX's exchange, is the empty string).
    Mx(Vec<(u16, String)>),
    /// A or AAAA records.
    Addrs(Vec<IpAddr>),
    /// TLSA records.
    Tlsa(Vec<crate::net::dane::Tlsa>),
    /// TXT records, each one's strings joined (RFC 8461 §3.1 splits a long record so).
    Txt(Vec<String>),
    /// The name exists but has no record of this type (NOERROR with an empty answer).
    NoData,
    /// The name does not exist (RCODE 3, NXDOMAIN).
    NxDomain,
}

/// An answer and what DNSSEC says of it (RFC 4033 §5, RFC 4035 §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Validated from a trust anchor down: the AD bit of a validating resolver.
    Secure(Answer),
    /// Not signed, or below an unsigned delegation: as good as any other DNS answer.
    Insecure(Answer),
    /// Signed, but the signatures do not validate (a forgery, or a broken zone): never to
    /// be used, and never to be mistaken for "insecure" (RFC 7672 §2.1.1).
    Bogus(String),
}

/// One MX record, the exchange without its final dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    pub host: String,
}

/// A domain's mail hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxAnswer {
    /// Its MX records, sorted by preference, equal preferences in random order (RFC 5321
    /// §5.1: "randomize them to spread the load"; dma never did).
    Hosts(Vec<Mx>),
    /// No MX records (NODATA): the domain itself is the mail host, at these addresses (RFC
    /// 5321 §5.1, the implicit MX), IPv6 and IPv4 interleaved.
    Implicit(Vec<IpAddr>),
}

/// One host to try, at each of its addresses in turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The MX host's name (for TLS names and logs); the domain for an implicit MX; the
    /// literal as written (`[192.0.2.1]`) for an address literal.
    pub host: String,
    /// Its addresses, IPv6 and IPv4 interleaved (RFC 8305 §4), never empty.
    pub addrs: Vec<IpAddr>,
    /// The MX preference; 0 for an implicit MX or an address literal.
    pub preference: u16,
}

/// What the routing needs to know about this host.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    /// This host's names as configured (its host name and the names it is an MX under).
    /// An MX host with one of these names is this host. The address is never the test: on
    /// loopback, and behind NAT, every address looks local (RFC 5321 §5.1 says "its own
    /// name").
    pub my_names: Vec<String>,
    /// Allow targets in loopback, private, link-local and other non-global ranges. Off, an
    /// MX (or implicit MX) pointing there is ignored and an address literal there refused:
    /// a hostile DNS must not steer mail into the internal network. Tests and split-horizon
    /// setups turn it on.
    pub allow_private: bool,
}

/// A source of DNS answers, and the routing built on it.
///
/// Only [`Lookup::query`] is implemented by a source; everything else is provided, so the
/// routing is the same over the real DNS ([`Resolver`]) and over a table in tests.
pub trait Lookup {
    /// Ask every question (name, type); the answers in the same order. A source may ask
    /// them in parallel. SERVFAIL, REFUSED, a timeout or no reachable server is
    /// `Err(Failure::Temporary)`; a name that is not a domain name is `Err(Permanent)`.
    fn query(&self, questions: &[(&str, Type)]) -> Vec<Result<Answer, Failure>>;

    /// Ask every question with its DNSSEC status. A source that cannot tell (no
    /// validating resolver it trusts) calls every answer insecure, which turns DANE off
    /// and leaves everything else as it was.
    fn validated(&self, questions: &[(&str, Type)]) -> Vec<Result<Checked, Failure>> {
        self.query(questions)
            .into_iter()
            .map(|a| a.map(Checked::Insecure))
            .collect()
    }

    /// The TXT records of `name`: empty when it has none or does not exist.
    fn txt(&self, name: &str) -> Result<Vec<String>, Failure> {
        match first(self.query(&[(name, Type::Txt)]))? {
            Answer::Txt(t) => Ok(t),
            _ => Ok(Vec::new()),
        }
    }

    /// What DANE (RFC 7672 §2.2) says of `domain`'s `targets` (as [`Lookup::targets`]
    /// found them) on `port`: see [`Dane`].
    fn dane(&self, domain: &str, targets: &[Target], port: u16) -> Dane {
        tlsa::dane(self, domain, targets, port)
    }

    /// A domain's mail hosts (RFC 5321 §5.1), or why mail for it cannot go.
    ///
    /// NODATA falls back to the domain's own addresses; NXDOMAIN is 5.1.2; a null MX (RFC
    /// 7505: a lone MX whose exchange is the root) is 5.1.10; no MX and no address is
    /// 5.1.2; any temporary failure stays temporary, and never falls back to A/AAAA.
    fn mx(&self, domain: &str) -> Result<MxAnswer, Failure> {
        check_domain(domain)?;
        let answer = first(self.query(&[(domain, Type::Mx)]))?;
        let records = match answer {
            Answer::NxDomain => {
                return Err(Failure::Permanent(
                    NO_DOMAIN,
                    format!("domain {domain} does not exist (NXDOMAIN)"),
                ));
            }
            Answer::Mx(records) if !records.is_empty() => records,
            // NODATA: no MX record. RFC 5321 §5.1: the domain is its own mail host.
            _ => {
                let addrs = self.addresses(domain)?;
                if addrs.is_empty() {
                    return Err(Failure::Permanent(
                        NO_DOMAIN,
                        format!("domain {domain} has no MX and no address record"),
                    ));
                }
                return Ok(MxAnswer::Implicit(addrs));
            }
        };
        // RFC 7505 §3: a null MX is the only MX of its domain. An exchange "." beside
        // real hosts is no host to connect to: skip it and use the others.
        let hosts: Vec<Mx> = records
            .into_iter()
            .filter(|(_, host)| !host.is_empty() && host != ".")
            .map(|(preference, host)| Mx { preference, host })
            .collect();
        if hosts.is_empty() {
            return Err(Failure::Permanent(
                NULL_MX,
                format!("domain {domain} accepts no mail (null MX, RFC 7505)"),
            ));
        }
        Ok(MxAnswer::Hosts(order(hosts, &mut random)))
    }

    /// A host's addresses, AAAA and A, interleaved starting with IPv6 (RFC 8305 §4). Empty
    /// when the host does not exist or has neither (the caller skips it); a temporary
    /// failure of both queries, or of one while the other found nothing, is reported.
    fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        check_domain(host)?;
        let answers = self.query(&[(host, Type::Aaaa), (host, Type::A)]);
        merge_addresses(host, answers)
    }

    /// Where mail for `domain` goes: every address of every host, in the order to try them
    /// (RFC 5321 §5.1), or why it cannot go.
    ///
    /// - `domain` may be an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`, RFC 5321
    ///   §4.1.3): that address, no lookup.
    /// - When one of the MX hosts is this host (by name, [`Routing::my_names`]), only the
    ///   hosts more preferred than it are kept; when none is, the mail would loop: 5.4.6.
    /// - MX hosts that do not exist are skipped; hosts whose lookup failed temporarily are
    ///   skipped too, and when nothing is left that failure is the answer (temporary).
    /// - Addresses in non-global ranges are dropped unless [`Routing::allow_private`];
    ///   when that leaves nothing, 5.4.4.
    /// - An address shared by several hosts is tried once, with the first of them.
    fn targets(&self, domain: &str, routing: &Routing) -> Result<Vec<Target>, Failure> {
        if domain.starts_with('[') {
            return literal(domain, routing);
        }
        let is_me = |host: &str| routing.my_names.iter().any(|n| same_name(n, host));
        let mut hosts = match self.mx(domain)? {
            MxAnswer::Implicit(addrs) => {
                if is_me(domain) {
                    return Err(Failure::Permanent(
                        LOOP,
                        format!(
                            "mail for {domain} loops back to myself (no MX, the domain is this host)"
                        ),
                    ));
                }
                let (addrs, refused) = allowed(addrs, routing);
                if addrs.is_empty() {
                    return Err(Failure::Permanent(
                        NO_ROUTE,
                        format!(
                            "domain {domain} has no MX and only non-global addresses ({refused})"
                        ),
                    ));
                }
                return Ok(vec![Target {
                    host: domain.to_string(),
                    addrs,
                    preference: 0,
                }]);
            }
            MxAnswer::Hosts(hosts) => hosts,
        };
        // RFC 5321 §5.1: "If it [the SMTP client] finds its own name among the MX hosts, it
        // MUST discard that record and any with higher preference values". Equal ones go too
        // (Postfix does the same): a peer of the same preference may route it back to us.
        if let Some(mine) = hosts
            .iter()
            .filter(|m| is_me(&m.host))
            .map(|m| m.preference)
            .min()
        {
            let me = hosts
                .iter()
                .find(|m| is_me(&m.host) && m.preference == mine)
                .map(|m| m.host.clone())
                .unwrap_or_default();
            hosts.retain(|m| m.preference < mine);
            if hosts.is_empty() {
                return Err(Failure::Permanent(
                    LOOP,
                    format!("mail for {domain} loops back to myself ({me} is its best MX)"),
                ));
            }
        }

        let mut questions = Vec::with_capacity(hosts.len() * 2);
        for m in &hosts {
            questions.push((m.host.as_str(), Type::Aaaa));
            questions.push((m.host.as_str(), Type::A));
        }
        let mut answers = self.query(&questions).into_iter();
        let mut targets: Vec<Target> = Vec::new();
        let mut temporary: Option<Failure> = None;
        let mut refused = Vec::new();
        let mut missing = Vec::new();
        for m in hosts {
            let pair = vec![
                answers.next().unwrap_or(Ok(Answer::NoData)),
                answers.next().unwrap_or(Ok(Answer::NoData)),
            ];
            let addrs = match merge_addresses(&m.host, pair) {
                Ok(a) => a,
                Err(f) if f.is_temporary() => {
                    temporary.get_or_insert(f);
                    continue;
                }
                // Not a host name at all: as good as a host that does not exist.
                Err(_) => Vec::new(),
            };
            if addrs.is_empty() {
                missing.push(m.host);
                continue;
            }
            let (addrs, dropped) = allowed(addrs, routing);
            if !dropped.is_empty() {
                refused.push(format!("{} {dropped}", m.host));
            }
            let addrs: Vec<IpAddr> = addrs
                .into_iter()
                .filter(|a| !targets.iter().any(|t| t.addrs.contains(a)))
                .collect();
            if !addrs.is_empty() {
                targets.push(Target {
                    host: m.host,
                    addrs,
                    preference: m.preference,
                });
            }
        }
        if !targets.is_empty() {
            return Ok(targets);
        }
        if let Some(f) = temporary {
            return Err(Failure::Temporary(
                DNS_TEMPFAIL,
                format!("no MX host of {domain} has an address yet: {}", f.text()),
            ));
        }
        let why = if !refused.is_empty() {
            format!("only non-global addresses: {}", refused.join(", "))
        } else {
            format!("{} not found", missing.join(", "))
        };
        Err(Failure::Permanent(
            NO_ROUTE,
            format!("no MX host of {domain} is usable: {why}"),
        ))
    }
}

/// The one answer of a one-question query.
fn first(mut answers: Vec<Result<Answer, Failure>>) -> Result<Answer, Failure> {
    if answers.is_empty() {
        Ok(Answer::NoData)
    } else {
        answers.swap_remove(0)
    }
}

/// A domain is at least one character that is not only the root.
fn check_domain(domain: &str) -> Result<(), Failure> {
    if domain.is_empty() || domain == "." {
        return Err(Failure::Permanent(BAD_SYNTAX, "empty domain".to_string()));
    }
    Ok(())
}

/// The AAAA and A answers for `host` as one list. What either found is used even when the
/// other failed: a broken AAAA server must not stop mail over IPv4 (Postfix does the same).
fn merge_addresses(
    host: &str,
    answers: Vec<Result<Answer, Failure>>,
) -> Result<Vec<IpAddr>, Failure> {
    let mut v6 = Vec::new();
    let mut v4 = Vec::new();
    let mut failure = None;
    for answer in answers {
        match answer {
            Ok(Answer::Addrs(addrs)) => {
                for a in addrs {
                    let list = if a.is_ipv6() { &mut v6 } else { &mut v4 };
                    if !list.contains(&a) {
                        list.push(a);
                    }
                }
            }
            Ok(_) => {}
            Err(f) => {
                failure.get_or_insert(f);
            }
        }
    }
    match failure {
        Some(f) if v6.is_empty() && v4.is_empty() => Err(f.context(host)),
        _ => Ok(interleave(v6, v4)),
    }
}

/// IPv6 first, then alternating (RFC 8305 §4): a host with a broken IPv6 path costs one
/// failed connection before IPv4 is tried, not all of them.
fn interleave(v6: Vec<IpAddr>, v4: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// MX hosts sorted by preference, those of equal preference in an order drawn from `rand`
/// (RFC 5321 §5.1 "randomize them to spread the load"). The sort is stable on the random
/// keys, so every order of a tie is equally likely.
fn order(hosts: Vec<Mx>, rand: &mut dyn FnMut() -> u64) -> Vec<Mx> {
    let mut keyed: Vec<(u16, u64, Mx)> = hosts
        .into_iter()
        .map(|m| (m.preference, rand(), m))
        .collect();
    keyed.sort_by_key(|(p, k, _)| (*p, *k));
    keyed.into_iter().map(|(_, _, m)| m).collect()
}

/// A random number for shuffling: std's per-process random hash keys, which differ for
/// each RandomState. Spreading load needs no cryptographic randomness.
fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

/// Two domain names are the same regardless of ASCII case and a final dot (RFC 1035 §2.3.3).
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The addresses `routing` allows, and the refused ones as text (empty when none).
fn allowed(addrs: Vec<IpAddr>, routing: &Routing) -> (Vec<IpAddr>, String) {
    if routing.allow_private {
        return (addrs, String::new());
    }
    let (ok, refused): (Vec<IpAddr>, Vec<IpAddr>) =
        addrs.into_iter().partition(|a| !is_private(*a));
    let text = refused
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (ok, text)
}

/// An address literal as the domain (RFC 5321 §4.1.3): `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
fn literal(domain: &str, routing: &Routing) -> Result<Vec<Target>, Failure> {
    let bad = || {
        Failure::Permanent(
            BAD_SYNTAX,
            format!("{domain} is not an address literal (RFC 5321 4.1.3)"),
        )
    };
    let inner = domain
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .ok_or_else(bad)?;
    let addr = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..]
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| bad())?,
        _ => inner
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| bad())?,
    };
    if !routing.allow_private && is_private(addr) {
        return Err(Failure::Permanent(
            NO_ROUTE,
            format!("address literal {domain} is not a global address"),
        ));
    }
    Ok(vec![Target {
        host: domain.to_string(),
        addrs: vec![addr],
        preference: 0,
    }])
}

/// True for an address mail from outside must never be sent to on the word of the DNS:
/// unspecified, loopback, private (RFC 1918, RFC 4193), shared (RFC 6598), link-local,
/// multicast, broadcast and reserved ones; an IPv4-mapped IPv6 address as its IPv4.
pub fn is_private(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(a) => {
            let [b0, b1, ..] = a.octets();
            a.is_unspecified()
                || a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || b0 == 0 // 0.0.0.0/8, "this network" (RFC 1122 §3.2.1.3)
                || (b0 == 100 && (64..128).contains(&b1)) // 100.64.0.0/10 (RFC 6598)
                || b0 >= 240 // 240.0.0.0/4, reserved (RFC 1112 §4)
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (first & 0xfe00) == 0xfc00 // fc00::/7, unique local (RFC 4193)
                || (first & 0xffc0) == 0xfe80 // fe80::/10, link-local (RFC 4291 §2.5.6)
                || (first & 0xffc0) == 0xfec0 // fec0::/10, the old site-local (RFC 3879)
        }
    }
}

#[cfg(test)]
mod tests;
