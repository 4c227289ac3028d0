//! DATA content as a server receives it: the end-of-data rule, dot-unstuffing, and the checks
//! that make SMTP smuggling impossible here.
//!
//! SMTP smuggling (2023) works when two servers disagree on where a message ends: the
//! sender's outbound server passes `\n.\n` (or `\r.\r`, `\n.\r\n`, …) through as content and
//! the receiver takes it as the end of data, so the rest runs as new commands with the
//! sender's reputation. RFC 5321 §4.1.1.4 says only CRLF `.` CRLF ends the data, and §2.3.8
//! that a bare CR or LF must not appear, so the [`Decoder`] ends data *only* at a line `.`
//! that was preceded and followed by a real CRLF, and remembers any bare CR, bare LF or NUL
//! it saw: the message is then refused as a whole once its real end arrives (or, with
//! `normalize`, every bare CR or LF is taken as a line end, for legacy clients). Either way
//! nothing inside a message is ever read as a command.
//!
//! The decoder also enforces the text line limit (RFC 5321 §4.5.3.1.6: 1000 octets with
//! CRLF), the size limit (RFC 1870), and counts `Received:` headers (RFC 5321 §6.3: a
//! message with more than 100 of them is looping). Content goes to the sink with LF line ends,
//! the Maildir convention; the sink is not written past the size limit.
//!
//! BDAT (RFC 3030) content comes in counted chunks with no end line and no dot-stuffing; the
//! [`Decoder::chunked`] mode applies the same line rules to it, joining lines split between
//! chunks.

use std::io::Write;

/// The longest text line, CRLF included (RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 1000;

/// Why a message was refused, found while reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A bare CR or bare LF (not normalizing).
    BareLineEnd,
    /// A NUL byte.
    Nul,
    /// A line over [`MAX_TEXT_LINE`].
    LineTooLong,
    /// More than the size limit.
    TooBig,
    /// More `Received:` headers than allowed.
    Loop,
    /// Writing to the sink failed (our problem, not the client's).
    Sink,
}

/// The limits and choices for one message.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most octets of content, as received.
    pub max_size: u64,
    /// Most `Received:` headers.
    pub max_received: usize,
    /// Take bare CR and bare LF as line ends instead of refusing the message.
    pub normalize: bool,
}

/// Decodes DATA line by line (or BDAT chunk by chunk) into a sink it owns.
pub struct Decoder<W: Write> {
    sink: W,
    limits: Limits,
    /// BDAT: no end line, no dot-unstuffing.
    chunked: bool,
    /// BDAT: the start of a line that continues in the next chunk.
    carry: Vec<u8>,
    /// The previous line ended with a real CRLF (data starts after the DATA command's).
    after_crlf: bool,
    /// The previous call ended inside an overlong line.
    mid_line: bool,
    in_header: bool,
    received: usize,
    size: u64,
    fault: Option<Fault>,
    eight_bit: bool,
}

impl<W: Write> Decoder<W> {
    /// A decoder of DATA content writing to `sink`.
    pub fn new(sink: W, limits: Limits) -> Decoder<W> {
        Decoder {
            sink,
            limits,
            chunked: false,
            carry: Vec::new(),
            after_crlf: true,
            mid_line: false,
            in_header: true,
            received: 0,
            size: 0,
            fault: None,
            eight_bit: false,
        }
    }

    /// A decoder of BDAT chunks writing to `sink`.
    pub fn chunked(sink: W, limits: Limits) -> Decoder<W> {
        Decoder {
            chunked: true,
            ..Decoder::new(sink, limits)
        }
    }

    /// The sink, once the message is complete.
    pub fn into_inner(self) -> W {
        self.sink
    }

