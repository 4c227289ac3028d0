//! A listening server's accept loop (mreceive's and maccess's `--listen`): accept on one or
//! more sockets, one thread per session, bounded; the protocol is the caller's closure. Also
//! what the same servers need in stdio mode (the client's address, stderr that is the socket).
//!
//! A `--listen` argument is an address (`127.0.0.1:25`, `[::1]:25`) or a host name with a
//! port (`localhost:25`), which stands for every address the name resolves to, each bound
//! as if given on its own: a name is how inetd, Postfix's inet_interfaces and most daemons
//! let an administrator say "the loopback interface".
//!
//! A session past `--max-sessions` gets the caller's busy line (SMTP's `421 4.3.2`, RFC 5321
//! §3.8) and is closed, so a flood costs a reply, not a thread. SIGTERM, SIGINT or SIGHUP stops accepting at once; sessions in the
//! middle of a transaction run to its end and get `421 4.3.2` to the next command, idle
//! ones (between transactions) get it at once, then mreceive exits 0. The
//! signal handler only sets a flag; the accept loop polls the listeners with a short timeout
//! and looks at it, which needs no self-pipe and no extra crate.

use crate::exit::{Code, Error, Result};
use crate::net::conn::{Conn, FdIo};
use crate::run;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_handlers() {
    // SIGHUP too: there is no configuration file to reload (every setting is a flag), and a
    // hang-up (a closed terminal, a supervisor's restart) must not cut a transaction in half.
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// One `--listen` argument, resolved: the addresses to bind.
#[derive(Debug)]
pub struct Listen {
    /// The argument as given, for diagnostics.
    spec: String,
    /// Where to listen, each address once.
    addrs: Vec<SocketAddr>,
    /// A host name, not an address: one of its addresses that this host cannot bind (an
    /// IPv6 `localhost` where IPv6 is off) is skipped with a warning, not fatal.
    by_name: bool,
}

/// Resolve the `--listen` arguments (see the module comment). A malformed one is a usage
/// error (64); a name that does not resolve is 68 (EX_NOHOST).
pub fn resolve(specs: &[String]) -> Result<Vec<Listen>> {
    specs.iter().map(|s| resolve_one(s)).collect()
}

fn resolve_one(spec: &str) -> Result<Listen> {
    if let Ok(a) = spec.parse::<SocketAddr>() {
        return Ok(Listen {
            spec: spec.to_string(),
            addrs: vec![a],
            by_name: false,
        });
    }
    let what = || format!("--listen {spec}");
    let usage = |why: &str| Error::new(Code::Usage, what(), why);
    let Some((host, port)) = spec.rsplit_once(':') else {
        return Err(usage("expected HOST:PORT"));
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(usage("expected a port number after the last colon"));
    };
    if host.contains(':') || host.starts_with('[') {
        return Err(usage("an IPv6 address goes in brackets: [ADDRESS]:PORT"));
    }
    if host.is_empty() {
        return Err(usage("no host (0.0.0.0 or [::] listens on every address)"));
    }
    let found = (host, port).to_socket_addrs().map_err(|e| {
        let e = e.to_string();
        let why = e
            .strip_prefix("failed to lookup address information: ")
            .unwrap_or(&e)
            .to_lowercase();
        Error::new(
            Code::NoHost,
            what(),
            format!("cannot resolve {host}: {why}"),
        )
    })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(Error::new(
            Code::NoHost,
            what(),
            format!("{host} has no address"),
        ));
    }
    Ok(Listen {
        spec: spec.to_string(),
        addrs,
        by_name: true,
    })
}

