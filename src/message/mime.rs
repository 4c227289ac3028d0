//! MIME bodies (RFC 2045, 2046): transfer-encoding choice, quoted-printable and base64
//! encoders, media-type detection, and writing a tree of parts with flat memory.
//!
//! Every body is streamed: text is scanned once (from a [`Buffer`], memory then temporary
//! file) to choose its encoding, then encoded as it is copied out; attachments are read from
//! their file in 57-byte multiples and written as base64 lines. So a 50 MB attachment costs
//! a few buffers, not 50 MB (or 67 MB of base64) in memory.
//!
//! lettre's builder is not used for bodies: it holds every body in memory (measured with a
//! 50 MB attachment: 143 MB peak resident for lettre 0.11's `Message::formatted`, 5.6 MB
//! for mcompose), chooses base64 for short non-ASCII text where quoted-printable reads
//! better, and writes CRLF. Output here
//! uses LF line ends, like every mailpipe tool; msubmit converts to CRLF for SMTP.

use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::message::fold;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A Content-Transfer-Encoding (RFC 2045 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cte {
    /// ASCII, lines of at most 998 octets.
    SevenBit,
    /// UTF-8 as is (RFC 6152 8BITMIME), lines of at most 998 octets.
    EightBit,
    /// Quoted-printable (RFC 2045 §6.7).
    QuotedPrintable,
    /// Base64 (RFC 2045 §6.8).
    Base64,
}

impl Cte {
    /// The header value.
    pub fn name(self) -> &'static str {
        match self {
            Cte::SevenBit => "7bit",
            Cte::EightBit => "8bit",
            Cte::QuotedPrintable => "quoted-printable",
            Cte::Base64 => "base64",
        }
    }
}

/// The boundaries this module makes start with this; no quoted-printable or base64 line
/// can (`=` is encoded as `=3D`; base64 has no `_`), and text lines that do are encoded.
const BOUNDARY_PREFIX: &str = "=_mailpipe";

/// What a scan of a text found, to choose its encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextScan {
    /// Every byte is ASCII.
    pub ascii: bool,
    /// The longest line in octets, line end excluded.
    pub longest: usize,
    /// A NUL or a CR not followed by LF was seen.
    pub controls: bool,
    /// A line starts like one of our boundary delimiters.
    pub boundary_like: bool,
    /// Offset of the first byte that is not UTF-8, if any.
    pub bad_utf8: Option<u64>,
    /// The text ends with a line end (or is empty).
    pub ends_with_newline: bool,
}

impl TextScan {
    /// The encoding for text with this scan: 7bit when it can be, else 8bit when allowed
    /// and possible, else quoted-printable. Lines over 998 octets are always encoded
    /// (RFC 5322 §2.1.1).
    pub fn choose(&self, allow_8bit: bool) -> Cte {
        if self.controls || self.boundary_like || self.longest > fold::HARD_LIMIT {
            Cte::QuotedPrintable
        } else if self.ascii {
            Cte::SevenBit
        } else if allow_8bit {
            Cte::EightBit
        } else {
            Cte::QuotedPrintable
        }
    }
}

