//! msubmit's message handling: read the message as sendmail does, then fix its header the
//! way Postfix's cleanup(8) does before it leaves: Bcc removed, From/Date/Message-ID added,
//! and with `-t` the recipients taken from the header.
//!
//! Only the header block is rewritten (it is in memory: the first MiB of a [`Buffer`]); the
//! body streams from the spool untouched, so a message of any size costs flat memory.

use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::message::header;
use std::io::{self, Read, Write};

/// What reading noticed about the message bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// A byte ≥ 0x80 somewhere (BODY=8BITMIME).
    pub eight_bit: bool,
    /// LFs without a CR before them: each becomes CRLF on the wire (for SIZE=).
    pub bare_lf: u64,
}

/// Read a message to the end of the input, always. A line holding a single dot is data, as
/// for msmtp: sendmail's old rule that it ends the message (unless `-i`) cut every message with
/// such a line in its body, attachments included, when a caller like mutt or a pipeline from
/// mcompose left out `-i`; we accept `-i` and `-oi` and ignore them.
pub fn read(input: &mut dyn Read) -> Result<(Buffer, Stats)> {
    let mut spool = Buffer::new();
    let mut stats = Stats::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut prev_cr = false;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(Code::IoErr, "read message", e)),
        };
        let data = &buf[..n];
        stats.eight_bit |= data.iter().any(|&b| b >= 0x80);
        for i in memchr::memchr_iter(b'\n', data) {
            let cr = if i == 0 {
                prev_cr
            } else {
                data[i - 1] == b'\r'
            };
            stats.bare_lf += u64::from(!cr);
        }
        prev_cr = data[n - 1] == b'\r';
        spool.write_all(data).map_err(spool_error)?;
    }
    Ok((spool, stats))
}

fn spool_error(e: io::Error) -> Error {
    Error::io(Code::TempFail, "spool message", e)
}

/// One header field with its exact bytes (line ends included).
struct RawField {
    name: String,
    bytes: Vec<u8>,
}

/// The message as it will be sent: a rewritten header, then the body from the spool. The
/// spool stays the caller's, with the message as it was given (for `dead.letter`).
pub struct Prepared<'a> {
    header: Vec<u8>,
    spool: &'a mut Buffer,
    body_start: usize,
    stats: Stats,
}

impl Prepared<'_> {
    /// Bytes of the message as sent (CRLF line ends), for SIZE= and logs.
    pub fn size_estimate(&self) -> u64 {
        self.header.len() as u64 + (self.spool.len() - self.body_start as u64) + self.stats.bare_lf
    }

    /// True when the message has 8-bit bytes.
    pub fn eight_bit(&self) -> bool {
        self.stats.eight_bit
    }

    /// A reader over the whole prepared message.
    pub fn reader(&mut self) -> io::Result<impl Read + '_> {
        let mut r = self.spool.reader()?;
        io::copy(&mut (&mut r).take(self.body_start as u64), &mut io::sink())?;
        Ok(self.header.as_slice().chain(r))
    }

    /// Put `signer`'s DKIM-Signature in front when the From: address is at its domain (the
    /// header is final: Date, Message-ID and the Bcc removal are signed as sent). The whole
    /// message is read once for it.
    pub fn sign(&mut self, signer: &crate::message::dkim::Signer) -> Result<()> {
        let mut msg = Vec::new();
        self.write_to(&mut msg).map_err(spool_error)?;
        if crate::message::dkim::pick(std::slice::from_ref(signer), &msg).is_none() {
            return Ok(());
        }
        let field = signer.sign(&msg)?;
        self.header.splice(0..0, field);
        Ok(())
    }

    /// Write the whole prepared message to `out`.
    pub fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut r = self.reader()?;
        io::copy(&mut r, out).map(|_| ())
    }
}

/// What to add or take from the header.
pub struct Fixes<'a> {
    /// The envelope sender, for a missing From: and the Message-ID domain.
    pub sender: &'a str,
    /// The full name for a missing From: (`-F`).
    pub full_name: Option<&'a str>,
}

