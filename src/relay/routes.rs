//! Where a recipient's mail goes, as the configuration says: static routes first (the first
//! `route` line whose domain matches wins), else the recipient domain's MX (RFC 5321 §5.1);
//! and the TLS policy towards each destination.
//!
//! ```text
//! route example.org mx1.example.org mx2.example.org:2525   # their MX, in this order
//! route lab.test [10.0.0.7]:25                              # that host, no MX lookup
//! route .internal.test local /var/mail                      # delivered here, BASE/USER/Maildir
//! route list.test pipe /usr/bin/mlmmj-receive -L /var/spool/mlmmj/list
//! route * account isp                                       # everything else: a smarthost
//! relay_tls example.org verify
//! relay_tls * may
//! ```
//!
//! A route's domain is a domain (that domain alone), `.domain` (its subdomains) or `*`
//! (every domain). A host is looked up as a domain is (its MX, else its own addresses:
//! Postfix's `smtp:host`); `[host]` means its addresses only (`smtp:[host]`), and an address
//! literal `[192.0.2.1]` is that address. A host without a port gets the MX port (25, or
//! `--mx-port`). `account NAME` sends through an account's server, with its TLS settings and
//! its login (AUTH); `local DIR` and `pipe COMMAND` deliver on this host, as mreceive does.
//! Routes are the administrator's: their hosts are trusted (loopback and private addresses
//! are allowed, and no MX loop check is made).
//!
//! `relay_tls` gives the TLS policy towards a destination, by the recipient's domain for MX
//! delivery, by the route's domain for a route; the first line that matches wins. The
//! default, `auto`, is DANE where the MX host has DNSSEC-validated TLSA records (RFC 7672),
//! else the domain's MTA-STS policy (RFC 8461), else `may` (opportunistic STARTTLS, RFC
//! 7435): [`super::policy`]. A fixed level (none, may, encrypt, verify) overrides them all,
//! and `dane-only` sends only to hosts DANE authenticates. Routes to hosts get no DANE or
//! MTA-STS (the administrator named the hosts): `auto` is `may` there. A route to an
//! account follows the account's own TLS settings.

use crate::config::{Config, Value};
use crate::exit::{Code, Error, Result};
use crate::net::tls::{Level, Mode, Start};
use crate::store::queue::Local;
use std::time::Duration;

/// Which recipient domains a route or policy line is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `*`: every domain.
    Any,
    /// `example.org`: that domain.
    Domain(String),
    /// `.example.org`: its subdomains (not itself).
    Subdomains(String),
}

impl Pattern {
    fn parse(word: &str) -> std::result::Result<Pattern, String> {
        let w = word.trim_end_matches('.').to_ascii_lowercase();
        match w.as_str() {
            "*" => Ok(Pattern::Any),
            "" => Err("an empty domain".into()),
            _ if w.contains(['@', '/', '*']) => Err(format!("{word:?} is not a domain")),
            _ => Ok(match w.strip_prefix('.') {
                Some(rest) if !rest.is_empty() => Pattern::Subdomains(format!(".{rest}")),
                Some(_) => return Err(format!("{word:?} is not a domain")),
                None => Pattern::Domain(w),
            }),
        }
    }

    /// True when mail for `domain` (lower case, no final dot) is meant.
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Domain(d) => d == domain,
            Pattern::Subdomains(suffix) => domain.ends_with(suffix.as_str()),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Domain(d) | Pattern::Subdomains(d) => f.write_str(d),
        }
    }
}

/// One host of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The host name, or the address of a literal.
    pub host: String,
    /// Look its MX up (`host`), or only its addresses (`[host]`).
    pub mx: bool,
    /// The port; `None`: the MX port.
    pub port: Option<u16>,
}

impl Hop {
    fn parse(word: &str) -> std::result::Result<Hop, String> {
        let bad = || format!("{word:?} is not HOST, HOST:PORT, [HOST] or [HOST]:PORT");
        let (inner, mx, rest) = match word.strip_prefix('[') {
            Some(w) => {
                let (host, rest) = w.split_once(']').ok_or_else(bad)?;
                (host, false, rest)
            }
            None => match word.find(':') {
                Some(i) => (&word[..i], true, &word[i..]),
                None => (word, true, ""),
            },
        };
        let port = match rest {
            "" => None,
            _ => Some(
                (rest.strip_prefix(':'))
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(bad)?,
            ),
        };
        let host = inner.strip_prefix("IPv6:").unwrap_or(inner);
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad());
        }
        Ok(Hop {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            mx,
            port,
        })
    }
}

/// How a route's mail leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// These hosts, tried in order.
    Hosts(Vec<Hop>),
    /// The server of this account, with its TLS settings and login.
    Account(String),
    /// Delivered on this host.
    Local(Local),
}

/// One `route` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The recipient domains it is for.
    pub pattern: Pattern,
    /// Where their mail goes.
    pub via: Via,
    /// `file:line` of the line.
    pub origin: String,
}

