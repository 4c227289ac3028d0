//! MTA-STS (RFC 8461): a domain's published promise that its MX hosts take mail over
//! verified TLS, which an attacker on the path can neither strip nor fake once seen.
//!
//! The policy is found in two steps: the `_mta-sts.DOMAIN` TXT record (`v=STSv1; id=…`,
//! §3.1) says one exists and which version; the policy itself is fetched from
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` ([`crate::net::https`]: verified, no
//! redirects, 200 and text/plain only, capped, a short deadline; §3.3). It says `mode`
//! (enforce, testing, none), the `mx` patterns, and `max_age` (§3.2).
//!
//! What makes it worth anything is the cache (§5.1): kept on disk in the queue directory
//! (`QUEUE/mta-sts/DOMAIN`, written whole by rename), so a restart, a TXT record removed
//! by an attacker or a blocked fetch does not downgrade a domain seen with `enforce` until
//! its max_age runs out (maddy's documentation: a cache in memory loses the protection at
//! every restart). A changed id fetches again (chasquid ignores the id and keeps a stale
//! policy); so does a cached policy past half its max_age, so an active domain's policy is
//! refreshed before it expires (§5.1 "proactively refresh"). A failed fetch keeps the
//! cached policy.

use crate::net::dns::{self, Lookup};
use crate::net::https::{self, Fetch};
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// §3.2: what a sender does with the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only the policy's MX hosts, over verified TLS; else defer.
    Enforce,
    /// Deliver as without a policy, and report what would have failed.
    Testing,
    /// No policy (a domain withdrawing one, §8.3).
    None,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// RFC 8461 §3.2: max_age is at most 31557600 seconds (a year).
const MAX_AGE_LIMIT: u64 = 31_557_600;

/// A domain's policy and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The TXT record's id it was fetched under.
    pub id: String,
    pub mode: Mode,
    /// MX patterns: a host name or `*.` and a domain (one label left, §4.1).
    pub mx: Vec<String>,
    /// Seconds it may be used after `fetched`.
    pub max_age: u64,
    /// When it was fetched (Unix seconds).
    pub fetched: u64,
}

impl Policy {
    /// Parse a policy's text (RFC 8461 §3.2): `key: value` lines ending in CRLF (LF is
    /// accepted, as every implementation does); `version: STSv1`, `mode` and `max_age`
    /// required, `mx` required unless the mode is none; unknown keys ignored.
    pub fn parse(text: &str, id: &str, fetched: u64) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode {other:?}")),
                    })
                }
                "max_age" => {
                    max_age = Some(
                        v.parse::<u64>()
                            .ok()
                            .filter(|n| *n <= MAX_AGE_LIMIT && v.len() <= 10)
                            .ok_or_else(|| format!("bad max_age {v:?}"))?,
                    )
                }
                "mx" => mx.push(v.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("no \"version: STSv1\"".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx".into());
        }
        Ok(Policy {
            id: id.to_string(),
            mode,
            mx,
            max_age,
            fetched,
        })
    }

    /// RFC 8461 §4.1: `host` (no final dot) is one of the policy's MX hosts: equal to a
    /// pattern, or one label under a `*.` pattern's domain.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(base) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == base),
            None => *p == host,
        })
    }

    /// Still usable at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.fetched.saturating_add(self.max_age)
    }

    /// The policy as the cache file keeps it: our two lines, then the policy's own.
    fn to_cache(&self) -> String {
        let mut s = format!(
            "x-id: {}\nx-fetched: {}\nversion: STSv1\nmode: {}\nmax_age: {}\n",
            self.id,
            self.fetched,
            self.mode.word(),
            self.max_age
        );
        for m in &self.mx {
            s.push_str(&format!("mx: {m}\n"));
        }
        s
    }

    fn from_cache(text: &str) -> Option<Policy> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        let id = field("x-id:")?;
        let fetched = field("x-fetched:")?.parse().ok()?;
        Policy::parse(text, &id, fetched).ok()
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mode {}, mx {}, max_age {}, id {}",
            self.mode.word(),
            self.mx.join(" "),
            self.max_age,
            self.id
        )
    }
}

/// The id of the `_mta-sts` TXT records (RFC 8461 §3.1): the one record that starts with
/// `v=STSv1`; none, or more than one, is no policy.
pub fn txt_id(records: &[String]) -> Option<String> {
    let mut found = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"));
    let record = found.next()?;
    if found.next().is_some() {
        return None;
    }
    record.split(';').find_map(|field| {
        let (k, v) = field.split_once('=')?;
        let v = v.trim();
        let ok = !v.is_empty() && v.len() <= 32 && v.chars().all(|c| c.is_ascii_alphanumeric());
        (k.trim() == "id" && ok).then(|| v.to_string())
    })
}

/// Where the policies are found and kept.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The cache directory (`QUEUE/mta-sts`); `None`: no cache (each run fetches).
    pub cache: Option<PathBuf>,
    /// How the fetch is bounded and trusted.
    pub fetch: Fetch,
    /// The HTTPS port (443; another only in tests).
    pub port: u16,
    /// The policy host may be at a loopback or private address (tests).
    pub allow_private: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cache: None,
            fetch: Fetch::default(),
            port: 443,
            allow_private: false,
        }
    }
}

/// A domain's policy as found now, and how: for the log and `--check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The policy in force, if any (a `none` policy is returned too: it says so).
    pub policy: Option<Policy>,
    /// How it was found: "fetched", "cached", "cached (the fetch failed: …)", or why there
    /// is none.
    pub how: String,
}

