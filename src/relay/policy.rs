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
    // An address literal has no name for TLSA or MTA-STS records: opportunistic.
    let fixed = match policy {
        TlsPolicy::Fixed(level) => Some((level, format!("relay_tls {}", policy.word()))),
        TlsPolicy::Auto if domain.starts_with('[') => {
            Some((Level::May, "may (an address literal)".to_string()))
        }
        _ => None,
    };
    if let Some((level, by)) = fixed {
        let hosts = targets
            .iter()
            .map(|t| Host {
                host: t.host.clone(),
                tls: Ok((mode(level), trust.clone())),
                by: by.clone(),
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
    // RFC 8461 §2: DANE wins; the policy is fetched only when a host has no DANE.
    let all_dane = targets
        .iter()
        .all(|t| matches!(dane.host(&t.host), HostDane::Records(_)));
    let found = match policy {
        TlsPolicy::Auto if !all_dane => Some(sts::find(dns, &s.sts, &domain, now)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dns::{Answer, Checked, Failure, Type};

    /// d.test: MX a.d.test (10) and b.d.test (20), all signed; a.d.test has TLSA records.
    /// `signed` false: nothing is signed.
    struct Dns {
        signed: bool,
    }

    impl Lookup for Dns {
        fn query(&self, q: &[(&str, Type)]) -> Vec<Result<Answer, Failure>> {
            q.iter()
                .map(|&(name, kind)| {
                    Ok(match (name, kind) {
                        ("d.test", Type::Mx) => {
                            Answer::Mx(vec![(10, "a.d.test".into()), (20, "b.d.test".into())])
                        }
                        ("a.d.test", Type::A) => Answer::Addrs(vec!["192.0.2.1".parse().unwrap()]),
                        ("b.d.test", Type::A) => Answer::Addrs(vec!["192.0.2.2".parse().unwrap()]),
                        ("_25._tcp.a.d.test", Type::Tlsa) => Answer::Tlsa(vec![dane::Tlsa {
                            usage: 3,
                            selector: 1,
                            matching: 1,
                            data: vec![7; 32],
                        }]),
                        ("_mta-sts.d.test", Type::Txt) => Answer::Txt(vec!["v=STSv1; id=1".into()]),
                        (_, Type::Aaaa | Type::Tlsa) => Answer::NoData,
                        _ => Answer::NxDomain,
                    })
                })
                .collect()
        }

        fn validated(&self, q: &[(&str, Type)]) -> Vec<Result<Checked, Failure>> {
            let signed = self.signed;
            self.query(q)
                .into_iter()
                .map(|a| {
                    a.map(|a| {
                        if signed {
                            Checked::Secure(a)
                        } else {
                            Checked::Insecure(a)
                        }
                    })
                })
                .collect()
        }
    }

    /// Settings from `config`, with an enforce policy for d.test (mx b.d.test) cached.
    fn settings(config: &str, dir: &std::path::Path) -> Settings {
        let mut c = crate::config::Config::default();
        c.parse(config, "t").unwrap();
        let mut s = Settings::from_config(&c).unwrap();
        s.sts.cache = Some(dir.to_path_buf());
        std::fs::write(
            dir.join("d.test"),
            "x-id: 1\nx-fetched: 1000\nversion: STSv1\nmode: enforce\nmx: b.d.test\nmax_age: 86400\n",
        )
        .unwrap();
        s
    }

    fn plan(config: &str, signed: bool) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(config, dir.path());
        let dns = Dns { signed };
        let routing = crate::net::dns::Routing {
            my_names: Vec::new(),
            allow_private: false,
        };
        let targets = dns.targets("d.test", &routing).unwrap();
        mx(&s, &dns, "d.test", &targets, 1001)
    }

    fn level(p: &Plan, host: &str) -> Option<Level> {
        p.host(host)
            .unwrap()
            .tls
            .as_ref()
            .ok()
            .map(|(m, _)| m.level)
    }

    #[test]
    fn dane_wins_then_mta_sts_then_may() {
        // Signed: a.d.test by DANE; b.d.test has no TLSA records: the enforce policy,
        // which names it: verified by the roots.
        let p = plan("", true);
        let a = p.host("a.d.test").unwrap();
        assert_eq!(a.by, "dane");
        assert!(a.tls.as_ref().unwrap().1.dane.is_some());
        assert_eq!(level(&p, "b.d.test"), Some(Level::Verify));
        assert_eq!(p.host("b.d.test").unwrap().by, "mta-sts enforce");
        assert!(
            p.host("b.d.test")
                .unwrap()
                .tls
                .as_ref()
                .unwrap()
                .1
                .dane
                .is_none()
        );
        // Unsigned: no DANE; enforce rules a.d.test out (not in the policy's mx).
        let p = plan("", false);
        assert!(p.host("a.d.test").unwrap().tls.is_err());
        assert_eq!(level(&p, "b.d.test"), Some(Level::Verify));
    }

    #[test]
    fn relay_tls_overrides_and_dane_only_rules_out() {
        let p = plan("relay_tls d.test encrypt\n", true);
        assert!(p.dane.is_none() && p.sts.is_none());
        assert_eq!(level(&p, "a.d.test"), Some(Level::Encrypt));
        assert_eq!(level(&p, "b.d.test"), Some(Level::Encrypt));
        let p = plan("relay_tls d.test dane-only\n", true);
        assert_eq!(level(&p, "a.d.test"), Some(Level::Verify));
        let b = p.host("b.d.test").unwrap();
        assert!(
            b.tls.as_ref().is_err_and(|why| why.contains("dane-only")),
            "{b:?}"
        );
        assert!(p.sts.is_none());
        let p = plan("relay_tls d.test dane-only\n", false);
        assert!(p.hosts.iter().all(|h| h.tls.is_err()));
    }
}
