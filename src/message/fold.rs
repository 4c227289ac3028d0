//! Writing header fields: RFC 2047 encoded-words, RFC 2231 parameters, and line folding.
//!
//! A header value is built as a list of *words*, pieces that may not be split, with the
//! whitespace before each; [`field`] lays them out on lines of at most 78 characters where
//! it can (RFC 5322 §2.1.1) by inserting a line break before the whitespace (folding, §2.2.3).
//! Every word this module makes is short (an encoded-word is at most 75 characters, RFC 2047
//! §2), and callers check the length of what they pass (an addr-spec, a msg-id), so no line
//! ever exceeds 998.
//!
//! Header injection cannot happen here by construction: a CR, LF or any other control
//! character in a value is never written raw; it ends up inside an encoded-word as `=0D`,
//! `=0A`. Lines end in LF: mailpipe writes Unix text; msubmit turns it into CRLF for SMTP.
//!
//! lettre's `HeaderValue` encoder is not used: it folds only at spaces (a long word gives a
//! line over 998), lets other control characters through raw, and writes CRLF.

/// Folding aims at lines of at most this many characters (RFC 5322 §2.1.1 "SHOULD").
const SOFT_LIMIT: usize = 78;
/// Lines longer than this are forbidden (RFC 5322 §2.1.1 "MUST").
pub const HARD_LIMIT: usize = 998;
/// The longest encoded-word we write: RFC 2047 §2 allows 75, but 66 lets the first one
/// share a 78-character line with a field name like `Reply-To: `.
const EW_MAX: usize = 66;
/// `=?utf-8?q?` + `?=`.
const EW_OVERHEAD: usize = 12;

/// A header field `Name: words…` folded at the spaces between words, ending in LF.
pub fn field(name: &str, words: &[String]) -> String {
    let tokens: Vec<(&str, &str)> = words.iter().map(|w| (" ", w.as_str())).collect();
    layout(name, &tokens)
}

/// A header field with unstructured text (Subject, Comments, `-H` values): ASCII words as
/// they are, runs of words that need it (non-ASCII, control characters, things that look
/// like encoded-words, words too long for a line) as encoded-words. Whitespace between
/// words is kept as given; the value's ends are trimmed.
pub fn unstructured(name: &str, value: &str) -> String {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    // (whitespace before, word) pairs.
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let ws_end = rest.find(|c| c != ' ' && c != '\t').unwrap_or(rest.len());
        let (ws, after) = rest.split_at(ws_end);
        let w_end = after.find([' ', '\t']).unwrap_or(after.len());
        let (word, next) = after.split_at(w_end);
        pairs.push((ws, word));
        rest = next;
    }
    let mut tokens: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        if !needs_encoding(pairs[i].1) {
            tokens.push((pairs[i].0.to_string(), pairs[i].1.to_string()));
            i += 1;
            continue;
        }
        // A run of words to encode together: the whitespace between them goes inside the
        // encoded text, because whitespace between encoded-words is dropped (RFC 2047 §6.2).
        let sep = pairs[i].0.to_string();
        let mut text = pairs[i].1.to_string();
        i += 1;
        while i < pairs.len() && needs_encoding(pairs[i].1) {
            text.push_str(pairs[i].0);
            text.push_str(pairs[i].1);
            i += 1;
        }
        for (k, ew) in encode_words(&text).into_iter().enumerate() {
            let s = if k == 0 { sep.clone() } else { " ".into() };
            tokens.push((s, ew));
        }
    }
    let refs: Vec<(&str, &str)> = tokens
        .iter()
        .map(|(s, w)| (if s.is_empty() { " " } else { s.as_str() }, w.as_str()))
        .collect();
    layout(name, &refs)
}

fn layout(name: &str, tokens: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(name.len() + 2 + tokens.len() * 16);
    out.push_str(name);
    out.push(':');
    let mut len = out.len();
    for (i, (sep, word)) in tokens.iter().enumerate() {
        // Never right after the colon: some parsers then keep a leading space.
        if i > 0 && len + sep.len() + word.len() > SOFT_LIMIT {
            out.push('\n');
            len = 0;
        }
        out.push_str(sep);
        out.push_str(word);
        len += sep.len() + word.len();
    }
    out.push('\n');
    out
}

/// The longest ASCII word written as it is: with a field name of at most
/// [`MAX_NAME`] characters it still fits a line within 998.
const LONG_WORD: usize = 900;
/// The longest field name mcompose writes.
pub const MAX_NAME: usize = 76;

