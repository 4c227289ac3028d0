//! The one HTTPS request mail needs: MTA-STS's policy fetch (RFC 8461 §3.3), an HTTP/1.1
//! GET over verified TLS (RFC 9110, RFC 9112), small enough to write here rather than bring
//! an HTTP client and its dependencies into a mail relay.
//!
//! What RFC 8461 §3.3 asks, and this enforces: the certificate verified for the policy
//! host's name (net::tls, the caller's trust); no redirects followed (any status but 200
//! fails, 3xx included, with the Location named); the body capped (a policy is a few lines;
//! chasquid caps at 10 KiB, as [`Fetch::max_size`] defaults to); a short deadline for the
//! whole exchange (connect, handshake, request, response: a server trickling bytes cannot
//! hold a queue run). The media type is returned for the caller to check.

use crate::net::conn::{Io, TcpIo};
use crate::net::tls::{self, TlsOptions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How one fetch is bounded and trusted.
#[derive(Clone, Debug)]
pub struct Fetch {
    /// The whole exchange's deadline, from the first connect.
    pub timeout: Duration,
    /// The most bytes of body accepted; more is an error.
    pub max_size: usize,
    /// How the server's certificate is checked (the Web PKI roots unless a file is given).
    pub trust: TlsOptions,
}

impl Default for Fetch {
    /// 10 s for the whole exchange and 10 KiB (chasquid's cap).
    fn default() -> Fetch {
        Fetch {
            timeout: Duration::from_secs(10),
            max_size: 10 * 1024,
            trust: TlsOptions::default(),
        }
    }
}

/// A 200 response: its media type (lower case, without parameters) and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub media_type: String,
    pub body: Vec<u8>,
}

/// GET `https://HOST/PATH` from the first of `addrs` that answers (the caller resolved
/// `host`); `port` is 443 but for tests. The error is one lower-case line.
pub fn get(
    addrs: &[SocketAddr],
    host: &str,
    path: &str,
    fetch: &Fetch,
) -> std::result::Result<Response, String> {
    let deadline = Instant::now() + fetch.timeout;
    let config = tls::client_config(&fetch.trust).map_err(|e| e.to_string())?;
    let (tcp, _) =
        crate::net::dial::first(addrs, host, None, fetch.timeout).map_err(|e| e.to_string())?;
    let mut io = TcpIo::new(tcp, fetch.timeout);
    io.set_deadline(Some(deadline));
    let mut stream = tls::connect(io, config, host).map_err(|e| e.to_string())?;
    // RFC 9112 §3.2: Host is required; close: the body ends with the connection at worst.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mailpipe-mrelay\r\n\
         Accept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending the request: {}", e.to_string().to_lowercase()))?;
    // The head, at most 16 KiB, plus the capped body (chunk framing adds a little).
    let limit = 16 * 1024 + fetch.max_size * 2 + 1024;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > limit {
                    return Err(format!("the response exceeds {} bytes", fetch.max_size));
                }
                if complete(&raw) {
                    break;
                }
            }
            // A server that closes without TLS's close_notify: what came is judged below
            // (a body cut short fails its Content-Length or chunk framing).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                return Err(format!(
                    "reading the response: {}",
                    e.to_string().to_lowercase()
                ));
            }
        }
    }
    parse(&raw, fetch.max_size)
}

/// True once `raw` holds a whole response with a Content-Length or a chunked body (one
/// with neither ends with the connection).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let framed = head.contains("\r\ncontent-length:") || head.contains("\r\ntransfer-encoding:");
    framed && parse(raw, usize::MAX).is_ok()
}

/// A raw HTTP/1.1 response: the 200's media type and body, or why it is refused.
fn parse(raw: &[u8], max_size: usize) -> std::result::Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("the response ended inside its header")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP/1.x response: {:?}", clip(status)))?;
    let mut media_type = String::new();
    let mut length = None;
    let mut chunked = false;
    let mut location = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => {
                media_type = value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
            }
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "location" => location = Some(value.to_string()),
            _ => {}
        }
    }
    if code != 200 {
        // RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed"; only 200 is a policy.
        return Err(match (code, location) {
            (300..=399, Some(l)) => {
                format!(
                    "HTTP {code} to {:?}: redirects are not followed (RFC 8461 3.3)",
                    clip(&l)
                )
            }
            _ => format!("HTTP {code}, not 200"),
        });
    }
    let body = if chunked {
        dechunk(rest, max_size)?
    } else if let Some(n) = length {
        if n > max_size {
            return Err(format!("the policy is {n} bytes, more than {max_size}"));
        }
        rest.get(..n)
            .ok_or("the body is shorter than its Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > max_size {
        return Err(format!("the policy is more than {max_size} bytes"));
    }
    Ok(Response { media_type, body })
}

/// RFC 9112 §7.1: chunk sizes in hex, each chunk followed by CRLF, a zero chunk last.
fn dechunk(mut input: &[u8], max_size: usize) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(input, b"\r\n").ok_or("the chunked body ended early")?;
        let size_text = String::from_utf8_lossy(&input[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("a bad chunk size {:?}", clip(size_text)))?;
        input = &input[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if out.len().checked_add(size).is_none_or(|n| n > max_size) {
            return Err(format!("the policy is more than {max_size} bytes"));
        }
        let chunk = input.get(..size).ok_or("the chunked body ended early")?;
        out.extend_from_slice(chunk);
        let next = size.checked_add(2).ok_or("the chunked body ended early")?;
        input = input.get(next..).ok_or("the chunked body ended early")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// At most 80 characters of a server's text, for a message.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_with_its_body_within_the_cap() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse(ok, 100),
            Ok(Response {
                media_type: "text/plain".into(),
                body: b"hello".to_vec()
            })
        );
        assert!(parse(ok, 4).is_err());
        let moved = b"HTTP/1.1 301 Moved\r\nLocation: https://evil.test/\r\n\r\n";
        assert!(
            parse(moved, 100)
                .unwrap_err()
                .contains("redirects are not followed")
        );
        assert!(parse(b"HTTP/1.1 404 Not Found\r\n\r\n", 100).is_err());
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, 100).unwrap().body, b"abcde");
        assert!(parse(chunked, 4).is_err());
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"
        ));
        for hostile in [
            &b"HTTP/1.1 200"[..],
            b"\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
        ] {
            assert!(parse(hostile, 100).is_err());
        }
    }
}