/// Scan `r` (with LF line ends) for [`TextScan`].
pub fn scan(r: &mut dyn Read) -> io::Result<TextScan> {
    let marker = format!("--{BOUNDARY_PREFIX}");
    let marker = marker.as_bytes();
    let mut s = TextScan {
        ascii: true,
        ends_with_newline: true,
        ..TextScan::default()
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = 0usize;
    let mut prefix: Vec<u8> = Vec::with_capacity(marker.len());
    let mut prev = b'\n';
    let mut carry: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        for &b in chunk {
            if prev == b'\r' && b != b'\n' {
                s.controls = true;
            }
            if b == b'\n' {
                s.longest = s.longest.max(line);
                line = 0;
                prefix.clear();
            } else {
                line += 1;
                if prefix.len() < marker.len() && line == prefix.len() + 1 {
                    prefix.push(b);
                    if prefix == marker {
                        s.boundary_like = true;
                    }
                }
            }
            s.ascii &= b.is_ascii();
            s.controls |= b == 0;
            prev = b;
        }
        if s.bad_utf8.is_none() {
            carry.extend_from_slice(chunk);
            match std::str::from_utf8(&carry) {
                Ok(_) => {
                    offset += carry.len() as u64;
                    carry.clear();
                }
                Err(e) if e.error_len().is_none() => {
                    // An incomplete character at the end: keep it for the next chunk.
                    let done = e.valid_up_to();
                    offset += done as u64;
                    carry.drain(..done);
                }
                Err(e) => s.bad_utf8 = Some(offset + e.valid_up_to() as u64),
            }
        }
    }
    if s.bad_utf8.is_none() && !carry.is_empty() {
        s.bad_utf8 = Some(offset);
    }
    s.controls |= prev == b'\r';
    s.longest = s.longest.max(line);
    s.ends_with_newline = prev == b'\n';
    Ok(s)
}