/// True when a word of unstructured text cannot be written as it is. A long ASCII word (a
/// URL in a `-H` field) stays readable and unencoded up to [`LONG_WORD`], past the 78
/// recommended but far from the 998 allowed: encoding it would break structured fields.
fn needs_encoding(word: &str) -> bool {
    word.len() > LONG_WORD || word.contains("=?") || !word.bytes().all(|b| b.is_ascii_graphic())
}

/// The words of a display name or group name (RFC 5322 §3.2.5 phrase): atoms when they are
/// atoms, a quoted-string when ASCII needs quoting, encoded-words otherwise (RFC 2047 §5
/// (3)). Whitespace runs become single spaces.
pub fn phrase(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let plain = |w: &&str| w.len() <= 60 && !w.contains("=?");
    if !words.is_empty()
        && words.iter().all(|w| {
            plain(w) && crate::message::header::is_dot_atom(w) && !w.contains('.') && w.is_ascii()
        })
    {
        return words.iter().map(|w| w.to_string()).collect();
    }
    if !words.is_empty()
        && words
            .iter()
            .all(|w| plain(w) && w.bytes().all(|b| b.is_ascii_graphic()))
    {
        // FWS may fold a quoted-string (RFC 5322 §3.2.4), so break it at its spaces.
        let quoted = crate::message::header::quote(&words.join(" "));
        return quoted.split(' ').map(str::to_string).collect();
    }
    encode_words(&words.join(" "))
}

/// Decode the RFC 2047 encoded-words in `s` (a phrase or unstructured text), with mailparse.
pub fn decode_words(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    let line = format!("X: {s}\n");
    match mailparse::parse_header(line.as_bytes()) {
        Ok((h, _)) => h.get_value(),
        Err(_) => s.to_string(),
    }
}

/// `text` as UTF-8 encoded-words of at most 75 characters, never splitting a character
/// (RFC 2047 §5 last paragraph): Q encoding, restricted to the characters allowed in a
/// phrase (§5 (3)) so the words are valid everywhere, or B when that is shorter.
fn encode_words(text: &str) -> Vec<String> {
    let q_len: usize = text.chars().map(q_char_len).sum();
    let b_len = text.len().div_ceil(3) * 4;
    let room = EW_MAX - EW_OVERHEAD;
    let mut out = Vec::new();
    if q_len <= b_len + b_len / 4 {
        let mut cur = String::new();
        for c in text.chars() {
            if cur.len() + q_char_len(c) > room {
                out.push(format!("=?utf-8?q?{cur}?="));
                cur.clear();
            }
            q_push(&mut cur, c);
        }
        if !cur.is_empty() || out.is_empty() {
            out.push(format!("=?utf-8?q?{cur}?="));
        }
    } else {
        // 39 bytes give 52 base64 characters: within the room.
        let mut chunk = String::new();
        for c in text.chars() {
            if chunk.len() + c.len_utf8() > 39 {
                out.push(format!(
                    "=?utf-8?b?{}?=",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &chunk)
                ));
                chunk.clear();
            }
            chunk.push(c);
        }
        if !chunk.is_empty() || out.is_empty() {
            out.push(format!(
                "=?utf-8?b?{}?=",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &chunk)
            ));
        }
    }
    out
}

fn q_literal(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '*' | '+' | '-' | '/')
}

fn q_char_len(c: char) -> usize {
    if q_literal(c) || c == ' ' {
        1
    } else {
        3 * c.len_utf8()
    }
}

fn q_push(out: &mut String, c: char) {
    if q_literal(c) {
        out.push(c);
    } else if c == ' ' {
        // RFC 2047 §4.2 (2): "_" stands for a space.
        out.push('_');
    } else {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push_str(&format!("={b:02X}"));
        }
    }
}

