//! Message input: read a message of any size with bounded memory.
//!
//! A [`Buffer`] keeps the first [`MEMORY_LIMIT`] bytes in memory (where almost every message
//! fits, so the common case touches no temporary file) and spills the rest to an anonymous,
//! already-unlinked temporary file, so a crash leaves nothing behind. The head stays in memory
//! either way: header rules, loop detection and dedupe read only the header block.
//!
//! [`LineEnds`] turns CRLF into LF as bytes stream through it (the Maildir convention; a lone
//! CR is data and passes unchanged) and [`open`] gives `-` its Unix meaning of stdin.

use crate::exit::{Code, Context, Result};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// How much of a message is held in memory before the rest goes to a temporary file.
pub const MEMORY_LIMIT: usize = 1 << 20;

/// Open `path` for reading; `-` means standard input.
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = File::open(path).or_code_with(Code::NoInput, || format!("{}", path.display()))?;
    Ok(Box::new(BufReader::new(f)))
}

/// A message being received: memory first, then an unlinked temporary file.
#[derive(Debug, Default)]
pub struct Buffer {
    head: Vec<u8>,
    tail: Option<File>,
    len: u64,
}

impl Buffer {
    /// An empty spool.
    pub fn new() -> Buffer {
        Buffer::default()
    }

    /// Read all of `input` into a new spool, refusing more than `max` bytes (if given) with
    /// [`Code::DataErr`] before reading further.
    pub fn read_from(input: &mut dyn Read, max: Option<u64>) -> Result<Buffer> {
        let mut spool = Buffer::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(crate::Error::io(Code::TempFail, "read message", e)),
            };
            if let Some(max) = max
                && spool.len + n as u64 > max
            {
                return Err(crate::Error::new(
                    Code::DataErr,
                    "message too big",
                    format!("more than the limit of {max} bytes"),
                ));
            }
            spool
                .write_all(&buf[..n])
                .or_code(Code::TempFail, "spool message")?;
        }
        Ok(spool)
    }

    /// Total bytes held.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first bytes of the message (all of it when it fits in [`MEMORY_LIMIT`]).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// True when the whole message is in [`Buffer::head`].
    pub fn in_memory(&self) -> bool {
        self.tail.is_none()
    }

    /// Copy the whole message to `out`.
    pub fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.head)?;
        if let Some(f) = self.tail.as_mut() {
            f.seek(SeekFrom::Start(0))?;
            io::copy(f, out)?;
        }
        Ok(())
    }

    /// A reader over the whole message from its start.
    pub fn reader(&mut self) -> io::Result<impl Read + '_> {
        if let Some(f) = self.tail.as_mut() {
            f.seek(SeekFrom::Start(0))?;
        }
        Ok(self.head.as_slice().chain(TailReader(self.tail.as_mut())))
    }
}

struct TailReader<'a>(Option<&'a mut File>);