/// Copy `r` to `w` as base64 lines of 76 characters (RFC 2045 §6.8), the last one ended
/// too. Reads in multiples of 57 bytes, so memory stays flat whatever the size.
pub(crate) fn write_base64(r: &mut dyn Read, w: &mut dyn Write, what: &str) -> Result<()> {
    let mut buf = vec![0u8; 57 * 1024];
    let mut out = String::with_capacity(78 * 1024);
    loop {
        let n = read_full(r, &mut buf).map_err(|e| Error::io(Code::IoErr, what, e))?;
        if n == 0 {
            return Ok(());
        }
        out.clear();
        for line in buf[..n].chunks(57) {
            STANDARD.encode_string(line, &mut out);
            out.push('\n');
        }
        w.write_all(out.as_bytes()).map_err(write_error)?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Read until `buf` is full or the input ends; returns the count.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The error for a failed write of the message (a broken pipe stays recognisable).
pub fn write_error(e: io::Error) -> Error {
    Error::io(Code::IoErr, "write message", e)
}

/// A streaming quoted-printable encoder for text with LF line ends (RFC 2045 §6.7): lines
/// of at most 76 characters with soft breaks, trailing whitespace and every control
/// character encoded, `=` as `=3D`.
pub struct QpWriter<W: Write> {
    inner: W,
    line: usize,
    pending_ws: Option<u8>,
    out: Vec<u8>,
    ended_line: bool,
}

impl<W: Write> QpWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        QpWriter {
            inner,
            line: 0,
            pending_ws: None,
            out: Vec::with_capacity(8192),
            ended_line: true,
        }
    }

    fn token(&mut self, t: &[u8]) {
        // Rule 5: at most 76 characters per line, the soft break's "=" included.
        if self.line + t.len() > 75 {
            self.out.extend_from_slice(b"=\n");
            self.line = 0;
        }
        self.out.extend_from_slice(t);
        self.line += t.len();
    }

    fn hex(&mut self, b: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.token(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }

    fn flush_ws(&mut self, at_line_end: bool) {
        if let Some(ws) = self.pending_ws.take() {
            if at_line_end {
                // Rule 3: whitespace at the end of a line must be encoded.
                self.hex(ws);
            } else {
                self.token(&[ws]);
            }
        }
    }

    /// Finish the text: the output always ends with a line end; a text that did not end
    /// with one gets a soft break ("=" LF), which decodes to nothing.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_ws(true);
        if !self.ended_line {
            self.out.extend_from_slice(b"=\n");
        }
        self.inner.write_all(&self.out)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for QpWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            match b {
                b'\n' => {
                    self.flush_ws(true);
                    self.out.push(b'\n');
                    self.line = 0;
                }
                b' ' | b'\t' => {
                    self.flush_ws(false);
                    self.pending_ws = Some(b);
                }
                33..=60 | 62..=126 => {
                    self.flush_ws(false);
                    self.token(&[b]);
                }
                _ => {
                    self.flush_ws(false);
                    self.hex(b);
                }
            }
            self.ended_line = b == b'\n';
        }
        if self.out.len() >= 8192 {
            self.inner.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A fresh multipart boundary (RFC 2046 §5.1.1: at most 70 characters, quoted in the
/// header because it holds "=").
pub fn boundary() -> String {
    let mut r = [0u8; 12];
    crate::message::stamp::fill_random(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("{BOUNDARY_PREFIX}_{hex}")
}

/// The media type of an attachment: from its name (mime_guess) when its content agrees,
/// else from its first bytes; text that is not UTF-8 or has NULs is not called text.
pub fn media_type(path: &Path, head: &[u8]) -> String {
    let by_name = mime_guess::from_path(path).first_raw();
    let magic = sniff(head);
    let texty = !head.contains(&0) && utf8_prefix_ok(head);
    match by_name {
        Some(t) if t.starts_with("text/") && !texty => {
            magic.unwrap_or("application/octet-stream").into()
        }
        Some(t) => t.into(),
        None => match magic {
            Some(m) => m.into(),
            None if texty => "text/plain".into(),
            None => "application/octet-stream".into(),
        },
    }
}

/// True when `head` is UTF-8, allowing a character cut off at its end.
fn utf8_prefix_ok(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

fn sniff(head: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"%!PS", "application/postscript"),
        (b"BZh", "application/x-bzip2"),
        (b"\xfd7zXZ\x00", "application/x-xz"),
        (b"\x7fELF", "application/octet-stream"),
    ];
    MAGIC
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map(|(_, t)| *t)
}

/// What a part holds.
#[derive(Debug)]
pub enum Content {
    /// UTF-8 text (`text/<subtype>; charset=utf-8`), LF line ends, already scanned.
    Text {
        /// `plain` or `html`.
        subtype: &'static str,
        /// The text.
        data: Buffer,
        /// Its scan.
        scan: TextScan,
    },
    /// A file sent as base64.
    File {
        /// The open file.
        file: File,
        /// Its path, for diagnostics.
        path: PathBuf,
        /// `type/subtype` (and parameters) for Content-Type.
        media: String,
        /// The file name to show.
        filename: String,
        /// Content-Disposition inline instead of attachment.
        inline: bool,
    },
    /// A whole message (message/rfc822, RFC 2046 §5.2.1), LF line ends, already scanned.
    Message {
        /// The message.
        data: Buffer,
        /// Its scan.
        scan: TextScan,
        /// The file name to show.
        filename: String,
        /// Content-Disposition inline instead of attachment.
        inline: bool,
    },
    /// `multipart/<subtype>` (RFC 2046 §5.1).
    Multipart {
        /// `mixed` or `alternative`.
        subtype: &'static str,
        /// The parts, in order.
        parts: Vec<Content>,
    },
}

/// Write `content`'s MIME header fields, the empty line, and its body to `w`.
pub fn write(content: &mut Content, allow_8bit: bool, w: &mut dyn Write) -> Result<()> {
    write_part(content, allow_8bit, w, true)
}

fn write_part(content: &mut Content, allow_8bit: bool, w: &mut dyn Write, top: bool) -> Result<()> {
    match content {
        Content::Text {
            subtype,
            data,
            scan,
        } => {
            let cte = scan.choose(allow_8bit);
            let head = format!(
                "Content-Type: text/{subtype}; charset=utf-8\nContent-Transfer-Encoding: {}\n\n",
                cte.name()
            );
            w.write_all(head.as_bytes()).map_err(write_error)?;
            write_text(data, cte, scan.ends_with_newline, w)
        }
        Content::File {
            file,
            path,
            media,
            filename,
            inline,
        } => {
            let mut ct = vec![format!("{media};")];
            ct.extend(fold::parameter("name", filename));
            let mut head = fold::field("Content-Type", &ct);
            head.push_str("Content-Transfer-Encoding: base64\n");
            head.push_str(&disposition(*inline, filename));
            head.push('\n');
            w.write_all(head.as_bytes()).map_err(write_error)?;
            let what = path.display().to_string();
            file.rewind()
                .map_err(|e| Error::io(Code::IoErr, &what, e))?;
            write_base64(file, w, &what)
        }
        Content::Message {
            data,
            scan,
            filename,
            inline,
        } => {
            // RFC 2046 §5.2.1 allows only 7bit, 8bit or binary here; [`message_part`] made
            // anything that fits neither (NULs, lines over 998 octets) a File instead.
            debug_assert!(!scan.controls && scan.longest <= fold::HARD_LIMIT);
            let cte = if scan.ascii {
                Cte::SevenBit
            } else {
                Cte::EightBit
            };
            let mut head = format!(
                "Content-Type: message/rfc822\nContent-Transfer-Encoding: {}\n",
                cte.name()
            );
            head.push_str(&disposition(*inline, filename));
            head.push('\n');
            w.write_all(head.as_bytes()).map_err(write_error)?;
            write_text(data, cte, scan.ends_with_newline, w)
        }
        Content::Multipart { subtype, parts } => {
            let b = boundary();
            let mut head = format!("Content-Type: multipart/{subtype};\n boundary=\"{b}\"\n\n");
            if top {
                // The preamble is for readers without MIME (RFC 2046 §5.1.1): once is enough.
                head.push_str("This is a multi-part message in MIME format.\n");
            }
            w.write_all(head.as_bytes()).map_err(write_error)?;
            for part in parts.iter_mut() {
                // Every part body ends with a line end; the one before "--" belongs to the
                // delimiter (RFC 2046 §5.1.1), hence the extra LF.
                write!(w, "\n--{b}\n").map_err(write_error)?;
                write_part(part, allow_8bit, w, false)?;
            }
            write!(w, "\n--{b}--\n").map_err(write_error)
        }
    }
}

fn disposition(inline: bool, filename: &str) -> String {
    let kind = if inline { "inline;" } else { "attachment;" };
    let mut words = vec![kind.to_string()];
    words.extend(fold::parameter("filename", filename));
    fold::field("Content-Disposition", &words)
}

/// Copy text from `data` in `cte`; the output always ends with a line end.
fn write_text(data: &mut Buffer, cte: Cte, ends_nl: bool, w: &mut dyn Write) -> Result<()> {
    let mut r = data
        .reader()
        .map_err(|e| Error::io(Code::IoErr, "read spooled text", e))?;
    match cte {
        Cte::Base64 => write_base64(&mut r, w, "spooled text"),
        Cte::QuotedPrintable => {
            let mut qp = QpWriter::new(&mut *w);
            io::copy(&mut r, &mut qp).map_err(write_error)?;
            qp.finish().map_err(write_error)?;
            Ok(())
        }
        Cte::SevenBit | Cte::EightBit => {
            io::copy(&mut r, w).map_err(write_error)?;
            if !ends_nl {
                w.write_all(b"\n").map_err(write_error)?;
            }
            Ok(())
        }
    }
}

/// Buffer `r` as text: CRLF becomes LF; scan it.
pub fn spool_text(r: &mut dyn Read, what: &str) -> Result<(Buffer, TextScan)> {
    let mut lf = crate::message::buffer::LineEnds::new(Buffer::new());
    io::copy(r, &mut lf).map_err(|e| Error::io(Code::IoErr, what, e))?;
    let mut spool = lf.finish().map_err(|e| Error::io(Code::IoErr, what, e))?;
    let s = {
        let mut reader = spool
            .reader()
            .map_err(|e| Error::io(Code::IoErr, what, e))?;
        scan(&mut reader).map_err(|e| Error::io(Code::IoErr, what, e))?
    };
    Ok((spool, s))
}

/// Line ends of a whole message for message/rfc822, as bytes stream through: CRLF becomes
/// LF like [`crate::message::buffer::LineEnds`], and a stray bare CR, which may not travel inside a
/// message/rfc822 part (RFC 2046 §5.2.1: 7bit or 8bit, so lines end in CRLF only, RFC 2045
/// §2.7), is repaired.
///
/// A bare CR becomes a line break rather than being dropped. RFC 5321 §2.3.8 lets a CR
/// travel only as a line terminator, and the readers the recipient uses already take it as
/// one (Python's `email` splits lines at CR, LF or CRLF; so did classic Mac OS mail), so
/// the line break shows what they would have shown; dropping it would instead glue two
/// lines, or two header fields, into one. CRs right before an LF belong to that line end
/// (`CR CR LF`, a CRLF converted twice, is one line end, not an empty line that would end
/// the header early); any other CR is a line end of its own.
pub struct MessageLineEnds<W: Write> {
    inner: W,
    crs: usize,
}

impl<W: Write> MessageLineEnds<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        MessageLineEnds { inner, crs: 0 }
    }

    /// The inner writer, as written so far (CRs held back not yet in it).
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Write out the line ends of CRs held back at the end of input; the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.line_ends(&mut Vec::new())?;
        Ok(self.inner)
    }

    /// Add a line end to `out` for each CR held back, writing out as it goes (a run of
    /// CRs as long as the input costs no more memory than any other input).
    fn line_ends(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        while self.crs > 0 {
            let n = self.crs.min(8192);
            out.resize(out.len() + n, b'\n');
            self.crs -= n;
            self.inner.write_all(out)?;
            out.clear();
        }
        Ok(())
    }
}

