//! Finding the examples: README's code blocks and every no-fill block of man/*, read as the
//! reader sees them, then sorted into kinds (a shell line, a crontab line, a configuration…),
//! each kind with its own runner. Anything no rule reads or sorts is an error, never skipped.

use crate::examples::project;
use regex::Regex;
use std::path::PathBuf;
use std::sync::LazyLock;

/// One example block as the reader sees it.
#[derive(Debug, Clone)]
pub struct Block {
    /// `file:line` of its first line.
    pub origin: String,
    /// The file's name (README.md, mcompose.1, …).
    pub file: String,
    /// The text, roff escapes resolved.
    pub text: String,
}

/// Every example block of README.md and man/*.N.
pub fn all_blocks() -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let readme = std::fs::read_to_string(project().join("README.md")).map_err(|e| e.to_string())?;
    blocks.extend(markdown_blocks("README.md", &readme)?);
    let mut pages: Vec<PathBuf> = std::fs::read_dir(project().join("man"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.len() == 1 && e.as_bytes()[0].is_ascii_digit())
        })
        .collect();
    pages.sort();
    for p in pages {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{name}: {e}"))?;
        blocks.extend(roff_blocks(&name, &text)?);
    }
    Ok(blocks)
}

/// Code blocks of a Markdown file: fenced ones, and CommonMark's indented ones (four spaces
/// after a blank line). An indented block after a list item would be the item's text in some
/// renderers and code in others: refused, so the reader and this test cannot disagree.
pub fn markdown_blocks(file: &str, text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let list_item = Regex::new(r"^\s*([-*+]|\d+[.)])\s").unwrap();
    let mut out = Vec::new();
    let (mut i, mut prev_blank, mut in_list) = (0, true, false);
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            let fence = &trimmed[..3];
            let info = trimmed[3..].trim();
            let lang = info.split_whitespace().next().unwrap_or("");
            if !matches!(
                lang,
                "" | "sh" | "shell" | "bash" | "text" | "conf" | "crontab"
            ) {
                return Err(format!(
                    "{file}:{}: code block in {lang:?}: no rule runs it",
                    i + 1
                ));
            }
            let start = i + 1;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with(fence) {
                body.push(lines[i]);
                i += 1;
            }
            if i == lines.len() {
                return Err(format!("{file}:{start}: unterminated code fence"));
            }
            out.push(Block {
                origin: format!("{file}:{}", start + 1),
                file: file.into(),
                text: body.join("\n"),
            });
            i += 1;
            prev_blank = false;
            continue;
        }
        let indented = line.starts_with("    ") || line.starts_with('\t');
        if indented && prev_blank && !line.trim().is_empty() {
            if in_list {
                return Err(format!(
                    "{file}:{}: indented block after a list item: use a fenced block",
                    i + 1
                ));
            }
            let start = i;
            let mut body = Vec::new();
            while i < lines.len()
                && (lines[i].starts_with("    ")
                    || lines[i].starts_with('\t')
                    || lines[i].trim().is_empty())
            {
                let l = lines[i];
                body.push(
                    l.strip_prefix("    ")
                        .or(l.strip_prefix('\t'))
                        .unwrap_or(""),
                );
                i += 1;
            }
            while body.last().is_some_and(|l| l.trim().is_empty()) {
                body.pop();
            }
            out.push(Block {
                origin: format!("{file}:{}", start + 1),
                file: file.into(),
                text: body.join("\n"),
            });
            prev_blank = lines
                .get(i.saturating_sub(1))
                .is_some_and(|l| l.trim().is_empty());
            continue;
        }
        if !line.trim().is_empty() {
            if list_item.is_match(line) {
                in_list = true;
            } else if !line.starts_with(' ') {
                in_list = false;
            }
        }
        prev_blank = line.trim().is_empty();
        i += 1;
    }
    Ok(out)
}

