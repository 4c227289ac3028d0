//! Fuzz-style: thousands of random and mutated byte sequences through a whole server session
//! in memory (the same `serve` mreceive runs). No panic, no hang, every output line a
//! well-formed SMTP reply, and a message is handed over exactly when 250 says so.

use mailpipe::message::buffer::Buffer;
use mailpipe::net::conn::{Conn, MemIo};
use mailpipe::smtp::event::{Client, Event};
use mailpipe::smtp::policy::Policy;
use mailpipe::smtp::reply::ReplyParser;
use mailpipe::smtp::server::{Deliver, Peer, Settings, Transaction, serve};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Count(AtomicUsize);

impl Deliver for Count {
    fn deliver(&self, tx: &Transaction, msg: &mut Buffer) -> Vec<mailpipe::Result<()>> {
        let env = &tx.envelope;
        assert!(!env.rcpts.is_empty() && env.rcpts.len() == tx.users.len());
        assert!(msg.head().starts_with(b"Received: from "));
        self.0.fetch_add(1, Ordering::SeqCst);
        env.rcpts.iter().map(|_| Ok(())).collect()
    }
}

fn settings() -> Settings {
    Settings {
        hostname: "mx.test".into(),
        policy: Policy::new(&["local.test".into()], None),
        max_size: 4096,
        max_recipients: 5,
        max_received: 3,
        timeout: Duration::from_secs(1),
        normalize: false,
        tls: None,
        passwords: Some(std::sync::Arc::new(
            mailpipe::passwd::Passwords::parse("", "none").unwrap(),
        )),
        insecure_auth: true,
        auth_failure_delay: std::time::Duration::ZERO,
        submission: false,
        local_user: None,
        software: "mailpipe mreceive".into(),
        log: Box::new(|_: &Client<'_>, _: &Event<'_>| {}),
    }
}

const SEEDS: &[&[u8]] = &[
    b"EHLO c\r\nMAIL FROM:<a@b.test> SIZE=10\r\nRCPT TO:<u@local.test>\r\nDATA\r\nSubject: x\r\n\r\n..x\r\n.\r\nQUIT\r\n",
    b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<\"q@r\"@local.test>\r\nDATA\r\nReceived: x\r\nReceived: y\r\n\r\nb\n.\n\r\n.\r\n",
    b"EHLO c\r\nAUTH PLAIN\r\nAGEAYg==\r\nAUTH LOGIN\r\n*\r\nSTARTTLS\r\nBDAT 3 LAST\r\nabc",
    b"EHLO c\r\nMAIL FROM:<@x,@y:a@b> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<\xc3\xa9@local.test>\r\nDATA\r\n\xff\xfe\r\n\r.\r\n.\r\nRSET\r\nVRFY x\r\nNOOP\r\n",
];

/// xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\0",
    b"<",
    b">",
    b"@",
    b":",
    b"\"",
    b" ",
    b"MAIL FROM:",
    b"RCPT TO:",
    b"DATA\r\n",
    b"\r\n.\r\n",
    b"EHLO x\r\n",
    b"AUTH PLAIN ",
    b"=",
    b"SIZE=",
    b"99999999999999999999999",
    b"Received: ",
    b"\xc3",
    b"\xff",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let pos = if v.is_empty() {
            0
        } else {
            rng.below(v.len() + 1)
        };
        match rng.below(5) {
            0 if !v.is_empty() && pos < v.len() => {
                v.remove(pos);
            }
            1 => v.insert(pos, rng.next() as u8),
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(pos..pos, t.iter().copied());
            }
            3 if pos < v.len() => v[pos] = rng.next() as u8,
            _ => {
                let n = rng.below(1200);
                v.splice(pos..pos, std::iter::repeat_n(b'x', n));
            }
        }
    }
    v
}

fn session(input: Vec<u8>, s: &Settings, count: &Count) -> Vec<u8> {
    let (io, out) = MemIo::new(input);
    let _ = serve(Conn::new(Box::new(io)), s, &Peer::default(), count, false);
    out.lock().unwrap().clone()
}

/// Every line is part of a well-formed reply; returns the number of "delivered" replies.
fn check_replies(out: &[u8], input: &[u8]) -> usize {
    let mut p = ReplyParser::new();
    let mut delivered = 0;
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "bad line end for input {input:?}");
        match p.feed(line) {
            Ok(Some(r)) if r.text().contains("ok, delivered") => delivered += 1,
            Ok(_) => {}
            Err(e) => panic!("malformed reply {e} for input {input:?}"),
        }
    }
    assert!(!p.in_progress());
    delivered
}

#[test]
fn random_and_mutated_sessions_never_panic_or_hang() {
    let s = settings();
    let count = Count(AtomicUsize::new(0));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut replies_250 = 0;
    for i in 0..6000 {
        let input = if i % 4 == 0 {
            (0..rng.below(600))
                .map(|_| TOKENS[rng.below(TOKENS.len())][0])
                .collect()
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed)
        };
        let out = session(input.clone(), &s, &count);
        assert!(out.starts_with(b"220 mx.test"), "no greeting");
        replies_250 += check_replies(&out, &input);
    }
    assert_eq!(count.0.load(Ordering::SeqCst), replies_250);
    assert!(replies_250 > 0, "the seeds should still deliver sometimes");
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "too slow: {:?}",
        start.elapsed()
    );
}

#[test]
fn the_seeds_behave() {
    let s = settings();
    let count = Count(AtomicUsize::new(0));
    let out = session(SEEDS[0].to_vec(), &s, &count);
    assert_eq!(check_replies(&out, SEEDS[0]), 1);
    // Seed 1 has more Received: headers than allowed (3) only if mutated; its bare LF
    // refuses it.
    let out = session(SEEDS[1].to_vec(), &s, &count);
    assert_eq!(check_replies(&out, SEEDS[1]), 0);
    assert!(String::from_utf8_lossy(&out).contains("550 5.6.11"));
}
