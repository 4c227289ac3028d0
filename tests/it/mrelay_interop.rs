//! mrelay's reliability against hostile or broken servers written here (each a few lines on
//! loopback), and its interop with real peers (dnsmasq as the DNS, Postfix and mreceive as
//! mail exchangers, smtp-sink counting sessions). Issue 10 asks for each: a server that
//! misbehaves must cost a temporary failure in bounded time, the recipient kept exactly once
//! (pending, attempts=1), never lost and never counted twice.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A relay with its own configuration and queue in a temporary directory.
struct Relay {
    t: tempfile::TempDir,
}

impl Relay {
    fn new(config: &str) -> Relay {
        let r = Relay {
            t: tempfile::tempdir().unwrap(),
        };
        r.config(config);
        r
    }

    fn config(&self, text: &str) {
        std::fs::write(self.t.path().join("config"), text).unwrap();
    }

    fn queue(&self) -> PathBuf {
        self.t.path().join("queue")
    }

    fn cmd(&self) -> Command {
        let mut c = tool(bin!("mrelay"), self.t.path());
        c.arg("-C")
            .arg(self.t.path().join("config"))
            .arg("--queue-dir")
            .arg(self.queue())
            .args(["--hostname", "relay.test"]);
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(self.cmd().args(args), stdin)
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        assert_eq!(code(&out), 0, "mrelay {args:?}: {}", stderr(&out));
        stderr(&out)
    }

    fn waiting(&self) -> Vec<PathBuf> {
        files(&self.queue().join("new"))
    }

    /// Every recipient of every entry, from `--list --json`: `ADDRESS STATUS ATTEMPTS`, one a
    /// line, in queue order; Python's json parser reads the listing, so it must be valid.
    fn states(&self) -> String {
        let out = self.run(&["--list", "--json"], b"");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let script = r#"
import json, sys
for e in json.load(sys.stdin):
    for r in e["recipients"]:
        print(r["address"], r["status"], r["attempts"])
"#;
        let mut py = Command::new("python3");
        py.args(["-c", script]);
        let parsed = run(&mut py, &out.stdout);
        assert!(parsed.status.success(), "{}", stderr(&parsed));
        String::from_utf8_lossy(&parsed.stdout).into_owned()
    }
}

const MSG: &[u8] = b"From: a@sender.test\nSubject: relay test\n\nhello\n";

/// A server on 127.0.0.1 that runs `serve` on each connection it accepts, in a thread each.
fn hostile(serve: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || serve(conn));
        }
    });
    port
}

/// Read SMTP commands and answer them as a plain server would, until `stop` says a command
/// is the one to misbehave at (it gets the reader; the return is whether to go on).
fn dialogue(
    conn: TcpStream,
    ehlo: &str,
    mut at: impl FnMut(&str, &mut BufReader<TcpStream>) -> bool,
) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let _ = w.write_all(b"220 hostile.test ESMTP\r\n");
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !at(&line, &mut r) {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => ehlo,
            "DATA" => "354 go ahead\r\n",
            "QUIT" => "221 bye\r\n",
            _ => "250 ok\r\n",
        };
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
        if verb == "DATA" {
            let mut data = String::new();
            while r.read_line(&mut data).is_ok_and(|n| n > 0) && !data.ends_with("\r\n.\r\n") {}
            let _ = w.write_all(b"250 ok\r\n");
        }
    }
}

const EHLO: &str = "250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

/// Send one message through a server that misbehaves; the time it took and the log.
fn through(port: u16, extra: &str) -> (Relay, Duration, String) {
    let r = Relay::new(&format!(
        "route example.test [127.0.0.1]:{port}\nrelay_timeout 2s\nrelay_connect_timeout 2s\nrelay_retry 1h\n{extra}"
    ));
    let start = Instant::now();
    let log = r.ok(&["-f", "a@sender.test", "x@example.test"], MSG);
    let took = start.elapsed();
    (r, took, log)
}

