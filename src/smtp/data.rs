//! The DATA encoder: message bytes in, SMTP DATA content out (RFC 5321 §4.5.2, §2.3.8).
//!
//! Whatever line ends the input has (LF from a Unix pipe, CRLF, a stray CR), what goes on the
//! wire has only CRLF: a bare CR or LF is where SMTP smuggling lives, because servers disagree
//! on whether `\n.\n` ends the data. Every line that starts with a dot gets a second one, and
//! the content ends with exactly one `CRLF.CRLF`, so the receiver's idea of where the message
//! ends is ours whatever the input holds (NUL bytes and 8-bit data pass unchanged).
//! It streams: memory use is the output buffer, never the message.

use std::io::{self, Write};

/// How much encoded output is gathered before one write to the inner writer. Large writes
/// keep the syscall and packet count down; the socket layer decides segmenting.
const BUFFER: usize = 64 * 1024;

/// Encodes a message into DATA content as it is written; call [`DataEncoder::finish`] to
/// write the terminator.
pub struct DataEncoder<W: Write> {
    inner: W,
    out: Vec<u8>,
    /// At the start of a line (a dot here must be doubled).
    line_start: bool,
    /// The previous input byte was a CR whose line end is not written yet.
    pending_cr: bool,
    /// Message octets written so far, as encoded (for logs and SIZE checks).
    encoded: u64,
}

impl<W: Write> DataEncoder<W> {
    /// Wrap `inner`; nothing is written until the buffer fills or [`finish`] is called.
    ///
    /// [`finish`]: DataEncoder::finish
    pub fn new(inner: W) -> DataEncoder<W> {
        DataEncoder {
            inner,
            out: Vec::with_capacity(BUFFER + 2),
            line_start: true,
            pending_cr: false,
            encoded: 0,
        }
    }

    /// Bytes of encoded content so far (without the terminator).
    pub fn encoded_len(&self) -> u64 {
        self.encoded + self.out.len() as u64
    }

    fn push_crlf(&mut self) {
        self.out.extend_from_slice(b"\r\n");
        self.line_start = true;
    }

    fn drain(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.inner.write_all(&self.out)?;
            self.encoded += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    /// End the content: close an unterminated last line, append `.CRLF`, write everything
    /// out in one piece with what is buffered, flush, and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending_cr {
            self.pending_cr = false;
            self.push_crlf();
        }
        if !self.line_start {
            self.push_crlf();
        }
        let body = self.out.len();
        self.out.extend_from_slice(b".\r\n");
        self.inner.write_all(&self.out)?;
        self.encoded += body as u64;
        self.out.clear();
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for DataEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.pending_cr {
                // CR then LF is one line end; CR then anything else is a bare CR, which we
                // also turn into a line end rather than send.
                self.pending_cr = false;
                self.push_crlf();
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            if self.line_start && rest[0] == b'.' {
                // RFC 5321 §4.5.2: a line starting with a period gets one more.
                self.out.push(b'.');
            }
            // Copy the run of ordinary bytes up to the next CR or LF in one go.
            let run = rest
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(rest.len());
            if run > 0 {
                self.out.extend_from_slice(&rest[..run]);
                self.line_start = false;
                rest = &rest[run..];
            }
            match rest.first() {
                Some(b'\n') => {
                    self.push_crlf();
                    rest = &rest[1..];
                }
                Some(b'\r') => {
                    self.pending_cr = true;
                    rest = &rest[1..];
                }
                _ => {}
            }
            if self.out.len() >= BUFFER {
                self.drain()?;
            }
        }
        Ok(buf.len())
    }

    /// Pushes out complete buffered content (not the terminator).
    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}

/// What a server does with a bare CR or LF inside DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareLineEnds {
    /// Note it as an error (reply 5xx after the end of data): RFC 5321 §2.3.8 forbids them.
    Refuse,
    /// Turn each into CRLF (never into an end of data).
    Normalize,
}

/// Why a server must refuse the data it read (after reading to the end of data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    /// A CR or LF that is not part of CRLF (RFC 5321 §2.3.8; SMTP smuggling).
    BareLineEnd,
    /// A line longer than 1000 octets with its CRLF (RFC 5321 §4.5.3.1.6).
    LineTooLong,
}

