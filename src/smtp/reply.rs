//! SMTP replies: parsing what a server says (client side) and formatting what we say (server
//! side), with RFC 3463 enhanced status codes.
//!
//! A reply is one or more lines `NNN-text` ending with `NNN text` (RFC 5321 §4.2.1). Servers
//! are hostile input to a client, so the parser is incremental (one line at a time, the caller
//! owns the socket) and bounded: [`MAX_LINE`] octets per line and [`MAX_LINES`] lines per reply.

use std::fmt;

/// The longest reply line we accept, CRLF included. RFC 5321 §4.5.3.1.5 says 512; real
/// servers exceed it slightly (long EHLO keywords, verbose 5xx texts), so allow some slack.
pub const MAX_LINE: usize = 2048;

/// The most lines one reply may have (an EHLO reply has one per extension).
pub const MAX_LINES: usize = 128;

/// An RFC 3463 enhanced status code, `class.subject.detail`, e.g. `5.1.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// The subject (1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol, 6 content,
    /// 7 security).
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// A code from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Parse `c.s.d` at the start of `text`; returns the code and the rest after one space.
    /// RFC 3463 §2: class is 2, 4 or 5; subject and detail are 1–3 digits.
    fn parse_prefix(text: &str) -> Option<(EnhancedCode, &str)> {
        let end = text.find(' ').unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let digits = |s: &str, max: usize| {
            (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u16>().ok())
                .flatten()
        };
        let class = digits(class, 1)? as u8;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        let code = EnhancedCode::new(class, digits(subject, 3)?, digits(detail, 3)?);
        let rest = text[end..].strip_prefix(' ').unwrap_or(&text[end..]);
        Some((code, rest))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2.2).
    pub code: u16,
    /// The enhanced status code, when the server sent one (RFC 2034, RFC 3463).
    pub enhanced: Option<EnhancedCode>,
    /// The text lines, without code, separator and enhanced code.
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply with one text line (an enhanced code is added when formatted).
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// The first digit: 2 completion, 3 intermediate, 4 transient, 5 permanent.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// 2yz: the command was accepted.
    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// 3yz: go on (354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        self.class() == 3
    }

    /// 4yz: failed this time, may work later.
    pub fn is_transient(&self) -> bool {
        self.class() == 4
    }

    /// 5yz: failed, will fail again.
    pub fn is_permanent(&self) -> bool {
        self.class() == 5
    }

    /// The text lines joined by a space.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The reply as a server sends it: every line with the code, `-` on all but the last, and
    /// the enhanced code repeated on each line (RFC 2034 §4).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let lines: &[String] = if self.lines.is_empty() {
            &[]
        } else {
            &self.lines
        };
        let n = lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let text = lines.get(i).map(String::as_str).unwrap_or("");
            // Line ends inside a text line would end the reply early: never send them.
            let text: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            match self.enhanced {
                Some(e) => {
                    out.extend_from_slice(format!("{}{sep}{e} {text}\r\n", self.code).as_bytes())
                }
                None => out.extend_from_slice(format!("{}{sep}{text}\r\n", self.code).as_bytes()),
            }
        }
        out
    }

    /// Parse a complete reply from bytes (tests, fixtures); trailing bytes are an error.
    pub fn parse(bytes: &[u8]) -> Result<Reply, ReplyError> {
        let mut p = ReplyParser::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let (line, tail) = rest.split_at(end);
            rest = tail;
            if let Some(r) = p.feed(line)? {
                return if rest.is_empty() {
                    Ok(r)
                } else {
                    Err(ReplyError("data after the end of the reply".into()))
                };
            }
        }
        Err(ReplyError("incomplete reply".into()))
    }
}

/// `550 5.1.1 text` on one line: what diagnostics show.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            // Server text is untrusted: show control characters escaped, never raw.
            write!(f, " {}", text.escape_debug())?;
        }
        Ok(())
    }
}

