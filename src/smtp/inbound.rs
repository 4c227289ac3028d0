//! What an SMTP server reads as DATA (and BDAT): the end-of-data rule, dot-unstuffing, and the
//! checks that make SMTP smuggling impossible here. This is the only DATA decoder; the
//! client's side, what gets sent, is [`super::data`], and the tests here read that encoder's
//! output back the way mreceive does (through [`crate::net::conn::Conn::read_data`]), so the two
//! are checked against each other: whatever the client sends arrives whole, ending once.
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

use crate::message::header;
use std::io::Write;

/// The longest text line, CRLF included (RFC 5321 §4.5.3.1.6).
const MAX_TEXT_LINE: usize = 1000;

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
    /// A line of content was written.
    started: bool,
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
            started: false,
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
        // The dot a client added for transparency counts toward neither the size (RFC 1870
        // §3: "not ... doubled quoting dots") nor the line length (RFC 5321 §4.5.3.1.6).
        let stuffed =
            usize::from(!self.chunked && self.after_crlf && content.first() == Some(&b'.'));
        self.size -= stuffed as u64;
        if line.len() - stuffed > MAX_TEXT_LINE {
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
        if !self.started {
            self.started = true;
            // Our Received: goes above the content: a first line that would fold into it
            // (the client adding "(authenticated as …)" to our trace) makes the content all
            // body, after an empty line.
            if header::would_fold(content) {
                self.in_header = false;
                if self.sink.write_all(b"\n").is_err() {
                    self.flag(Fault::Sink);
                }
            }
        }
        if self.in_header {
            if content.is_empty() {
                self.in_header = false;
            } else if header::field_name(content)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"received"))
            {
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

impl<W: Write> crate::net::conn::LineSink for Decoder<W> {
    fn line(&mut self, line: &[u8]) -> bool {
        Decoder::line(self, line)
    }
    fn max_line(&self) -> usize {
        Decoder::max_line(self)
    }
    fn overlong(&mut self, n: usize) {
        Decoder::overlong(self, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::conn::{Conn, Io, Line};
    use crate::smtp::data::encode;
    use std::io::{self, Read};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const LIMITS: Limits = Limits {
        max_size: 1 << 20,
        max_received: 100,
        normalize: false,
    };

    const NORMALIZE: Limits = Limits {
        normalize: true,
        ..LIMITS
    };

    /// The client's bytes, at most `chunk` octets per read (where reads split lines must not
    /// matter); `pos` is how far the server has read.
    struct Wire {
        bytes: Arc<[u8]>,
        pos: Arc<AtomicUsize>,
        chunk: usize,
    }

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let p = self.pos.load(Ordering::SeqCst);
            let n = (self.bytes.len() - p).min(self.chunk).min(buf.len());
            buf[..n].copy_from_slice(&self.bytes[p..p + n]);
            self.pos.store(p + n, Ordering::SeqCst);
            Ok(n)
        }
    }

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Io for Wire {}

    /// What the server made of some DATA content.
    #[derive(Debug, PartialEq, Eq)]
    struct Received {
        /// The end of data was found (else the client hung up first).
        ended: bool,
        fault: Option<Fault>,
        /// What went to the sink (LF line ends).
        content: Vec<u8>,
        /// The bytes after the end of data (pipelined commands).
        rest: Vec<u8>,
    }

    /// Read `wire` as mreceive reads DATA after its 354: [`Conn::read_data`] into a
    /// [`Decoder`], the client's bytes arriving `chunk` octets per read.
    fn receive_in(wire: &[u8], limits: Limits, chunk: usize) -> Received {
        let pos = Arc::new(AtomicUsize::new(0));
        let mut conn = Conn::new(Box::new(Wire {
            bytes: wire.into(),
            pos: Arc::clone(&pos),
            chunk,
        }));
        let mut d = Decoder::new(Vec::new(), limits);
        let ended = conn.read_data(&mut d).expect("reading from memory");
        let mut rest = conn.pending().to_vec();
        rest.extend_from_slice(&wire[pos.load(Ordering::SeqCst)..]);
        Received {
            ended,
            fault: d.fault(),
            content: d.into_inner(),
            rest,
        }
    }

    /// [`receive_in`] in one read, and in small reads as well (one octet each for short
    /// content), which must give the same.
    fn receive(wire: &[u8], limits: Limits) -> Received {
        let r = receive_in(wire, limits, usize::MAX);
        let small = if wire.len() <= 512 { 1 } else { 7 };
        if wire.len() <= 1 << 16 {
            let again = receive_in(wire, limits, small);
            assert_eq!(again, r, "reads of {small} octets changed the result");
        }
        r
    }

    /// Feed `data` as the server does; returns (ended, fault, content, rest after the end).
    fn decode(data: &[u8], limits: Limits) -> (bool, Option<Fault>, Vec<u8>, Vec<u8>) {
        let r = receive(data, limits);
        (r.ended, r.fault, r.content, r.rest)
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

    /// The smuggling shapes (SMTP smuggling, 2023), each as is and with a NUL put at every
    /// place in it.
    fn smuggling_shapes() -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for shape in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\r.\r\n",
        ] {
            all.push(shape.to_vec());
            for i in 0..=shape.len() {
                let mut s = shape.to_vec();
                s.insert(i, 0);
                all.push(s);
            }
        }
        all
    }

    #[test]
    fn every_smuggling_variant_is_content_and_refused() {
        for evil in smuggling_shapes() {
            let nul = evil.contains(&0);
            let mut data = b"Subject: x\r\n\r\nhello".to_vec();
            data.extend_from_slice(&evil);
            data.extend_from_slice(b"MAIL FROM:<evil@x.test>\r\n");
            for limits in [LIMITS, NORMALIZE] {
                // The shape alone never ends the data.
                let r = receive(&data, limits);
                assert!(!r.ended, "{evil:?} ended the data ({limits:?})");
                // Only the real end does, and nothing after it is content.
                let mut whole = data.clone();
                whole.extend_from_slice(b"more\r\n.\r\nNEXT\r\n");
                let r = receive(&whole, limits);
                assert!(r.ended, "{evil:?}");
                assert_eq!(r.rest, b"NEXT\r\n", "{evil:?}: ended early ({limits:?})");
                match (limits.normalize, nul) {
                    (_, true) => assert!(
                        matches!(r.fault, Some(Fault::Nul | Fault::BareLineEnd)),
                        "{evil:?} not refused"
                    ),
                    (false, false) => assert_eq!(r.fault, Some(Fault::BareLineEnd), "{evil:?}"),
                    (true, false) => {
                        // Every bare CR and LF became a line end; the command stayed content.
                        assert_eq!(r.fault, None, "{evil:?}");
                        assert!(!r.content.contains(&b'\r'), "bare CR out of {evil:?}");
                        assert!(
                            memchr::memmem::find(&r.content, b"\nMAIL FROM").is_some(),
                            "{evil:?}: the smuggled command must stay content"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn content_cannot_continue_the_header_above_it() {
        // A first line with leading white space would fold into our Received: header.
        for lead in [&b" "[..], b"\t", b". "] {
            let wire = [lead, b"(authenticated)\r\nSubject: x\r\n\r\nb\r\n.\r\n"].concat();
            let (ended, fault, out, _) = decode(&wire, LIMITS);
            assert!(ended);
            assert_eq!(fault, None);
            let lead = lead.strip_prefix(b".").unwrap_or(lead);
            let want = [b"\n", lead, b"(authenticated)\nSubject: x\n\nb\n"].concat();
            assert_eq!(out, want);
        }
        let mut d = Decoder::chunked(Vec::new(), LIMITS);
        d.chunk(b"\tX: y\r\n");
        d.finish();
        assert_eq!(d.into_inner(), b"\n\tX: y\n");
        // Only the very first line: later ones fold into the client's own fields.
        let (_, _, out, _) = decode(b"Subject: x\r\n y\r\n\r\nb\r\n.\r\n", LIMITS);
        assert_eq!(out, b"Subject: x\n y\n\nb\n");
    }

    #[test]
    fn normalizes_bare_line_ends_when_asked() {
        let (ended, fault, out, _) = decode(b"a\nb\rc\r\n..d\r\n.\r\n", NORMALIZE);
        assert!(ended);
        assert_eq!(fault, None);
        assert_eq!(out, b"a\nb\nc\n.d\n");
    }

    #[test]
    fn survives_a_flood_of_bare_crs() {
        // Time and stack stay linear in the input, however many bare CRs it holds (the bound
        // is far above what a linear pass takes, even unoptimized on a busy machine).
        let start = std::time::Instant::now();
        // As one line of a mebibyte: too long, refused, and the real end still found.
        let mut one = vec![b'\r'; 1 << 20];
        one.extend_from_slice(b"\r\n.\r\nNEXT\r\n");
        // As lines within the limit: refused as bare, or each CR a line end when normalizing.
        let mut lines = [&[b'\r'; 998][..], b"\r\n"].concat().repeat(1000);
        lines.extend_from_slice(b".\r\nNEXT\r\n");
        for (wire, limits, fault) in [
            (&one, LIMITS, Some(Fault::LineTooLong)),
            (&one, NORMALIZE, Some(Fault::LineTooLong)),
            (&lines, LIMITS, Some(Fault::BareLineEnd)),
            (&lines, NORMALIZE, None),
        ] {
            let r = receive(wire, limits);
            assert!(r.ended);
            assert_eq!(r.rest, b"NEXT\r\n");
            assert_eq!(r.fault, fault, "{limits:?}");
            if fault.is_none() {
                assert_eq!(r.content, vec![b'\n'; 1000 * 999]);
            }
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
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
        // A dot-stuffed line: 1001 octets on the wire, 1000 as the client meant it.
        let ok = format!(".{}\r\n.\r\n", ".".repeat(998));
        assert_eq!(decode(ok.as_bytes(), LIMITS).1, None);
        let exact = Limits {
            max_size: 12,
            ..LIMITS
        };
        // Twelve octets of message, thirteen with the stuffed dot: at SIZE, not over it.
        assert_eq!(decode(b"..123456789\r\n.\r\n", exact).1, None);
        assert_eq!(
            decode(b"x.123456789\r\n.\r\n", exact).1,
            Some(Fault::TooBig)
        );
        // Longer than the reader's buffer: dropped as it comes, the end still found.
        let huge = format!("{}\r\n.\r\nNEXT\r\n", "x".repeat(200_000));
        let (ended, fault, _, rest) = decode(huge.as_bytes(), LIMITS);
        assert_eq!((ended, fault), (true, Some(Fault::LineTooLong)));
        assert_eq!(rest, b"NEXT\r\n");
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
        // Any case, folded, and with white space before the colon (RFC 5322 §4.5.3).
        let hops = "RECEIVED : from x\r\n\tby y\r\nreceived\t:z\r\n".repeat(51) + "\r\n.\r\n";
        assert_eq!(decode(hops.as_bytes(), LIMITS).1, Some(Fault::Loop));
        let other = "Received-SPF: pass\r\n".repeat(101) + "\r\n.\r\n";
        assert_eq!(decode(other.as_bytes(), LIMITS).1, None);
    }

    // The client's encoder against this decoder: what one sends, the other reads back.

    /// What the server should store for `msg` sent through [`encode`]: every line end
    /// (CRLF, bare CR, bare LF) one line end, a last one added, written as LF (the Maildir
    /// convention; on the wire each was CRLF).
    fn stored(msg: &[u8]) -> Vec<u8> {
        let mut want = Vec::new();
        let mut k = 0;
        while k < msg.len() {
            match (msg[k], msg.get(k + 1)) {
                (b'\r', Some(b'\n')) => {
                    want.push(b'\n');
                    k += 1;
                }
                (b'\r' | b'\n', _) => want.push(b'\n'),
                (b, _) => want.push(b),
            }
            k += 1;
        }
        if !want.is_empty() && !want.ends_with(b"\n") {
            want.push(b'\n');
        }
        want
    }

    /// What the server read for `msg` sent through [`encode`] is the message as sent. A NUL
    /// passes the encoder but the server refuses it; what it stored before is then whole
    /// lines of the message.
    fn assert_stored(msg: &[u8], fault: Option<Fault>, content: &[u8]) {
        let want = stored(msg);
        if msg.contains(&0) {
            assert_eq!(fault, Some(Fault::Nul), "{msg:?}");
            assert!(want.starts_with(content), "{msg:?}");
        } else {
            assert_eq!((fault, content), (None, &want[..]), "{msg:?}");
        }
    }

    /// Send `msg` through the encoder and read it back: exactly one end of data, at the very
    /// end, and the message as sent.
    fn round_trip(msg: &[u8], limits: Limits, chunk: usize) {
        let r = receive_in(&encode(msg), limits, chunk);
        assert!(
            r.ended && r.rest.is_empty(),
            "{msg:?}: end of data not at the end"
        );
        assert_stored(msg, r.fault, &r.content);
    }

    #[test]
    fn reads_back_what_the_encoder_sends() {
        let mut samples: Vec<Vec<u8>> = [
            &b"a\r\n.\r\n..x\r\nend"[..],
            b"",
            b".",
            b"x\r\n\r\n",
            b".\r\n.\r\n",
            b"x\r\n.\r\nMAIL FROM:<evil@x>\r\n",
            b"x\r\r\n.\n\n.\r\r",
        ]
        .iter()
        .map(|m| m.to_vec())
        .collect();
        for shape in smuggling_shapes() {
            samples.push([&b"x"[..], &shape, b"y"].concat());
        }
        for msg in &samples {
            for limits in [LIMITS, NORMALIZE] {
                round_trip(msg, limits, usize::MAX);
                round_trip(msg, limits, 1);
            }
        }
        // What the client pipelines after the end of data is not part of the message.
        let mut wire = encode(b"x");
        wire.extend_from_slice(b"MAIL FROM:<a@b>\r\n");
        let r = receive(&wire, LIMITS);
        assert_eq!((r.ended, r.fault), (true, None));
        assert_eq!(
            (r.content, r.rest),
            (b"x\n".to_vec(), b"MAIL FROM:<a@b>\r\n".to_vec())
        );
    }

    #[test]
    fn the_encoder_keeps_long_lines_and_the_server_flags_them() {
        // RFC 5321 §4.5.3.1.6: 998 octets of text and CRLF is the longest line; the encoder
        // does not fold, so a longer one reaches the server, which refuses it.
        round_trip(&[b'x'; 998], LIMITS, usize::MAX);
        let r = receive(&encode(&[b'x'; 999]), LIMITS);
        assert_eq!((r.ended, r.fault), (true, Some(Fault::LineTooLong)));
        assert!(r.rest.is_empty());
    }

    #[test]
    fn any_input_survives_encode_then_decode() {
        let alphabet = [b'\r', b'\n', b'.', b'a', 0u8, 0xff];
        let mut x: u32 = 12345;
        let mut msgs = Vec::new();
        for i in 0..20_000u32 {
            let mut msg = Vec::new();
            for _ in 0..(i % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                msg.push(alphabet[x as usize % alphabet.len()]);
            }
            msgs.push(msg);
        }
        // One session carrying them all, as a client pipelines them (RFC 2920): each
        // message's DATA content, then the next command. Reads of an odd size split lines
        // anywhere. (One connection, not one per message, keeps the test fast.)
        let mut wire = Vec::new();
        for msg in &msgs {
            wire.extend_from_slice(&encode(msg));
            wire.extend_from_slice(b"RSET\r\n");
        }
        let wire: Arc<[u8]> = wire.into();
        for limits in [LIMITS, NORMALIZE] {
            let mut conn = Conn::new(Box::new(Wire {
                bytes: Arc::clone(&wire),
                pos: Arc::new(AtomicUsize::new(0)),
                chunk: 4093,
            }));
            for msg in &msgs {
                let mut d = Decoder::new(Vec::new(), limits);
                assert!(
                    conn.read_data(&mut d).expect("reading from memory"),
                    "{msg:?}"
                );
                // The end of data was the very end: what follows is the next command.
                let next = conn.read_line(512).expect("reading from memory");
                assert_eq!(next, Line::Text(b"RSET\r\n".to_vec()), "{msg:?}");
                assert_stored(msg, d.fault(), &d.into_inner());
            }
        }
    }
}