impl DataError {
    /// The reply a server sends after the end of data.
    pub fn reply(self) -> super::Reply {
        use super::{EnhancedCode, Reply};
        match self {
            DataError::BareLineEnd => Reply::new(
                550,
                Some(EnhancedCode::new(5, 6, 0)),
                "bare CR or LF in message data (RFC 5321 section 2.3.8)",
            ),
            DataError::LineTooLong => Reply::new(
                550,
                Some(EnhancedCode::new(5, 6, 0)),
                "message line longer than 1000 octets",
            ),
        }
    }
}

/// The longest text line, CRLF excluded (RFC 5321 §4.5.3.1.6: 1000 with it).
pub const MAX_TEXT_LINE: usize = 998;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum De {
    /// At the start of a line (after CRLF, or the first byte).
    Start,
    /// A dot at the start of a line.
    Dot,
    /// Dot and CR at the start of a line: LF now ends the data.
    DotCr,
    /// Inside a line.
    Mid,
    /// A CR inside a line.
    Cr,
}

/// The server side of [`DataEncoder`]: finds the end of data (only `CRLF.CRLF`), removes
/// dot-stuffing, and notes bare CR/LF and overlong lines, streaming with no buffering of
/// its own. Output keeps CRLF line ends.
#[derive(Debug)]
pub struct DataDecoder {
    state: De,
    policy: BareLineEnds,
    line: usize,
    error: Option<DataError>,
}

impl DataDecoder {
    /// A decoder at the start of the data (just after the 354 reply).
    pub fn new(policy: BareLineEnds) -> DataDecoder {
        DataDecoder {
            state: De::Start,
            policy,
            line: 0,
            error: None,
        }
    }

    /// The first violation seen, if any; the server replies with it after the end of data.
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    fn note(&mut self, e: DataError) {
        self.error.get_or_insert(e);
    }

    fn bare(&mut self, out: &mut Vec<u8>) {
        if self.policy == BareLineEnds::Normalize {
            out.extend_from_slice(b"\r\n");
        } else {
            self.note(DataError::BareLineEnd);
        }
        self.line = 0;
    }

    fn text(&mut self, b: u8, out: &mut Vec<u8>) {
        self.line += 1;
        if self.line > MAX_TEXT_LINE {
            self.note(DataError::LineTooLong);
        }
        out.push(b);
    }

    /// Decode `input`, appending message bytes to `out`. Returns `Some(n)` when the end of
    /// data was found: `input[..n]` was data, `input[n..]` is what the client pipelined after.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (De::DotCr, b'\n') => return Some(i),
                (De::Start, b'.') => De::Dot,
                (De::Dot, b'\r') => De::DotCr,
                (De::Start | De::Mid, b'\r') => De::Cr,
                (De::Cr, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    self.line = 0;
                    De::Start
                }
                // After a bare line end no line starts, for the end of data: "\n.\r\n" is
                // data. (A dot there is content, not stuffing.)
                (De::Start | De::Mid, b'\n') => {
                    self.bare(out);
                    De::Mid
                }
                // "\n.\n" and friends: the dot is content, the LF bare; never an end.
                (De::Dot, b'\n') => {
                    self.text(b'.', out);
                    self.bare(out);
                    De::Mid
                }
                (De::Cr | De::DotCr, _) => {
                    if self.state == De::DotCr {
                        self.text(b'.', out);
                    }
                    // A bare CR: a line end when normalizing, else data (and an error).
                    if self.policy == BareLineEnds::Normalize {
                        self.bare(out);
                    } else {
                        self.note(DataError::BareLineEnd);
                        out.push(b'\r');
                    }
                    // This byte starts over inside a line (a loop, not recursion: input
                    // can hold any number of bare CRs).
                    i -= 1;
                    De::Mid
                }
                // RFC 5321 §4.5.2: the first dot of a line is removed.
                (De::Dot, _) => {
                    self.text(b, out);
                    De::Mid
                }
                (De::Start | De::Mid, _) => {
                    self.text(b, out);
                    De::Mid
                }
            };
        }
        None
    }
}

