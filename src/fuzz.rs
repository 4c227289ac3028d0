//! Entry points for coverage-guided fuzzing, one per parser (issue 13), and the replay of
//! what the fuzzer found.
//!
//! The fuzz crate (`fuzz/`, cargo-afl) calls these with the fuzzer's bytes; the unit tests
//! below replay `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` through the same
//! functions, so a crash once found stays fixed under a plain `cargo test`. Each entry takes
//! any `&[u8]` and asserts what must hold for every input, not just "no panic": output
//! bounded by the input, and a round trip wherever we both parse and write a form
//! (format(parse(x)) parses again to the same value). An assertion that fails is a finding,
//! like a panic. The POP3 and IMAP targets read as mfetch and maccess do: maccess's command
//! grammar, mfetch's POP3 session against a server that says anything, and IMAP responses
//! with their literals.
//!
//! Why one module here rather than making the parsers `pub`: the parsers stay `pub(crate)` or
//! as they are, and this is the only door the fuzz crate needs (hidden from the docs). The
//! A new parser gets its entry here, listed in [`TARGETS`] and given a binary in
//! `fuzz/src/bin/`, and seeds in `fuzz/seeds/<target>/`.

use crate::config::Config;
use crate::message::{address, compose, fold, header};
use crate::net::conn::{Conn, Io};
use crate::smtp::command::{Command, MAX_COMMAND_LINE};
use crate::smtp::ehlo::Capabilities;
use crate::smtp::inbound::{Decoder, Fault, Limits};
use crate::smtp::reply::{MAX_LINE, Reply, ReplyParser};
use std::io::{self, Read, Write};

/// A fuzz target: any bytes in; it panics on a finding.
pub type Target = fn(&[u8]);

/// Every target by name: the fuzz crate's binaries and `make fuzz` use these names, the
/// replay test walks them.
pub const TARGETS: &[(&str, Target)] = &[
    ("smtp_command", smtp_command),
    ("smtp_reply", smtp_reply),
    ("ehlo", ehlo),
    ("inbound", inbound),
    ("header", header),
    ("address", address),
    ("rfc2047", rfc2047),
    ("rfc2231", rfc2231),
    ("mime", mime),
    ("config", config),
    ("rules", rules),
    ("pop3_command", pop3_command),
    ("pop3_client", pop3_client),
    ("imap_response", imap_response),
];

/// Text for the parsers that take `&str`: the fuzzer's bytes, lossily.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// An SMTP command line (RFC 5321 §4.1), as the server parses it: a command it accepts is
/// written by `to_line` (the client's form) into a line that parses to the same command.
pub fn smtp_command(data: &[u8]) {
    let parsed = Command::parse(data);
    let cmd = match parsed {
        Ok(cmd) => cmd,
        Err(e) => {
            let r = e.reply();
            assert!(r.is_permanent(), "a refused command gets a 5xx: {r}");
            return;
        }
    };
    let _ = cmd.summary();
    let line = cmd.to_line();
    let body = line.strip_suffix("\r\n").expect("to_line ends in CRLF");
    assert!(
        !body.contains(['\r', '\n', '\0']),
        "to_line wrote a line end or NUL inside the command: {line:?}"
    );
    // The written form adds at most the angle brackets a bare path lacked.
    assert!(
        line.len() <= data.len() + 4,
        "{line:?} from {} octets",
        data.len()
    );
    if line.len() <= MAX_COMMAND_LINE {
        assert_eq!(
            Command::parse(line.as_bytes()),
            Ok(cmd),
            "round trip of {line:?}"
        );
    }
}

/// SMTP replies (RFC 5321 §4.2) as the client reads them: line by line into the streaming
/// parser, bounded; a whole reply written again by `to_bytes` parses to the same reply.
pub fn smtp_reply(data: &[u8]) {
    let mut p = ReplyParser::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        match p.feed(line) {
            Ok(Some(r)) => check_reply(&r),
            Ok(None) => {}
            Err(_) => p = ReplyParser::new(),
        }
    }
    if let Ok(r) = Reply::parse(data) {
        check_reply(&r);
        let bytes = r.to_bytes();
        if bytes.split(|&b| b == b'\n').all(|l| l.len() < MAX_LINE) {
            assert_eq!(Reply::parse(&bytes), Ok(r), "round trip of {bytes:?}");
        }
    }
}

