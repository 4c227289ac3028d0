//! A fake POP3 server on loopback for mfetch's tests: a maildrop in memory that sessions
//! share (DELE takes effect at QUIT, RFC 1939 §6), every command recorded, and the ways a
//! hostile or broken server misbehaves, one [`Quirk`] at a time.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// None: RFC 1939 with CAPA (USER, UIDL, TOP, PIPELINING).
    None,
    /// Accept the connection and never greet.
    SilentGreeting,
    /// A greeting that never ends: bytes without a line end, for ever.
    EndlessLine,
    /// Every message has the same UIDL.
    RepeatedUidl,
    /// CAPA offers STLS; its +OK comes with an injected line after it.
    InjectAfterStls,
    /// CAPA offers STLS; STLS is refused.
    RefuseStls,
    /// RETR of message N sends half of it, then closes the connection.
    CutAt(usize),
    /// RETR sends 200 kB more than the listed size.
    Oversized,
    /// No PIPELINING in CAPA.
    NoPipelining,
    /// UIDL lists messages for ever.
    EndlessUidl,
    /// SASL PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER (RFC 5034) in CAPA, no USER; a token or
    /// password "secret" is right.
    Sasl,
}

/// The server's shared state.
#[derive(Default)]
pub struct Maildrop {
    /// (UIDL, message with CRLF line ends, dot-stuffing not applied), removed on QUIT.
    pub messages: Vec<(String, Vec<u8>)>,
    /// Every command line received, in order, across sessions.
    pub commands: Vec<String>,
}

/// A running fake server.
pub struct FakePop3 {
    pub port: u16,
    pub state: Arc<Mutex<Maildrop>>,
}

impl FakePop3 {
    /// Serve `messages` (as stored: LF line ends; sent with CRLF) under `quirk`.
    pub fn start(messages: Vec<(String, Vec<u8>)>, quirk: Quirk) -> FakePop3 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(Maildrop {
            messages,
            commands: Vec::new(),
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let st = st.clone();
                let quirk = quirk.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, &st, &quirk);
                });
            }
        });
        FakePop3 { port, state }
    }

    /// The commands received so far.
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().commands.clone()
    }

    /// How many messages are still in the maildrop.
    pub fn left(&self) -> usize {
        self.state.lock().unwrap().messages.len()
    }
}

