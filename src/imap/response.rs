//! The server's side of the IMAP grammar as a client reads it (RFC 3501 §7, RFC 9051 §7):
//! tagged and untagged status responses with their response codes, continuation requests,
//! and untagged data as a tree of values (atoms, quoted strings, literals `{n}` and `{n+}`,
//! NIL, parenthesised lists).
//!
//! Bytes come from a [`Wire`]: one bounded line at a time, and a literal's bytes counted
//! out of the same buffer, so a literal split over many reads is read as one. Literals are
//! handed to the caller as they are met ([`Feed::literal`]), with the values read so far:
//! the client streams `BODY[]` into its sink from there, so a message of any size passes
//! through a buffer of [`Wire`]'s size, and refuses any other literal above a limit. A line
//! that never ends is an error at [`MAX_LINE`], not a growing buffer.

use std::io::{self, Read};

/// The longest line we read (without its literals). IMAP sets no limit; one `* SEARCH`
/// line with the UIDs of 500,000 messages fits, and a server that sends more without a
/// line break is broken or hostile.
pub const MAX_LINE: usize = 4 << 20;

/// A value in untagged data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An atom or a number, as sent (`FETCH`, `12`, `BODY[HEADER.FIELDS (DATE)]`, `\Seen`).
    Atom(String),
    /// A quoted string or a literal held in memory.
    Str(Vec<u8>),
    /// NIL.
    Nil,
    /// A parenthesised list.
    List(Vec<Value>),
    /// A literal the caller took as it arrived (streamed to its sink).
    Taken,
}

impl Value {
    /// The atom's text, if an atom.
    pub fn atom(&self) -> Option<&str> {
        match self {
            Value::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// The atom as a number, if it is one (RFC 3501 §9 `number`: digits only).
    pub fn number(&self) -> Option<u64> {
        let a = self.atom()?;
        if a.is_empty() || a.len() > 20 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        a.parse().ok()
    }

    /// The bytes of a string (quoted or literal) or an atom (astring).
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            Value::Atom(a) => Some(a.as_bytes()),
            _ => None,
        }
    }
}

/// The kind of a status response (RFC 3501 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    Bye,
    PreAuth,
}

/// One response from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `tag OK|NO|BAD [code] text` or untagged `* OK|NO|BAD|BYE|PREAUTH [code] text`.
    Status {
        tag: Option<String>,
        status: Status,
        /// The response code's atom, upper case (`UIDVALIDITY`, `CAPABILITY`), and the rest
        /// inside the brackets.
        code: Option<(String, String)>,
        text: String,
    },
    /// `+ text`: the server waits for more of the command (a literal, SASL, IDLE).
    Continue(String),
    /// Untagged data: `* 3 EXISTS` is `[3, EXISTS]`, `* 5 FETCH (...)` is `[5, FETCH, (...)]`.
    Data(Vec<Value>),
}

