//! Filtering rules: where a delivery (mdeliver's, or any caller of [`super::Pipeline`] given
//! rules) puts a message, decided before anything is written.
//!
//! The format (documented for users in `mailpipe-rules(5)`) is maildrop's and procmail's job
//! with less syntax: one rule per line, tests then actions, first matching rule wins.
//!
//! ```text
//! # tests...                              actions...
//! header List-Id contains rust-users      folder Lists.rust
//! header Subject matches '^\[ann\]'       copy Announce
//! sender contains @spam.test              discard
//! size > 5M                               flags S folder Big
//! header X-Spam-Flag is yes               pipe /usr/bin/sa-learn --spam
//! ```
//!
//! Why this shape: every rule reads as one sentence, there is no variable expansion and no
//! shell anywhere (a `pipe` command is split into argv here and run directly, so nothing from
//! the message can ever become a command), and the whole file parses up front, so a typo is
//! found before delivery starts and the message goes to the inbox instead (maildrop's rule:
//! a broken filter must never lose mail). Matching is on decoded header values (RFC 2047,
//! unfolded: RFC 5322 §2.2.3), header names ignore case (RFC 5322 §1.2.2), and text tests
//! ignore case as procmail's do.

use crate::config::{parse_size, words};
use crate::exit::{Code, Context, Error, Result};
use crate::message::header;
use crate::store::maildir::{check_folder_name, normalize_flags};
use regex::{Regex, RegexBuilder};
use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A rules file larger than this is refused as broken: it is a list of rules, not data.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// What a rule can look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The message's header block as received (without our trace headers).
    pub header: &'a [u8],
    /// The envelope sender, bare (`""` for the null sender or when unknown).
    pub sender: &'a str,
    /// The envelope recipient, bare (`""` when unknown).
    pub recipient: &'a str,
    /// The message size in bytes as it will be stored, trace headers not counted.
    pub size: u64,
}

/// One thing to do with the message, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Store it in the Maildir++ folder (`INBOX` is the Maildir itself) with these flags.
    Store {
        /// Folder name as written in the rule, or the default destination.
        folder: String,
        /// Maildir flags; empty stores into new/.
        flags: String,
    },
    /// Run a command with the message on its standard input.
    Pipe(Vec<String>),
    /// Drop it (successfully delivered nowhere).
    Discard,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Store { folder, flags } if flags.is_empty() => write!(f, "store {folder}"),
            Step::Store { folder, flags } => write!(f, "store {folder} flags {flags}"),
            Step::Pipe(argv) => {
                write!(f, "pipe")?;
                for a in argv {
                    write!(f, " {}", quote(a))?;
                }
                Ok(())
            }
            Step::Discard => write!(f, "discard"),
        }
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

#[derive(Debug, Clone)]
enum Action {
    Folder(String),
    Copy(String),
    Flags(String),
    Discard,
    Pipe(Vec<String>),
}

#[derive(Debug, Clone)]
struct Rule {
    conds: Vec<Cond>,
    actions: Vec<Action>,
}

/// A parsed rules file.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
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

    /// Parse rules text; `origin` names it in errors (`origin:line: why`).
    pub fn parse(text: &str, origin: &str) -> Result<Rules> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let err = |why: String| Error::new(Code::Config, format!("{origin}:{}", n + 1), why);
            let w = words(line).map_err(err)?;
            if w.is_empty() {
                continue;
            }
            rules.push(parse_rule(&w).map_err(err)?);
        }
        Ok(Rules { rules })
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
    /// ends with `folder`, `discard` or `pipe`; when none does, storing into `default_folder`
    /// comes last. `flags` set by a rule apply to the stores after it.
    pub fn plan(&self, facts: &Facts, default_folder: &str, default_flags: &str) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut flags = normalize_flags(default_flags);
        for rule in &self.rules {
            if !rule.conds.iter().all(|c| c.eval(facts)) {
                continue;
            }
            for action in &rule.actions {
                match action {
                    Action::Flags(f) => flags.clone_from(f),
                    Action::Copy(folder) => steps.push(Step::Store {
                        folder: folder.clone(),
                        flags: flags.clone(),
                    }),
                    Action::Folder(folder) => {
                        steps.push(Step::Store {
                            folder: folder.clone(),
                            flags,
                        });
                        return steps;
                    }
                    Action::Discard => {
                        steps.push(Step::Discard);
                        return steps;
                    }
                    Action::Pipe(argv) => {
                        steps.push(Step::Pipe(argv.clone()));
                        return steps;
                    }
                }
            }
        }
        steps.push(Step::Store {
            folder: default_folder.to_string(),
            flags,
        });
        steps
    }
}

impl Cond {
    fn eval(&self, f: &Facts) -> bool {
        match self {
            Cond::All => true,
            Cond::Not(c) => !c.eval(f),
            Cond::Larger(n) => f.size > *n,
            Cond::Smaller(n) => f.size < *n,
            Cond::Text(Subject::Sender, t) => t.eval(std::iter::once(f.sender.to_string())),
            Cond::Text(Subject::Recipient, t) => t.eval(std::iter::once(f.recipient.to_string())),
            Cond::Text(Subject::Header(name), t) => t.eval(
                header::fields(f.header)
                    .into_iter()
                    .filter(|h| h.is(name))
                    .map(|h| h.value()),
            ),
        }
    }
}

impl Test {
    /// True when any of `values` passes.
    fn eval(&self, mut values: impl Iterator<Item = String>) -> bool {
        match self {
            Test::Exists => values.next().is_some(),
            Test::Contains(needle) => values.any(|v| v.to_lowercase().contains(needle.as_str())),
            Test::Is(want) => values.any(|v| v.to_lowercase() == *want),
            Test::Matches(re) => values.any(|v| re.is_match(&v)),
        }
    }
}

