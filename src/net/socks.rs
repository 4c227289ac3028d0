//! A SOCKS5 client (RFC 1928): ask a proxy to connect us to a host and port, for msmtp's
//! `proxy_host` and `proxy_port` (Tor's SOCKS port, an SSH `-D` tunnel, a corporate
//! proxy). Only CONNECT; no authentication, or a user name and password (RFC 1929) when
//! one is configured.
//!
//! The server's name goes to the proxy as a name (ATYP DOMAINNAME, RFC 1928 §5), never
//! resolved here: through Tor, a local lookup would tell the local resolver where the mail
//! goes, and the name may resolve only on the proxy's side. IP literals go as addresses.
//!
//! The handshake runs over any `Read + Write` ([`handshake`]), so the tests drive it in
//! memory byte by byte; [`crate::net::dial`] opens the TCP connection to the proxy. Exit
//! codes: a proxy that cannot reach the server, or breaks off, is temporary (75); one that
//! refuses our login or wants one we do not have is our configuration (78); one that refuses
//! by its rules or does not speak SOCKS5 is 69, until someone changes it.

use crate::exit::{Code, Error, Result};
use std::io::{self, Read, Write};
use std::net::IpAddr;

/// RFC 1928 §3: the protocol version.
const VERSION: u8 = 5;
/// RFC 1928 §3: authentication methods.
const NO_AUTH: u8 = 0x00;
const USER_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xFF;
/// RFC 1928 §4: CONNECT.
const CONNECT: u8 = 0x01;
/// RFC 1928 §5: address types.
const IPV4: u8 = 0x01;
const DOMAIN: u8 = 0x03;
const IPV6: u8 = 0x04;

/// Ask the proxy at the other end of `s` (`proxy` names it in messages) to connect to
/// `host:port`, logging in with `login` when the proxy asks for a user name and password.
/// On success the stream carries the connection to the server from its first byte.
pub fn handshake<S: Read + Write>(
    s: &mut S,
    proxy: &str,
    host: &str,
    port: u16,
    login: Option<(&str, &str)>,
) -> Result<()> {
    let what = || format!("proxy {proxy}");
    let io = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Error::new(Code::TempFail, what(), "timed out")
        }
        io::ErrorKind::UnexpectedEof => {
            Error::new(Code::TempFail, what(), "connection closed by the proxy")
        }
        _ => Error::io(Code::TempFail, what(), e),
    };
    // RFC 1928 §3: the methods we can do; a login only when we have one to give.
    let greeting: &[u8] = match login {
        Some(_) => &[VERSION, 2, NO_AUTH, USER_PASSWORD],
        None => &[VERSION, 1, NO_AUTH],
    };
    s.write_all(greeting).and_then(|()| s.flush()).map_err(io)?;
    let mut chosen = [0u8; 2];
    s.read_exact(&mut chosen).map_err(io)?;
    if chosen[0] != VERSION {
        return Err(Error::new(
            Code::Unavailable,
            what(),
            "does not speak SOCKS5 (is proxy_port a SOCKS port?)",
        ));
    }
    match (chosen[1], login) {
        (NO_AUTH, _) => {}
        (USER_PASSWORD, Some((user, password))) => log_in(s, user, password, &what, io)?,
        (NO_ACCEPTABLE, None) => {
            return Err(Error::new(
                Code::Config,
                what(),
                "wants a login: set proxy_user and proxy_password",
            ));
        }
        (NO_ACCEPTABLE, Some(_)) => {
            return Err(Error::new(
                Code::Unavailable,
                what(),
                "accepts neither no authentication nor a user name and password (GSSAPI only?)",
            ));
        }
        (other, _) => {
            return Err(Error::new(
                Code::Unavailable,
                what(),
                format!("chose authentication method {other:#04x}, which we did not offer"),
            ));
        }
    }
    s.write_all(&request(host, port, &what)?)
        .and_then(|()| s.flush())
        .map_err(io)?;
    // RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT.
    let mut head = [0u8; 4];
    s.read_exact(&mut head).map_err(io)?;
    if head[0] != VERSION {
        return Err(Error::new(
            Code::Unavailable,
            what(),
            "broke the SOCKS5 protocol",
        ));
    }
    if head[1] != 0 {
        let (code, why) = refusal(head[1]);
        return Err(Error::new(
            code,
            what(),
            format!("cannot connect to {host}:{port}: {why}"),
        ));
    }
    // The address the proxy connected from: read past it, it tells us nothing we need.
    let len = match head[3] {
        IPV4 => 4,
        IPV6 => 16,
        DOMAIN => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).map_err(io)?;
            usize::from(n[0])
        }
        _ => {
            return Err(Error::new(
                Code::Unavailable,
                what(),
                "broke the SOCKS5 protocol",
            ));
        }
    };
    let mut rest = vec![0u8; len + 2];
    s.read_exact(&mut rest).map_err(io)
}

