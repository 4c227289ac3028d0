//! The configuration file, one format for every tool.
//!
//! msmtp's format, which users already know: one `key value` per line, `#` comments, a
//! `defaults` section, and `account NAME` sections that may inherit from others with
//! `account NAME : PARENT[, PARENT…]`. Keys before any section header belong to `defaults`.
//! Values may be double-quoted (`\"` and `\\` escape inside), and `~/` expands to `$HOME`.
//!
//! Files are read in order and layered, each later one overriding: `/etc/mailpipe/config`,
//! then `$XDG_CONFIG_HOME/mailpipe/config` (default `~/.config/mailpipe/config`). An explicit
//! `--config FILE` (or `$MAILPIPE_CONFIG`) replaces both. Command-line flags override all of
//! it, and no tool needs a config file at all.
//!
//! This module knows the format, not the keys: which keys exist, what they mean and their
//! types are [`crate::account`]'s (its `KEYS` table), which hands [`Config::load`] the
//! [`Check`] each key line must pass, so a typo stops a tool at its `file:line` instead of
//! being ignored.
//!
//! The value grammar every tool shares lives here too: [`words`] (a command line split as a
//! shell would, with no shell) and [`parse_size`] (`25M`).

use crate::exit::{Code, Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The system-wide configuration file.
const SYSTEM_FILE: &str = "/etc/mailpipe/config";

/// A key's value with where it came from, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The value text, unquoted and with `~/` expanded.
    pub text: String,
    /// `file:line` of the definition.
    pub origin: String,
}

#[derive(Debug, Clone, Default)]
struct Section {
    parents: Vec<String>,
    keys: BTreeMap<String, Value>,
}

/// What a reader of the configuration says of a key line (its key and value): `Err(why)`
/// refuses it, as an error at the line's `file:line`.
pub type Check = fn(key: &str, value: &str) -> std::result::Result<(), String>;

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    defaults: BTreeMap<String, Value>,
    /// Every value each key of `defaults` was given, in file order: the keys a tool reads
    /// as a list of lines (mrelay's `route`), where `defaults` keeps the last.
    lines: BTreeMap<String, Vec<Value>>,
    accounts: BTreeMap<String, Section>,
    /// The files that were read, in order.
    pub files: Vec<PathBuf>,
    /// Every key line must pass it, when set.
    check: Option<Check>,
}

/// One account's keys as text: its own over its parents' over the defaults.
/// [`crate::account`] gives them their types.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// The account name (`default` when none was chosen).
    pub name: String,
    keys: BTreeMap<String, Value>,
}

impl Keys {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(|v| v.text.as_str())
    }

    /// The value of `key` with its origin.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.keys.get(key)
    }

    /// A boolean key: `on`/`off`, `yes`/`no`, `true`/`false`, `1`/`0`.
    pub fn flag(&self, key: &str) -> Result<Option<bool>> {
        self.value(key).map(|v| parse_bool(key, v)).transpose()
    }
}

fn parse_bool(key: &str, v: &Value) -> Result<bool> {
    match v.text.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(Error::new(
            Code::Config,
            v.origin.clone(),
            format!("{key}: expected on or off, got {:?}", v.text),
        )),
    }
}

impl Config {
    /// Load the configuration: `explicit` (or `$MAILPIPE_CONFIG`) alone when given, which must
    /// exist; else the system file then the user file, each only if present. Every key line
    /// must pass `check` (the tools pass [`crate::account::check`], through
    /// [`crate::account::load`]).
    pub fn load(explicit: Option<&Path>, check: Check) -> Result<Config> {
        let env = std::env::var_os("MAILPIPE_CONFIG").filter(|v| !v.is_empty());
        let mut cfg = Config {
            check: Some(check),
            ..Config::default()
        };
        if let Some(path) = explicit.map(Path::to_path_buf).or(env.map(PathBuf::from)) {
            cfg.read_file(&path, true)?;
            return Ok(cfg);
        }
        cfg.read_file(Path::new(SYSTEM_FILE), false)?;
        if let Some(user) = user_file() {
            cfg.read_file(&user, false)?;
        }
        Ok(cfg)
    }