impl Route {
    /// A `route` line's value: `DOMAIN TARGET...`.
    pub fn parse(value: &Value) -> Result<Route> {
        let bad = |why: String| Error::new(Code::Config, &value.origin, format!("route: {why}"));
        let words = crate::config::words(&value.text).map_err(bad)?;
        let (domain, target) = match words.as_slice() {
            [d, rest @ ..] if !rest.is_empty() => (d, rest),
            _ => {
                return Err(bad(
                    "expected DOMAIN HOST[:PORT]..., DOMAIN account NAME, DOMAIN local DIR \
                     or DOMAIN pipe COMMAND"
                        .into(),
                ));
            }
        };
        let pattern = Pattern::parse(domain).map_err(bad)?;
        let via = match target {
            [k, name] if k == "account" => Via::Account(name.clone()),
            [k, dir] if k == "local" => {
                if !dir.starts_with('/') {
                    return Err(bad(format!(
                        "local {dir:?}: the Maildir base must be absolute"
                    )));
                }
                Via::Local(Local::Maildirs(dir.into()))
            }
            [k, cmd @ ..] if k == "pipe" && !cmd.is_empty() => {
                let argv = cmd.to_vec();
                let names = crate::deliver::local::names_recipient(&argv).map_err(bad)?;
                if !names {
                    return Err(bad(
                        "pipe: the command must name ${user} or ${recipient}, or every \
                         recipient's mail goes to one place"
                            .into(),
                    ));
                }
                Via::Local(Local::Command(join_words(&argv)))
            }
            [k, ..] if matches!(k.as_str(), "account" | "local" | "pipe") => {
                return Err(bad(format!("{k}: expected one value")));
            }
            hosts => Via::Hosts(
                hosts
                    .iter()
                    .map(|h| Hop::parse(h))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(bad)?,
            ),
        };
        Ok(Route {
            pattern,
            via,
            origin: value.origin.clone(),
        })
    }
}

/// Words joined back into one line that [`crate::config::words`] splits into them again:
/// the queue keeps a local route's command as one line.
pub fn join_words(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty() && !w.contains(|c: char| c.is_whitespace() || "'\"\\#".contains(c)) {
                w.clone()
            } else {
                format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a `relay_tls` line asks for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsPolicy {
    /// DANE, else MTA-STS, else `may` (the default).
    Auto,
    /// This level, whatever DANE or MTA-STS say.
    Fixed(Level),
    /// Only hosts with usable DNSSEC-validated TLSA records, authenticated by them.
    DaneOnly,
}

impl TlsPolicy {
    /// The word of the configuration.
    pub fn word(self) -> &'static str {
        match self {
            TlsPolicy::Auto => "auto",
            TlsPolicy::DaneOnly => "dane-only",
            TlsPolicy::Fixed(Level::None) => "none",
            TlsPolicy::Fixed(Level::May) => "may",
            TlsPolicy::Fixed(Level::Encrypt) => "encrypt",
            TlsPolicy::Fixed(Level::Verify) => "verify",
        }
    }
}

/// The routes and TLS policy of the configuration.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// The `route` lines, in order.
    pub routes: Vec<Route>,
    /// The `relay_tls` lines, in order.
    pub tls: Vec<(Pattern, TlsPolicy)>,
}

impl Routes {
    /// The `route` and `relay_tls` lines of `cfg`, each checked.
    pub fn from_config(cfg: &Config) -> Result<Routes> {
        let routes = cfg
            .all("route")
            .iter()
            .map(Route::parse)
            .collect::<Result<Vec<_>>>()?;
        let mut tls = Vec::new();
        for v in cfg.all("relay_tls") {
            let bad =
                |why: String| Error::new(Code::Config, &v.origin, format!("relay_tls: {why}"));
            let words = crate::config::words(&v.text).map_err(bad)?;
            let [domain, level] = words.as_slice() else {
                return Err(bad(
                    "expected DOMAIN LEVEL (auto, none, may, encrypt, verify, dane-only)".into(),
                ));
            };
            let level = match level.to_ascii_lowercase().as_str() {
                "auto" => TlsPolicy::Auto,
                "dane-only" => TlsPolicy::DaneOnly,
                "none" => TlsPolicy::Fixed(Level::None),
                "may" => TlsPolicy::Fixed(Level::May),
                "encrypt" => TlsPolicy::Fixed(Level::Encrypt),
                "verify" => TlsPolicy::Fixed(Level::Verify),
                _ => {
                    return Err(bad(format!(
                        "{level:?}: expected auto, none, may, encrypt, verify or dane-only"
                    )));
                }
            };
            tls.push((Pattern::parse(domain).map_err(bad)?, level));
        }
        Ok(Routes { routes, tls })
    }

