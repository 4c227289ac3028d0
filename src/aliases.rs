//! An aliases file: local names mapped to addresses, msmtp's `aliases` key, for msubmit.
//!
//! Why: cron, mdadm, apt and the rest mail `root` or a login name; sent on through a
//! submission server, a bare name becomes `root@this-host`, which reaches nobody. msmtp
//! replaces such local recipients before sending, and its users point it at a file of
//! `local: someone@example.com, person@example.net` lines, often `/etc/aliases` itself.
//!
//! The format is msmtp's, read as aliases(5) writes it: `name: value, value` a line, `#` to
//! the end of a line is a comment, a line starting with a blank continues the one before
//! (aliases(5)), names compare without case. `default` matches a local name that has no
//! entry (msmtp); a name with neither stays as it is. Unlike msmtp, and as sendmail expands
//! /etc/aliases, a value that is itself a local name is looked up again (`root: admin`,
//! `admin: me@example.org`), at most [`DEPTH`] deep; a name met again on its own path stays
//! as it is rather than loop. Values a local delivery agent handles (`|command`, `/file`,
//! `:include:`) cannot be sent over SMTP: using one is a configuration error naming its
//! line; entries that no recipient uses are never looked at, so `/etc/aliases` with a
//! `|procmail` line works for its other names.
//!
//! Only the envelope changes, as in msmtp: the To: and Cc: fields stay as written.
//! Layering: the ground (it knows text and exit codes only); msubmit applies it.

