//! maccess as a server process: STLS and implicit TLS, the pipelined commands after STLS
//! thrown away, one session per mailbox, nothing deleted by a dropped connection or a
//! shutdown, the session limit, a slow drip timed out, stdio mode (inetd's contract), and
//! the usage errors. The POP3 dialogue in detail is src/pop3/server/tests.rs's; real
//! clients are maccess_interop.rs's.

use crate::common::maccess::{Maccess, Pop, normalized};
use crate::common::mreceive::tls_client;
use crate::common::{self, messages, run};
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn tls_pop(m: &Maccess, tcp: TcpStream) -> Pop<mailpipe::net::tls::TlsStream> {
    Pop::new(tls_client(&m.ca, tcp).into_inner())
}

#[test]
fn stls_discards_what_was_pipelined_and_then_allows_login() {
    let m = Maccess::start(&[]);
    m.seed(2);
    let mut c = m.connect();
    assert!(c.line().starts_with("+OK pop.local.test"));
    c.send("CAPA\r\n");
    assert!(c.line().starts_with("+OK"));
    let capa = c.multi();
    assert!(
        capa.contains("STLS\r\n") && !capa.contains("USER"),
        "{capa}"
    );
    assert!(c.cmd("USER alice\r\n").starts_with("-ERR use STLS first"));
    // A man in the middle's USER/PASS after STLS, in the same packet: never run.
    c.send("STLS\r\nUSER alice\r\nPASS secret\r\n");
    assert!(c.line().starts_with("+OK begin TLS"));
    let tcp = c.into_inner();
    let mut t = tls_pop(&m, tcp);
    // Were the pipelined lines run, PASS would have logged in: "already logged in".
    assert_eq!(t.cmd("PASS secret\r\n"), "-ERR USER first\r\n");
    t.send("CAPA\r\n");
    t.line();
    let capa = t.multi();
    assert!(
        capa.contains("USER\r\n") && capa.contains("SASL PLAIN\r\n"),
        "{capa}"
    );
    assert!(!capa.contains("STLS"), "{capa}");
    assert!(t.cmd("USER alice\r\n").starts_with("+OK"));
    assert!(
        t.cmd("PASS secret\r\n")
            .starts_with("+OK alice has 6 messages")
    );
    assert!(t.cmd("QUIT\r\n").starts_with("+OK 0 messages deleted"));
}

#[test]
fn implicit_tls_retrieves_and_deletes() {
    let m = Maccess::start(&[]);
    let seeded = m.seed(3);
    let tcp = TcpStream::connect(("127.0.0.1", m.tls_port)).unwrap();
    let mut t = tls_pop(&m, tcp);
    assert!(t.line().starts_with("+OK"));
    assert!(
        t.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
            .starts_with("+OK alice has 7")
    );
    let mut got = Vec::new();
    for i in 1..=7 {
        assert!(t.cmd(&format!("RETR {i}\r\n")).starts_with("+OK"));
        // Undo the dot-stuffing as a client does.
        let body: String = t
            .multi()
            .split_inclusive("\r\n")
            .map(|l| l.strip_prefix('.').unwrap_or(l))
            .collect();
        got.push(body.into_bytes());
        assert!(t.cmd(&format!("DELE {i}\r\n")).starts_with("+OK"));
    }
    assert!(t.cmd("QUIT\r\n").starts_with("+OK 7 messages deleted"));
    assert_eq!(normalized(got), seeded);
    assert!(messages(&m.maildir()).is_empty());
}

#[test]
fn one_session_per_mailbox_and_a_dropped_one_deletes_nothing() {
    let m = Maccess::start(&["--insecure-auth"]);
    m.seed(2);
    let mut a = m.connect();
    a.line();
    a.cmd("USER alice\r\n");
    assert!(a.cmd("PASS secret\r\n").starts_with("+OK"));
    assert!(a.cmd("DELE 1\r\n").starts_with("+OK"));
    let mut b = m.connect();
    b.line();
    b.cmd("USER alice\r\n");
    assert!(b.cmd("PASS secret\r\n").starts_with("-ERR [IN-USE]"));
    // The first goes away without QUIT: its DELE is forgotten, its lock released.
    drop(a);
    assert!(common::wait_until(Duration::from_secs(5), || {
        b.cmd("USER alice\r\n");
        b.cmd("PASS secret\r\n").starts_with("+OK alice has 6")
    }));
    assert_eq!(messages(&m.maildir()).len(), 6);
}

#[test]
fn the_session_limit_and_a_graceful_stop() {
    let mut m = Maccess::start(&["--insecure-auth", "--max-sessions", "1"]);
    m.seed(1);
    let mut a = m.connect();
    a.line();
    a.cmd("USER alice\r\n");
    assert!(a.cmd("PASS secret\r\n").starts_with("+OK"));
    a.cmd("DELE 1\r\n");
    let mut b = m.connect();
    assert!(b.line().starts_with("-ERR [SYS/TEMP] too many sessions"));
    // SIGTERM: the idle session is told, nothing is deleted, maccess exits 0.
    let stopped = m.stop();
    assert!(a.line().starts_with("-ERR [SYS/TEMP] server shutting down"));
    for (status, stderr) in stopped {
        assert!(status.success(), "{status:?} {stderr}");
    }
    assert_eq!(messages(&m.maildir()).len(), 5);
}

