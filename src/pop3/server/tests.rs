//! The POP3 session on bytes in memory: the states, the Maildir effects (seen, removed only
//! in UPDATE), the encoding of content, and what hostile input gets.

use super::*;
use crate::net::conn::MemIo;
use std::sync::Mutex;

/// The password of "alice" in every test.
const PW: &str = "secret";

fn passwords() -> Arc<Passwords> {
    static P: std::sync::OnceLock<Arc<Passwords>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let h = crate::passwd::hash(PW).unwrap();
        Arc::new(Passwords::parse(&format!("alice:{h}\n../x:{h}\n"), "t").unwrap())
    })
    .clone()
}

fn settings(base: &Path, insecure: bool) -> (Settings, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&lines);
    let s = Settings {
        hostname: "pop.test".into(),
        maildir_base: base.to_path_buf(),
        passwords: passwords(),
        tls: None,
        insecure_auth: insecure,
        auth_failure_delay: Duration::ZERO,
        timeout: Duration::from_secs(5),
        log: Box::new(move |line: &str| l.lock().unwrap().push(line.to_string())),
    };
    (s, lines)
}

/// Play `input` to a session; the server's output as text.
fn session(s: &Settings, input: &str) -> (String, Ended) {
    let (io, out) = MemIo::new(input.as_bytes().to_vec());
    let ended = serve(Conn::new(Box::new(io)), s, &Peer::default(), false).unwrap();
    let out = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    (out, ended)
}

/// alice's Maildir with these messages, delivered in this order.
fn seed(base: &Path, msgs: &[&[u8]]) -> Maildir {
    let md = Maildir::open(&base.join("alice/Maildir")).unwrap();
    for m in msgs {
        md.deliver("", |w| std::io::Write::write_all(w, m)).unwrap();
        // Names sort by time: keep the order certain.
        std::thread::sleep(Duration::from_millis(2));
    }
    md
}

const LOGIN: &str = "USER alice\r\nPASS secret\r\n";

#[test]
fn a_session_lists_retrieves_and_deletes_only_at_quit() {
    let dir = tempfile::tempdir().unwrap();
    let one = b"Subject: one\n\n.dot line\nlast\n";
    let two = b"Subject: two\r\n\r\nno final newline";
    let three = b"Subject: three\n\nb1\nb2\nb3\n";
    let md = seed(dir.path(), &[one, two, three]);
    let list = md.list().unwrap();
    let (s, log) = settings(dir.path(), true);
    let input = format!(
        "{LOGIN}STAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\nRETR 2\r\nTOP 3 1\r\nDELE 1\r\nLIST 1\r\nSTAT\r\nQUIT\r\n"
    );
    let (out, ended) = session(&s, &input);
    let sizes: Vec<u64> = [&one[..], two, three]
        .iter()
        .map(|m| {
            let crlf = String::from_utf8_lossy(m)
                .replace("\r\n", "\n")
                .replace('\n', "\r\n");
            crlf.len() as u64 + if m.ends_with(b"\n") { 0 } else { 2 }
        })
        .collect();
    let total: u64 = sizes.iter().sum();
    assert!(out.starts_with("+OK pop.test POP3"), "{out}");
    assert!(out.contains("+OK alice has 3 messages"), "{out}");
    assert!(out.contains(&format!("+OK 3 {total}\r\n")), "{out}");
    assert!(
        out.contains(&format!(
            "+OK listing follows\r\n1 {}\r\n2 {}\r\n3 {}\r\n.\r\n",
            sizes[0], sizes[1], sizes[2]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("+OK 2 {}\r\n", list[1].unique)),
        "{out}"
    );
    // CRLF line ends, the dot stuffed, the last line ended.
    assert!(
        out.contains(&format!(
            "+OK {} octets\r\nSubject: one\r\n\r\n..dot line\r\nlast\r\n.\r\n",
            sizes[0]
        )),
        "{out}"
    );
    assert!(
        out.contains("Subject: two\r\n\r\nno final newline\r\n.\r\n"),
        "{out}"
    );
    assert!(out.contains("Subject: three\r\n\r\nb1\r\n.\r\n"), "{out}");
    assert!(
        out.contains("+OK message 1 deleted\r\n-ERR no such message\r\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("+OK 2 {}\r\n", sizes[1] + sizes[2])),
        "{out}"
    );
    assert!(out.ends_with("+OK 1 messages deleted, bye\r\n"), "{out}");
    assert_eq!(
        ended,
        Ended {
            retrieved: 2,
            deleted: 1
        }
    );
    // One gone; the one read is in cur/ with S; the one only TOPped stays new.
    let left = md.list().unwrap();
    assert_eq!(left.len(), 2);
    assert!(!left[0].new && left[0].path.to_str().unwrap().ends_with(":2,S"));
    assert!(left[1].new);
    assert_eq!(std::fs::read(&left[0].path).unwrap(), two);
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("login client=unknown user=alice messages=3"),
        "{log}"
    );
    assert!(log.contains("end=quit retrieved=2 deleted=1"), "{log}");
}

#[test]
fn a_dropped_connection_or_rset_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let md = seed(dir.path(), &[b"a\n", b"b\n"]);
    let (s, _) = settings(dir.path(), true);
    let (out, ended) = session(&s, &format!("{LOGIN}DELE 1\r\nDELE 2\r\n"));
    assert!(out.contains("+OK message 2 deleted"), "{out}");
    assert_eq!(ended.deleted, 0);
    assert_eq!(md.list().unwrap().len(), 2);
    let (out, _) = session(&s, &format!("{LOGIN}DELE 1\r\nRSET\r\nNOOP\r\nQUIT\r\n"));
    assert!(out.contains("\r\n+OK\r\n+OK\r\n+OK 0"), "{out}");
    assert!(out.ends_with("+OK 0 messages deleted, bye\r\n"), "{out}");
    assert_eq!(md.list().unwrap().len(), 2);
}