    /// The route for mail to `domain` (lower case): its index and itself; `None`: by MX.
    pub fn find(&self, domain: &str) -> Option<(usize, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.pattern.matches(domain))
    }

    /// The TLS policy towards `domain` (a recipient's, or a route's pattern as written):
    /// the first `relay_tls` line that matches, else `auto`.
    pub fn policy_for(&self, domain: &str) -> TlsPolicy {
        self.tls
            .iter()
            .find(|(p, _)| p.matches(domain) || p.to_string() == domain)
            .map_or(TlsPolicy::Auto, |(_, l)| *l)
    }

    /// The TLS mode towards `domain` before DANE or MTA-STS are asked: STARTTLS at the
    /// level of the first `relay_tls` line that matches; `auto` is `may`, `dane-only` is
    /// `verify` (DANE's records then say what is verified).
    pub fn tls_for(&self, domain: &str) -> Mode {
        let level = match self.policy_for(domain) {
            TlsPolicy::Fixed(l) => l,
            TlsPolicy::Auto => Level::May,
            TlsPolicy::DaneOnly => Level::Verify,
        };
        Mode::new(Start::StartTls, level).unwrap_or(Mode::MAY)
    }
}

/// A duration as the configuration writes it: seconds, or a number with `s`, `m`, `h`, `d`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, 's'),
    };
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => {
            return Err(format!(
                "{s:?}: expected seconds, or a number with s, m, h or d"
            ));
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: expected seconds, or a number with s, m, h or d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        let mut c = Config::default();
        c.parse(text, "t").unwrap();
        c
    }

    #[test]
    fn routes_parse_and_the_first_match_wins() {
        let r = Routes::from_config(&cfg(
            "route Example.ORG. mx1.example.org mx2.example.org:2525\n\
             route .sub.test [10.0.0.7]:25 [IPv6:2001:db8::1]\n\
             route local.test local /var/mail\n\
             route list.test pipe /usr/bin/lda -d '${user}' \"a b\"\n\
             route * account isp\n\
             route example.org [never.used]\n",
        ))
        .unwrap();
        let hop = |host: &str, mx, port| Hop {
            host: host.into(),
            mx,
            port,
        };
        assert_eq!(
            r.find("example.org").unwrap().1.via,
            Via::Hosts(vec![
                hop("mx1.example.org", true, None),
                hop("mx2.example.org", true, Some(2525))
            ])
        );
        assert_eq!(r.find("example.org").unwrap().0, 0);
        assert_eq!(
            r.find("a.sub.test").unwrap().1.via,
            Via::Hosts(vec![
                hop("10.0.0.7", false, Some(25)),
                hop("2001:db8::1", false, None)
            ])
        );
        // `.sub.test` is for subdomains only: sub.test itself goes on to `*`.
        assert_eq!(
            r.find("sub.test").unwrap().1.via,
            Via::Account("isp".into())
        );
        assert_eq!(
            r.find("local.test").unwrap().1.via,
            Via::Local(Local::Maildirs("/var/mail".into()))
        );
        let Via::Local(Local::Command(cmd)) = &r.find("list.test").unwrap().1.via else {
            panic!()
        };
        assert_eq!(
            crate::config::words(cmd).unwrap(),
            ["/usr/bin/lda", "-d", "${user}", "a b"]
        );
        assert_eq!(r.find("x.test").unwrap().0, 4);
        assert!(Routes::default().find("x.test").is_none());
    }

    #[test]
    fn bad_routes_name_their_line() {
        for bad in [
            "route example.org",
            "route a@b.test host",
            "route x.test host:0",
            "route x.test host:99999",
            "route x.test [host",
            "route x.test local var/mail",
            "route x.test pipe /usr/bin/lda",
            "route x.test account",
            "route x.test account a b",
            "relay_tls x.test sometimes",
            "relay_tls x.test",
        ] {
            let e = Routes::from_config(&cfg(bad)).unwrap_err();
            assert_eq!(e.code(), Code::Config, "{bad}");
            assert!(e.to_string().starts_with("t:1: "), "{bad}: {e}");
        }
    }

    #[test]
    fn tls_policy_by_domain_defaults_to_may() {
        let r = Routes::from_config(&cfg(
            "relay_tls bank.test verify\nrelay_tls .corp.test encrypt\nrelay_tls old.test none\n",
        ))
        .unwrap();
        assert_eq!(r.tls_for("bank.test").level, Level::Verify);
        assert_eq!(r.tls_for("a.corp.test").level, Level::Encrypt);
        assert_eq!(r.tls_for("old.test"), Mode::NONE);
        assert_eq!(r.tls_for("other.test"), Mode::MAY);
        let r = Routes::from_config(&cfg("relay_tls * verify\n")).unwrap();
        assert_eq!(r.tls_for("*").level, Level::Verify);
        let r = Routes::from_config(&cfg(
            "relay_tls bank.test dane-only\nrelay_tls old.test may\n",
        ))
        .unwrap();
        assert_eq!(r.policy_for("bank.test"), TlsPolicy::DaneOnly);
        assert_eq!(r.policy_for("old.test"), TlsPolicy::Fixed(Level::May));
        assert_eq!(r.policy_for("new.test"), TlsPolicy::Auto);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("5D"), Ok(Duration::from_secs(5 * 86400)));
        assert!(parse_duration("5w").is_err() && parse_duration("m").is_err());
    }
}