/// Split the header from the spool, apply the fixes, and return the prepared message with
/// the recipients found in the header (To, Cc, Bcc; or the Resent- set when present).
pub fn prepare<'a>(
    spool: &'a mut Buffer,
    stats: Stats,
    fixes: &Fixes,
) -> Result<(Prepared<'a>, Vec<String>)> {
    let head = spool.head();
    // A leading mbox "From " line is an envelope line, not a header field.
    let mut pos = 0;
    if head.starts_with(b"From ") {
        pos = head
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |i| i + 1);
    }
    let mut fields: Vec<RawField> = Vec::new();
    let mut body_start = head.len();
    let mut needs_separator = false;
    let mut crlf = false;
    while pos < head.len() {
        let end = head[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |i| pos + i + 1);
        let line = &head[pos..end];
        if fields.is_empty() && line.ends_with(b"\r\n") {
            crlf = true;
        }
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            body_start = pos;
            break;
        }
        if (line[0] == b' ' || line[0] == b'\t') && !fields.is_empty() {
            if let Some(f) = fields.last_mut() {
                f.bytes.extend_from_slice(line);
            }
        } else if let Some(name) = header::field_name(bare) {
            // Blanks before the colon (`Bcc :`) still make the field (RFC 5322 §4.5), as
            // in Postfix's cleanup: read as body text instead, such a line would end the
            // header there, and a `Bcc :` would go to every recipient in the body.
            fields.push(RawField {
                name: String::from_utf8_lossy(name).into_owned(),
                bytes: line.to_vec(),
            });
        } else {
            // Body text without an empty line before it: the header ends here.
            body_start = pos;
            needs_separator = true;
            break;
        }
        pos = end;
    }
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };

    let has = |n: &str| fields.iter().any(|f| f.name.eq_ignore_ascii_case(n));
    let resent = ["Resent-To", "Resent-Cc", "Resent-Bcc"]
        .iter()
        .any(|n| has(n));
    let sources: &[&str] = if resent {
        &["Resent-To", "Resent-Cc", "Resent-Bcc"]
    } else {
        &["To", "Cc", "Bcc"]
    };
    let mut rcpts = Vec::new();
    for f in fields
        .iter()
        .filter(|f| sources.iter().any(|s| f.name.eq_ignore_ascii_case(s)))
    {
        rcpts.extend(addresses(f)?);
    }

    let mut header = Vec::with_capacity(head.len().min(64 * 1024) + 256);
    for f in &fields {
        // Bcc must not reach any recipient (RFC 5322 §3.6.3); the server would not remove it.
        if f.name.eq_ignore_ascii_case("Bcc") || f.name.eq_ignore_ascii_case("Resent-Bcc") {
            continue;
        }
        header.extend_from_slice(&f.bytes);
        if !f.bytes.ends_with(b"\n") {
            header.extend_from_slice(eol);
        }
    }
    let domain = match fixes.sender.rsplit_once('@') {
        Some((_, d)) if !d.is_empty() => d.to_string(),
        _ => crate::message::stamp::fqdn(),
    };
    if !has("From") {
        // Written by the folder mcompose uses: a long or non-ASCII -F name becomes several
        // encoded-words of at most 75 characters (RFC 2047 §2) on folded lines, never one
        // word or one line past 998 (RFC 5322 §2.1.1).
        let name: String = fixes
            .full_name
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let mut words = match name.trim() {
            "" => Vec::new(),
            n => crate::message::fold::phrase(n),
        };
        words.push(match words.is_empty() {
            true => fixes.sender.to_string(),
            false => format!("<{}>", fixes.sender),
        });
        let field = crate::message::fold::field("From", &words);
        let field = field.strip_suffix('\n').unwrap_or(&field);
        for (i, line) in field.split('\n').enumerate() {
            if i > 0 {
                header.extend_from_slice(eol);
            }
            header.extend_from_slice(line.as_bytes());
        }
        header.extend_from_slice(eol);
    }
    let mut add = |name: &str, value: &str| {
        header.extend_from_slice(format!("{name}: {value}").as_bytes());
        header.extend_from_slice(eol);
    };
    if !has("Date") {
        add("Date", &crate::message::stamp::date_now());
    }
    if !has("Message-ID") {
        add("Message-ID", &crate::message::stamp::message_id(&domain));
    }
    if needs_separator {
        header.extend_from_slice(eol);
    }
    Ok((
        Prepared {
            header,
            spool,
            body_start,
            stats,
        },
        rcpts,
    ))
}