/// Bind every address of every argument.
fn bind_all(listens: &[Listen]) -> Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for l in listens {
        let mut skipped = None;
        let before = listeners.len();
        for a in &l.addrs {
            let listener = bind(a).and_then(|s| s.set_nonblocking(true).map(|()| s));
            match listener {
                Ok(s) => listeners.push(s),
                Err(e) if l.by_name && not_here(&e) => {
                    run::warn(format_args!(
                        "listen on {a} (for {}): {}; skipped",
                        l.spec,
                        crate::exit::describe_io(&e)
                    ));
                    skipped = Some(e);
                }
                Err(e) => return Err(Error::io(Code::OsErr, format!("listen on {a}"), e)),
            }
        }
        if let (true, Some(e)) = (listeners.len() == before, skipped) {
            return Err(Error::io(Code::OsErr, format!("listen on {}", l.spec), e));
        }
    }
    Ok(listeners)
}

/// An address this host cannot listen on at all (as opposed to one in use or forbidden).
fn not_here(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)
    )
}

/// Serve on `listens` until SIGTERM; returns after the last session ended.
/// `session` runs on its own thread for each accepted connection, given the connection (its
/// reads and writes bounded by `timeout`, interrupted by the stop signal) and the client's
/// address; what it returns is reported on stderr unless it is a client that vanished.
/// A connection past `max_sessions` gets `busy` (a whole line) and is closed.
pub fn serve<F>(
    listens: &[Listen],
    max_sessions: usize,
    timeout: Duration,
    busy: &'static [u8],
    session: F,
) -> Result<()>
where
    F: Fn(Conn, SocketAddr) -> Result<()> + Send + Sync + 'static,
{
    let listeners = bind_all(listens)?;
    install_handlers();
    let session = Arc::new(session);
    let active = Arc::new(AtomicUsize::new(0));
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !STOP.load(Ordering::SeqCst) {
        let mut fds: Vec<libc::pollfd> = listeners
            .iter()
            .map(|l| libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of fds.len() pollfd structures.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
        if n <= 0 {
            continue; // timeout, or EINTR from our signal: look at the flag
        }
        threads.retain(|t| !t.is_finished());
        for (l, p) in listeners.iter().zip(&fds) {
            if p.revents == 0 {
                continue;
            }
            let (sock, addr) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    run::warn(format_args!("accept: {}", crate::exit::describe_io(&e)));
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let _ = sock.set_nonblocking(false);
            let _ = sock.set_nodelay(true);
            if active.load(Ordering::SeqCst) >= max_sessions {
                let mut s = sock;
                let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(busy);
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (session, mine) = (Arc::clone(&session), Arc::clone(&active));
            let spawned = std::thread::Builder::new()
                .name("session".into())
                .spawn(move || {
                    // Counted down even if the session panicked.
                    let _slot = Slot(mine);
                    let io = FdIo::socket(sock, timeout).stop_on(&STOP);
                    let conn = Conn::new(Box::new(io));
                    if let Err(e) = session(conn, addr)
                        && !is_quiet(&e)
                    {
                        run::warn(format_args!("{addr}: {e}"));
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    active.fetch_sub(1, Ordering::SeqCst);
                    run::warn(format_args!("spawn session: {e}"));
                }
            }
        }
    }
    drop(listeners);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Bind a listener. An IPv6 one is IPv6-only (IPV6_V6ONLY), so `-l 0.0.0.0:25 -l [::]:25`
/// works as written instead of failing with "address in use" where the system's default is
/// dual-stack sockets (Linux).
fn bind(addr: &SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let SocketAddr::V6(v6) = addr else {
        return TcpListener::bind(addr);
    };
    let last = std::io::Error::last_os_error;
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last());
    }
    // SAFETY: fd is a fresh socket that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for (level, opt) in [
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    ] {
        // SAFETY: `one` is a c_int that outlives the call; the length says so.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last());
        }
    }
    // SAFETY: an all-zero sockaddr_in6 is valid; the fields are filled in below.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = v6.port().to_be();
    sa.sin6_flowinfo = v6.flowinfo();
    sa.sin6_addr.s6_addr = v6.ip().octets();
    sa.sin6_scope_id = v6.scope_id();
    // SAFETY: sa is a valid sockaddr_in6 and the length is its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    // SAFETY: listen(2) on our bound socket.
    if rc != 0 || unsafe { libc::listen(fd, 128) } != 0 {
        return Err(last());
    }
    Ok(TcpListener::from(owned))
}

