//! Which recipients an MX accepts: only mailboxes of its local domains (optionally only known
//! users), so it is never an open relay.
//!
//! The classic relay tricks all hide a remote address inside one that looks local, hoping a
//! later stage (sendmail's rewriting, a `%`-hack in a delivery agent, UUCP bang paths) routes
//! it on: `user%remote@local`, `"user@remote"@local`, `user@remote@local`, `remote!user@local`,
//! and source routes `@local:user@remote` (RFC 5321 §4.1.1.3 says to ignore the route and
//! judge the final mailbox, which the path parser does). A local part here must therefore be
//! a plain dot-atom without `%`, `!`, `@`, `/` or quotes; anything else is refused with 550
//! 5.7.1, as is every domain not in the list. Domains compare case-insensitively with one
//! trailing dot ignored (`LOCAL.test.` is `local.test`), the same normalization everywhere.

use super::command::split_mailbox;
use super::reply::{EnhancedCode, Reply};
use crate::exit::{Code, Context, Error, Result};
use std::collections::HashSet;
use std::path::Path;

/// An accepted local recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    /// The address, with the domain normalized: what `RECIPIENT` and `Delivered-To:` show.
    pub address: String,
    /// The mailbox owner: the local part before any `+extension`, lower-cased. Safe as one
    /// path component.
    pub user: String,
}

/// The MX's recipient policy, and which senders an authenticated user may give.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    domains: Vec<String>,
    users: Option<HashSet<String>>,
    senders: Senders,
}

/// Which MAIL FROM addresses each login owns (Postfix's smtpd_sender_login_maps with
/// reject_sender_login_mismatch): its own address always (the login itself when it is an
/// address, else the login at each local domain, `+extensions` included), the addresses a
/// sender-login map gives it, and any address for a trusted login (a relay account that
/// sends for others). Without this, a user's password lets them send as anyone.
#[derive(Clone, Debug, Default)]
pub struct Senders {
    /// An address (lower case) or `@domain` → the logins that may use it.
    map: std::collections::HashMap<String, Vec<String>>,
    /// Logins that may give any sender.
    trusted: HashSet<String>,
}

impl Senders {
    /// Read a sender-login map: one `ADDRESS LOGIN[,LOGIN…]` a line (`@domain` for a whole
    /// domain), `#` comments; logins in `trusted` may give any sender.
    pub fn load(map: Option<&Path>, trusted: &[String]) -> Result<Senders> {
        let mut senders = Senders {
            trusted: trusted.iter().cloned().collect(),
            ..Senders::default()
        };
        let Some(path) = map else {
            return Ok(senders);
        };
        let text = std::fs::read_to_string(path).or_code_with(Code::Config, || {
            format!("sender login map {}", path.display())
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad =
                |why: &str| Error::new(Code::Config, format!("{}:{}", path.display(), n + 1), why);
            let mut words = line.split_whitespace();
            let (Some(address), Some(logins), None) = (words.next(), words.next(), words.next())
            else {
                return Err(bad("expected ADDRESS LOGIN[,LOGIN...]"));
            };
            if !address.contains('@') {
                return Err(bad("expected an address or @domain"));
            }
            let logins: Vec<String> = logins
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            senders
                .map
                .entry(normalize_address(address))
                .or_default()
                .extend(logins);
        }
        Ok(senders)
    }
}

/// An address as the sender check compares it: lower case, the domain without a trailing dot.
fn normalize_address(a: &str) -> String {
    match split_mailbox(a) {
        (local, Some(domain)) => format!("{}@{}", local.to_lowercase(), normalize_domain(domain)),
        (local, None) => local.to_lowercase(),
    }
}

/// A domain as compared and stored: ASCII lower case, without one trailing dot.
fn normalize_domain(d: &str) -> String {
    d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase()
}

fn refuse(code: u16, e: (u8, u16, u16), text: impl Into<String>) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(e.0, e.1, e.2)), text)
}

fn relay_denied() -> Reply {
    refuse(550, (5, 7, 1), "relay access denied")
}

impl Policy {
    /// Accept mail for `domains` (at least one); for any user, or only those in `users`.
    pub fn new(domains: &[String], users: Option<HashSet<String>>) -> Policy {
        Policy {
            domains: domains.iter().map(|d| normalize_domain(d)).collect(),
            users,
            senders: Senders::default(),
        }
    }

