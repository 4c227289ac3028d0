//! How a client writes a command's arguments (RFC 3501 §4, §9): quoted strings, mailbox
//! names in modified UTF-7, UID sequence sets cut to a line length servers take; and the
//! sequence sets a server sends back (ESEARCH). Beside [`super::response`], which reads.

/// A quoted string or, when it cannot be quoted (CR, LF, NUL, 8-bit), `None`.
pub(crate) fn quote(s: &[u8]) -> Option<String> {
    if s.iter()
        .any(|&b| b == 0 || b == b'\r' || b == b'\n' || b >= 0x80)
    {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push('\\');
        }
        out.push(b as char);
    }
    out.push('"');
    Some(out)
}

/// A mailbox name in modified UTF-7 (RFC 3501 §5.1.3), as IMAP4rev1 servers expect.
pub fn mailbox_name(name: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = String::new();
    let mut wide: Vec<u16> = Vec::new();
    let flush = |wide: &mut Vec<u16>, out: &mut String| {
        if wide.is_empty() {
            return;
        }
        let bytes: Vec<u8> = wide.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&b64.encode(bytes).replace('/', ","));
        out.push('-');
        wide.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut wide, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            wide.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut wide, &mut out);
    out
}

/// UIDs as a sequence set (`1:4,7,9:12`) in pieces short enough for one command line each
/// (RFC 7162 §4: servers should take 8192 octets; we stay well under).
pub fn uid_sets(uids: &[u32]) -> Vec<String> {
    let mut sorted: Vec<u32> = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut sets = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut last = first;
        while i + 1 < sorted.len() && sorted[i + 1] == last + 1 {
            i += 1;
            last = sorted[i];
        }
        i += 1;
        let piece = if first == last {
            first.to_string()
        } else {
            format!("{first}:{last}")
        };
        if cur.len() + piece.len() + 1 > 4000 {
            sets.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&piece);
    }
    if !cur.is_empty() {
        sets.push(cur);
    }
    sets
}

/// A sequence set of numbers (`1:3,7`) into its members; `None` when malformed or huge.
pub(crate) fn parse_set(set: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        let (lo, hi) = (a.min(b), a.max(b));
        if lo == 0 || out.len() as u64 + u64::from(hi - lo) > 10_000_000 {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}
