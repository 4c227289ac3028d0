//! Filtering rules: where a delivery (mdeliver's, or any caller of [`super::Pipeline`] given
//! rules) puts a message, decided before anything is written.
//!
//! The format (documented for users in `mailpipe-rules(5)`) is maildrop's and procmail's job
//! with less syntax: one rule per line, tests then actions, first matching rule wins.
//!
//! ```text
//! # tests...                              actions...
//! header List-Id contains rust-users      folder Lists.rust
//! header List-Id matches '<([^.]+)\.'     folder Lists.$1
//! header Subject matches '^\[ann\]'       copy Announce
//! to contains @lists.example.org          folder Lists
//! body contains 'unsubscribe here'        folder Junk
//! sender contains @spam.test              discard
//! size > 5M                               flags S folder Big
//! all                                     filter /usr/bin/spamc
//! header X-Spam-Flag is yes               pipe /usr/bin/sa-learn --spam
//! header From contains boss@              copy INBOX forward me@phone.example
//! ```
//!
//! Why this shape: every rule reads as one sentence, there is no shell anywhere (a `pipe`,
//! `filter` or `forward` command is split into argv here and run directly, so nothing from
//! the message can ever become a command), the one expansion (`$1` in a folder name, from
//! the rule's regular expression) is sanitized into a single folder level, and the whole
//! file parses up front, so a typo is found before delivery starts and the message goes to
//! the inbox instead (maildrop's rule: a broken filter must never lose mail). Matching is on
//! decoded header values (RFC 2047, unfolded: RFC 5322 §2.2.3), header names ignore case
//! (RFC 5322 §1.2.2), and text tests ignore case as procmail's do.
//!
//! A `filter` replaces the message (maildrop's `xfilter`): the rules after it see the new
//! one. So a plan is made in stretches ([`Rules::start`], [`Rules::next`]): up to a
//! filter, which the caller runs, then on from there with facts of the new message.

use crate::config::{parse_size, words};
use crate::exit::{Code, Context, Error, Result};
use crate::message::{address, header};
use crate::store::maildir::{check_folder_name, normalize_flags};
use regex::{Regex, RegexBuilder};
use std::borrow::Cow;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A rules file larger than this is refused as broken: it is a list of rules, not data.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// How much of the body a `body` test reads: the start of it, up to this many bytes. A
/// bound, so a large attachment costs nothing; spam and list footers are early, or short.
const BODY_LIMIT: usize = 256 << 10;

/// The fields a `to` test reads: every field that names a recipient (RFC 5322 §3.6.3,
/// §3.6.6), and the two that procmail's `^TO_` adds for envelope recipients some MTAs write.
/// Not `Delivered-To:`: that is our trace (the `recipient` test reads the envelope).
const TO_FIELDS: [&str; 8] = [
    "To",
    "Cc",
    "Bcc",
    "Resent-To",
    "Resent-Cc",
    "Resent-Bcc",
    "X-Envelope-To",
    "Apparently-To",
];

/// The longest a captured group becomes in a folder name: a file name has 255 bytes, and
/// one List-Id fits with room to spare.
const GROUP_MAX: usize = 64;

/// What a rule can look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The message's header block as received (without our trace headers).
    pub header: &'a [u8],
    /// The start of the body as received, undecoded: at most [`BODY_LIMIT`] bytes
    /// ([`body_of`]).
    pub body: &'a [u8],
    /// The envelope sender, bare (`""` for the null sender or when unknown).
    pub sender: &'a str,
    /// The envelope recipient, bare (`""` when unknown).
    pub recipient: &'a str,
    /// The message size in bytes as it will be stored, trace headers not counted.
    pub size: u64,
}

/// The part of the body that `body` tests read, from the start of a message (`head`, what a
/// [`crate::message::buffer::Buffer`] holds in memory): after the empty line that ends the
/// header, at most [`BODY_LIMIT`] bytes.
pub fn body_of(head: &[u8]) -> &[u8] {
    match header::body_offset(head) {
        Some(off) => &head[off..head.len().min(off + BODY_LIMIT)],
        None => &[],
    }
}

/// One thing to do with the message, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Store it in the Maildir++ folder (`INBOX` is the Maildir itself) with these flags.
    Store {
        /// Folder name as written in the rule (groups expanded), or the default destination.
        folder: String,
        /// Maildir flags; empty stores into new/.
        flags: String,
    },
    /// Run a command with the message on its standard input.
    Pipe(Vec<String>),
    /// Run a command with the message on its standard input and go on with its standard
    /// output as the message.
    Filter(Vec<String>),
    /// Send the message on to these addresses (through the sendmail command).
    Forward(Vec<String>),
    /// Drop it (successfully delivered nowhere).
    Discard,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = |f: &mut std::fmt::Formatter<'_>, verb: &str, w: &[String]| {
            write!(f, "{verb}")?;
            for a in w {
                write!(f, " {}", quote(a))?;
            }
            Ok(())
        };
        match self {
            Step::Store { folder, flags } if flags.is_empty() => write!(f, "store {folder}"),
            Step::Store { folder, flags } => write!(f, "store {folder} flags {flags}"),
            Step::Pipe(argv) => words(f, "pipe", argv),
            Step::Filter(argv) => words(f, "filter", argv),
            Step::Forward(to) => words(f, "forward", to),
            Step::Discard => write!(f, "discard"),
        }
    }
}

