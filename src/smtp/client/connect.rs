//! The client's connection: to the first of the caller's socket addresses that answers,
//! with implicit TLS or STARTTLS as the [`Mode`](crate::net::tls::Mode) says, and the one
//! place that opens a second connection: clear text after a failed handshake at `may`,
//! and the probe that tells a silent server on an implicit-TLS port from a slow one.
//!
//! Addresses come resolved: msubmit resolves `host:port`, mrelay the MX hosts (one call per
//! host, each with the name its certificate must bear). Only a failed TCP connect moves on to
//! the next address; once a server answered, its verdict (a refusal, a bad certificate)
//! stands, so a queue sees the server's reply and not whatever a second address says.
//! Through a SOCKS5 proxy ([`Session::connect_via`]) the server is named, not resolved: the
//! proxy resolves it. Either way [`crate::net::dial`] opens the socket, from `opts.source`
//! when set.

use super::{Options, Session, SetupError, Stream, implicit, net_error, tls_config};
use crate::exit::{Code, Error, Result};
use crate::net::conn::TcpIo;
use crate::net::dial::{self, Proxy};
use crate::net::tls::{self, Level, Start};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

impl Session {
    /// Connect to the first of `addrs` that accepts a TCP connection, then greet, say EHLO,
    /// start TLS and authenticate as `opts` says (see [`Session::over`]). `name` is the
    /// server's name: in messages (`name:port`) and for the certificate, unless
    /// `opts.trust.server_name` names another.
    ///
    /// At [`Level::May`], a failed TLS handshake (or a server that breaks off right after
    /// it) is answered at once with a new connection to the same address in clear text, not
    /// at the next attempt. Postfix's may level defers instead and falls back to clear text
    /// on the second delivery attempt, after trying the other MX hosts (V. Dukhovni on the
    /// IETF list, Feb 2016; TLS_README "Opportunistic TLS": "retries the transaction with TLS
    /// disabled"). Retrying at once, because: a handshake fails for the same reason every
    /// time (no version or cipher suite in common, a broken TLS stack), so the next attempt
    /// meets it again and only the delay differs (N. Freed's objection in the same thread:
    /// a retry interval is minutes to an hour); `may` already lets an active attacker strip
    /// STARTTLS from the EHLO reply, so one who breaks the handshake instead gains nothing;
    /// and the queue keeps no TLS state per host between attempts. What it costs: a host with
    /// broken TLS gets mail in clear text even when another MX of the domain would have taken
    /// it over TLS; mrelay can order its MX hosts, the client cannot see them.
    pub fn connect(addrs: &[SocketAddr], name: &str, opts: &Options) -> Result<Session> {
        Session::dial(Route::Direct(addrs), name, opts)
    }

    /// [`Session::connect`] to `name:port` through a SOCKS5 proxy, which resolves `name`
    /// (msmtp's `proxy_host`; [`crate::net::socks`]).
    pub fn connect_via(proxy: &Proxy, name: &str, port: u16, opts: &Options) -> Result<Session> {
        Session::dial(Route::Proxy(proxy, port), name, opts)
    }

    fn dial(route: Route<'_>, name: &str, opts: &Options) -> Result<Session> {
        let config = tls_config(opts)?;
        let (tcp, port, addr) = route.open(name, opts)?;
        let peer = format!("{name}:{port}");
        let implicit_tls = opts.tls.start == Start::Implicit && opts.tls.level != Level::None;
        let stream = match &config {
            Some(cfg) if implicit_tls => {
                Stream::Tls(Box::new(implicit(transport(tcp, opts)?, cfg, name, opts)?))
            }
            _ => {
                // Through a proxy, the probe's second connection would reach the proxy.
                if let Route::Direct(_) = route {
                    await_greeting(&tcp, &peer, opts)?;
                }
                Stream::Plain(transport(tcp, opts)?)
            }
        };
        let failed = match Session::setup(stream, name, peer.clone(), opts, config.as_ref()) {
            Ok(s) => return Ok(s),
            Err(SetupError { error, at_tls }) => {
                if !(at_tls && opts.tls.level == Level::May) {
                    return Err(error);
                }
                error
            }
        };
        // The same address again (or the same name through the proxy).
        let again = match (&route, &addr) {
            (Route::Direct(_), Some(a)) => Route::Direct(std::slice::from_ref(a)),
            _ => route,
        };
        let (tcp, _, _) = again.open(name, opts)?;
        let plain = Stream::Plain(transport(tcp, opts)?);
        let mut s = Session::setup(plain, name, peer, opts, None).map_err(|e| e.error)?;
        s.tls_failure = Some(failed);
        Ok(s)
    }
}