#[test]
fn sessions_per_client_address_are_limited_as_mreceives_are() {
    let m = Maccess::start(&["--insecure-auth", "--client-connection-count-limit", "2"]);
    let mut held = Vec::new();
    assert!(common::wait_until(Duration::from_secs(10), || {
        held.clear();
        held.extend([m.connect(), m.connect()]);
        held.iter_mut().all(|p| p.line().starts_with("+OK"))
    }));
    let mut third = m.connect();
    let refused = third.line();
    assert!(
        refused.starts_with("-ERR [SYS/TEMP] too many connections from your address"),
        "{refused}"
    );
    // A session that ended gives its place back.
    held.pop();
    assert!(common::wait_until(Duration::from_secs(5), || m
        .connect()
        .line()
        .starts_with("+OK")));
}

#[test]
fn a_slow_drip_times_out() {
    let m = Maccess::start(&["--insecure-auth", "--timeout", "2"]);
    let mut c = m.connect();
    c.line();
    let start = Instant::now();
    // A byte every half second never makes a line within the timeout.
    let mut tcp = c.into_inner();
    for b in b"USER alice and so on and so on\r\n" {
        if tcp.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        if start.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut tcp, &mut rest);
    assert!(rest.starts_with("-ERR timeout"), "{rest:?}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn stdio_mode_serves_one_session_and_refuses_bad_usage() {
    let m = Maccess::start(&[]);
    m.seed(1);
    let mut c = m.command();
    c.arg("--insecure-auth");
    let out = run(
        &mut c,
        b"USER alice\r\nPASS secret\r\nSTAT\r\nDELE 1\r\nQUIT\r\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(text.contains("+OK alice has 5 messages"), "{text}");
    assert!(text.ends_with("+OK 1 messages deleted, bye\r\n"), "{text}");
    let log = common::stderr(&out);
    assert!(
        log.contains("login client=unknown user=alice messages=5"),
        "{log}"
    );
    assert!(log.contains("end=quit retrieved=0 deleted=1"), "{log}");
    assert_eq!(messages(&m.maildir()).len(), 4);
    // No TLS and no --insecure-auth: refused at start (64), not at the first client.
    let mut c = common::tool(crate::bin!("maccess"), m.dir.path());
    c.arg("-m").arg(m.dir.path()).arg("-p").arg(&m.passwd);
    let out = run(&mut c, b"");
    assert_eq!(common::code(&out), 64);
    assert!(
        common::stderr(&out).starts_with("maccess: no --tls-cert: "),
        "{}",
        common::stderr(&out)
    );
    let mut c = common::tool(crate::bin!("maccess"), m.dir.path());
    c.arg("-m")
        .arg(m.dir.path())
        .arg("-p")
        .arg(m.dir.path().join("missing"))
        .arg("--insecure-auth");
    assert_eq!(common::code(&run(&mut c, b"")), 78);
}

/// maccess's peak memory (its parent here is python, so RUSAGE_CHILDREN is maccess's alone)
/// while it sends a message far larger than any buffer: 64 MiB of lines and a 32 MiB line
/// without a line end. It must stay a small fraction of either (about 14 MiB here, most of
/// it the debug binary itself).
const MEASURE: &str = r#"
import resource, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL)
p.stdin.write(b"USER alice\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n")
p.stdin.close()
n, tail = 0, b""
while True:
    b = p.stdout.read(1 << 16)
    if not b:
        break
    n += len(b)
    tail = (tail + b)[-64:]
p.wait()
print(n, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode, tail.endswith(b"\r\n.\r\n+OK 0 messages deleted, bye\r\n"))
"#;

#[test]
fn a_huge_message_is_sent_in_bounded_memory() {
    if !common::have(&["python3"]) {
        return;
    }
    let m = Maccess::start(&[]);
    let new = m.maildir().join("new");
    std::fs::create_dir_all(&new).unwrap();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(new.join("1.big.host")).unwrap());
        f.write_all(b"Subject: big\n\n").unwrap();
        let line = [b"x".repeat(75), b"\n".to_vec()].concat();
        for _ in 0..(64 << 20) / line.len() {
            f.write_all(&line).unwrap();
        }
        f.write_all(&b"y".repeat(32 << 20)).unwrap();
    }
    let c = m.command();
    let out = Command::new("python3")
        .args(["-c", MEASURE])
        .arg(c.get_program())
        .args(c.get_args())
        .arg("--insecure-auth")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        f.len(),
        4,
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (sent, max_kib): (u64, u64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
    assert!(sent > 96 << 20, "{text}");
    assert_eq!((f[2], f[3]), ("0", "True"), "{text}");
    assert!(max_kib < 20 << 10, "maccess peaked at {max_kib} KiB");
}