/// A step and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// What to do.
    pub step: Step,
    /// `file:line` of the rule; `None` for the default delivery when no rule ended the plan.
    pub rule: Option<String>,
}

impl std::fmt::Display for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.step.fmt(f)
    }
}

/// A word as it would be written in a rules file (for showing a plan).
fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && !w.starts_with('#')
        && !w
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c.is_control());
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\"'\"'"))
    }
}

#[derive(Debug, Clone)]
enum Subject {
    Header(String),
    /// Every address of [`TO_FIELDS`].
    To,
    Body,
    Sender,
    Recipient,
}

#[derive(Debug, Clone)]
enum Test {
    /// Lowercased needle.
    Contains(String),
    /// Lowercased whole value.
    Is(String),
    Matches(Regex),
    Exists,
}

#[derive(Debug, Clone)]
enum Cond {
    Text(Subject, Test),
    Larger(u64),
    Smaller(u64),
    All,
    Not(Box<Cond>),
}

/// A folder name with `$N` in it: text, and the groups of the rule's regular expression.
#[derive(Debug, Clone)]
struct Template(Vec<Part>);

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Group(usize),
}

#[derive(Debug, Clone)]
enum Action {
    Folder(Template),
    Copy(Template),
    Flags(String),
    Discard,
    Pipe(Vec<String>),
    Filter(Vec<String>),
    Forward(Vec<String>),
}

impl Action {
    /// True for an action after which the rules stop.
    fn ends(&self) -> bool {
        matches!(
            self,
            Action::Folder(_) | Action::Discard | Action::Pipe(_) | Action::Forward(_)
        )
    }
}

#[derive(Debug, Clone)]
struct Rule {
    conds: Vec<Cond>,
    /// The test whose groups `$1`.. name: the rule's last `matches` (not under `not`).
    groups_from: Option<usize>,
    actions: Vec<Action>,
    /// Where it is written (line numbers from 1).
    line: usize,
}

/// A parsed rules file.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
    /// The file (or other origin) they were read from, for `file:line`.
    origin: String,
}

/// Where the rules stand for one message: how far the plan got (up to a filter), with the
/// flags and groups in force there.
#[derive(Debug, Clone)]
pub struct Cursor {
    rule: usize,
    /// The next action of [`Cursor::rule`]; 0 while its tests are still to be tried.
    action: usize,
    flags: String,
    groups: Vec<String>,
    done: bool,
}

impl Cursor {
    /// True when the plan is complete: nothing follows the last step given.
    pub fn done(&self) -> bool {
        self.done
    }
}

/// Where a delivery's rules come from, and whether a missing file is a problem.
#[derive(Debug, Default)]
pub enum Source {
    /// No rules (`mdeliver --no-rules`; a caller with no filtering configured).
    #[default]
    Off,
    /// The default file (`~/.config/mailpipe/rules`): its absence just means no rules.
    Default(PathBuf),
    /// A file the user named (`--rules`, the `rules` key): it must be there.
    Named(PathBuf),
    /// Rules already parsed.
    Parsed(Rules),
}

impl Source {
    /// The rules, read now when they are in a file: a missing default file is no rules; any
    /// other problem is the error of [`Rules::load`] (the delivery then goes on without
    /// rules and warns: a broken filter never loses mail).
    pub fn load(&self) -> Result<Cow<'_, Rules>> {
        let path = match self {
            Source::Off => return Ok(Cow::Owned(Rules::default())),
            Source::Parsed(rules) => return Ok(Cow::Borrowed(rules)),
            Source::Default(p) => {
                if matches!(std::fs::metadata(p), Err(e) if e.kind() == io::ErrorKind::NotFound) {
                    return Ok(Cow::Owned(Rules::default()));
                }
                p
            }
            Source::Named(p) => p,
        };
        Rules::load(path).map(Cow::Owned)
    }
}

