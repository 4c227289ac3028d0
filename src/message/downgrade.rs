//! 8-bit to 7-bit conversion of a whole message, for a server that does not offer 8BITMIME
//! (RFC 6152 §3: the sender "may implement a conversion to 7 bit", else return the
//! message). The MIME tree is walked (multipart recursively, RFC 2046 §5.1); each leaf
//! whose content has octets over 127 (or whose encoding is `8bit` or `binary`) is
//! re-encoded, text as quoted-printable and everything else as base64, with its
//! Content-Transfer-Encoding changed and nothing else; leaves already 7-bit are copied as
//! they are, byte for byte. A message without MIME (no MIME-Version, no Content-Type) and an
//! 8-bit body becomes `text/plain` in quoted-printable (charset utf-8, or unknown-8bit,
//! RFC 1428, when it is not UTF-8).
//!
//! What cannot be converted is refused with the reason and its status, for the bounce:
//! 8-bit octets in a header (only SMTPUTF8 carries them, RFC 6531: 5.6.7), in a
//! `message/*` part (RFC 2046 §5.2.1 forbids any encoding but 7bit, 8bit and binary on
//! message/rfc822, so its content cannot be re-encoded: 5.6.3), in a part that says it is
//! quoted-printable or base64 already (it lies), and a tree nested deeper than [`MAX_DEPTH`].
//!
//! Memory: the message is held whole while it is converted (a queue entry, read again for
//! each server that needs it); the output is written as it is made (the relay writes it
//! into a [`super::buffer::Buffer`], which spills to a temporary file). Servers without
//! 8BITMIME are rare, so this path is rare. Line ends in and out are LF, as the queue
//! keeps them (the SMTP layer sends CRLF).

use super::mime::QpWriter;
use std::io::{self, Write};

/// How deep multiparts may nest (mailparse stops at 100; real mail has a few levels).
pub const MAX_DEPTH: usize = 50;

/// Why a message cannot be made 7-bit: the text for the bounce, and its RFC 3463 status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What is wrong, for a person.
    pub why: String,
    /// 5.6.3 (conversion not possible) or 5.6.7 (a header needs SMTPUTF8).
    pub status: &'static str,
}

/// A conversion that failed: refused for a reason, or the output could not be written.
#[derive(Debug)]
pub enum Error {
    /// The message cannot be converted.
    Refused(Refused),
    /// Writing the output failed.
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

fn refuse(why: impl Into<String>, status: &'static str) -> Error {
    Error::Refused(Refused {
        why: why.into(),
        status,
    })
}

/// Write `msg` (LF line ends) to `out` with every octet 7-bit: see the module header.
pub fn seven_bit(msg: &[u8], out: &mut dyn Write) -> Result<(), Error> {
    let (head, body) = split(msg);
    let fields = fields(head)?;
    let mime = has(&fields, "mime-version") || has(&fields, "content-type");
    if !mime {
        if !eight_bit(body) {
            out.write_all(msg)?;
            return Ok(());
        }
        // RFC 6152 §3 with RFC 2045 §4: a body without MIME is made a text/plain one.
        let charset = match std::str::from_utf8(body) {
            Ok(_) => "utf-8",
            Err(_) => "unknown-8bit",
        };
        out.write_all(head)?;
        write!(
            out,
            "MIME-Version: 1.0\nContent-Type: text/plain; charset={charset}\n\
             Content-Transfer-Encoding: quoted-printable\n\n"
        )?;
        return quoted_printable(body, out);
    }
    entity(&fields, body, "text/plain", out, 0)
}

/// True when `b` has an octet over 127.
pub fn eight_bit(b: &[u8]) -> bool {
    b.iter().any(|c| *c > 127)
}

/// One header field: its raw lines (line ends included) and its lowercase name.
struct Field<'a> {
    name: String,
    raw: &'a [u8],
}

impl Field<'_> {
    /// The unfolded value, trimmed.
    fn value(&self) -> String {
        let text = String::from_utf8_lossy(self.raw);
        let v = text.split_once(':').map_or("", |(_, v)| v);
        v.replace(['\r', '\n'], "").trim().to_string()
    }
}