#[test]
fn the_listing_is_a_snapshot_at_login() {
    let dir = tempfile::tempdir().unwrap();
    let md = seed(dir.path(), &[b"a\n"]);
    let (s, _) = settings(dir.path(), true);
    // A session that logs in, then (between commands) a delivery: delivered during a
    // session, the message waits for the next one. Played as two sessions around it.
    let (out, _) = session(&s, &format!("{LOGIN}STAT\r\nQUIT\r\n"));
    assert!(out.contains("+OK 1 3\r\n"), "{out}");
    md.deliver("", |w| std::io::Write::write_all(w, b"b\n"))
        .unwrap();
    let (out, _) = session(&s, &format!("{LOGIN}STAT\r\nQUIT\r\n"));
    assert!(out.contains("+OK 2 6\r\n"), "{out}");
}

#[test]
fn a_second_session_gets_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let md = seed(dir.path(), &[b"a\n"]);
    let (s, _) = settings(dir.path(), true);
    let lock = md.lock_reader().unwrap().unwrap();
    let (out, _) = session(&s, &format!("{LOGIN}STAT\r\nQUIT\r\n"));
    assert!(out.contains("-ERR [IN-USE] "), "{out}");
    assert!(out.contains("-ERR log in first"), "{out}");
    drop(lock);
    let (out, _) = session(&s, &format!("{LOGIN}STAT\r\nQUIT\r\n"));
    assert!(out.contains("+OK 1 3"), "{out}");
}

#[test]
fn no_password_in_the_clear_and_nothing_before_login() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), &[b"a\n"]);
    let (s, _) = settings(dir.path(), false);
    let (out, _) = session(
        &s,
        &format!("CAPA\r\nSTAT\r\nRETR 1\r\n{LOGIN}AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nQUIT\r\n"),
    );
    let capa = out.split("\r\n.\r\n").next().unwrap();
    assert!(
        capa.contains("\r\nTOP\r\n") && capa.contains("\r\nUIDL\r\n"),
        "{out}"
    );
    assert!(!capa.contains("USER") && !capa.contains("SASL"), "{out}");
    assert_eq!(out.matches("-ERR log in first").count(), 2, "{out}");
    assert_eq!(out.matches("-ERR use STLS first").count(), 3, "{out}");
    assert!(out.ends_with("+OK bye\r\n"), "{out}");
}

