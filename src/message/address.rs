//! RFC 5322 addresses: parse, validate and format mailboxes, groups and address lists.
//!
//! Every tool that reads or writes an address goes through here, so there is one opinion on
//! what an address is: mcompose validates what a user typed, msubmit extracts recipients from
//! To/Cc/Bcc, mreceive checks envelope addresses. The grammar is RFC 5322 §3.4 (mailbox,
//! name-addr, angle-addr, group, address-list) with the obsolete forms a human or an old
//! mailer still produces (§4.4: dots in display names, empty list elements, a `(comment)`
//! holding the name), and RFC 6532 §3.2: non-ASCII UTF-8 is allowed wherever atext is.
//!
//! Parsing is total: any input gives a value or an [`Error`] with [`Code::DataErr`] that
//! names the offending address. Formatting gives the pieces of a header value between which
//! a folder may break the line (see [`crate::message::fold`]); display names that need it are quoted
//! (§3.2.4) or become RFC 2047 encoded-words.
//!
//! The API in one breath: [`parse_list`] reads a To/Cc/Bcc/From value into [`Address`]es,
//! [`mailboxes`] flattens the groups (the recipients msubmit -t sends to), [`parse_mailbox`]
//! wants exactly one, [`parse_addr_spec`] reads an envelope address, [`parse_list_lenient`]
//! reads what someone else's message holds as mutt does; [`list_words`] and
//! [`Mailbox::words`] give the header form for [`crate::message::fold::field`], and
//! [`Mailbox::to_utf8`] the form a person reads and types.

pub use super::header::{is_atext, is_dot_atom, quote};
use crate::exit::{Code, Error, Result};
use crate::message::fold;
use std::fmt;

/// An addr-spec: `local-part@domain`, stored unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSpec {
    /// The local part without the quotes a quoted-string form would need.
    pub local: String,
    /// The domain: a dot-atom (ASCII or RFC 6532 UTF-8) or a `[domain-literal]`.
    pub domain: String,
}

/// A mailbox: an optional display name and an addr-spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, decoded (no quotes, no encoded-words).
    pub name: Option<String>,
    /// The address.
    pub addr: AddrSpec,
}

/// One element of an address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A single mailbox.
    Mailbox(Mailbox),
    /// `name: member, member;` (RFC 5322 §3.4); `undisclosed-recipients:;` has no members.
    Group(String, Vec<Mailbox>),
}

impl Address {
    /// The mailboxes this element stands for (a group's members).
    pub fn mailboxes(&self) -> Vec<&Mailbox> {
        match self {
            Address::Mailbox(m) => vec![m],
            Address::Group(_, members) => members.iter().collect(),
        }
    }
}

/// The mailboxes of a whole list, groups flattened.
pub fn mailboxes(list: &[Address]) -> Vec<&Mailbox> {
    list.iter().flat_map(Address::mailboxes).collect()
}

/// Parse an address list such as `"Ann B" <a@b.example>, c@d.example, team: x@y.example;`.
/// Empty elements (`a@b,,c@d`) are skipped (RFC 5322 §4.4 obs-addr-list).
pub fn parse_list(input: &str) -> Result<Vec<Address>> {
    let mut p = Parser::new(input);
    let mut out = Vec::new();
    loop {
        p.skip_cfws();
        if p.at_end() {
            return Ok(out);
        }
        if p.eat(',') {
            continue;
        }
        let start = p.pos;
        let item = p.address().map_err(|why| p.error(start, why))?;
        out.push(item);
        p.skip_cfws();
        if !p.at_end() && !p.eat(',') {
            return Err(p.error(start, "expected a comma between addresses"));
        }
    }
}

/// Every mailbox of a header value read leniently, as mutt reads a message it did not write:
/// a missing comma between two elements is taken as one (mutt replies to both of
/// `Bob <bob@x.example> Bobby <bobby@y.example>`), and an element that does not parse is
/// skipped up to the next comma. Only for reading someone else's message (the original of a
/// reply), never for what a user typed, which [`parse_list`] checks.
pub fn parse_list_lenient(input: &str) -> Vec<Mailbox> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        // A parser per element: nothing a broken element left behind (a comment taken for
        // a display name) reaches the next.
        let mut p = Parser::new(rest);
        p.skip_cfws();
        if p.at_end() {
            return out;
        }
        let start = p.pos;
        if !p.eat(',') {
            match p.address() {
                Ok(a) if p.pos > start => out.extend(a.mailboxes().into_iter().cloned()),
                _ => match rest[start..].find(',') {
                    Some(i) => p.pos = start + i + 1,
                    None => return out,
                },
            }
        }
        rest = &rest[p.pos..];
    }
}