/// Where a parser's bytes come from: the rest of a response's lines, and its literals.
pub trait Feed {
    /// The next line (after a literal), without its CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>>;
    /// A literal of `n` bytes, met after the values in `path` (the top level first, the list
    /// it is in last): read it into a [`Value::Str`], or take it and answer [`Value::Taken`].
    fn literal(&mut self, n: u64, path: &[Vec<Value>]) -> io::Result<Value>;
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Parse one response whose first line is `line` (without CRLF); `feed` gives the rest.
pub fn parse(line: &[u8], feed: &mut dyn Feed) -> io::Result<Response> {
    if let Some(rest) = line.strip_prefix(b"+") {
        let text = rest.strip_prefix(b" ").unwrap_or(rest);
        return Ok(Response::Continue(
            String::from_utf8_lossy(text).into_owned(),
        ));
    }
    let (tag, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => return Err(bad("response without a space")),
    };
    let tag = if tag == b"*" {
        None
    } else if !tag.is_empty() && tag.iter().all(|&b| is_atom_char(b)) {
        Some(String::from_utf8_lossy(tag).into_owned())
    } else {
        return Err(bad("response with a bad tag"));
    };
    let word_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let word = rest[..word_end].to_ascii_uppercase();
    let status = match word.as_slice() {
        b"OK" => Some(Status::Ok),
        b"NO" => Some(Status::No),
        b"BAD" => Some(Status::Bad),
        b"BYE" if tag.is_none() => Some(Status::Bye),
        b"PREAUTH" if tag.is_none() => Some(Status::PreAuth),
        _ => None,
    };
    if let Some(status) = status {
        // RFC 3501 §7.1: resp-text is text, never literals, whatever it ends with.
        let text = rest.get(word_end + 1..).unwrap_or_default();
        let (code, text) = response_code(text);
        return Ok(Response::Status {
            tag,
            status,
            code,
            text: String::from_utf8_lossy(text).into_owned(),
        });
    }
    if tag.is_some() {
        return Err(bad("tagged response that is not OK, NO or BAD"));
    }
    data(rest, feed).map(Response::Data)
}

/// `[CODE args] text` → the code and the text after it.
fn response_code(text: &[u8]) -> (Option<(String, String)>, &[u8]) {
    let Some(inner) = text.strip_prefix(b"[") else {
        return (None, text);
    };
    let Some(close) = inner.iter().position(|&b| b == b']') else {
        return (None, text);
    };
    let body = &inner[..close];
    let rest = &inner[close + 1..];
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let (name, args) = match body.iter().position(|&b| b == b' ') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[][..]),
    };
    let code = (
        String::from_utf8_lossy(name).to_ascii_uppercase(),
        String::from_utf8_lossy(args).into_owned(),
    );
    (Some(code), rest)
}

/// RFC 3501 §9 ATOM-CHAR, with `]` and the list wildcards a server also sends in atoms.
fn is_atom_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'"' | b'\\' | b'[' | b']')
}

/// Untagged data: values up to the end of the line, literals through `feed`.
fn data(first: &[u8], feed: &mut dyn Feed) -> io::Result<Vec<Value>> {
    let mut line: Vec<u8> = first.to_vec();
    let mut pos = 0;
    // The lists open now, the top level first.
    let mut stack: Vec<Vec<Value>> = vec![Vec::new()];
    // Deeper than any response we read (BODYSTRUCTURE nests by MIME depth): refuse.
    const MAX_DEPTH: usize = 64;
    loop {
        if pos >= line.len() {
            if stack.len() > 1 {
                return Err(bad("unbalanced parentheses"));
            }
            return Ok(stack.pop().unwrap_or_default());
        }
        let b = line[pos];
        match b {
            b' ' => pos += 1,
            b'(' => {
                if stack.len() > MAX_DEPTH {
                    return Err(bad("lists nested too deep"));
                }
                stack.push(Vec::new());
                pos += 1;
            }
            b')' => {
                if stack.len() < 2 {
                    return Err(bad("unbalanced parentheses"));
                }
                let list = stack.pop().unwrap_or_default();
                push(&mut stack, Value::List(list));
                pos += 1;
            }
            b'"' => {
                let (s, next) = quoted(&line, pos + 1)?;
                push(&mut stack, Value::Str(s));
                pos = next;
            }
            b'{' => {
                let n = literal_marker(&line[pos..])?;
                let v = feed.literal(n, &stack)?;
                push(&mut stack, v);
                line = feed.line()?;
                pos = 0;
            }
            _ => {
                let (atom, next) = atom(&line, pos)?;
                let v = if atom.eq_ignore_ascii_case("NIL") {
                    Value::Nil
                } else {
                    Value::Atom(atom)
                };
                push(&mut stack, v);
                pos = next;
            }
        }
    }
}

fn push(stack: &mut [Vec<Value>], v: Value) {
    if let Some(top) = stack.last_mut() {
        top.push(v);
    }
}