/// RFC 1929 §2: the user name and password, and the proxy's verdict.
fn log_in<S: Read + Write>(
    s: &mut S,
    user: &str,
    password: &str,
    what: &dyn Fn() -> String,
    io: impl Fn(io::Error) -> Error,
) -> Result<()> {
    let (u, p) = (user.as_bytes(), password.as_bytes());
    let (Ok(ulen), Ok(plen)) = (u8::try_from(u.len()), u8::try_from(p.len())) else {
        return Err(Error::new(
            Code::Config,
            what(),
            "proxy_user and proxy_password must be 1 to 255 bytes (RFC 1929)",
        ));
    };
    let mut msg = vec![1, ulen];
    msg.extend_from_slice(u);
    msg.push(plen);
    msg.extend_from_slice(p);
    s.write_all(&msg).and_then(|()| s.flush()).map_err(&io)?;
    let mut verdict = [0u8; 2];
    s.read_exact(&mut verdict).map_err(&io)?;
    match verdict[1] {
        0 => Ok(()),
        _ => Err(Error::new(
            Code::Config,
            what(),
            "refused the user name and password (proxy_user, proxy_password)",
        )),
    }
}

/// RFC 1928 §4: the CONNECT request for `host:port`, a name as a name.
fn request(host: &str, port: u16, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    let mut req = vec![VERSION, CONNECT, 0];
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(a)) => {
            req.push(IPV4);
            req.extend_from_slice(&a.octets());
        }
        Ok(IpAddr::V6(a)) => {
            req.push(IPV6);
            req.extend_from_slice(&a.octets());
        }
        Err(_) => {
            let len = u8::try_from(host.len())
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::new(
                        Code::Config,
                        what(),
                        format!("cannot ask for {host:?}: a name must be 1 to 255 bytes"),
                    )
                })?;
            req.push(DOMAIN);
            req.push(len);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    Ok(req)
}