#[test]
fn sasl_plain_logs_in_and_wrong_passwords_end_the_session() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), &[b"a\n"]);
    let (s, log) = settings(dir.path(), true);
    let (out, _) = session(
        &s,
        "CAPA\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nSTAT\r\nQUIT\r\n",
    );
    assert!(
        out.contains("\r\nSASL PLAIN\r\n") && out.contains("\r\nUSER\r\n"),
        "{out}"
    );
    assert!(out.contains("+ \r\n+OK alice has 1 messages"), "{out}");
    let (out, _) = session(
        &s,
        "AUTH PLAIN\r\n*\r\nAUTH PLAIN =\r\nUSER alice\r\nPASS wrong\r\nUSER ../x\r\nPASS secret\r\nSTAT\r\n",
    );
    assert!(out.contains("-ERR authentication cancelled"), "{out}");
    assert_eq!(
        out.matches("-ERR [AUTH] authentication failed").count(),
        2,
        "{out}"
    );
    // A user of the file whose name is no directory name gets no mailbox.
    assert!(out.contains("-ERR [SYS/PERM]"), "{out}");
    let (out, _) = session(
        &s,
        "USER alice\r\nPASS a\r\nUSER alice\r\nPASS b\r\nUSER alice\r\nPASS c\r\nUSER alice\r\nPASS secret\r\n",
    );
    assert!(
        out.ends_with("-ERR [AUTH] too many failed logins, closing\r\n"),
        "{out}"
    );
    assert!(!out.contains("has 1 messages"), "{out}");
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("status=failed tried=alice"))
    );
}

#[test]
fn hostile_input_gets_errors_and_a_closed_connection() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), &[b"a\n"]);
    let (s, _) = settings(dir.path(), true);
    let long = "X".repeat(100_000);
    let (out, _) = session(
        &s,
        &format!("{long}\r\n\u{1}\r\nRETR -1\r\n{LOGIN}RETR 0\r\nRETR 2\r\nTOP 1 x\r\nQUIT\r\n"),
    );
    assert!(out.contains("-ERR line too long"), "{out}");
    assert!(out.contains("-ERR control character"), "{out}");
    assert!(out.contains("-ERR not a number"), "{out}");
    assert_eq!(out.matches("-ERR no such message").count(), 2, "{out}");
    assert!(out.ends_with("+OK 0 messages deleted, bye\r\n"), "{out}");
    let garbage = "garbage\r\n".repeat(50);
    let (out, _) = session(&s, &garbage);
    assert_eq!(out.matches("-ERR unknown command").count(), 20, "{out}");
    assert!(out.ends_with("-ERR too many errors, closing\r\n"), "{out}");
}

/// The encoder's output for `input` fed in pieces of `step` octets.
fn encode(input: &[u8], step: usize, top: Option<u64>) -> Vec<u8> {
    let mut e = Encoder::new(true, top);
    let mut out = Vec::new();
    for c in input.chunks(step) {
        if !e.feed(c, &mut out) {
            break;
        }
    }
    e.finish(&mut out);
    out
}

