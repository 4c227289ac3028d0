//! DNSSEC status for DANE: questions asked of a validating resolver on loopback, whose AD
//! bit is trusted (RFC 4035 §4.9.3, RFC 6840 §5.7), as Postfix, maddy and mox do.
//!
//! Why not hickory's own validation (its `dnssec-ring` feature, with a configured trust
//! anchor), which the issue offered as the alternative:
//! - A validator must follow the root's key rollovers (RFC 5011) and a resolver's cache of
//!   DNSKEYs and DS records; unbound and the system's resolver already do both, and every
//!   DANE deployment runs one (Postfix's documentation requires it). A second validator
//!   in the MTA would be one more trust anchor file for an administrator to keep current,
//!   and a stale one fails every DANE domain at once.
//! - hickory's resolver without that feature never asks for the AD bit (neither AD nor DO
//!   in its queries: hickory-resolver 0.26 `request_options`), so its answers cannot carry
//!   another validator's verdict; with it, it validates by itself, with the costs above.
//! - What it costs: trust in the path to the resolver. That is why the AD bit is believed
//!   only from a server on loopback (every configured server; [`super::Resolver`] decides):
//!   a remote resolver's AD bit could be set by anyone on the path. With none on loopback,
//!   every answer counts as insecure and DANE is off (never "secure" by mistake).
//!
//! The question is a plain DNS query over UDP (TCP when the answer is truncated) with the
//! AD bit set (RFC 6840 §5.7: a client asks for AD that way, no DO bit and no signatures
//! needed). A SERVFAIL from a validating resolver may be a failed validation or a failed
//! server: asked again with checking disabled (CD, RFC 4035 §3.2.2), a bogus answer comes
//! back and a broken server still fails, which keeps "bogus" apart from "try later".

use super::records::{rcode_name, record_type, records, type_name};
use super::{Answer, BAD_SYNTAX, Checked, DNS_TEMPFAIL, Failure, Type};
use hickory_resolver::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::Name;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// The largest UDP answer we accept (RFC 9715's advice for EDNS0: no fragmentation).
const UDP_PAYLOAD: u16 = 1232;

/// Ask `server` one question with its DNSSEC status: each try waits `timeout`, `attempts`
/// tries in all.
pub(super) fn ask(
    server: SocketAddr,
    name: &str,
    kind: Type,
    timeout: Duration,
    attempts: usize,
) -> Result<Checked, Failure> {
    let what = || format!("{} lookup for {name}", type_name(kind));
    let mut fqdn = Name::from_str_relaxed(name)
        .map_err(|_| Failure::Permanent(BAD_SYNTAX, format!("{name} is not a domain name")))?;
    fqdn.set_fqdn(true);
    let reply = exchange(server, &fqdn, kind, false, timeout, attempts)
        .map_err(|why| Failure::Temporary(DNS_TEMPFAIL, format!("{}: {why}", what())))?;
    let answer = |m: &Message| match m.metadata.response_code {
        ResponseCode::NXDomain => Answer::NxDomain,
        _ => records(kind, &m.answers),
    };
    match reply.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {
            let a = answer(&reply);
            Ok(match reply.metadata.authentic_data {
                true => Checked::Secure(a),
                false => Checked::Insecure(a),
            })
        }
        ResponseCode::ServFail => match exchange(server, &fqdn, kind, true, timeout, attempts) {
            Ok(m)
                if matches!(
                    m.metadata.response_code,
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) =>
            {
                Ok(Checked::Bogus(format!(
                    "{}: DNSSEC validation failed (bogus: the answer is there, its \
                         signatures do not verify)",
                    what()
                )))
            }
            _ => Err(Failure::Temporary(
                DNS_TEMPFAIL,
                format!("{}: the server answered SERVFAIL", what()),
            )),
        },
        code => Err(Failure::Temporary(
            DNS_TEMPFAIL,
            format!("{}: the server answered {}", what(), rcode_name(code)),
        )),
    }
}

/// One query and its reply: UDP, then TCP when the reply is truncated.
fn exchange(
    server: SocketAddr,
    name: &Name,
    kind: Type,
    checking_disabled: bool,
    timeout: Duration,
    attempts: usize,
) -> Result<Message, String> {
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    // RFC 6840 §5.7: AD in a query asks for AD in the answer.
    q.metadata.authentic_data = true;
    q.metadata.checking_disabled = checking_disabled;
    q.add_query(Query::query(name.clone(), record_type(kind)));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    q.set_edns(edns);
    let bytes = q.to_vec().map_err(|e| e.to_string())?;
    let id = q.metadata.id;
    let mut last = "no answer from the DNS server (timed out)".to_string();
    for _ in 0..attempts.max(1) {
        match udp(server, &bytes, id, name, timeout) {
            Ok(m) if m.metadata.truncation => return tcp(server, &bytes, id, name, timeout),
            Ok(m) => return Ok(m),
            Err(why) => last = why,
        }
    }
    Err(last)
}

/// Is `m` the reply to our query `id` for `name`? (An answer to something else, late or
/// forged, is skipped: RFC 5452 §9.1.)
fn is_reply(m: &Message, id: u16, name: &Name) -> bool {
    m.metadata.id == id && m.queries.first().is_some_and(|q| q.name() == name)
}

fn udp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &Name,
    timeout: Duration,
) -> Result<Message, String> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().map_err(|_| "address")?,
        SocketAddr::V6(_) => "[::]:0".parse().map_err(|_| "address")?,
    };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.send(query).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; usize::from(UDP_PAYLOAD).max(4096)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no answer from the DNS server (timed out)".into());
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                if let Ok(m) = Message::from_vec(&buf[..n])
                    && is_reply(&m, id, name)
                {
                    return Ok(m);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no answer from the DNS server (timed out)".into());
            }
            Err(e) => return Err(e.to_string().to_lowercase()),
        }
    }
}

/// RFC 1035 §4.2.2: over TCP a message is preceded by its length in two bytes.
fn tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &Name,
    timeout: Duration,
) -> Result<Message, String> {
    let err = |e: std::io::Error| e.to_string().to_lowercase();
    let mut s = TcpStream::connect_timeout(&server, timeout).map_err(err)?;
    s.set_read_timeout(Some(timeout)).map_err(err)?;
    s.set_write_timeout(Some(timeout)).map_err(err)?;
    let len = u16::try_from(query.len()).map_err(|_| "query too long")?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(query);
    s.write_all(&out).map_err(err)?;
    let mut head = [0u8; 2];
    s.read_exact(&mut head).map_err(err)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(head))];
    s.read_exact(&mut buf).map_err(err)?;
    let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if !is_reply(&m, id, name) {
        return Err("the DNS server answered another question".into());
    }
    Ok(m)
}
