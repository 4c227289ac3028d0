//! A message being composed: the draft model, its text form, replies and forwards, and
//! turning it into header fields and MIME parts.
//!
//! A [`Draft`] holds what the user means, in the user's terms: header values as typed (UTF-8,
//! not encoded), attachment paths. Options, a draft file, and a message replied to all fill
//! the same model, and the text form ([`Draft::parse`], [`Draft::render`]) is what `mutt -H`
//! and mblaze's mcom edit: header lines, an empty line, the body; `Attach: path` lines add
//! attachments. Only [`header_block`] turns values into wire form, validating addresses and
//! message-ids and encoding as RFC 2047 and RFC 5322 ask; so nothing typed anywhere can
//! reach the output unchecked.

use crate::exit::{Code, Error, Result};
use crate::message::address::{self, Address, Mailbox};
use crate::message::fold;
use crate::message::header;
use crate::message::mime::{self, Content};
use std::path::Path;

/// Header fields mcompose writes itself: `-H` and drafts may not set them.
const RESERVED: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Attach",
];

/// What the user means to send, in the user's terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Draft {
    /// From, as typed.
    pub from: Option<String>,
    /// To address lists, as typed.
    pub to: Vec<String>,
    /// Cc address lists.
    pub cc: Vec<String>,
    /// Bcc address lists (kept in the output for `msubmit -t`).
    pub bcc: Vec<String>,
    /// Reply-To address lists.
    pub reply_to: Vec<String>,
    /// The subject, unencoded.
    pub subject: Option<String>,
    /// In-Reply-To message-ids.
    pub in_reply_to: Option<String>,
    /// References message-ids.
    pub references: Vec<String>,
    /// Other header fields, name and unencoded value.
    pub headers: Vec<(String, String)>,
    /// Attachments: `path` or `path:type/subtype`.
    pub attach: Vec<String>,
}

impl Draft {
    /// Read a draft: header lines, an empty line, the body. Returns the draft and the body.
    /// Date, Message-ID and the MIME fields of a draft are dropped: they are made anew.
    pub fn parse(text: &[u8]) -> Result<(Draft, Vec<u8>)> {
        let (block, body) = match header::body_offset(text) {
            Some(off) => (header::block(text), &text[off..]),
            None => (text, &b""[..]),
        };
        // A draft is typed by hand: a line that is not a field (body text without the empty
        // line before it) is refused, not skipped as a received message's would be.
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let field = header::field_name(line).is_some();
            if !(line.is_empty() || header::would_fold(line) || field) {
                return Err(Error::new(
                    Code::DataErr,
                    format!("draft: {:?}", String::from_utf8_lossy(line)),
                    "not a header field (an empty line must come before the body)",
                ));
            }
        }
        let mut d = Draft::default();
        for f in header::fields(block) {
            let name = String::from_utf8_lossy(f.name).trim().to_string();
            // Address lists are parsed from the raw value: decoding first would expose a
            // comma inside an encoded display name.
            let raw = f.value_raw();
            let list = |v: &mut Vec<String>| {
                if !raw.is_empty() {
                    v.push(raw.clone());
                }
            };
            match name.to_ascii_lowercase().as_str() {
                "from" => d.from = Some(raw.clone()).filter(|s| !s.is_empty()),
                "to" => list(&mut d.to),
                "cc" => list(&mut d.cc),
                "bcc" => list(&mut d.bcc),
                "reply-to" => list(&mut d.reply_to),
                "subject" => d.subject = Some(f.value()),
                "in-reply-to" => d.in_reply_to = Some(raw.clone()).filter(|s| !s.is_empty()),
                "references" => list(&mut d.references),
                "attach" => list(&mut d.attach),
                "date"
                | "message-id"
                | "mime-version"
                | "content-type"
                | "content-transfer-encoding"
                | "content-disposition" => {}
                _ => d.headers.push((name, f.value())),
            }
        }
        Ok((d, body.to_vec()))
    }

    /// The draft's text form, with `body` after the empty line.
    pub fn render(&self, body: &[u8]) -> Vec<u8> {
        let mut out = String::new();
        let mut line = |name: &str, v: &str| {
            // A value is one line here; control characters cannot sneak in a field.
            let v: String = v
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            out.push_str(&format!("{name}: {v}\n"));
        };
        line("From", self.from.as_deref().unwrap_or(""));
        line("To", &self.to.join(", "));
        line("Cc", &self.cc.join(", "));
        line("Bcc", &self.bcc.join(", "));
        if !self.reply_to.is_empty() {
            line("Reply-To", &self.reply_to.join(", "));
        }
        line("Subject", self.subject.as_deref().unwrap_or(""));
        if let Some(irt) = &self.in_reply_to {
            line("In-Reply-To", irt);
        }
        if !self.references.is_empty() {
            line("References", &self.references.join(" "));
        }
        for (n, v) in &self.headers {
            line(n, v);
        }
        for a in &self.attach {
            line("Attach", a);
        }
        let mut out = out.into_bytes();
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    }
}

