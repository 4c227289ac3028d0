//! The server's side of one SMTP connection: bounded reading of command lines and of DATA,
//! replies batched for PIPELINING, the STARTTLS upgrade, and timeouts on every read and write.
//!
//! Why its own buffer instead of `BufReader`: STARTTLS must throw away whatever the client
//! sent after the command in the clear (CVE-2011-0411: a man in the middle appends commands
//! that would otherwise run inside the TLS session), so the buffer must be ours to empty; and
//! replies are written only when we are about to wait for input (RFC 2920 §3.2: a server may
//! batch the replies to a pipelined group), which needs the read side to know about the write
//! side. Transports are anything [`Io`]: a socket or stdin/stdout ([`FdIo`], with poll(2)
//! timeouts that work for pipes as well as sockets) or bytes in memory ([`MemIo`], for tests
//! and fuzzing). The SMTP client (`smtp::client`) runs over the same [`Io`]: a socket it
//! connected ([`TcpIo`]), or whatever a caller or a test hands it.

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A byte transport with an optional timeout on each read and write.
pub trait Io: Read + Write + Send {
    /// Make every later read or write fail with `TimedOut` after `t` without progress.
    fn set_timeout(&mut self, _t: Duration) {}

    /// While `on`, a read that waits for input ends with [`STOPPING`] once the server is
    /// shutting down (an idle session is told 421 instead of holding up the exit).
    fn set_interruptible(&mut self, _on: bool) {}

    /// Make reads fail with `TimedOut` once `deadline` passed, however much trickled in
    /// before (`None`: only the per-read timeout).
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}

    /// True once the server is shutting down (see [`Io::set_interruptible`]).
    fn stopping(&self) -> bool {
        false
    }

    /// While the server is under stress (its sessions near their limit), the short time a
    /// read may take then; `None` otherwise, and for transports that cannot tell.
    fn stressed(&self) -> Option<Duration> {
        None
    }

    /// True when input is already waiting, so a read would not block. The SMTP client asks
    /// after the server's reply to STARTTLS: a byte there was sent before the handshake and
    /// must not be read as if it came over TLS (RFC 3207 §4.2, CVE-2011-0411). `false` when
    /// the transport cannot tell.
    fn has_input(&self) -> bool {
        false
    }

    /// True when the connection is open and quiet: nothing waiting and no end of input. A
    /// client asks before it reuses a kept connection: a server that timed it out has
    /// closed it (or said 421 first, RFC 5321 §3.8), and a transaction begun there would
    /// fail for nothing. `true` when the transport cannot tell.
    fn is_quiet(&self) -> bool {
        true
    }
}

impl<T: Io + ?Sized> Io for Box<T> {
    fn set_timeout(&mut self, t: Duration) {
        (**self).set_timeout(t)
    }
    fn set_interruptible(&mut self, on: bool) {
        (**self).set_interruptible(on)
    }
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        (**self).set_deadline(deadline)
    }
    fn stopping(&self) -> bool {
        (**self).stopping()
    }
    fn stressed(&self) -> Option<Duration> {
        (**self).stressed()
    }
    fn has_input(&self) -> bool {
        (**self).has_input()
    }
    fn is_quiet(&self) -> bool {
        (**self).is_quiet()
    }
}

/// A TCP socket as it is, for a caller that connected one (a test, a client handed a
/// socket): its own read and write timeouts, no deadline; [`FdIo::socket`] has deadlines.
impl Io for std::net::TcpStream {
    fn set_timeout(&mut self, t: Duration) {
        let t = Some(t.max(Duration::from_millis(1)));
        let _ = self
            .set_read_timeout(t)
            .and_then(|()| self.set_write_timeout(t));
    }

    fn has_input(&self) -> bool {
        if self.set_nonblocking(true).is_err() {
            return false;
        }
        let waiting = matches!(self.peek(&mut [0u8; 1]), Ok(n) if n > 0);
        let _ = self.set_nonblocking(false);
        waiting
    }