/// The addresses of an address-list field, groups included.
fn addresses(f: &RawField) -> Result<Vec<String>> {
    let bad = |why: String| Error::new(Code::DataErr, format!("{}: header", f.name), why);
    let (h, _) = mailparse::parse_header(&f.bytes).map_err(|e| bad(e.to_string()))?;
    let list = match mailparse::addrparse_header(&h) {
        Ok(list) => list,
        // mailparse refuses what system mail sends with -t every day (`To: root`, which
        // mdadm and logwatch write, completed with the sender's domain later, as Postfix
        // does with $myorigin) and quoted local parts (RFC 5322 §3.4.1).
        Err(_) => return plain_addresses(&h.get_value()).map_err(|why| bad(why.into())),
    };
    let mut out = Vec::new();
    for a in list.iter() {
        match a {
            mailparse::MailAddr::Single(s) => out.push(s.addr.clone()),
            mailparse::MailAddr::Group(g) => out.extend(g.addrs.iter().map(|s| s.addr.clone())),
        }
    }
    Ok(out)
}

/// The addresses of an address list read leniently: split at commas (and a group's `:` and
/// `;`) outside quotes, angle brackets and comments; an element's address is inside its
/// last `<…>`, else the element itself. Each is checked later as an envelope address.
fn plain_addresses(value: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut angle, mut comment) = (false, false, false, 0u32);
    let mut flush = |cur: &mut String| {
        let t = cur.trim();
        let addr = match (t.rfind('<'), t.ends_with('>')) {
            (Some(i), true) => &t[i + 1..t.len() - 1],
            _ => t,
        };
        if !addr.trim().is_empty() {
            out.push(addr.trim().to_string());
        }
        cur.clear();
    };
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && (quoted || comment > 0) {
            escaped = true;
        } else if quoted {
            quoted = c != '"';
        } else if comment > 0 {
            match c {
                '(' => comment += 1,
                ')' => comment -= 1,
                _ => {}
            }
            continue;
        } else {
            match c {
                '"' => quoted = true,
                '(' => {
                    comment = 1;
                    continue;
                }
                '<' => angle = true,
                '>' => angle = false,
                ',' | ';' if !angle => {
                    flush(&mut cur);
                    continue;
                }
                // A group's display name ends at its colon.
                ':' if !angle => {
                    cur.clear();
                    continue;
                }
                _ => {}
            }
        }
        cur.push(c);
    }
    if quoted || angle || comment > 0 {
        return Err("unbalanced quote, angle bracket or comment");
    }
    flush(&mut cur);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Vec<u8> {
        let (mut s, _) = read(&mut &input[..]).unwrap();
        let mut v = Vec::new();
        s.copy_to(&mut v).unwrap();
        v
    }

    #[test]
    fn a_lone_dot_never_ends_the_input() {
        for input in [
            &b"a\n.\nb\n"[..],
            b"a\r\n.\r\nb\r\n",
            b".\n",
            b"a\n..\n.x\n",
            b"a.\n.\r",
        ] {
            assert_eq!(read_all(input), input);
        }
    }

    #[test]
    fn counts_bare_line_feeds_and_eight_bit_across_reads() {
        /// Hands out one byte per read, so CR and LF arrive in separate reads.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let input = "a\r\nb\nc\r\n\nd\u{e9}\n".as_bytes();
        let (_, stats) = read(&mut Trickle(input)).unwrap();
        assert_eq!(stats.bare_lf, 3);
        assert!(stats.eight_bit);
        let (_, stats) = read(&mut &input[..]).unwrap();
        assert_eq!(stats.bare_lf, 3);
        let (_, stats) = read(&mut &b"a\r\nb\r\n"[..]).unwrap();
        assert_eq!(stats.bare_lf, 0);
        assert!(!stats.eight_bit);
    }

    fn prep(msg: &[u8]) -> (String, Vec<String>) {
        let (mut spool, stats) = read(&mut &msg[..]).unwrap();
        let fixes = Fixes {
            sender: "me@example.test",
            full_name: Some("Me Myself"),
        };
        let (mut p, rcpts) = prepare(&mut spool, stats, &fixes).unwrap();
        let mut out = Vec::new();
        p.write_to(&mut out).unwrap();
        assert!(p.size_estimate() as usize >= out.len());
        (String::from_utf8(out).unwrap(), rcpts)
    }

    #[test]
    fn removes_bcc_adds_missing_fields_and_finds_recipients() {
        let (out, rcpts) = prep(b"To: a@x.test, \"B, b\" <b@x.test>\nBcc: secret@x.test,\n  hidden@x.test\nCc: team: c@x.test;\nSubject: s\n\nBcc: body stays\n");
        assert_eq!(
            rcpts,
            vec![
                "a@x.test",
                "b@x.test",
                "secret@x.test",
                "hidden@x.test",
                "c@x.test"
            ]
        );
        assert!(!out.contains("secret") && !out.contains("hidden"), "{out}");
        assert!(
            out.contains("\nFrom: Me Myself <me@example.test>\n"),
            "{out}"
        );
        assert!(
            out.contains("\nDate: ") && out.contains("@example.test>\n\nBcc: body stays\n"),
            "{out}"
        );
    }

    #[test]
    fn resent_fields_win_and_existing_fields_stay() {
        let (out, rcpts) = prep(b"From: x@y.test\r\nDate: d\r\nMessage-ID: <m@y>\r\nTo: old@x.test\r\nResent-To: new@x.test\r\n\r\nbody\r\n");
        assert_eq!(rcpts, vec!["new@x.test"]);
        assert_eq!(
            out,
            "From: x@y.test\r\nDate: d\r\nMessage-ID: <m@y>\r\nTo: old@x.test\r\nResent-To: new@x.test\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn a_long_or_non_ascii_full_name_is_folded_in_short_encoded_words() {
        for name in ["é".repeat(600), "Jean-Émile ".repeat(100), "x".repeat(1500)] {
            let (mut spool, stats) = read(&mut &b"Subject: s\r\n\r\nb\r\n"[..]).unwrap();
            let fixes = Fixes {
                sender: "me@example.test",
                full_name: Some(&name),
            };
            let (mut p, _) = prepare(&mut spool, stats, &fixes).unwrap();
            let mut out = Vec::new();
            p.write_to(&mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let head = text.split("\r\n\r\n").next().unwrap();
            for line in head.split("\r\n") {
                assert!(line.len() <= 998, "{} octets", line.len());
                assert!(!line.contains('\n'), "bare LF in {line:?}");
                for w in line.split(' ').filter(|w| w.starts_with("=?")) {
                    assert!(w.len() <= 75, "encoded-word of {}: {w}", w.len());
                }
            }
            let (h, _) = mailparse::parse_headers(head.as_bytes()).unwrap();
            let from = h.iter().find(|h| h.get_key() == "From").unwrap();
            let want = name.split_whitespace().collect::<Vec<_>>().join(" ");
            match &mailparse::addrparse_header(from).unwrap()[0] {
                mailparse::MailAddr::Single(s) => {
                    assert_eq!(s.display_name.as_deref(), Some(want.as_str()));
                    assert_eq!(s.addr, "me@example.test");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bare_local_names_and_quoted_local_parts_are_recipients() {
        let (_, rcpts) = prep(b"To: \"john doe\"@x.test, b@x.test\nCc: root\n\nbody\n");
        assert_eq!(rcpts, vec!["\"john doe\"@x.test", "b@x.test", "root"]);
        let (_, rcpts) =
            prep(b"To: mdadm (the monitor) <root>, \"Doe, J\" <j>, team: a@x.test, bob;\n\nb\n");
        assert_eq!(rcpts, vec!["root", "j", "a@x.test", "bob"]);
    }

    #[test]
    fn obsolete_blanks_before_the_colon_still_make_a_field() {
        let (out, rcpts) = prep(b"To: a@x.test\nBcc : secret@x.test\nSubject: s\n\nbody\n");
        assert_eq!(rcpts, vec!["a@x.test", "secret@x.test"]);
        assert!(!out.contains("secret"), "{out}");
        assert!(
            out.contains("\nSubject: s\n") && out.ends_with("\n\nbody\n"),
            "{out}"
        );
    }

    #[test]
    fn a_body_without_header_gets_a_separator() {
        let (out, rcpts) = prep(b"just text\n");
        assert!(rcpts.is_empty());
        assert!(
            out.starts_with("From: Me Myself <me@example.test>\nDate: "),
            "{out}"
        );
        assert!(out.ends_with(">\n\njust text\n"), "{out}");
        let (out, _) = prep(b"From sender Mon Jan 1 00:00:00 2024\nSubject: x\n\nb\n");
        assert!(out.starts_with("Subject: x\n"), "{out}");
    }
}