/// Parse every list in `lists` (named `field` in errors) into one address list.
pub fn addresses(field: &str, lists: &[String]) -> Result<Vec<Address>> {
    let mut out = Vec::new();
    for l in lists {
        out.extend(address::parse_list(l).map_err(|e| e.context(field))?);
    }
    Ok(out)
}

/// Message-ids from `<a@b> <c@d>` or bare `a@b` forms (RFC 5322 §3.6.4), each returned with
/// its angle brackets. Refuses anything that is not `left@right` without blanks.
fn msg_ids(field: &str, text: &str) -> Result<Vec<String>> {
    let bad = |id: &str, why: &str| {
        Error::new(
            Code::DataErr,
            format!("{field}: bad message-id {id:?}"),
            why,
        )
    };
    let mut out = Vec::new();
    for word in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
    {
        for piece in word.split_inclusive('>') {
            let id = header::bare_addr(piece);
            if id.is_empty() {
                continue;
            }
            let Some((left, right)) = id.rsplit_once('@') else {
                return Err(bad(piece, "no @"));
            };
            if left.is_empty() || right.is_empty() {
                return Err(bad(piece, "empty on one side of @"));
            }
            if id.len() > 900 {
                return Err(bad(piece, "too long"));
            }
            if id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
            {
                return Err(bad(piece, "holds a character a message-id may not"));
            }
            out.push(format!("<{id}>"));
        }
    }
    Ok(out)
}

/// Check a `-H` or draft field name: a field name ([`header::is_field_name`]) short enough
/// for the folder, and not one mcompose writes itself.
pub fn check_header_name(name: &str) -> Result<()> {
    if name.len() > fold::MAX_NAME || !header::is_field_name(name.as_bytes()) {
        return Err(Error::new(
            Code::Usage,
            format!("header name {name:?}"),
            "not a valid field name",
        ));
    }
    if let Some(r) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(name)) {
        return Err(Error::new(
            Code::Usage,
            format!("header {r}"),
            "is set by its own option or by mcompose",
        ));
    }
    Ok(())
}

/// When and where the message is stamped.
pub struct Stamp {
    /// The Date: value.
    pub date: String,
    /// The Message-ID: value, brackets included.
    pub message_id: String,
}