    fn is_quiet(&self) -> bool {
        if self.set_nonblocking(true).is_err() {
            return false;
        }
        // Bytes (a 421, a TLS alert) or the end of input (Ok(0)) both mean it is over.
        let quiet =
            matches!(self.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        let _ = self.set_nonblocking(false);
        quiet
    }
}

/// The error kind of a read interrupted because the server is shutting down.
pub const STOPPING: io::ErrorKind = io::ErrorKind::ConnectionAborted;

/// A transport on file descriptors: stdin/stdout under inetd, tcpserver or systemd, or one
/// accepted socket (read and write on the same descriptor, which it then owns).
pub struct FdIo {
    rfd: RawFd,
    wfd: RawFd,
    timeout: Duration,
    deadline: Option<Instant>,
    stop: Option<&'static AtomicBool>,
    /// While this flag is set, a read waits at most this long (a server under stress).
    stress: Option<(&'static AtomicBool, Duration)>,
    interruptible: bool,
    _owner: Option<std::net::TcpStream>,
}

impl FdIo {
    /// Standard input and output.
    pub fn stdio(timeout: Duration) -> FdIo {
        FdIo {
            rfd: 0,
            wfd: 1,
            timeout,
            deadline: None,
            stop: None,
            stress: None,
            interruptible: false,
            _owner: None,
        }
    }

    /// An accepted TCP connection.
    pub fn socket(s: std::net::TcpStream, timeout: Duration) -> FdIo {
        let fd = s.as_raw_fd();
        FdIo {
            rfd: fd,
            wfd: fd,
            timeout,
            deadline: None,
            stop: None,
            stress: None,
            interruptible: false,
            _owner: Some(s),
        }
    }

    /// Watch `flag`: once it is set, interruptible reads end (see [`Io::set_interruptible`]).
    pub fn stop_on(mut self, flag: &'static AtomicBool) -> FdIo {
        self.stop = Some(flag);
        self
    }

