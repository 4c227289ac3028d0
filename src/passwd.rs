//! The password file of mreceive's submission role: user names with crypt(3) hashes.
//!
//! Format, one entry a line (blank lines and `#` comments ignored):
//!
//! ```text
//! alice:$6$rounds=5000$saltsalt$hash…
//! bob:{SHA512-CRYPT}$6$…:any:further:fields
//! ```
//!
//! The hash is SHA512-CRYPT (`$6$`) or SHA256-CRYPT (`$5$`) in the Modular Crypt Format, so
//! `mkpasswd -m sha-512`, `doveadm pw -s SHA512-CRYPT` (its `{SCHEME}` prefix is accepted) and
//! `mreceive --hash-password` all make entries; a Dovecot passwd-file works as it is, since
//! fields after the hash are ignored. Plain-text passwords are not supported on purpose.

use crate::exit::{Code, Context, Error, Result};
use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};
use std::collections::HashMap;
use std::path::Path;

/// Users and their hashes.
#[derive(Debug, Default)]
pub struct Passwords {
    entries: HashMap<String, String>,
    /// The first entry's hash: an unknown user's password is checked against it (and the
    /// answer is no), so the reply takes as long as for a user of the file.
    decoy: Option<String>,
}

/// A valid hash of a password nobody knows, for unknown users when the file has no entries.
fn dummy() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("mailpipe dummy").unwrap_or_default())
}

impl Passwords {
    /// Read a password file.
    pub fn load(path: &Path) -> Result<Passwords> {
        let text = std::fs::read_to_string(path)
            .or_code_with(Code::Config, || format!("password file {}", path.display()))?;
        Passwords::parse(&text, &path.display().to_string())
    }

    /// Parse the text of a password file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Passwords> {
        let mut entries = HashMap::new();
        let mut decoy = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::new(Code::Config, format!("{origin}:{}", n + 1), why);
            let mut fields = line.split(':');
            let user = fields.next().unwrap_or("").trim();
            let hash = fields.next().unwrap_or("").trim();
            let hash = match hash.strip_prefix('{') {
                Some(rest) => rest.split_once('}').map_or("", |(_, h)| h),
                None => hash,
            };
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            if !(hash.starts_with("$6$") || hash.starts_with("$5$")) {
                return Err(bad(
                    "expected a $6$ (SHA512-CRYPT) or $5$ (SHA256-CRYPT) hash",
                ));
            }
            // MCF fields are colon-free, but `$` splits them; a colon inside would have been
            // cut above, so the hash is whole.
            decoy.get_or_insert_with(|| hash.to_string());
            entries.insert(user.to_string(), hash.to_string());
        }
        Ok(Passwords { entries, decoy })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.entries.get(user) {
            Some(hash) => check(password, hash),
            // Timing must not tell whether the user exists: a fixed dummy hash, made when
            // first needed and at its own cost (5000 rounds), answered an unknown user
            // faster than one whose hash has more rounds, and in inetd mode (a process per
            // session) every first attempt for an unknown user took two hash computations.
            None => {
                let decoy: &str = match &self.decoy {
                    Some(h) => h,
                    None => dummy(),
                };
                let _ = check(password, decoy);
                false
            }
        }
    }
}

/// Failed AUTH attempts tolerated per session, by every server that checks this file
/// (mreceive's SMTP AUTH, maccess's POP3 PASS and AUTH): the third ends the session.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// A session's failed logins: each one waits `delay` times the failures so far before its
/// answer (slowing password guessing, as Dovecot's auth_failure_delay and Postfix's
/// smtpd_error_sleep_time do), and [`MAX_AUTH_FAILURES`] of them end the session. One policy
/// for SMTP and POP3, so one password file is guarded alike whichever door is knocked on.
#[derive(Debug)]
pub struct Failures {
    delay: std::time::Duration,
    count: u32,
}

impl Failures {
    /// No failures yet; each will wait `delay` times their number.
    pub fn new(delay: std::time::Duration) -> Failures {
        Failures { delay, count: 0 }
    }

    /// Count a failure and wait; true when it was the last one allowed (end the session).
    pub fn fail(&mut self) -> bool {
        self.count += 1;
        std::thread::sleep(self.delay * self.count);
        self.count >= MAX_AUTH_FAILURES
    }
}

/// True when `password` matches the crypt `hash`.
pub fn check(password: &str, hash: &str) -> bool {
    ShaCrypt::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A new SHA512-CRYPT hash of `password` with a random salt.
pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 12];
    crate::message::stamp::fill_random(&mut salt);
    ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::new(Code::Software, "hash password", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_files_parse() {
        let h = hash("secret").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(check("secret", &h));
        assert!(!check("Secret", &h));
        // From `openssl passwd -6 -salt saltsalt secret` (the glibc crypt format).
        let glibc = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        let text =
            format!("# users\nalice:{h}\n\nbob:{{SHA512-CRYPT}}{glibc}:1000:1000::/home/bob\n");
        let p = Passwords::parse(&text, "t").unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.verify("alice", "secret"));
        assert!(!p.verify("alice", "wrong"));
        assert!(!p.verify("carol", "secret"));
        assert!(Passwords::parse("x:plain\n", "t").is_err());
        // An unknown user costs what a known one does, whatever the rounds of the file.
        let slow = "alice:$6$rounds=100000$saltsalt$W6Pjgp5jRhOycjhz1JdUTjE.eBO2c/gf64ukBCYIUsagE3B8HkkRYGvkhQw7S1S6nh6jR9hV6IhhRIHR8xSWY0\n";
        let p = Passwords::parse(slow, "t").unwrap();
        // Taken in turns, five of each, and the least of each compared: a loaded machine only
        // ever adds time, and taking turns spreads a busy stretch over both (three runs of
        // one, then three of the other, failed on a loaded CI machine).
        let once = |user: &str| {
            let start = std::time::Instant::now();
            assert!(!p.verify(user, "wrong"));
            start.elapsed()
        };
        let (mut known, mut unknown) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..5 {
            known = known.min(once("alice"));
            unknown = unknown.min(once("mallory"));
        }
        assert!(unknown * 3 > known, "unknown {unknown:?}, known {known:?}");
        assert!(p.verify("alice", "secret") && !p.verify("mallory", "secret"));
        assert!(Passwords::parse(":$6$a$b\n", "t").is_err());
    }
}
