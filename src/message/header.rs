//! Reading the header block of a message, tolerantly.
//!
//! A delivery agent must decide on headers (loops, rules, dedupe) for whatever bytes it is
//! handed, malformed or not, and must never refuse mail because a header is odd. So the block
//! is split into fields here with a total, allocation-light scanner (a field is a line with a
//! colon plus its continuation lines; anything else is skipped), and values are decoded (RFC
//! 2047 encoded-words, unfolding) by mailparse, which is good at that.
//!
//! Every tool reads a header line by the rules here and nowhere else, as qmail parses RFC 822
//! in one place: what a field name is ([`is_field_name`], [`field_name`]), and when content
//! would fold into a field written above it ([`would_fold`]).

/// Offset where the body starts: just after the first empty line (LF or CRLF). `None` when
/// `msg` holds no empty line, i.e. everything seen so far is header.
pub fn body_offset(msg: &[u8]) -> Option<usize> {
    let mut start = 0;
    while start < msg.len() {
        let end = memchr(b'\n', &msg[start..]).map(|i| start + i);
        let line = &msg[start..end.unwrap_or(msg.len())];
        if line.is_empty() || line == b"\r" {
            return Some(end.map_or(msg.len(), |e| e + 1));
        }
        start = end? + 1;
    }
    None
}

/// The header block of `msg`: its fields with their line ends, without the empty line.
pub fn block(msg: &[u8]) -> &[u8] {
    match body_offset(msg) {
        Some(off) => {
            let b = &msg[..off];
            b.strip_suffix(b"\r\n")
                .or_else(|| b.strip_suffix(b"\n"))
                .unwrap_or(b)
        }
        None => msg,
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// One header field: its name and its raw value (folded, undecoded, without the final line end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name as written.
    pub name: &'a [u8],
    /// The raw value after the colon, continuation lines included.
    pub raw: &'a [u8],
}

impl Field<'_> {
    /// True when the name matches `name`, ignoring ASCII case (RFC 5322 §1.2.2).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value unfolded, trimmed and decoded (RFC 2047), lossy for non-UTF-8 bytes.
    pub fn value(&self) -> String {
        let mut line = Vec::with_capacity(self.name.len() + self.raw.len() + 2);
        line.extend_from_slice(self.name);
        line.push(b':');
        line.extend_from_slice(self.raw);
        line.push(b'\n');
        match mailparse::parse_header(&line) {
            Ok((h, _)) => h.get_value().trim().to_string(),
            Err(_) => unfold(self.raw),
        }
    }

    /// The value unfolded and trimmed, bytes as they are (lossy UTF-8), no decoding.
    pub fn value_raw(&self) -> String {
        unfold(self.raw)
    }
}

fn unfold(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    for part in s.split('\n') {
        out.push_str(part.strip_suffix('\r').unwrap_or(part));
    }
    out.trim().to_string()
}

/// RFC 5322 §3.6.8 field-name: one or more printable ASCII characters but colon (ftext,
/// %d33-57 / %d59-126). The one rule for every tool: what reads a header (the scanner below,
/// msubmit, the server's loop count) and what checks a name given on a command line or in a
/// rule.
pub fn is_field_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':')
}

/// The field name of a header line (its line end may be there or not), when the line starts a
/// field. RFC 5322 §4.5 (obsolete syntax) lets white space (WSP: space, tab) stand between the
/// name and the colon; Postfix's cleanup and mail readers take `Bcc :` or `Delivered-To : x`
/// as the field, so the loop checks, the rules and msubmit's Bcc removal must too.
pub fn field_name(line: &[u8]) -> Option<&[u8]> {
    name_and_colon(line).map(|(name, _)| name)
}

/// [`field_name`] and the offset of the colon that ends it.
fn name_and_colon(line: &[u8]) -> Option<(&[u8], usize)> {
    let colon = memchr(b':', line)?;
    let mut name = &line[..colon];
    while let [rest @ .., b' ' | b'\t'] = name {
        name = rest;
    }
    is_field_name(name).then_some((name, colon))
}

/// True when `content` starts with white space: written below a header field (a trace field
/// we prepend, a Received: we stamp), its first line would continue that field (RFC 5322
/// §2.2.3 folding) and so add to what we wrote ("(authenticated as …)"). Content that
/// starts so has no header section of its own; whoever prepends a field puts an empty line
/// between, so that it all stays body.
pub fn would_fold(content: &[u8]) -> bool {
    matches!(content.first(), Some(b' ' | b'\t'))
}

