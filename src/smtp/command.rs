//! SMTP commands: formatting (client) and parsing (server), with reverse- and forward-path
//! parsing per RFC 5321 §4.1.1–§4.1.2.
//!
//! The server half must take any byte sequence and answer with a reply, never panic; every
//! parse error therefore carries the reply code a server should send (500 syntax, 501
//! parameter syntax, 502 not implemented, 553 bad mailbox). Paths keep the mailbox as written
//! (quoted local parts stay quoted): forwarding it unchanged is the least surprising thing.

use super::reply::{EnhancedCode, Reply};
use std::fmt;

/// The longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// An ESMTP parameter of MAIL or RCPT: `KEYWORD[=VALUE]` (RFC 5321 §4.1.2 esmtp-param).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The keyword, upper-cased when parsed.
    pub keyword: String,
    /// The value, if any.
    pub value: Option<String>,
}

impl Param {
    /// `KEYWORD=VALUE`.
    pub fn new(keyword: &str, value: impl Into<String>) -> Param {
        Param {
            keyword: keyword.to_string(),
            value: Some(value.into()),
        }
    }

    /// A parameter without value (`SMTPUTF8`).
    pub fn flag(keyword: &str) -> Param {
        Param {
            keyword: keyword.to_string(),
            value: None,
        }
    }
}

/// One SMTP command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain` (RFC 5321 §4.1.1.1).
    Ehlo(String),
    /// `HELO domain`.
    Helo(String),
    /// `MAIL FROM:<reverse-path> params`; an empty path is the null sender `<>`.
    Mail {
        /// The mailbox, or empty for `<>`.
        from: String,
        /// ESMTP parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH).
        params: Vec<Param>,
    },
    /// `RCPT TO:<forward-path> params`.
    Rcpt {
        /// The mailbox (`Postmaster` is allowed without a domain).
        to: String,
        /// ESMTP parameters (NOTIFY, ORCPT).
        params: Vec<Param>,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030).
    Bdat {
        /// Octets of the chunk that follows the command line.
        size: u64,
        /// True for the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(String),
    /// `HELP [string]`.
    Help,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism, upper-cased when parsed.
        mechanism: String,
        /// The base64 initial response (`=` is an empty one).
        initial: Option<String>,
    },
}

impl Command {
    /// The command line with CRLF, as a client sends it.
    pub fn to_line(&self) -> String {
        let params = |ps: &[Param]| {
            ps.iter()
                .map(|p| match &p.value {
                    Some(v) => format!(" {}={v}", p.keyword),
                    None => format!(" {}", p.keyword),
                })
                .collect::<String>()
        };
        let body = match self {
            Command::Ehlo(d) => format!("EHLO {d}"),
            Command::Helo(d) => format!("HELO {d}"),
            Command::Mail { from, params: p } => format!("MAIL FROM:<{from}>{}", params(p)),
            Command::Rcpt { to, params: p } => format!("RCPT TO:<{to}>{}", params(p)),
            Command::Data => "DATA".into(),
            Command::Bdat { size, last } => {
                format!("BDAT {size}{}", if *last { " LAST" } else { "" })
            }
            Command::Rset => "RSET".into(),
            Command::Noop => "NOOP".into(),
            Command::Quit => "QUIT".into(),
            Command::Vrfy(s) => format!("VRFY {s}"),
            Command::Help => "HELP".into(),
            Command::StartTls => "STARTTLS".into(),
            Command::Auth { mechanism, initial } => match initial {
                Some(i) => format!("AUTH {mechanism} {i}"),
                None => format!("AUTH {mechanism}"),
            },
        };
        body + "\r\n"
    }

    /// The verb and path for diagnostics: `RCPT TO:<x@y>` (never AUTH secrets).
    pub fn summary(&self) -> String {
        match self {
            Command::Mail { from, .. } => format!("MAIL FROM:<{from}>"),
            Command::Rcpt { to, .. } => format!("RCPT TO:<{to}>"),
            Command::Auth { mechanism, .. } => format!("AUTH {mechanism}"),
            other => other.to_line().trim_end().to_string(),
        }
    }