    /// Parse configuration text (as if read from `origin`) on top of what is loaded.
    pub fn parse(&mut self, text: &str, origin: &str) -> Result<()> {
        let mut current: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{origin}:{}", n + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = match line.find(char::is_whitespace) {
                Some(i) => (&line[..i], line[i..].trim()),
                None => (line, ""),
            };
            match key {
                "defaults" => current = None,
                "account" => {
                    let (name, parents) = match rest.split_once(':') {
                        Some((n, p)) => (n.trim(), p.split(',').map(|s| s.trim()).collect()),
                        None => (rest, Vec::new()),
                    };
                    if name.is_empty() || name.contains(char::is_whitespace) {
                        return Err(Error::new(Code::Config, at, "account needs one name"));
                    }
                    let mut sec = Section::default();
                    for p in parents {
                        if !self.accounts.contains_key(p) {
                            return Err(Error::new(
                                Code::Config,
                                at,
                                format!("account {name}: unknown parent account {p:?}"),
                            ));
                        }
                        sec.parents.push(p.to_string());
                    }
                    self.accounts.insert(name.to_string(), sec);
                    current = Some(name.to_string());
                }
                _ => {
                    let value = Value {
                        text: unquote(rest).map_err(|why| Error::new(Code::Config, &at, why))?,
                        origin: at.clone(),
                    };
                    if let Some(check) = self.check {
                        check(key, &value.text)
                            .map_err(|why| Error::new(Code::Config, &at, why))?;
                    }
                    if current.is_none() {
                        let all = self.lines.entry(key.to_string()).or_default();
                        all.push(value.clone());
                    }
                    let map = match &current {
                        None => &mut self.defaults,
                        Some(a) => match self.accounts.get_mut(a) {
                            Some(sec) => &mut sec.keys,
                            None => &mut self.defaults,
                        },
                    };
                    map.insert(key.to_string(), value);
                }
            }
        }
        Ok(())
    }

    fn read_file(&mut self, path: &Path, must_exist: bool) -> Result<()> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(Code::Config, path.display().to_string(), e)),
        };
        let text = String::from_utf8(text)
            .map_err(|_| Error::new(Code::Config, path.display().to_string(), "not valid UTF-8"))?;
        self.parse(&text, &path.display().to_string())?;
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// A key of the `defaults` section.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.defaults.get(key).map(|v| v.text.as_str())
    }

    /// Every value of a key of the `defaults` section, in the order of the files and
    /// their lines (a key that is a list: one item a line).
    pub fn all(&self, key: &str) -> &[Value] {
        self.lines.get(key).map_or(&[], Vec::as_slice)
    }

    /// The names of the configured accounts.
    pub fn account_names(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }

    /// The account `name` resolved through its parents over the defaults; `None` gives the
    /// defaults alone (msmtp's implicit account when none is configured).
    pub fn account(&self, name: Option<&str>) -> Result<Keys> {
        let mut keys = self.defaults.clone();
        if let Some(name) = name {
            if !self.accounts.contains_key(name) {
                return Err(Error::new(
                    Code::Config,
                    format!("account {name:?}"),
                    "not defined in the configuration",
                ));
            }
            self.overlay(name, &mut keys, 0)?;
        }
        Ok(Keys {
            name: name.unwrap_or("default").to_string(),
            keys,
        })
    }

    fn overlay(&self, name: &str, keys: &mut BTreeMap<String, Value>, depth: usize) -> Result<()> {
        if depth > 32 {
            return Err(Error::new(
                Code::Config,
                format!("account {name:?}"),
                "inheritance too deep",
            ));
        }
        if let Some(sec) = self.accounts.get(name) {
            for p in &sec.parents {
                self.overlay(p, keys, depth + 1)?;
            }
            for (k, v) in &sec.keys {
                keys.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
}

/// The user's configuration file: `$XDG_CONFIG_HOME/mailpipe/config` or
/// `~/.config/mailpipe/config`.
fn user_file() -> Option<PathBuf> {
    config_dir().map(|d| d.join("config"))
}

/// The user's mailpipe configuration directory (also home of `rules`).
pub fn config_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty());
    match xdg {
        Some(x) => Some(PathBuf::from(x).join("mailpipe")),
        None => home().map(|h| h.join(".config/mailpipe")),
    }
}