    /// Judge MAIL FROM by who `senders` says owns which address.
    pub fn with_senders(mut self, senders: Senders) -> Policy {
        self.senders = senders;
        self
    }

    /// May `login` (authenticated) give `from` as its MAIL FROM? 553 5.7.1 if not. The null
    /// sender is anyone's (a bounce names no one).
    pub fn check_sender(&self, login: &str, from: &str) -> std::result::Result<(), Reply> {
        let s = &self.senders;
        if from.is_empty() || s.trusted.contains(login) {
            return Ok(());
        }
        let from = normalize_address(from);
        let (local, domain) = split_mailbox(&from);
        // An +extension is the owner's too (alice+lists@ is alice's).
        let base = local.split('+').next().unwrap_or(local);
        let own = match (login.contains('@'), domain) {
            (true, Some(d)) => normalize_address(login) == format!("{base}@{d}"),
            (false, Some(d)) => base == login.to_lowercase() && self.is_local(d),
            (_, None) => false,
        };
        let mapped = |key: &str| s.map.get(key).is_some_and(|l| l.iter().any(|l| l == login));
        let listed = mapped(&from)
            || domain.is_some_and(|d| mapped(&format!("{base}@{d}")) || mapped(&format!("@{d}")));
        if own || listed {
            return Ok(());
        }
        Err(refuse(
            553,
            (5, 7, 1),
            format!("sender address not owned by user {login}"),
        ))
    }

    /// The first local domain (where `<postmaster>` without a domain goes).
    pub fn primary(&self) -> Option<&str> {
        self.domains.first().map(String::as_str)
    }

    /// True when `domain` is one of ours.
    fn is_local(&self, domain: &str) -> bool {
        let d = normalize_domain(domain);
        self.domains.contains(&d)
    }

    /// True when `mailbox` is in one of our domains (or is `<postmaster>` without a domain).
    pub fn is_local_address(&self, mailbox: &str) -> bool {
        match split_mailbox(mailbox).1 {
            Some(d) => self.is_local(d),
            None => true,
        }
    }

    /// Judge a recipient `mailbox` (as parsed from RCPT TO, route already stripped).
    pub fn check(&self, mailbox: &str) -> std::result::Result<Local, Reply> {
        let (local, domain) = split_mailbox(mailbox);
        let domain = match domain {
            Some(d) => normalize_domain(d),
            // RFC 5321 §4.1.1.3: <Postmaster> without a domain must be accepted.
            None if local.eq_ignore_ascii_case("postmaster") => {
                let d = self.primary().ok_or_else(relay_denied)?.to_string();
                return Ok(Local {
                    address: format!("postmaster@{d}"),
                    user: "postmaster".into(),
                });
            }
            None => return Err(relay_denied()),
        };
        if !self.domains.contains(&domain) {
            return Err(relay_denied());
        }
        if local.starts_with('"')
            || local
                .chars()
                .any(|c| matches!(c, '%' | '!' | '@' | '/' | '\\' | ':' | '"'))
        {
            return Err(refuse(
                550,
                (5, 7, 1),
                "relay access denied: routing characters in the local part",
            ));
        }
        let user = local
            .split('+')
            .next()
            .unwrap_or(local)
            .to_ascii_lowercase();
        if !is_user_name(&user) {
            return Err(refuse(550, (5, 1, 1), "no such user here"));
        }
        let known = user == "postmaster"
            || self
                .users
                .as_ref()
                .is_none_or(|users| users.contains(&user));
        if !known {
            return Err(refuse(550, (5, 1, 1), "no such user here"));
        }
        Ok(Local {
            address: format!("{local}@{domain}"),
            user,
        })
    }
}