    /// Watch `flag`: while it is set, a read waits at most `timeout` (Postfix's stress
    /// mode), however long the usual timeout is.
    pub fn stress_on(mut self, flag: &'static AtomicBool, timeout: Duration) -> FdIo {
        self.stress = Some((flag, timeout));
        self
    }
}

/// Wait until `fd` is ready for `events`, or fail with `TimedOut`.
fn wait(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<()> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    loop {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: p is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        match n {
            0 => return Err(io::ErrorKind::TimedOut.into()),
            n if n > 0 => return Ok(()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

impl Read for FdIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(self.timeout),
                _ => return Err(io::ErrorKind::TimedOut.into()),
            },
            None => self.timeout,
        };
        let stop = self.stop.filter(|_| self.interruptible);
        if stop.is_none() && self.stress.is_none() {
            wait(self.rfd, libc::POLLIN, timeout)?;
        } else {
            // Wait in slices, looking at the flags when a slice passed without input (input
            // that is there, a QUIT say, is still read).
            let slice = Duration::from_millis(200);
            let (mut left, mut waited) = (timeout, Duration::ZERO);
            loop {
                match wait(self.rfd, libc::POLLIN, left.min(slice)) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                            return Err(io::Error::new(STOPPING, "shutting down"));
                        }
                        waited += left.min(slice);
                        if let Some((flag, short)) = self.stress
                            && waited >= short
                            && flag.load(Ordering::Relaxed)
                        {
                            return Err(e);
                        }
                        if left <= slice {
                            return Err(e);
                        }
                        left -= slice;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let n = unsafe { libc::read(self.rfd, buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Write for FdIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        wait(self.wfd, libc::POLLOUT, self.timeout)?;
        loop {
            // SAFETY: buf is valid for reads of buf.len() bytes.
            let n = unsafe { libc::write(self.wfd, buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Io for FdIo {
    fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    fn set_interruptible(&mut self, on: bool) {
        self.interruptible = on;
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    fn stressed(&self) -> Option<Duration> {
        self.stress
            .filter(|(flag, _)| flag.load(Ordering::Relaxed))
            .map(|(_, t)| t)
    }
}

/// A TCP socket with the kernel's timeouts (SO_RCVTIMEO, SO_SNDTIMEO): the SMTP client's
/// transport. [`FdIo`] polls before every read and write, which a server needs (pipes from
/// inetd, the stop flag); a client waiting for one reply or writing one batch needs neither.
/// The socket's timeout is changed only to shorten it (by more than [`SLACK`]); when a read
/// or write meets the shorter one left from an earlier call before its own time is up, it
/// waits on for the rest. So on the hot path (msubmit --flush: two reads and two writes per
/// message, with timeouts of 2 to 10 minutes per phase) the calls are the reads and writes
/// alone.
pub struct TcpIo {
    tcp: std::net::TcpStream,
    timeout: Duration,
    deadline: Option<Instant>,
    /// The read and write timeouts the socket has now.
    rcv: Option<Duration>,
    snd: Option<Duration>,
}

/// How far a socket timeout may lie from the wanted one before it is set: a deadline moves
/// on with every read, and following it exactly would cost a system call on each.
const SLACK: Duration = Duration::from_millis(10);

impl TcpIo {
    /// A connected socket; every read and write waits at most `timeout`.
    pub fn new(tcp: std::net::TcpStream, timeout: Duration) -> TcpIo {
        TcpIo {
            tcp,
            timeout,
            deadline: None,
            rcv: None,
            snd: None,
        }
    }

    /// How long the next read may wait: the timeout, or less when the deadline is nearer.
    fn read_limit(&self) -> io::Result<Duration> {
        match self.deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(left.min(self.timeout)),
                _ => Err(io::ErrorKind::TimedOut.into()),
            },
            None => Ok(self.timeout),
        }
    }
}

/// Run `op` for at most `limit`, with the socket timeout `set` holds (`apply` changes it):
/// shortened first when it is longer than `limit`; when it is shorter and runs out, `op` is
/// tried again for the rest of `limit`.
fn within<T>(
    limit: Duration,
    set: &mut Option<Duration>,
    mut apply: impl FnMut(Duration) -> io::Result<()>,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    // A zero timeout would mean "block forever" to the socket API.
    let limit = limit.max(Duration::from_millis(1));
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if set.is_none_or(|now| now > left.saturating_add(SLACK)) {
            apply(left)?;
            *set = Some(left);
        }
        match op() {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && start.elapsed() + SLACK < limit =>
            {
                // The socket's shorter timeout ran out, ours has not: wait on, with exactly
                // the rest (set below, as it is now shorter than the socket's).
                *set = Some(Duration::MAX);
            }
            r => return r,
        }
    }
}

impl Read for TcpIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self.read_limit()?;
        let tcp = &self.tcp;
        within(
            limit,
            &mut self.rcv,
            |t| tcp.set_read_timeout(Some(t)),
            || (&*tcp).read(buf),
        )
    }
}

impl Write for TcpIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let tcp = &self.tcp;
        within(
            self.timeout,
            &mut self.snd,
            |t| tcp.set_write_timeout(Some(t)),
            || (&*tcp).write(buf),
        )
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Io for TcpIo {
    fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn has_input(&self) -> bool {
        self.tcp.has_input()
    }

    fn is_quiet(&self) -> bool {
        self.tcp.is_quiet()
    }
}

/// A transport in memory: the client's bytes in, our replies collected for inspection.
pub struct MemIo {
    input: io::Cursor<Vec<u8>>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl MemIo {
    /// A transport that reads `input`; the returned buffer fills with what is written.
    pub fn new(input: Vec<u8>) -> (MemIo, Arc<Mutex<Vec<u8>>>) {
        let output = Arc::new(Mutex::new(Vec::new()));
        (
            MemIo {
                input: io::Cursor::new(input),
                output: Arc::clone(&output),
            },
            output,
        )
    }
}

impl Read for MemIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for MemIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.output.lock() {
            Ok(mut o) => o.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Io for MemIo {
    fn has_input(&self) -> bool {
        self.input.position() < self.input.get_ref().len() as u64
    }
}

enum Stream {
    Plain(Box<dyn Io>),
    Tls(Box<StreamOwned<ServerConnection, Box<dyn Io>>>),
    Gone,
}

/// What [`Conn::read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line with its terminator (LF, possibly preceded by CR).
    Text(Vec<u8>),
    /// A line longer than the limit; it was read to its end and dropped.
    TooLong,
    /// The client closed the connection (a partial last line is dropped).
    Eof,
}

/// The buffer size: one read fills it; lines longer than the limits never accumulate.
const BUF: usize = 64 * 1024;

/// What reads line-based content through [`Conn::read_data`]: the protocol's decoder (SMTP's
/// DATA decoder; next the POP3 client's multi-line reader), which owns the grammar (dot
/// unstuffing, the end mark, line limits) while the connection owns buffering and deadlines.
pub trait LineSink {
    /// Take one line ending in LF; true when it ended the content.
    fn line(&mut self, line: &[u8]) -> bool;
    /// The longest line to gather before calling [`LineSink::overlong`].
    fn max_line(&self) -> usize;
    /// `n` octets of a line longer than the limit, without its end, were dropped.
    fn overlong(&mut self, n: usize);
}

/// One connection: buffered input, batched output.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    /// The time a command line (or a TLS handshake) may take in all, and DATA before
    /// [`MIN_DATA_RATE`] extends it; `None` until [`Conn::set_timeout`].
    timeout: Option<Duration>,
}

/// The slowest DATA or BDAT content we wait for, in octets a second past the first
/// `timeout` (Postfix's smtpd_min_data_rate). A per-read timeout alone lets a client keep a
/// session, and with `--max-sessions` the server, for ever by sending a byte now and then.
const MIN_DATA_RATE: u64 = 500;

impl Conn {
    /// Wrap a transport.
    pub fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            stream: Stream::Plain(io),
            buf: Vec::with_capacity(BUF),
            pos: 0,
            out: Vec::with_capacity(4096),
            timeout: None,
        }
    }

    /// True once STARTTLS (or implicit TLS) succeeded.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The TLS version and cipher suite, for the Received: header.
    pub fn tls_summary(&self) -> Option<String> {
        match &self.stream {
            Stream::Tls(s) => {
                let v = s.conn.protocol_version().map(|v| format!("{v:?}"));
                let c = s
                    .conn
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()));
                Some(format!(
                    "{} {}",
                    v.unwrap_or_default().replace('_', "."),
                    c.unwrap_or_default()
                ))
            }
            _ => None,
        }
    }

    /// Queue `bytes` for the client; they are sent before the next wait for input.
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Send everything queued.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = match &mut self.stream {
            Stream::Plain(s) => s.write_all(&self.out).and_then(|()| s.flush()),
            Stream::Tls(s) => s.write_all(&self.out).and_then(|()| s.flush()),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        };
        self.out.clear();
        r
    }

