//! Helpers shared by the mcompose test files: a temporary directory with the binary in
//! it, output checks, and what the parsers (mailparse, Python's `email`) make of a message.
//! Included with `#[path]`, so that each test file compiles it as its own module.
#![allow(dead_code)]

use crate::common::{code, run, stderr, tool};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A temporary directory, HOME of the tool, holding a test's files.
pub struct T {
    pub dir: tempfile::TempDir,
}

impl T {
    pub fn new() -> T {
        T {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    pub fn cmd(&self) -> Command {
        let mut c = tool(crate::bin!("mcompose"), self.dir.path());
        c.env("USER", "tester");
        c
    }

    /// Run mcompose with `args` and `stdin`.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(self.cmd().args(args), stdin)
    }

    /// Run mcompose and expect success; the message.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert_eq!(code(&out), 0, "mcompose {args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
        check_lines(&out.stdout);
        out.stdout
    }
}

/// Every header line within 78 characters (998 for body lines), LF line ends only, and
/// no raw 8-bit byte in the header.
pub fn check_lines(msg: &[u8]) {
    let text = String::from_utf8_lossy(msg);
    let (head, body) = text.split_once("\n\n").expect("a header and a body");
    assert!(!msg.contains(&b'\r'), "CR in output");
    for l in head.lines() {
        assert!(l.len() <= 78, "header line over 78: {l:?}");
        assert!(l.is_ascii(), "raw non-ASCII header: {l:?}");
    }
    for l in body.lines() {
        assert!(l.len() <= 998, "body line over 998");
    }
}

/// The header block as a string.
pub fn head(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    text.split_once("\n\n").unwrap().0.to_string() + "\n"
}

/// A decoded header value by mailparse.
pub fn mp_header(msg: &[u8], name: &str) -> Option<String> {
    use mailparse::MailHeaderMap;
    let m = mailparse::parse_mail(msg).unwrap();
    m.headers.get_first_value(name)
}

/// What Python's `email` package (policy.default) makes of a message: decoded headers
/// (`h:name`), addr-specs and display names (`a:name`, `n:name`), the text and HTML bodies,
/// the defects it found, and each attachment's name, type and bytes (`att1:…`).
pub fn python(msg: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let map = python_unchecked(msg);
    assert_eq!(py(&map, "defects"), "", "python found defects");
    map
}

pub fn python_unchecked(msg: &[u8]) -> BTreeMap<String, Vec<u8>> {
    const SCRIPT: &str = r#"
import sys, email, email.policy
data = sys.stdin.buffer.read()
m = email.message_from_bytes(data, policy=email.policy.default)
def emit(k, v):
    if isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
    sys.stdout.write(k + "\t" + v.hex() + "\n")
for k in ["From", "To", "Cc", "Bcc", "Reply-To", "Subject", "In-Reply-To", "References",
          "Message-ID", "Date", "MIME-Version", "X-Custom", "X-Long"]:
    v = m.get(k)
    if v is not None:
        emit("h:" + k.lower(), str(v))
        if hasattr(v, "addresses"):
            emit("a:" + k.lower(), ", ".join(a.addr_spec for a in v.addresses))
            emit("n:" + k.lower(), ", ".join(a.display_name for a in v.addresses))
defects = [repr(d) for p in m.walk() for d in p.defects]
defects += [k + ": " + repr(d) for p in m.walk() for k, v in p.items() for d in getattr(v, "defects", ())]
emit("defects", " ".join(defects))
emit("type", m.get_content_type())
b = m.get_body(preferencelist=("plain",))
if b is not None:
    emit("text", b.get_content())
h = m.get_body(preferencelist=("html",))
if h is not None and h.get_content_type() == "text/html":
    emit("html", h.get_content())
for i, a in enumerate(m.iter_attachments(), 1):
    emit("att%d:name" % i, a.get_filename() or "")
    emit("att%d:type" % i, a.get_content_type())
    emit("att%d:disposition" % i, a.get_content_disposition() or "")
    if a.get_content_type() == "message/rfc822":
        inner = a.get_content()
        emit("att%d:subject" % i, str(inner["Subject"]))
        emit("att%d:text" % i, inner.get_body(preferencelist=("plain",)).get_content())
    else:
        emit("att%d:data" % i, a.get_content() if isinstance(a.get_content(), bytes) else a.get_payload(decode=True))
"#;
    let out = run(Command::new("python3").args(["-c", SCRIPT]), msg);
    assert_eq!(code(&out), 0, "python: {}", stderr(&out));
    let mut map = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (k, hex) = line.split_once('\t').unwrap();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        map.insert(k.to_string(), bytes);
    }
    map
}

/// [`python`] for a message with RFC 6532 UTF-8 addresses: Python's `email` reads raw
/// UTF-8 in headers as undecodable bytes and says so; those defects, and only those, are
/// expected.
pub fn python_utf8(msg: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut map = python_unchecked(msg);
    let defects = py(&map, "defects");
    for d in defects.split(") ").filter(|d| !d.is_empty()) {
        assert!(
            d.contains("NonASCIILocalPartDefect") || d.contains("UndecodableBytesDefect"),
            "python found defects: {defects}"
        );
    }
    map.remove("defects");
    map
}

pub fn py(map: &BTreeMap<String, Vec<u8>>, key: &str) -> String {
    String::from_utf8_lossy(map.get(key).map(Vec::as_slice).unwrap_or(b"<missing>")).into_owned()
}

pub fn sample_original(t: &T) -> PathBuf {
    t.write(
        "orig.eml",
        "From: =?utf-8?q?Bj=C3=B6rn?= <bjorn@example.net>\n\
         To: me@example.org, \"Other, Person\" <other@example.com>\n\
         Cc: third@example.com, ME@example.org, Other@Example.com\n\
         Subject: Re: RE: Planning\n\
         Date: Mon, 2 Nov 2026 10:00:00 +0100\n\
         Message-ID: <orig.2@example.net>\n\
         References: <root.1@example.net>\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n\
         Shall we meet on Tuesday? Gr=C3=BC=C3=9Fe\n\
         \n\
         Bj=C3=B6rn\n",
    )
}