/// The no-fill blocks of a man page. Inside one only indentation requests may appear; in
/// EXAMPLES, a line that looks like a command outside any block is an error (it would be
/// filled into prose and never run).
pub fn roff_blocks(file: &str, text: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut block: Option<(usize, Vec<String>)> = None;
    let command_like = Regex::new(
        r"^(mcompose|msubmit|mrelay|mreceive|mdeliver|mfetch|echo|printf|cat|sudo|fetchmail|make|\$ )",
    )
    .unwrap();
    for (n, raw) in text.lines().enumerate() {
        let at = || format!("{file}:{}", n + 1);
        let request = raw
            .strip_prefix('.')
            .or(raw.strip_prefix('\''))
            .map(|r| r.split_whitespace().next().unwrap_or(""));
        if let Some((start, lines)) = &mut block {
            match request {
                Some("fi" | "EE") => {
                    if lines.is_empty() {
                        return Err(format!("{}: empty example block", at()));
                    }
                    out.push(Block {
                        origin: format!("{file}:{start}"),
                        file: file.into(),
                        text: lines.join("\n"),
                    });
                    block = None;
                }
                Some("RS" | "RE" | "br" | "sp" | "in" | "nf" | "EX") => {}
                Some(r) if r.starts_with("\\\"") => {}
                Some(r) => {
                    return Err(format!(
                        "{}: request .{r} inside an example block: no rule reads it",
                        at()
                    ));
                }
                None => {
                    if lines.is_empty() {
                        *start = n + 1;
                    }
                    lines.push(unroff(raw).map_err(|e| format!("{}: {e}", at()))?);
                }
            }
            continue;
        }
        match request {
            Some("SH") => section = raw[3..].trim().trim_matches('"').to_string(),
            Some("nf" | "EX") => block = Some((n + 2, Vec::new())),
            Some(_) => {}
            None if section == "EXAMPLES" && command_like.is_match(&unroff(raw)?) => {
                return Err(format!(
                    "{}: a command outside .nf/.fi in EXAMPLES: put it in a block",
                    at()
                ));
            }
            None => {}
        }
    }
    match block {
        Some((start, _)) => Err(format!("{file}:{start}: example block never ends (.fi)")),
        None => Ok(out),
    }
}

/// A roff text line as the reader sees it. An escape we do not know is an error, not a guess.
pub fn unroff(line: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut it = line.chars();
    let named = |name: &str| -> Result<char, String> {
        Ok(match name {
            "aq" | "oq" | "cq" => '\'',
            "dq" | "lq" | "rq" => '"',
            "ti" => '~',
            "ha" => '^',
            "rs" => '\\',
            "em" => '\u{2014}',
            "en" => '\u{2013}',
            "bu" => '\u{2022}',
            "at" => '@',
            "sl" => '/',
            "lB" => '[',
            "rB" => ']',
            _ => return Err(format!("roff character \\({name}: no rule to read it")),
        })
    };
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('-') => out.push('-'),
            Some('e' | '\\') => out.push('\\'),
            Some('&' | '%' | ')') => {}
            Some(' ' | '~' | '0') => out.push(' '),
            Some('"') => break,
            Some('f') => match it.next() {
                Some('(') => {
                    it.next();
                    it.next();
                }
                Some('[') => {
                    for c in it.by_ref() {
                        if c == ']' {
                            break;
                        }
                    }
                }
                Some(_) => {}
                None => return Err("\\f at the end of a line".into()),
            },
            Some('(') => {
                let name: String = it.by_ref().take(2).collect();
                out.push(named(&name)?);
            }
            Some('[') => {
                let name: String = it.by_ref().take_while(|&c| c != ']').collect();
                out.push(named(&name)?);
            }
            Some(other) => return Err(format!("roff escape \\{other}: no rule to read it")),
            None => out.push('\\'),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A command line for an interactive shell (continuations joined).
    Shell(String),
    /// A crontab line.
    Cron(String),
    /// An inetd.conf line.
    Inetd(String),
    /// Postfix main.cf lines.
    MainCf(Vec<String>),
    /// Postfix master.cf entries.
    MasterCf(String),
    /// Postfix main.cf and master.cf lines together, each after a `# main.cf` or
    /// `# master.cf` line: (main.cf, master.cf).
    Postfix(String, String),
    /// Exim configuration: routers and transports (`begin routers`, `begin transports`).
    Exim(String),
    /// OpenSMTPD's smtpd.conf lines (`action … mda …`, `match …`).
    Smtpd(String),
    /// systemd unit files: (file name, contents).
    Units(Vec<(String, String)>),
    /// A mailpipe configuration file.
    Config(String),
    /// A mailpipe-rules(5) file.
    Rules(String),
    /// Lines of mreceive's password file.
    Passwords(String),
    /// Lines of mreceive's sender-login map: `ADDRESS LOGIN[,LOGIN…]`.
    SenderMap(String),
    /// An RFC 5322 address list, as an option of mcompose takes it.
    Addresses(String),
    /// A line of Alpine's ~/.pinerc.
    Pinerc(String, String),
    /// `make TARGET [VAR=VALUE…]` in the source tree.
    Make(Vec<String>),
    /// Lines of mreceive's log (mreceive(1)'s LOGGING).
    Log(String),
    /// What `make demo` prints (demo/five-steps.sh), `...` where lines are left out.
    DemoOutput(String),
}

