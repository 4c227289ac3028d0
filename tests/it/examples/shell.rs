//! A small shell lexer, and what a command line should achieve: enough to see which programs
//! a line runs, with which arguments and redirections, where each word sits in the text (so
//! it can be replaced), and from that which effect to check.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct Word {
    /// The word with quotes removed (`$(…)` kept as written).
    pub text: String,
    /// Its byte range in the line.
    pub span: (usize, usize),
}

#[derive(Debug, Clone, Default)]
pub struct Stage {
    pub words: Vec<Word>,
    pub stdin: Option<String>,
    /// The file and whether it is appended to.
    pub stdout: Option<(String, bool)>,
}

impl Stage {
    pub fn args(&self) -> Vec<&str> {
        self.words.iter().map(|w| w.text.as_str()).collect()
    }

    /// The program and its arguments: leading `VAR=value` and `sudo [-u USER]` skipped.
    pub fn command(&self) -> Vec<&str> {
        let mut a = self.args();
        loop {
            let assignment = a.first().is_some_and(|w| {
                w.split_once('=').is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            });
            if assignment {
                a.remove(0);
            } else if a.first() == Some(&"sudo") {
                a.remove(0);
                while a.first().is_some_and(|w| w.starts_with('-')) {
                    let with_value = matches!(a[0], "-u" | "-g");
                    a.remove(0);
                    if with_value && !a.is_empty() {
                        a.remove(0);
                    }
                }
            } else {
                return a;
            }
        }
    }

    pub fn program(&self) -> String {
        let c = self.command();
        c.first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .unwrap_or_default()
    }
}

pub enum Redirect {
    In,
    Out(bool),
    Ignore,
}