    /// BDAT: take the next octets of a chunk (any length, lines may span chunks).
    pub fn chunk(&mut self, mut bytes: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            let (line, rest) = bytes.split_at(i + 1);
            bytes = rest;
            if self.carry.is_empty() {
                self.line(line);
            } else {
                let mut l = std::mem::take(&mut self.carry);
                l.extend_from_slice(line);
                self.line(&l);
            }
        }
        self.carry.extend_from_slice(bytes);
        if self.carry.len() > MAX_TEXT_LINE {
            self.overlong(self.carry.len());
            self.carry.clear();
        }
    }

    /// BDAT LAST: a last line without a line end gets CRLF (RFC 3030 leaves it to us).
    pub fn finish(&mut self) {
        if !self.carry.is_empty() {
            let mut l = std::mem::take(&mut self.carry);
            l.extend_from_slice(b"\r\n");
            self.line(&l);
        }
    }

    /// The longest line the reader should gather before calling [`Decoder::overlong`].
    pub fn max_line(&self) -> usize {
        MAX_TEXT_LINE
    }

    /// The first fault found, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Octets received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True when content had bytes over 127.
    pub fn eight_bit(&self) -> bool {
        self.eight_bit
    }

    fn flag(&mut self, f: Fault) {
        if self.fault.is_none() {
            self.fault = Some(f);
        }
    }

    /// `n` octets of a line longer than the limit, without its end, were dropped.
    pub fn overlong(&mut self, n: usize) {
        self.size += n as u64;
        self.flag(Fault::LineTooLong);
        self.mid_line = true;
        self.after_crlf = false;
    }

    /// Take one line ending in LF. Returns true at the end of data.
    pub fn line(&mut self, line: &[u8]) -> bool {
        self.size += line.len() as u64;
        if self.mid_line {
            // The tail of an overlong line: never a line of its own, never the end.
            self.mid_line = false;
            self.after_crlf = line.ends_with(b"\r\n");
            return false;
        }
        let crlf = line.ends_with(b"\r\n");
        let content = &line[..line.len() - if crlf { 2 } else { 1 }];
        // RFC 5321 §4.1.1.4: the end is CRLF "." CRLF and nothing else.
        if crlf && self.after_crlf && content == b"." && !self.chunked {
            return true;
        }
        if line.len() > MAX_TEXT_LINE {
            self.flag(Fault::LineTooLong);
        }
        if self.size > self.limits.max_size {
            self.flag(Fault::TooBig);
        }
        if memchr::memchr(0, content).is_some() {
            self.flag(Fault::Nul);
        }
        let bare = !crlf || memchr::memchr(b'\r', content).is_some();
        if bare && !self.limits.normalize {
            self.flag(Fault::BareLineEnd);
        }
        if !self.eight_bit && content.iter().any(|&b| b >= 0x80) {
            self.eight_bit = true;
        }
        // Dot-stuffing is DATA's; BDAT content is as is (RFC 3030 §2).
        let started_after_crlf = self.after_crlf && !self.chunked;
        self.after_crlf = crlf;
        if self.fault.is_some() {
            // The message will be refused: read on to its end, store nothing more.
            return false;
        }
        if bare {
            // Normalizing: every bare CR and the bare LF end a line of their own. Only the
            // first piece can start after a real CRLF, so only it is dot-unstuffed.
            for (i, piece) in content.split(|&b| b == b'\r').enumerate() {
                self.content_line(piece, i == 0 && started_after_crlf);
            }
        } else {
            self.content_line(content, started_after_crlf);
        }
        false
    }

    /// One line of content without its line end.
    fn content_line(&mut self, content: &[u8], unstuff: bool) {
        // RFC 5321 §4.5.2: a line starting with a dot had one added by the client.
        let content = match content {
            [b'.', rest @ ..] if unstuff => rest,
            c => c,
        };
        if self.in_header {
            if content.is_empty() {
                self.in_header = false;
            } else if content.len() >= 9 && content[..9].eq_ignore_ascii_case(b"received:") {
                self.received += 1;
                if self.received > self.limits.max_received {
                    self.flag(Fault::Loop);
                    return;
                }
            }
        }
        let r = self
            .sink
            .write_all(content)
            .and_then(|()| self.sink.write_all(b"\n"));
        if r.is_err() {
            self.flag(Fault::Sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_size: 1 << 20,
        max_received: 100,
        normalize: false,
    };

    /// Feed `data` split at LF; returns (ended, fault, content, rest after the end).
    fn decode(data: &[u8], limits: Limits) -> (bool, Option<Fault>, Vec<u8>, Vec<u8>) {
        let mut d = Decoder::new(Vec::new(), limits);
        let mut pos = 0;
        let mut ended = false;
        while let Some(i) = memchr::memchr(b'\n', &data[pos..]) {
            let end = pos + i + 1;
            if d.line(&data[pos..end]) {
                ended = true;
                pos = end;
                break;
            }
            pos = end;
        }
        let fault = d.fault();
        (ended, fault, d.into_inner(), data[pos..].to_vec())
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf_and_unstuffs() {
        let (ended, fault, out, rest) =
            decode(b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n", LIMITS);
        assert!(ended);
        assert_eq!(fault, None);
        assert_eq!(out, b"Subject: x\n\n.dot\nbody\n");
        assert_eq!(rest, b"QUIT\r\n");
        // An empty message.
        assert!(decode(b".\r\n", LIMITS).0);
    }

    #[test]
    fn every_smuggling_variant_is_content_and_refused() {
        for evil in [
            &b"\n.\n"[..],
            b"\n.\r\n",
            b"\r.\r",
            b"\r.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\r\n\0.\r\n",
            b"\r\n.\0\r\n",
        ] {
            let mut data = b"Subject: x\r\n\r\nhello".to_vec();
            data.extend_from_slice(evil);
            data.extend_from_slice(b"MAIL FROM:<evil@x.test>\r\nmore\r\n.\r\nNEXT\r\n");
            let (ended, fault, _, rest) = decode(&data, LIMITS);
            assert!(ended, "{evil:?}");
            assert!(fault.is_some(), "{evil:?} not refused");
            assert_eq!(rest, b"NEXT\r\n", "{evil:?}: ended early");
            let normal = Limits {
                normalize: true,
                ..LIMITS
            };
            let (ended, fault, out, rest) = decode(&data, normal);
            assert!(ended);
            assert_eq!(rest, b"NEXT\r\n", "{evil:?}: normalizing ended early");
            assert!(
                fault == Some(Fault::Nul) || memchr::memmem::find(&out, b"MAIL FROM").is_some(),
                "{evil:?}: the smuggled command must stay content"
            );
        }
    }

    #[test]
    fn normalizes_bare_line_ends_when_asked() {
        let normal = Limits {
            normalize: true,
            ..LIMITS
        };
        let (ended, fault, out, _) = decode(b"a\nb\rc\r\n..d\r\n.\r\n", normal);
        assert!(ended);
        assert_eq!(fault, None);
        assert_eq!(out, b"a\nb\nc\n.d\n");
    }

    #[test]
    fn chunks_join_lines_and_keep_dots() {
        let mut d = Decoder::chunked(Vec::new(), LIMITS);
        for c in [&b"Subject: x\r"[..], b"\n\r\n.\r\n..two\r", b"\nlast"] {
            d.chunk(c);
        }
        d.finish();
        assert_eq!(d.fault(), None);
        assert_eq!(d.into_inner(), b"Subject: x\n\n.\n..two\nlast\n");
        let mut d = Decoder::chunked(Vec::new(), LIMITS);
        d.chunk(b"a\nb\r\n");
        assert_eq!(d.fault(), Some(Fault::BareLineEnd));
        let mut d = Decoder::chunked(Vec::new(), LIMITS);
        for _ in 0..3 {
            d.chunk(&[b'x'; 400]);
        }
        d.chunk(b"\r\nok\r\n");
        assert_eq!(d.fault(), Some(Fault::LineTooLong));
    }

    #[test]
    fn limits_and_loops() {
        let long = format!("{}\r\n.\r\n", "x".repeat(999));
        assert_eq!(decode(long.as_bytes(), LIMITS).1, Some(Fault::LineTooLong));
        let ok = format!("{}\r\n.\r\n", "x".repeat(998));
        assert_eq!(decode(ok.as_bytes(), LIMITS).1, None);
        let small = Limits {
            max_size: 10,
            ..LIMITS
        };
        let (ended, fault, out, _) = decode(b"0123456789\r\nabc\r\n.\r\n", small);
        assert!(ended);
        assert_eq!(fault, Some(Fault::TooBig));
        assert!(out.len() <= 12);
        let hops = "Received: from x\r\n".repeat(101) + "\r\nbody\r\n.\r\n";
        assert_eq!(decode(hops.as_bytes(), LIMITS).1, Some(Fault::Loop));
        let hops = "Received: from x\r\n".repeat(100) + "\r\nReceived: body\r\n.\r\n";
        assert_eq!(decode(hops.as_bytes(), LIMITS).1, None);
    }
}