fn check_reply(r: &Reply) {
    assert!((200..600).contains(&r.code), "reply code {}", r.code);
    assert!(!r.lines.is_empty() && r.lines.len() <= crate::smtp::reply::MAX_LINES);
    assert!(
        !r.lines.iter().any(|l| l.contains(['\r', '\n'])),
        "a line end in reply text: {r:?}"
    );
    if let Some(e) = r.enhanced {
        assert_eq!(u16::from(e.class), r.code / 100, "enhanced code's class");
    }
    let _ = r.to_string();
}

/// EHLO keywords (RFC 5321 §4.1.1.1) read from a reply: the capabilities a server writes with
/// `to_reply` read back as the same capabilities.
pub fn ehlo(data: &[u8]) {
    let Ok(r) = Reply::parse(data) else {
        return;
    };
    let caps = Capabilities::from_reply(&r);
    assert!(caps.other.len() < r.lines.len().max(1));
    let again = Capabilities::from_reply(&caps.to_reply("greets you"));
    assert_eq!(again, caps, "EHLO capabilities round trip");
}

/// A transport that hands out `chunk` octets per read, so the split between reads varies
/// (where a read splits a line must not matter).
struct Wire {
    bytes: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.bytes.len() - self.pos).min(self.chunk).min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
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

/// A POP3 command line as maccess parses it (`pop3::command`): what it accepts holds no
/// control character and no more text than the line had.
pub fn pop3_command(data: &[u8]) {
    use crate::pop3::command::{Command as Pop, parse};
    let Ok(cmd) = parse(data) else { return };
    let strings: Vec<&str> = match &cmd {
        Pop::User(u) => vec![u],
        Pop::Pass(p) => vec![p],
        Pop::Auth { mechanism, initial } => mechanism
            .iter()
            .chain(initial.iter())
            .map(String::as_str)
            .collect(),
        _ => Vec::new(),
    };
    for t in strings {
        assert!(
            !t.chars().any(char::is_control),
            "control character kept: {cmd:?}"
        );
        assert!(t.len() <= data.len(), "more text than the line: {cmd:?}");
    }
}

/// mfetch's POP3 session (`pop3::client`) against a server whose every byte is the fuzzer's:
/// greeting, CAPA, login, UIDL and LIST, RETR of each. Whatever it says, no panic, and no
/// message handed on larger than the bound the client sets from LIST's size.
pub fn pop3_client(data: &[u8]) {
    use crate::net::tls::{Level, Mode, Start};
    use crate::pop3::client::{Client, Credentials, Options};
    let opts = Options {
        tls: Mode {
            start: Start::StartTls,
            level: Level::None,
        },
        trust: Default::default(),
        auth: Credentials {
            user: "user".into(),
            secret: "secret".into(),
            login: None,
        },
        timeout: std::time::Duration::from_secs(1),
    };
    let wire = Wire {
        bytes: data.to_vec(),
        pos: 0,
        chunk: usize::MAX,
    };
    let Ok(mut client) = Client::over(Box::new(wire), "pop.test", "pop.test", &opts) else {
        return;
    };
    let Ok(list) = client.list() else { return };
    let which: Vec<(u32, u64)> = list.iter().map(|e| (e.number, e.size)).collect();
    let _ = client.retr(&which, &mut |i, r| {
        let mut body = Vec::new();
        r.read_to_end(&mut body)
            .map_err(|e| crate::Error::io(crate::Code::Protocol, "read", e))?;
        let limit = which[i].1.saturating_mul(2).saturating_add(64 * 1024);
        assert!(
            body.len() as u64 <= limit,
            "{} octets over {limit}",
            body.len()
        );
        assert!(body.len() <= data.len(), "more octets than the server sent");
        Ok(())
    });
}