    /// Parse one command line (with or without CRLF), as a server receives it.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        if line.len() > MAX_COMMAND_LINE {
            return Err(CommandError::new(500, (5, 5, 2), "line too long"));
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(CommandError::new(
                500,
                (5, 5, 2),
                "bare CR, LF or NUL in command",
            ));
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| CommandError::new(500, (5, 5, 2), "command is not UTF-8"))?;
        let (verb, rest) = match line.find(' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, ""),
        };
        let arg = rest.trim();
        let none = |c: Command| {
            if arg.is_empty() {
                Ok(c)
            } else {
                Err(CommandError::new(501, (5, 5, 4), "no parameters allowed"))
            }
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                Err(CommandError::new(501, (5, 5, 4), "a domain is required"))
            }
            "EHLO" => Ok(Command::Ehlo(arg.to_string())),
            "HELO" => Ok(Command::Helo(arg.to_string())),
            "MAIL" => {
                let (path, params) = path_arg(rest, "FROM:")?;
                Ok(Command::Mail {
                    from: parse_reverse_path(path)?,
                    params: parse_params(params)?,
                })
            }
            "RCPT" => {
                let (path, params) = path_arg(rest, "TO:")?;
                Ok(Command::Rcpt {
                    to: parse_forward_path(path)?,
                    params: parse_params(params)?,
                })
            }
            "DATA" => none(Command::Data),
            "RSET" => none(Command::Rset),
            "QUIT" => none(Command::Quit),
            "STARTTLS" => none(Command::StartTls),
            "NOOP" => Ok(Command::Noop),
            "HELP" => Ok(Command::Help),
            "VRFY" if arg.is_empty() => {
                Err(CommandError::new(501, (5, 5, 4), "an argument is required"))
            }
            "VRFY" => Ok(Command::Vrfy(arg.to_string())),
            "BDAT" => {
                let mut words = arg.split(' ');
                let size = words
                    .next()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| CommandError::new(501, (5, 5, 4), "bad chunk size"))?;
                let last = match words.next() {
                    None => false,
                    Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                    Some(_) => return Err(CommandError::new(501, (5, 5, 4), "bad BDAT syntax")),
                };
                if words.next().is_some() {
                    return Err(CommandError::new(501, (5, 5, 4), "bad BDAT syntax"));
                }
                Ok(Command::Bdat { size, last })
            }
            "AUTH" => {
                let mut words = arg.split(' ').filter(|w| !w.is_empty());
                let mechanism = words
                    .next()
                    .filter(|m| {
                        m.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
                    .ok_or_else(|| CommandError::new(501, (5, 5, 4), "bad AUTH syntax"))?
                    .to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                if words.next().is_some() {
                    return Err(CommandError::new(501, (5, 5, 4), "bad AUTH syntax"));
                }
                Ok(Command::Auth { mechanism, initial })
            }
            _ => Err(CommandError::new(500, (5, 5, 1), "command not recognized")),
        }
    }
}

/// Why a command line was refused, with the reply a server should send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    /// The reply code: 500, 501, 553, 555.
    pub code: u16,
    /// The enhanced status code.
    pub enhanced: EnhancedCode,
    /// What was wrong.
    pub message: String,
}