/// `$HOME`, if set and not empty.
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Expand a leading `~/` to `$HOME/`.
pub fn expand_tilde(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), home()) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(s),
    }
}

fn unquote(s: &str) -> std::result::Result<String, String> {
    let Some(inner) = s.strip_prefix('"') else {
        return Ok(expand_tilde(s).to_string_lossy().into_owned());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => out.push(e),
                None => return Err("unterminated quoted value".into()),
            },
            '"' => {
                if chars.as_str().trim().is_empty() {
                    return Ok(out);
                }
                return Err("text after closing quote".into());
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted value".into())
}

/// Parse a size with an optional k/M/G suffix (powers of 1024).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}"))
}

/// Split a line into words. Blanks separate words; `"..."` groups, with `\"` and `\\` as the
/// only escapes (any other backslash is kept, so regexes read naturally); `'...'` groups with
/// no escapes at all; an unquoted `#` at the start of a word begins a comment. No variables,
/// no globbing, no shell: the words are used exactly as written.
pub fn words(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(out),
            _ => {}
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                },
                c => word.push(c),
            }
        }
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_inherit_and_override() {
        let mut c = Config::default();
        c.parse(
            "# c\nport 587\ndefaults\ntls on\naccount base\nhost a.test\n\
             account work : base\nuser \"me \\\"x\\\"\"\nport 465\n",
            "t",
        )
        .unwrap();
        let a = c.account(Some("work")).unwrap();
        assert_eq!(a.get("host"), Some("a.test"));
        assert_eq!(a.get("port"), Some("465"));
        assert_eq!(a.get("user"), Some("me \"x\""));
        assert_eq!(a.flag("tls").unwrap(), Some(true));
        assert_eq!(c.account(None).unwrap().get("port"), Some("587"));
        assert_eq!(a.value("port").unwrap().origin, "t:9");
    }

    #[test]
    fn list_keys_keep_every_line_in_order() {
        let mut c = Config::default();
        c.parse(
            "route a.test mx1\nroute * smart\naccount x\nroute b.test no\n",
            "f",
        )
        .unwrap();
        c.parse("defaults\nroute c.test mx3\n", "g").unwrap();
        let all: Vec<(&str, &str)> = (c.all("route").iter())
            .map(|v| (v.text.as_str(), v.origin.as_str()))
            .collect();
        assert_eq!(
            all,
            [
                ("a.test mx1", "f:1"),
                ("* smart", "f:2"),
                ("c.test mx3", "g:2")
            ]
        );
        assert_eq!(c.get("route"), Some("c.test mx3"));
        assert!(c.all("nothing").is_empty());
    }

    #[test]
    fn errors_name_file_and_line() {
        let mut c = Config::default();
        let e = c.parse("account a : nope\n", "f").unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert!(e.to_string().starts_with("f:1: "), "{e}");
        let e = c.parse("x \"open\n", "g").unwrap_err();
        assert!(e.to_string().contains("g:1"));
        assert!(c.account(Some("missing")).is_err());
    }

    #[test]
    fn words_quote_without_a_shell() {
        assert_eq!(
            words("a  'b c' \"d\\\"e\\d\" # x").unwrap(),
            ["a", "b c", "d\"e\\d"]
        );
        assert_eq!(words("x'y'\"z\"").unwrap(), ["xyz"]);
        assert_eq!(
            words("$(touch /tmp/x); `id`").unwrap(),
            ["$(touch", "/tmp/x);", "`id`"]
        );
        assert!(words("'open").is_err() && words("\"open\\").is_err());
        assert!(words("   # only a comment").unwrap().is_empty());
    }
}