/// The message's header fields, in wire form (LF line ends, folded, encoded), validated.
pub fn header_block(d: &Draft, from: &Mailbox, stamp: &Stamp) -> Result<String> {
    let mut out = String::new();
    out.push_str(&fold::field("Date", &words(&stamp.date)));
    out.push_str(&fold::field("From", &from.words()));
    for (name, lists) in [
        ("Reply-To", &d.reply_to),
        ("To", &d.to),
        ("Cc", &d.cc),
        ("Bcc", &d.bcc),
    ] {
        let list = addresses(name, lists)?;
        if !list.is_empty() {
            out.push_str(&fold::field(name, &address::list_words(&list)));
        }
    }
    if let Some(s) = &d.subject {
        out.push_str(&fold::unstructured("Subject", s));
    }
    out.push_str(&fold::field(
        "Message-ID",
        std::slice::from_ref(&stamp.message_id),
    ));
    if let Some(irt) = &d.in_reply_to {
        let ids = msg_ids("In-Reply-To", irt)?;
        if !ids.is_empty() {
            out.push_str(&fold::field("In-Reply-To", &ids));
        }
    }
    let mut refs = Vec::new();
    for r in &d.references {
        refs.extend(msg_ids("References", r)?);
    }
    if !refs.is_empty() {
        out.push_str(&fold::field("References", &refs));
    }
    for (name, value) in &d.headers {
        check_header_name(name)?;
        out.push_str(&fold::unstructured(name, value));
    }
    out.push_str("MIME-Version: 1.0\n");
    Ok(out)
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Open an attachment given as `path` or `path:type/subtype`: a missing file is
/// [`Code::NoInput`]; a message/rfc822 attachment is embedded as a message.
pub fn attachment(spec: &str, inline: bool) -> Result<Content> {
    let (path, forced) = match spec.rsplit_once(':') {
        Some((p, t)) if !p.is_empty() && is_media_type(t) => (p, Some(t.to_ascii_lowercase())),
        _ => (spec, None),
    };
    let path = crate::config::expand_tilde(path);
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into());
    let what = path.display().to_string();
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io(Code::NoInput, &what, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(Code::IoErr, &what, e))?;
    if meta.is_dir() {
        return Err(Error::new(Code::NoInput, what, "is a directory"));
    }
    if !meta.is_file() {
        // A pipe (`-a <(gzip -c log)`, /dev/stdin) cannot be read twice (the type sniffing,
        // then the encoding) and cannot be read later either without breaking "every input
        // is read before the first byte is written": copy it now to an unlinked temporary
        // file, flat memory, and attach that.
        let mut copy = tempfile::tempfile().map_err(|e| Error::io(Code::IoErr, &what, e))?;
        std::io::copy(&mut file, &mut copy)
            .and_then(|_| std::io::Seek::rewind(&mut copy))
            .map_err(|e| Error::io(Code::IoErr, &what, e))?;
        file = copy;
    }
    if forced.as_deref() == Some("message/rfc822") {
        return mime::message_part(file, path, filename, inline);
    }
    let mut head = vec![0u8; 4096];
    let n = read_head(&mut file, &mut head).map_err(|e| Error::io(Code::IoErr, &what, e))?;
    head.truncate(n);
    let mut media = forced.unwrap_or_else(|| mime::media_type(&path, &head));
    if media.starts_with("text/") && std::str::from_utf8(&head).is_ok() {
        media.push_str("; charset=utf-8");
    }
    Ok(Content::File {
        file,
        path,
        media,
        filename,
        inline,
    })
}

fn read_head(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// True for `type/subtype` made of RFC 2045 tokens.
fn is_media_type(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(t, st)| fold::is_token(t) && fold::is_token(st))
}

/// Text for a part: CRLF to LF, scanned, refused unless UTF-8 ([`Code::DataErr`]).
pub fn text(r: &mut dyn std::io::Read, what: &str, subtype: &'static str) -> Result<Content> {
    let (data, scan) = mime::spool_text(r, what)?;
    if let Some(at) = scan.bad_utf8 {
        return Err(Error::new(
            Code::DataErr,
            what,
            format!("not UTF-8 (byte {at})"),
        ));
    }
    Ok(Content::Text {
        subtype,
        data,
        scan,
    })
}

/// The MIME structure: the text (with its HTML alternative if any), then the attachments.
pub fn structure(body: Content, html: Option<Content>, attachments: Vec<Content>) -> Content {
    let main = match html {
        Some(h) => Content::Multipart {
            subtype: "alternative",
            parts: vec![body, h],
        },
        None => body,
    };
    if attachments.is_empty() {
        main
    } else {
        let mut parts = vec![main];
        parts.extend(attachments);
        Content::Multipart {
            subtype: "mixed",
            parts,
        }
    }
}

/// `Re: subject` without stacking prefixes (`Re: Re:`, `AW:`, `Re[2]:`).
fn reply_subject(s: &str) -> String {
    format!("Re: {}", strip_prefixes(s, &["re", "aw", "sv", "antw"]))
}

/// `Fwd: subject` without stacking.
fn forward_subject(s: &str) -> String {
    format!("Fwd: {}", strip_prefixes(s, &["fwd", "fw"]))
}