#[test]
fn content_is_crlf_and_dot_stuffed_whatever_the_pieces() {
    let input = b"A: b\n.x\r\n\n.\n..y\nlast";
    for step in [1, 2, 3, 7, 100] {
        assert_eq!(
            encode(input, step, None),
            b"A: b\r\n..x\r\n\r\n..\r\n...y\r\nlast\r\n",
            "step {step}"
        );
        assert_eq!(
            encode(input, step, Some(0)),
            b"A: b\r\n..x\r\n\r\n",
            "step {step}"
        );
        assert_eq!(
            encode(input, step, Some(2)),
            b"A: b\r\n..x\r\n\r\n..\r\n...y\r\n"
        );
    }
    // The size counts what is sent, less the stuffing.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m");
    std::fs::write(&p, input).unwrap();
    assert_eq!(
        sent_size(&p).unwrap(),
        encode(input, 5, None).len() as u64 - 3
    );
    assert_eq!(size_in_name("1.2.host,S=10,W=12"), Some(12));
    assert_eq!(size_in_name("1.2.host,W=12,S=10"), Some(12));
    assert_eq!(size_in_name("1.2.host,S=10"), None);
    assert_eq!(size_in_name("1.2.host,W=x"), None);
    assert_eq!(uidl("short.name"), "short.name");
    let long = uidl(&"x".repeat(71));
    assert_eq!(long.len(), 40);
    assert_eq!(long, uidl(&"x".repeat(71)));
    assert_ne!(uidl("a b"), "a b");
}

#[test]
fn random_bytes_get_answers_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), &[b"Subject: x\n\n.\n"]);
    let (s, _) = settings(dir.path(), true);
    // A fixed xorshift, so a failure is reproducible; commands mixed into the noise so the
    // session gets past login into every state.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let words: [&[u8]; 12] = [
        b"USER alice\r\n",
        b"PASS secret\r\n",
        b"RETR 1\r\n",
        b"TOP 1 0\r\n",
        b"DELE 1\r\n",
        b"LIST\r\n",
        b"UIDL\r\n",
        b"AUTH PLAIN\r\n",
        b"STLS\r\n",
        b"RSET\r\n",
        b"\r\n",
        b".\r\n",
    ];
    for _ in 0..200 {
        let mut input = Vec::new();
        for _ in 0..30 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) {
                input.extend((0..x % 40).map(|i| (x >> (i % 56)) as u8));
            } else {
                input.extend_from_slice(words[(x % 12) as usize]);
            }
        }
        let (io, out) = MemIo::new(input);
        let _ = serve(Conn::new(Box::new(io)), &s, &Peer::default(), false);
        let out = out.lock().unwrap();
        assert!(out.starts_with(b"+OK"), "no greeting");
    }
}

#[test]
fn failed_logins_wait_longer_each_time() {
    let mut f = Failures::new(Duration::from_millis(20));
    let start = std::time::Instant::now();
    assert!(!f.fail());
    assert!(!f.fail());
    assert!(f.fail());
    // 20 + 40 + 60 ms.
    assert!(start.elapsed() >= Duration::from_millis(120));
}

/// What mreceive and mdeliver deliver carries W= in its name (store::maildir), and it is the
/// size maccess would count by reading the file, whatever the line ends and however the
/// writer split the message: so a login lists a mailbox without reading it.
#[test]
fn the_size_in_a_delivered_name_is_the_size_retr_sends() {
    let dir = tempfile::tempdir().unwrap();
    let md = Maildir::open(&dir.path().join("Maildir")).unwrap();
    let inputs: [&[u8]; 8] = [
        b"",
        b"Subject: a\n\nbody\n",
        b"Subject: a\r\n\r\nbody\r\n",
        b"Subject: a\n\nno end",
        b"Subject: a\n\nends in CR\r",
        b"\n\n\r\n\rmixed\r\r\n\n.dot\n",
        b"Subject: x\n\nA\r\nB\nC\r",
        b"\r\n",
    ];
    for input in inputs {
        for split in 0..=input.len() {
            let d = md
                .deliver("", |w| {
                    w.write_all(&input[..split])?;
                    w.write_all(&input[split..])
                })
                .unwrap();
            let name = d.path.file_name().unwrap().to_str().unwrap().to_string();
            assert_eq!(
                size_in_name(&name),
                Some(sent_size(&d.path).unwrap()),
                "{input:?} split at {split}: {name}"
            );
            std::fs::remove_file(&d.path).unwrap();
        }
    }
}
