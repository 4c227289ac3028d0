//! DANE's view of a destination (RFC 7672 §2.2): which MX hosts have DNSSEC-validated TLSA
//! records, which have none, and which must not be used because validation failed.
//!
//! The chain of trust runs from the MX set down: when the domain's MX records are not
//! secure, an attacker could have chosen the hosts, so their TLSA records prove nothing and
//! no host of the domain gets DANE (RFC 7672 §2.2.1). A host's address records must be
//! secure too before its TLSA records are looked up (§2.2.2: the TLSA base domain is the
//! host's name, reached through secure records only). Bogus answers and failed lookups of a
//! secure host make that host unusable for now (§2.2.3: "MUST NOT ... deliver" to it in
//! clear text or unauthenticated); the relay defers rather than falls back.

use super::{Answer, Checked, Lookup, Target, Type};
use crate::net::dane::Tlsa;
use std::fmt;

/// What DNSSEC says of a domain's MX set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// Validated.
    Secure,
    /// Not signed: no DANE for the domain.
    Insecure,
    /// Signed and failing validation, or the validated lookup failed: why.
    Bogus(String),
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Secure => f.write_str("secure"),
            Security::Insecure => f.write_str("insecure"),
            Security::Bogus(why) => write!(f, "bogus ({why})"),
        }
    }
}

/// What DANE requires of one MX host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostDane {
    /// Its records (or the domain's MX set) are not signed: DANE does not apply.
    Insecure,
    /// Secure, and it has no TLSA records: DANE does not apply (RFC 7672 §2.2.3).
    NoRecords,
    /// Secure TLSA records: STARTTLS required and the certificate must match a usable
    /// one; with none usable, STARTTLS is still required, unauthenticated (§2.2, §3.1.3).
    Records(Vec<Tlsa>),
    /// A validation failure or a failed lookup where DNSSEC is in force: not to be used.
    Unusable(String),
}

/// DANE's answer for a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dane {
    /// The MX set's status (for an implicit MX: the NODATA answer's).
    pub mx: Security,
    /// Each target host, in the targets' order.
    pub hosts: Vec<(String, HostDane)>,
}

impl Dane {
    /// What DANE requires of `host`.
    pub fn host(&self, host: &str) -> HostDane {
        self.hosts
            .iter()
            .find(|(h, _)| h == host)
            .map_or(HostDane::Insecure, |(_, d)| d.clone())
    }
}

/// See [`Lookup::dane`].
pub(super) fn dane<L: Lookup + ?Sized>(
    dns: &L,
    domain: &str,
    targets: &[Target],
    port: u16,
) -> Dane {
    let all = |d: HostDane| -> Vec<(String, HostDane)> {
        targets
            .iter()
            .map(|t| (t.host.clone(), d.clone()))
            .collect()
    };
    // An address literal has no name to look TLSA records up under.
    if domain.starts_with('[') {
        return Dane {
            mx: Security::Insecure,
            hosts: all(HostDane::Insecure),
        };
    }
    let mx = match dns.validated(&[(domain, Type::Mx)]).into_iter().next() {
        Some(Ok(Checked::Secure(_))) => Security::Secure,
        Some(Ok(Checked::Insecure(_))) => Security::Insecure,
        Some(Ok(Checked::Bogus(why))) => Security::Bogus(why),
        Some(Err(f)) => Security::Bogus(f.text().to_string()),
        None => Security::Insecure,
    };
    let hosts = match &mx {
        Security::Insecure => all(HostDane::Insecure),
        Security::Bogus(why) => all(HostDane::Unusable(why.clone())),
        Security::Secure => targets
            .iter()
            .map(|t| (t.host.clone(), host(dns, &t.host, port)))
            .collect(),
    };
    Dane { mx, hosts }
}

/// DANE for one host whose MX record was secure.
fn host<L: Lookup + ?Sized>(dns: &L, host: &str, port: u16) -> HostDane {
    let mut secure = true;
    for a in dns.validated(&[(host, Type::Aaaa), (host, Type::A)]) {
        match a {
            Ok(Checked::Secure(_)) => {}
            Ok(Checked::Insecure(_)) => secure = false,
            Ok(Checked::Bogus(why)) => return HostDane::Unusable(why),
            Err(f) => return HostDane::Unusable(f.text().to_string()),
        }
    }
    if !secure {
        return HostDane::Insecure;
    }
    // RFC 7672 §2.2.3, RFC 6698 §3: _PORT._tcp.HOST.
    let name = format!("_{port}._tcp.{host}");
    match dns.validated(&[(&name, Type::Tlsa)]).into_iter().next() {
        Some(Ok(Checked::Secure(Answer::Tlsa(records)))) => HostDane::Records(records),
        Some(Ok(Checked::Secure(_))) => HostDane::NoRecords,
        // Below an unsigned delegation (the host's zone signed, the _tcp one not).
        Some(Ok(Checked::Insecure(_))) | None => HostDane::Insecure,
        Some(Ok(Checked::Bogus(why))) => HostDane::Unusable(why),
        Some(Err(f)) => HostDane::Unusable(f.text().to_string()),
    }
}