/// A quoted string from just after its opening quote: its bytes and the position after it.
fn quoted(line: &[u8], mut pos: usize) -> io::Result<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    while pos < line.len() {
        match line[pos] {
            b'"' => return Ok((out, pos + 1)),
            b'\\' => {
                let c = *line
                    .get(pos + 1)
                    .ok_or_else(|| bad("quoted string ends in \\"))?;
                out.push(c);
                pos += 2;
            }
            c => {
                out.push(c);
                pos += 1;
            }
        }
    }
    Err(bad("quoted string without its closing quote"))
}

/// `{n}` or `{n+}` ending the line: `n`.
fn literal_marker(rest: &[u8]) -> io::Result<u64> {
    let inner = rest
        .strip_prefix(b"{")
        .and_then(|r| r.strip_suffix(b"}"))
        .ok_or_else(|| bad("literal marker not at the end of the line"))?;
    let digits = inner.strip_suffix(b"+").unwrap_or(inner);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("bad literal length"));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| bad("bad literal length"))
}

/// An atom from `pos`: atom characters, with a bracketed section that may hold spaces and
/// parentheses (`BODY[HEADER.FIELDS (DATE FROM)]`, RFC 3501 §7.4.2) and a `<origin>`.
fn atom(line: &[u8], start: usize) -> io::Result<(String, usize)> {
    let mut pos = start;
    while pos < line.len() {
        let b = line[pos];
        if b == b'[' {
            let close = line[pos..]
                .iter()
                .position(|&c| c == b']')
                .ok_or_else(|| bad("section without its ]"))?;
            pos += close + 1;
        } else if is_atom_char(b) || b == b']' || b == b'\\' {
            pos += 1;
        } else {
            break;
        }
    }
    if pos == start {
        return Err(bad(format!("unexpected byte 0x{:02x}", line[start])));
    }
    Ok((String::from_utf8_lossy(&line[start..pos]).into_owned(), pos))
}

/// A buffered reader of an IMAP server's bytes: bounded lines, literals counted out.
pub struct Wire<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The start of a line whose end has not come yet: kept when a read times out (IDLE
    /// waits with short timeouts) so the line goes on where it stopped.
    partial: Vec<u8>,
}

impl<R: Read> Wire<R> {
    /// Read from `inner` through a buffer of 64 KiB.
    pub fn new(inner: R) -> Wire<R> {
        Wire {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            partial: Vec::new(),
        }
    }

    /// The transport.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The transport, read no further.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Bytes read from the transport and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// True when bytes were read and not consumed (a line begun, or more).
    pub fn has_buffered(&self) -> bool {
        self.start < self.end || !self.partial.is_empty()
    }

    /// Forget what is buffered and take a new transport (after a STARTTLS handshake).
    pub fn replace(&mut self, inner: R) -> R {
        self.start = 0;
        self.end = 0;
        self.partial.clear();
        std::mem::replace(&mut self.inner, inner)
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let n = self.inner.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// One line without its CRLF (a bare LF ends it too), at most `max` bytes.
    pub fn line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        loop {
            if self.start == self.end {
                self.fill()?;
            }
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', avail) {
                let mut out = std::mem::take(&mut self.partial);
                out.extend_from_slice(&avail[..i]);
                self.start += i + 1;
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                if out.len() > max {
                    return Err(bad(format!("line longer than {max} bytes")));
                }
                return Ok(out);
            }
            self.partial.extend_from_slice(avail);
            self.start = self.end;
            if self.partial.len() > max {
                self.partial = Vec::new();
                return Err(bad(format!("line longer than {max} bytes")));
            }
        }
    }

    /// The next `n` bytes as a reader; what the caller leaves unread is skipped by
    /// [`Literal::finish`].
    pub fn literal(&mut self, n: u64) -> Literal<'_, R> {
        Literal {
            wire: self,
            left: n,
        }
    }

    /// The next `n` bytes into memory; more than `max` is refused before any is read.
    pub fn literal_vec(&mut self, n: u64, max: usize) -> io::Result<Vec<u8>> {
        if n > max as u64 {
            return Err(bad(format!("literal of {n} bytes, more than {max}")));
        }
        let mut out = Vec::with_capacity(n as usize);
        self.literal(n).read_to_end(&mut out)?;
        Ok(out)
    }
}