    /// Read more input (after sending the queued replies); 0 at end of input.
    fn fill(&mut self) -> io::Result<usize> {
        self.flush()?;
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        let room = BUF.saturating_sub(start).max(4096);
        self.buf.resize(start + room, 0);
        let r = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut self.buf[start..]),
            Stream::Tls(s) => s.read(&mut self.buf[start..]),
            Stream::Gone => Ok(0),
        };
        let n = match r {
            Ok(n) => n,
            // A peer that drops TLS without close_notify is just gone.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        Ok(n)
    }

    /// The buffered, unread input.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads end with `TimedOut` at `start` plus the timeout plus one second for every
    /// [`MIN_DATA_RATE`] octets of `allowance` (no deadline without a timeout).
    fn deadline(&mut self, start: Instant, allowance: u64) {
        let d = self
            .timeout
            .map(|t| start + t + Duration::from_secs(allowance / MIN_DATA_RATE));
        match &mut self.stream {
            Stream::Plain(s) => s.set_deadline(d),
            Stream::Tls(s) => s.sock.set_deadline(d),
            Stream::Gone => {}
        }
    }

    fn no_deadline(&mut self) {
        match &mut self.stream {
            Stream::Plain(s) => s.set_deadline(None),
            Stream::Tls(s) => s.sock.set_deadline(None),
            Stream::Gone => {}
        }
    }