fn has(fields: &[Field<'_>], name: &str) -> bool {
    fields.iter().any(|f| f.name == name)
}

fn value(fields: &[Field<'_>], name: &str) -> Option<String> {
    fields.iter().find(|f| f.name == name).map(Field::value)
}

/// The header (up to and including the empty line's end, or all of it when none) and the
/// body.
fn split(msg: &[u8]) -> (&[u8], &[u8]) {
    if msg.starts_with(b"\n") {
        return (&msg[..0], &msg[1..]);
    }
    if msg.starts_with(b"\r\n") {
        return (&msg[..0], &msg[2..]);
    }
    let mut i = 0;
    while let Some(n) = msg[i..].iter().position(|&b| b == b'\n') {
        let next = i + n + 1;
        let rest = &msg[next..];
        if rest.starts_with(b"\n") {
            return (&msg[..next], &msg[next + 1..]);
        }
        if rest.starts_with(b"\r\n") {
            return (&msg[..next], &msg[next + 2..]);
        }
        i = next;
    }
    (msg, &msg[msg.len()..])
}

/// The fields of a header block; 8-bit octets in it refuse the message.
fn fields(head: &[u8]) -> Result<Vec<Field<'_>>, Error> {
    if eight_bit(head) {
        return Err(refuse(
            "a header has 8-bit characters, which only SMTPUTF8 carries (RFC 6531 3.2)",
            "5.6.7",
        ));
    }
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        let end = head[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |n| i + n + 1);
        let folded = i > 0 && matches!(head[i], b' ' | b'\t');
        if !folded && i > start {
            out.push(field(&head[start..i]));
            start = i;
        }
        i = end;
    }
    if i > start {
        out.push(field(&head[start..i]));
    }
    Ok(out)
}

fn field(raw: &[u8]) -> Field<'_> {
    let name = raw.split(|&b| b == b':').next().unwrap_or_default();
    Field {
        name: String::from_utf8_lossy(name).trim().to_ascii_lowercase(),
        raw,
    }
}

/// The media type of a Content-Type value, lowercase (`text/plain`), or `default`.
fn media_type(ct: Option<&str>, default: &str) -> String {
    let t = ct
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| t.contains('/'));
    t.unwrap_or_else(|| default.to_string())
}

/// A parameter of a Content-Type value (RFC 2045 §5.1), quoted or not.
fn param(ct: &str, name: &str) -> Option<String> {
    for p in ct.split(';').skip(1) {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case(name) {
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(q) => q.split('"').next().unwrap_or(""),
                None => v.split_whitespace().next().unwrap_or(""),
            };
            return Some(v.to_string()).filter(|v| !v.is_empty());
        }
    }
    None
}

/// Write one entity (its header `fields`, its `body`), converted; `default` is its media
/// type when it has no Content-Type (text/plain, or message/rfc822 in a digest).
fn entity(
    fields: &[Field<'_>],
    body: &[u8],
    default: &str,
    out: &mut dyn Write,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(refuse(
            format!("MIME parts nested deeper than {MAX_DEPTH}: not converted to 7 bits"),
            "5.6.3",
        ));
    }
    let ct = value(fields, "content-type");
    let ty = media_type(ct.as_deref(), default);
    let cte = value(fields, "content-transfer-encoding")
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into());
    if let Some(boundary) = ty
        .starts_with("multipart/")
        .then(|| ct.as_deref().and_then(|c| param(c, "boundary")))
        .flatten()
    {
        // RFC 2045 §6.4: a multipart's encoding is 7bit, 8bit or binary, and once its parts
        // are 7-bit it is 7bit.
        let relabel = cte != "7bit";
        write_fields(fields, relabel.then_some("7bit"), out)?;
        let inner = if ty == "multipart/digest" {
            "message/rfc822"
        } else {
            "text/plain"
        };
        return multipart(body, &boundary, inner, out, depth);
    }
    if !eight_bit(body) && cte != "binary" {
        write_fields(fields, None, out)?;
        out.write_all(body)?;
        return Ok(());
    }
    if ty.starts_with("message/") || ty.starts_with("multipart/") {
        return Err(refuse(
            format!(
                "a {ty} part has 8-bit content, which may not be re-encoded (RFC 2046 5.2.1), \
                 and the server does not support 8BITMIME (RFC 6152)"
            ),
            "5.6.3",
        ));
    }
    if cte != "7bit" && cte != "8bit" && cte != "binary" {
        return Err(refuse(
            format!("a part says it is {cte} but has 8-bit octets: not converted to 7 bits"),
            "5.6.3",
        ));
    }
    if ty.starts_with("text/") {
        write_fields(fields, Some("quoted-printable"), out)?;
        quoted_printable(body, out)
    } else {
        write_fields(fields, Some("base64"), out)?;
        base64(body, out)
    }
}