/// The fields of a header block, in order. Lines that are neither a field nor a continuation
/// (no colon, or a name with spaces) are skipped rather than ending the scan.
pub fn fields<'a>(block: &'a [u8]) -> Vec<Field<'a>> {
    let mut out: Vec<Field<'a>> = Vec::new();
    let mut start = 0;
    // (name start, name end, colon, value end)
    let mut current: Option<(usize, usize, usize, usize)> = None;
    let flush = |out: &mut Vec<Field<'a>>, cur: Option<(usize, usize, usize, usize)>| {
        if let Some((s, n, c, e)) = cur {
            out.push(Field {
                name: &block[s..n],
                raw: &block[c + 1..e],
            });
        }
    };
    while start < block.len() {
        let end = memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
        let line = &block[start..end];
        let line_end = if line.ends_with(b"\r") { end - 1 } else { end };
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if let Some(cur) = current.as_mut() {
                cur.3 = line_end;
            }
        } else {
            flush(&mut out, current.take());
            if let Some((name, colon)) = name_and_colon(line) {
                current = Some((start, start + name.len(), start + colon, line_end));
            }
        }
        start = end + 1;
    }
    flush(&mut out, current);
    out
}

/// Decoded values of every field called `name`.
pub fn values(block: &[u8], name: &str) -> Vec<String> {
    fields(block)
        .iter()
        .filter(|f| f.is(name))
        .map(Field::value)
        .collect()
}

/// The decoded value of the first field called `name`.
pub fn first(block: &[u8], name: &str) -> Option<String> {
    fields(block).iter().find(|f| f.is(name)).map(Field::value)
}

/// Strip the angle brackets and blanks around an address or message-id: `<a@b>` → `a@b`.
pub fn bare_addr(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    s.strip_suffix('>').unwrap_or(s).trim()
}

/// RFC 5322 §3.2.3 atext, extended by RFC 6532 §3.2 (and RFC 6531 §3.3 for SMTP) to any
/// non-ASCII character that is not a control.
pub fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// RFC 5322 §3.2.3 dot-atom-text.
pub fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.chars().all(is_atext))
}

/// A quoted-string (§3.2.4) holding `s`, with `"` and `\` escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_body_after_lf_or_crlf_blank_line() {
        assert_eq!(body_offset(b"A: b\n\nbody"), Some(6));
        assert_eq!(body_offset(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(body_offset(b"A: b\nC: d\n"), None);
        assert_eq!(body_offset(b"\nbody"), Some(1));
        assert_eq!(block(b"A: b\n\nbody"), b"A: b\n");
    }

    #[test]
    fn fields_unfold_and_match_case_insensitively() {
        let b =
            b"Subject: one\n two\r\ndelivered-to: a@b\nnot a header\nX: =?utf-8?q?caf=C3=A9?=\n";
        let f = fields(b);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].value(), "one two");
        assert!(f[1].is("Delivered-To"));
        assert_eq!(values(b, "DELIVERED-TO"), vec!["a@b"]);
        assert_eq!(first(b, "x").as_deref(), Some("café"));
    }

    #[test]
    fn blanks_before_the_colon_still_make_a_field() {
        let f = fields(b"Delivered-To : a@b\nSubject\t:\tx\n y\n");
        assert_eq!(f.len(), 2);
        assert!(f[0].is("delivered-to") && f[1].is("Subject"));
        assert_eq!(f[0].value_raw(), "a@b");
        assert_eq!(f[1].value(), "x y");
    }

    #[test]
    fn one_field_name_rule() {
        assert_eq!(field_name(b"Subject: x"), Some(&b"Subject"[..]));
        assert_eq!(field_name(b"Bcc :"), Some(&b"Bcc"[..]));
        assert_eq!(
            field_name(b"Received\t \t: from x\r\n"),
            Some(&b"Received"[..])
        );
        assert_eq!(field_name(b"X-\xc3\xa9: y"), None);
        // Only WSP may stand before the colon (RFC 5322 §4.5): not a form feed, not a CR.
        assert_eq!(field_name(b"Received\x0c: x"), None);
        assert_eq!(field_name(b"Received\r: x"), None);
        for line in [
            &b" Subject: x"[..],
            b"Sub ject: x",
            b": x",
            b"no colon",
            b"",
        ] {
            assert_eq!(field_name(line), None, "{line:?}");
        }
        assert!(is_field_name(b"X-Mailer") && is_field_name(b"!~"));
        assert!(!is_field_name(b"") && !is_field_name(b"a:b") && !is_field_name(b"a b"));
        // The scanner reads the header by the same rule.
        let f = fields(b"Received\x0c: x\nReceived \t: y\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value_raw(), "y");
    }

    #[test]
    fn white_space_first_would_fold() {
        assert!(would_fold(b" (forged)\n") && would_fold(b"\tX: y"));
        assert!(!would_fold(b"Subject: s\n") && !would_fold(b"") && !would_fold(b"\n"));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        for b in [
            &b"\xff\xfe:\n"[..],
            b":",
            b"\n\n\n",
            b" cont\n",
            b"a:\r",
            b"\r\r\r:",
        ] {
            let _ = fields(b);
            let _ = body_offset(b);
            let _ = values(b, "a");
        }
    }

    #[test]
    fn bare_addr_strips_brackets() {
        assert_eq!(bare_addr(" <a@b> "), "a@b");
        assert_eq!(bare_addr("a@b"), "a@b");
        assert_eq!(bare_addr("<>"), "");
    }
}