/// One session's place in the count of active sessions.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Clients that vanish are routine, not worth a line on stderr.
fn is_quiet(e: &crate::Error) -> bool {
    let why = e.why();
    // (An end of file here is a client gone during an implicit-TLS handshake: port scanners.)
    why.contains("reset by peer") || why.contains("broken pipe") || why.contains("end of file")
}

// Stdio mode (inetd, tcpserver, systemd Accept=yes), the other way a server gets its
// connection: shared by mreceive and maccess.

/// The client's address in stdio mode: tcpserver's TCPREMOTEIP, else the socket on stdin.
pub fn stdio_peer() -> Option<std::net::IpAddr> {
    if let Some(ip) = std::env::var("TCPREMOTEIP")
        .ok()
        .and_then(|v| v.parse::<std::net::IpAddr>().ok())
    {
        return Some(ip);
    }
    use std::os::fd::FromRawFd;
    // SAFETY: fd 0 stays open for the whole process; ManuallyDrop never closes it.
    let s = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(0) });
    s.peer_addr().ok().map(|a| a.ip().to_canonical())
}

/// inetd hands the connection over as stdin, stdout *and* stderr: a warning or a log line
/// would then be written into the protocol's dialogue. True when stderr is the socket on stdin.
pub fn stderr_is_the_socket() -> bool {
    let stat = |fd| {
        // SAFETY: an all-zero stat is a valid out buffer for fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: st is a valid, writable stat for the duration of the call.
        let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
        (ok && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK).then_some((st.st_dev, st.st_ino))
    };
    matches!((stat(0), stat(2)), (Some(a), Some(b)) if a == b)
}

/// Send stderr to /dev/null (it is the client's socket: see [`stderr_is_the_socket`]).
pub fn quiet_stderr() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: both descriptors are open; dup2 atomically replaces fd 2.
        unsafe { libc::dup2(null.as_raw_fd(), 2) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_arguments_are_addresses_or_names() {
        let l = resolve_one("127.0.0.1:2525").unwrap();
        assert_eq!(l.addrs, ["127.0.0.1:2525".parse::<SocketAddr>().unwrap()]);
        assert!(!l.by_name);
        assert!(!resolve_one("[::1]:25").unwrap().by_name);
        let l = resolve_one("localhost:2525").unwrap();
        assert!(l.by_name && !l.addrs.is_empty());
        assert!(
            l.addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 2525)
        );
        for bad in [
            "localhost",
            "localhost:x",
            "::1:25",
            "[::1",
            ":25",
            "[x]:25",
        ] {
            let e = resolve_one(bad).unwrap_err();
            assert_eq!(e.code(), Code::Usage, "{bad}: {e}");
        }
    }

    #[test]
    fn an_address_of_a_name_that_is_not_on_this_host_is_skipped() {
        // 192.0.2.1 (TEST-NET-1, RFC 5737) is on no interface here: bind(2) refuses it
        // with EADDRNOTAVAIL, and nothing is sent anywhere.
        let absent: SocketAddr = "192.0.2.1:0".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let by_name = |addrs: Vec<SocketAddr>, by_name| Listen {
            spec: "name:0".into(),
            addrs,
            by_name,
        };
        let bound = bind_all(&[by_name(vec![absent, lo], true)]).unwrap();
        assert_eq!(bound.len(), 1);
        // Every address of the name missing, or an address given as such: an error.
        let e = bind_all(&[by_name(vec![absent], true)]).unwrap_err();
        assert_eq!(e.code(), Code::OsErr);
        assert!(e.to_string().starts_with("listen on name:0: "), "{e}");
        assert!(bind_all(&[by_name(vec![absent, lo], false)]).is_err());
    }
}