impl<W: Write> Write for MessageLineEnds<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 1);
        for &b in buf {
            match b {
                b'\r' => self.crs += 1,
                b'\n' => {
                    // CR* LF is one line end.
                    self.crs = 0;
                    out.push(b'\n');
                }
                _ => {
                    self.line_ends(&mut out)?;
                    out.push(b);
                }
            }
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The part for the whole message in `file` (as `-a FILE:message/rfc822` and `--forward`
/// attach it): message/rfc822 in 7bit or 8bit, its line ends repaired by
/// [`MessageLineEnds`], whenever it can travel so.
///
/// RFC 2046 §5.2.1 allows no other encoding for message/rfc822 (base64 there is invalid,
/// and Python's `email`, for one, then finds no message in the part at all). A message
/// that cannot be 7bit or 8bit, because it holds a NUL or a line over 998 octets (RFC 5322
/// §2.1.1, RFC 2045 §2.7–2.8), goes instead as application/octet-stream in base64, byte for
/// byte as it was read, named `.eml` so the recipient's mail program can still open it.
pub fn message_part(
    mut file: File,
    path: PathBuf,
    filename: String,
    inline: bool,
) -> Result<Content> {
    let what = path.display().to_string();
    let mut lf = MessageLineEnds::new(Buffer::new());
    io::copy(&mut file, &mut lf).map_err(|e| Error::io(Code::IoErr, &what, e))?;
    let mut data = lf.finish().map_err(|e| Error::io(Code::IoErr, &what, e))?;
    let scan = {
        let mut reader = data
            .reader()
            .map_err(|e| Error::io(Code::IoErr, &what, e))?;
        scan(&mut reader).map_err(|e| Error::io(Code::IoErr, &what, e))?
    };
    if !scan.controls && scan.longest <= fold::HARD_LIMIT {
        return Ok(Content::Message {
            data,
            scan,
            filename,
            inline,
        });
    }
    file.rewind()
        .map_err(|e| Error::io(Code::IoErr, &what, e))?;
    let filename = if filename.to_ascii_lowercase().ends_with(".eml") {
        filename
    } else {
        format!("{filename}.eml")
    };
    Ok(Content::File {
        file,
        path,
        media: "application/octet-stream".into(),
        filename,
        inline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(s: &[u8]) -> String {
        let mut w = QpWriter::new(Vec::new());
        w.write_all(s).unwrap();
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    fn scanned(s: &[u8]) -> TextScan {
        scan(&mut &s[..]).unwrap()
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(STANDARD.encode(i.as_bytes()), o);
        }
        let data: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
        let mut out = Vec::new();
        write_base64(&mut &data[..], &mut out, "t").unwrap();
        assert!(out.split(|&b| b == b'\n').all(|l| l.len() <= 76));
        assert!(out.ends_with(b"\n"));
    }

    #[test]
    fn quoted_printable_follows_the_rules() {
        assert_eq!(qp(b"a=b\n"), "a=3Db\n");
        assert_eq!(qp(b"end \nx\t\n"), "end=20\nx=09\n");
        assert_eq!(qp("é\n".as_bytes()), "=C3=A9\n");
        assert_eq!(qp(b"no newline"), "no newline=\n");
        assert_eq!(qp(b"cr\rnul\0\n"), "cr=0Dnul=00\n");
        let long = qp(&[b'x'; 200]);
        assert!(long.lines().all(|l| l.len() <= 76), "{long}");
        let body = mailparse::parse_mail(
            format!("Content-Transfer-Encoding: quoted-printable\n\n{long}").as_bytes(),
        )
        .unwrap()
        .get_body()
        .unwrap();
        assert_eq!(body, "x".repeat(200));
    }

    #[test]
    fn scan_chooses_the_encoding() {
        assert_eq!(scanned(b"hi\n").choose(false), Cte::SevenBit);
        assert_eq!(
            scanned("hé\n".as_bytes()).choose(false),
            Cte::QuotedPrintable
        );
        assert_eq!(scanned("hé\n".as_bytes()).choose(true), Cte::EightBit);
        assert_eq!(scanned(&[b'a'; 999]).choose(true), Cte::QuotedPrintable);
        assert_eq!(scanned(&[b'a'; 998]).choose(true), Cte::SevenBit);
        assert_eq!(scanned(b"a\rb\n").choose(true), Cte::QuotedPrintable);
        assert_eq!(
            scanned(b"x\n--=_mailpipe_x\n").choose(true),
            Cte::QuotedPrintable
        );
        assert!(!scanned(b"x").ends_with_newline);
        assert_eq!(scanned(b"ok\xff\n").bad_utf8, Some(2));
        assert_eq!(scanned("é".as_bytes()).bad_utf8, None);
        assert_eq!(scanned(&"é".as_bytes()[..1]).bad_utf8, Some(0));
    }

    #[test]
    fn message_line_ends_repair_bare_crs() {
        let repair = |chunks: &[&[u8]]| {
            let mut w = MessageLineEnds::new(Vec::new());
            for c in chunks {
                w.write_all(c).unwrap();
            }
            String::from_utf8(w.finish().unwrap()).unwrap()
        };
        assert_eq!(repair(&[b"a\r\nb\rc\r\r\nd\r\re\r"]), "a\nb\nc\nd\n\ne\n");
        // A CR at the end of one write and its LF at the start of the next.
        assert_eq!(repair(&[b"a\r", b"\nb\r", b"c"]), "a\nb\nc");
        assert_eq!(repair(&[b"end\n\r"]), "end\n\n");
    }

    #[test]
    fn scan_checks_utf8_across_chunk_boundaries() {
        // A reader that hands out one byte at a time splits every character.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.split_first() {
                    Some((b, rest)) if !buf.is_empty() => {
                        buf[0] = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let s = scan(&mut Slow("日本語 ok\n".as_bytes())).unwrap();
        assert_eq!(s.bad_utf8, None);
        assert!(!s.ascii);
    }

    #[test]
    fn media_types_from_name_and_content() {
        assert_eq!(
            media_type(Path::new("a.pdf"), b"%PDF-1.4"),
            "application/pdf"
        );
        assert_eq!(
            media_type(Path::new("noext"), b"%PDF-1.4"),
            "application/pdf"
        );
        assert_eq!(media_type(Path::new("noext"), b"plain words"), "text/plain");
        assert_eq!(
            media_type(Path::new("noext"), b"\x00\x01"),
            "application/octet-stream"
        );
        assert_eq!(
            media_type(Path::new("x.txt"), b"\x89PNG\r\n\x1a\nxx"),
            "image/png"
        );
        assert_eq!(media_type(Path::new("x.png"), b"whatever"), "image/png");
    }
}
