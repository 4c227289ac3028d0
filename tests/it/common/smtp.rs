//! SMTP test servers: Postfix's smtp-sink (a real, fast server that dumps each message to a
//! file) and a scripted in-test fake for the edge cases no real server produces on demand
//! (no STARTTLS, injected replies, a dropped connection mid-DATA, a 4xx greeting).
//! Both listen on 127.0.0.1 only.
//! Included by the msubmit tests as `#[path = "common/smtp.rs"] mod smtp;` beside `mod common;`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running smtp-sink writing one file per message into `dir`; killed on drop.
pub struct Sink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    /// Start smtp-sink on 127.0.0.1 at a free port.
    pub fn start() -> Sink {
        let dir = tempfile::Builder::new()
            .prefix("mp-sink")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let port = crate::common::free_port();
        let mut c = Command::new("/usr/sbin/smtp-sink");
        if crate::common::is_root() {
            c.args(["-u", "nobody"]);
        }
        c.arg("-d")
            .arg(format!("{}/%H%M%S.", dir.path().display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = c.spawn().expect("start smtp-sink");
        let up = crate::common::wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "smtp-sink did not start");
        Sink { port, dir, child }
    }

    /// The messages received so far, as dumped (smtp-sink's X- and Received: lines first).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        crate::common::files(self.dir.path())
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fake does after it sent 354.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterData {
    /// Read to the end of data, then answer 250 (after `delay`).
    Accept,
    /// Read this many bytes of data and close the connection.
    DropAfter(usize),
    /// Read to the end of data and never answer.
    Silent,
}

/// A scripted fake server.
#[derive(Clone)]
pub struct Script {
    pub greeting: &'static str,
    pub ehlo: &'static str,
    /// Raw bytes sent in reply to STARTTLS (the connection is closed after).
    pub starttls: &'static str,
    /// The reply to RCPT for an address containing the key.
    pub rcpt: Vec<(&'static str, &'static str)>,
    pub after_data: AfterData,
    pub delay: Duration,
    /// Recipients per transaction; more get 452 4.5.3.
    pub max_rcpts: Option<usize>,
    /// A reply to DATA instead of 354 (the data is then not read).
    pub data_reply: Option<&'static str>,
    /// After this many messages accepted on a connection, this reply to the end of data
    /// instead of 250 (the message is not kept).
    pub refuse_after: Option<(usize, &'static str)>,
    /// After this many messages accepted on a connection, hang up (an idle timeout: the
    /// server's `421` and the close, before the client's next command).
    pub close_after: Option<usize>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greeting: "220 fake.test ESMTP\r\n",
            ehlo: "250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n",
            starttls: "454 4.7.0 TLS not available\r\n",
            rcpt: Vec::new(),
            after_data: AfterData::Accept,
            delay: Duration::ZERO,
            max_rcpts: None,
            data_reply: None,
            refuse_after: None,
            close_after: None,
        }
    }
}

/// A fake server on 127.0.0.1; every connection it served is in `log` (all bytes received)
/// and its client's address in `peers`, and each accepted message's content in `accepted`.
pub struct Fake {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<u8>>>,
    pub accepted: Arc<Mutex<Vec<Vec<u8>>>>,
    pub peers: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Fake {
    pub fn start(script: Script) -> Fake {
        Fake::start_on("127.0.0.1:0", script)
    }

    /// A fake listening on `addr` (another loopback address, a chosen port).
    pub fn start_on(addr: &str, script: Script) -> Fake {
        Fake::on(TcpListener::bind(addr).unwrap(), script)
    }

    /// A fake on a port a test chose before (one found free and given to a client that
    /// found nothing there).
    pub fn start_at(port: u16, script: Script) -> Fake {
        Fake::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), script)
    }

    fn on(listener: TcpListener, script: Script) -> Fake {
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (l, a, p) = (log.clone(), accepted.clone(), peers.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if let Ok(peer) = conn.peer_addr() {
                    p.lock().unwrap().push(peer);
                }
                let (s, l, a) = (script.clone(), l.clone(), a.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &l, &a);
                });
            }
        });
        Fake {
            addr,
            log,
            accepted,
            peers,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// The accepted messages as a server stores them: `accepted` holds the DATA content as it
    /// came over the wire, dot-stuffed; this takes each line's leading extra dot away again
    /// (RFC 5321 §4.5.2).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let accepted = self.accepted.lock().unwrap();
        accepted
            .iter()
            .map(|data| {
                data.split_inclusive(|&b| b == b'\n')
                    .flat_map(|line| line.strip_prefix(b".").unwrap_or(line))
                    .copied()
                    .collect()
            })
            .collect()
    }
}

