//! A client's server name to addresses, within a deadline: msubmit's `--host`, an account's
//! server, a SOCKS proxy.
//!
//! These go through the system's resolver (getaddrinfo), not [`super::Resolver`]: a
//! submission server is often a name in /etc/hosts or on the LAN (nsswitch, mDNS), which
//! mail routing (MX, [`super::Lookup`]) rightly never looks at. But getaddrinfo has no
//! timeout of its own that a caller can set (glibc's is 5 s per server and try, times the
//! servers and tries of resolv.conf, and NSS modules may wait longer), so the question is
//! asked on a thread of its own and given up on at the deadline: the thread finishes on
//! its own, unwaited for, and the caller fails temporarily (75) instead of hanging.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

/// The addresses of `host` (a name, or an address with or without brackets) on `port`,
/// within `deadline`. An address needs no lookup.
pub fn resolve_host(host: &str, port: u16, deadline: Duration) -> io::Result<Vec<SocketAddr>> {
    let name = host.to_string();
    resolve_with(host, port, deadline, move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).map(Iterator::collect)
    })
}

/// [`resolve_host`] with the lookup given (tests make it slow).
fn resolve_with(
    host: &str,
    port: u16,
    deadline: Duration,
    lookup: impl FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            // The receiver may be gone (the deadline passed): nobody to tell then.
            let _ = tx.send(lookup());
        })?;
    match rx.recv_timeout(deadline) {
        Ok(answer) => answer,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} seconds", deadline.as_secs_f32()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_lookup_that_hangs_is_given_up_at_the_deadline() {
        let t0 = Instant::now();
        let e = resolve_with("slow.test", 25, Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(Vec::new())
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let quick: SocketAddr = "192.0.2.7:25".parse().unwrap();
        let got = resolve_with("quick.test", 25, Duration::from_secs(5), move || {
            Ok(vec![quick])
        });
        assert_eq!(got.unwrap(), [quick]);
    }

    #[test]
    fn addresses_need_no_lookup() {
        let never = || -> io::Result<Vec<SocketAddr>> { panic!("looked up") };
        for (host, want) in [("127.0.0.1", "127.0.0.1:587"), ("[::1]", "[::1]:587")] {
            let got = resolve_with(host, 587, Duration::from_secs(1), never).unwrap();
            assert_eq!(got, [want.parse::<SocketAddr>().unwrap()]);
        }
        let local = resolve_host("localhost", 587, Duration::from_secs(10)).unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 587)
        );
    }
}