/// The MTA-STS policy of `domain` at `now` (Unix seconds), fetching and caching as
/// RFC 8461 §5.1 says. Never fails: what cannot be learnt is no policy (or the cached one).
pub fn find(dns: &dyn Lookup, s: &Settings, domain: &str, now: u64) -> Found {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let cached = read_cache(s, &domain).filter(|p| p.is_fresh(now));
    let txt = dns.txt(&format!("_mta-sts.{domain}"));
    let id = match &txt {
        Ok(records) => txt_id(records),
        Err(_) => None,
    };
    let Some(id) = id else {
        // §5.1: no TXT record (or the lookup failed, or an attacker removed it): a cached
        // policy stays in force until it expires.
        return match cached {
            Some(p) => Found {
                policy: Some(p),
                how: "cached (no _mta-sts TXT record now)".into(),
            },
            None => Found {
                policy: None,
                how: match txt {
                    Err(f) => format!("none (the TXT lookup failed: {})", f.text()),
                    Ok(_) => "none (no _mta-sts TXT record)".into(),
                },
            },
        };
    };
    if let Some(p) = &cached {
        let half = p.max_age / 2;
        if p.id == id && now < p.fetched.saturating_add(half) {
            return Found {
                policy: cached,
                how: "cached".into(),
            };
        }
    }
    match fetch(dns, s, &domain, &id, now) {
        Ok(p) => {
            let how = match write_cache(s, &domain, &p) {
                Ok(()) => "fetched".to_string(),
                Err(e) => format!("fetched (not cached: {e})"),
            };
            Found {
                policy: Some(p),
                how,
            }
        }
        Err(why) => match cached {
            Some(p) => Found {
                policy: Some(p),
                how: format!("cached (the fetch failed: {why})"),
            },
            None => Found {
                policy: None,
                how: format!("none (the policy fetch failed: {why})"),
            },
        },
    }
}

/// Fetch and parse `domain`'s policy (RFC 8461 §3.3).
fn fetch(
    dns: &dyn Lookup,
    s: &Settings,
    domain: &str,
    id: &str,
    now: u64,
) -> Result<Policy, String> {
    let host = format!("mta-sts.{domain}");
    let addrs = dns.addresses(&host).map_err(|f| f.text().to_string())?;
    let addrs: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| s.allow_private || !dns::is_private(*a))
        .map(|a| SocketAddr::new(a, s.port))
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no usable address"));
    }
    let r = https::get(&addrs, &host, "/.well-known/mta-sts.txt", &s.fetch)?;
    // §3.3: "the policy ... MUST have a media type of text/plain".
    if r.media_type != "text/plain" {
        return Err(format!("media type {:?}, not text/plain", r.media_type));
    }
    let text = String::from_utf8(r.body).map_err(|_| "the policy is not UTF-8".to_string())?;
    Policy::parse(&text, id, now).map_err(|e| format!("a bad policy: {e}"))
}

/// The cache file of a domain, when the domain is a plain host name (it becomes a file name).
fn cache_file(s: &Settings, domain: &str) -> Option<PathBuf> {
    let ok = !domain.is_empty()
        && !domain.starts_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    s.cache.as_ref().filter(|_| ok).map(|d| d.join(domain))
}

