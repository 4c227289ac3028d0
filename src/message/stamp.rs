//! What a message is stamped with: `Date:`, `Message-ID:` and this host's name.
//!
//! mcompose stamps what it writes; msubmit adds what a caller left out, as Postfix's cleanup(8)
//! does. Both must agree on one format, so it lives here once.

use std::sync::atomic::{AtomicU32, Ordering};

/// The current local time as an RFC 5322 §3.3 date-time: `Sun, 29 Nov 2026 14:05:09 +0100`.
pub fn date_now() -> String {
    chrono::Local::now()
        .format("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// A time (seconds since the epoch) as an RFC 5322 §3.3 date-time in local time, as
/// [`date_now`] writes the present: the dates a delivery report gives (RFC 3464 §2.2.5).
pub fn date(secs: u64) -> String {
    use chrono::TimeZone;
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    match chrono::Local.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%a, %d %b %Y %H:%M:%S %z").to_string(),
        // Out of chrono's range (a corrupt time): the epoch says "unknown" plainly.
        None => "Thu, 01 Jan 1970 00:00:00 +0000".into(),
    }
}

/// `secs` (since the epoch) in this host's time zone as `YYYY-MM-DD HH:MM:SS`, for
/// people reading a queue listing; empty when out of range.
pub fn local_time(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// This host's fully qualified name as best we can tell: the kernel's hostname when it has
/// a dot; else the canonical name from /etc/hosts; else the short name.
pub fn fqdn() -> String {
    let short = hostname();
    if short.contains('.') {
        return short;
    }
    if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace().skip(1);
            let names: Vec<&str> = words.by_ref().collect();
            if names.iter().any(|n| *n == short)
                && let Some(full) = names.iter().find(|n| n.contains('.'))
            {
                return full.to_string();
            }
        }
    }
    short
}

/// The kernel's host name (`localhost` when it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        "localhost".into()
    } else {
        name
    }
}

/// A new, globally unique Message-ID (with angle brackets) whose right-hand side is `domain`:
/// the sender's domain or a configured one, never a bare short hostname (RFC 5322 §3.6.4).
pub fn message_id(domain: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut random = [0u8; 8];
    fill_random(&mut random);
    let r = u64::from_le_bytes(random);
    format!(
        "<{}.{:x}.{}.{}.{:016x}@{}>",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id(),
        n,
        r,
        domain
    )
}

/// Fill `buf` from the kernel's random source (getrandom(2)); falls back to time and pid
/// mixing when it is unavailable, which keeps ids unique though not unguessable.
pub fn fill_random(buf: &mut [u8]) {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        ^ ((std::process::id() as u64) << 32);
    let mut x = seed | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_rfc5322() {
        let d = date_now();
        let parsed = chrono::DateTime::parse_from_rfc2822(&d);
        assert!(parsed.is_ok(), "{d}");
        let t = date(1_767_225_600);
        let parsed = chrono::DateTime::parse_from_rfc2822(&t).unwrap();
        assert_eq!(parsed.timestamp(), 1_767_225_600, "{t}");
        assert!(chrono::DateTime::parse_from_rfc2822(&date(u64::MAX)).is_ok());
    }

    #[test]
    fn message_ids_are_unique_and_use_the_domain() {
        let a = message_id("example.test");
        let b = message_id("example.test");
        assert_ne!(a, b);
        assert!(a.starts_with('<') && a.ends_with("@example.test>"), "{a}");
    }
}