impl Rules {
    /// Read and parse the rules file at `path`. Any problem is a [`Code::Config`] error naming
    /// the file (and line): the caller delivers to the inbox and warns.
    ///
    /// Like procmail's "suspicious rcfile" and maildrop's checks, a file that someone else
    /// could have written (group- or world-writable, or owned by another user than us or
    /// root) is refused: its `pipe` actions would run their commands as us.
    pub fn load(path: &Path) -> Result<Rules> {
        use std::os::unix::fs::MetadataExt;
        let what = || path.display().to_string();
        let f = std::fs::File::open(path).or_code_with(Code::Config, what)?;
        let meta = f.metadata().or_code_with(Code::Config, what)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.mode() & 0o022 != 0 || (meta.uid() != me && meta.uid() != 0) {
            return Err(Error::new(
                Code::Config,
                what(),
                "writable by others (group or world write permission, or another owner)",
            ));
        }
        let mut text = Vec::new();
        f.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .or_code_with(Code::Config, what)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::new(
                Code::Config,
                what(),
                format!("larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        let text = String::from_utf8(text)
            .map_err(|_| Error::new(Code::Config, what(), "not valid UTF-8"))?;
        Rules::parse(&text, &what())
    }

    /// Parse rules text; `origin` names it in errors (`origin:line: why`) and in each
    /// [`Planned::rule`].
    pub fn parse(text: &str, origin: &str) -> Result<Rules> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let err = |why: String| Error::new(Code::Config, format!("{origin}:{}", n + 1), why);
            let w = words(line).map_err(err)?;
            if w.is_empty() {
                continue;
            }
            let mut rule = parse_rule(&w).map_err(err)?;
            rule.line = n + 1;
            rules.push(rule);
        }
        Ok(Rules {
            rules,
            origin: origin.to_string(),
        })
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What to do with a message: the actions of every matching rule up to the first one that
    /// ends with `folder`, `discard`, `pipe` or `forward`; when none does, storing into
    /// `default_folder` comes last. `flags` set by a rule apply to the stores after it. A
    /// `filter` is planned as if it gave the message back unchanged (what `mdeliver -n`
    /// shows: it runs nothing); a delivery plans with [`Rules::start`] and [`Rules::next`].
    pub fn plan(&self, facts: &Facts, default_folder: &str, default_flags: &str) -> Vec<Planned> {
        let mut at = self.start(default_flags);
        let mut steps = Vec::new();
        while !at.done() {
            steps.extend(self.next(facts, &mut at, default_folder));
        }
        steps
    }

    /// Where a plan starts, with `default_flags` in force.
    pub fn start(&self, default_flags: &str) -> Cursor {
        Cursor {
            rule: 0,
            action: 0,
            flags: normalize_flags(default_flags),
            groups: Vec::new(),
            done: false,
        }
    }

    /// The next stretch of the plan from `at`: up to and including the first `filter` (after
    /// which the caller runs it and calls again with the facts of its output), or to the end
    /// of the plan, after which `at` is [`Cursor::done`]. A rule whose tests passed before a
    /// filter keeps its actions (and its groups) after it.
    pub fn next(&self, facts: &Facts, at: &mut Cursor, default_folder: &str) -> Vec<Planned> {
        let mut steps = Vec::new();
        while let Some(rule) = self.rules.get(at.rule).filter(|_| !at.done) {
            if at.action == 0 {
                match rule.eval(facts) {
                    Some(groups) => at.groups = groups,
                    None => {
                        at.rule += 1;
                        continue;
                    }
                }
            }
            let origin = || Some(format!("{}:{}", self.origin, rule.line));
            while let Some(action) = rule.actions.get(at.action) {
                at.action += 1;
                let step = match action {
                    Action::Flags(f) => {
                        at.flags.clone_from(f);
                        continue;
                    }
                    Action::Copy(t) | Action::Folder(t) => Step::Store {
                        folder: t.expand(&at.groups),
                        flags: at.flags.clone(),
                    },
                    Action::Discard => Step::Discard,
                    Action::Pipe(argv) => Step::Pipe(argv.clone()),
                    Action::Filter(argv) => Step::Filter(argv.clone()),
                    Action::Forward(to) => Step::Forward(to.clone()),
                };
                let filter = matches!(step, Step::Filter(_));
                steps.push(Planned {
                    step,
                    rule: origin(),
                });
                if action.ends() {
                    at.done = true;
                    return steps;
                }
                if filter {
                    return steps;
                }
            }
            at.rule += 1;
            at.action = 0;
        }
        if !at.done {
            steps.push(Planned {
                step: Step::Store {
                    folder: default_folder.to_string(),
                    flags: at.flags.clone(),
                },
                rule: None,
            });
            at.done = true;
        }
        steps
    }
}

impl Rule {
    /// The groups of [`Rule::groups_from`] when every test passes.
    fn eval(&self, f: &Facts) -> Option<Vec<String>> {
        let mut groups = Vec::new();
        for (i, c) in self.conds.iter().enumerate() {
            let g = c.eval(f)?;
            if self.groups_from == Some(i) {
                groups = g;
            }
        }
        Some(groups)
    }
}

impl Cond {
    /// `Some` when the test passes, with the groups of a `matches` ($0 first).
    fn eval(&self, f: &Facts) -> Option<Vec<String>> {
        let pass = |b: bool| b.then(Vec::new);
        match self {
            Cond::All => pass(true),
            Cond::Not(c) => pass(c.eval(f).is_none()),
            Cond::Larger(n) => pass(f.size > *n),
            Cond::Smaller(n) => pass(f.size < *n),
            Cond::Text(Subject::Sender, t) => t.eval(std::iter::once(f.sender.to_string())),
            Cond::Text(Subject::Recipient, t) => t.eval(std::iter::once(f.recipient.to_string())),
            Cond::Text(Subject::Header(name), t) => t.eval(
                header::fields(f.header)
                    .into_iter()
                    .filter(|h| h.is(name))
                    .map(|h| h.value()),
            ),
            Cond::Text(Subject::To, t) => t.eval(
                header::fields(f.header)
                    .into_iter()
                    .filter(|h| TO_FIELDS.iter().any(|n| h.is(n)))
                    .flat_map(|h| address::parse_list_lenient(&h.value()))
                    .map(|m| format!("{}@{}", m.addr.local, m.addr.domain)),
            ),
            // Not UTF-8 everywhere (8-bit mail in other charsets): such bytes become U+FFFD
            // and the rest is still searched.
            Cond::Text(Subject::Body, t) => t.eval(std::iter::once(
                String::from_utf8_lossy(f.body).into_owned(),
            )),
        }
    }
}

impl Test {
    /// `Some` when any of `values` passes: the groups of the first that matches for
    /// `matches`, else none.
    fn eval(&self, mut values: impl Iterator<Item = String>) -> Option<Vec<String>> {
        let pass = |b: bool| b.then(Vec::new);
        match self {
            Test::Exists => pass(values.next().is_some()),
            Test::Contains(needle) => {
                pass(values.any(|v| v.to_lowercase().contains(needle.as_str())))
            }
            Test::Is(want) => pass(values.any(|v| v.to_lowercase() == *want)),
            Test::Matches(re) => values.find_map(|v| {
                re.captures(&v).map(|c| {
                    c.iter()
                        .map(|g| g.map_or("", |m| m.as_str()).to_string())
                        .collect()
                })
            }),
        }
    }
}

impl Template {
    /// `$0`..`$9` in `name` are groups (at most `groups`, as many as the rule's regular
    /// expression has, counting the whole match); every other character is itself. The
    /// name is checked as a folder name with every group at its longest.
    fn parse(name: &str, groups: usize) -> std::result::Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = name.chars().peekable();
        while let Some(c) = chars.next() {
            let digit = chars.peek().and_then(|d| d.to_digit(10));
            match (c, digit) {
                ('$', Some(n)) => {
                    chars.next();
                    let n = n as usize;
                    if n >= groups {
                        return Err(if groups == 0 {
                            format!("folder {name:?}: ${n} needs a `matches` test in the rule")
                        } else {
                            format!(
                                "folder {name:?}: ${n}, but the rule's last `matches` has {} group(s)",
                                groups - 1
                            )
                        });
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Group(n));
                }
                (c, _) => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let t = Template(parts);
        let longest = t.expand_with(|_| "x".repeat(GROUP_MAX));
        if !longest.eq_ignore_ascii_case("inbox") {
            check_folder_name(&longest).map_err(|e| {
                if t.0.iter().any(|p| matches!(p, Part::Group(_))) {
                    format!("folder {name:?}: {}", e.why())
                } else {
                    e.to_string()
                }
            })?;
        }
        // The folder's directory is `.NAME`: one file name, at most 255 bytes.
        if longest.len() >= 255 {
            return Err(format!("folder {name:?}: longer than 254 bytes"));
        }
        Ok(t)
    }

    /// The folder name for these groups, each made [`folder_safe`].
    fn expand(&self, groups: &[String]) -> String {
        self.expand_with(|n| folder_safe(groups.get(n).map_or("", String::as_str)))
    }

    fn expand_with(&self, group: impl Fn(usize) -> String) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Group(n) => group(*n),
            })
            .collect()
    }
}