/// Parse exactly one mailbox (a `From:` value, a configured sender, `$EMAIL`).
pub fn parse_mailbox(input: &str) -> Result<Mailbox> {
    let list = parse_list(input)?;
    match list.as_slice() {
        [Address::Mailbox(m)] => Ok(m.clone()),
        _ => Err(Error::new(
            Code::DataErr,
            format!("bad address {:?}", input.trim()),
            "expected exactly one mailbox",
        )),
    }
}

/// Parse and validate a bare addr-spec (`user@example.org`, `<user@example.org>`), as an
/// envelope address is given. The null reverse-path `<>` (RFC 5321 §4.5.5) is not an
/// addr-spec: callers that accept it check for it first.
pub fn parse_addr_spec(input: &str) -> Result<AddrSpec> {
    let trimmed = input.trim();
    let inner = trimmed
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(trimmed);
    let mut p = Parser::new(inner);
    let spec = p.addr_spec().map_err(|why| p.error(0, why))?;
    p.skip_cfws();
    if !p.at_end() {
        return Err(p.error(0, "unexpected text after the address"));
    }
    Ok(spec)
}

impl AddrSpec {
    /// The local part as it must be written: a dot-atom as is, anything else quoted.
    fn local_part(&self) -> String {
        if is_dot_atom(&self.local) {
            self.local.clone()
        } else {
            quote(&self.local)
        }
    }

    /// True when the address needs RFC 6532 (SMTPUTF8) to travel: non-ASCII anywhere.
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || !self.domain.is_ascii()
    }
}

impl fmt::Display for AddrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part(), self.domain)
    }
}

impl Mailbox {
    /// The mailbox as header words: the display name (quoted or encoded as needed) and the
    /// `<addr-spec>`, or the bare addr-spec when there is no name. A folder may break the
    /// line between any two words.
    pub fn words(&self) -> Vec<String> {
        match self.name.as_deref().filter(|n| !n.trim().is_empty()) {
            None => vec![self.addr.to_string()],
            Some(name) => {
                let mut w = fold::phrase(name);
                w.push(format!("<{}>", self.addr));
                w
            }
        }
    }
}

impl Mailbox {
    /// The mailbox as a person would type it, for drafts and messages to users: the display
    /// name in plain UTF-8 (RFC 6532 §3.2 lets non-ASCII stand in atoms), quoted only when
    /// it holds specials. It parses back to the same mailbox; [`Mailbox::words`] gives the
    /// header form.
    pub fn to_utf8(&self) -> String {
        match self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            None => self.addr.to_string(),
            Some(n) => {
                let words: Vec<&str> = n.split_whitespace().collect();
                let plain = !n.contains("=?") && words.iter().all(|w| w.chars().all(is_atext));
                // Line ends and runs of blanks become one space, as [`Mailbox::words`] writes
                // them: a quoted-string drops a CR or LF (unfolding, RFC 5322 §3.2.2), which
                // would join the words around it. Other control characters (a comment taken
                // as the name may hold them: obs-ctext, §4.1) are no qtext: they go as
                // encoded-words (RFC 2047), which read back to the same name.
                let joined = words.join(" ");
                let name = if plain {
                    joined
                } else if joined.chars().any(char::is_control) {
                    fold::phrase(&joined).join(" ")
                } else {
                    quote(&joined)
                };
                format!("{name} <{}>", self.addr)
            }
        }
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words().join(" "))
    }
}