/// IMAP responses as mfetch reads them (`imap::response::parse`): lines and literals from
/// memory, literals up to a bound; no panic, and no value longer than the input.
pub fn imap_response(data: &[u8]) {
    use crate::imap::response::{Feed, Value, Wire as Lines, parse};
    struct Mem<'a> {
        wire: &'a mut Lines<io::Cursor<Vec<u8>>>,
    }
    impl Feed for Mem<'_> {
        fn line(&mut self) -> io::Result<Vec<u8>> {
            self.wire.line(64 * 1024)
        }
        fn literal(&mut self, n: u64, _path: &[Vec<Value>]) -> io::Result<Value> {
            self.wire.literal_vec(n, 64 * 1024).map(Value::Str)
        }
    }
    let mut wire = Lines::new(io::Cursor::new(data.to_vec()));
    for _ in 0..64 {
        let Ok(line) = wire.line(64 * 1024) else {
            return;
        };
        assert!(line.len() <= data.len());
        let mut feed = Mem { wire: &mut wire };
        if parse(&line, &mut feed).is_err() {
            return;
        }
    }
}

/// What the server made of some DATA content.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    ended: bool,
    fault: Option<Fault>,
    content: Vec<u8>,
}

/// Read `wire` as mreceive reads DATA after its 354, `chunk` octets per read.
fn receive(wire: &[u8], limits: Limits, chunk: usize) -> Received {
    let mut conn = Conn::new(Box::new(Wire {
        bytes: wire.to_vec(),
        pos: 0,
        chunk,
    }));
    let mut d = Decoder::new(Vec::new(), limits);
    let ended = conn
        .read_data(&mut d)
        .expect("reading from memory cannot fail");
    Received {
        ended,
        fault: d.fault(),
        content: d.into_inner(),
    }
}

/// BDAT content (RFC 3030) in chunks of `chunk` octets, then LAST.
fn receive_chunked(wire: &[u8], limits: Limits, chunk: usize) -> Received {
    let mut d = Decoder::chunked(Vec::new(), limits);
    for c in wire.chunks(chunk.max(1)) {
        d.chunk(c);
    }
    d.finish();
    Received {
        ended: true,
        fault: d.fault(),
        content: d.into_inner(),
    }
}

/// The DATA and BDAT decoder (`smtp::inbound`), as mreceive reads it. The first three octets
/// choose the mode (DATA or BDAT, normalizing or not), the size limit and the read size; the
/// rest is the client's bytes. What must hold: the result does not depend on how reads or
/// chunks split the bytes; the sink gets no CR, and nothing past the size limit; content
/// accepted from DATA, sent again by the client's encoder (`smtp::data`), arrives the same.
pub fn inbound(data: &[u8]) {
    let [mode, size, chunk, wire @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_size: if *size == 0xff {
            u64::MAX
        } else {
            u64::from(*size) * 16
        },
        max_received: usize::from(mode >> 4),
        normalize: mode & 1 == 1,
    };
    let chunk = usize::from(*chunk).max(1);
    let chunked = mode & 2 == 2;
    let (whole, split) = if chunked {
        (
            receive_chunked(wire, limits, wire.len()),
            receive_chunked(wire, limits, chunk),
        )
    } else {
        (
            receive(wire, limits, usize::MAX),
            receive(wire, limits, chunk),
        )
    };
    assert_eq!(
        split, whole,
        "reads or chunks of {chunk} octets changed the result"
    );
    let r = whole;
    // The one octet beyond the limit: the empty line put before content that would fold
    // into our Received: (inbound.rs), plus the CRLF BDAT's finish adds to a last line.
    assert!(
        r.content.len() as u64 <= limits.max_size.saturating_add(3),
        "{} octets stored over a limit of {}",
        r.content.len(),
        limits.max_size
    );
    assert!(r.content.len() <= wire.len() + 3);
    if r.fault.is_some() || !r.ended {
        return;
    }
    assert!(!r.content.contains(&b'\r'), "a CR reached the sink");
    assert!(!r.content.contains(&0), "a NUL reached the sink");
    // Sent again by our client: the same content, ending once.
    let again = receive(
        &crate::smtp::data::encode(&r.content),
        Limits {
            max_size: u64::MAX,
            normalize: false,
            ..limits
        },
        usize::MAX,
    );
    assert_eq!(again.fault, None, "our own encoding was refused");
    assert!(again.ended);
    assert_eq!(again.content, r.content, "DATA round trip");
}