use crate::exit::{Code, Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// How deep a local name is looked up again: sendmail's MaxAliasRecursion.
pub const DEPTH: usize = 10;

/// The entries of an aliases file.
#[derive(Debug, Default)]
pub struct Aliases {
    /// Lowercased name → its values, and where the entry is (`file:line`).
    entries: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    values: Vec<String>,
    origin: String,
}

/// One recipient after expansion, and the entry it came from (`None`: as given).
#[derive(Debug, PartialEq, Eq)]
pub struct Expanded {
    /// The address, or a local name that no entry maps.
    pub addr: String,
    /// `file:line` of the entry that produced it.
    pub origin: Option<String>,
}

impl Aliases {
    /// Read the file at `path`; [`Code::Config`] when it cannot be read or parsed.
    pub fn read(path: &Path) -> Result<Aliases> {
        let what = || format!("aliases {}", path.display());
        let text = std::fs::read(path).map_err(|e| Error::io(Code::Config, what(), e))?;
        let text =
            String::from_utf8(text).map_err(|_| Error::new(Code::Config, what(), "not UTF-8"))?;
        Aliases::parse(&text, &path.display().to_string())
    }

    /// Parse aliases text read from `origin` (for `file:line` in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Aliases> {
        let mut aliases = Aliases::default();
        // The entry being read: its name, its line, its text so far.
        let mut current: Option<(String, usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match &mut current {
                    Some((_, _, value)) => {
                        value.push(',');
                        value.push_str(line);
                        continue;
                    }
                    None => {
                        return Err(Error::new(
                            Code::Config,
                            format!("{origin}:{}", n + 1),
                            "a continuation line with no entry before it",
                        ));
                    }
                }
            }
            if let Some(done) = current.take() {
                aliases.add(done, origin)?;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(Error::new(
                    Code::Config,
                    format!("{origin}:{}", n + 1),
                    "expected `name: address, address`",
                ));
            };
            current = Some((
                name.trim().trim_matches('"').to_string(),
                n + 1,
                value.to_string(),
            ));
        }
        if let Some(done) = current.take() {
            aliases.add(done, origin)?;
        }
        Ok(aliases)
    }

    fn add(&mut self, (name, line, value): (String, usize, String), origin: &str) -> Result<()> {
        let at = format!("{origin}:{line}");
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('@') {
            return Err(Error::new(
                Code::Config,
                at,
                format!("{name:?} is not a local name (no blanks, no @)"),
            ));
        }
        let values = value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        // aliases(5): a later entry for the same name wins, as in a database rebuilt.
        self.entries
            .insert(name.to_ascii_lowercase(), Entry { values, origin: at });
        Ok(())
    }

    /// The recipients `rcpt` stands for: itself when it has a domain (an `@`); else its
    /// entry's values, else `default`'s, else itself, local names among the values looked
    /// up again (see the module header). Duplicates are dropped, the first kept.
    pub fn expand(&self, rcpt: &str) -> Result<Vec<Expanded>> {
        let mut out = Vec::new();
        self.walk(rcpt, None, &mut Vec::new(), &mut out)?;
        let mut seen = std::collections::HashSet::new();
        out.retain(|e: &Expanded| seen.insert(e.addr.to_ascii_lowercase()));
        Ok(out)
    }

    fn walk(
        &self,
        rcpt: &str,
        origin: Option<&str>,
        path: &mut Vec<String>,
        out: &mut Vec<Expanded>,
    ) -> Result<()> {
        let keep = |out: &mut Vec<Expanded>| {
            out.push(Expanded {
                addr: rcpt.to_string(),
                origin: origin.map(str::to_string),
            })
        };
        let name = rcpt.to_ascii_lowercase();
        if rcpt.contains('@') || path.contains(&name) {
            keep(out);
            return Ok(());
        }
        let entry = match self.entries.get(&name) {
            Some(e) => e,
            // `default` stands for unknown local names, not for itself or its own values.
            None if path.is_empty() => match self.entries.get("default") {
                Some(e) => e,
                None => {
                    keep(out);
                    return Ok(());
                }
            },
            None => {
                keep(out);
                return Ok(());
            }
        };
        if path.len() >= DEPTH {
            return Err(Error::new(
                Code::Config,
                &entry.origin,
                format!("aliases nest more than {DEPTH} deep"),
            ));
        }
        if entry.values.is_empty() {
            return Err(Error::new(
                Code::Config,
                &entry.origin,
                format!("{name}: no address"),
            ));
        }
        path.push(name);
        for v in &entry.values {
            if v.starts_with(['|', '/']) || v.to_ascii_lowercase().starts_with(":include:") {
                return Err(Error::new(
                    Code::Config,
                    &entry.origin,
                    format!(
                        "{v}: commands, files and :include: are for a local delivery agent; \
                         msubmit sends to addresses"
                    ),
                ));
            }
            self.walk(v, Some(&entry.origin), path, out)?;
        }
        path.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(a: &Aliases, rcpt: &str) -> Vec<String> {
        a.expand(rcpt)
            .unwrap()
            .into_iter()
            .map(|e| e.addr)
            .collect()
    }

    #[test]
    fn local_names_become_their_addresses() {
        let a = Aliases::parse(
            "# msmtp's example\nroot: admin@example.org, ops@example.org # both\n\
             Postmaster: root\ncron: admin@example.org,\n  backup@example.org\n\
             \"www-data\": root, admin@example.org\n",
            "f",
        )
        .unwrap();
        assert_eq!(addrs(&a, "root"), ["admin@example.org", "ops@example.org"]);
        assert_eq!(addrs(&a, "ROOT"), ["admin@example.org", "ops@example.org"]);
        // Looked up again, as /etc/aliases is; duplicates dropped.
        assert_eq!(
            addrs(&a, "postmaster"),
            ["admin@example.org", "ops@example.org"]
        );
        assert_eq!(
            addrs(&a, "www-data"),
            ["admin@example.org", "ops@example.org"]
        );
        // A continuation line (aliases(5)).
        assert_eq!(
            addrs(&a, "cron"),
            ["admin@example.org", "backup@example.org"]
        );
        // Addresses with a domain and unknown names stay.
        assert_eq!(addrs(&a, "root@example.org"), ["root@example.org"]);
        assert_eq!(addrs(&a, "nobody"), ["nobody"]);
        let e = a.expand("cron").unwrap();
        assert_eq!(e[0].origin.as_deref(), Some("f:4"));
        assert_eq!(a.expand("nobody").unwrap()[0].origin, None);
    }

    #[test]
    fn default_catches_unknown_local_names_only() {
        let a = Aliases::parse("default: me@example.org\nroot: alice\n", "f").unwrap();
        assert_eq!(addrs(&a, "anyone"), ["me@example.org"]);
        // An entry's local value is not caught by default: it is what the entry says.
        assert_eq!(addrs(&a, "root"), ["alice"]);
        assert_eq!(addrs(&a, "x@y.test"), ["x@y.test"]);
    }

    #[test]
    fn loops_stop_and_what_cannot_be_sent_is_an_error_when_used() {
        let a = Aliases::parse(
            "a: b\nb: a, b@x.test\nself: self, s@x.test\nproc: |/usr/bin/procmail\nempty:\n",
            "f",
        )
        .unwrap();
        assert_eq!(addrs(&a, "a"), ["a", "b@x.test"]);
        assert_eq!(addrs(&a, "self"), ["self", "s@x.test"]);
        let e = a.expand("proc").unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert!(
            e.to_string()
                .starts_with("f:4: |/usr/bin/procmail: commands"),
            "{e}"
        );
        assert!(
            a.expand("empty")
                .unwrap_err()
                .to_string()
                .starts_with("f:5: empty: no address")
        );
        let deep: String = (0..12).map(|i| format!("n{i}: n{}\n", i + 1)).collect();
        let a = Aliases::parse(&deep, "f").unwrap();
        assert!(
            a.expand("n0")
                .unwrap_err()
                .to_string()
                .contains("more than 10 deep")
        );
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (text, at) in [
            ("root admin@x\n", "f:1"),
            ("  admin@x\n", "f:1"),
            ("ok: a@x\nbad name: b@x\n", "f:2"),
            ("a@x: b@x\n", "f:1"),
        ] {
            let e = Aliases::parse(text, "f").unwrap_err();
            assert_eq!(e.code(), Code::Config);
            assert!(e.to_string().starts_with(at), "{text:?}: {e}");
        }
    }
}
