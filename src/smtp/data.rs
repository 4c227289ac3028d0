//! What an SMTP client sends as DATA: message bytes in, DATA content out (RFC 5321 §4.5.2,
//! §2.3.8). The server's side, reading that content back, is [`super::inbound`]; its tests
//! feed this encoder's output through the server's reader, so the pair is checked to agree.
//!
//! Whatever line ends the input has (LF from a Unix pipe, CRLF, a stray CR), what goes on the
//! wire has only CRLF: a bare CR or LF is where SMTP smuggling lives, because servers disagree
//! on whether `\n.\n` ends the data. Every line that starts with a dot gets a second one, and
//! the content ends with exactly one `CRLF.CRLF`, so the receiver's idea of where the message
//! ends is ours whatever the input holds (NUL bytes and 8-bit data pass unchanged; whether a
//! server takes NUL or a line over 998 octets is its policy: [`super::inbound`] refuses both).
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