/// The header scanner (`message::header`): fields found lie inside the block, names follow
/// the one field-name rule, values are bounded and unfolded.
pub fn header(data: &[u8]) {
    let block = header::block(data);
    assert!(data.starts_with(block));
    if let Some(off) = header::body_offset(data) {
        assert!(off <= data.len() && off >= block.len());
    }
    for f in header::fields(block) {
        assert!(header::is_field_name(f.name), "field name {:?}", f.name);
        let raw = f.value_raw();
        assert!(!raw.contains('\n'), "unfolded value holds a LF: {raw:?}");
        assert!(raw.len() <= 3 * f.raw.len());
        let value = f.value();
        assert!(
            value.len() <= 3 * f.raw.len() + 16,
            "decoded value of {} octets from {}",
            value.len(),
            f.raw.len()
        );
        let _ = f.is("Received");
    }
    for line in block.split(|&b| b == b'\n') {
        if let Some(name) = header::field_name(line) {
            assert!(header::is_field_name(name));
        }
    }
    let _ = header::values(block, "To");
    let _ = header::first(block, "Subject");
}

/// Display names compare as the writer normalizes them: whitespace runs become one space.
fn normal(m: &address::Mailbox) -> address::Mailbox {
    let name = m
        .name
        .as_deref()
        .map(|n| n.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|n| !n.is_empty());
    address::Mailbox {
        name,
        addr: m.addr.clone(),
    }
}

fn normal_list(list: &[address::Address]) -> Vec<address::Address> {
    list.iter()
        .map(|a| match a {
            address::Address::Mailbox(m) => address::Address::Mailbox(normal(m)),
            address::Address::Group(n, ms) => address::Address::Group(
                n.split_whitespace().collect::<Vec<_>>().join(" "),
                ms.iter().map(normal).collect(),
            ),
        })
        .collect()
}

/// The address parser (`message::address`, RFC 5322 §3.4): a list it accepts, written as
/// header words, parses to the same list; a mailbox's `to_utf8` form parses back to it; an
/// addr-spec's written form parses back to it.
pub fn address(data: &[u8]) {
    let s = text(data);
    let _ = address::parse_list_lenient(&s);
    let _ = address::check_domain(&s);
    if let Ok(spec) = address::parse_addr_spec(&s) {
        let written = spec.to_string();
        assert_eq!(
            address::parse_addr_spec(&written).ok(),
            Some(spec),
            "addr-spec round trip of {written:?}"
        );
    }
    let Ok(list) = address::parse_list(&s) else {
        return;
    };
    let written = address::list_words(&list).join(" ");
    let again = address::parse_list(&written)
        .unwrap_or_else(|e| panic!("{written:?} written from {s:?} does not parse: {e}"));
    assert_eq!(
        normal_list(&again),
        normal_list(&list),
        "round trip through {written:?}"
    );
    for m in address::mailboxes(&list) {
        let typed = m.to_utf8();
        let back = address::parse_mailbox(&typed)
            .unwrap_or_else(|e| panic!("to_utf8 {typed:?} does not parse: {e}"));
        assert_eq!(normal(&back), normal(m), "to_utf8 round trip of {typed:?}");
    }
}

/// The value of a header field as a reader gets it (mailparse, as `header::Field::value`).
fn read_back(field: &str) -> String {
    match mailparse::parse_header(field.as_bytes()) {
        Ok((h, _)) => h.get_value(),
        Err(e) => panic!("{field:?} does not parse: {e}"),
    }
}

/// RFC 2047 encoded-words: decoding any text is bounded; unstructured text and display
/// names we encode decode to what was written.
pub fn rfc2047(data: &[u8]) {
    let s = text(data);
    let decoded = fold::decode_words(&s);
    assert!(decoded.len() <= 3 * s.len() + 16);
    if s.contains(['\r', '\n']) {
        // Field values never hold line ends: callers split them first.
        return;
    }
    // Whitespace runs compare as one space: mailparse, our reader, unfolds a line break and
    // the blanks after it into a single space where RFC 5322 §2.2.3 keeps the blanks (a
    // reader's difference, found by this target; the words and where they break must agree).
    let blanks = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let field = fold::unstructured("Subject", &s);
    assert_eq!(
        blanks(&read_back(&field)),
        blanks(&s),
        "unstructured round trip through {field:?}"
    );
    let words = fold::phrase(&s);
    if words.first().is_some_and(|w| w.starts_with("=?")) {
        let field = fold::field("X", &words);
        let want = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            read_back(&field),
            want,
            "phrase round trip through {field:?}"
        );
    }
}