fn read_cache(s: &Settings, domain: &str) -> Option<Policy> {
    let text = fs::read_to_string(cache_file(s, domain)?).ok()?;
    Policy::from_cache(&text)
}

/// Write the policy whole: a temporary file, fsync, rename, the directory fsynced, so a
/// crash leaves the old policy or the new one.
fn write_cache(s: &Settings, domain: &str, p: &Policy) -> std::io::Result<()> {
    let Some(path) = cache_file(s, domain) else {
        return Ok(());
    };
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(p.to_cache().as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_rfc_8461_writes_them() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
            "20160831085700Z",
            1000,
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert!(p.matches("mail.example.com") && p.matches("MAIL.example.com."));
        // §4.1: a wildcard stands for one label only.
        assert!(p.matches("mx1.example.net"));
        assert!(!p.matches("a.b.example.net") && !p.matches("example.net"));
        assert!(!p.matches("evil.example.com"));
        assert!(p.is_fresh(1000 + 604799) && !p.is_fresh(1000 + 604800));
        assert_eq!(Policy::from_cache(&p.to_cache()), Some(p));
        for bad in [
            "mode: enforce\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999999\n",
            "version: STSv1\nmode: enforce\nmx: a\n",
        ] {
            assert!(Policy::parse(bad, "1", 0).is_err(), "{bad}");
        }
        assert!(Policy::parse("version: STSv1\nmode: none\nmax_age: 1\n", "1", 0).is_ok());
    }

    /// A DNS with only the `_mta-sts.d.test` TXT record `txt` (if any): the policy host
    /// does not exist, so every fetch fails at once.
    struct Dns(Option<&'static str>);

    impl Lookup for Dns {
        fn query(&self, q: &[(&str, dns::Type)]) -> Vec<Result<dns::Answer, dns::Failure>> {
            q.iter()
                .map(|&(name, kind)| match (name, kind, self.0) {
                    ("_mta-sts.d.test", dns::Type::Txt, Some(t)) => {
                        Ok(dns::Answer::Txt(vec![t.to_string()]))
                    }
                    _ => Ok(dns::Answer::NxDomain),
                })
                .collect()
        }
    }

    #[test]
    fn the_cache_holds_until_expiry_and_a_due_fetch_that_fails_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            cache: Some(dir.path().join("mta-sts")),
            ..Settings::default()
        };
        let p = Policy::parse(
            "version: STSv1\nmode: enforce\nmx: mx.d.test\nmax_age: 1000\n",
            "7",
            10_000,
        )
        .unwrap();
        write_cache(&s, "d.test", &p).unwrap();
        let same = Dns(Some("v=STSv1; id=7"));
        // Fresh, same id: the cache, no fetch.
        let f = find(&same, &s, "d.test", 10_100);
        assert_eq!((f.policy.as_ref(), f.how.as_str()), (Some(&p), "cached"));
        // Past half its max_age: a fetch is due; it fails; the policy holds.
        let f = find(&same, &s, "D.test.", 10_600);
        assert_eq!(f.policy.as_ref(), Some(&p));
        assert!(f.how.starts_with("cached (the fetch failed"), "{}", f.how);
        // A changed id, the fetch blocked: still the cached enforce policy.
        let f = find(&Dns(Some("v=STSv1; id=8")), &s, "d.test", 10_100);
        assert_eq!(f.policy.as_ref(), Some(&p));
        // The TXT record gone (an attacker, or the domain): the cache still holds.
        let f = find(&Dns(None), &s, "d.test", 10_999);
        assert_eq!(f.policy.as_ref(), Some(&p));
        // Expired: nothing.
        let f = find(&same, &s, "d.test", 11_000);
        assert_eq!(f.policy, None);
        // No cache directory for a name that is not a plain domain.
        assert_eq!(cache_file(&s, "../x"), None);
    }

    #[test]
    fn the_txt_record_gives_the_id() {
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            txt_id(&r(&["v=STSv1; id=20160831085700Z;"])),
            Some("20160831085700Z".into())
        );
        assert_eq!(txt_id(&r(&["spf1", "v=STSv1;id=1"])), Some("1".into()));
        // Two STS records, none, or a bad id: no policy (§3.1).
        assert_eq!(txt_id(&r(&["v=STSv1; id=1", "v=STSv1; id=2"])), None);
        assert_eq!(txt_id(&r(&["v=spf1 -all"])), None);
        assert_eq!(txt_id(&r(&["v=STSv1; id=a-b"])), None);
    }
}
