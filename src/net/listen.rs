//! A listening server's accept loop (mreceive's and maccess's `--listen`): accept on one or
//! more sockets, one thread per session, bounded; the protocol is the caller's closure. Also
//! what the same servers need in stdio mode (the client's address, stderr that is the socket).
//!
//! What a server gets from it ([`serve`] with [`Limits`] and [`Refusals`]): a listen queue
//! as long as the system allows (a burst of a thousand connections is taken, none waits on a
//! dropped SYN); a thread per session with a set stack (`SESSION_STACK`); a [`Conn`] whose
//! reads and writes have the timeout, whose idle reads end on SIGTERM ([`Conn::stopping`])
//! and whose reads wait only the stress timeout while the sessions are near their limit
//! ([`Conn::stressed`], [`under_stress`]); per-client-address limits on sessions and
//! connections a minute with exempt networks (Postfix's anvil); and the caller's refusal
//! lines for connections past a limit, so a flood costs a reply, not a thread. The protocol
//! decides what stress means for its sessions (SMTP: a session with no message accepted for
//! the stress timeout gives its place up).
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
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
fn bind_all(listens: &[Listen], backlog: u32) -> Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for l in listens {
        let mut skipped = None;
        let before = listeners.len();
        for a in &l.addrs {
            let listener = bind(a, backlog).and_then(|s| s.set_nonblocking(true).map(|()| s));
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

/// How a listening server shares itself out. Every field is the server's to choose; none
/// knows the protocol (the refusals are the caller's bytes).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sessions at once, in all; a connection past it gets [`Refusals::busy`].
    pub max_sessions: usize,
    /// Sessions at once from one client address (Postfix's
    /// smtpd_client_connection_count_limit); 0: no limit.
    pub per_client: usize,
    /// Connections a minute from one client address (Postfix's
    /// smtpd_client_connection_rate_limit, its anvil_rate_time_unit being 60 s); 0: no limit.
    pub rate: usize,
    /// Client networks the two limits above do not apply to (none unless configured:
    /// loopback is not exempt by itself).
    pub exempt: Vec<Network>,
    /// The listen(2) backlog; `None`: the system's limit (/proc/sys/net/core/somaxconn).
    pub backlog: Option<u32>,
    /// The time any one read or write may take.
    pub timeout: Duration,
    /// The time a read may take while the server is under stress (see [`under_stress`]).
    pub stress_timeout: Duration,
}

/// What a refused connection is told, one whole line each, in the caller's protocol.
#[derive(Debug, Clone, Copy)]
pub struct Refusals {
    /// Every session is taken.
    pub busy: &'static [u8],
    /// This client address has its share of sessions, or connected too often this minute.
    pub client: &'static [u8],
}

/// A client network (`127.0.0.0/8`, `::1/128`, or an address alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Network, String> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{s}: not an address or ADDRESS/BITS"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Network { addr, bits })
    }
}

impl Network {
    /// True when `ip` is in this network (an IPv4-mapped IPv6 address as its IPv4 self).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = u32::from(self.bits);
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// True while the server's sessions are near their limit (90% or more taken): a session's
/// reads then wait [`Limits::stress_timeout`] instead of the full timeout, and the protocol
/// may end idle sessions sooner (Postfix's stress mode: smtpd_timeout 10 s under stress), so
/// clients that hold a session and send nothing cannot keep everyone else out.
pub fn under_stress() -> bool {
    STRESS.load(Ordering::Relaxed)
}

static STRESS: AtomicBool = AtomicBool::new(false);

/// Each session thread's stack, set rather than left to the platform (8 MiB of address space
/// for the main thread, 2 MiB for others): with a thousand sessions the figure is the
/// server's footprint. The session's deepest path (a TLS handshake, a delivery) needs far
/// less; what is touched is what counts in memory.
const SESSION_STACK: usize = 256 * 1024;

/// The listen(2) backlog when nothing says: the system's own limit, which the kernel applies
/// anyway (a larger backlog is cut to it). A connection the backlog has no room for is
/// dropped, and its client waits a SYN retransmission (1 s, then 3 s) to try again.
fn system_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}