/// A malformed reply: the server is not speaking SMTP (or not to us).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyError(pub String);

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds a [`Reply`] from lines as they arrive.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
    enhanced: Option<EnhancedCode>,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Feed one line (with or without its CRLF or LF). Returns the reply when this line was
    /// its last; the parser is then ready for the next reply.
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        if line.len() > MAX_LINE {
            return Err(ReplyError(format!(
                "reply line longer than {MAX_LINE} octets"
            )));
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let bad = || {
            ReplyError(format!(
                "malformed reply line {:?}",
                String::from_utf8_lossy(line)
            ))
        };
        // RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39.
        if line.len() < 3
            || !(b'2'..=b'5').contains(&line[0])
            || !line[1].is_ascii_digit()
            || !line[2].is_ascii_digit()
        {
            return Err(bad());
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(bad()),
        };
        if self.code.is_some_and(|c| c != code) {
            return Err(ReplyError(format!(
                "reply code changed within a multi-line reply ({} then {code})",
                self.code.unwrap_or(0)
            )));
        }
        if self.lines.len() >= MAX_LINES {
            return Err(ReplyError(format!("reply longer than {MAX_LINES} lines")));
        }
        // RFC 5321 §4.2: textstring has no CR. A bare one is taken as a space, as the line
        // would be written again (`to_bytes` never sends one): otherwise `2.1.0<CR> ok`
        // gained an enhanced code when written out (found by fuzz/ smtp_reply).
        let text = String::from_utf8_lossy(line.get(4..).unwrap_or(&[])).replace('\r', " ");
        // RFC 2034 §4: the enhanced code, when used, starts every line; its class must agree
        // with the reply code's first digit.
        let text = match EnhancedCode::parse_prefix(&text) {
            Some((e, rest)) if u16::from(e.class) == code / 100 => {
                if self.enhanced.is_none() {
                    self.enhanced = Some(e);
                }
                rest.to_string()
            }
            _ => text,
        };
        self.code = Some(code);
        self.lines.push(text);
        if !last {
            return Ok(None);
        }
        let reply = Reply {
            code,
            enhanced: self.enhanced.take(),
            lines: std::mem::take(&mut self.lines),
        };
        self.code = None;
        Ok(Some(reply))
    }

    /// True when part of a reply has been read.
    pub fn in_progress(&self) -> bool {
        self.code.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_line_with_enhanced_codes() {
        let r = Reply::parse(b"250-mx.test hello\r\n250-SIZE 100\r\n250 8BITMIME\r\n").unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["mx.test hello", "SIZE 100", "8BITMIME"]);
        let r = Reply::parse(b"550 5.1.1 <x@y>: Recipient address rejected\r\n").unwrap();
        assert_eq!(r.enhanced, Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(r.text(), "<x@y>: Recipient address rejected");
        assert_eq!(r.to_string(), "550 5.1.1 <x@y>: Recipient address rejected");
        // A class that disagrees with the code is text, not an enhanced code.
        let r = Reply::parse(b"250 5.1.1 odd\n").unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(Reply::parse(b"354\r\n").unwrap().code, 354);
    }

    #[test]
    fn refuses_garbage_and_unbounded_replies() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"250x\r\n",
            b"650 no\r\n",
            b"250-a\r\n251 b\r\n",
            b"250-a\r\n",
        ] {
            assert!(
                Reply::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE));
        assert!(Reply::parse(long.as_bytes()).is_err());
        let many = "250-x\r\n".repeat(MAX_LINES) + "250 x\r\n";
        assert!(Reply::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn formats_for_a_server_and_round_trips() {
        let r = Reply {
            code: 250,
            enhanced: Some(EnhancedCode::new(2, 0, 0)),
            lines: vec!["one".into(), "two\r\n999 injected".into()],
        };
        let b = r.to_bytes();
        assert_eq!(b, b"250-2.0.0 one\r\n250 2.0.0 two999 injected\r\n");
        assert_eq!(Reply::parse(&b).unwrap().lines[0], "one");
        assert_eq!(Reply::new(221, None, "").to_bytes(), b"221 \r\n");
    }

    #[test]
    fn enhanced_code_prefix_rules() {
        assert!(EnhancedCode::parse_prefix("4.7.0 x").is_some());
        assert!(EnhancedCode::parse_prefix("3.1.1 x").is_none());
        assert!(EnhancedCode::parse_prefix("5.1234.1 x").is_none());
        assert!(EnhancedCode::parse_prefix("5.1 x").is_none());
        assert_eq!(EnhancedCode::parse_prefix("5.7.8").unwrap().1, "");
    }
}