/// The header fields again, with the Content-Transfer-Encoding `cte` instead of theirs
/// when given, and the empty line.
fn write_fields(fields: &[Field<'_>], cte: Option<&str>, out: &mut dyn Write) -> io::Result<()> {
    for f in fields {
        if cte.is_some() && f.name == "content-transfer-encoding" {
            continue;
        }
        out.write_all(f.raw)?;
        if !f.raw.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    if let Some(c) = cte {
        writeln!(out, "Content-Transfer-Encoding: {c}")?;
    }
    out.write_all(b"\n")
}

/// A multipart body: its preamble, each part converted, its epilogue (RFC 2046 §5.1.1).
/// 8-bit octets in the preamble or epilogue, which readers ignore, become `?`.
fn multipart(
    body: &[u8],
    boundary: &str,
    inner: &str,
    out: &mut dyn Write,
    depth: usize,
) -> Result<(), Error> {
    let delim = format!("--{boundary}");
    let mut lines = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let end = body[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |n| i + n + 1);
        lines.push((i, end));
        i = end;
    }
    // Delimiter lines: `--boundary` (then only whitespace), or the close `--boundary--`.
    let mut delims: Vec<(usize, usize, bool)> = Vec::new();
    for &(s, e) in &lines {
        let line = &body[s..e];
        let Some(rest) = line.strip_prefix(delim.as_bytes()) else {
            continue;
        };
        let close = rest.starts_with(b"--");
        let tail = if close { &rest[2..] } else { rest };
        if tail.iter().all(|b| b.is_ascii_whitespace()) {
            delims.push((s, e, close));
            if close {
                break;
            }
        }
    }
    let Some(&(first, _, _)) = delims.first() else {
        // No part at all: as a leaf of unknown content, it may only be passed on if 7-bit.
        return match eight_bit(body) {
            false => Ok(out.write_all(body)?),
            true => Err(refuse(
                "a multipart without its boundary has 8-bit content: not converted to 7 bits",
                "5.6.3",
            )),
        };
    };
    out.write_all(&seven(&body[..first]))?;
    for (k, &(s, e, close)) in delims.iter().enumerate() {
        out.write_all(&body[s..e])?;
        if close {
            out.write_all(&seven(&body[e..]))?;
            return Ok(());
        }
        let part_end = delims.get(k + 1).map_or(body.len(), |d| d.0);
        // The line end before the next delimiter belongs to the delimiter (RFC 2046
        // §5.1.1); it is copied with the part as it was.
        let part = &body[e..part_end];
        let (trail, part) = match part.strip_suffix(b"\r\n") {
            Some(p) if part_end < body.len() => (&b"\r\n"[..], p),
            _ => match part.strip_suffix(b"\n") {
                Some(p) if part_end < body.len() => (&b"\n"[..], p),
                _ => (&b""[..], part),
            },
        };
        let (head, content) = split(part);
        let fields = fields(head)?;
        // A re-encoded part ends with a line end of its own (quoted-printable's soft break
        // when the text did not): the delimiter's comes after it, as before.
        entity(&fields, content, inner, out, depth + 1)?;
        out.write_all(trail)?;
    }
    Ok(())
}

/// `b` with every octet over 127 made `?`.
fn seven(b: &[u8]) -> Vec<u8> {
    b.iter().map(|&c| if c > 127 { b'?' } else { c }).collect()
}

/// Text as quoted-printable: its line ends (LF, or CRLF) are the text's, encoded as LF.
fn quoted_printable(text: &[u8], out: &mut dyn Write) -> Result<(), Error> {
    let mut qp = QpWriter::new(out);
    for line in text.split_inclusive(|&b| b == b'\n') {
        let line = match line.strip_suffix(b"\r\n") {
            Some(l) => {
                qp.write_all(l)?;
                qp.write_all(b"\n")?;
                continue;
            }
            None => line,
        };
        qp.write_all(line)?;
    }
    qp.finish()?;
    Ok(())
}

/// Content as base64 lines of 76 characters (RFC 2045 §6.8), by mime's encoder.
fn base64(content: &[u8], out: &mut dyn Write) -> Result<(), Error> {
    super::mime::write_base64(&mut &content[..], out, "message")
        .map_err(|e| Error::Io(io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(msg: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        seven_bit(msg, &mut out)?;
        assert!(!eight_bit(&out), "{}", String::from_utf8_lossy(&out));
        Ok(out)
    }

    fn refused(msg: &[u8]) -> Refused {
        match convert(msg) {
            Err(Error::Refused(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_7bit_message_is_copied_byte_for_byte() {
        let msg = b"Subject: x\n\nhello\n";
        assert_eq!(convert(msg).unwrap(), msg);
    }

    #[test]
    fn a_bare_8bit_body_becomes_text_plain_quoted_printable() {
        let out = convert("Subject: x\n\nna\u{ef}ve =\n".as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: quoted-printable\n\nna=C3=AFve =3D\n"
        );
        let out = convert(b"Subject: x\n\n\xe9t\xe9\n").unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("charset=unknown-8bit")
        );
    }

    #[test]
    fn a_multipart_has_only_its_8bit_leaves_reencoded() {
        let msg = b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\
Content-Transfer-Encoding: 8bit\n\npre\n--b1\nContent-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n--b1\nContent-Type: text/plain\n\nascii\n\
--b1\nContent-Type: application/octet-stream\n\n\x80\xff\x00\n--b1--\nepi\n";
        let out = String::from_utf8(convert(msg).unwrap()).unwrap();
        assert_eq!(
            out,
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\
Content-Transfer-Encoding: 7bit\n\npre\n--b1\nContent-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9=\n\n--b1\nContent-Type: text/plain\n\n\
ascii\n--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n\
gP8A\n\n--b1--\nepi\n"
        );
    }

    #[test]
    fn what_cannot_be_converted_is_refused_with_its_status() {
        assert_eq!(refused(b"Subject: caf\xc3\xa9\n\nx\n").status, "5.6.7");
        let rfc822 = b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\
Content-Type: message/rfc822\n\nSubject: in\n\n\xc3\xa9\n--b--\n";
        let r = refused(rfc822);
        assert_eq!(r.status, "5.6.3");
        assert!(r.why.contains("message/rfc822"), "{}", r.why);
        let lying = b"MIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\n\xc3\xa9\n";
        assert_eq!(refused(lying).status, "5.6.3");
        let mut deep = Vec::new();
        for i in 0..=MAX_DEPTH + 1 {
            deep.extend(
                format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").bytes(),
            );
        }
        deep.extend(b"\n\xc3\xa9\n");
        assert_eq!(refused(&deep).status, "5.6.3");
    }

    #[test]
    fn mutated_messages_never_panic_and_come_out_7bit_or_refused() {
        let seed = b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\n\
Content-Type: multipart/alternative; boundary=c\n\n--c\nContent-Type: text/plain\n\n\xc3\xa9\n\
--c\nContent-Type: text/html\nContent-Transfer-Encoding: binary\n\n<p>\xff</p>\n--c--\n--b\n\
Content-Type: image/png\n\n\x89PNG\r\n--b--\n";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"\n\r-b\"=;:/ \xc3\xff";
        for _ in 0..5000 {
            let mut m = seed.to_vec();
            for _ in 0..(next() % 6 + 1) {
                let i = (next() as usize) % m.len();
                match next() % 3 {
                    0 => m[i] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        m.remove(i);
                    }
                    _ => m.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            match convert(&m) {
                Ok(_) | Err(Error::Refused(_)) => {}
                Err(Error::Io(e)) => panic!("{e}"),
            }
        }
    }
}