/// A captured group as one level of a folder name, whatever the message put in it: letters
/// and digits (ASCII) and `- _ + = @ ,` stay, anything else (the `.` that would make a new
/// level or `..`, `/`, white space, `&` that Dovecot reads as modified UTF-7, non-ASCII, control
/// characters) becomes `_`; at most [`GROUP_MAX`] bytes; an empty group is `_`.
fn folder_safe(group: &str) -> String {
    let safe: String = group
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_+=@,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(GROUP_MAX)
        .collect();
    if safe.is_empty() {
        "_".to_string()
    } else {
        safe
    }
}

const ACTIONS: [&str; 7] = [
    "folder", "copy", "flags", "discard", "pipe", "filter", "forward",
];

fn parse_rule(w: &[String]) -> std::result::Result<Rule, String> {
    let mut i = 0;
    let mut conds = Vec::new();
    while i < w.len() && !ACTIONS.contains(&w[i].as_str()) {
        if w[i] == "and" && !conds.is_empty() {
            i += 1;
            continue;
        }
        conds.push(parse_cond(w, &mut i)?);
    }
    if conds.is_empty() {
        return Err(match w.first() {
            Some(first) if ACTIONS.contains(&first.as_str()) => {
                "a rule needs a test before its action (use `all` to match every message)".into()
            }
            _ => "expected a test".into(),
        });
    }
    let groups_from = conds
        .iter()
        .rposition(|c| matches!(c, Cond::Text(_, Test::Matches(_))));
    let groups = match groups_from.map(|g| &conds[g]) {
        Some(Cond::Text(_, Test::Matches(re))) => re.captures_len(),
        _ => 0,
    };
    let mut actions: Vec<Action> = Vec::new();
    while i < w.len() {
        let word = w[i].as_str();
        i += 1;
        if actions.last().is_some_and(Action::ends) {
            return Err(format!("{word:?} after an action that ends the rule"));
        }
        let action = match word {
            "folder" | "copy" => {
                let name = Template::parse(&arg(w, &mut i, word)?, groups)?;
                if word == "folder" {
                    Action::Folder(name)
                } else {
                    Action::Copy(name)
                }
            }
            "flags" => {
                let f = arg(w, &mut i, word)?;
                if !f.chars().all(|c| c.is_ascii_alphabetic()) && f != "-" {
                    return Err(format!(
                        "flags {f:?}: Maildir flags are letters (or - for none)"
                    ));
                }
                Action::Flags(normalize_flags(&f))
            }
            "discard" => Action::Discard,
            "pipe" | "filter" => {
                let argv: Vec<String> = w[i..].to_vec();
                i = w.len();
                if argv.is_empty() || argv[0].is_empty() {
                    return Err(format!("{word} needs a command"));
                }
                if word == "pipe" {
                    Action::Pipe(argv)
                } else {
                    Action::Filter(argv)
                }
            }
            "forward" => {
                let to: Vec<String> = w[i..].to_vec();
                i = w.len();
                if to.is_empty() {
                    return Err("forward needs an address".into());
                }
                for a in &to {
                    check_forward_address(a)?;
                }
                Action::Forward(to)
            }
            other => return Err(format!("unknown action {other:?}")),
        };
        actions.push(action);
    }
    if actions.is_empty() {
        return Err(
            "expected an action (folder, copy, flags, discard, pipe, filter or forward)".into(),
        );
    }
    Ok(Rule {
        conds,
        groups_from,
        actions,
        line: 0,
    })
}

