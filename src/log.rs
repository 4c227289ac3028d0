//! Log lines for the operator, shared by the tools that keep a log (msubmit's `--log` and
//! `--syslog`, mreceive's transaction log): `key=value` values quoted so that no value can
//! forge a second line or a key of its own, and the one syslog writer.
//!
//! Why our own syslog writer rather than libc's `syslog(3)`: glibc's knows only /dev/log,
//! and a server must be testable on a machine without one (and point at a chroot's socket),
//! so the writer takes the socket's path. It speaks what glibc speaks, RFC 3164's
//! `<PRI>Mmm dd hh:mm:ss ident[pid]: text`, as one datagram, or over a stream socket with
//! a NUL after each message, so rsyslog, syslog-ng and journald read it as they read glibc's.

use std::borrow::Cow;
use std::io::{self, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A value as a log line shows it: as it is when it is printable ASCII without `"` and `=`
/// (and not empty), else in double quotes with `"`, `\` and everything unprintable escaped
/// as Rust's `{:?}` does (`\n`, `\r`, `\u{1b}`). So a value from a client (a HELO name, an
/// address) can hold neither a line end nor an unquoted space or `=`: whatever it says, a
/// reader splitting at spaces and the first `=` sees one key with one value.
pub fn quote(value: &str) -> Cow<'_, str> {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=')
    {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("{value:?}"))
    }
}

/// Append ` key=value` to `line`, the value [`quote`]d.
pub fn pair(line: &mut String, key: &str, value: impl std::fmt::Display) {
    let value = value.to_string();
    line.push(' ');
    line.push_str(key);
    line.push('=');
    line.push_str(&quote(&value));
}

/// Where syslog listens on Linux and the BSDs.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The facility of mail software (RFC 5424 §6.2.1: 2).
const LOG_MAIL: u8 = 2;

/// How much a line matters (RFC 5424 §6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// 4: something failed that the operator should look at.
    Warning = 4,
    /// 6: what happened, as it should.
    Info = 6,
}

/// A syslog socket, facility mail, connected at the first line and again after the daemon
/// went away (it restarts; a datagram socket connected to the old one then fails).
pub struct Syslog {
    path: PathBuf,
    ident: &'static str,
    socket: Mutex<Option<Socket>>,
}

enum Socket {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

impl Syslog {
    /// A writer to the socket at `path` ([`SYSLOG_SOCKET`] for the system's), lines tagged
    /// `ident[pid]`.
    pub fn new(ident: &'static str, path: impl Into<PathBuf>) -> Syslog {
        Syslog {
            path: path.into(),
            ident,
            socket: Mutex::new(None),
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send one line. A failure is the caller's to report (or not: a log must never stop
    /// the mail); the next line tries a new connection.
    pub fn send(&self, severity: Severity, text: &str) -> io::Result<()> {
        let message = format!(
            "<{}>{} {}[{}]: {}",
            LOG_MAIL * 8 + severity as u8,
            chrono::Local::now().format("%b %e %H:%M:%S"),
            self.ident,
            std::process::id(),
            // A NUL ends the message on a stream socket.
            text.replace('\0', " ")
        );
        let mut socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = socket.as_mut() {
            match s.write(&message) {
                Ok(()) => return Ok(()),
                Err(e) if reconnect_helps(&e) => *socket = None,
                Err(e) => {
                    *socket = None;
                    return Err(e);
                }
            }
        }
        let written = socket.insert(connect(&self.path)?).write(&message);
        if written.is_err() {
            *socket = None;
        }
        written
    }
}

impl Socket {
    fn write(&mut self, message: &str) -> io::Result<()> {
        match self {
            Socket::Datagram(s) => s.send(message.as_bytes()).map(drop),
            Socket::Stream(s) => {
                let mut framed = Vec::with_capacity(message.len() + 1);
                framed.extend_from_slice(message.as_bytes());
                framed.push(0);
                s.write_all(&framed)
            }
        }
    }
}

/// A datagram socket as glibc tries first, else a stream (an older syslog-ng).
fn connect(path: &Path) -> io::Result<Socket> {
    let datagram = UnixDatagram::unbound().and_then(|s| s.connect(path).map(|()| s));
    match datagram {
        Ok(s) => Ok(Socket::Datagram(s)),
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            UnixStream::connect(path).map(Socket::Stream)
        }
        Err(e) => Err(e),
    }
}

/// The daemon restarted: the old connection is refused or reset, a new one may work.
fn reconnect_helps(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_forge_lines_or_keys() {
        assert_eq!(quote("mx.example.org"), "mx.example.org");
        assert_eq!(quote("<a@b.example>"), "<a@b.example>");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("x status=sent"), "\"x status=sent\"");
        assert_eq!(quote("x\rmreceive[1]: y"), "\"x\\rmreceive[1]: y\"");
        assert_eq!(quote("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(quote("\u{1b}[2J\u{2028}"), "\"\\u{1b}[2J\\u{2028}\"");
        assert_eq!(quote("dé"), "\"dé\"");
        let mut line = String::from("ID:");
        pair(&mut line, "helo", "x to=<y>");
        pair(&mut line, "size", 12);
        assert_eq!(line, "ID: helo=\"x to=<y>\" size=12");
    }

    #[test]
    fn syslog_sends_rfc3164_datagrams_and_reconnects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let log = Syslog::new("mreceive", &path);
        log.send(Severity::Info, "ID: a=b").unwrap();
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        // <mail.info>Mmm dd hh:mm:ss ident[pid]: text
        assert!(got.starts_with("<22>"), "{got}");
        assert!(
            got.ends_with(&format!("mreceive[{}]: ID: a=b", std::process::id())),
            "{got}"
        );
        assert_eq!(got.as_bytes()[7], b' ', "{got}");
        // The daemon restarts: a new socket at the same path gets the next line.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        log.send(Severity::Warning, "again").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"<20>"));
        // No socket: an error to report, not a panic.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        assert!(log.send(Severity::Info, "x").is_err());
    }

    #[test]
    fn syslog_over_a_stream_socket_ends_messages_with_nul() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let log = Syslog::new("msubmit", &path);
        log.send(Severity::Info, "one").unwrap();
        log.send(Severity::Info, "two").unwrap();
        drop(log);
        let mut got = Vec::new();
        server.accept().unwrap().0.read_to_end(&mut got).unwrap();
        let got = String::from_utf8(got).unwrap();
        let parts: Vec<&str> = got.split_terminator('\0').collect();
        assert_eq!(parts.len(), 2, "{got:?}");
        assert!(parts[0].ends_with("]: one") && parts[1].ends_with("]: two"));
    }
}