impl Read for TailReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.as_mut() {
            Some(f) => f.read(buf),
            None => Ok(0),
        }
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = MEMORY_LIMIT.saturating_sub(self.head.len());
        let (mem, rest) = buf.split_at(room.min(buf.len()));
        self.head.extend_from_slice(mem);
        if !rest.is_empty() {
            if self.tail.is_none() {
                self.tail = Some(tempfile::tempfile()?);
            }
            if let Some(f) = self.tail.as_mut() {
                f.write_all(rest)?;
            }
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer adapter that turns CRLF into LF; any other byte, a lone CR included, passes.
pub struct LineEnds<W: Write> {
    inner: W,
    pending_cr: bool,
}

impl<W: Write> LineEnds<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        LineEnds {
            inner,
            pending_cr: false,
        }
    }

    /// Write out a trailing CR held back at the end of input and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending_cr {
            self.inner.write_all(b"\r")?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for LineEnds<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 1);
        let mut i = 0;
        if self.pending_cr {
            self.pending_cr = false;
            if buf.first() != Some(&b'\n') {
                out.push(b'\r');
            }
        }
        while i < buf.len() {
            let b = buf[i];
            if b == b'\r' {
                match buf.get(i + 1) {
                    Some(b'\n') => {}
                    Some(_) => out.push(b'\r'),
                    None => self.pending_cr = true,
                }
            } else {
                out.push(b);
            }
            i += 1;
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lf(chunks: &[&[u8]]) -> Vec<u8> {
        let mut w = LineEnds::new(Vec::new());
        for c in chunks {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn crlf_becomes_lf_across_chunk_boundaries() {
        assert_eq!(lf(&[b"a\r\nb\r", b"\nc\r"]), b"a\nb\nc\r");
        assert_eq!(lf(&[b"a\rb\n"]), b"a\rb\n");
        assert_eq!(lf(&[b"\r", b"\r", b"\n"]), b"\r\n");
    }

    #[test]
    fn spool_spills_past_the_memory_limit_and_reads_back_whole() {
        let data: Vec<u8> = (0..MEMORY_LIMIT * 2 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut s = Buffer::read_from(&mut data.as_slice(), None).unwrap();
        assert!(!s.in_memory());
        assert_eq!(s.len(), data.len() as u64);
        let mut back = Vec::new();
        s.reader().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let mut again = Vec::new();
        s.copy_to(&mut again).unwrap();
        assert_eq!(again, data);
    }

    #[test]
    fn spool_refuses_over_max() {
        let data = vec![b'x'; 100];
        let e = Buffer::read_from(&mut data.as_slice(), Some(99)).unwrap_err();
        assert_eq!(e.code(), Code::DataErr);
        assert!(Buffer::read_from(&mut data.as_slice(), Some(100)).is_ok());
    }
}

/// Read a message as a delivery agent is handed it: a leading mbox `From ` line (Postfix's
/// and fetchmail's envelope line) is dropped, CRLF becomes LF, every other byte passes as is,
/// and more than `max` bytes (counted after conversion) is refused with [`Code::DataErr`].
pub fn read_for_delivery(input: &mut dyn Read, max: Option<u64>) -> Result<Buffer> {
    let mut first = Vec::new();
    // The envelope line is short; bound the look so a huge first line streams as usual.
    let mut limited = io::BufReader::new(input);
    {
        use std::io::BufRead;
        let mut probe = (&mut limited).take(4096);
        probe
            .read_until(b'\n', &mut first)
            .or_code(Code::TempFail, "read message")?;
    }
    let mut lf = LineEnds::new(Limited::new(Buffer::new(), max));
    if !(first.starts_with(b"From ") && first.ends_with(b"\n")) {
        write_limited(&mut lf, &first)?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crate::Error::io(Code::TempFail, "read message", e)),
        };
        write_limited(&mut lf, &buf[..n])?;
    }
    let limited = lf.finish().map_err(|e| limit_error(e, max))?;
    Ok(limited.inner)
}

fn write_limited<W: Write>(w: &mut LineEnds<Limited<W>>, buf: &[u8]) -> Result<()> {
    w.write_all(buf).map_err(|e| limit_error(e, w.inner.max))
}

fn limit_error(e: io::Error, max: Option<u64>) -> crate::Error {
    if e.kind() == io::ErrorKind::FileTooLarge {
        crate::Error::new(
            Code::DataErr,
            "message too big",
            format!("more than the limit of {} bytes", max.unwrap_or(0)),
        )
    } else {
        crate::Error::io(Code::TempFail, "spool message", e)
    }
}

/// A writer that fails with `FileTooLarge` once more than `max` bytes were written.
struct Limited<W: Write> {
    inner: W,
    max: Option<u64>,
    written: u64,
}

impl<W: Write> Limited<W> {
    fn new(inner: W, max: Option<u64>) -> Self {
        Limited {
            inner,
            max,
            written: 0,
        }
    }
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(max) = self.max
            && self.written + buf.len() as u64 > max
        {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        self.inner.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;

    fn read(input: &[u8], max: Option<u64>) -> Result<Vec<u8>> {
        let mut s = read_for_delivery(&mut &input[..], max)?;
        let mut out = Vec::new();
        s.copy_to(&mut out).unwrap();
        Ok(out)
    }

    #[test]
    fn drops_the_mbox_envelope_line_and_crlf() {
        let got = read(
            b"From a@b Mon Jan  1 00:00:00 2024\r\nSubject: x\r\n\r\nbody\r\n",
            None,
        );
        assert_eq!(got.unwrap(), b"Subject: x\n\nbody\n");
        assert_eq!(
            read(b"Subject: From \n\nx", None).unwrap(),
            b"Subject: From \n\nx"
        );
        assert_eq!(read(b"\xff\xfe\x00\r\n", None).unwrap(), b"\xff\xfe\x00\n");
    }

    #[test]
    fn refuses_over_max_after_conversion() {
        assert!(read(b"ab\r\n", Some(3)).is_ok());
        let e = read(b"abcd\n", Some(3)).unwrap_err();
        assert_eq!(e.code(), Code::DataErr);
    }
}