/// RFC 2231 parameters: any Content-Type or Content-Disposition value parses (mailparse's
/// decoder, which we rely on); a file name we write as parameters reads back the same.
pub fn rfc2231(data: &[u8]) {
    let s = text(data);
    let _ = mailparse::parse_content_type(&s);
    let _ = mailparse::parse_content_disposition(&s);
    let words = [
        vec!["attachment;".to_string()],
        fold::parameter("filename", &s),
    ]
    .concat();
    let field = fold::field("Content-Disposition", &words);
    let cd = mailparse::parse_content_disposition(&read_back(&field));
    assert_eq!(
        cd.params.get("filename").map(String::as_str),
        Some(s.as_str()),
        "file name round trip through {field:?}"
    );
}

/// The MIME walker: the text a reply quotes (`compose::original_text`, the first text part
/// through multipart nesting), bounded, and a reply built on the message.
pub fn mime(data: &[u8]) {
    let quoted = compose::original_text(data);
    assert!(
        quoted.len() <= 4 * data.len() + 16,
        "{} octets of text from {}",
        quoted.len(),
        data.len()
    );
    let me = address::Mailbox {
        name: None,
        addr: address::AddrSpec {
            local: "me".into(),
            domain: "example.org".into(),
        },
    };
    let mut d = compose::Draft::default();
    if compose::reply(&mut d, data, true, &me).is_ok() {
        assert!(!d.to.is_empty() || !d.cc.is_empty());
    }
}

/// The configuration file (`config`, typed by `account`): whatever parses resolves into
/// accounts without panicking; no key ever runs a command here (`passwordeval` runs only
/// when a password is revealed).
pub fn config(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for line in s.lines() {
        let _ = crate::config::words(line);
        let _ = crate::config::parse_size(line);
    }
    let mut cfg = Config::default();
    if cfg.parse(s, "fuzz").is_err() {
        return;
    }
    let names: Vec<String> = cfg.account_names().map(str::to_string).collect();
    for name in names.iter().map(|n| Some(n.as_str())).chain([None]) {
        if let Ok(a) = crate::account::Account::resolve(&cfg, name) {
            let _ = a.send();
            let _ = a.fetch();
        }
    }
}

/// The rules file (`deliver::rules`): the bytes before the first NUL are the rules, the rest a
/// message. A plan always ends somewhere, and every folder it stores into is one safe name.
pub fn rules(data: &[u8]) {
    let (rules, msg) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(rules) = std::str::from_utf8(rules) else {
        return;
    };
    let Ok(rules) = crate::deliver::rules::Rules::parse(rules, "fuzz") else {
        return;
    };
    let facts = crate::deliver::rules::Facts {
        header: header::block(msg),
        body: crate::deliver::rules::body_of(msg),
        sender: "sender@example.org",
        recipient: "me@example.org",
        size: msg.len() as u64,
    };
    for p in rules.plan(&facts, "INBOX", "") {
        if let crate::deliver::rules::Step::Store { folder, .. } = &p.step {
            assert!(
                folder == "INBOX" || crate::store::maildir::check_folder_name(folder).is_ok(),
                "unsafe folder {folder:?}"
            );
        }
        let _ = p.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::TARGETS;
    use std::path::Path;

    /// Every input under `fuzz/<kind>/<target>/` through its target. Returns how many ran.
    fn replay(kind: &str) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(kind);
        let mut n = 0;
        for (name, target) in TARGETS {
            let Ok(dir) = std::fs::read_dir(root.join(name)) else {
                continue;
            };
            for entry in dir.flatten() {
                let bytes = std::fs::read(entry.path()).unwrap();
                let r = std::panic::catch_unwind(|| target(&bytes));
                assert!(r.is_ok(), "{name}: {} fails", entry.path().display());
                n += 1;
            }
        }
        n
    }

    /// What the fuzzer found once stays fixed.
    #[test]
    fn regressions_stay_fixed() {
        replay("regressions");
    }

    /// The seeds (real inputs from the tests) pass every target's checks: the checks hold
    /// for good input, and each target has seeds.
    #[test]
    fn seeds_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        for (name, _) in TARGETS {
            let n = std::fs::read_dir(root.join(name)).map_or(0, |d| d.count());
            assert!(n > 0, "no seeds for {name}");
        }
        assert!(replay("seeds") >= TARGETS.len());
    }
}