/// RFC 1928 §6: a reply code as an exit code and words.
fn refusal(rep: u8) -> (Code, String) {
    match rep {
        0x01 => (Code::TempFail, "general SOCKS server failure".into()),
        0x02 => (Code::Unavailable, "not allowed by the proxy's rules".into()),
        0x03 => (Code::TempFail, "network unreachable".into()),
        // Also how proxies say the name did not resolve.
        0x04 => (
            Code::TempFail,
            "host unreachable (or its name did not resolve)".into(),
        ),
        0x05 => (Code::TempFail, "connection refused".into()),
        0x06 => (Code::TempFail, "TTL expired".into()),
        0x07 => (
            Code::Unavailable,
            "the proxy does not support CONNECT".into(),
        ),
        0x08 => (
            Code::Unavailable,
            "the proxy does not support this address type".into(),
        ),
        other => (Code::TempFail, format!("reply code {other:#04x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A proxy in memory: what it will say, and what it was told.
    struct Peer {
        says: Cursor<Vec<u8>>,
        told: Vec<u8>,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.says.read(buf)
        }
    }

    impl Write for Peer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.told.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn talk(says: &[u8], host: &str, login: Option<(&str, &str)>) -> (Result<()>, Vec<u8>) {
        let mut p = Peer {
            says: Cursor::new(says.to_vec()),
            told: Vec::new(),
        };
        let r = handshake(&mut p, "p:1080", host, 587, login);
        (r, p.told)
    }

    const OK: &[u8] = &[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90];

    #[test]
    fn connects_by_name_so_the_proxy_resolves_it() {
        let says = [&[5, 0][..], OK].concat();
        let (r, told) = talk(&says, "smtp.example.org", None);
        r.unwrap();
        let mut want = vec![5, 1, 0, 5, 1, 0, 3, 16];
        want.extend_from_slice(b"smtp.example.org");
        want.extend_from_slice(&[2, 0x4b]);
        assert_eq!(told, want);
        // IP literals go as addresses.
        let (r, told) = talk(&says, "192.0.2.1", None);
        r.unwrap();
        assert_eq!(&told[3..], [5, 1, 0, 1, 192, 0, 2, 1, 2, 0x4b]);
        let (r, told) = talk(&says, "[::1]", None);
        r.unwrap();
        assert_eq!(told[6], IPV6);
        assert_eq!(told.len(), 3 + 4 + 16 + 2);
        // A reply bound to a name is read past whole.
        let says = [&[5, 0, 5, 0, 0, 3, 2][..], b"ab", &[0, 25]].concat();
        talk(&says, "h", None).0.unwrap();
    }

    #[test]
    fn logs_in_when_the_proxy_asks() {
        let says = [&[5, 2, 1, 0][..], OK].concat();
        let (r, told) = talk(&says, "h", Some(("me", "pw")));
        r.unwrap();
        assert_eq!(&told[..4], [5, 2, 0, 2], "both methods offered");
        assert_eq!(&told[4..11], [1, 2, b'm', b'e', 2, b'p', b'w']);
        // Refused, and asked for without one to give: our settings, 78.
        let (r, _) = talk(&[5, 2, 1, 1], "h", Some(("me", "pw")));
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::Config);
        assert!(
            e.to_string().contains("refused the user name and password"),
            "{e}"
        );
        let (r, told) = talk(&[5, 0xFF], "h", None);
        assert_eq!(told, [5, 1, 0], "no login offered without one");
        let e = r.unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                Code::Config,
                "proxy p:1080: wants a login: set proxy_user and proxy_password"
            )
        );
        let long = "x".repeat(256);
        let (r, _) = talk(&[5, 2], "h", Some((&long, "pw")));
        assert_eq!(r.unwrap_err().code(), Code::Config);
    }

    #[test]
    fn refusals_say_why_and_whether_to_retry() {
        for (rep, code, words) in [
            (1, Code::TempFail, "general SOCKS server failure"),
            (2, Code::Unavailable, "not allowed"),
            (4, Code::TempFail, "host unreachable"),
            (5, Code::TempFail, "connection refused"),
            (7, Code::Unavailable, "CONNECT"),
        ] {
            let (r, _) = talk(&[5, 0, 5, rep, 0, 1, 0, 0, 0, 0, 0, 0], "h", None);
            let e = r.unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            assert!(
                e.to_string()
                    .starts_with("proxy p:1080: cannot connect to h:587: "),
                "{e}"
            );
            assert!(e.to_string().contains(words), "{e}");
        }
        // Not SOCKS5 at all (an HTTP proxy, an SMTP server), or gone.
        let (r, _) = talk(b"HTTP/1.1 400", "h", None);
        assert_eq!(r.unwrap_err().code(), Code::Unavailable);
        let (r, _) = talk(&[5], "h", None);
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::TempFail);
        assert!(e.to_string().contains("closed by the proxy"), "{e}");
        let (r, _) = talk(&[5, 0], &"n".repeat(256), None);
        assert_eq!(r.unwrap_err().code(), Code::Config);
    }
}