#[derive(Debug, Clone)]
pub struct Example {
    pub origin: String,
    pub kind: Kind,
}

pub static CRON: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(@(reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)|([0-9*][0-9A-Za-z*/,-]*\s+){4}[0-9*][0-9A-Za-z*/,-]*)\s+\S",
    )
    .unwrap()
});

pub static INETD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\S+\s+(stream|dgram|raw|seqpacket)\s+(tcp|udp)\S*\s+(wait|nowait)\S*\s+\S+\s+/")
        .unwrap()
});

pub static MASTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\S+\s+(unix|unix-dgram|inet|fifo|pass)\s+[-yn]\s+[-yn]\s+[-yn]\s+\S+\s+\S+\s+\S+")
        .unwrap()
});

pub static MAIN_CF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]*\s*=\s*\S").unwrap());

pub static PINERC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-z]+(-[a-z]+)+)=(.*)$").unwrap());

/// A line of mreceive's sender-login map: an address or `@domain`, then logins.
static SENDER_MAP_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^\s@]*@[^\s@]+\s+[^\s,]+(,[^\s,]+)*$").unwrap());

pub static PASSWD_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([^\s:#]+):((?:\{[A-Z0-9-]+\})?)\$([56])\$((?:rounds=(\d+)\$)?)[^:]*(.*)$")
        .unwrap()
});

pub static UNIT_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^#\s*(\S+\.(socket|service|timer|path|mount))\s*$").unwrap());

/// Programs an example may start a line with (besides those with their own kind).
pub const PROGRAMS: &[&str] = &[
    "mcompose",
    "msubmit",
    "mrelay",
    "mreceive",
    "mdeliver",
    "mfetch",
    "echo",
    "printf",
    "cat",
    "ln",
    "sudo",
    "fetchmail",
    "tcpserver",
    "make",
];

