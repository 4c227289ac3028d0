//! `mrelay --check DOMAIN`: what would happen to mail for a domain, before any is sent: its
//! MX hosts, the DNSSEC status of the MX set and of each host, their TLSA records, the
//! domain's MTA-STS policy, and the TLS each host then requires. The plan printed is the
//! one the relay makes ([`crate::relay::policy::mx`]), not a second reading of the rules.
//! A policy fetched here is cached as a delivery would cache it.

use crate::exit::Result;
use crate::net::dns::{Answer, Checked, HostDane, Lookup, Resolver, Routing, Type};
use crate::net::tls::Level;
use crate::relay::Settings;
use crate::relay::policy::{self, Host};
use std::io::Write;

/// Print the check of `domain` on stdout.
pub fn run(s: &Settings, domain: &str) -> Result<()> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let dns = Resolver::new(&s.dns)?;
    let routing = Routing {
        my_names: s.hostnames.clone(),
        allow_private: s.allow_private,
    };
    let targets = match dns.targets(&domain, &routing) {
        Ok(t) => t,
        Err(f) => {
            // Say what DNSSEC says of the hosts, when validation is why they have no address.
            let mut out = format!("domain: {domain}\n");
            if let Some(Ok(Checked::Secure(Answer::Mx(mx)))) =
                dns.validated(&[(&domain, Type::Mx)]).into_iter().next()
            {
                out.push_str("dnssec: MX set secure\n");
                for (_, host) in mx {
                    for a in dns.validated(&[(&host, Type::A), (&host, Type::Aaaa)]) {
                        if let Ok(Checked::Bogus(why)) = a {
                            out.push_str(&format!("mx: {host}\n  dnssec: bogus: {why}\n"));
                        }
                    }
                }
            }
            let _ = std::io::stdout().write_all(out.as_bytes());
            return Err(f.into());
        }
    };
    let plan = policy::mx(s, &dns, &domain, &targets, crate::store::queue::now());
    let mut out = format!("domain: {domain}\nrelay_tls: {}\n", plan.policy.word());
    match &plan.dane {
        Some(d) => out.push_str(&format!("dnssec: MX set {}\n", d.mx)),
        None => out.push_str("dnssec: not asked (a fixed relay_tls level)\n"),
    }
    match &plan.sts {
        Some(found) => match &found.policy {
            Some(p) => out.push_str(&format!("mta-sts: {p} ({})\n", found.how)),
            None => out.push_str(&format!("mta-sts: {}\n", found.how)),
        },
        None if plan.policy == crate::relay::routes::TlsPolicy::Auto => {
            out.push_str("mta-sts: not asked (DANE applies to every host)\n")
        }
        None => out.push_str("mta-sts: not asked (relay_tls is not auto)\n"),
    }
    for t in &targets {
        let addrs: Vec<String> = t.addrs.iter().map(|a| a.to_string()).collect();
        out.push_str(&format!(
            "mx: {} preference {} [{}]\n",
            t.host,
            t.preference,
            addrs.join(" ")
        ));
        if let Some(d) = &plan.dane {
            let text = match d.host(&t.host) {
                HostDane::Insecure => "insecure (no DANE)".to_string(),
                HostDane::NoRecords => "secure, no TLSA records".to_string(),
                HostDane::Records(r) => {
                    let list: Vec<String> = r.iter().map(|r| r.to_string()).collect();
                    format!("secure, TLSA {}", list.join(", "))
                }
                HostDane::Unusable(why) => format!("unusable: {why}"),
            };
            out.push_str(&format!("  dnssec: {text}\n"));
        }
        if let Some(h) = plan.host(&t.host) {
            out.push_str(&format!("  requires: {}\n", requirement(h)));
        }
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| crate::exit::Error::io(crate::exit::Code::IoErr, "stdout", e))
}

/// One host's requirement in words.
fn requirement(h: &Host) -> String {
    let (mode, trust) = match &h.tls {
        Err(why) => return format!("nothing: the host is not used ({why}) [{}]", h.by),
        Ok(t) => t,
    };
    let what = match mode.level {
        Level::None => "no TLS".to_string(),
        Level::May => "STARTTLS if offered, certificate not checked".to_string(),
        Level::Encrypt => "STARTTLS, certificate not checked".to_string(),
        Level::Verify if trust.dane.is_some() => {
            "STARTTLS, certificate matching a TLSA record".to_string()
        }
        Level::Verify => format!("STARTTLS, certificate verified for {}", h.host),
    };
    format!("{what} [{}]", h.by)
}