const ACTIONS: [&str; 5] = ["folder", "copy", "flags", "discard", "pipe"];

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
    let mut actions = Vec::new();
    while i < w.len() {
        let word = w[i].as_str();
        i += 1;
        if let Some(prev) = actions.last()
            && matches!(prev, Action::Folder(_) | Action::Discard | Action::Pipe(_))
        {
            return Err(format!("{word:?} after an action that ends the rule"));
        }
        let action = match word {
            "folder" | "copy" => {
                let name = arg(w, &mut i, word)?;
                if !name.eq_ignore_ascii_case("inbox") {
                    check_folder_name(&name).map_err(|e| e.to_string())?;
                }
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
            "pipe" => {
                let argv: Vec<String> = w[i..].to_vec();
                i = w.len();
                if argv.is_empty() || argv[0].is_empty() {
                    return Err("pipe needs a command".into());
                }
                Action::Pipe(argv)
            }
            other => return Err(format!("unknown action {other:?}")),
        };
        actions.push(action);
    }
    if actions.is_empty() {
        return Err("expected an action (folder, copy, flags, discard or pipe)".into());
    }
    Ok(Rule { conds, actions })
}

fn arg(w: &[String], i: &mut usize, after: &str) -> std::result::Result<String, String> {
    let a = w
        .get(*i)
        .cloned()
        .ok_or_else(|| format!("{after} needs an argument"))?;
    *i += 1;
    Ok(a)
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
            Ok(Cond::Text(Subject::Header(name), parse_test(w, i, true)?))
        }
        "sender" => Ok(Cond::Text(Subject::Sender, parse_test(w, i, false)?)),
        "recipient" => Ok(Cond::Text(Subject::Recipient, parse_test(w, i, false)?)),
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
            "unknown test {other:?} (expected header, sender, recipient, size, all or not)"
        )),
    }
}

fn parse_test(w: &[String], i: &mut usize, header: bool) -> std::result::Result<Test, String> {
    let kind = arg(w, i, "test")?;
    match kind.as_str() {
        "exists" if header => Ok(Test::Exists),
        "contains" => Ok(Test::Contains(arg(w, i, "contains")?.to_lowercase())),
        "is" => Ok(Test::Is(arg(w, i, "is")?.to_lowercase())),
        "matches" => {
            let pat = arg(w, i, "matches")?;
            RegexBuilder::new(&pat)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map(Test::Matches)
                .map_err(|e| format!("matches {pat:?}: {}", first_line(&e.to_string())))
        }
        other => Err(format!(
            "unknown comparison {other:?} (expected contains, is, matches{})",
            if header { " or exists" } else { "" }
        )),
    }
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// How long a `pipe` command may run: procmail's TIMEOUT (960 s), a little under Postfix's
/// command_time_limit (1000 s) so that we, not the MTA, say what hung.
pub const PIPE_TIME_LIMIT: Duration = Duration::from_secs(900);

/// Run `argv` directly (no shell) with the message written by `write` on its standard input,
/// `SENDER` and `RECIPIENT` in its environment, standard output discarded and standard error
/// shared with ours. Success is exit status 0; anything else, a failure to start it included,
/// is a temporary failure, so the MTA keeps the message. A command that exits 0 without
/// reading all of its input (`head`, a spam check) succeeds. A command still running after
/// [`PIPE_TIME_LIMIT`] is killed (with its process group) and is a temporary failure too.
pub fn pipe(
    argv: &[String],
    sender: Option<&str>,
    recipient: Option<&str>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    pipe_with_limit(argv, sender, recipient, PIPE_TIME_LIMIT, write)
}

/// [`pipe`] with another time limit.
pub fn pipe_with_limit(
    argv: &[String],
    sender: Option<&str>,
    recipient: Option<&str>,
    limit: Duration,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let what = format!("pipe to {}", argv.first().map_or("", String::as_str));
    let vars = [("SENDER", sender), ("RECIPIENT", recipient)];
    let status = crate::deliver::command::run_fed(argv, &vars, limit, write)?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    let why = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    Err(Error::new(Code::TempFail, what, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(header: &[u8]) -> Facts<'_> {
        Facts {
            header,
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
            "all folder 'unterminated",
        ] {
            let e = Rules::parse(&format!("# ok\n\n{bad}\n"), "f").unwrap_err();
            assert!(e.to_string().starts_with("f:3: "), "{bad}: {e}");
            assert_eq!(e.code(), Code::Config);
        }
    }

    #[test]
    fn a_pipe_command_that_hangs_is_killed_with_what_it_started() {
        // It never reads and never exits, and a grandchild holds its standard input: the
        // 1 MiB write would block for ever without the limit.
        let argv: Vec<String> = ["sh", "-c", "sleep 60 & sleep 60"]
            .map(String::from)
            .to_vec();
        let start = std::time::Instant::now();
        let limit = Duration::from_millis(300);
        let e = pipe_with_limit(&argv, None, None, limit, |w| w.write_all(&[b'x'; 1 << 20]))
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(e.code(), Code::TempFail);
        assert!(e.to_string().contains("killed after"), "{e}");
        // A quick command is untouched by the limit.
        let cat = vec!["cat".to_string()];
        assert!(pipe_with_limit(&cat, None, None, limit, |w| w.write_all(b"x")).is_ok());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5M"), Ok(5 << 20));
        assert_eq!(parse_size("10k"), Ok(10240));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("x").is_err() && parse_size("99999999999G").is_err());
    }
}