impl CommandError {
    fn new(code: u16, e: (u8, u16, u16), message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            enhanced: EnhancedCode::new(e.0, e.1, e.2),
            message: message.into(),
        }
    }

    /// The reply a server sends for this error.
    pub fn reply(&self) -> Reply {
        Reply::new(self.code, Some(self.enhanced), self.message.clone())
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Split `FROM:<path> params` after the keyword; tolerate one space after the colon, which
/// many clients send although RFC 5321 §4.1.1.2 has none.
fn path_arg<'a>(rest: &'a str, keyword: &str) -> Result<(&'a str, &'a str), CommandError> {
    let n = keyword.len();
    // Compare bytes: slicing the str at n could split a UTF-8 character and panic.
    if !rest
        .as_bytes()
        .get(..n)
        .is_some_and(|b| b.eq_ignore_ascii_case(keyword.as_bytes()))
    {
        return Err(CommandError::new(
            501,
            (5, 5, 4),
            format!("syntax: expected {keyword}<address>"),
        ));
    }
    let rest = &rest[n..];
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if !rest.starts_with('<') {
        return Err(CommandError::new(
            501,
            (5, 5, 4),
            "address must be in angle brackets",
        ));
    }
    // The path ends at the first '>' outside a quoted string.
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let params = &rest[i + 1..];
                if !params.is_empty() && !params.starts_with(' ') {
                    return Err(CommandError::new(
                        501,
                        (5, 5, 4),
                        "garbage after the address",
                    ));
                }
                return Ok((&rest[..=i], params.trim_start()));
            }
            _ => {}
        }
    }
    Err(CommandError::new(501, (5, 5, 4), "unterminated address"))
}

/// Parse `<>` or `<[@route,…:]mailbox>`; returns the mailbox (empty for `<>`). RFC 5321
/// §4.1.1.3 says source routes SHOULD be accepted and ignored, so they are stripped.
fn parse_reverse_path(path: &str) -> Result<String, CommandError> {
    let inner = path
        .strip_prefix('<')
        .and_then(|p| p.strip_suffix('>'))
        .ok_or_else(|| CommandError::new(501, (5, 5, 4), "address must be in angle brackets"))?;
    if inner.is_empty() {
        return Ok(String::new());
    }
    let mailbox = strip_route(inner)?;
    check_mailbox(mailbox)?;
    Ok(mailbox.to_string())
}

/// Parse a forward path; unlike the reverse path it may not be `<>`, and `<Postmaster>`
/// without a domain is allowed (RFC 5321 §4.1.1.3).
pub fn parse_forward_path(path: &str) -> Result<String, CommandError> {
    let m = parse_reverse_path(path)?;
    if m.is_empty() {
        return Err(CommandError::new(553, (5, 1, 3), "empty recipient address"));
    }
    Ok(m)
}

fn strip_route(inner: &str) -> Result<&str, CommandError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let colon = inner
        .find(':')
        .ok_or_else(|| CommandError::new(553, (5, 1, 3), "bad source route"))?;
    for hop in inner[..colon].split(',') {
        let domain = hop
            .strip_prefix('@')
            .ok_or_else(|| CommandError::new(553, (5, 1, 3), "bad source route"))?;
        check_domain(domain)?;
    }
    Ok(&inner[colon + 1..])
}

/// Check a mailbox `local@domain` (RFC 5321 §4.1.2, with RFC 6531 UTF-8): a dot-string or
/// quoted-string local part, and a domain or address literal. `postmaster` alone is allowed.
pub fn check_mailbox(mailbox: &str) -> Result<(), CommandError> {
    let bad = |why: &str| {
        Err(CommandError::new(
            553,
            (5, 1, 3),
            format!("bad address: {why}"),
        ))
    };
    if mailbox.len() > 256 {
        return bad("too long");
    }
    let (local, domain) = split_mailbox(mailbox);
    if local.starts_with('"') {
        if local.len() < 2 || !local.ends_with('"') {
            return bad("unterminated quoted local part");
        }
        let inner = &local[1..local.len() - 1];
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                // RFC 5321 §4.1.2: quoted-pairSMTP is a backslash and a printable (%d32-126),
                // so an escaped control character is as bad as a bare one.
                if c.is_control() {
                    return bad("control character in quoted local part");
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || c.is_control() {
                return bad("bad character in quoted local part");
            }
        }
        if escaped {
            return bad("unterminated quoted local part");
        }
    } else {
        if local.is_empty() {
            return bad("empty local part");
        }
        if local
            .split('.')
            .any(|atom| atom.is_empty() || !atom.chars().all(crate::message::address::is_atext))
        {
            return bad("bad local part");
        }
    }
    match domain {
        Some(d) => check_domain(d),
        None if local.eq_ignore_ascii_case("postmaster") => Ok(()),
        None => bad("no domain"),
    }
}