/// An address list as header words, commas included: the value of a To:, Cc: or From:.
pub fn list_words(list: &[Address]) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let mut w = match a {
            Address::Mailbox(m) => m.words(),
            Address::Group(name, members) => {
                let mut w = fold::phrase(name);
                match w.last_mut() {
                    // RFC 2047 §5 (3): an encoded-word in a phrase is set off from a special
                    // by whitespace.
                    Some(last) if last.ends_with("?=") => w.push(":".into()),
                    Some(last) => last.push(':'),
                    None => w.push(":".into()),
                }
                for (j, m) in members.iter().enumerate() {
                    let mut mw = m.words();
                    if j + 1 < members.len()
                        && let Some(last) = mw.last_mut()
                    {
                        last.push(',');
                    }
                    w.extend(mw);
                }
                if let Some(last) = w.last_mut() {
                    last.push(';');
                }
                w
            }
        };
        if i + 1 < list.len()
            && let Some(last) = w.last_mut()
        {
            last.push(',');
        }
        words.extend(w);
    }
    words
}

/// Check a domain: dot-atom labels of letters, digits and hyphens (or non-ASCII letters, an
/// IDN U-label, RFC 6532), no label empty or longer than 63, or starting or ending with a
/// hyphen (RFC 1035 §2.3.1, RFC 5890); at most 253 octets; or an address literal (RFC 5321
/// §4.1.3).
pub fn check_domain(d: &str) -> std::result::Result<(), String> {
    if let Some(lit) = d.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let ok = match lit.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        return if ok {
            Ok(())
        } else {
            Err(format!("bad address literal {d}"))
        };
    }
    if d.is_empty() {
        return Err("the domain is empty".into());
    }
    if d.len() > 253 {
        return Err("the domain is longer than 253 octets".into());
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in domain {d:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 octets in domain {d:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "label starts or ends with a hyphen in domain {d:?}"
            ));
        }
        if let Some(c) = label.chars().find(|&c| !(c.is_alphanumeric() || c == '-')) {
            return Err(format!("{c:?} is not allowed in domain {d:?}"));
        }
    }
    Ok(())
}

/// A cursor over the input; methods return `Err(why)` and [`Parser::error`] adds the what.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// The text of the last comment skipped: an old-style `a@b (Name)` display name.
    comment: Option<String>,
}