fn crlf(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 20);
    for (i, &b) in msg.iter().enumerate() {
        if b == b'\n' && (i == 0 || msg[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// RFC 1939 §3: a line starting with a dot gets another.
fn stuffed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in crlf(msg).split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn session(conn: TcpStream, st: &Arc<Mutex<Maildrop>>, quirk: &Quirk) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    match quirk {
        Quirk::SilentGreeting => {
            std::thread::sleep(Duration::from_secs(30));
            return Ok(());
        }
        Quirk::EndlessLine => {
            let chunk = vec![b'x'; 64 * 1024];
            loop {
                out.write_all(&chunk)?;
            }
        }
        _ => {}
    }
    out.write_all(b"+OK fake POP3 ready\r\n")?;
    let mut doomed: Vec<usize> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        st.lock().unwrap().commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let mut w = upper.split_whitespace();
        let verb = w.next().unwrap_or("");
        let arg: Option<usize> = w.next().and_then(|a| a.parse().ok());
        let msgs = st.lock().unwrap().messages.clone();
        let get = |n: Option<usize>| n.filter(|&n| n >= 1 && n <= msgs.len()).map(|n| n - 1);
        let reply: Vec<u8> = match verb {
            "CAPA" => {
                let mut c = String::from("+OK\r\nUSER\r\nUIDL\r\nTOP\r\n");
                if *quirk != Quirk::NoPipelining {
                    c.push_str("PIPELINING\r\n");
                }
                if *quirk == Quirk::Sasl {
                    c = c.replace("USER\r\n", "SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n");
                }
                if matches!(quirk, Quirk::InjectAfterStls | Quirk::RefuseStls) {
                    c.push_str("STLS\r\n");
                }
                c.push_str(".\r\n");
                c.into_bytes()
            }
            "STLS" if *quirk == Quirk::InjectAfterStls => {
                b"+OK begin TLS\r\n+OK injected\r\n".to_vec()
            }
            "STLS" => b"-ERR not now\r\n".to_vec(),
            "AUTH" => {
                let mech = cmd
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_ascii_uppercase();
                let decode = |b: &str| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default()
                };
                let initial = cmd.split_whitespace().nth(2).map(decode);
                let ok = match (mech.as_str(), initial) {
                    ("PLAIN", Some(i)) => i == "\0alice\0secret",
                    ("XOAUTH2", Some(i)) => i == "user=alice\x01auth=Bearer secret\x01\x01",
                    ("OAUTHBEARER", Some(i)) => {
                        i.starts_with("n,a=alice,\x01") && i.ends_with("auth=Bearer secret\x01\x01")
                    }
                    ("LOGIN", None) => {
                        let mut answers = Vec::new();
                        for prompt in ["+ VXNlcm5hbWU6\r\n", "+ UGFzc3dvcmQ6\r\n"] {
                            out.write_all(prompt.as_bytes())?;
                            let mut l = String::new();
                            r.read_line(&mut l)?;
                            st.lock().unwrap().commands.push(l.trim_end().to_string());
                            answers.push(decode(&l));
                        }
                        answers == ["alice", "secret"]
                    }
                    _ => false,
                };
                if ok {
                    b"+OK logged in\r\n".to_vec()
                } else {
                    b"-ERR [AUTH] no\r\n".to_vec()
                }
            }
            "USER" => b"+OK\r\n".to_vec(),
            "PASS" if cmd.ends_with(" secret") => b"+OK logged in\r\n".to_vec(),
            "PASS" => b"-ERR [AUTH] wrong password\r\n".to_vec(),
            "UIDL" if *quirk == Quirk::EndlessUidl => {
                out.write_all(b"+OK\r\n")?;
                let mut n = 0u64;
                loop {
                    let mut chunk = String::new();
                    for _ in 0..1000 {
                        n += 1;
                        chunk.push_str(&format!("{n} u{n}\r\n"));
                    }
                    out.write_all(chunk.as_bytes())?;
                }
            }
            "UIDL" => {
                let mut s = String::from("+OK\r\n");
                for (i, (id, _)) in msgs.iter().enumerate() {
                    let id = if *quirk == Quirk::RepeatedUidl {
                        "same"
                    } else {
                        id
                    };
                    s.push_str(&format!("{} {id}\r\n", i + 1));
                }
                s.push_str(".\r\n");
                s.into_bytes()
            }
            "LIST" => {
                let mut s = String::from("+OK\r\n");
                for (i, (_, m)) in msgs.iter().enumerate() {
                    s.push_str(&format!("{} {}\r\n", i + 1, crlf(m).len()));
                }
                s.push_str(".\r\n");
                s.into_bytes()
            }
            "TOP" => match get(arg) {
                Some(i) => {
                    let m = &msgs[i].1;
                    let end = m
                        .windows(2)
                        .position(|w| w == b"\n\n")
                        .map_or(m.len(), |p| p + 2);
                    let mut r = b"+OK\r\n".to_vec();
                    r.extend(stuffed(&m[..end]));
                    r
                }
                None => b"-ERR no such message\r\n".to_vec(),
            },
            "RETR" => match get(arg) {
                Some(i) => {
                    let mut r = b"+OK\r\n".to_vec();
                    let body = stuffed(&msgs[i].1);
                    if *quirk == Quirk::CutAt(i + 1) {
                        r.extend_from_slice(&body[..body.len() / 2]);
                        out.write_all(&r)?;
                        return Ok(());
                    }
                    if *quirk == Quirk::Oversized {
                        let filler = b"Xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";
                        for _ in 0..(200_000 / filler.len() + 1) {
                            r.extend_from_slice(filler);
                        }
                    }
                    r.extend(body);
                    r
                }
                None => b"-ERR no such message\r\n".to_vec(),
            },
            "DELE" => match get(arg) {
                Some(i) => {
                    doomed.push(i);
                    b"+OK deleted\r\n".to_vec()
                }
                None => b"-ERR no such message\r\n".to_vec(),
            },
            "QUIT" => {
                let mut s = st.lock().unwrap();
                let mut keep = Vec::new();
                for (i, m) in s.messages.drain(..).enumerate() {
                    if !doomed.contains(&i) {
                        keep.push(m);
                    }
                }
                s.messages = keep;
                drop(s);
                out.write_all(b"+OK bye\r\n")?;
                return Ok(());
            }
            _ => b"-ERR unknown command\r\n".to_vec(),
        };
        out.write_all(&reply)?;
    }
}