/// Split a mailbox at the `@` that is not inside the quoted local part.
pub fn split_mailbox(mailbox: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    let mut at = None;
    for (i, c) in mailbox.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '@' if !quoted => at = Some(i),
            _ => {}
        }
    }
    match at {
        Some(i) => (&mailbox[..i], Some(&mailbox[i + 1..])),
        None => (mailbox, None),
    }
}

/// A domain or address literal, as mcompose checks them ([`crate::message::address::check_domain`]),
/// refused with the reply a server gives.
fn check_domain(d: &str) -> Result<(), CommandError> {
    crate::message::address::check_domain(d)
        .map_err(|why| CommandError::new(553, (5, 1, 3), format!("bad domain: {why}")))
}

/// Parse the ESMTP parameters after a path (RFC 5321 §4.1.2 Mail-parameters).
fn parse_params(s: &str) -> Result<Vec<Param>, CommandError> {
    let mut out = Vec::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (k, v) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let key_ok = k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        // esmtp-value: %d33-60 / %d62-126, and UTF-8 under SMTPUTF8 (RFC 6531 §3.3).
        let val_ok = v.is_none_or(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| (c > ' ' && c != '=' && c != '\x7f') || !c.is_ascii())
        });
        if !key_ok || !val_ok {
            return Err(CommandError::new(
                501,
                (5, 5, 4),
                format!("bad parameter {word:?}"),
            ));
        }
        out.push(Param {
            keyword: k.to_ascii_uppercase(),
            value: v.map(str::to_string),
        });
    }
    Ok(out)
}