type Why<T> = std::result::Result<T, String>;

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s,
            pos: 0,
            comment: None,
        }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// The error for the element that started at `start`: its text up to the next comma.
    fn error(&self, start: usize, why: impl fmt::Display) -> Error {
        let rest = &self.s[start.min(self.s.len())..];
        // Up to the first comma after where parsing stopped: a quoted comma before that
        // point belongs to the element.
        let reached = self.pos.saturating_sub(start).min(rest.len());
        let end = rest[reached..]
            .find(',')
            .map_or(rest.len(), |i| reached + i);
        let text = rest[..end].trim();
        let text = if text.is_empty() { self.s.trim() } else { text };
        Error::new(Code::DataErr, format!("bad address {text:?}"), why)
    }

    /// Skip whitespace and (nested) comments, remembering the last comment's text.
    fn skip_cfws(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c == ' ' || c == '\t' || c == '\r' || c == '\n' => {
                    self.bump();
                }
                Some('(') => {
                    let start = self.pos + 1;
                    // Where the comment's text ends: before its ")", or at the end of an
                    // unterminated one.
                    let mut end = self.s.len();
                    let mut depth = 0usize;
                    while let Some(c) = self.bump() {
                        match c {
                            '\\' => {
                                self.bump();
                            }
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = self.pos - 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let text = self.s.get(start..end.max(start)).unwrap_or("");
                    self.comment = Some(text.trim().to_string());
                }
                _ => return,
            }
        }
    }

    fn atom(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_atext) {
            self.bump();
        }
        self.s[start..self.pos].to_string()
    }

    /// A quoted-string's content, the opening quote already seen.
    fn quoted(&mut self) -> Why<String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err("unterminated quoted string".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err("unterminated quoted string".into()),
                },
                Some('\r' | '\n') => {}
                Some(c) if c.is_control() && c != '\t' => {
                    return Err("control character in quoted string".into());
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// local-part "@" domain (RFC 5322 §3.4.1), validated.
    fn addr_spec(&mut self) -> Why<AddrSpec> {
        self.skip_cfws();
        let local = if self.eat('"') {
            let q = self.quoted()?;
            if q.is_empty() {
                return Err("the local part is empty".into());
            }
            q
        } else {
            let mut parts = vec![self.atom()];
            while self.eat('.') {
                parts.push(self.atom());
            }
            let l = parts.join(".");
            if l.is_empty() {
                return Err(match self.peek() {
                    Some(c) => format!("unexpected {c:?}"),
                    None => "no address".into(),
                });
            }
            if parts.iter().any(String::is_empty) {
                return Err(format!("misplaced dot in local part {l:?}"));
            }
            l
        };
        self.skip_cfws();
        if !self.eat('@') {
            return Err(match self.peek() {
                None | Some(',' | ';' | '>') => "no @domain".into(),
                Some(c) => format!("unexpected {c:?} in the local part"),
            });
        }
        // RFC 5321 §4.5.3.1.1: 64 octets is the most a server must accept.
        if local.len() > 64 {
            return Err("the local part is longer than 64 octets".into());
        }
        self.skip_cfws();
        let domain = if self.peek() == Some('[') {
            let start = self.pos;
            while let Some(c) = self.bump() {
                if c == ']' {
                    break;
                }
            }
            self.s[start..self.pos].to_string()
        } else {
            let mut parts = vec![self.atom()];
            while self.eat('.') {
                parts.push(self.atom());
            }
            parts.join(".")
        };
        check_domain(&domain)?;
        Ok(AddrSpec { local, domain })
    }

    /// A display phrase (§3.2.5, with obs-phrase dots): atoms and quoted strings, joined by
    /// single spaces; encoded-words in it are decoded (RFC 2047 §5 (3)).
    fn phrase(&mut self) -> Why<String> {
        // (text, quoted): encoded-words are decoded in runs of atoms only, never inside a
        // quoted-string (RFC 2047 §5 (3)), and a run is decoded as a whole so that the space
        // between two adjacent encoded-words disappears (§6.2).
        let mut words: Vec<(String, bool)> = Vec::new();
        loop {
            self.skip_cfws();
            match self.peek() {
                Some('"') => {
                    self.bump();
                    words.push((self.quoted()?, true));
                }
                Some('.') => {
                    self.bump();
                    match words.last_mut() {
                        Some((w, _)) => w.push('.'),
                        None => words.push((".".into(), false)),
                    }
                }
                Some(c) if is_atext(c) => {
                    let a = self.atom();
                    words.push((a, false));
                }
                _ => break,
            }
        }
        let mut out: Vec<String> = Vec::new();
        let mut run: Vec<&str> = Vec::new();
        for (w, quoted) in &words {
            if *quoted {
                if !run.is_empty() {
                    out.push(fold::decode_words(&run.join(" ")));
                    run.clear();
                }
                out.push(w.clone());
            } else {
                run.push(w);
            }
        }
        if !run.is_empty() {
            out.push(fold::decode_words(&run.join(" ")));
        }
        Ok(out.join(" "))
    }

    /// `<addr-spec>`, the `<` already seen.
    fn angle_addr(&mut self) -> Why<AddrSpec> {
        let spec = self.addr_spec()?;
        self.skip_cfws();
        if !self.eat('>') {
            return Err("missing '>'".into());
        }
        Ok(spec)
    }

    fn mailbox(&mut self) -> Why<Mailbox> {
        let start = self.pos;
        self.comment = None;
        let spec_error = match self.addr_spec() {
            Ok(addr) => {
                let comment = self.comment.take();
                self.skip_cfws();
                let name = self.comment.take().or(comment).filter(|c| !c.is_empty());
                if matches!(self.peek(), None | Some(',' | ';')) {
                    return Ok(Mailbox { name, addr });
                }
                format!(
                    "unexpected {:?} after the address",
                    self.peek().unwrap_or(' ')
                )
            }
            Err(why) => why,
        };
        self.pos = start;
        let name = self.phrase()?;
        if !self.eat('<') {
            // Not a name-addr either: the addr-spec's complaint is the useful one.
            return Err(spec_error);
        }
        let addr = self.angle_addr()?;
        self.skip_cfws();
        Ok(Mailbox {
            name: Some(name).filter(|n| !n.is_empty()),
            addr,
        })
    }

    fn address(&mut self) -> Why<Address> {
        let start = self.pos;
        let name = self.phrase()?;
        if !name.is_empty() && self.eat(':') {
            let mut members = Vec::new();
            loop {
                self.skip_cfws();
                if self.eat(';') {
                    return Ok(Address::Group(name, members));
                }
                if self.at_end() {
                    return Err("group without the closing ';'".into());
                }
                if self.eat(',') {
                    continue;
                }
                members.push(self.mailbox()?);
            }
        }
        self.pos = start;
        self.mailbox().map(Address::Mailbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lenient_read_takes_every_mailbox_that_parses() {
        let addrs = |s: &str| {
            parse_list_lenient(s)
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.addr.to_string()))
                .collect::<Vec<_>>()
        };
        let pair = |n: &str, a: &str| (n.to_string(), a.to_string());
        // A missing comma, as mutt reads it.
        assert_eq!(
            addrs("Bob <bob@extern> Bobby <bobby@extern>"),
            [pair("Bob", "bob@extern"), pair("Bobby", "bobby@extern")]
        );
        // What does not parse is skipped up to the next comma.
        assert_eq!(
            addrs("<<broken, \"Doe, J\" <j@d.example>, a@ (x, team: t@e.example;, @"),
            [pair("Doe, J", "j@d.example"), pair("", "t@e.example")]
        );
        assert_eq!(addrs("Bob (no address)"), []);
        assert_eq!(addrs(""), []);
        // What parses strictly reads the same.
        let strict = "\"Ann B\" <a@b.example>, c@d.example (C)";
        let want: Vec<Mailbox> = mailboxes(&parse_list(strict).unwrap())
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(parse_list_lenient(strict), want);
        for hostile in ["\"", "<", ",,,", "(", "\\", "a@b <", "é <é@é> ,ü", ":;"] {
            let _ = parse_list_lenient(hostile);
        }
    }

    fn one(s: &str) -> Mailbox {
        parse_mailbox(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_common_forms() {
        let list = parse_list(
            r#""Ann B" <a@b.example>, c@d.example, team: x@y.example, Zed <z@y.example>;"#,
        )
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[0],
            Address::Mailbox(Mailbox {
                name: Some("Ann B".into()),
                addr: AddrSpec {
                    local: "a".into(),
                    domain: "b.example".into()
                }
            })
        );
        let Address::Group(g, members) = &list[2] else {
            panic!("not a group: {list:?}")
        };
        assert_eq!(g, "team");
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].name.as_deref(), Some("Zed"));
        assert_eq!(mailboxes(&list).len(), 4);
        assert_eq!(parse_list("undisclosed-recipients:;").unwrap().len(), 1);
        assert!(parse_list(" , ").unwrap().is_empty());
    }

    #[test]
    fn obsolete_and_odd_but_valid_forms() {
        assert_eq!(
            one("Dr. Ann B. <a@b.example>").name.as_deref(),
            Some("Dr. Ann B.")
        );
        assert_eq!(one("a@b.example (Ann B)").name.as_deref(), Some("Ann B"));
        assert_eq!(
            one(r#""a,b\"c" <x@y.example>"#).name.as_deref(),
            Some("a,b\"c")
        );
        assert_eq!(one(r#""john doe"@example.org"#).addr.local, "john doe");
        assert_eq!(
            one("=?utf-8?q?Ren=C3=A9?= <r@x.example>").name.as_deref(),
            Some("René")
        );
        assert_eq!(one("jörg@bücher.example").addr.domain, "bücher.example");
        assert_eq!(one("u@[192.0.2.1]").addr.domain, "[192.0.2.1]");
        assert_eq!(
            one("u@[IPv6:2001:db8::1]").addr.domain,
            "[IPv6:2001:db8::1]"
        );
    }

    #[test]
    fn rejects_bad_addresses_naming_them() {
        for bad in [
            "a@",
            "@b.example",
            "plainname",
            "a@b..c",
            "a..b@c.example",
            ".a@c.example",
            "a@-b.example",
            "a@b_c.example",
            "<a@b.example",
            "a@[300.1.1.1]",
            "a b@c.example",
            "\"open@x.example",
            "x: a@b.example",
            "a@b.example c@d.example",
        ] {
            let e = parse_list(bad).expect_err(bad);
            assert_eq!(e.code(), Code::DataErr);
            assert!(e.to_string().starts_with("bad address"), "{bad}: {e}");
        }
        let e = parse_list("ok@x.example, bad@").unwrap_err();
        assert!(e.to_string().contains("\"bad@\""), "{e}");
        let long = format!("{}@x.example", "a".repeat(65));
        assert!(parse_addr_spec(&long).is_err());
        assert!(parse_addr_spec("<a@b.example>").is_ok());
        assert!(parse_addr_spec("a@b.example\r\nBcc: x@y").is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        let pieces = [
            "(", ")", "\\", "\"", "<", ">", "@", ",", ";", ":", ".", "[", "]", " ", "é", "日", "a",
            "=?", "?=", "\r\n", "\t", "\u{0}",
        ];
        // Every string of up to four pieces, then every prefix of some longer ones.
        let mut inputs: Vec<String> = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &inputs {
                for p in pieces {
                    next.push(format!("{s}{p}"));
                }
            }
            inputs.extend(next.into_iter().filter(|s| s.chars().count() <= 4));
            inputs.dedup();
        }
        for long in [
            "(é (日) \\é",
            "\"é\\\"日 <a@[é",
            "g: (x) a@b, \"é\" <c@d>; e@(f",
        ] {
            for (i, _) in long.char_indices() {
                inputs.push(long[..i].to_string());
            }
        }
        for s in &inputs {
            let _ = parse_list(s);
            let _ = parse_addr_spec(s);
            if let Ok(list) = parse_list(s) {
                let _ = list_words(&list);
            }
        }
    }

    #[test]
    fn formats_names_quoted_or_encoded() {
        assert_eq!(one("Ann <a@b.example>").to_string(), "Ann <a@b.example>");
        assert_eq!(one("a@b.example").to_string(), "a@b.example");
        assert_eq!(
            one("\"Doe, John\" <j@d.example>").to_string(),
            "\"Doe, John\" <j@d.example>"
        );
        assert_eq!(
            one("Dr. A <a@b.example>").to_string(),
            "\"Dr. A\" <a@b.example>"
        );
        assert_eq!(
            one("\"John Doe\"@example.org").to_string(),
            "\"John Doe\"@example.org"
        );
        let encoded = one("Zoë <z@b.example>").to_string();
        assert!(encoded.starts_with("=?utf-8?"), "{encoded}");
        let list = parse_list("g: a@b.example, c@d.example;, e@f.example").unwrap();
        assert_eq!(
            list_words(&list).join(" "),
            "g: a@b.example, c@d.example;, e@f.example"
        );
        assert_eq!(list_words(&parse_list("u:;").unwrap()).join(" "), "u:;");
        let g = list_words(&parse_list("Grüppe: a@b.example;").unwrap()).join(" ");
        assert_eq!(g, "=?utf-8?q?Gr=C3=BCppe?= : a@b.example;");
    }

    #[test]
    fn utf8_form_is_plain_and_parses_back() {
        assert_eq!(
            one("=?utf-8?q?Bj=C3=B6rn?= <b@x.example>").to_utf8(),
            "Björn <b@x.example>"
        );
        assert_eq!(
            one("\"Ærø, Åsa\" <a@x.example>").to_utf8(),
            "\"Ærø, Åsa\" <a@x.example>"
        );
        assert_eq!(one("a@x.example").to_utf8(), "a@x.example");
        for s in [
            "Björn <b@x.example>",
            "\"a=?b\" <c@d.example>",
            "\"J. R.\" <j@r.example>",
        ] {
            let m = one(s);
            assert_eq!(one(&m.to_utf8()), m, "{s}");
        }
    }

    #[test]
    fn formatted_output_parses_back_to_the_same() {
        for s in [
            "\"a\\\"b\" <x@y.example>",
            "Zoë Ünïcödé Wörth <z@b.example>",
            "Þórunn Ægisdóttir-Öðinsdóttir von und zu Überlangname-Straße <t@b.example>",
            "\"=?not encoded?=\" <q@r.example>",
            "\"x\\\\y\"@weird.example",
        ] {
            let m = one(s);
            let back = one(&m.to_string());
            assert_eq!(m, back, "{s} -> {m}");
        }
    }
}