/// Encode a whole message in memory (tests and small messages).
pub fn encode(message: &[u8]) -> Vec<u8> {
    let mut e = DataEncoder::new(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(message);
    e.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(content: &[u8], policy: BareLineEnds) -> (Vec<u8>, Option<usize>, Option<DataError>) {
        let mut d = DataDecoder::new(policy);
        let mut out = Vec::new();
        let end = d.feed(content, &mut out);
        // Byte by byte gives the same.
        let mut d2 = DataDecoder::new(policy);
        let mut out2 = Vec::new();
        let mut end2 = None;
        for (i, b) in content.iter().enumerate() {
            if let Some(n) = d2.feed(std::slice::from_ref(b), &mut out2) {
                end2 = Some(i + n);
                break;
            }
        }
        assert_eq!((&out, end), (&out2, end2), "chunking changed the result");
        (out, end, d.error())
    }

    #[test]
    fn decoder_round_trips_the_encoder() {
        for msg in [
            &b"a\r\n.\r\n..x\r\nend"[..],
            b"",
            b".",
            b"x\r\n\r\n",
            b".\r\n.\r\n",
        ] {
            let wire = encode(msg);
            let (out, end, err) = decode(&wire, BareLineEnds::Refuse);
            assert_eq!(end, Some(wire.len()));
            assert_eq!(err, None);
            let mut want = msg.to_vec();
            if !want.is_empty() && !want.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            assert_eq!(out, want, "{:?}", String::from_utf8_lossy(msg));
        }
        let (_, end, _) = decode(b"x\r\n.\r\nMAIL FROM:<a@b>\r\n", BareLineEnds::Refuse);
        assert_eq!(end, Some(6));
    }

    #[test]
    fn decoder_never_ends_on_a_smuggling_shape() {
        for shape in [
            &b"x\n.\ny"[..],
            b"x\n.\r\ny",
            b"x\r.\ry",
            b"x\r.\r\ny",
            b"x\r\n.\ny",
            b"x\r\n.\ry",
            b"x\r\n\x00.\r\ny",
            b"x\r\n.\x00\r\ny",
        ] {
            for policy in [BareLineEnds::Refuse, BareLineEnds::Normalize] {
                let (_, end, err) = decode(shape, policy);
                assert_eq!(end, None, "{shape:?} ended the data ({policy:?})");
                if policy == BareLineEnds::Refuse && !shape.contains(&0) {
                    assert_eq!(err, Some(DataError::BareLineEnd), "{shape:?}");
                }
                let mut content = shape.to_vec();
                content.extend_from_slice(b"\r\n.\r\n");
                let (out, end, _) = decode(&content, policy);
                assert_eq!(end, Some(content.len()), "{shape:?}");
                if policy == BareLineEnds::Normalize {
                    for (i, &b) in out.iter().enumerate() {
                        assert!(
                            b != b'\n' || out[i - 1] == b'\r',
                            "bare LF out of {shape:?}"
                        );
                        assert!(
                            b != b'\r' || out.get(i + 1) == Some(&b'\n'),
                            "bare CR out of {shape:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn any_input_survives_encode_then_decode() {
        let alphabet = [b'\r', b'\n', b'.', b'a', 0u8, 0xff];
        let mut x: u32 = 12345;
        for i in 0..20_000u32 {
            let mut msg = Vec::new();
            for _ in 0..(i % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                msg.push(alphabet[x as usize % alphabet.len()]);
            }
            let wire = encode(&msg);
            let (out, end, err) = decode(&wire, BareLineEnds::Refuse);
            assert_eq!((end, err), (Some(wire.len()), None), "{msg:?}");
            // What arrives is the input with every line end as CRLF, ending in one.
            let mut want = Vec::new();
            let mut k = 0;
            while k < msg.len() {
                match (msg[k], msg.get(k + 1)) {
                    (b'\r', Some(b'\n')) => {
                        want.extend_from_slice(b"\r\n");
                        k += 1;
                    }
                    (b'\r' | b'\n', _) => want.extend_from_slice(b"\r\n"),
                    (b, _) => want.push(b),
                }
                k += 1;
            }
            if !want.is_empty() && !want.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            assert_eq!(out, want, "{msg:?}");
        }
    }

    #[test]
    fn decoder_survives_a_flood_of_bare_crs() {
        let mut content = vec![b'\r'; 1 << 20];
        content.extend_from_slice(b"\r\n.\r\n");
        let (out, end, err) = decode(&content, BareLineEnds::Refuse);
        assert_eq!(end, Some(content.len()));
        assert_eq!(err, Some(DataError::BareLineEnd));
        assert_eq!(out.len(), (1 << 20) + 2);
    }

    #[test]
    fn decoder_notes_long_lines() {
        let mut content = vec![b'x'; MAX_TEXT_LINE];
        content.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(decode(&content, BareLineEnds::Refuse).2, None);
        content.insert(0, b'y');
        assert_eq!(
            decode(&content, BareLineEnds::Refuse).2,
            Some(DataError::LineTooLong)
        );
    }

    /// The position of the first end-of-data mark in DATA content (the receiver starts at
    /// a line start, so a leading `.CRLF` counts too).
    fn end_of_data(content: &[u8]) -> Option<usize> {
        if content.starts_with(b".\r\n") {
            return Some(0);
        }
        content
            .windows(5)
            .position(|w| w == b"\r\n.\r\n")
            .map(|i| i + 2)
    }

    fn check(input: &[u8]) -> Vec<u8> {
        let out = encode(input);
        // The only end-of-data mark is the one at the very end.
        assert_eq!(
            end_of_data(&out),
            Some(out.len() - 3),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        // No CR or LF outside CRLF pairs.
        for (i, &b) in out.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR in {out:?}");
            }
            if b == b'\n' {
                assert_eq!(out[i - 1], b'\r', "bare LF in {out:?}");
            }
        }
        // Byte by byte gives the same as all at once (chunk boundaries do not matter).
        let mut e = DataEncoder::new(Vec::new());
        for b in input {
            e.write_all(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(e.finish().unwrap(), out);
        out
    }

    #[test]
    fn normalizes_line_ends_and_terminates_once() {
        assert_eq!(check(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n.\r\n");
        assert_eq!(check(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(check(b""), b".\r\n");
        assert_eq!(check(b"a\r"), b"a\r\n.\r\n");
        assert_eq!(check(b"\r\n\r\n"), b"\r\n\r\n.\r\n");
    }

    #[test]
    fn stuffs_dots_at_every_kind_of_line_start() {
        assert_eq!(check(b".\n"), b"..\r\n.\r\n");
        assert_eq!(check(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(check(b"..x\r\n"), b"...x\r\n.\r\n");
        assert_eq!(check(b"a.b\n"), b"a.b\r\n.\r\n");
    }

    #[test]
    fn no_smuggling_shape_ends_the_data_early() {
        for shape in [
            &b"x\n.\ny"[..],
            b"x\r.\ry",
            b"x\n.\r\ny",
            b"x\r\n.\ny",
            b"x\r\n.\ry",
            b"x\r.\r\ny",
            b"x\r\n.\r\nMAIL FROM:<evil@x>\r\n",
            b"x\n\x00.\x00\ny",
            b"x\x00\r\n.\r\n\x00",
            b"x\r\r\n.\n\n.\r\r",
            b".",
            b"\r.\r",
            b"\n.\n",
        ] {
            let out = check(shape);
            assert!(
                !out[..out.len() - 3].windows(3).any(|w| w == b"\n.\r"),
                "{out:?}"
            );
        }
    }

    #[test]
    fn counts_encoded_bytes_and_streams_large_input() {
        let mut e = DataEncoder::new(Vec::new());
        let line = b".line\n".repeat(50_000);
        e.write_all(&line).unwrap();
        assert_eq!(e.encoded_len(), 50_000 * 8);
        let out = e.finish().unwrap();
        assert_eq!(out.len(), 50_000 * 8 + 3);
    }
}