/// A literal's bytes, read from the [`Wire`] as they arrive.
pub struct Literal<'a, R> {
    wire: &'a mut Wire<R>,
    left: u64,
}

impl<R: Read> Literal<'_, R> {
    /// Bytes still to come.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Read and drop the rest, so the next line starts where it should.
    pub fn finish(mut self) -> io::Result<()> {
        let mut sink = [0u8; 8192];
        while self.left > 0 {
            // Each read takes at least one byte or fails (end of input is an error here).
            let _ = self.read(&mut sink)?;
        }
        Ok(())
    }
}

impl<R: Read> Read for Literal<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let w = &mut *self.wire;
        if w.start == w.end {
            // A large read straight into the caller's buffer saves a copy.
            if buf.len() >= w.buf.len() {
                let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
                let n = w.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by the server in a literal",
                    ));
                }
                self.left -= n as u64;
                return Ok(n);
            }
            w.fill()?;
        }
        let avail = w.end - w.start;
        let n = avail
            .min(buf.len())
            .min(self.left.min(usize::MAX as u64) as usize);
        buf[..n].copy_from_slice(&w.buf[w.start..w.start + n]);
        w.start += n;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out `chunk` bytes at a time (splits literals across reads).
    struct Drip {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl Read for Drip {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// A feed that reads every literal into memory up to `max`.
    struct Mem<'a> {
        wire: &'a mut Wire<Drip>,
        max: usize,
    }

    impl Feed for Mem<'_> {
        fn line(&mut self) -> io::Result<Vec<u8>> {
            self.wire.line(MAX_LINE)
        }
        fn literal(&mut self, n: u64, _path: &[Vec<Value>]) -> io::Result<Value> {
            self.wire.literal_vec(n, self.max).map(Value::Str)
        }
    }

    fn wire(bytes: &[u8], chunk: usize) -> Wire<Drip> {
        Wire::new(Drip {
            data: bytes.to_vec(),
            pos: 0,
            chunk,
        })
    }

    fn read_all(bytes: &[u8], chunk: usize) -> io::Result<Vec<Response>> {
        let mut w = wire(bytes, chunk);
        let mut out = Vec::new();
        loop {
            let line = match w.line(MAX_LINE) {
                Ok(l) => l,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(out),
                Err(e) => return Err(e),
            };
            let mut feed = Mem {
                wire: &mut w,
                max: 1 << 20,
            };
            out.push(parse(&line, &mut feed)?);
        }
    }

    fn a(s: &str) -> Value {
        Value::Atom(s.into())
    }

    #[test]
    fn fetch_with_a_literal_split_across_reads() {
        let input = b"* 2 FETCH (UID 17 RFC822.SIZE 11 BODY[] {11}\r\nSubject: x\n)\r\n\
                      a1 OK done\r\n";
        for chunk in [1, 2, 3, 7, 1000] {
            let r = read_all(input, chunk).unwrap();
            assert_eq!(
                r[0],
                Response::Data(vec![
                    a("2"),
                    a("FETCH"),
                    Value::List(vec![
                        a("UID"),
                        a("17"),
                        a("RFC822.SIZE"),
                        a("11"),
                        a("BODY[]"),
                        Value::Str(b"Subject: x\n".to_vec()),
                    ])
                ]),
                "chunk {chunk}"
            );
            assert!(matches!(
                &r[1],
                Response::Status { tag: Some(t), status: Status::Ok, .. } if t == "a1"
            ));
        }
    }

    #[test]
    fn sections_quoted_nil_and_non_sync_literals() {
        let input = b"* 1 FETCH (BODY[HEADER.FIELDS (DATE FROM)] {3+}\r\nab\n \
                      X \"q\\\"s\" NIL (\\Seen \\Deleted))\r\n";
        let r = read_all(input, 4).unwrap();
        let Response::Data(v) = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(
            v[2],
            Value::List(vec![
                a("BODY[HEADER.FIELDS (DATE FROM)]"),
                Value::Str(b"ab\n".to_vec()),
                a("X"),
                Value::Str(b"q\"s".to_vec()),
                Value::Nil,
                Value::List(vec![a("\\Seen"), a("\\Deleted")]),
            ])
        );
    }

    #[test]
    fn status_responses_keep_their_code_and_never_read_literals() {
        let r = read_all(
            b"* OK [UIDVALIDITY 3857529045] UIDs valid {5}\r\n* BYE going\r\n",
            3,
        )
        .unwrap();
        assert_eq!(
            r[0],
            Response::Status {
                tag: None,
                status: Status::Ok,
                code: Some(("UIDVALIDITY".into(), "3857529045".into())),
                text: "UIDs valid {5}".into(),
            }
        );
        assert!(matches!(
            r[1],
            Response::Status {
                status: Status::Bye,
                ..
            }
        ));
        let r = read_all(b"+ idling\r\n+\r\n", 1).unwrap();
        assert_eq!(
            r,
            vec![
                Response::Continue("idling".into()),
                Response::Continue("".into())
            ]
        );
    }

    #[test]
    fn hostile_input_is_an_error_not_a_blow_up() {
        // A line that never ends: refused at the limit, never buffered beyond it.
        let mut w = wire(&vec![b'x'; 100_000], 4096);
        let e = w.line(50_000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // A literal larger than the limit: refused before a byte of it is read.
        let mut w = wire(b"* 1 FETCH (BODY[] {2147483648}\r\nxx", 16);
        let line = w.line(MAX_LINE).unwrap();
        let mut feed = Mem {
            wire: &mut w,
            max: 1 << 20,
        };
        let e = parse(&line, &mut feed).unwrap_err();
        assert!(e.to_string().contains("2147483648"), "{e}");
        // Nothing of it was consumed.
        let mut rest = Vec::new();
        w.literal(2).read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"xx");
        // Bad grammar of every kind.
        for bad in [
            &b"* 1 FETCH (UID 1"[..],
            b"* 1 FETCH UID 1)",
            b"* 1 FETCH (X \"open",
            b"* 1 FETCH (X {12x}",
            b"* 1 FETCH (X {99999999999999999999}",
            b"* 1 FETCH (X {5} more",
            b"a\x01 OK",
            b"tag FETCH 1",
            b"nospace",
            b"* 1 FETCH (BODY[HEADER",
        ] {
            let mut w = wire(b"", 1);
            let mut feed = Mem {
                wire: &mut w,
                max: 10,
            };
            assert!(parse(bad, &mut feed).is_err(), "{}", bad.escape_ascii());
        }
        let deep = format!("* X {}", "(".repeat(10_000));
        let mut w = wire(b"", 1);
        let mut feed = Mem {
            wire: &mut w,
            max: 10,
        };
        assert!(parse(deep.as_bytes(), &mut feed).is_err());
    }

    #[test]
    fn a_literal_cut_short_is_an_error() {
        let r = read_all(b"* 1 FETCH (BODY[] {100}\r\nshort", 3);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_literal_read_partly_is_skipped_to_its_end() {
        let mut w = wire(b"0123456789tail\r\n", 3);
        let mut lit = w.literal(10);
        let mut two = [0u8; 2];
        lit.read_exact(&mut two).unwrap();
        assert_eq!(lit.left(), 8);
        lit.finish().unwrap();
        assert_eq!(w.line(100).unwrap(), b"tail");
    }
}