/// A user name that is safe as a directory name: ASCII letters, digits, `.`, `_`, `-`, not
/// starting with a dot or dash, at most 64 octets.
pub fn is_user_name(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && !u.starts_with('.')
        && !u.starts_with('-')
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Load the known users: a file with one name a line (`#` comments), or a directory whose
/// entries are the users (the Maildir base itself will do). Names are lower-cased.
pub fn load_users(path: &Path) -> Result<HashSet<String>> {
    let what = || format!("users {}", path.display());
    let mut users = HashSet::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).or_code_with(Code::Config, what)? {
            let entry = entry.or_code_with(Code::Config, what)?;
            if let Some(name) = entry.file_name().to_str()
                && is_user_name(&name.to_ascii_lowercase())
            {
                users.insert(name.to_ascii_lowercase());
            }
        }
        return Ok(users);
    }
    let text = std::fs::read_to_string(path).or_code_with(Code::Config, what)?;
    for (n, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if !is_user_name(&name) {
            return Err(Error::new(
                Code::Config,
                format!("{}:{}", path.display(), n + 1),
                format!("bad user name {name:?}"),
            ));
        }
        users.insert(name);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::command::parse_forward_path;

    fn judge(p: &Policy, path: &str) -> std::result::Result<Local, u16> {
        let mailbox = parse_forward_path(path).map_err(|e| e.code)?;
        p.check(&mailbox).map_err(|r| r.code)
    }

    #[test]
    fn accepts_local_and_refuses_relay_tricks() {
        let users: HashSet<String> = ["alice".to_string()].into();
        let p = Policy::new(&["Local.Test.".into()], Some(users));
        // The path parser refuses a trailing dot (553); the policy normalizes it anyway.
        assert_eq!(judge(&p, "<alice@local.test.>"), Err(553));
        assert_eq!(
            p.check("alice@LOCAL.test.").unwrap().address,
            "alice@local.test"
        );
        let ok = judge(&p, "<Alice+tag@LOCAL.test>").unwrap();
        assert_eq!(ok.user, "alice");
        assert_eq!(ok.address, "Alice+tag@local.test");
        assert_eq!(judge(&p, "<alice@local.test>").unwrap().user, "alice");
        assert_eq!(
            judge(&p, "<@other.test:alice@local.test>").unwrap().user,
            "alice"
        );
        assert_eq!(
            judge(&p, "<Postmaster>").unwrap().address,
            "postmaster@local.test"
        );
        for trick in [
            "<alice@remote.test>",
            "<alice%remote.test@local.test>",
            "<\"alice@remote.test\"@local.test>",
            "<@local.test:alice@remote.test>",
            "<alice@remote.test@local.test>",
            "<remote.test!alice@local.test>",
            "<alice@local.test.remote.test>",
            "<alice@local.test..>",
            "<alice@[127.0.0.1]>",
            "<bob@local.test>",
            "<../alice@local.test>",
        ] {
            let code = judge(&p, trick).expect_err(trick);
            assert!(code >= 550, "{trick}: {code}");
        }
    }

    #[test]
    fn an_authenticated_user_sends_only_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("senders");
        std::fs::write(
            &map,
            "# shared addresses\nsales@Local.Test alice,bob\n@other.test carol\n",
        )
        .unwrap();
        let senders = Senders::load(Some(&map), &["relay".into()]).unwrap();
        let p = Policy::new(&["local.test".into()], None).with_senders(senders);
        let ok = |login, from| p.check_sender(login, from).is_ok();
        assert!(ok("alice", "alice@local.test"));
        assert!(ok("alice", "Alice+lists@LOCAL.test."));
        assert!(ok("alice", ""));
        assert!(ok("alice", "sales@local.test") && ok("bob", "SALES@local.test"));
        assert!(ok("carol", "anyone@other.test"));
        assert!(ok("dave@else.test", "dave@else.test"));
        assert!(ok("relay", "whoever@anywhere.test"));
        for (login, from) in [
            ("alice", "bob@local.test"),
            ("alice", "alice@other.test"),
            ("alice", "alice"),
            ("bob", "sales2@local.test"),
            ("carol", "carol@else.test"),
            ("dave@else.test", "dave@local.test"),
            ("mallory", "mallory@elsewhere.test"),
        ] {
            let reply = p.check_sender(login, from).expect_err(from);
            assert_eq!(reply.code, 553, "{login} as {from}");
        }
        std::fs::write(&map, "sales@local.test\n").unwrap();
        let e = Senders::load(Some(&map), &[]).unwrap_err();
        assert_eq!(e.code(), Code::Config);
    }

    #[test]
    fn user_names_are_path_safe() {
        for bad in ["", ".x", "-x", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(!is_user_name(bad), "{bad:?}");
        }
        assert!(is_user_name("first.last_2-x"));
    }
}
