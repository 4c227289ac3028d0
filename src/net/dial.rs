//! How a client opens its TCP connection: from a chosen local address (msmtp's `source_ip`,
//! for hosts with several addresses whose mail must leave from one: an SPF record or a
//! provider's allow-list names it), to the server directly or through a SOCKS5 proxy
//! ([`crate::net::socks`]: msmtp's `proxy_host`, `proxy_port`) that resolves the server's
//! name itself.
//!
//! Nothing here resolves a name: the caller hands over the socket addresses of the server or
//! of the proxy, as the SMTP client takes them (`smtp::client`'s header says why).

use crate::exit::{Code, Error, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// A SOCKS5 proxy, its addresses resolved by the caller.
#[derive(Clone)]
pub struct Proxy {
    /// How messages name it: `host:port` as configured.
    pub name: String,
    /// Its socket addresses, tried in order.
    pub addrs: Vec<SocketAddr>,
    /// A user name and password for it (RFC 1929), if it wants one.
    pub login: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.login.as_ref().map(|(u, _)| u);
        write!(f, "Proxy {{ {}, user: {user:?} }}", self.name)
    }
}

/// A TCP connection to `addr` within `timeout`, from `source` when given (bound before the
/// connect, port chosen by the system).
pub fn tcp(addr: &SocketAddr, source: Option<IpAddr>, timeout: Duration) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect_timeout(addr, timeout);
    };
    let socket = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    socket.connect_timeout(&SockAddr::from(*addr), timeout)?;
    Ok(socket.into())
}

/// The first of `addrs` that takes a TCP connection from `source`, and which it was. `name`
/// is the host they are of, for messages. Addresses of the other family than `source` are
/// skipped (an IPv4 socket cannot reach an IPv6 address); none left is a configuration
/// error, as is a source the system cannot bind (not one of this host's addresses).
pub fn first(
    addrs: &[SocketAddr],
    name: &str,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr)> {
    let usable: Vec<&SocketAddr> = addrs
        .iter()
        .filter(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .collect();
    if let (Some(s), true, false) = (source, usable.is_empty(), addrs.is_empty()) {
        return Err(Error::new(
            Code::Config,
            format!("source_ip {s}"),
            format!("{name} has no address of its family"),
        ));
    }
    let mut last = None;
    for addr in usable {
        match tcp(addr, source, timeout) {
            Ok(tcp) => return Ok((tcp, *addr)),
            // Bound to an address this host does not have: every address will say so.
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                let s = source.map_or(String::new(), |s| s.to_string());
                return Err(Error::new(
                    Code::Config,
                    format!("source_ip {s}"),
                    format!(
                        "{}: not an address of this host?",
                        crate::exit::describe_io(&e)
                    ),
                ));
            }
            Err(e) => last = Some((e, addr.port())),
        }
    }
    match last {
        Some((e, port)) => Err(net_error(&format!("connect to {name}:{port}"), e)),
        None => Err(Error::new(
            Code::TempFail,
            format!("resolve {name}"),
            "no addresses",
        )),
    }
}

/// A connection to `host:port` through `proxy` (the proxy resolves `host`), from `source`
/// when given; each step within `timeout`.
pub fn via(
    proxy: &Proxy,
    host: &str,
    port: u16,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream> {
    let (mut tcp, _) =
        first(&proxy.addrs, &proxy.name, source, timeout).map_err(|e| e.context("proxy"))?;
    let timeout = Some(timeout.max(Duration::from_millis(1)));
    tcp.set_read_timeout(timeout)
        .and_then(|()| tcp.set_write_timeout(timeout))
        .map_err(|e| net_error(&format!("proxy {}", proxy.name), e))?;
    let login = proxy.login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    super::socks::handshake(&mut tcp, &proxy.name, host, port, login)?;
    tcp.set_read_timeout(None)
        .and_then(|()| tcp.set_write_timeout(None))
        .map_err(|e| net_error(&format!("proxy {}", proxy.name), e))?;
    Ok(tcp)
}

/// Network trouble is temporary (75).
fn net_error(what: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Error::new(Code::TempFail, what, "timed out")
        }
        _ => Error::io(Code::TempFail, what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn binds_the_source_address_before_connecting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.2".parse().unwrap();
        let t = Duration::from_secs(5);
        let (tcp, to) = first(&[addr], "h", Some(source), t).unwrap();
        assert_eq!(to, addr);
        assert_eq!(tcp.local_addr().unwrap().ip(), source);
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);
        // Without one, the system's choice.
        let (tcp, _) = first(&[addr], "h", None, t).unwrap();
        assert_eq!(tcp.local_addr().unwrap().ip(), addr.ip());
    }

    #[test]
    fn a_source_the_host_lacks_or_of_the_wrong_family_is_a_configuration_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = Duration::from_secs(5);
        // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): no host has it.
        let e = first(&[addr], "h", Some("192.0.2.7".parse().unwrap()), t).unwrap_err();
        assert_eq!(e.code(), Code::Config, "{e}");
        assert!(e.to_string().starts_with("source_ip 192.0.2.7: "), "{e}");
        let e = first(&[addr], "h", Some("::1".parse().unwrap()), t).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                Code::Config,
                "source_ip ::1: h has no address of its family"
            )
        );
    }
}