/// Fewer malloc arenas than glibc's default (8 a core): with a thread per session, each new
/// thread may take an arena of its own and keep it at its high-water mark, so a long run
/// grows (bench/soak.sh: +25% resident in 10 minutes with the default, +1% with these)
/// although nothing leaks. Two a core; `MALLOC_ARENA_MAX` in the environment still rules.
fn few_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(2 * cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; called before the session
        // threads exist.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

/// The per-client bookkeeping (Postfix's anvil): sessions open and recent connections per
/// address. Bounded: an address leaves it when it has neither.
#[derive(Default)]
struct Anvil {
    clients: HashMap<IpAddr, Client>,
}

#[derive(Default)]
struct Client {
    open: usize,
    /// Connection times in the last minute, at most the rate limit of them.
    recent: VecDeque<Instant>,
}

const RATE_WINDOW: Duration = Duration::from_secs(60);

impl Anvil {
    /// Count a new connection from `ip`; false when it is over a limit (then not counted).
    fn admit(&mut self, ip: IpAddr, limits: &Limits, now: Instant) -> bool {
        let c = self.clients.entry(ip).or_default();
        while c
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
        {
            c.recent.pop_front();
        }
        if (limits.per_client > 0 && c.open >= limits.per_client)
            || (limits.rate > 0 && c.recent.len() >= limits.rate)
        {
            return false;
        }
        c.open += 1;
        if limits.rate > 0 {
            c.recent.push_back(now);
        }
        true
    }

    fn leave(&mut self, ip: IpAddr) {
        if let Some(c) = self.clients.get_mut(&ip) {
            c.open = c.open.saturating_sub(1);
        }
    }

    /// Forget addresses with no session and no connection in the window.
    fn sweep(&mut self, now: Instant) {
        self.clients.retain(|_, c| {
            c.open > 0
                || c.recent
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < RATE_WINDOW)
        });
    }
}

