//! mcompose through the real binary: each option, round trips through two independent
//! parsers (mailparse, and Python's `email` package), header injection, the edit cycle,
//! a 50 MB attachment with flat memory, and `mcompose | mdeliver` end to end.

use crate::common;

use common::{code, run, stderr, tool};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        T {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn cmd(&self) -> Command {
        let mut c = tool(bin!("mcompose"), self.dir.path());
        c.env("USER", "tester");
        c
    }

    /// Run mcompose with `args` and `stdin`.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(self.cmd().args(args), stdin)
    }

    /// Run mcompose and expect success; the message.
    fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert_eq!(code(&out), 0, "mcompose {args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
        check_lines(&out.stdout);
        out.stdout
    }
}

/// Every header line within 78 characters (998 for body lines), LF line ends only, and
/// no raw 8-bit byte in the header.
fn check_lines(msg: &[u8]) {
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
fn head(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    text.split_once("\n\n").unwrap().0.to_string() + "\n"
}

/// A decoded header value by mailparse.
fn mp_header(msg: &[u8], name: &str) -> Option<String> {
    use mailparse::MailHeaderMap;
    let m = mailparse::parse_mail(msg).unwrap();
    m.headers.get_first_value(name)
}

/// What Python's `email` package (policy.default) makes of a message: decoded headers
/// (`h:name`), addr-specs and display names (`a:name`, `n:name`), the text and HTML bodies,
/// the defects it found, and each attachment's name, type and bytes (`att1:…`).
fn python(msg: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let map = python_unchecked(msg);
    assert_eq!(py(&map, "defects"), "", "python found defects");
    map
}

fn python_unchecked(msg: &[u8]) -> BTreeMap<String, Vec<u8>> {
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
    emit("att%d:cte" % i, a.get("Content-Transfer-Encoding", ""))
    if a.get_content_type() == "message/rfc822":
        inner = a.get_content()
        emit("att%d:subject" % i, str(inner["Subject"]))
        emit("att%d:from" % i, str(inner["From"]))
        emit("att%d:message-id" % i, str(inner["Message-ID"]))
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
fn python_utf8(msg: &[u8]) -> BTreeMap<String, Vec<u8>> {
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

fn py(map: &BTreeMap<String, Vec<u8>>, key: &str) -> String {
    String::from_utf8_lossy(map.get(key).map(Vec::as_slice).unwrap_or(b"<missing>")).into_owned()
}

#[test]
fn headers_from_every_option_parse_back_in_both_parsers() {
    let t = T::new();
    let msg = t.ok(
        &[
            "-f",
            "Ann Example <ann@example.org>",
            "-t",
            "bob@example.net, \"Doe, Jane\" <jane@example.com>",
            "carl@example.net",
            "-c",
            "cc@example.net",
            "-b",
            "hidden@example.net",
            "-s",
            "Quarterly numbers",
            "--reply-to",
            "list@example.org",
            "--in-reply-to",
            "<orig.1@example.net>",
            "--references",
            "<root@example.net> <orig.1@example.net>",
            "-H",
            "X-Custom: custom value",
        ],
        b"Hello Bob,\nthe numbers are fine.\n",
    );
    let h = head(&msg);
    for want in [
        "From: Ann Example <ann@example.org>\n",
        "To: bob@example.net, \"Doe, Jane\" <jane@example.com>, carl@example.net\n",
        "Cc: cc@example.net\n",
        "Bcc: hidden@example.net\n",
        "Reply-To: list@example.org\n",
        "Subject: Quarterly numbers\n",
        "In-Reply-To: <orig.1@example.net>\n",
        "References: <root@example.net> <orig.1@example.net>\n",
        "X-Custom: custom value\n",
        "MIME-Version: 1.0\n",
        "Content-Type: text/plain; charset=utf-8\n",
        "Content-Transfer-Encoding: 7bit\n",
    ] {
        assert!(h.contains(want), "missing {want:?} in\n{h}");
    }
    let date = mp_header(&msg, "Date").unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc2822(&date).is_ok(),
        "{date}"
    );
    let id = mp_header(&msg, "Message-ID").unwrap();
    assert!(id.starts_with('<') && id.ends_with("@example.org>"), "{id}");

    let parsed = mailparse::parse_mail(&msg).unwrap();
    assert_eq!(
        parsed.get_body().unwrap(),
        "Hello Bob,\nthe numbers are fine.\n"
    );
    let to =
        mailparse::addrparse_header(parsed.headers.iter().find(|h| h.get_key() == "To").unwrap())
            .unwrap();
    assert_eq!(to.len(), 3);

    let p = python(&msg);
    assert_eq!(
        py(&p, "a:to"),
        "bob@example.net, jane@example.com, carl@example.net"
    );
    assert_eq!(py(&p, "n:to"), ", Doe, Jane, ");
    assert_eq!(py(&p, "a:bcc"), "hidden@example.net");
    assert_eq!(py(&p, "a:reply-to"), "list@example.org");
    assert_eq!(py(&p, "h:subject"), "Quarterly numbers");
    assert_eq!(py(&p, "h:x-custom"), "custom value");
    assert_eq!(py(&p, "text"), "Hello Bob,\nthe numbers are fine.\n");
}

#[test]
fn non_ascii_subjects_and_names_are_encoded_and_decode_back() {
    let t = T::new();
    let subject =
        "Grüße aus Köln — 日本語の件名 and a rather long tail so that it has to fold somewhere";
    let msg = t.ok(
        &[
            "-f",
            "Zoë Ünïcödé <zoe@example.org>",
            "-t",
            "Jörg Groß <joerg@example.net>, \"Ærø, Åsa\" <asa@example.dk>",
            "-s",
            subject,
        ],
        "Grüße\n".as_bytes(),
    );
    let p = python(&msg);
    assert_eq!(py(&p, "h:subject"), subject);
    assert_eq!(py(&p, "n:from"), "Zoë Ünïcödé");
    assert_eq!(py(&p, "n:to"), "Jörg Groß, Ærø, Åsa");
    assert_eq!(py(&p, "a:to"), "joerg@example.net, asa@example.dk");
    assert_eq!(mp_header(&msg, "Subject").unwrap(), subject);
    let parsed = mailparse::parse_mail(&msg).unwrap();
    let to =
        mailparse::addrparse_header(parsed.headers.iter().find(|h| h.get_key() == "To").unwrap())
            .unwrap();
    assert_eq!(
        to.to_string(),
        "\"Jörg Groß\" <joerg@example.net>, \"Ærø, Åsa\" <asa@example.dk>"
    );
}

#[test]
fn body_encoding_is_7bit_quoted_printable_or_8bit() {
    let t = T::new();
    let cte = |msg: &[u8]| mp_header(msg, "Content-Transfer-Encoding").unwrap();
    let ascii = t.ok(&["-t", "a@example.org"], b"plain ascii\n");
    assert_eq!(cte(&ascii), "7bit");

    let text = "naïve café, très €\nline two \n";
    let qp = t.ok(&["-t", "a@example.org"], text.as_bytes());
    assert_eq!(cte(&qp), "quoted-printable");
    assert!(qp.is_ascii());
    assert_eq!(py(&python(&qp), "text"), text);
    // mailparse's quoted-printable decoder turns hard line breaks into CRLF.
    let mp = mailparse::parse_mail(&qp).unwrap().get_body().unwrap();
    assert_eq!(mp.replace("\r\n", "\n"), text);

    let eight = t.ok(&["-t", "a@example.org", "--8bit"], text.as_bytes());
    assert_eq!(cte(&eight), "8bit");
    assert!(String::from_utf8_lossy(&eight).contains("naïve café"));
    assert_eq!(py(&python(&eight), "text"), text);

    // A line over 998 octets is encoded even when 8bit is allowed.
    let long = format!("{}\nshort\n", "x".repeat(5000));
    let enc = t.ok(&["-t", "a@example.org", "--8bit"], long.as_bytes());
    assert_eq!(cte(&enc), "quoted-printable");
    assert_eq!(py(&python(&enc), "text"), long);

    // CRLF input becomes LF; a body without a final newline keeps its text.
    let crlf = t.ok(&["-t", "a@example.org"], b"one\r\ntwo\r\n");
    assert!(crlf.ends_with(b"\n\none\ntwo\n"));
    let unterminated = t.ok(&["-t", "a@example.org"], "ending é".as_bytes());
    assert_eq!(py(&python(&unterminated), "text"), "ending é");
}

#[test]
fn bad_addresses_exit_65_naming_them() {
    let t = T::new();
    for (opt, bad) in [
        ("-f", "nobody@"),
        ("-t", "good@example.org, bad@@example.org"),
        ("-c", "no-at-sign"),
        ("-b", "a@-bad.example"),
        ("--reply-to", "x@exa mple.org"),
        ("-t", "\"unterminated@example.org"),
    ] {
        let mut args = vec![opt, bad];
        if opt != "-f" {
            args.extend(["-f", "me@example.org"]);
        }
        let out = t.run(&args, b"body\n");
        assert_eq!(code(&out), 65, "{opt} {bad}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(err.starts_with("mcompose: "), "{err}");
        assert!(err.contains("bad address"), "{err}");
    }
    let out = t.run(&["-t", "ok@example.org, broken@"], b"");
    assert!(stderr(&out).contains("\"broken@\""), "{}", stderr(&out));
    let out = t.run(&["-t", "a@example.org", "--in-reply-to", "not-an-id"], b"");
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("not-an-id"));
}

#[test]
fn line_breaks_in_any_option_never_start_a_header() {
    let t = T::new();
    let evil = "x@example.org\r\nBcc: victim@example.net";
    let attach = t.write("f.txt", "data");
    let attach_evil = format!("{}\nX-Injected: 1", attach.display());
    for args in [
        vec!["-f", evil],
        vec!["-t", evil],
        vec![evil],
        vec!["-c", evil],
        vec!["-b", evil],
        vec!["-s", "hi\nBcc: victim@example.net"],
        vec!["-s", "hi\rBcc: victim@example.net"],
        vec!["--reply-to", evil],
        vec!["--in-reply-to", "<a@b>\nBcc: victim@example.net"],
        vec!["--references", "<a@b>\nBcc: victim@example.net"],
        vec!["-H", "X-A: v\nBcc: victim@example.net"],
        vec!["-H", "X-A\nBcc: victim@example.net: v"],
        vec![
            "--message-id-domain",
            "example.org\nBcc: victim@example.net",
        ],
        vec!["-a", &attach_evil],
        vec!["-A", "work\nBcc: victim@example.net"],
    ] {
        let mut full = vec!["-t", "a@example.org"];
        full.extend(&args);
        let out = t.run(&full, b"body\n");
        assert_eq!(code(&out), 64, "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A file name with a line break (from --forward or a draft's Attach:) stays a parameter.
    let odd = t.write("a\nBcc: victim@example.net", "To: x@example.org\n\nhi\n");
    let msg = t.ok(
        &["-t", "a@example.org", "--forward", odd.to_str().unwrap()],
        b"x\n",
    );
    assert!(!head(&msg).lines().any(|l| l.starts_with("Bcc")));
    assert!(
        !String::from_utf8_lossy(&msg)
            .lines()
            .any(|l| l.starts_with("Bcc"))
    );
    assert_eq!(py(&python(&msg), "att1:type"), "message/rfc822");

    // Text that decodes to a line break (a draft's encoded subject) stays encoded.
    let draft = t.write(
        "d.eml",
        "To: a@example.org\nSubject: =?utf-8?q?hi=0D=0ABcc=3A_victim=40example.net?=\n\nbody\n",
    );
    let msg = t.ok(&["--draft", draft.to_str().unwrap()], b"");
    let h = head(&msg);
    assert!(!h.lines().any(|l| l.starts_with("Bcc")), "{h}");
    assert_eq!(
        py(&python(&msg), "h:subject"),
        "hi\r\nBcc: victim@example.net"
    );
}

#[test]
fn long_headers_fold_and_never_exceed_998() {
    let t = T::new();
    let many: Vec<String> = (0..40)
        .map(|i| format!("Person Number{i} <person{i}@example.org>"))
        .collect();
    let list = many.join(", ");
    let long_word = "y".repeat(3000);
    let header = format!("X-Long: start {long_word} end");
    let msg = t.ok(
        &["-t", &list, "-s", &"word ".repeat(60), "-H", &header],
        b"x\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to").split(", ").count(), 40);
    assert_eq!(py(&p, "h:subject"), "word ".repeat(60).trim());
    assert_eq!(py(&p, "h:x-long"), format!("start {long_word} end"));
}

#[test]
fn attachments_keep_their_bytes_names_and_types() {
    let t = T::new();
    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let bin = t.write("data.bin", &binary);
    let pdf = t.write("report", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n");
    let text = t.write("notes.txt", "line one\r\nline two, naïve\n");
    let name = "Überlange Präsentation für das Quartalsmeeting mit einem sehr langen Namen.dat";
    let long = t.write(name, b"\x00\x01\x02");
    let forced = t.write("image.raw", b"not really");
    let forced_spec = format!("{}:image/x-raw", forced.display());
    let msg = t.ok(
        &[
            "-t",
            "a@example.org",
            "-a",
            bin.to_str().unwrap(),
            "-a",
            pdf.to_str().unwrap(),
            "-a",
            text.to_str().unwrap(),
            "-a",
            long.to_str().unwrap(),
            "-a",
            &forced_spec,
        ],
        b"see attached\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "type"), "multipart/mixed");
    assert_eq!(py(&p, "text"), "see attached\n");
    assert_eq!(p["att1:data"], binary);
    assert_eq!(py(&p, "att1:type"), "application/octet-stream");
    assert_eq!(py(&p, "att2:type"), "application/pdf");
    assert_eq!(py(&p, "att2:name"), "report");
    assert_eq!(py(&p, "att3:type"), "text/plain");
    assert_eq!(p["att3:data"], std::fs::read(&text).unwrap());
    assert_eq!(py(&p, "att4:name"), name);
    assert_eq!(p["att4:data"], b"\x00\x01\x02");
    assert_eq!(py(&p, "att5:type"), "image/x-raw");
    assert_eq!(py(&p, "att1:disposition"), "attachment");

    // mailparse agrees on bytes and names.
    let parsed = mailparse::parse_mail(&msg).unwrap();
    assert_eq!(parsed.subparts.len(), 6);
    assert_eq!(parsed.subparts[1].get_body_raw().unwrap(), binary);
    let cd = parsed.subparts[4].get_content_disposition();
    assert_eq!(cd.params.get("filename").map(String::as_str), Some(name));
    assert_eq!(
        parsed.subparts[3].get_body_raw().unwrap(),
        std::fs::read(&text).unwrap()
    );

    let quoted = t.write("say \"hi\" \\ bye.txt", "q");
    let q = t.ok(
        &["-t", "a@example.org", "-a", quoted.to_str().unwrap()],
        b"x\n",
    );
    assert_eq!(py(&python(&q), "att1:name"), "say \"hi\" \\ bye.txt");

    let inline = t.ok(
        &[
            "-t",
            "a@example.org",
            "--inline",
            "-a",
            pdf.to_str().unwrap(),
        ],
        b"x\n",
    );
    assert_eq!(py(&python(&inline), "att1:disposition"), "inline");
}

#[test]
fn html_makes_multipart_alternative() {
    let t = T::new();
    let html_path = t.write("m.html", "<p>Grüße</p>\n");
    let msg = t.ok(
        &["-t", "a@example.org", "--html", html_path.to_str().unwrap()],
        "Grüße\n".as_bytes(),
    );
    let p = python(&msg);
    assert_eq!(py(&p, "type"), "multipart/alternative");
    assert_eq!(py(&p, "text"), "Grüße\n");
    assert_eq!(py(&p, "html"), "<p>Grüße</p>\n");
    let parsed = mailparse::parse_mail(&msg).unwrap();
    assert_eq!(parsed.subparts[1].ctype.mimetype, "text/html");
    let html = parsed.subparts[1].get_body().unwrap();
    // With an attachment the alternative nests inside multipart/mixed.
    let att = t.write("a.bin", [9u8; 10]);
    let mixed = t.ok(
        &[
            "-t",
            "a@example.org",
            "--html",
            html_path.to_str().unwrap(),
            "-a",
            att.to_str().unwrap(),
        ],
        b"text\n",
    );
    let p = python(&mixed);
    assert_eq!(py(&p, "type"), "multipart/mixed");
    assert_eq!(py(&p, "text"), "text\n");
    assert_eq!(py(&p, "html"), "<p>Grüße</p>\n");
    assert_eq!(p["att1:data"], [9u8; 10]);
    assert!(!p.contains_key("att2:name"));
    assert_eq!(html.replace("\r\n", "\n"), "<p>Grüße</p>\n");
}

#[test]
fn missing_inputs_and_bad_data_have_their_exit_codes() {
    let t = T::new();
    let missing = t.path("nope").display().to_string();
    for args in [
        vec!["--body", &missing],
        vec!["-a", &missing],
        vec!["--html", &missing],
        vec!["--reply", &missing],
        vec!["--forward", &missing],
        vec!["--draft", &missing],
    ] {
        let mut full = vec!["-t", "a@example.org"];
        full.extend(&args);
        let out = t.run(&full, b"x\n");
        assert_eq!(code(&out), 66, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let out = t.run(&["-t", "a@example.org"], b"latin1 \xe9\n");
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("body: not UTF-8"), "{}", stderr(&out));
    for usage in [
        vec!["--bogus"],
        vec!["--all"],
        vec!["-H", "Subject: sneaky"],
        vec!["-H", "no colon"],
        vec!["--reply", "a", "--forward", "b"],
        vec!["--draft", "a", "--body", "b"],
        vec!["-H", &format!("X-{}: too long a name", "n".repeat(80))],
    ] {
        assert_eq!(code(&t.run(&usage, b"")), 64, "{usage:?}");
    }
}

#[test]
fn output_file_is_created_exclusively() {
    let t = T::new();
    let out_path = t.path("msg.eml");
    let out = t.run(
        &["-t", "a@example.org", "-o", out_path.to_str().unwrap()],
        b"hi\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let written = std::fs::read(&out_path).unwrap();
    assert!(written.ends_with(b"\n\nhi\n"));
    let again = t.run(
        &["-t", "a@example.org", "-o", out_path.to_str().unwrap()],
        b"other\n",
    );
    assert_eq!(code(&again), 73);
    assert_eq!(std::fs::read(&out_path).unwrap(), written);
    let nodir = t.path("no/such/dir/m.eml");
    assert_eq!(
        code(&t.run(&["-t", "a@example.org", "-o", nodir.to_str().unwrap()], b"")),
        73
    );
}

#[test]
fn an_attachment_from_a_pipe_is_read_before_anything_is_written() {
    // `-a <(cmd)`: the type sniffing read the pipe, the encoder then tried to rewind it,
    // and mcompose failed with "illegal seek" (74) after writing half the message.
    let t = T::new();
    let fifo = t.path("piped.txt");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, "hello fifo\n").unwrap())
    };
    let msg = t.ok(&["-t", "a@example.org", "-a", fifo.to_str().unwrap()], b"");
    writer.join().unwrap();
    let text = String::from_utf8_lossy(&msg);
    assert!(text.contains("filename=\"piped.txt\""), "{text}");
    assert!(text.contains("\naGVsbG8gZmlmbwo=\n"), "{text}");
}

#[test]
fn a_run_killed_while_writing_leaves_no_partial_output_file() {
    // -o FILE was written in place: killed half way (Ctrl-C, the OOM killer), it left half
    // a message under the very name a later `msubmit < FILE` sends.
    let t = T::new();
    let big = t.path("big.bin");
    // 1 GiB of holes: instant to make, seconds to encode.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let out_path = t.path("msg.eml");
    let mut child = t
        .cmd()
        .args(["-t", "a@example.org", "-o", out_path.to_str().unwrap()])
        .args(["-a", big.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out_path.exists(),
        "a partial message is left in {out_path:?}"
    );
}

#[test]
fn sender_and_message_id_domain_from_flags_config_or_environment() {
    let t = T::new();
    let id = |msg: &[u8]| mp_header(msg, "Message-ID").unwrap();
    let from = |msg: &[u8]| mp_header(msg, "From").unwrap();
    let m = t.ok(
        &[
            "-t",
            "a@example.org",
            "-f",
            "me@sender.example",
            "--message-id-domain",
            "ids.example",
        ],
        b"",
    );
    assert!(id(&m).ends_with("@ids.example>"), "{}", id(&m));

    let env = run(
        t.cmd()
            .env("EMAIL", "Env Person <env@env.example>")
            .args(["-t", "a@example.org"]),
        b"",
    );
    assert_eq!(code(&env), 0, "{}", stderr(&env));
    assert_eq!(from(&env.stdout), "Env Person <env@env.example>");
    assert!(id(&env.stdout).ends_with("@env.example>"));

    let cfg = t.write(
        "config",
        "from cfg@cfg.example\ndomain mid.example\naccount work\nfrom work@work.example\n",
    );
    let c = cfg.to_str().unwrap();
    let m = t.ok(&["-C", c, "-t", "a@example.org"], b"");
    assert_eq!(from(&m), "cfg@cfg.example");
    assert!(id(&m).ends_with("@mid.example>"));
    let m = t.ok(&["-C", c, "-A", "work", "-t", "a@example.org"], b"");
    assert_eq!(from(&m), "work@work.example");

    // Nothing configured: login@host, and never a bare short host name in the Message-ID.
    let m = t.ok(&["-t", "a@example.org"], b"");
    assert!(from(&m).starts_with("tester@"), "{}", from(&m));
    let right = id(&m).rsplit_once('@').unwrap().1.to_string();
    assert!(right.contains('.'), "{right}");
    let m = t.ok(&["-t", "a@example.org", "-f", "me@localhost"], b"");
    assert!(
        id(&m).rsplit_once('@').unwrap().1.contains('.'),
        "{}",
        id(&m)
    );
}

fn sample_original(t: &T) -> PathBuf {
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

#[test]
fn reply_and_reply_all() {
    let t = T::new();
    let orig = sample_original(&t);
    let o = orig.to_str().unwrap();
    let msg = t.ok(
        &["-f", "me@example.org", "--reply", o],
        b"Tuesday is fine.\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "bjorn@example.net");
    assert_eq!(py(&p, "n:to"), "Björn");
    assert!(!p.contains_key("h:cc"));
    assert_eq!(py(&p, "h:subject"), "Re: Planning");
    assert_eq!(py(&p, "h:in-reply-to"), "<orig.2@example.net>");
    assert_eq!(
        py(&p, "h:references"),
        "<root.1@example.net> <orig.2@example.net>"
    );
    assert_eq!(
        py(&p, "text"),
        "On Mon, 2 Nov 2026 10:00:00 +0100, Björn wrote:\n\
         > Shall we meet on Tuesday? Grüße\n>\n> Björn\n\nTuesday is fine.\n"
    );

    let all = t.ok(
        &["-f", "Me <me@example.org>", "--reply", o, "--all"],
        b"ok\n",
    );
    let p = python(&all);
    assert_eq!(py(&p, "a:to"), "bjorn@example.net");
    assert_eq!(py(&p, "a:cc"), "other@example.com, third@example.com");
}

#[test]
fn forward_attaches_the_original_as_message_rfc822() {
    let t = T::new();
    let orig = sample_original(&t);
    let msg = t.ok(
        &[
            "-f",
            "me@example.org",
            "-t",
            "boss@example.org",
            "--forward",
            orig.to_str().unwrap(),
        ],
        b"FYI\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "h:subject"), "Fwd: Re: RE: Planning");
    assert_eq!(py(&p, "text"), "FYI\n");
    assert_eq!(py(&p, "att1:type"), "message/rfc822");
    assert_eq!(py(&p, "att1:subject"), "Re: RE: Planning");
    assert_eq!(
        py(&p, "att1:text"),
        "Shall we meet on Tuesday? Grüße\n\nBjörn\n"
    );
    let parsed = mailparse::parse_mail(&msg).unwrap();
    assert_eq!(parsed.subparts[1].ctype.mimetype, "message/rfc822");
    assert_eq!(
        parsed.subparts[1].get_body_raw().unwrap(),
        std::fs::read(&orig).unwrap()
    );
}

/// Forward `orig` (saved as `name`) and return the message and what Python made of it.
fn forwarded(t: &T, name: &str, orig: &[u8]) -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
    let path = t.write(name, orig);
    let msg = t.ok(
        &[
            "-f",
            "me@example.org",
            "-t",
            "boss@example.org",
            "--forward",
            path.to_str().unwrap(),
        ],
        b"FYI\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "text"), "FYI\n");
    (msg, p)
}

/// The raw body of the forwarded part, as mailparse reads it.
fn forwarded_raw(msg: &[u8]) -> Vec<u8> {
    let parsed = mailparse::parse_mail(msg).unwrap();
    parsed.subparts[1].get_body_raw().unwrap()
}

const ORIG_HEAD: &str = "From: Ann <ann@example.org>\r\nTo: me@example.org\r\n\
                         Subject: Minutes\r\nMessage-ID: <m1@example.org>\r\n";

#[test]
fn a_forwarded_message_with_stray_crs_is_repaired_into_message_rfc822() {
    // Such an original went as message/rfc822 in base64 (RFC 2046 §5.2.1 forbids it), and
    // Python's email found no forwarded message in the part.
    let t = T::new();
    // Saved with CRLF, and ending in a lone CR.
    let (msg, p) = forwarded(
        &t,
        "lone-cr.eml",
        format!("{ORIG_HEAD}\r\nSee you.\r\nRegards\r").as_bytes(),
    );
    assert_eq!(py(&p, "att1:type"), "message/rfc822");
    assert_eq!(py(&p, "att1:cte"), "7bit");
    assert_eq!(py(&p, "att1:from"), "Ann <ann@example.org>");
    assert_eq!(py(&p, "att1:subject"), "Minutes");
    assert_eq!(py(&p, "att1:message-id"), "<m1@example.org>");
    assert_eq!(py(&p, "att1:text"), "See you.\nRegards\n");
    assert_eq!(py(&p, "att1:name"), "lone-cr.eml");
    let want = format!("{ORIG_HEAD}\r\nSee you.\r\nRegards\n").replace("\r\n", "\n");
    assert_eq!(forwarded_raw(&msg), want.as_bytes());

    // A bare CR inside a line is a line end; CR CR LF in the header (a CRLF converted
    // twice) is one line end, not an empty line ending the header before Subject:.
    let (msg, p) = forwarded(
        &t,
        "mid-cr.eml",
        "From: Ann <ann@example.org>\r\r\nSubject: Minutes\r\r\nMessage-ID: <m1@example.org>\n\n\
         first\rsecond\n"
            .as_bytes(),
    );
    assert_eq!(py(&p, "att1:type"), "message/rfc822");
    assert_eq!(py(&p, "att1:cte"), "7bit");
    assert_eq!(py(&p, "att1:from"), "Ann <ann@example.org>");
    assert_eq!(py(&p, "att1:subject"), "Minutes");
    assert_eq!(py(&p, "att1:message-id"), "<m1@example.org>");
    assert_eq!(py(&p, "att1:text"), "first\nsecond\n");
    assert_eq!(
        forwarded_raw(&msg),
        b"From: Ann <ann@example.org>\nSubject: Minutes\nMessage-ID: <m1@example.org>\n\n\
          first\nsecond\n"
    );
}

#[test]
fn a_forwarded_message_that_cannot_be_7bit_or_8bit_goes_as_an_eml_file() {
    // A NUL or a line over 998 octets cannot travel as 7bit or 8bit (RFC 2045 §2.7-2.8),
    // and message/rfc822 may not be base64 (RFC 2046 §5.2.1): application/octet-stream,
    // base64, the original byte for byte, named .eml.
    let t = T::new();
    let nul = format!("{ORIG_HEAD}\r\nbin\0ary\r\n");
    let (msg, p) = forwarded(&t, "1700000000.M1P2.host:2,S", nul.as_bytes());
    assert_eq!(py(&p, "att1:type"), "application/octet-stream");
    assert_eq!(py(&p, "att1:cte"), "base64");
    assert_eq!(py(&p, "att1:name"), "1700000000.M1P2.host:2,S.eml");
    assert_eq!(p["att1:data"], nul.as_bytes());
    assert!(!String::from_utf8_lossy(&msg).contains("message/rfc822"));

    let long = format!("{ORIG_HEAD}\r\n{}\r\nend\r", "x".repeat(1200));
    let (_, p) = forwarded(&t, "long.EML", long.as_bytes());
    assert_eq!(py(&p, "att1:type"), "application/octet-stream");
    assert_eq!(py(&p, "att1:cte"), "base64");
    assert_eq!(py(&p, "att1:name"), "long.EML");
    assert_eq!(p["att1:data"], long.as_bytes());
}

#[test]
fn a_forwarded_message_is_7bit_or_8bit_as_its_content_allows() {
    let t = T::new();
    let utf8 = "From: =?utf-8?q?Bj=C3=B6rn?= <bjorn@example.net>\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\
                Message-ID: <u8@example.net>\n\
                MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
                Content-Transfer-Encoding: 8bit\n\nSchöne Grüße\n";
    let (msg, p) = forwarded(&t, "utf8.eml", utf8.as_bytes());
    assert_eq!(py(&p, "att1:type"), "message/rfc822");
    assert_eq!(py(&p, "att1:cte"), "8bit");
    assert_eq!(py(&p, "att1:from"), "Björn <bjorn@example.net>");
    assert_eq!(py(&p, "att1:subject"), "Grüße");
    assert_eq!(py(&p, "att1:message-id"), "<u8@example.net>");
    assert_eq!(py(&p, "att1:text"), "Schöne Grüße\n");
    assert_eq!(forwarded_raw(&msg), utf8.as_bytes());

    let ascii = format!("{ORIG_HEAD}\r\nPlain words.\r\n");
    let (msg, p) = forwarded(&t, "ascii.eml", ascii.as_bytes());
    assert_eq!(py(&p, "att1:type"), "message/rfc822");
    assert_eq!(py(&p, "att1:cte"), "7bit");
    assert_eq!(py(&p, "att1:from"), "Ann <ann@example.org>");
    assert_eq!(py(&p, "att1:subject"), "Minutes");
    assert_eq!(py(&p, "att1:text"), "Plain words.\n");
    assert_eq!(forwarded_raw(&msg), ascii.replace("\r\n", "\n").as_bytes());
}

#[test]
fn drafts_give_headers_attachments_and_body() {
    let t = T::new();
    let att = t.write("plan.pdf", b"%PDF-1.7 plan");
    let draft = t.write(
        "draft.eml",
        format!(
            "From: Me <me@example.org>\nTo: a@example.org,\n b@example.org\nCc:\nSubject: Grüße vom Entwurf\n\
             X-Custom: from the draft\nAttach: {}\nDate: ignored\n\nDraft body.\n",
            att.display()
        ),
    );
    let msg = t.ok(
        &[
            "--draft",
            draft.to_str().unwrap(),
            "-c",
            "extra@example.org",
        ],
        b"stdin is not read\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "a@example.org, b@example.org");
    assert_eq!(py(&p, "a:cc"), "extra@example.org");
    assert_eq!(py(&p, "h:subject"), "Grüße vom Entwurf");
    assert_eq!(py(&p, "h:x-custom"), "from the draft");
    assert_eq!(py(&p, "text"), "Draft body.\n");
    assert_eq!(py(&p, "att1:name"), "plan.pdf");
    assert_eq!(p["att1:data"], b"%PDF-1.7 plan");
    assert!(!head(&msg).contains("ignored"));
    let sloppy = t.write("sloppy.eml", "To: a@example.org\nforgot the empty line\n");
    let out = t.run(&["--draft", sloppy.to_str().unwrap()], b"");
    assert_eq!(code(&out), 65);
    assert!(
        stderr(&out).contains("forgot the empty line"),
        "{}",
        stderr(&out)
    );
    assert!(draft.exists(), "a given draft is never removed");
}

#[test]
fn edit_runs_the_editor_and_keeps_the_draft_when_anything_fails() {
    let t = T::new();
    // The editor appends to the body and sets the subject; the path reaches it as $1.
    let editor = t.write(
        "ed.sh",
        "#!/bin/sh\nsed -i 's/^Subject: .*/Subject: edited/' \"$1\"\necho 'typed in the editor' >> \"$1\"\n",
    );
    let ed = format!("sh {}", editor.display());
    let tmp = t.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = run(
        t.cmd().env("EDITOR", &ed).env("TMPDIR", &tmp).args([
            "-f",
            "me@example.org",
            "-t",
            "a@example.org",
            "-s",
            "orig",
            "--edit",
        ]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let p = python(&out.stdout);
    assert_eq!(py(&p, "h:subject"), "edited");
    assert_eq!(py(&p, "a:to"), "a@example.org");
    assert_eq!(py(&p, "text"), "typed in the editor\n");
    assert!(
        common::files(&tmp).is_empty(),
        "the draft is removed after success"
    );

    // VISUAL wins over EDITOR; an editor that fails keeps the draft.
    let out = run(
        t.cmd()
            .env("EDITOR", &ed)
            .env("VISUAL", "false")
            .env("TMPDIR", &tmp)
            .args(["-t", "a@example.org", "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("draft kept in"), "{}", stderr(&out));
    assert_eq!(common::files(&tmp).len(), 1);

    // A bad address typed in the editor: exit 65, the draft is kept with the typo.
    let typo = t.write(
        "typo.sh",
        "#!/bin/sh\nsed -i 's/^To: .*/To: broken@/' \"$1\"\n",
    );
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", typo.display()))
            .env("TMPDIR", &tmp)
            .args(["-t", "a@example.org", "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(stderr(&out).contains("draft kept in"));
    let kept: Vec<_> = common::files(&tmp);
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter()
            .any(|k| std::fs::read_to_string(k).unwrap().contains("To: broken@"))
    );

    // Emptying the draft cancels; nothing is left behind.
    let empty = t.write("empty.sh", "#!/bin/sh\n: > \"$1\"\n");
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", empty.display()))
            .env("TMPDIR", &tmp)
            .args(["-t", "a@example.org", "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(common::files(&tmp).len(), 2);

    // A hostile draft file name is an argument, never shell text.
    let evil = t.write("x'; touch pwned; '.eml", "To: a@example.org\n\nbody\n");
    let out = run(
        t.cmd()
            .env("EDITOR", "true")
            .args(["--draft", evil.to_str().unwrap(), "--edit"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!t.path("pwned").exists() && !Path::new("pwned").exists());
}

#[test]
fn an_edited_draft_stays_until_the_message_was_written_whole() {
    let t = T::new();
    let editor = t.write("ed.sh", "#!/bin/sh\necho 'the text typed' >> \"$1\"\n");
    let tmp = t.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let edit = |stdout: std::process::Stdio| {
        let mut c = t.cmd();
        c.env("EDITOR", format!("sh {}", editor.display()))
            .env("TMPDIR", &tmp)
            .args(["-f", "me@example.org", "-t", "a@example.org", "--edit"])
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(std::process::Stdio::piped());
        c.output().unwrap()
    };
    // A write error (a full disk) and a reader gone (a broken pipe: the message never got
    // anywhere): the draft stays, named on stderr, with the text typed; exit 74.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let outputs = [std::process::Stdio::from(full), writer.into()];
    for (n, stdout) in outputs.into_iter().enumerate() {
        let out = &edit(stdout);
        assert_eq!(code(out), 74, "{}", stderr(out));
        let kept = common::files(&tmp);
        assert_eq!(kept.len(), n + 1, "the draft was removed: {}", stderr(out));
        let named = kept
            .iter()
            .filter(|k| stderr(out).contains(&format!("(draft kept in {})", k.display())))
            .count();
        assert_eq!(named, 1, "{}", stderr(out));
        assert!(kept.iter().all(|k| {
            std::fs::read_to_string(k)
                .unwrap()
                .contains("the text typed")
        }));
    }
    // Written whole: the draft goes.
    for k in common::files(&tmp) {
        std::fs::remove_file(k).unwrap();
    }
    let out = edit(std::process::Stdio::piped());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the text typed"));
    assert!(common::files(&tmp).is_empty());
}

#[test]
fn composed_messages_deliver_into_a_maildir() {
    let t = T::new();
    let att = t.write("a.bin", [1u8, 2, 3]);
    let msg = t.ok(
        &[
            "-f",
            "me@example.org",
            "-t",
            "you@example.org",
            "-s",
            "hello from mcompose",
            "-a",
            att.to_str().unwrap(),
        ],
        b"hi\n",
    );
    let md = t.path("Maildir");
    let out = run(tool(bin!("mdeliver"), t.dir.path()).arg(&md), &msg);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stored = common::only_message(&md);
    assert_eq!(stored, msg);
    let p = python(&stored);
    assert_eq!(py(&p, "h:subject"), "hello from mcompose");
    assert_eq!(p["att1:data"], [1u8, 2, 3]);
}

/// Run mcompose with stdout into `out` and `stdin` (a file, or nothing) piped in, and
/// return its peak resident set in KiB: the highest VmHWM of /proc/PID/status seen while it
/// runs, polled every 2 ms. Its input is held back until the reading is steady (it waits
/// for input, after parsing options and opening files), so even a short run is measured;
/// the peak of a streaming run comes later, while it encodes.
///
/// Not wait4(2)'s ru_maxrss: a child spawned with CLONE_VM (posix_spawn) starts on the
/// parent's memory, and the kernel folds the parent's peak into the child's at exec, so a
/// test process that once held 100 MB would see every child "use" 100 MB. VmHWM belongs to
/// the memory map that exec made, so it measures mcompose alone.
fn max_rss_kib(t: &T, args: &[&str], stdin: Option<&Path>, out: &Path) -> u64 {
    let file = std::fs::File::create(out).unwrap();
    let mut child = t
        .cmd()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(file)
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take();
    let mut feeder = None;
    let status_file = format!("/proc/{}/status", child.id());
    let (mut peak, mut last, mut stable) = (0, 0, 0);
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
            && let Some(kib) = line.split_whitespace().nth(1).and_then(|n| n.parse().ok())
        {
            peak = peak.max(kib);
        }
        // The same reading 5 times running: it waits for its input.
        stable = if peak > 0 && peak == last {
            stable + 1
        } else {
            0
        };
        last = peak;
        if stable >= 5
            && let Some(mut pipe) = input.take()
        {
            let src = stdin.map(Path::to_path_buf);
            feeder = Some(std::thread::spawn(move || {
                if let Some(src) = src {
                    let _ = std::io::copy(&mut std::fs::File::open(src).unwrap(), &mut pipe);
                }
            }));
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    assert!(status.success(), "{status}");
    assert!(peak > 0, "no memory reading");
    peak
}

#[test]
fn output_dash_is_standard_output() {
    let t = T::new();
    let out = run(
        t.cmd()
            .current_dir(t.dir.path())
            .args(["-t", "a@example.org", "-s", "dash", "-o", "-"]),
        b"hi\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(head(&out.stdout).contains("Subject: dash"));
    assert!(!t.path("-").exists(), "wrote a file called -");
}

#[test]
fn forward_from_standard_input_is_refused_not_a_file_named_dash() {
    // `--forward -` read the subject from stdin, then attached a file called "-" from the
    // current directory (or failed with "-: no such file").
    let t = T::new();
    t.write(
        "-",
        "From: other@example.org\nSubject: unrelated\n\nsecret\n",
    );
    let out = run(
        t.cmd().current_dir(t.dir.path()).args([
            "-t",
            "a@example.org",
            "--body",
            "/dev/null",
            "--forward",
            "-",
        ]),
        b"From: x@example.org\nSubject: piped\n\nhello\n",
    );
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("mcompose: --forward -: "),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_forwarded_message_streams_with_flat_memory() {
    // --forward read the whole original into memory just to find its Subject.
    let t = T::new();
    let big = t.path("big.eml");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        f.write_all(b"From: x@example.org\nSubject: big one\n\n")
            .unwrap();
        let line = [b'x'; 76];
        for _ in 0..(40 << 20) / 77 {
            f.write_all(&line).unwrap();
            f.write_all(b"\n").unwrap();
        }
    }
    let out = t.path("out.eml");
    let args = ["-t", "a@example.org", "--body", "/dev/null", "--forward"];
    let rss = max_rss_kib(
        &t,
        &[&args[..], &[big.to_str().unwrap()]].concat(),
        None,
        &out,
    );
    assert!(rss < 30 * 1024, "max RSS {rss} KiB forwarding 40 MB");
    let text = std::fs::read(&out).unwrap();
    assert!(text.windows(17).any(|w| w == b"Subject: Fwd: big"));
    assert!(text.len() > 40 << 20);
}

#[test]
fn a_body_file_and_a_reply_stream_with_flat_memory() {
    // --body FILE (and any body after a --reply quote) was read whole into memory; only
    // the plain standard-input case streamed.
    let t = T::new();
    let big = t.path("body.txt");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for i in 0..(40 << 20) / 40 {
            writeln!(f, "line {i:>10} of a long text body ....").unwrap();
        }
    }
    let orig = t.write("orig.eml", "From: x@example.org\nSubject: s\n\nhello\n");
    let out = t.path("out.eml");
    let body = big.to_str().unwrap();
    for args in [
        &["-t", "a@example.org", "--body", body][..],
        &["--reply", orig.to_str().unwrap(), "--body", body],
    ] {
        let _ = std::fs::remove_file(&out);
        let rss = max_rss_kib(&t, args, None, &out);
        assert!(
            rss < 30 * 1024,
            "max RSS {rss} KiB for a 40 MB body: {args:?}"
        );
        assert!(std::fs::metadata(&out).unwrap().len() > 40 << 20);
    }
    let text = std::fs::read(&out).unwrap();
    assert!(text.windows(7).any(|w| w == b"> hello"));
}

#[test]
fn a_50_mb_attachment_streams_with_flat_memory() {
    let t = T::new();
    let big = t.path("big.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let mut x: u32 = 12345;
        for _ in 0..(50 << 20) / 4 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    let small = t.path("small.bin");
    std::fs::write(&small, b"tiny").unwrap();
    let out = t.path("out.eml");
    let base = max_rss_kib(
        &t,
        &["-t", "a@example.org", "-a", small.to_str().unwrap()],
        None,
        &out,
    );
    std::fs::remove_file(&out).unwrap();
    let rss = max_rss_kib(
        &t,
        &["-t", "a@example.org", "-a", big.to_str().unwrap()],
        None,
        &out,
    );
    eprintln!("max RSS: {rss} KiB with 50 MB attached, {base} KiB with 4 bytes");
    assert!(rss < 30 * 1024, "max RSS {rss} KiB");
    assert!(
        rss < base + 8 * 1024,
        "memory grew with the attachment: {base} -> {rss} KiB"
    );

    // The attachment decodes back byte for byte (Python writes it, we compare).
    let script = "import sys, email, email.policy\n\
        m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
        a = next(m.iter_attachments())\n\
        open(sys.argv[2], 'wb').write(a.get_content())\n";
    let back = t.path("back.bin");
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(&out)
        .arg(&back)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        std::fs::read(&back).unwrap() == std::fs::read(&big).unwrap(),
        "attachment differs"
    );

    // A 50 MB non-ASCII text body on standard input streams too (spooled, then encoded).
    let text = t.path("body.txt");
    std::fs::write(&text, "naïve line of text\n".repeat(50 << 20 >> 4)).unwrap();
    std::fs::remove_file(&out).unwrap();
    let rss = max_rss_kib(&t, &["-t", "a@example.org"], Some(&text), &out);
    eprintln!("max RSS: {rss} KiB with a 50 MB body");
    assert!(
        rss < base + 8 * 1024,
        "memory grew with the body: {base} -> {rss} KiB"
    );
    let len = std::fs::metadata(&out).unwrap().len();
    assert!(len > 50 << 20, "{len}");
}

#[test]
fn internationalized_addresses_and_long_ascii_words_stay_readable() {
    let t = T::new();
    let url = format!(
        "<https://lists.example.org/unsubscribe/{}>",
        "t".repeat(120)
    );
    let header = format!("X-Long: {url}");
    let out = t.run(
        &[
            "-f",
            "me@example.org",
            "-t",
            "Jörg <jörg@bücher.example>",
            "-H",
            &header,
        ],
        b"x\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let h = head(&out.stdout);
    // RFC 6532: the address itself is UTF-8 in the header; the name is encoded.
    assert!(h.contains("<jörg@bücher.example>"), "{h}");
    assert!(
        h.contains(&format!("X-Long: {url}\n")),
        "a long URL is not encoded: {h}"
    );
    assert!(h.lines().all(|l| l.len() <= 998));
    let p = python_utf8(&out.stdout);
    assert_eq!(py(&p, "a:to"), "jörg@bücher.example");
    assert_eq!(py(&p, "n:to"), "Jörg");
    assert_eq!(py(&p, "h:x-long"), url);
}

#[test]
fn a_reply_to_ones_own_message_goes_to_its_recipients() {
    let t = T::new();
    let sent = t.write(
        "sent.eml",
        "From: Me <me@example.org>\nTo: friend@example.net\nSubject: plan\nMessage-ID: <s.1@example.org>\n\nhi\n",
    );
    let msg = t.ok(
        &["-f", "me@example.org", "--reply", sent.to_str().unwrap()],
        b"more\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "friend@example.net");
    assert_eq!(py(&p, "h:subject"), "Re: plan");
    assert_eq!(py(&p, "h:references"), "<s.1@example.org>");
}

#[test]
fn a_reply_with_to_needs_no_usable_from_and_a_broken_from_is_read_leniently() {
    let t = T::new();
    // No From: or Reply-To: at all (a cron mail, a saved draft): with -t it is answered; it
    // exited 65 whatever the options.
    let bare = t.write(
        "bare.eml",
        "To: me@example.org\nSubject: disk full\nMessage-ID: <c.1@example.net>\n\n/ at 99%\n",
    );
    let bare = bare.to_str().unwrap();
    let msg = t.ok(
        &[
            "-f",
            "me@example.org",
            "-t",
            "admin@example.org",
            "--reply",
            bare,
        ],
        b"done\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "admin@example.org");
    assert_eq!(py(&p, "h:subject"), "Re: disk full");
    assert_eq!(py(&p, "h:in-reply-to"), "<c.1@example.net>");
    assert_eq!(py(&p, "text"), "someone wrote:\n> / at 99%\n\ndone\n");
    // Without -t there is no one to answer: 65, saying how to name one.
    let out = t.run(&["-f", "me@example.org", "--reply", bare], b"x\n");
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(stderr(&out).contains("-t"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // A From: nothing can parse, and a Reply-To: that is no better: -t still answers it.
    let junk = t.write(
        "junk.eml",
        "From: Bob (no address)\nReply-To: <<<\nSubject: s\n\nb\n",
    );
    let msg = t.ok(
        &[
            "-f",
            "me@example.org",
            "-t",
            "bob@example.org",
            "--reply",
            junk.to_str().unwrap(),
        ],
        b"ok\n",
    );
    assert_eq!(py(&python(&msg), "a:to"), "bob@example.org");

    // Two mailboxes without the comma between them: mutt replies to both (measured with
    // Mutt 2.2.12: its draft says `To: Bob <bob@extern>, Bobby <bobby@extern>`); so do we.
    let two = t.write(
        "two.eml",
        "From: Bob <bob@example.net> Bobby <bobby@example.net>\nTo: me@example.org\nSubject: s\n\nb\n",
    );
    let msg = t.ok(
        &["-f", "me@example.org", "--reply", two.to_str().unwrap()],
        b"ok\n",
    );
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "bob@example.net, bobby@example.net");
    assert_eq!(py(&p, "text"), "Bob wrote:\n> b\n\nok\n");
}

#[test]
fn groups_and_comments_are_understood() {
    let t = T::new();
    let msg = t.ok(
        &[
            "-f",
            "me@example.org (Me Myself)",
            "-t",
            "Team Ä: a@example.org, \"B, b\" <b@example.org>;",
            "-b",
            "undisclosed-recipients:;",
        ],
        b"x\n",
    );
    let h = head(&msg);
    assert!(h.contains("From: Me Myself <me@example.org>\n"), "{h}");
    assert!(h.contains("Bcc: undisclosed-recipients:;\n"), "{h}");
    let p = python(&msg);
    assert_eq!(py(&p, "a:to"), "a@example.org, b@example.org");
    assert_eq!(
        py(&p, "h:to"),
        "Team Ä: a@example.org, \"B, b\" <b@example.org>;"
    );
    let parsed = mailparse::parse_mail(&msg).unwrap();
    let to = parsed.headers.iter().find(|h| h.get_key() == "To").unwrap();
    let list = mailparse::addrparse_header(to).unwrap();
    let mailparse::MailAddr::Group(g) = &list[0] else {
        panic!("not a group: {list:?}")
    };
    assert_eq!(g.group_name, "Team Ä");
    assert_eq!(g.addrs.len(), 2);
}

/// mblaze (a third, independent reader in C) decodes what mcompose writes.
#[test]
fn mblaze_reads_what_mcompose_writes() {
    if !common::have(&["mshow", "mhdr", "maddr"]) {
        return;
    }
    let t = T::new();
    let name = "Überlange Präsentation für das Quartalsmeeting mit einem sehr langen Namen.dat";
    let att = t.write(name, [0u8, 1, 2, 255]);
    let pdf = t.write("report", b"%PDF-1.4\n");
    let subject = "Grüße aus Köln, a long subject that has to fold over the line somewhere";
    let msg = t.ok(
        &[
            "-f",
            "Zoë <z@example.org>",
            "-t",
            "\"Doe, J\" <j@example.org>, b@example.org",
            "-s",
            subject,
            "-a",
            pdf.to_str().unwrap(),
            "-a",
            att.to_str().unwrap(),
        ],
        "Grüße\n".as_bytes(),
    );
    let m = t.write("m.eml", &msg);
    // Run an mblaze tool in x/ with `before`, the message, then `after` as arguments.
    let mblaze = |prog: &str, before: &[&str], after: &[&str]| {
        let out = run(
            tool(PathBuf::from(prog), t.dir.path())
                .env("MBLAZE", t.path("mblaze"))
                .current_dir(t.path("x"))
                .args(before)
                .arg(&m)
                .args(after),
            b"",
        );
        assert_eq!(code(&out), 0, "{prog}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    std::fs::create_dir(t.path("x")).unwrap();
    assert_eq!(
        mblaze("mhdr", &["-d", "-h", "subject"], &[]),
        format!("{subject}\n")
    );
    assert_eq!(
        mblaze("maddr", &["-h", "to"], &[]),
        "\"Doe, J\" <j@example.org>\nb@example.org\n"
    );
    assert_eq!(
        mblaze("maddr", &["-h", "from"], &[]),
        "Zoë <z@example.org>\n"
    );
    let parts = mblaze("mshow", &["-t"], &[]);
    assert!(parts.contains("2: text/plain"), "{parts}");
    assert!(
        parts.contains("3: application/pdf size=9 name=\"report\""),
        "{parts}"
    );
    assert!(
        parts.contains(&format!(
            "4: application/octet-stream size=4 name=\"{name}\""
        )),
        "{parts}"
    );
    assert_eq!(mblaze("mshow", &["-O"], &["2"]), "Grüße\n");
    assert!(!t.path("x").join(name).exists());
    mblaze("mshow", &["-x"], &["3", "4"]);
    assert_eq!(
        std::fs::read(t.path("x").join(name)).unwrap(),
        [0u8, 1, 2, 255]
    );
    assert_eq!(std::fs::read(t.path("x/report")).unwrap(), b"%PDF-1.4\n");
}

#[test]
fn body_file_local_date_and_reply_from_standard_input() {
    let t = T::new();
    let body = t.write("body.txt", "from a file, ünïcode\r\n");
    let msg = run(
        t.cmd()
            .env("TZ", "XST-5")
            .args(["-t", "a@example.org", "--body", body.to_str().unwrap()]),
        b"stdin is not read\n",
    );
    assert_eq!(code(&msg), 0, "{}", stderr(&msg));
    let p = python(&msg.stdout);
    assert_eq!(py(&p, "text"), "from a file, ünïcode\n");
    // RFC 5322 §3.3: local time with its offset (a POSIX TZ needs no zone files).
    assert!(py(&p, "h:date").ends_with(" +0500"), "{}", py(&p, "h:date"));

    // --reply - reads the original from standard input; the new text then comes from --body.
    let orig = std::fs::read(sample_original(&t)).unwrap();
    let reply = t.ok(
        &[
            "-f",
            "me@example.org",
            "--reply",
            "-",
            "--body",
            body.to_str().unwrap(),
        ],
        &orig,
    );
    let p = python(&reply);
    assert_eq!(py(&p, "h:subject"), "Re: Planning");
    assert!(
        py(&p, "text").ends_with("> Björn\n\nfrom a file, ünïcode\n"),
        "{}",
        py(&p, "text")
    );
}

#[test]
fn edit_starts_from_the_reply_quote_and_forward_attachment() {
    let t = T::new();
    let orig = sample_original(&t);
    // The editor checks what it was given, then writes the answer under the quote.
    let editor = t.write(
        "ed.sh",
        "#!/bin/sh\ngrep -q '^> Shall we meet on Tuesday' \"$1\" || exit 3\n\
         grep -q '^To: Björn <bjorn@example.net>' \"$1\" || exit 4\n\
         echo 'Yes.' >> \"$1\"\n",
    );
    let tmp = t.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", editor.display()))
            .env("TMPDIR", &tmp)
            .args([
                "-f",
                "me@example.org",
                "--reply",
                orig.to_str().unwrap(),
                "--edit",
            ]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let p = python(&out.stdout);
    assert_eq!(py(&p, "h:in-reply-to"), "<orig.2@example.net>");
    assert!(
        py(&p, "text").ends_with(">\n> Björn\nYes.\n"),
        "{}",
        py(&p, "text")
    );

    let check = t.write(
        "fwd.sh",
        "#!/bin/sh\ngrep -q '^Attach: .*orig.eml:message/rfc822$' \"$1\" || exit 3\n",
    );
    let out = run(
        t.cmd()
            .env("EDITOR", format!("sh {}", check.display()))
            .env("TMPDIR", &tmp)
            .args([
                "-f",
                "me@example.org",
                "-t",
                "x@example.org",
                "--forward",
                orig.to_str().unwrap(),
                "--edit",
            ]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(py(&python(&out.stdout), "att1:subject"), "Re: RE: Planning");
    assert!(common::files(&tmp).is_empty());
}