/// The recipient waits, tried once, in the one entry; the attempt took bounded time.
fn deferred_once(port: u16, extra: &str, what: &str) -> String {
    let (r, took, log) = through(port, extra);
    assert!(
        took < Duration::from_secs(10),
        "{what}: took {took:?}: {log}"
    );
    assert_eq!(log.matches("status=deferred").count(), 1, "{what}: {log}");
    assert!(!log.contains("status=sent"), "{what}: {log}");
    assert!(!log.contains("status=bounced"), "{what}: {log}");
    assert_eq!(r.waiting().len(), 1, "{what}: {log}");
    assert_eq!(r.states(), "x@example.test pending 1\n", "{what}: {log}");
    log
}

#[test]
fn a_greeting_that_never_comes_is_a_timeout() {
    let port = hostile(|mut c| {
        let mut buf = [0u8; 512];
        while c.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    deferred_once(port, "", "no greeting");
}

#[test]
fn a_reply_that_never_ends_is_given_up() {
    // A multiline greeting, `220-` forever, as fast as the client reads (bounded: 2 GB).
    let port = hostile(|mut c| {
        let line = b"220-still greeting you\r\n".repeat(1000);
        let mut sent = 0usize;
        while sent < 2 << 30 && c.write_all(&line).is_ok() {
            sent += line.len();
        }
    });
    deferred_once(port, "", "endless reply");
}

#[test]
fn a_two_gigabyte_reply_line_is_given_up() {
    let port = hostile(|mut c| {
        let _ = c.write_all(b"220 ");
        let chunk = vec![b'x'; 1 << 16];
        let mut sent = 0usize;
        while sent < 2 << 30 && c.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
    });
    deferred_once(port, "", "2 GB line");
}

#[test]
fn starttls_answered_with_plaintext_is_temporary() {
    let port = hostile(|c| {
        let mut w = c.try_clone().unwrap();
        dialogue(
            c,
            "250-hostile.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
            |line, r| {
                if !line.to_ascii_uppercase().starts_with("STARTTLS") {
                    return true;
                }
                // Not a TLS server hello: SMTP text, then whatever the client sends is read.
                let _ = w.write_all(b"220 go ahead\r\n250 this is not TLS at all\r\n");
                let mut buf = [0u8; 512];
                while r.read(&mut buf).is_ok_and(|n| n > 0) {}
                false
            },
        );
    });
    // Where TLS is required, that is a temporary failure.
    deferred_once(
        port,
        "relay_tls example.test encrypt\n",
        "plaintext after STARTTLS",
    );
    // At `may` (RFC 7435), the handshake that failed is retried in clear text on a new
    // connection, as Postfix does: the message goes, once.
    let (r, _, log) = through(port, "");
    assert_eq!(log.matches("status=sent").count(), 1, "{log}");
    assert!(r.waiting().is_empty(), "{log}");
}

#[test]
fn a_connection_dropped_after_354_is_temporary() {
    let port = hostile(|c| {
        let mut w = c.try_clone().unwrap();
        dialogue(c, EHLO, |line, _| {
            if line.to_ascii_uppercase().starts_with("DATA") {
                let _ = w.write_all(b"354 go ahead\r\n");
                return false;
            }
            true
        });
    });
    deferred_once(port, "", "dropped after 354");
}

#[test]
fn a_connection_dropped_after_the_final_dot_is_temporary() {
    let port = hostile(|c| {
        let mut w = c.try_clone().unwrap();
        dialogue(c, EHLO, |line, r| {
            if !line.to_ascii_uppercase().starts_with("DATA") {
                return true;
            }
            let _ = w.write_all(b"354 go ahead\r\n");
            let mut data = String::new();
            while r.read_line(&mut data).is_ok_and(|n| n > 0) && !data.ends_with("\r\n.\r\n") {}
            // The whole message came; the reply never does.
            false
        });
    });
    deferred_once(port, "", "dropped after the dot");
}