/// Serve on `listens` until SIGTERM; returns after the last session ended.
/// `session` runs on its own thread for each accepted connection, given the connection (its
/// reads and writes bounded by the timeout, interrupted by the stop signal, shortened under
/// stress) and the client's address; what it returns is reported on stderr unless it is a
/// client that vanished. A connection past a limit gets the refusal (a whole line) and is
/// closed: a flood costs a reply, not a thread.
pub fn serve<F>(listens: &[Listen], limits: &Limits, refuse: Refusals, session: F) -> Result<()>
where
    F: Fn(Conn, SocketAddr) -> Result<()> + Send + Sync + 'static,
{
    let backlog = limits.backlog.unwrap_or_else(system_backlog);
    let listeners = bind_all(listens, backlog)?;
    few_arenas();
    install_handlers();
    let session = Arc::new(session);
    let active = Arc::new(AtomicUsize::new(0));
    let anvil = Arc::new(Mutex::new(Anvil::default()));
    let limited = limits.per_client > 0 || limits.rate > 0;
    let mut swept = Instant::now();
    // Near the limit: 90% of the sessions taken (all of them for fewer than 10).
    let stress_at = (limits.max_sessions * 9).div_ceil(10).max(1);
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !STOP.load(Ordering::SeqCst) {
        STRESS.store(
            active.load(Ordering::SeqCst) >= stress_at,
            Ordering::Relaxed,
        );
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
        if swept.elapsed() >= Duration::from_secs(1) {
            swept = Instant::now();
            threads.retain(|t| !t.is_finished());
            if let Ok(mut a) = anvil.lock() {
                a.sweep(swept);
            }
        }
        if n <= 0 {
            continue; // timeout, or EINTR from our signal: look at the flag
        }
        for (l, p) in listeners.iter().zip(&fds) {
            if p.revents == 0 {
                continue;
            }
            // Take every connection waiting, not one per poll: a burst of a thousand
            // clients is in the backlog at once.
            loop {
                let (sock, addr) = match l.accept() {
                    Ok(x) => x,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        run::warn(format_args!("accept: {}", crate::exit::describe_io(&e)));
                        std::thread::sleep(Duration::from_millis(50));
                        break;
                    }
                };
                let _ = sock.set_nonblocking(false);
                let _ = sock.set_nodelay(true);
                let ip = addr.ip().to_canonical();
                let counted = limited && !limits.exempt.iter().any(|n| n.contains(ip));
                let refusal = if active.load(Ordering::SeqCst) >= limits.max_sessions {
                    Some(refuse.busy)
                } else if counted
                    && !anvil
                        .lock()
                        .map(|mut a| a.admit(ip, limits, Instant::now()))
                        .unwrap_or(true)
                {
                    Some(refuse.client)
                } else {
                    None
                };
                if let Some(line) = refusal {
                    let mut s = sock;
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = s.write_all(line);
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                if active.load(Ordering::SeqCst) >= stress_at {
                    STRESS.store(true, Ordering::Relaxed);
                }
                let slot = Slot {
                    active: Arc::clone(&active),
                    anvil: counted.then(|| (Arc::clone(&anvil), ip)),
                };
                let session = Arc::clone(&session);
                let (timeout, stress_timeout) = (limits.timeout, limits.stress_timeout);
                let spawned = std::thread::Builder::new()
                    .name("session".into())
                    .stack_size(SESSION_STACK)
                    .spawn(move || {
                        // Counted down even if the session panicked.
                        let _slot = slot;
                        let io = FdIo::socket(sock, timeout)
                            .stop_on(&STOP)
                            .stress_on(&STRESS, stress_timeout);
                        let conn = Conn::new(Box::new(io));
                        if let Err(e) = session(conn, addr)
                            && !is_quiet(&e)
                        {
                            run::warn(format_args!("{addr}: {e}"));
                        }
                    });
                match spawned {
                    Ok(t) => threads.push(t),
                    // The slot went with the closure: counted down already.
                    Err(e) => run::warn(format_args!("spawn session: {e}")),
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

/// Bind a listener with `backlog`. An IPv6 one is IPv6-only (IPV6_V6ONLY), so
/// `-l 0.0.0.0:25 -l [::]:25` works as written instead of failing with "address in use"
/// where the system's default is dual-stack sockets (Linux). (std's `TcpListener::bind`
/// would do for IPv4, but its backlog is a fixed 128.)
fn bind(addr: &SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let last = std::io::Error::last_os_error;
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last());
    }
    // SAFETY: fd is a fresh socket that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let mut opts = vec![(libc::SOL_SOCKET, libc::SO_REUSEADDR)];
    if family == libc::AF_INET6 {
        opts.push((libc::IPPROTO_IPV6, libc::IPV6_V6ONLY));
    }
    for (level, opt) in opts {
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
    let rc = match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: an all-zero sockaddr_in is valid; the fields are filled in below.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = v4.port().to_be();
            sa.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            // SAFETY: sa is a valid sockaddr_in and the length is its size.
            unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(v6) => {
            // SAFETY: an all-zero sockaddr_in6 is valid; the fields are filled in below.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = v6.port().to_be();
            sa.sin6_flowinfo = v6.flowinfo();
            sa.sin6_addr.s6_addr = v6.ip().octets();
            sa.sin6_scope_id = v6.scope_id();
            // SAFETY: sa is a valid sockaddr_in6 and the length is its size.
            unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: listen(2) on our bound socket.
    if rc != 0 || unsafe { libc::listen(fd, backlog) } != 0 {
        return Err(last());
    }
    Ok(TcpListener::from(owned))
}

/// One session's place in the count of active sessions, and in its client's.
struct Slot {
    active: Arc<AtomicUsize>,
    anvil: Option<(Arc<Mutex<Anvil>>, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        if let Some((anvil, ip)) = &self.anvil
            && let Ok(mut a) = anvil.lock()
        {
            a.leave(*ip);
        }
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
    fn networks_and_the_per_client_counts() {
        let net = |s: &str| s.parse::<Network>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net("127.0.0.0/8").contains(ip("127.9.9.9")));
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(!net("127.0.0.0/8").contains(ip("128.0.0.1")));
        assert!(net("::1").contains(ip("::1")) && !net("::1").contains(ip("::2")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(!net("10.0.0.1").contains(ip("10.0.0.2")));
        for bad in ["10.0.0.0/33", "x", "::/129", "10.0.0.0/"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
        let limits = Limits {
            max_sessions: 10,
            per_client: 2,
            rate: 3,
            exempt: Vec::new(),
            backlog: None,
            timeout: Duration::from_secs(1),
            stress_timeout: Duration::from_secs(1),
        };
        let mut anvil = Anvil::default();
        let (a, b, t0) = (ip("192.0.2.1"), ip("192.0.2.2"), Instant::now());
        assert!(anvil.admit(a, &limits, t0) && anvil.admit(a, &limits, t0));
        assert!(!anvil.admit(a, &limits, t0), "a third session at once");
        assert!(
            anvil.admit(b, &limits, t0),
            "another address has its own count"
        );
        anvil.leave(a);
        assert!(
            anvil.admit(a, &limits, t0),
            "the third connection this minute"
        );
        anvil.leave(a);
        assert!(!anvil.admit(a, &limits, t0), "a fourth this minute");
        let later = t0 + RATE_WINDOW;
        assert!(anvil.admit(a, &limits, later), "a minute later");
        anvil.leave(a);
        anvil.leave(a);
        anvil.leave(b);
        anvil.sweep(later + RATE_WINDOW);
        assert!(anvil.clients.is_empty(), "forgotten when idle");
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
        let bound = bind_all(&[by_name(vec![absent, lo], true)], 128).unwrap();
        assert_eq!(bound.len(), 1);
        // Every address of the name missing, or an address given as such: an error.
        let e = bind_all(&[by_name(vec![absent], true)], 128).unwrap_err();
        assert_eq!(e.code(), Code::OsErr);
        assert!(e.to_string().starts_with("listen on name:0: "), "{e}");
        assert!(bind_all(&[by_name(vec![absent, lo], false)], 128).is_err());
    }
}