/// A `forward` address is a bare `local@domain`: it goes into the sendmail command's argv,
/// where anything else (`-oi`, `<a@b>`, a list) would be read as something else.
fn check_forward_address(a: &str) -> std::result::Result<(), String> {
    let bare = !a.starts_with('-')
        && a.contains('@')
        && !a.contains(['<', '>', ','])
        && !a.chars().any(|c| c.is_whitespace() || c.is_control());
    match address::parse_addr_spec(a) {
        Ok(_) if bare => Ok(()),
        Ok(_) => Err(format!(
            "forward {a:?}: give a bare address, as user@example.org"
        )),
        Err(e) => Err(format!("forward {a:?}: {}", e.why())),
    }
}

fn arg(w: &[String], i: &mut usize, after: &str) -> std::result::Result<String, String> {
    let a = w
        .get(*i)
        .cloned()
        .ok_or_else(|| format!("{after} needs an argument"))?;
    *i += 1;
    Ok(a)
}

/// Which comparisons a test's subject takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A header: `exists` too.
    Header,
    /// The envelope, the recipient fields: contains, is, matches.
    Text,
    /// The body: contains and matches (`is` a whole body is no test); `^` and `$` match at
    /// each line, as procmail's do in the body.
    Body,
}

fn parse_cond(w: &[String], i: &mut usize) -> std::result::Result<Cond, String> {
    let word = arg(w, i, "rule")?;
    match word.as_str() {
        "all" => Ok(Cond::All),
        "not" => Ok(Cond::Not(Box::new(parse_cond(w, i)?))),
        "header" => {
            let name = arg(w, i, "header")?;
            let name = name.strip_suffix(':').unwrap_or(&name).to_string();
            if !header::is_field_name(name.as_bytes()) {
                return Err(format!("header {name:?}: not a header field name"));
            }
            Ok(Cond::Text(
                Subject::Header(name),
                parse_test(w, i, Takes::Header)?,
            ))
        }
        "to" => Ok(Cond::Text(Subject::To, parse_test(w, i, Takes::Text)?)),
        "body" => Ok(Cond::Text(Subject::Body, parse_test(w, i, Takes::Body)?)),
        "sender" => Ok(Cond::Text(Subject::Sender, parse_test(w, i, Takes::Text)?)),
        "recipient" => Ok(Cond::Text(
            Subject::Recipient,
            parse_test(w, i, Takes::Text)?,
        )),
        "size" => {
            let op = arg(w, i, "size")?;
            // Accept both `size > 5M` and `size >5M`.
            let (op, num) = match op.split_at_checked(1) {
                Some((o, rest)) if !rest.is_empty() => (o.to_string(), rest.to_string()),
                _ => (op.clone(), arg(w, i, "size")?),
            };
            let n = parse_size(&num)?;
            match op.as_str() {
                ">" => Ok(Cond::Larger(n)),
                "<" => Ok(Cond::Smaller(n)),
                _ => Err(format!("size {op:?}: expected > or <")),
            }
        }
        other => Err(format!(
            "unknown test {other:?} (expected header, to, body, sender, recipient, size, all or not)"
        )),
    }
}