    /// Read one line of at most `max` octets, terminator included, within the timeout as a
    /// whole (a line trickled in a byte at a time times out too).
    pub fn read_line(&mut self, max: usize) -> io::Result<Line> {
        // Replies wait for the next read (RFC 2920 batching), but not without bound: 64 KiB
        // of pipelined `EHLO x` would otherwise pile up 1.5 MB of replies per session.
        if self.out.len() >= BUF {
            self.flush()?;
        }
        self.deadline(Instant::now(), 0);
        let r = self.read_line_now(max);
        self.no_deadline();
        r
    }

    fn read_line_now(&mut self, max: usize) -> io::Result<Line> {
        let mut too_long = false;
        loop {
            let avail = &self.buf[self.pos..];
            if let Some(i) = memchr::memchr(b'\n', avail) {
                let line = avail[..=i].to_vec();
                self.pos += i + 1;
                return Ok(if too_long || line.len() > max {
                    Line::TooLong
                } else {
                    Line::Text(line)
                });
            }
            if avail.len() > max {
                // Drop what we have; keep reading to the end of the line.
                too_long = true;
                self.pos = self.buf.len();
            }
            if self.fill()? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Read dot-terminated content (SMTP DATA, RFC 5321 §4.1.1.4; a POP3 multi-line reply,
    /// RFC 1939 §3), feeding each line to `decoder` until it says the end was seen. Returns
    /// false when the peer closed the connection first.
    pub fn read_data(&mut self, decoder: &mut dyn LineSink) -> io::Result<bool> {
        let start = Instant::now();
        let r = self.read_data_now(decoder, start);
        self.no_deadline();
        r
    }

    fn read_data_now(&mut self, decoder: &mut dyn LineSink, start: Instant) -> io::Result<bool> {
        let mut got = 0u64;
        loop {
            let avail = &self.buf[self.pos..];
            match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    let done = decoder.line(&avail[..=i]);
                    self.pos += i + 1;
                    if done {
                        return Ok(true);
                    }
                }
                None => {
                    if avail.len() > decoder.max_line() {
                        // An overlong line: account for it and drop it piecewise.
                        decoder.overlong(avail.len());
                        self.pos = self.buf.len();
                    }
                    self.deadline(start, got);
                    match self.fill()? {
                        0 => return Ok(false),
                        n => got += n as u64,
                    }
                }
            }
        }
    }

    /// Read exactly `n` octets (a BDAT chunk), handing them to `take` as they come. Returns
    /// false when the client closed the connection first.
    pub fn read_exact_with(&mut self, n: u64, take: impl FnMut(&[u8])) -> io::Result<bool> {
        let r = self.read_exact_now(n, take);
        self.no_deadline();
        r
    }

    fn read_exact_now(&mut self, mut n: u64, mut take: impl FnMut(&[u8])) -> io::Result<bool> {
        let (start, mut got) = (Instant::now(), 0u64);
        while n > 0 {
            if self.pos == self.buf.len() {
                self.deadline(start, got);
                match self.fill()? {
                    0 => return Ok(false),
                    k => got += k as u64,
                }
            }
            let avail = &self.buf[self.pos..];
            let k = avail.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            take(&avail[..k]);
            self.pos += k;
            n -= k as u64;
        }
        Ok(true)
    }

    /// Set the timeout of the transport under us.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = Some(t);
        match &mut self.stream {
            Stream::Plain(s) => s.set_timeout(t),
            Stream::Tls(s) => s.sock.set_timeout(t),
            Stream::Gone => {}
        }
    }