fn serve(
    conn: TcpStream,
    s: &Script,
    log: &Mutex<Vec<u8>>,
    accepted: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    out.write_all(s.greeting.as_bytes())?;
    let mut line = Vec::new();
    // Accepted recipients of the transaction: DATA without any is refused, as servers do.
    let mut rcpts_ok = 0;
    let mut messages = 0;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        log.lock().unwrap().extend_from_slice(&line);
        let cmd = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let reply: String = if cmd.starts_with("EHLO") {
            s.ehlo.into()
        } else if cmd.starts_with("HELO") || cmd.starts_with("MAIL") || cmd.starts_with("NOOP") {
            "250 2.0.0 ok\r\n".into()
        } else if cmd.starts_with("RSET") {
            rcpts_ok = 0;
            "250 2.0.0 ok\r\n".into()
        } else if cmd.starts_with("AUTH") {
            "235 2.7.0 authenticated\r\n".into()
        } else if cmd.starts_with("RCPT") {
            let full = s.max_rcpts.is_some_and(|m| rcpts_ok >= m);
            let r = if full {
                "452 4.5.3 too many recipients\r\n"
            } else {
                ""
            };
            let r = s
                .rcpt
                .iter()
                .find(|(k, _)| cmd.contains(&k.to_ascii_uppercase()))
                .map_or(if full { r } else { "250 2.1.5 ok\r\n" }, |(_, r)| r);
            if r.starts_with('2') {
                rcpts_ok += 1;
            }
            r.into()
        } else if cmd.starts_with("DATA") && rcpts_ok == 0 {
            "554 5.5.1 no valid recipients\r\n".into()
        } else if cmd.starts_with("STARTTLS") {
            out.write_all(s.starttls.as_bytes())?;
            if s.starttls.starts_with("220") {
                // Wait for a handshake that a careful client never starts.
                let mut buf = [0u8; 1024];
                let n = r.read(&mut buf).unwrap_or(0);
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                return Ok(());
            }
            continue;
        } else if cmd.starts_with("DATA") && s.data_reply.is_some() {
            s.data_reply.unwrap_or_default().into()
        } else if cmd.starts_with("DATA") {
            out.write_all(b"354 go ahead\r\n")?;
            let mut data = Vec::new();
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" {
                    break;
                }
                data.extend_from_slice(&line);
                if let AfterData::DropAfter(n) = s.after_data
                    && data.len() >= n
                {
                    return Ok(());
                }
            }
            if s.after_data == AfterData::Silent {
                std::thread::sleep(Duration::from_secs(30));
                return Ok(());
            }
            std::thread::sleep(s.delay);
            rcpts_ok = 0;
            if let Some((n, reply)) = s.refuse_after
                && messages >= n
            {
                out.write_all(reply.as_bytes())?;
                continue;
            }
            messages += 1;
            accepted.lock().unwrap().push(data);
            if s.close_after.is_some_and(|n| messages >= n) {
                // The 250 and the 421 in one write, then the close: the client has both
                // before it can send the next MAIL (else which comes first is a race).
                out.write_all(b"250 2.0.0 queued\r\n421 4.4.2 closing\r\n")?;
                return Ok(());
            }
            out.write_all(b"250 2.0.0 queued\r\n")?;
            continue;
        } else if cmd.starts_with("QUIT") {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 what\r\n".into()
        };
        out.write_all(reply.as_bytes())?;
        if reply.starts_with("421") {
            return Ok(());
        }
    }
}

/// The value of a header field in dumped message bytes (first match, unfolded poorly).
pub fn header_value(msg: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    let prefix = format!("{}:", name.to_ascii_lowercase());
    text.lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

/// Write a file, creating parents.
pub fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}