/// The lines of a block with shell continuations (`\` at the end) joined, blank lines and
/// comment lines dropped; each with its line number in the block.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let (start, mut acc) = cur.take().unwrap_or((n, String::new()));
        if acc.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        if !acc.is_empty() {
            acc.push('\n');
        }
        acc.push_str(line);
        if line.ends_with('\\') {
            cur = Some((start, acc));
        } else {
            out.push((start, acc));
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

pub fn first_word(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// Split a block into examples.
pub fn classify(block: &Block) -> Result<Vec<Example>, String> {
    let at = |n: usize| {
        let (file, line) = block.origin.rsplit_once(':').unwrap();
        format!("{file}:{}", line.parse::<usize>().unwrap() + n)
    };
    let one = |kind| {
        Ok(vec![Example {
            origin: block.origin.clone(),
            kind,
        }])
    };
    let text = block.text.as_str();
    let lines = logical_lines(text);
    let Some((_, first)) = lines.first() else {
        return Err(format!(
            "{}: an example block with no example",
            block.origin
        ));
    };
    let trimmed: Vec<&str> = text.lines().map(str::trim).collect();
    if trimmed.iter().any(|l| {
        matches!(
            *l,
            "[Unit]" | "[Service]" | "[Socket]" | "[Install]" | "[Timer]"
        )
    }) {
        let mut units: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(c) = UNIT_NAME.captures(line.trim()) {
                units.push((c[1].to_string(), String::new()));
            } else if let Some((_, body)) = units.last_mut() {
                body.push_str(line.trim());
                body.push('\n');
            } else if !line.trim().is_empty() {
                return Err(format!(
                    "{}: a systemd unit without a `# NAME.socket` line naming it",
                    block.origin
                ));
            }
        }
        return one(Kind::Units(units));
    }
    // Files of other programs, told apart by their own syntax: a Postfix block naming both
    // its files, Exim's section headers, OpenSMTPD's action lines.
    if trimmed.contains(&"# main.cf") && trimmed.contains(&"# master.cf") {
        let (mut main, mut master, mut into) = (String::new(), String::new(), None);
        for line in text.lines() {
            match line.trim() {
                "# main.cf" => into = Some(&mut main),
                "# master.cf" => into = Some(&mut master),
                _ => match into.as_mut() {
                    Some(s) => {
                        s.push_str(line);
                        s.push('\n');
                    }
                    None if line.trim().is_empty() => {}
                    None => {
                        return Err(format!(
                            "{}: Postfix lines before a `# main.cf` or `# master.cf` line",
                            block.origin
                        ));
                    }
                },
            }
        }
        return one(Kind::Postfix(main, master));
    }
    if trimmed.iter().any(|l| l.starts_with("begin ")) && trimmed.contains(&"driver = pipe") {
        return one(Kind::Exim(text.to_string()));
    }
    if first.starts_with("action ") {
        return one(Kind::Smtpd(text.to_string()));
    }
    // A program, by name or by path (/usr/local/bin/mdeliver …).
    let command = first_word(first);
    let is_program =
        command.starts_with('/') || PROGRAMS.contains(&command.rsplit('/').next().unwrap_or(""));
    if block.file.starts_with("mailpipe-rules") && !is_program {
        return one(Kind::Rules(text.to_string()));
    }
    if trimmed
        .iter()
        .any(|l| *l == "defaults" || l.starts_with("account "))
    {
        return one(Kind::Config(text.to_string()));
    }
    if crate::examples::logs::is_log(text) {
        return one(Kind::Log(text.to_string()));
    }
    if first.starts_with("mcompose  composed ") {
        return one(Kind::DemoOutput(text.to_string()));
    }
    if lines.iter().all(|(_, l)| PASSWD_LINE.is_match(l)) {
        return one(Kind::Passwords(text.to_string()));
    }
    if lines.iter().all(|(_, l)| SENDER_MAP_LINE.is_match(l)) {
        return one(Kind::SenderMap(text.to_string()));
    }
    if MASTER.is_match(first) {
        return one(Kind::MasterCf(text.to_string()));
    }
    if lines.len() == 1
        && !is_program
        && (first.starts_with('"') || first_word(first).contains('@'))
    {
        return one(Kind::Addresses(first.clone()));
    }
    let mut out: Vec<Example> = Vec::new();
    for (n, line) in lines {
        let origin = at(n);
        let kind = if CRON.is_match(&line) {
            Kind::Cron(line)
        } else if INETD.is_match(&line) {
            Kind::Inetd(line)
        } else if MAIN_CF.is_match(&line) {
            if let Some(Example {
                kind: Kind::MainCf(prev),
                ..
            }) = out.last_mut()
            {
                prev.push(line);
                continue;
            }
            Kind::MainCf(vec![line])
        } else if let Some(c) = PINERC.captures(&line) {
            Kind::Pinerc(c[1].to_string(), c[3].to_string())
        } else if first_word(&line) == "make" {
            let words: Vec<String> = line
                .split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .skip(1)
                .map(String::from)
                .collect();
            Kind::Make(words)
        } else {
            Kind::Shell(line)
        };
        out.push(Example { origin, kind });
    }
    Ok(out)
}
