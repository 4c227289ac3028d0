//! Tests of the delivery reports: the policy, the fields, what of the original is returned,
//! and Python's `email` reading what we write as a valid multipart/report.

use super::*;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const ORIGINAL: &[u8] = b"From: Ann <ann@a.test>\n\
To: bob@b.test, cy@c.test\n\
Subject: lunch\n\
Message-ID: <orig.1@a.test>\n\
\n\
Shall we?\n\
--not a boundary\n\
\n\
-- \n\
Ann\n";

fn env(from: &str, rcpts: &[&str]) -> Envelope {
    Envelope::new(from, rcpts.iter().copied())
}

fn failed(addr: &str) -> RcptReport {
    RcptReport::new(Recipient::new(addr), Action::Failed).with_reply(
        Some("mx.b.test"),
        "550 5.1.1 <bob@b.test>: Recipient address rejected: User unknown",
    )
}

fn report_of(report: &Report, original: &[u8]) -> (Vec<u8>, Written) {
    let mut out = Vec::new();
    let w = write(report, &mut &original[..], &mut out).unwrap();
    assert_eq!(w.envelope.size, Some(out.len() as u64));
    (out, w)
}

/// The boundary from the report's Content-Type.
fn boundary_of(report: &[u8]) -> String {
    let s = String::from_utf8_lossy(report);
    let i = s.find("boundary=\"").unwrap() + 10;
    s[i..i + s[i..].find('"').unwrap()].to_string()
}