/// Where the TCP connection goes.
enum Route<'a> {
    /// To the first of the server's addresses that takes it.
    Direct(&'a [SocketAddr]),
    /// Through a SOCKS5 proxy, to the server's name and this port.
    Proxy(&'a Proxy, u16),
}

impl Route<'_> {
    /// A TCP connection to the server `name`, its port, and the address it went to when
    /// direct.
    fn open(&self, name: &str, opts: &Options) -> Result<(TcpStream, u16, Option<SocketAddr>)> {
        let t = opts.timeouts.connect;
        match self {
            Route::Direct(addrs) => {
                let (tcp, addr) = dial::first(addrs, name, opts.source, t)?;
                Ok((tcp, addr.port(), Some(addr)))
            }
            Route::Proxy(proxy, port) => {
                let tcp = dial::via(proxy, name, *port, opts.source, t)?;
                Ok((tcp, *port, None))
            }
        }
    }
}

/// The connected socket as the session's transport. Whole batches are written at once, so
/// Nagle would only hold the last segment back (TCP_NODELAY).
fn transport(tcp: TcpStream, opts: &Options) -> Result<Box<dyn crate::net::conn::Io>> {
    tcp.set_nodelay(true)
        .map_err(|e| net_error("set TCP_NODELAY", e))?;
    Ok(Box::new(TcpIo::new(tcp, opts.timeouts.command)))
}

/// How long a server may stay silent before we ask whether it waits for a TLS handshake.
const SILENT_PROBE: Duration = Duration::from_secs(3);

/// Wait for the server to start its greeting over plain TCP. A server that stays silent
/// for [`SILENT_PROBE`] is asked, on a second connection, whether it answers a TLS
/// ClientHello: if it does, the port is for implicit TLS (RFC 8314 §3.3) and our settings
/// are wrong, which is [`Code::Config`] (EX_CONFIG), not the timeout's 75 that a queue or an
/// MTA would retry for ever. A server merely slow to greet keeps this connection and its
/// whole greeting timeout (the probe's seconds come on top).
fn await_greeting(tcp: &TcpStream, peer: &str, opts: &Options) -> Result<()> {
    let what = || format!("greeting from {peer}");
    let wait = SILENT_PROBE
        .min(opts.timeouts.command)
        .max(Duration::from_millis(1));
    let peeked = tcp
        .set_read_timeout(Some(wait))
        .and_then(|()| tcp.peek(&mut [0u8; 1]));
    let _ = tcp.set_read_timeout(None);
    match peeked {
        // Data, or the end of it: the greeting's reader says which.
        Ok(_) => return Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        Err(e) => return Err(net_error(&what(), e)),
    }
    let addr = tcp.peer_addr().map_err(|e| net_error(&what(), e))?;
    if tls::answers_tls(addr, wait) {
        let fix = match opts.tls.level {
            Level::None => "--tls implicit, or tls on with tls_starttls off",
            _ => "--tls implicit, or tls_starttls off",
        };
        return Err(Error::new(
            Code::Config,
            what(),
            format!(
                "the server sends none but answers in TLS: the port is for implicit TLS \
                 (use {fix})"
            ),
        ));
    }
    Ok(())
}
