//! The TLS requirement towards each MX host of a destination: the configuration's
//! `relay_tls` line, else DANE (RFC 7672), else MTA-STS (RFC 8461), else opportunistic
//! STARTTLS (RFC 7435). One function decides it, for the relay's connections
//! ([`super::remote`]) and for `mrelay --check`, so what the check prints is what is done.
//!
//! - A fixed level (`none`, `may`, `encrypt`, `verify`) is the administrator's word for the
//!   domain: no DANE or MTA-STS lookups.
//! - `auto` (the default): a host with DNSSEC-validated TLSA records gets DANE: STARTTLS
//!   required, the certificate matched against the records (none usable: encryption
//!   without authentication, RFC 7672 §3.1.3). A host whose DNSSEC validation failed
//!   (bogus) or whose TLSA lookup failed is not used now: its mail waits, never goes
//!   unauthenticated (§2.2.3). DANE wins over MTA-STS for a host that has it (RFC 8461
//!   §2). Otherwise an `enforce` policy allows only its MX hosts, over TLS verified for
//!   the host's name (RFC 8461 §4.2); `testing` and no policy: `may`.
//! - `dane-only`: DANE or nothing: a host without usable validated records is not used.
//!
//! A host not to be used carries why; when no host is left, the recipients wait (4.7.5),
//! as RFC 7672 §2.2 and RFC 8461 §5 want (the mail is never sent in clear text instead).

use super::Settings;
use super::routes::TlsPolicy;
use super::sts;
use crate::net::dane;
use crate::net::dns::{Dane, HostDane, Lookup, Target};
use crate::net::tls::{Level, Mode, Start, TlsOptions};
use std::sync::Arc;

/// How to connect to one host, or why not to.
#[derive(Clone, Debug)]
pub struct Host {
    /// The MX host's name.
    pub host: String,
    /// The TLS mode and trust; `Err(why)`: the host must not be used now.
    pub tls: Result<(Mode, TlsOptions), String>,
    /// What decided it: `relay_tls verify`, `dane`, `mta-sts enforce`, `may`, …
    pub by: String,
}

/// A destination's TLS plan, and what it was made from (for `--check`).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The policy of the configuration for the domain.
    pub policy: TlsPolicy,
    /// DANE's view, when asked.
    pub dane: Option<Dane>,
    /// The MTA-STS policy, when asked.
    pub sts: Option<sts::Found>,
    /// Each target host, in the targets' order.
    pub hosts: Vec<Host>,
}

impl Plan {
    /// The requirement for `host`, if it is one of the targets.
    pub fn host(&self, host: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.host == host)
    }
}

/// The RFC 3463 status of recipients whose every host was ruled out by the policy:
/// X.7.5, "cryptographic failure" (Postfix uses 4.7.5 for DANE and MTA-STS failures).
pub const STATUS: &str = "4.7.5";

/// The plan for mail to `domain` at `targets` (its MX hosts as [`Lookup::targets`] found
/// them), at `now` (Unix seconds, for the MTA-STS cache).
pub fn mx(s: &Settings, dns: &dyn Lookup, domain: &str, targets: &[Target], now: u64) -> Plan {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let trust = TlsOptions {
        ca_file: s.tls_trust_file.clone(),
        ..Default::default()
    };
    let mode = |level| Mode::new(Start::StartTls, level).unwrap_or(Mode::MAY);
    let policy = s.routes.policy_for(&domain);
    if let TlsPolicy::Fixed(level) = policy {
        let hosts = targets
            .iter()
            .map(|t| Host {
                host: t.host.clone(),
                tls: Ok((mode(level), trust.clone())),
                by: format!("relay_tls {}", policy.word()),
            })
            .collect();
        return Plan {
            policy,
            dane: None,
            sts: None,
            hosts,
        };
    }
    // RFC 7672 §2.2.3: MX delivery's TLSA records are those of port 25, `_25._tcp.HOST`;
    // `--mx-port` moves the connection (tests, a port-forwarding setup), not the service.
    let dane = dns.dane(&domain, targets, 25);
    let found = match policy {
        TlsPolicy::Auto => Some(sts::find(dns, &s.sts, &domain, now)),
        _ => None,
    };
    let sts_policy = found
        .as_ref()
        .and_then(|f| f.policy.as_ref())
        .filter(|p| p.mode != sts::Mode::None);
    let hosts = targets
        .iter()
        .map(|t| {
            let host = t.host.clone();
            let (tls, by) = match dane.host(&t.host) {
                HostDane::Records(records) => {
                    let usable = dane::usable(&records);
                    if usable.is_empty() {
                        // RFC 7672 §3.1.3: records, none usable: TLS still required.
                        (
                            Ok((mode(Level::Encrypt), trust.clone())),
                            "dane (no usable TLSA record: encrypt)".to_string(),
                        )
                    } else {
                        let trust = TlsOptions {
                            dane: Some(Arc::new(usable)),
                            ..trust.clone()
                        };
                        (Ok((mode(Level::Verify), trust)), "dane".to_string())
                    }
                }
                HostDane::Unusable(why) => (
                    Err(format!("{}: not used: DNSSEC: {why}", t.host)),
                    "dane".to_string(),
                ),
                _ if policy == TlsPolicy::DaneOnly => (
                    Err(format!(
                        "{}: not used: relay_tls dane-only, and it has no DNSSEC-validated \
                         TLSA records",
                        t.host
                    )),
                    "relay_tls dane-only".to_string(),
                ),
                _ => match sts_policy {
                    Some(p) if p.mode == sts::Mode::Enforce => {
                        if p.matches(&t.host) {
                            (
                                Ok((mode(Level::Verify), trust.clone())),
                                "mta-sts enforce".to_string(),
                            )
                        } else {
                            (
                                Err(format!(
                                    "{}: not used: not an MX host of {domain}'s MTA-STS policy \
                                     (mode enforce, mx {})",
                                    t.host,
                                    p.mx.join(" ")
                                )),
                                "mta-sts enforce".to_string(),
                            )
                        }
                    }
                    Some(_) => (
                        Ok((mode(Level::May), trust.clone())),
                        "mta-sts testing (may)".to_string(),
                    ),
                    None => (Ok((mode(Level::May), trust.clone())), "may".to_string()),
                },
            };
            Host { host, tls, by }
        })
        .collect();
    Plan {
        policy,
        dane: Some(dane),
        sts: found,
        hosts,
    }
}