/// The content of the report's part `n` (0-based): what lies between its header's empty
/// line and the line end before the next delimiter.
fn part(report: &[u8], n: usize) -> (String, Vec<u8>) {
    let delim = format!("\n--{}", boundary_of(report));
    let s = report;
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(k) = find(&s[i..], delim.as_bytes()) {
        starts.push(i + k);
        i += k + delim.len();
    }
    let start = starts[n] + delim.len() + 1;
    let end = starts[n + 1];
    let body = &s[start..end];
    let split = find(body, b"\n\n").unwrap();
    (
        String::from_utf8_lossy(&body[..split + 1]).into_owned(),
        body[split + 2..].to_vec(),
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What Python's `email` reads in a report: `key\tvalue` lines (hex values), as a map.
fn python(report: &[u8]) -> BTreeMap<String, String> {
    const SCRIPT: &str = r#"
import sys, email, email.policy
data = sys.stdin.buffer.read()
m = email.message_from_bytes(data, policy=email.policy.default)
out = []
def emit(k, v):
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    out.append(k + "\t" + str(v).encode("utf-8", "surrogateescape").hex())
emit("type", m.get_content_type())
emit("report-type", m.get_param("report-type") or "")
emit("multipart", m.is_multipart())
for k in ["From", "To", "Subject", "Auto-Submitted", "Message-ID", "Date", "Content-Transfer-Encoding"]:
    emit("h:" + k, m.get(k, ""))
defects = [repr(d) for p in m.walk() for d in p.defects]
emit("defects", " ".join(defects))
parts = m.get_payload()
emit("parts", len(parts))
for i, p in enumerate(parts):
    emit("p%d:type" % i, p.get_content_type())
    emit("p%d:cte" % i, p.get("Content-Transfer-Encoding", ""))
text = parts[0].get_content()
emit("text", text)
ds = parts[1]
blocks = ds.get_payload()
emit("blocks", len(blocks))
for i, b in enumerate(blocks):
    for k, v in b.items():
        emit("ds%d:%s" % (i, k.lower()), v)
o = parts[2]
if o.get_content_type() in ("message/rfc822", "message/global"):
    inner = o.get_payload(0)
    emit("orig:subject", inner.get("Subject", ""))
    emit("orig:message-id", inner.get("Message-ID", ""))
    emit("orig:body", inner.get_payload(decode=True) or b"")
else:
    emit("orig:headers", o.get_payload(decode=True))
print("\n".join(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(report).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(report)
    );
    let mut map = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (k, hex) = line.split_once('\t').unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        map.insert(k.to_string(), String::from_utf8(bytes).unwrap());
    }
    map
}

/// Python reads a valid multipart/report of three parts, without defects.
fn valid(py: &BTreeMap<String, String>, ds_type: &str, orig_type: &str) {
    assert_eq!(py["type"], "multipart/report");
    assert_eq!(py["report-type"], "delivery-status");
    assert_eq!(py["defects"], "", "{py:?}");
    assert_eq!(py["parts"], "3");
    assert_eq!(py["p0:type"], "text/plain");
    assert_eq!(py["p1:type"], ds_type);
    assert_eq!(py["p2:type"], orig_type);
    assert_eq!(py["h:Auto-Submitted"], "auto-replied");
}

#[test]
fn status_codes_come_from_the_reply() {
    assert_eq!(
        status_of("550 5.1.1 no such user").as_deref(),
        Some("5.1.1")
    );
    assert_eq!(status_of("451-4.7.1 greylisted").as_deref(), Some("4.7.1"));
    assert_eq!(status_of("550 no such user").as_deref(), Some("5.0.0"));
    // An enhanced code of another class than the reply's is not the reply's status.
    assert_eq!(status_of("550 4.2.2 full").as_deref(), Some("5.0.0"));
    assert_eq!(status_of("250 2.0.0 Ok").as_deref(), Some("2.0.0"));
    assert_eq!(status_of("550 5.1.1000 x").as_deref(), Some("5.0.0"));
    assert_eq!(status_of("connection refused"), None);
    assert_eq!(status_of("650 6.1.1 x"), None);
    assert_eq!(status_of(""), None);
    let r = RcptReport::new(Recipient::new("a@b"), Action::Delayed);
    assert_eq!(r.status, "4.0.0");
    let mut r = r.with_reply(None, "garbage");
    assert_eq!(r.status, "4.0.0");
    r.status = "not a status".into();
    assert_eq!(r.status(), "4.0.0");
}

#[test]
fn notify_decides_who_is_told_about_what() {
    let rcpt = |n: Option<&str>| Recipient {
        addr: "b@x".into(),
        notify: n.map(str::to_string),
        orcpt: None,
    };
    use Action::*;
    let to = Notice::ToSender;
    // Without NOTIFY: failures; delays as configured; never successes.
    assert!(wanted(&rcpt(None), Failed, to, false));
    assert!(!wanted(&rcpt(None), Delayed, to, false));
    assert!(wanted(&rcpt(None), Delayed, to, true));
    assert!(!wanted(&rcpt(None), Delivered, to, true));
    // NEVER is never, whatever else the list says.
    for a in [Failed, Delayed, Delivered, Relayed, Expanded] {
        assert!(!wanted(&rcpt(Some("NEVER")), a, to, true), "{a:?}");
        assert!(
            !wanted(&rcpt(Some("NEVER")), a, Notice::ToPostmaster, true),
            "{a:?}"
        );
        assert!(!wanted(&rcpt(None), a, Notice::None, true), "{a:?}");
    }
    let list = rcpt(Some("success, delay"));
    assert!(wanted(&list, Delivered, to, false));
    assert!(wanted(&list, Relayed, to, false));
    assert!(wanted(&list, Expanded, to, false));
    assert!(wanted(&list, Delayed, to, false));
    assert!(!wanted(&list, Failed, to, true));
    assert!(!wanted(&rcpt(Some("FAILURE")), Delayed, to, true));
    // The postmaster hears of failures only.
    assert!(wanted(&rcpt(None), Failed, Notice::ToPostmaster, true));
    assert!(wanted(&list, Failed, Notice::ToPostmaster, true));
    assert!(!wanted(&rcpt(None), Delayed, Notice::ToPostmaster, true));
    assert!(!wanted(&list, Delivered, Notice::ToPostmaster, true));
}

#[test]
fn reports_never_loop() {
    let pm = "postmaster@relay.test";
    assert_eq!(notice(&env("ann@a.test", &["b@x"]), pm), Notice::ToSender);
    // A failed report (from <>) goes to the postmaster, once...
    assert_eq!(notice(&env("", &["ann@a.test"]), pm), Notice::ToPostmaster);
    // ...and when that report fails in turn, to nobody.
    assert_eq!(notice(&env("", &[pm]), pm), Notice::None);
    assert_eq!(
        notice(&env("", &["PostMaster@Relay.Test"]), pm),
        Notice::None
    );
    // A report of a report to the sender: never (it goes to the postmaster).
    let (n, kept) = select(&env("", &["b@x"]), vec![failed("b@x")], pm, true);
    assert_eq!(n, Notice::ToPostmaster);
    assert_eq!(kept.len(), 1);
    let (n, kept) = select(&env("", &[pm]), vec![failed(pm)], pm, true);
    assert_eq!((n, kept.len()), (Notice::None, 0));
    // A delay of a message from <> is nobody's business.
    let delayed = RcptReport::new(Recipient::new("b@x"), Action::Delayed);
    let (n, _) = select(&env("", &["b@x"]), vec![delayed.clone()], pm, true);
    assert_eq!(n, Notice::None);
    // select keeps only the recipients NOTIFY asks about.
    let mut quiet = failed("c@x");
    quiet.rcpt.notify = Some("NEVER".into());
    let (n, kept) = select(
        &env("ann@a.test", &["b@x", "c@x"]),
        vec![failed("b@x"), quiet.clone(), delayed],
        pm,
        false,
    );
    assert_eq!(n, Notice::ToSender);
    assert_eq!(kept, vec![failed("b@x")]);
    let (n, kept) = select(&env("ann@a.test", &["c@x"]), vec![quiet], pm, true);
    assert_eq!((n, kept.len()), (Notice::None, 0));
    // Writing a report to nobody is a bug of the caller, not a report.
    let original = env("ann@a.test", &["b@x"]);
    let rcpts = [failed("b@x")];
    let mut r = Report::new("relay.test", &original, 0, &rcpts);
    r.notice = Notice::None;
    let e = write(&r, &mut &ORIGINAL[..], &mut Vec::new()).unwrap_err();
    assert_eq!(e.code(), Code::Software);
}

#[test]
fn a_failure_returns_the_whole_message_byte_for_byte() {
    let mut original = env("ann@a.test", &["bob@b.test", "cy@c.test"]);
    original.envid = Some("QQ314159 x+y=z".into());
    original.rcpts[0].orcpt = Some("rfc822;Bob@B.test".into());
    let mut cy = RcptReport::new(original.rcpts[1].clone(), Action::Failed).with_reply(
        Some("mx.c.test"),
        &format!("552 5.2.2 mailbox full {}", "and a long reason ".repeat(8)),
    );
    cy.last_attempt = Some(1_767_225_700);
    let rcpts = [
        RcptReport {
            rcpt: original.rcpts[0].clone(),
            last_attempt: Some(1_767_225_650),
            ..failed("bob@b.test")
        },
        cy,
    ];
    let mut r = Report::new("relay.test", &original, 1_767_225_600, &rcpts);
    r.queue_id = Some("1767225600.42".into());
    let (out, w) = report_of(&r, ORIGINAL);
    assert_eq!(w.returned, Returned::Message);
    assert!(!w.header_cut);
    assert_eq!(w.envelope.from, "");
    assert_eq!(w.envelope.rcpts, [Recipient::new("ann@a.test")]);
    assert_eq!(w.envelope.body, Body::SevenBit);

    // The original, byte for byte, as the third part's content, in 7bit.
    let (head, body) = part(&out, 2);
    assert!(head.contains("Content-Type: message/rfc822\n"), "{head}");
    assert!(head.contains("Content-Transfer-Encoding: 7bit\n"), "{head}");
    assert_eq!(body, ORIGINAL);
    let s = String::from_utf8(out.clone()).unwrap();
    assert!(s.lines().all(|l| l.len() <= 78), "{s}");
    assert!(!s.contains('\r'));

    let py = python(&out);
    valid(&py, "message/delivery-status", "message/rfc822");
    assert_eq!(
        py["h:From"],
        "Mail Delivery System <MAILER-DAEMON@relay.test>"
    );
    assert_eq!(py["h:To"], "ann@a.test");
    assert_eq!(py["h:Subject"], "Undelivered Mail Returned to Sender");
    assert!(py["h:Message-ID"].ends_with("@relay.test>"));
    assert_eq!(py["blocks"], "3");
    assert_eq!(py["ds0:reporting-mta"], "dns; relay.test");
    assert_eq!(py["ds0:original-envelope-id"], "QQ314159 x+y=z");
    assert_eq!(py["ds0:x-mailpipe-queue-id"], "1767225600.42");
    assert_eq!(
        chrono::DateTime::parse_from_rfc2822(&py["ds0:arrival-date"])
            .unwrap()
            .timestamp(),
        1_767_225_600
    );
    assert_eq!(py["ds1:original-recipient"], "rfc822; Bob@B.test");
    assert_eq!(py["ds1:final-recipient"], "rfc822; bob@b.test");
    assert_eq!(py["ds1:action"], "failed");
    assert_eq!(py["ds1:status"], "5.1.1");
    assert_eq!(py["ds1:remote-mta"], "dns; mx.b.test");
    assert_eq!(
        py["ds1:diagnostic-code"],
        "smtp; 550 5.1.1 <bob@b.test>: Recipient address rejected: User unknown"
    );
    assert!(py.contains_key("ds1:last-attempt-date"));
    assert!(!py.contains_key("ds1:will-retry-until"));
    assert!(!py.contains_key("ds2:original-recipient"));
    assert_eq!(py["ds2:final-recipient"], "rfc822; cy@c.test");
    assert_eq!(py["ds2:status"], "5.2.2");
    // The long reply was folded and reads back whole.
    assert_eq!(
        py["ds2:diagnostic-code"],
        format!(
            "smtp; 552 5.2.2 mailbox full {}",
            "and a long reason ".repeat(8)
        )
        .trim()
    );
    assert_eq!(py["orig:subject"], "lunch");
    assert_eq!(py["orig:message-id"], "<orig.1@a.test>");
    assert_eq!(py["orig:body"], "Shall we?\n--not a boundary\n\n-- \nAnn\n");
    let text = &py["text"];
    assert!(text.contains("relay.test"), "{text}");
    assert!(
        text.contains("<bob@b.test> (5.1.1): could not be delivered"),
        "{text}"
    );
    assert!(text.contains("mx.b.test said: 550 5.1.1"), "{text}");
    assert!(text.contains("postmaster@relay.test"), "{text}");
}

#[test]
fn ret_hdrs_returns_the_header_only() {
    let mut original = env("ann@a.test", &["bob@b.test"]);
    original.ret = Some("hdrs".into());
    let rcpts = [failed("bob@b.test")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let (out, w) = report_of(&r, ORIGINAL);
    assert_eq!(w.returned, Returned::Headers);
    let (head, body) = part(&out, 2);
    assert!(
        head.contains("Content-Type: text/rfc822-headers\n"),
        "{head}"
    );
    let header = &ORIGINAL[..find(ORIGINAL, b"\n\n").unwrap() + 1];
    assert_eq!(body, header);
    let py = python(&out);
    valid(&py, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(py["orig:headers"].as_bytes(), header);
    assert!(!py["text"].contains("Shall we"));
}

#[test]
fn an_eight_bit_original_makes_an_eight_bit_report() {
    let original = env("ann@a.test", &["bob@b.test"]);
    let msg = "From: Zoë <ann@a.test>\nSubject: =?utf-8?q?caf=C3=A9?=\n\
               Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
               Grüße, ça va?\n"
        .as_bytes();
    let rcpts = [failed("bob@b.test")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let (out, w) = report_of(&r, msg);
    assert_eq!(w.envelope.body, Body::EightBitMime);
    assert_eq!(w.returned, Returned::Message);
    let (head, body) = part(&out, 2);
    assert!(head.contains("Content-Transfer-Encoding: 8bit\n"), "{head}");
    assert_eq!(body, msg);
    let py = python(&out);
    valid(&py, "message/delivery-status", "message/rfc822");
    assert_eq!(py["h:Content-Transfer-Encoding"], "8bit");
    assert_eq!(py["p2:cte"], "8bit");
    assert_eq!(py["orig:subject"], "café");
    assert_eq!(py["orig:body"], "Grüße, ça va?\n");
    // A 7-bit original keeps the report 7bit: no top-level encoding at all.
    let (out, w) = report_of(&r, ORIGINAL);
    assert_eq!(w.envelope.body, Body::SevenBit);
    assert!(!String::from_utf8(out).unwrap().contains("8bit"));
}

#[test]
fn a_delay_report_says_until_when() {
    let mut original = env("ann@a.test", &["bob@b.test"]);
    original.rcpts[0].notify = Some("DELAY,FAILURE".into());
    original.envid = Some("id-7".into());
    let mut d = RcptReport::new(original.rcpts[0].clone(), Action::Delayed)
        .with_reply(Some("mx.b.test"), "451 4.2.1 mailbox busy, try later");
    d.last_attempt = Some(1_767_229_200);
    d.will_retry_until = Some(1_767_657_600);
    let rcpts = [d];
    let r = Report::new("relay.test", &original, 1_767_225_600, &rcpts);
    let (out, w) = report_of(&r, ORIGINAL);
    // A delay report carries the header, unless RET=FULL asks for more.
    assert_eq!(w.returned, Returned::Headers);
    let py = python(&out);
    valid(&py, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(py["h:Subject"], "Delayed Mail (still being retried)");
    assert_eq!(py["ds0:original-envelope-id"], "id-7");
    assert_eq!(py["ds1:action"], "delayed");
    assert_eq!(py["ds1:status"], "4.2.1");
    assert_eq!(
        chrono::DateTime::parse_from_rfc2822(&py["ds1:will-retry-until"])
            .unwrap()
            .timestamp(),
        1_767_657_600
    );
    assert!(py["text"].contains("keeps trying until"), "{}", py["text"]);
    assert!(py["text"].contains("not delivered yet"), "{}", py["text"]);

    let mut original = original.clone();
    original.ret = Some("FULL".into());
    let r = Report::new("relay.test", &original, 1_767_225_600, &rcpts);
    let (out, w) = report_of(&r, ORIGINAL);
    assert_eq!(w.returned, Returned::Message);
    assert_eq!(part(&out, 2).1, ORIGINAL);
}

#[test]
fn a_success_report_for_notify_success() {
    let mut original = env("ann@a.test", &["bob@b.test", "list@b.test", "old@c.test"]);
    for r in &mut original.rcpts {
        r.notify = Some("SUCCESS".into());
    }
    let rcpts = [
        RcptReport::new(original.rcpts[0].clone(), Action::Delivered)
            .with_reply(Some("mx.b.test"), "250 2.0.0 Ok: queued as 4dQx"),
        RcptReport::new(original.rcpts[1].clone(), Action::Expanded),
        RcptReport::new(original.rcpts[2].clone(), Action::Relayed)
            .with_reply(Some("mx.c.test"), "250 ok"),
    ];
    let (n, kept) = select(&original, rcpts.to_vec(), "postmaster@relay.test", false);
    assert_eq!((n, kept.len()), (Notice::ToSender, 3));
    let r = Report::new("relay.test", &original, 0, &kept);
    let (out, _) = report_of(&r, ORIGINAL);
    let py = python(&out);
    valid(&py, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(py["h:Subject"], "Successful Mail Delivery Report");
    assert_eq!(py["ds1:action"], "delivered");
    assert_eq!(py["ds1:status"], "2.0.0");
    assert_eq!(py["ds2:action"], "expanded");
    assert_eq!(py["ds3:action"], "relayed");
}

#[test]
fn a_large_original_returns_its_header_and_reads_only_what_it_needs() {
    /// A reader of `n` bytes of message that counts what was read from it.
    struct Big {
        header: &'static [u8],
        left: u64,
        read: u64,
    }
    impl Read for Big {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = if !self.header.is_empty() {
                let n = self.header.len().min(buf.len());
                buf[..n].copy_from_slice(&self.header[..n]);
                self.header = &self.header[n..];
                n
            } else {
                let n = (buf.len() as u64).min(self.left) as usize;
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = if i % 64 == 63 { b'\n' } else { b'x' };
                }
                self.left -= n as u64;
                n
            };
            self.read += n as u64;
            Ok(n)
        }
    }
    let header: &[u8] = b"From: ann@a.test\nSubject: big\n\n";
    let original = env("ann@a.test", &["bob@b.test"]);
    let rcpts = [failed("bob@b.test")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let mut big = Big {
        header,
        left: 50 << 20,
        read: 0,
    };
    let mut out = Vec::new();
    let w = write(&r, &mut big, &mut out).unwrap();
    assert_eq!(w.returned, Returned::HeadersTooLarge);
    assert!(big.read <= MAX_ORIGINAL + (128 << 10), "read {}", big.read);
    assert!(out.len() < 8 << 10, "{}", out.len());
    assert_eq!(part(&out, 2).1, header[..header.len() - 1]);
    let py = python(&out);
    valid(&py, "message/delivery-status", "text/rfc822-headers");
    assert!(py["text"].contains("larger"), "{}", py["text"]);

    // Just within the limit: whole.
    let mut r2 = r.clone();
    r2.max_original = 1000;
    let fits = [header, &b"y\n".repeat(484)[..]].concat();
    assert_eq!(fits.len(), 999);
    let (out, w) = report_of(&r2, &fits);
    assert_eq!(w.returned, Returned::Message);
    assert_eq!(part(&out, 2).1, fits);
    let over = [&fits[..], b"z\n"].concat();
    assert_eq!(report_of(&r2, &over).1.returned, Returned::HeadersTooLarge);

    // RET=HDRS reads little more than the header's limit.
    let mut hdrs = original.clone();
    hdrs.ret = Some("HDRS".into());
    let r = Report::new("relay.test", &hdrs, 0, &rcpts);
    let mut big = Big {
        header,
        left: 50 << 20,
        read: 0,
    };
    write(&r, &mut big, &mut Vec::new()).unwrap();
    assert!(big.read <= MAX_HEADER + (128 << 10), "read {}", big.read);
}

#[test]
fn what_message_rfc822_cannot_carry_goes_back_as_the_header() {
    let original = env("ann@a.test", &["bob@b.test"]);
    let rcpts = [failed("bob@b.test")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let long = format!("Subject: x\n\n{}\n", "w".repeat(999));
    let nul = b"Subject: x\n\nnul \0 here\n";
    for msg in [long.as_bytes(), &nul[..]] {
        let (out, w) = report_of(&r, msg);
        assert_eq!(w.returned, Returned::HeadersUnfit);
        assert_eq!(part(&out, 2).1, b"Subject: x\n");
        let s = String::from_utf8_lossy(&out);
        assert!(!s.contains("base64"), "{s}");
        let py = python(&out);
        valid(&py, "message/delivery-status", "text/rfc822-headers");
        assert!(py["text"].contains("998 octets"), "{}", py["text"]);
    }
    // A header that holds them is quoted-printable text, and decodes back.
    let bad = [
        b"Subject: a\0b\nX-Long: ".as_ref(),
        &[b'l'; 1200],
        b"\n\nbody\n",
    ]
    .concat();
    let (out, w) = report_of(&r, &bad);
    assert_eq!(w.returned, Returned::HeadersUnfit);
    let (head, _) = part(&out, 2);
    assert!(head.contains("quoted-printable"), "{head}");
    assert!(String::from_utf8_lossy(&out).lines().all(|l| l.len() <= 78));
    let py = python(&out);
    valid(&py, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(
        py["orig:headers"].as_bytes(),
        &bad[..find(&bad, b"\n\n").unwrap() + 1]
    );
}

#[test]
fn line_ends_are_repaired_and_a_long_header_cut() {
    let original = env("ann@a.test", &["bob@b.test"]);
    let rcpts = [failed("bob@b.test")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let (out, _) = report_of(&r, b"Subject: crlf\r\nX: bare\rY: cr\r\n\r\nbody\r\nend");
    assert_eq!(
        part(&out, 2).1,
        b"Subject: crlf\nX: bare\nY: cr\n\nbody\nend"
    );
    valid(&python(&out), "message/delivery-status", "message/rfc822");

    let mut hdrs = original.clone();
    hdrs.ret = Some("HDRS".into());
    let r = Report::new("relay.test", &hdrs, 0, &rcpts);
    let field = b"Received: from somewhere by somewhere else for someone at some time\n";
    let header = field.repeat(2000);
    let msg = [&header[..], b"\nbody\n"].concat();
    let (out, w) = report_of(&r, &msg);
    assert!(w.header_cut);
    let got = part(&out, 2).1;
    assert!(got.len() as u64 <= MAX_HEADER && got.len() as u64 > MAX_HEADER - 100);
    assert!(header.starts_with(&got) && got.ends_with(b"\n"));
    let py = python(&out);
    valid(&py, "message/delivery-status", "text/rfc822-headers");
    assert!(py["text"].contains("cut short"), "{}", py["text"]);
}

#[test]
fn a_line_like_the_delimiter_is_seen() {
    let mut s = Scan::new(io::sink(), "=_mailpipe_ab");
    s.write_all(b"x\n--=_mailpipe_a\n-").unwrap();
    assert!(!s.collides);
    s.write_all(b"-=_mailpipe_ab--\n").unwrap();
    assert!(s.collides);
    let mut s = Scan::new(io::sink(), "b");
    s.write_all(b" --b\n").unwrap();
    assert!(!s.collides);
    // A boundary that an original's line starts with is not taken.
    let original = env("ann@a.test", &["bob@b.test"]);
    let rcpts = [failed("bob@b.test")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let msg = b"Subject: x\n\n--=_mailpipe_1--\n--=_mailpipe_2 x\nend\n";
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("=_mailpipe_{n}")
    };
    let mut out = Vec::new();
    write_with(&r, &mut &msg[..], &mut out, &mut next).unwrap();
    assert_eq!(boundary_of(&out), "=_mailpipe_3");
    assert_eq!(part(&out, 2).1, msg);
    valid(&python(&out), "message/delivery-status", "message/rfc822");
    // One of our own reports, returned in a report: its delimiters are not ours.
    let original = env("ann@a.test", &["bob@b.test"]);
    let rcpts = [failed("bob@b.test")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let (inner, _) = report_of(&r, ORIGINAL);
    let (out, _) = report_of(&r, &inner);
    assert_eq!(part(&out, 2).1, inner);
    assert_ne!(boundary_of(&out), boundary_of(&inner));
    valid(&python(&out), "message/delivery-status", "message/rfc822");
}

#[test]
fn the_postmaster_gets_a_double_bounce_with_the_header() {
    let original = env("", &["ann@a.test"]);
    let rcpts = [failed("ann@a.test")];
    let pm = "postmaster@relay.test";
    let (n, kept) = select(&original, rcpts.to_vec(), pm, false);
    assert_eq!(n, Notice::ToPostmaster);
    let mut r = Report::new("relay.test", &original, 0, &kept);
    r.notice = n;
    r.postmaster = pm.into();
    let (out, w) = report_of(&r, ORIGINAL);
    assert_eq!(w.returned, Returned::HeadersForPostmaster);
    assert_eq!(w.envelope.from, "");
    assert_eq!(w.envelope.rcpts, [Recipient::new(pm)]);
    // The report itself is from <> to the postmaster: its own failure reports to nobody.
    assert_eq!(notice(&w.envelope, pm), Notice::None);
    let py = python(&out);
    valid(&py, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(py["h:To"], pm);
    assert_eq!(py["h:Subject"], "Postmaster Copy: Undelivered Mail");
    assert!(!py.contains_key("ds0:x-mailpipe-sender"));
}

#[test]
fn utf8_addresses_make_a_global_report() {
    let mut original = env("zoë@a.test", &["bø@b.test"]);
    original.rcpts[0].orcpt = Some("utf-8;bø@b.test".into());
    assert!(original.smtputf8);
    let rcpts = [RcptReport::new(original.rcpts[0].clone(), Action::Failed)
        .with_reply(Some("mx.b.test"), "550 5.1.1 unknown")];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let (out, w) = report_of(&r, ORIGINAL);
    assert!(w.envelope.smtputf8);
    assert_eq!(w.envelope.body, Body::EightBitMime);
    assert_eq!(w.envelope.rcpts, [Recipient::new("zoë@a.test")]);
    let s = String::from_utf8(out.clone()).unwrap();
    assert!(s.contains("Final-Recipient: utf-8; bø@b.test\n"), "{s}");
    assert!(s.contains("Original-Recipient: utf-8; bø@b.test\n"), "{s}");
    assert_eq!(part(&out, 2).1, ORIGINAL);
    let py = python(&out);
    assert_eq!(py["type"], "multipart/report");
    assert_eq!(py["p1:type"], "message/global-delivery-status");
    assert_eq!(py["p2:type"], "message/global");
    assert!(py["text"].contains("<bø@b.test>"), "{}", py["text"]);

    // Outside a global report, an address that is not ASCII is xtext (RFC 6533 §3).
    assert_eq!(
        address_field("rfc822", "bø+x@b.test", false),
        "utf-8; b\\x{F8}\\x{2B}x@b.test"
    );
    assert_eq!(address_field("rfc822", "b@x", false), "rfc822; b@x");
}

#[test]
fn hostile_values_stay_on_their_lines() {
    let mut original = env("ann@a.test", &["bob@b.test"]);
    original.envid = Some("a\nBcc: x@y".into());
    let mut f = failed("bob@b.test");
    f.remote_mta = Some("mx\n.b.test".into());
    f.diagnostic = Some(Diagnostic::Local(format!(
        "dns\r\nX-Injected: 1 {}",
        "é".repeat(2000)
    )));
    let rcpts = [f];
    let r = Report::new("relay.test", &original, 0, &rcpts);
    let (out, w) = report_of(&r, ORIGINAL);
    assert_eq!(w.envelope.body, Body::SevenBit);
    let s = String::from_utf8(out.clone()).unwrap();
    assert!(!s.contains("\nBcc:") && !s.contains("\nX-Injected"), "{s}");
    assert!(s.lines().all(|l| l.len() < 998));
    assert!(s.contains("Original-Envelope-Id: a+0ABcc:+20x@y\n"), "{s}");
    let py = python(&out);
    valid(&py, "message/delivery-status", "message/rfc822");
    assert!(py["ds1:diagnostic-code"].starts_with("X-mailpipe; dns X-Injected: 1 ???"));
}