fn parse_test(w: &[String], i: &mut usize, takes: Takes) -> std::result::Result<Test, String> {
    let kind = arg(w, i, "test")?;
    match kind.as_str() {
        "exists" if takes == Takes::Header => Ok(Test::Exists),
        "contains" => Ok(Test::Contains(arg(w, i, "contains")?.to_lowercase())),
        "is" if takes != Takes::Body => Ok(Test::Is(arg(w, i, "is")?.to_lowercase())),
        "matches" => {
            let pat = arg(w, i, "matches")?;
            RegexBuilder::new(&pat)
                .case_insensitive(true)
                .multi_line(takes == Takes::Body)
                .size_limit(1 << 20)
                .build()
                .map(Test::Matches)
                .map_err(|e| format!("matches {pat:?}: {}", first_line(&e.to_string())))
        }
        other => Err(format!(
            "unknown comparison {other:?} (expected {})",
            match takes {
                Takes::Header => "contains, is, matches or exists",
                Takes::Text => "contains, is or matches",
                Takes::Body => "contains or matches",
            }
        )),
    }
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(header: &[u8]) -> Facts<'_> {
        Facts {
            header,
            body: b"",
            sender: "a@spam.test",
            recipient: "me@h.test",
            size: 3000,
        }
    }

    fn plan(rules: &str, header: &[u8]) -> Vec<String> {
        Rules::parse(rules, "t")
            .unwrap()
            .plan(&facts(header), "INBOX", "")
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn first_match_wins_and_copy_continues() {
        let r = "header subject: contains RUST copy Archive\n\
                 header Subject matches '^\\[ann\\]' folder Ann\n\
                 all folder Other\n";
        assert_eq!(
            plan(r, b"Subject: [ANN] rust 2\n"),
            ["store Archive", "store Ann"]
        );
        assert_eq!(plan(r, b"Subject: hello\n"), ["store Other"]);
        assert_eq!(
            plan("sender contains nobody folder X\n", b""),
            ["store INBOX"]
        );
    }

    #[test]
    fn every_test_kind() {
        let h = b"Subject: =?utf-8?q?caf=C3=A9?=\nX-Spam: YES\n";
        assert_eq!(plan("header subject is CAFÉ discard", h), ["discard"]);
        assert_eq!(plan("header x-spam exists discard", h), ["discard"]);
        assert_eq!(plan("not header List-Id exists discard", h), ["discard"]);
        assert_eq!(
            plan("sender matches '@SPAM\\.test$' discard", h),
            ["discard"]
        );
        assert_eq!(plan("recipient is me@h.test discard", h), ["discard"]);
        assert_eq!(plan("size > 2k and size <2900 discard", h), ["store INBOX"]);
        assert_eq!(plan("size > 2k size <4k discard", h), ["discard"]);
        assert_eq!(
            plan("all flags FS copy A flags - pipe /bin/cat 'a b'", h),
            ["store A flags FS", "pipe /bin/cat 'a b'"]
        );
        assert_eq!(plan("size >1k flags SS", h), ["store INBOX flags S"]);
        assert_eq!(
            plan("all filter /usr/bin/spamc -f", h),
            ["filter /usr/bin/spamc -f", "store INBOX"]
        );
    }

    #[test]
    fn errors_name_the_line() {
        for bad in [
            "folder X",
            "header folder X",
            "header Subject contains",
            "header Subject has x folder Y",
            "size = 5 folder X",
            "size > 5Q folder X",
            "all folder ../x",
            "all folder X copy Y",
            "all pipe",
            "all flags 1",
            "sender exists folder X",
            "all",
            "all frobnicate",
            "header Subject matches '(' folder X",
            "body is x folder X",
            "body exists folder X",
            "to exists folder X",
            "to frobs x folder X",
            "all folder 'unterminated",
        ] {
            let e = Rules::parse(&format!("# ok\n\n{bad}\n"), "f").unwrap_err();
            assert!(e.to_string().starts_with("f:3: "), "{bad}: {e}");
            assert_eq!(e.code(), Code::Config);
        }
    }

    /// The plan for a whole message (`header`, empty line, `body`).
    fn plan_msg(rules: &str, msg: &[u8]) -> Vec<String> {
        let header = header::block(msg);
        let f = Facts {
            body: body_of(msg),
            ..facts(header)
        };
        Rules::parse(rules, "t")
            .unwrap()
            .plan(&f, "INBOX", "")
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn body_tests_read_the_raw_body_line_by_line() {
        let msg = b"Subject: hi\n\nHello,\nCLICK here to unsubscribe\n-- \nme\n";
        let r = "body contains 'click HERE' folder Junk";
        assert_eq!(plan_msg(r, msg), ["store Junk"]);
        // ^ and $ are a line's ends in the body.
        assert_eq!(
            plan_msg("body matches '^-- $' folder Sig", msg),
            ["store Sig"]
        );
        assert_eq!(plan_msg("body matches '^click' folder X", msg), ["store X"]);
        // The header is not the body, and the body is not decoded.
        assert_eq!(
            plan_msg("body contains subject discard", msg),
            ["store INBOX"]
        );
        let b64 = b"Content-Transfer-Encoding: base64\n\naGVsbG8=\n";
        assert_eq!(
            plan_msg("body contains hello discard", b64),
            ["store INBOX"]
        );
        assert_eq!(plan_msg("body contains aGVsbG8= discard", b64), ["discard"]);
        // Only the first BODY_LIMIT bytes are read.
        let mut big = b"S: x\n\n".to_vec();
        big.resize(6 + BODY_LIMIT, b'a');
        big.extend_from_slice(b"needle\n");
        assert_eq!(
            plan_msg("body contains needle discard", &big),
            ["store INBOX"]
        );
        big.truncate(6 + BODY_LIMIT - 7);
        big.extend_from_slice(b"needle\n");
        assert_eq!(plan_msg("body contains needle discard", &big), ["discard"]);
        // Bytes that are not UTF-8 do not hide the rest.
        let latin1 = b"S: x\n\ncaf\xe9 and more\n";
        assert_eq!(
            plan_msg("body contains 'and more' discard", latin1),
            ["discard"]
        );
        // No header at all: no body either.
        assert_eq!(body_of(b"Subject: x\n"), b"");
    }

    #[test]
    fn to_reads_every_recipient_field_by_address() {
        let r = "to is list@lists.example folder Lists\n\
                 to matches '^(.+)@team\\.example$' folder Team.$1\n";
        for field in TO_FIELDS {
            let h = format!("{field}: \"The List\" <LIST@lists.example>\n");
            assert_eq!(plan(r, h.as_bytes()), ["store Lists"], "{field}");
        }
        // Groups, lists, folding, other fields.
        let h = b"To: a@x, undisclosed: b@y,\n list@lists.example;\n";
        assert_eq!(plan(r, h), ["store Lists"]);
        for h in [
            b"From: list@lists.example\n".as_slice(),
            b"Delivered-To: list@lists.example\n",
            b"Subject: list@lists.example\n",
            b"To: \"list@lists.example\" <other@x>\n",
        ] {
            assert_eq!(plan(r, h), ["store INBOX"], "{h:?}");
        }
        assert_eq!(
            plan(r, b"Cc: x@y, Dev <dev@team.example>\n"),
            ["store Team.dev"]
        );
        assert_eq!(
            plan(
                "to contains @LISTS. discard",
                b"Resent-Cc: list@lists.example\n"
            ),
            ["discard"]
        );
    }

    #[test]
    fn groups_name_folders_one_level_each() {
        let r = r"header List-Id matches '<([^>]*)>' folder Lists.$1";
        let plan_id = |id: &str| plan(r, format!("List-Id: {id}\n").as_bytes());
        assert_eq!(
            plan_id("Rust <rust-users.lists.example>"),
            ["store Lists.rust-users_lists_example"]
        );
        // Whatever the message puts in the group, it is one safe level under Lists.
        for (id, folder) in [
            ("<../x>", "Lists.___x"),
            ("<..>", "Lists.__"),
            ("</etc/passwd>", "Lists._etc_passwd"),
            ("< >", "Lists._"),
            ("<>", "Lists._"),
            ("<a\tb&c>", "Lists.a_b_c"),
            ("<caf\u{e9}>", "Lists.caf_"),
            ("<=?utf-8?q?a=2Fb?=>", "Lists.a_b"),
        ] {
            assert_eq!(plan_id(id), [format!("store {folder}")], "{id}");
        }
        let long = format!("<{}>", "y".repeat(1000));
        let got = plan_id(&long);
        assert_eq!(got, [format!("store Lists.{}", "y".repeat(GROUP_MAX))]);
        // $0 is the whole match; groups come from the rule's last matches; copy expands too.
        let r = "header Subject matches '(\\w+)' and sender matches '^([^@]+)@(.*)$' \
                 copy In.$1.$2 folder $0";
        assert_eq!(
            plan(r, b"Subject: x\n"),
            ["store In.a.spam_test", "store a@spam_test"]
        );
        // A group that did not take part is empty.
        let r = "header Subject matches '(a)|(b)' folder X.$1.$2";
        assert_eq!(plan(r, b"Subject: b\n"), ["store X._.b"]);
        // A dollar not before a digit is itself.
        let r = "all folder Price$";
        assert_eq!(plan(r, b""), ["store Price$"]);
    }

    #[test]
    fn groups_are_checked_when_the_rules_are_read() {
        for (bad, why) in [
            ("all folder Lists.$1", "needs a `matches` test"),
            ("header S matches '(a)' folder X.$2", "has 1 group(s)"),
            (
                "not header S matches '(a)' folder X.$1",
                "needs a `matches`",
            ),
            ("header S matches '(a)' folder .$1", "empty level"),
            ("header S matches '(a)' folder $1/x", "path separator"),
            ("header S matches '(a)' copy $1..x", "empty level"),
            (
                &format!("header S matches '(a)' folder {}$1", "z".repeat(200)),
                "longer than",
            ),
        ] {
            let e = Rules::parse(bad, "f").unwrap_err().to_string();
            assert!(e.starts_with("f:1: ") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_filter_ends_a_stretch_and_the_plan_goes_on_after_it() {
        let rules = Rules::parse(
            "header Subject matches '(\\w+)' flags S copy A.$1 filter spamc -f\n\
             header X-Spam is yes folder Junk\n\
             all filter other\n",
            "f",
        )
        .unwrap();
        let mut at = rules.start("");
        let show = |v: Vec<Planned>| -> Vec<String> {
            v.iter()
                .map(|p| format!("{} ({})", p, p.rule.as_deref().unwrap_or("-")))
                .collect()
        };
        let before = facts(b"Subject: hi\n");
        assert_eq!(
            show(rules.next(&before, &mut at, "INBOX")),
            ["store A.hi flags S (f:1)", "filter spamc -f (f:1)"]
        );
        assert!(!at.done());
        // The filter's output: the flags stay, the next rule sees the new header.
        let after = facts(b"X-Spam: YES\nSubject: other\n");
        assert_eq!(
            show(rules.next(&after, &mut at, "INBOX")),
            ["store Junk flags S (f:2)"]
        );
        assert!(at.done());
        // Without a match after the filters, the default store comes last, from no rule.
        let mut at = rules.start("F");
        let plain = facts(b"Subject: !\n");
        assert_eq!(
            show(rules.next(&plain, &mut at, "INBOX")),
            ["filter other (f:3)"]
        );
        assert_eq!(
            show(rules.next(&plain, &mut at, "INBOX")),
            ["store INBOX flags F (-)"]
        );
        assert!(at.done());
        // The whole plan (mdeliver -n) takes a filter as giving the message back.
        assert_eq!(
            plan("all filter a\nall forward x@y.test b@c.test\n", b""),
            ["filter a", "forward x@y.test b@c.test"]
        );
    }

    #[test]
    fn forward_takes_bare_addresses() {
        assert_eq!(
            plan("all copy INBOX forward me@phone.example", b""),
            ["store INBOX", "forward me@phone.example"]
        );
        for bad in [
            "all forward",
            "all forward -oi",
            "all forward -f@x",
            "all forward bob",
            "all forward '<a@b.c>'",
            "all forward 'a@b.c,d@e.f'",
            "all forward 'a b@c.d'",
            "all forward a@b.c folder X",
            "all filter",
        ] {
            let e = Rules::parse(bad, "f").unwrap_err();
            assert!(e.to_string().starts_with("f:1: "), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5M"), Ok(5 << 20));
        assert_eq!(parse_size("10k"), Ok(10240));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("x").is_err() && parse_size("99999999999G").is_err());
    }
}