/// RFC 2045 §5.1 token characters (for media types and parameter names).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// A MIME parameter `name=value` as header words: a quoted-string when the value is short
/// printable ASCII (without `"` or `\`, whose escapes some readers get wrong), else RFC 2231
/// §3-§4 `name*0*=utf-8''…` continuations of percent-encoded UTF-8. Every word but the
/// last ends in `;` so the caller can append them after a `;`.
pub fn parameter(name: &str, value: &str) -> Vec<String> {
    let plain = |b: u8| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\';
    // Not `=?` either: readers (mailparse among them) decode encoded-words even inside a
    // quoted-string, against RFC 2047 §5, so such a name would come back changed.
    if value.len() <= 60 && value.bytes().all(plain) && !value.contains("=?") {
        return vec![format!("{name}={}", crate::message::header::quote(value))];
    }
    // RFC 2231 §7 attribute-char: token characters other than "*", "'" and "%".
    let mut pieces: Vec<String> = Vec::new();
    let mut cur = String::new();
    for b in value.bytes() {
        let enc = if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        };
        if cur.len() + enc.len() > 50 {
            pieces.push(std::mem::take(&mut cur));
        }
        cur.push_str(&enc);
    }
    pieces.push(cur);
    let n = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let charset = if i == 0 { "utf-8''" } else { "" };
            let sep = if i + 1 < n { ";" } else { "" };
            if n == 1 {
                format!("{name}*={charset}{p}")
            } else {
                format!("{name}*{i}*={charset}{p}{sep}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_ok(s: &str) {
        for l in s.lines() {
            assert!(l.len() <= SOFT_LIMIT, "{} > 78: {l:?}", l.len());
        }
        assert!(s.ends_with('\n') && !s.contains('\r'));
    }

    fn decoded(field: &str) -> String {
        let (h, _) = mailparse::parse_header(field.as_bytes()).unwrap();
        h.get_value()
    }

    #[test]
    fn ascii_subjects_stay_readable_and_fold() {
        assert_eq!(
            unstructured("Subject", "hello  world"),
            "Subject: hello  world\n"
        );
        let long = "word ".repeat(40);
        let f = unstructured("Subject", &long);
        lines_ok(&f);
        assert_eq!(decoded(&f), long.trim());
    }

    #[test]
    fn non_ascii_and_controls_become_encoded_words() {
        for v in [
            "Grüße aus Köln",
            "日本語のメール件名はとても長くなることがありますので折り返しが必要です日本語のメール件名",
            "a\r\nBcc: victim@example.org",
            "looks =?utf-8?q?encoded?= but is not",
            &"x".repeat(2000),
            "tab\there ünd _under_score=equals?",
        ] {
            let f = unstructured("Subject", v);
            lines_ok(&f);
            assert_eq!(f.matches('\n').count(), f.lines().count());
            assert!(f.lines().skip(1).all(|l| l.starts_with([' ', '\t'])), "{f}");
            assert_eq!(decoded(&f), v, "{f}");
        }
    }

    #[test]
    fn encoded_words_never_split_a_character() {
        let text = "é".repeat(100) + &"😀".repeat(40);
        for w in encode_words(&text) {
            assert!(w.len() <= EW_MAX, "{w}");
            let f = format!("X: {w}\n");
            assert!(!decoded(&f).contains('\u{fffd}'), "{w}");
        }
    }

    #[test]
    fn phrases_are_atoms_quoted_or_encoded() {
        assert_eq!(phrase("Ann  Bee"), ["Ann", "Bee"]);
        assert_eq!(phrase("Doe, John").join(" "), "\"Doe, John\"");
        assert_eq!(phrase("J. R."), ["\"J.", "R.\""]);
        assert!(phrase("Zoë")[0].starts_with("=?utf-8?q?Zo=C3=AB?="));
    }

    #[test]
    fn parameters_use_rfc2231_when_needed() {
        assert_eq!(parameter("filename", "a b.pdf"), ["filename=\"a b.pdf\""]);
        assert_eq!(
            parameter("filename", "ü.txt"),
            ["filename*=utf-8''%C3%BC.txt"]
        );
        let long = parameter("filename", &"ä".repeat(40));
        assert!(long.len() > 1);
        assert!(long[0].starts_with("filename*0*=utf-8''%C3%A4"));
        assert!(long[1].starts_with("filename*1*=%C3"));
        let f = field(
            "Content-Disposition",
            &[vec!["attachment;".into()], long].concat(),
        );
        lines_ok(&f);
        let cd = mailparse::parse_content_disposition(&decoded(&f));
        assert_eq!(
            cd.params.get("filename").map(String::as_str),
            Some(&*"ä".repeat(40))
        );
        assert_eq!(parameter("name", "a\"b\nc")[0], "name*=utf-8''a%22b%0Ac");
        assert_eq!(parameter("name", "a\\b")[0], "name*=utf-8''a%5Cb");
    }
}
