//! EHLO capabilities: what a server offers (RFC 5321 §4.1.1.1), parsed by the client from the
//! EHLO reply and formatted by a server into one.

use super::reply::Reply;

/// The service extensions a server announced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The server's name from the first line of the EHLO reply.
    pub domain: String,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870): `Some(0)` means announced without a limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eightbitmime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// REQUIRETLS (RFC 8689 §3): offered only over TLS.
    pub requiretls: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
    /// AUTH mechanisms (RFC 4954), upper-cased.
    pub auth: Vec<String>,
    /// Every other keyword line, as sent.
    pub other: Vec<String>,
}

impl Capabilities {
    /// What a plain HELO session offers: nothing.
    pub fn helo(domain: &str) -> Capabilities {
        Capabilities {
            domain: domain.to_string(),
            ..Capabilities::default()
        }
    }

    /// Read the capabilities from a positive EHLO reply. Unknown or malformed lines are
    /// kept in `other` and otherwise ignored (RFC 5321 §4.1.1.1: the client ignores what it
    /// does not know).
    pub fn from_reply(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        let mut lines = reply.lines.iter();
        if let Some(first) = lines.next() {
            caps.domain = first.split(' ').next().unwrap_or("").to_string();
        }
        for line in lines {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let kw = keyword.to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eightbitmime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "REQUIRETLS" => caps.requiretls = true,
                "DSN" => caps.dsn = true,
                "STARTTLS" => caps.starttls = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "CHUNKING" => caps.chunking = true,
                "AUTH" => caps.add_auth(words),
                // Old servers (and Outlook-era clients) use `AUTH=PLAIN LOGIN`.
                _ if kw.starts_with("AUTH=") => {
                    caps.add_auth(std::iter::once(&keyword[5..]).chain(words));
                }
                _ => caps.other.push(line.clone()),
            }
        }
        caps
    }

    fn add_auth<'a>(&mut self, words: impl Iterator<Item = &'a str>) {
        for m in words {
            let m = m.to_ascii_uppercase();
            if !m.is_empty() && !self.auth.contains(&m) {
                self.auth.push(m);
            }
        }
    }

    /// True when AUTH mechanism `m` is offered (case-insensitive).
    pub fn offers_auth(&self, m: &str) -> bool {
        self.auth.iter().any(|a| a.eq_ignore_ascii_case(m))
    }

    /// The EHLO reply a server sends: `250-domain greeting` then one line per extension.
    pub fn to_reply(&self, greeting: &str) -> Reply {
        let mut lines = vec![format!("{} {greeting}", self.domain).trim_end().to_string()];
        let size = self.size.map(|n| {
            if n == 0 {
                "SIZE".into()
            } else {
                format!("SIZE {n}")
            }
        });
        for (on, s) in [
            (self.pipelining, "PIPELINING"),
            (size.is_some(), size.as_deref().unwrap_or("")),
            (self.eightbitmime, "8BITMIME"),
            (self.smtputf8, "SMTPUTF8"),
            (self.requiretls, "REQUIRETLS"),
            (self.dsn, "DSN"),
            (self.starttls, "STARTTLS"),
            (self.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            (self.chunking, "CHUNKING"),
        ] {
            if on {
                lines.push(s.to_string());
            }
        }
        if !self.auth.is_empty() {
            lines.push(format!("AUTH {}", self.auth.join(" ")));
        }
        lines.extend(self.other.iter().cloned());
        Reply {
            code: 250,
            enhanced: None,
            lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_postfix_ehlo_reply() {
        let r = Reply::parse(
            b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
              250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN login\r\n250-AUTH=PLAIN XOAUTH2\r\n\
              250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
        )
        .unwrap();
        let c = Capabilities::from_reply(&r);
        assert_eq!(c.domain, "mx.example.test");
        assert!(c.pipelining && c.starttls && c.eightbitmime && c.dsn && c.smtputf8);
        assert!(c.chunking && c.enhanced_status_codes);
        assert_eq!(c.size, Some(10_240_000));
        assert_eq!(c.auth, vec!["PLAIN", "LOGIN", "XOAUTH2"]);
        assert!(c.offers_auth("login"));
        assert_eq!(c.other, vec!["VRFY", "ETRN"]);
    }

    #[test]
    fn round_trips_through_a_server_reply() {
        let c = Capabilities {
            domain: "s.test".into(),
            pipelining: true,
            size: Some(0),
            starttls: true,
            auth: vec!["PLAIN".into()],
            ..Capabilities::default()
        };
        let back = Capabilities::from_reply(&Reply::parse(&c.to_reply("hi").to_bytes()).unwrap());
        assert_eq!(back, c);
    }
}