fn strip_prefixes<'a>(mut s: &'a str, prefixes: &[&str]) -> &'a str {
    loop {
        let t = s.trim_start();
        let word_end = t.find(|c: char| !c.is_alphabetic()).unwrap_or(t.len());
        let (word, rest) = t.split_at(word_end);
        if !prefixes.iter().any(|p| p.eq_ignore_ascii_case(word)) {
            return t;
        }
        // An optional counter, "Re[2]:".
        let rest = match rest.strip_prefix('[') {
            Some(r) => match r.find(']') {
                Some(i) if r[..i].bytes().all(|b| b.is_ascii_digit()) => &r[i + 1..],
                _ => return t,
            },
            None => rest,
        };
        match rest.trim_start().strip_prefix(':') {
            Some(r) => s = r,
            None => return t,
        }
    }
}

/// Fill `d` as a reply to the message `orig`: To from Reply-To (else From), with `all` the
/// other recipients in Cc minus `me`; Subject, In-Reply-To and References (RFC 5322
/// §3.6.4). What `d` already has is kept. Returns the attribution and quoted text.
///
/// The original is someone else's message, not ours to refuse: its address fields are read
/// leniently ([`address::parse_list_lenient`]), and one with no usable Reply-To: or From:
/// can still be answered to recipients named with `-t`.
pub fn reply(d: &mut Draft, orig: &[u8], all: bool, me: &Mailbox) -> Result<String> {
    let block = header::block(orig);
    let fields = header::fields(block);
    let read = |name: &str| -> Vec<Mailbox> {
        fields
            .iter()
            .filter(|f| f.is(name))
            .flat_map(|f| address::parse_list_lenient(&f.value_raw()))
            .collect()
    };
    let mut parsed = read("Reply-To");
    if parsed.is_empty() {
        parsed = read("From");
    }
    let mine = |m: &Mailbox| {
        m.addr
            .to_string()
            .eq_ignore_ascii_case(&me.addr.to_string())
    };
    if !parsed.is_empty() && parsed.iter().all(mine) {
        // A reply to one's own message goes to its recipients again (as mutt does).
        parsed = read("To");
    }
    if parsed.is_empty() && d.to.is_empty() {
        return Err(Error::new(
            Code::DataErr,
            "reply",
            "the original has no usable From: or Reply-To: (name the recipients with -t)",
        ));
    }
    let mut seen: Vec<String> = vec![me.addr.to_string().to_lowercase()];
    let mut to = Vec::new();
    for m in &parsed {
        seen.push(m.addr.to_string().to_lowercase());
        to.push(m.to_utf8());
    }
    if all {
        for m in [read("To"), read("Cc")].concat() {
            let key = m.addr.to_string().to_lowercase();
            if !seen.contains(&key) {
                seen.push(key);
                d.cc.push(m.to_utf8());
            }
        }
    }
    d.to.splice(0..0, to);
    let first = |name: &str| fields.iter().find(|f| f.is(name));
    if d.subject.is_none() {
        d.subject = Some(reply_subject(
            &first("Subject").map(|f| f.value()).unwrap_or_default(),
        ));
    }
    let id = first("Message-ID")
        .and_then(|f| msg_ids("Message-ID", &f.value_raw()).ok())
        .and_then(|v| v.into_iter().next());
    if let Some(id) = &id {
        if d.in_reply_to.is_none() {
            d.in_reply_to = Some(id.clone());
        }
        if d.references.is_empty() {
            // §3.6.4: the parent's References (else its In-Reply-To), then its Message-ID.
            let chain = first("References").or_else(|| first("In-Reply-To"));
            let mut refs = chain
                .and_then(|f| msg_ids("References", &f.value_raw()).ok())
                .unwrap_or_default();
            refs.push(id.clone());
            d.references.push(refs.join(" "));
        }
    }
    let who = read("From")
        .first()
        .map(|m| m.name.clone().unwrap_or_else(|| m.addr.to_string()))
        .unwrap_or_else(|| "someone".into());
    let when = first("Date").map(|f| f.value());
    let mut quote = match when {
        Some(date) => format!("On {date}, {who} wrote:\n"),
        None => format!("{who} wrote:\n"),
    };
    for line in original_text(orig).lines() {
        if line.is_empty() {
            quote.push_str(">\n");
        } else {
            quote.push_str("> ");
            quote.push_str(line);
            quote.push('\n');
        }
    }
    Ok(quote)
}