pub fn parse_stages(line: &str) -> Result<Vec<Stage>, String> {
    let s = line.as_bytes();
    let mut stages = vec![Stage::default()];
    let mut pending: Option<Redirect> = None;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b' ' | b'\t' | b'\n' => i += 1,
            b'\\' if s.get(i + 1) == Some(&b'\n') => i += 2,
            b'#' => {
                while i < s.len() && s[i] != b'\n' {
                    i += 1;
                }
            }
            b'|' | b';' | b'&' => {
                if pending.is_some() {
                    return Err(format!("redirection without a file in {line:?}"));
                }
                i += if matches!(s.get(i + 1), Some(b'|' | b'&')) {
                    2
                } else {
                    1
                };
                stages.push(Stage::default());
            }
            b'<' | b'>' => {
                let append = s[i] == b'>' && s.get(i + 1) == Some(&b'>');
                let input = s[i] == b'<';
                i += if append { 2 } else { 1 };
                if s.get(i) == Some(&b'&') {
                    i += 1;
                    while i < s.len() && s[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                pending = Some(if input {
                    Redirect::In
                } else {
                    Redirect::Out(append)
                });
            }
            c if c.is_ascii_digit() && {
                let mut j = i;
                while j < s.len() && s[j].is_ascii_digit() {
                    j += 1;
                }
                matches!(s.get(j), Some(b'>' | b'<'))
            } =>
            {
                // `2>FILE`, `2>&1`: not about the message.
                while s[i].is_ascii_digit() {
                    i += 1;
                }
                i += 1;
                if s.get(i) == Some(&b'>') {
                    i += 1;
                }
                if s.get(i) == Some(&b'&') {
                    i += 1;
                    while i < s.len() && s[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                pending = Some(Redirect::Ignore);
            }
            _ => {
                let (word, end) = read_word(s, i)?;
                i = end;
                let stage = stages.last_mut().unwrap();
                match pending.take() {
                    Some(Redirect::In) => stage.stdin = Some(word.text),
                    Some(Redirect::Out(append)) => stage.stdout = Some((word.text, append)),
                    Some(Redirect::Ignore) => {}
                    None => stage.words.push(word),
                }
            }
        }
    }
    stages.retain(|s| !s.words.is_empty());
    Ok(stages)
}

pub fn read_word(s: &[u8], mut i: usize) -> Result<(Word, usize), String> {
    let start = i;
    let mut text = Vec::new();
    let unclosed = || {
        Err(format!(
            "unclosed quote in {:?}",
            String::from_utf8_lossy(s)
        ))
    };
    while i < s.len() {
        match s[i] {
            b' ' | b'\t' | b'\n' | b'|' | b';' | b'&' | b'<' | b'>' => break,
            b'\'' => {
                let Some(j) = s[i + 1..].iter().position(|&c| c == b'\'') else {
                    return unclosed();
                };
                text.extend_from_slice(&s[i + 1..i + 1 + j]);
                i += j + 2;
            }
            b'"' => {
                i += 1;
                loop {
                    match s.get(i) {
                        None => return unclosed(),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if matches!(s.get(i + 1), Some(b'$' | b'`' | b'"' | b'\\')) => {
                            text.push(s[i + 1]);
                            i += 2;
                        }
                        Some(b'$') if s.get(i + 1) == Some(&b'(') => {
                            let end = command_substitution_end(s, i)?;
                            text.extend_from_slice(&s[i..end]);
                            i = end;
                        }
                        Some(&c) => {
                            text.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'\\' => {
                if let Some(&c) = s.get(i + 1)
                    && c != b'\n'
                {
                    text.push(c);
                }
                i += 2;
            }
            b'$' if s.get(i + 1) == Some(&b'(') => {
                let end = command_substitution_end(s, i)?;
                text.extend_from_slice(&s[i..end]);
                i = end;
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    Ok((
        Word {
            text,
            span: (start, i.min(s.len())),
        },
        i.min(s.len()),
    ))
}

/// The end of the `$(…)` starting at `i`.
pub fn command_substitution_end(s: &[u8], mut i: usize) -> Result<usize, String> {
    let mut depth = 0;
    let mut quote: Option<u8> = None;
    while i < s.len() {
        match (quote, s[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(s[i]),
            (None, b'(') => depth += 1,
            (None, b')') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("unclosed $( in {:?}", String::from_utf8_lossy(s)))
}

/// `~/x` or `~` in `home`, a relative path in `cwd`.
pub fn resolve(p: &str, home: &Path, cwd: &Path) -> PathBuf {
    if p == "~" {
        home.to_path_buf()
    } else if let Some(rest) = p.strip_prefix("~/") {
        home.join(rest)
    } else {
        cwd.join(p)
    }
}

#[derive(Debug)]
pub enum Expect {
    /// The test server took a message.
    Sent,
    /// A new entry in this queue.
    Queued(PathBuf),
    /// This queue is empty afterwards (and what was in it reached the server).
    Flushed(PathBuf),
    /// A new message in this Maildir or one of its folders.
    Delivered(PathBuf),
    /// mdeliver -n: a plan on stdout, nothing stored here.
    DryRun(PathBuf),
    /// A file holding a message.
    MessageFile(PathBuf),
    /// A file that grew.
    Grown(PathBuf),
    /// A symbolic link to our binary.
    Link(PathBuf, PathBuf),
    /// A directory that exists afterwards.
    Directory(PathBuf),
    /// A message on standard output.
    MessageOnStdout,
    /// mfetch --scan: a line per new message on standard output.
    Scanned,
}

/// Whether `opt` of our tool `program` takes a value (the next word is then no operand),
/// from the tool's own clap definition.
pub fn takes_value(program: &str, opt: &str) -> bool {
    let Some(page) = mailpipe::cmd::pages()
        .into_iter()
        .find(|p| p.name == program)
    else {
        return false;
    };
    page.command.get_arguments().any(|a| {
        a.get_action().takes_values()
            && (a.get_long().is_some_and(|l| opt == format!("--{l}"))
                || a.get_short().is_some_and(|c| opt == format!("-{c}")))
    })
}

pub fn option_value<'a>(args: &[&'a str], names: &[&str]) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if names.contains(a) {
            return it.next().copied();
        }
        for n in names.iter().filter(|n| n.starts_with("--")) {
            if let Some(v) = a.strip_prefix(&format!("{n}=")) {
                return Some(v);
            }
        }
    }
    None
}

pub fn positionals<'a>(program: &str, args: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if *a == "--" {
            out.extend(it.by_ref());
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            if takes_value(program, a) {
                it.next();
            }
            continue;
        }
        out.push(*a);
    }
    out
}

/// What the stages of a command line should achieve, from the programs they run. A program
/// no rule knows fails the example: nobody checked what it does.
pub fn expectations(stages: &[Stage], home: &Path, cwd: &Path) -> Result<Vec<Expect>, String> {
    let mut out = Vec::new();
    let queue = home.join(".local/share/mailpipe/queue");
    for (k, stage) in stages.iter().enumerate() {
        let last = k + 1 == stages.len();
        let args = stage.command();
        let has = |names: &[&str]| args.iter().any(|a| names.contains(a));
        let redirected = stage.stdout.as_ref().map(|(f, _)| resolve(f, home, cwd));
        match stage.program().as_str() {
            "mcompose" => match option_value(&args, &["-o", "--output"]) {
                Some(f) => out.push(Expect::MessageFile(resolve(f, home, cwd))),
                None => match redirected {
                    Some(f) => out.push(Expect::MessageFile(f)),
                    None if last => out.push(Expect::MessageOnStdout),
                    None => {}
                },
            },
            "msubmit" => {
                let q = option_value(&args, &["--queue-dir"])
                    .map_or(queue.clone(), |q| resolve(q, home, cwd));
                if has(&["--queue", "-odq"]) {
                    out.push(Expect::Queued(q));
                } else if has(&["--flush", "-q"]) {
                    out.push(Expect::Flushed(q));
                } else if has(&[
                    "--list",
                    "-bp",
                    "--help",
                    "-h",
                    "--version",
                    "--serverinfo",
                    "--pretend",
                ]) {
                } else {
                    out.push(Expect::Sent);
                }
            }
            "mrelay" => {
                let q = option_value(&args, &["--queue-dir"])
                    .map_or(queue.clone(), |q| resolve(q, home, cwd));
                if has(&["--queue-only", "-odq"]) {
                    out.push(Expect::Queued(q));
                } else if has(&["-q", "--queue-run", "--flush"]) {
                    out.push(Expect::Flushed(q));
                } else if has(&[
                    "--list",
                    "--hold",
                    "--release",
                    "--delete",
                    "--help",
                    "-h",
                    "--version",
                ]) {
                } else {
                    out.push(Expect::Sent);
                }
            }
            "mdeliver" => {
                let target = positionals("mdeliver", &args)
                    .first()
                    .map_or(home.join("Maildir"), |p| resolve(p, home, cwd));
                if has(&["-n", "--dry-run"]) {
                    out.push(Expect::DryRun(target));
                } else {
                    out.push(Expect::Delivered(target));
                }
            }
            "echo" | "printf" | "cat" => {
                if let Some(f) = redirected {
                    out.push(Expect::Grown(f));
                }
            }
            "ln" if args.get(1) == Some(&"-s") && args.len() == 4 => {
                out.push(Expect::Link(
                    resolve(args[2], home, cwd),
                    resolve(args[3], home, cwd),
                ));
            }
            // mdeliver creates a Maildir but not its missing parents: examples make them.
            "mkdir" => {
                let dirs: Vec<&str> = args[1..]
                    .iter()
                    .copied()
                    .filter(|a| !a.starts_with('-'))
                    .collect();
                if dirs.is_empty() || args[1..].iter().any(|a| a.starts_with('-') && *a != "-p") {
                    return Err(format!("no rule knows what `{}` should do", args.join(" ")));
                }
                out.extend(
                    dirs.iter()
                        .map(|d| Expect::Directory(resolve(d, home, cwd))),
                );
            }
            "mfetch" => {
                if has(&["--scan", "-s"]) {
                    out.push(Expect::Scanned);
                } else if let Some(mda) = option_value(&args, &["--mda"]) {
                    out.extend(expectations(&parse_stages(mda)?, home, cwd)?);
                } else {
                    let md = option_value(&args, &["--maildir"]).unwrap_or("~/Maildir");
                    out.push(Expect::Delivered(resolve(md, home, cwd)));
                }
            }
            "fetchmail" => {
                let Some(mda) = option_value(&args, &["--mda", "-m"]) else {
                    return Err("fetchmail without --mda: no rule checks where mail goes".into());
                };
                out.extend(expectations(&parse_stages(mda)?, home, cwd)?);
            }
            p => {
                return Err(format!(
                    "no rule knows what `{p}` should do: add one to tests/it/examples.rs"
                ));
            }
        }
    }
    Ok(out)
}