    /// Let a server shutdown end the waits for input (between transactions), or not.
    pub fn set_interruptible(&mut self, on: bool) {
        match &mut self.stream {
            Stream::Plain(s) => s.set_interruptible(on),
            Stream::Tls(s) => s.sock.set_interruptible(on),
            Stream::Gone => {}
        }
    }

    /// True once the server is shutting down.
    pub fn stopping(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.stopping(),
            Stream::Tls(s) => s.sock.stopping(),
            Stream::Gone => false,
        }
    }

    /// The short read timeout while the server is under stress ([`Io::stressed`]).
    pub fn stressed(&self) -> Option<Duration> {
        match &self.stream {
            Stream::Plain(s) => s.stressed(),
            Stream::Tls(s) => s.sock.stressed(),
            Stream::Gone => None,
        }
    }

    /// Upgrade to TLS as the server (after our 220 to STARTTLS, or at once for implicit TLS).
    ///
    /// Anything the client sent before the handshake and we have not read is discarded
    /// (CVE-2011-0411); RFC 3207 §4.2 makes the client start over with EHLO anyway.
    pub fn start_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        self.flush()?;
        self.buf.clear();
        self.pos = 0;
        let Stream::Plain(io) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("TLS already active"));
        };
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut s = StreamOwned::new(conn, io);
        // The whole handshake within the timeout, as for a command line.
        s.sock
            .set_deadline(self.timeout.map(|t| Instant::now() + t));
        let r = (|| -> io::Result<()> {
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock)?;
            }
            Ok(())
        })();
        s.sock.set_deadline(None);
        r?;
        self.stream = Stream::Tls(Box::new(s));
        Ok(())
    }

    /// Close the TLS session politely (close_notify) and send what is queued.
    pub fn close(&mut self) {
        let _ = self.flush();
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Input from memory; remembers the largest single write.
    struct Rec {
        input: io::Cursor<Vec<u8>>,
        biggest: Arc<AtomicUsize>,
    }

    impl Read for Rec {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Rec {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.biggest.fetch_max(buf.len(), Ordering::SeqCst);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Io for Rec {}

    #[test]
    fn a_socket_waits_as_long_as_each_read_asks_and_no_longer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut io = TcpIo::new(tcp, Duration::from_millis(50));
        let mut buf = [0u8; 16];
        let timed = |io: &mut TcpIo| {
            let start = Instant::now();
            let e = io.read(&mut [0u8; 16]).unwrap_err();
            assert!(matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ));
            start.elapsed()
        };
        let short = timed(&mut io);
        assert!(short >= Duration::from_millis(40), "{short:?}");
        // A longer timeout after a shorter one: the socket's is left short, the read waits
        // on for the rest.
        io.set_timeout(Duration::from_millis(300));
        let long = timed(&mut io);
        assert!(long >= Duration::from_millis(290), "{long:?}");
        // A deadline nearer than the timeout ends the read at the deadline.
        io.set_deadline(Some(Instant::now() + Duration::from_millis(60)));
        let to_deadline = timed(&mut io);
        assert!(to_deadline < Duration::from_millis(250), "{to_deadline:?}");
        io.set_deadline(None);
        // Data is read as it comes.
        peer.write_all(b"220 ok\r\n").unwrap();
        let n = io.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"220 ok\r\n");
    }

    #[test]
    fn replies_to_a_long_pipeline_do_not_pile_up() {
        let biggest = Arc::new(AtomicUsize::new(0));
        let mut conn = Conn::new(Box::new(Rec {
            input: io::Cursor::new(b"EHLO x\r\n".repeat(50_000)),
            biggest: Arc::clone(&biggest),
        }));
        let mut lines = 0;
        while let Ok(Line::Text(_)) = conn.read_line(512) {
            conn.send(&[b'2'; 200]);
            lines += 1;
        }
        conn.flush().unwrap();
        assert_eq!(lines, 50_000);
        let most = biggest.load(Ordering::SeqCst);
        assert!(most <= BUF + 200, "{most} octets written at once");
    }
}