/// xtext lives with the envelope values it encodes (ENVID, ORCPT), below both the client
/// and the delivery reports that write it.
pub use crate::envelope::xtext;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, CommandError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn formats_client_commands() {
        let c = Command::Mail {
            from: "a@b.test".into(),
            params: vec![Param::new("SIZE", "10"), Param::flag("SMTPUTF8")],
        };
        assert_eq!(c.to_line(), "MAIL FROM:<a@b.test> SIZE=10 SMTPUTF8\r\n");
        assert_eq!(
            Command::Mail {
                from: String::new(),
                params: vec![]
            }
            .to_line(),
            "MAIL FROM:<>\r\n"
        );
        let a = Command::Auth {
            mechanism: "PLAIN".into(),
            initial: Some("c2VjcmV0".into()),
        };
        assert_eq!(a.summary(), "AUTH PLAIN");
    }

    #[test]
    fn parses_paths_routes_quotes_and_null() {
        assert_eq!(
            p("MAIL FROM:<>\r\n").unwrap(),
            Command::Mail {
                from: String::new(),
                params: vec![]
            }
        );
        assert_eq!(
            p("mail from: <@r1.test,@r2.test:u@d.test> size=5 BODY=8BITMIME").unwrap(),
            Command::Mail {
                from: "u@d.test".into(),
                params: vec![Param::new("SIZE", "5"), Param::new("BODY", "8BITMIME")],
            }
        );
        assert_eq!(
            p("RCPT TO:<\"a b>c\"@d.test> NOTIFY=NEVER").unwrap(),
            Command::Rcpt {
                to: "\"a b>c\"@d.test".into(),
                params: vec![Param::new("NOTIFY", "NEVER")]
            }
        );
        assert_eq!(
            p("RCPT TO:<Postmaster>").unwrap(),
            Command::Rcpt {
                to: "Postmaster".into(),
                params: vec![]
            }
        );
        assert_eq!(
            p("RCPT TO:<u@[127.0.0.1]>").unwrap(),
            Command::Rcpt {
                to: "u@[127.0.0.1]".into(),
                params: vec![]
            }
        );
        assert_eq!(
            p("RCPT TO:<üser@dömain.test>").unwrap(),
            Command::Rcpt {
                to: "üser@dömain.test".into(),
                params: vec![]
            }
        );
    }

    #[test]
    fn refuses_bad_commands_with_the_right_code() {
        for (line, code) in [
            ("RCPT TO:<>", 553),
            ("RCPT TO:x@y", 501),
            ("RCPT TO:<a@b>x", 501),
            ("RCPT TO:<a..b@c>", 553),
            ("RCPT TO:<a@-b>", 553),
            ("RCPT TO:<user>", 553),
            ("RCPT TO:<a@b", 501),
            ("MAIL FROM:<a@b> SIZE=", 501),
            ("MAIL FROM:<a@b> =x", 501),
            ("DATA now", 501),
            ("EHLO", 501),
            ("XYZZY", 500),
            ("MAIL TO:<a@b>", 501),
            ("BDAT x", 501),
            ("RCPT TO:<\"a\\\u{1}b\"@c.test>", 553),
            ("RCPT TO:<\"a\u{1}b\"@c.test>", 553),
        ] {
            let e = p(line).unwrap_err();
            assert_eq!(e.code, code, "{line}: {e}");
        }
        assert_eq!(Command::parse(b"NOOP\0\r\n").unwrap_err().code, 500);
        assert_eq!(Command::parse(&[b'N'; 600]).unwrap_err().code, 500);
        assert_eq!(Command::parse(b"\xff\xfe").unwrap_err().code, 500);
        assert_eq!(p("MAIL FROM\u{e9}x").unwrap_err().code, 501);
        assert_eq!(p("RCPT T\u{20ac}").unwrap_err().code, 501);
    }

    #[test]
    fn parses_the_rest() {
        assert_eq!(
            p("ehlo client.test").unwrap(),
            Command::Ehlo("client.test".into())
        );
        assert_eq!(
            p("BDAT 100 LAST").unwrap(),
            Command::Bdat {
                size: 100,
                last: true
            }
        );
        assert_eq!(
            p("AUTH plain AGFsaWNlAHNlY3JldA==").unwrap(),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGFsaWNlAHNlY3JldA==".into())
            }
        );
        assert_eq!(p("starttls").unwrap(), Command::StartTls);
        assert_eq!(p("VRFY bob").unwrap(), Command::Vrfy("bob".into()));
    }

    #[test]
    fn never_panics_on_any_short_input() {
        let alphabet: &[&str] = &[
            "<",
            ">",
            "@",
            ":",
            "\"",
            " ",
            "\\",
            ".",
            ",",
            "=",
            "[",
            "]",
            "a",
            "Z",
            "0",
            "\r",
            "\n",
            "\u{e9}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{0}",
            "-",
            "+",
        ];
        let prefixes = [
            "",
            "MAIL FROM",
            "MAIL FROM:",
            "RCPT TO",
            "RCPT TO:<",
            "AUTH ",
            "BDAT ",
            "EHLO ",
            "VRFY ",
        ];
        let mut x: u32 = 0x9e37_79b9;
        for i in 0u32..40_000 {
            let mut line = prefixes[i as usize % prefixes.len()].to_string();
            for _ in 0..(i % 29) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                line.push_str(alphabet[(x as usize) % alphabet.len()]);
            }
            let _ = Command::parse(line.as_bytes());
            let _ = check_mailbox(&line);
            let _ = parse_params(&line);
            let _ = crate::smtp::Reply::parse(line.as_bytes());
        }
    }

    #[test]
    fn xtext_encodes_specials() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }
}