/// The first text/plain part of a message that is not an attachment, decoded.
pub(crate) fn original_text(orig: &[u8]) -> String {
    fn find(m: &mailparse::ParsedMail) -> Option<String> {
        if m.subparts.is_empty() {
            let attached =
                m.get_content_disposition().disposition == mailparse::DispositionType::Attachment;
            if m.ctype.mimetype.eq_ignore_ascii_case("text/plain") && !attached {
                return m.get_body().ok();
            }
            return None;
        }
        m.subparts.iter().find_map(find)
    }
    mailparse::parse_mail(orig)
        .ok()
        .and_then(|m| find(&m))
        .unwrap_or_default()
        .replace("\r\n", "\n")
}

/// Fill `d` to forward the message at `path`: Subject `Fwd: …`, and the original attached
/// as message/rfc822.
pub fn forward(d: &mut Draft, path: &Path, orig_head: &[u8]) {
    if d.subject.is_none() {
        d.subject = Some(forward_subject(
            &header::first(header::block(orig_head), "Subject").unwrap_or_default(),
        ));
    }
    d.attach.push(format!("{}:message/rfc822", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_do_not_stack() {
        assert_eq!(reply_subject("Re: RE: aw: hi"), "Re: hi");
        assert_eq!(reply_subject("Re[2]: hi"), "Re: hi");
        assert_eq!(reply_subject("Fwd: hi"), "Re: Fwd: hi");
        assert_eq!(reply_subject("Rennes"), "Re: Rennes");
        assert_eq!(forward_subject("Fwd: FW: x"), "Fwd: x");
    }

    #[test]
    fn msg_ids_are_checked() {
        assert_eq!(msg_ids("R", "<a@b> c@d").unwrap(), ["<a@b>", "<c@d>"]);
        assert_eq!(msg_ids("R", "<a@b><c@d>").unwrap(), ["<a@b>", "<c@d>"]);
        assert!(msg_ids("R", "nobrackets").is_err());
        assert!(msg_ids("R", "<a@>").is_err());
        assert_eq!(
            msg_ids("R", "<a@b>\r\nBcc: x@y").unwrap_err().code(),
            Code::DataErr
        );
    }

    #[test]
    fn drafts_round_trip() {
        let d = Draft {
            from: Some("Me <me@x.example>".into()),
            to: vec!["a@b.example".into(), "\"Doe, J\" <j@d.example>".into()],
            subject: Some("Grüße".into()),
            headers: vec![("X-Mood".into(), "fine".into())],
            attach: vec!["/tmp/f.pdf".into()],
            references: vec!["<a@b> <c@d>".into()],
            ..Draft::default()
        };
        let text = d.render(b"body\n");
        let (back, body) = Draft::parse(&text).unwrap();
        assert_eq!(body, b"body\n");
        assert_eq!(back.to, ["a@b.example, \"Doe, J\" <j@d.example>"]);
        assert_eq!(back.subject.as_deref(), Some("Grüße"));
        assert_eq!(back.headers, d.headers);
        assert_eq!(back.attach, d.attach);
        let e = Draft::parse(b"To: a@b.example\nHello there\n\nbody\n").unwrap_err();
        assert_eq!(e.code(), Code::DataErr);
        assert!(e.to_string().contains("Hello there"), "{e}");
        assert!(Draft::parse(b"just text, no header\n").is_err());
        assert!(Draft::parse(b"To: a@b.example\n folded\r\n\nbody").is_ok());
        // The one field-name rule: blanks before the colon (RFC 5322 §4.5) make a field in a
        // draft as in a received message.
        let (d, _) = Draft::parse(b"Subject\t: hi\nX-Mood : fine\n\nbody").unwrap();
        assert_eq!(d.subject.as_deref(), Some("hi"));
        assert_eq!(d.headers, [("X-Mood".to_string(), "fine".to_string())]);
        assert!(check_header_name("X-Ok").is_ok());
        assert!(check_header_name("bcc").is_err());
        assert!(check_header_name("Bad Name").is_err());
    }
}
